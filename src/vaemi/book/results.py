"""Numbers and claims of a chapter: glued into the page and written to a results file.

Each chapter creates one :class:`Results`. ``record`` stores a number (optionally beside the
paper's) and glues it for ``{glue:text}`` in the text; ``claim`` records a statement of the paper
with its verdict and glues the verdict for ``{glue:md}``. ``finish`` (the chapter's last cell)
writes ``<results dir>/<chapter>.json``, which the scorecard page collects, shows every claim, and
asserts that every *required* claim held.

Two kinds of claims
-------------------
``identity``
    Holds to float precision whatever the seed (an algebraic identity, a closed form against
    another closed form). Asserted at once: a failure is a bug, and the chapter stops there.
``estimate``
    A statement about random quantities (Monte Carlo, training). Its threshold is stated in
    standard errors computed by the run, or in a margin the chapter justifies. Recorded where it
    is computed, never stopping the chapter midway; ``finish`` asserts all of them together and
    lists every required claim that did not hold. So a reader's re-run with another seed
    completes and shows what held, and the book build and nbval still fail on a broken claim.

A claim is *required* unless the chapter says otherwise (``required=False``: claims that need
book-scale training, in the smoke profile) or the run uses reduced data (the packaged 5,000-digit
MNIST fallback): then estimates are recorded, not asserted.

Values that are not finite are written as ``null`` with the entry's ``nonfinite`` list naming
where they were (the files are always valid JSON); a claim whose value is not finite is "not
evaluated", never "holds".

The results folder is ``$VAEMI_RESULTS_DIR`` (the book build sets ``_build/results``), else
``./results``.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

__all__ = ["Results", "results_dir", "claim_group", "GROUPS", "IDENTITY", "ESTIMATE", "HOLDS", "FAILS", "NOT_EVALUATED"]

IDENTITY, ESTIMATE = "identity", "estimate"
HOLDS, FAILS, NOT_EVALUATED = "holds", "fails", "not evaluated"
GROUPS = {"source": "Claims of the source", "derivation": "Derivation checks", "ours": "Our additional checks"}
_NOT_STATED = ("not stated", "(not reported)", "not reported", "not measured", "(not stated")
_VERDICT_MD = {HOLDS: "holds", FAILS: "does **not** hold", NOT_EVALUATED: "could **not** be evaluated"}


def claim_group(entry: dict[str, Any]) -> str:
    """``"source"``, ``"derivation"`` or ``"ours"``: the entry's own ``group``, else inferred (an identity
    is a derivation check; a claim whose source statement is "not stated/reported/measured" is ours)."""
    if entry.get("group") in GROUPS:
        return entry["group"]
    if entry.get("type") == "identity":
        return "derivation"
    paper = entry.get("paper")
    if paper is None or str(paper).strip().lower().startswith(_NOT_STATED):
        return "ours"
    return "source"



def results_dir() -> Path:
    return Path(os.environ.get("VAEMI_RESULTS_DIR", "results"))


def _glue(name: str, value: Any) -> None:
    try:
        from myst_nb import glue
    except ImportError:  # outside a notebook build, gluing is a no-op
        return
    try:
        glue(name, value, display=False)
    except Exception:
        pass


def _glue_markdown(name: str, text: str) -> None:
    try:
        from IPython.display import Markdown
    except ImportError:
        return
    _glue(name, Markdown(text))


def _display(obj: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:
        return
    display(obj)


def jsonable(value: Any, path: str = "$", nonfinite: list[str] | None = None) -> Any:
    """``value`` as plain JSON types: numpy/torch scalars and arrays become numbers and lists, and
    every non-finite float becomes ``None`` with its path (``$``, ``$[2]``, ``$.key``) appended to
    ``nonfinite``."""
    if nonfinite is None:
        nonfinite = []
    if hasattr(value, "to_dict"):  # pandas Series / DataFrame: keep the index
        value = value.to_dict()
    elif hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy / torch, any shape
        value = value.tolist()
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        nonfinite.append(path)
        return None
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{path}[{i}]", nonfinite) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): jsonable(v, f"{path}.{k}", nonfinite) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def git_commit() -> str | None:
    """The commit of the code that ran (``+changes`` when the work tree differs from it): ``$VAEMI_COMMIT``
    if set, else asked of git from the package's folder; None outside a git checkout."""
    if os.environ.get("VAEMI_COMMIT"):
        return os.environ["VAEMI_COMMIT"]
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+changes" if dirty else "") if sha else None


class Results:
    """Collects a chapter's numbers and claims.

    Parameters
    ----------
    chapter : str
        Short id, also the results file's name.
    title : str
        Human-readable chapter title (shown on the scorecard).
    params : dict
        The validated parameters of the run.
    profile : str
        Name of the parameter profile (``smoke``, ``book``, ``paper``, or ``custom``).
    """

    def __init__(self, chapter: str, title: str, params: dict[str, Any], profile: str = "book"):
        self.chapter, self.title, self.profile = chapter, title, profile
        self.params = jsonable(dict(params))
        self.entries: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, Any] = {}
        self.reduced_data: str | None = None  # why estimates are not asserted (reduced data), if they are not
        self.started: float | None = None  # time.perf_counter() at the chapter's start: finish records the minutes

    # ------------------------------------------------------------------ facts about the run
    def set_meta(self, **kw: Any) -> None:
        """Free-form facts about the run (dataset source, device, timings); glued by name."""
        for k, v in kw.items():
            self.meta[k] = jsonable(v)
            _glue(k, self.meta[k])

    def use_data(self, *datasets: Any, key: str = "data") -> None:
        """Record loaded :class:`vaemi.data.ImageData` sets' provenance (dataset, split, size, origin;
        never a path) in the metadata; a fallback dataset marks the run as on reduced data (see
        :meth:`expect_data`). ``key``: the metadata name of the first set's source (``<key>_source``)."""
        first = datasets[0]
        self.meta[f"{key}_source"] = first.source
        self.meta[f"{key}_is_fallback"] = bool(first.is_fallback)
        _glue(f"{key}_source", first.source)
        for data in datasets:
            self.meta.setdefault("datasets", {})[f"{data.name}/{data.split}"] = jsonable(data.provenance)
            if data.is_fallback:
                self.mark_reduced(f"{data.name}: {data.source}")

    def mark_reduced(self, reason: str) -> None:
        """Say that the run uses reduced data (``reason``): a banner at this place of the page, and estimates from
        here on are recorded, not asserted."""
        if self.reduced_data is not None:
            return
        self.reduced_data = reason
        self.meta["reduced_data"] = reason
        try:
            from IPython.display import HTML
        except ImportError:
            return
        _display(HTML(
            '<div class="admonition warning"><p class="admonition-title">Built on reduced data</p>'
            f"<p>This page was built on reduced data ({reason}). Its numbers are not comparable with the "
            "paper's, and the claims that need the full dataset are recorded with their verdict, not "
            "asserted. Put the full dataset in place (see the message printed here) and rebuild.</p></div>"))

    # ------------------------------------------------------------------ numbers and claims
    def record(self, key: str, value: Any, *, paper: Any = None, description: str = "", unit: str = "") -> Any:
        """Store ``value`` under ``key``, glue it, and return it (as plain Python).

        A value that is not finite is stored as ``null`` and flagged (``nonfinite``), glued as NaN
        (so that a format such as ``:.2f`` in the text still works and shows ``nan``), and returned
        as it was.
        """
        bad: list[str] = []
        plain = jsonable(value, "$", bad)
        self.entries[key] = {"kind": "number", "value": plain, "paper": jsonable(paper),
                             "description": description, "unit": unit}
        if bad:
            self.entries[key]["nonfinite"] = bad
            _glue(key, math.nan if isinstance(plain, (type(None), float)) else str(value))
            return value.item() if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 else value
        _glue(key, plain)
        return plain

    def record_many(self, values: dict[str, Any], *, prefix: str = "", unit: str = "",
                    paper: dict[str, Any] | None = None) -> dict[str, Any]:
        """``record(prefix + key, value, unit=unit, paper=paper.get(key))`` for every item; returns them."""
        return {k: self.record(f"{prefix}{k}", v, unit=unit, paper=(paper or {}).get(k)) for k, v in values.items()}

    def claim(self, key: str, statement: str, passed: bool | None, *, ours: Any = None, paper: Any = None,
              kind: str = ESTIMATE, required: bool = True, group: str | None = None) -> bool:
        """Record a claim of the source document with its verdict (glued as ``key``).

        Parameters
        ----------
        key : str
            Id of the claim (the glue name of its verdict).
        statement : str
            The claim, with its threshold (e.g. "within 3 standard errors").
        passed : bool or None
            Our verdict; ``None`` when it could not be evaluated.
        ours, paper : optional
            Our value(s) and the paper's number or statement. A non-finite number in ``ours`` makes
            the claim "not evaluated".
        kind : {"estimate", "identity"}
            An identity is asserted at once (it holds whatever the seed); an estimate is asserted by
            :meth:`finish`.
        required : bool
            Whether :meth:`finish` asserts it (estimates on reduced data never are).
        group : {"source", "derivation", "ours"}, optional
            For the scorecard: a claim of the source, a check of a derivation, or our own additional
            check. Default: an identity, or any claim made before the chapter used data, is a
            derivation check; a claim whose ``paper`` says "not stated/reported/measured" is ours;
            the rest are the source's.

        Returns
        -------
        bool
            True when the claim holds.
        """
        if kind not in (IDENTITY, ESTIMATE):
            raise ValueError(f"claim {key!r}: kind must be {IDENTITY!r} or {ESTIMATE!r}, got {kind!r}")
        if group is None:
            group = "derivation" if "datasets" not in self.meta else claim_group({"type": kind, "paper": paper})
        elif group not in ("source", "derivation", "ours"):
            raise ValueError(f"claim {key!r}: group must be 'source', 'derivation' or 'ours', got {group!r}")
        bad: list[str] = []
        value = jsonable(ours, "$", bad)
        if passed is None or bad:
            status = NOT_EVALUATED
        else:
            status = HOLDS if bool(passed) else FAILS
        entry = {"kind": "claim", "type": kind, "group": group, "statement": statement, "status": status,
                 "passed": status == HOLDS if status != NOT_EVALUATED else None,
                 "value": value, "paper": jsonable(paper), "required": bool(required)}
        if bad:
            entry["nonfinite"] = bad
        if kind == ESTIMATE and required and self.reduced_data is not None:
            entry["required"] = False
            entry["not_required_because"] = "reduced data"
        elif not required:
            entry["not_required_because"] = f"profile {self.profile}"
        self.entries[key] = entry
        _glue_markdown(key, _VERDICT_MD[status])
        if kind == IDENTITY and status != HOLDS:
            raise AssertionError(f"identity {key!r} {status}: {statement} (ours: {ours!r}; paper: {paper!r})")
        return status == HOLDS

    def claims(self) -> list[dict[str, Any]]:
        """Every claim so far, as ``{"key", "type", "status", "required", "statement", "value", "paper"}``."""
        return [{"key": k, **{f: e.get(f) for f in ("type", "status", "required", "statement", "value", "paper")}}
                for k, e in self.entries.items() if e["kind"] == "claim"]

    def unmet(self) -> list[dict[str, Any]]:
        """The required claims that did not hold (failed or not evaluated)."""
        return [c for c in self.claims() if c["required"] and c["status"] != HOLDS]

    def finish(self, directory: str | Path | None = None):
        """The chapter's last step: save the results file, show every claim, and assert that every
        required claim held (listing all that did not).

        Returns
        -------
        pandas.DataFrame
            One row per claim (key, kind, verdict, asserted, statement).
        """
        import pandas as pd

        if self.started is not None and "chapter_minutes" not in self.entries:
            self.record("chapter_minutes", (time.perf_counter() - self.started) / 60, unit="min")
        path = self.save(directory)
        table = pd.DataFrame([{"claim": c["key"], "kind": c["type"], "verdict": c["status"],
                               "asserted": "yes" if c["required"] else "no", "statement": c["statement"]}
                              for c in self.claims()])
        held = sum(c["status"] == HOLDS for c in self.claims())
        print(f"results written to {path.name} in the results folder; {held} of {len(table)} claims hold")
        unmet = self.unmet()
        if unmet:
            _display(table)
            lines = "\n".join(f"  - {c['key']} ({c['status']}): {c['statement']}; ours: {c['value']!r}"
                              for c in unmet)
            raise AssertionError(f"{len(unmet)} required claim(s) of {self.chapter!r} did not hold:\n{lines}")
        return table

    def figure(self, name: str, fig, dpi: int = 110) -> None:
        """Glue a matplotlib figure for ``{glue:figure}`` (captioned, numbered in the page), save it as
        ``<results dir>/<chapter>/<name>.png``, and close it so that it is not shown twice.

        The PNG is rendered here and glued as an image, so the page gets the figure whatever matplotlib
        backend the kernel runs (e.g. ``MPLBACKEND=Agg``).
        """
        import io

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        png = buf.getvalue()
        d = results_dir() / self.chapter
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.png").write_bytes(png)
        try:
            from IPython.display import Image
            from myst_nb import glue
        except ImportError:
            return
        glue(name, Image(data=png, format="png"), display=False)

    # ------------------------------------------------------------------ the results file
    def to_dict(self) -> dict[str, Any]:
        return {
            "chapter": self.chapter, "title": self.title, "profile": self.profile, "params": self.params,
            "meta": self.meta, "entries": self.entries,
            "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(), "python": platform.python_version(),
        }

    def save(self, directory: str | Path | None = None) -> Path:
        """Write ``<directory>/<chapter>.json`` (atomically, strict JSON: no NaN) and return its path."""
        d = Path(directory) if directory is not None else results_dir()
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{self.chapter}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False))
        os.replace(tmp, path)
        return path
