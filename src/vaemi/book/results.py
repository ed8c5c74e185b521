"""Numbers and claims of a chapter: glued into the page and written to a results file.

Each chapter creates one :class:`Results` (:meth:`vaemi.chapters.common.Chapter.start`). ``record`` stores a number
(optionally beside the paper's) and glues it for ``{glue:text}`` in the text; ``claim`` records a statement with its
verdict and glues the verdict for ``{glue:md}``. ``finish`` (the chapter's last cell) writes
``<results dir>/<chapter>.json``, which the scorecard and the ledger pages collect.

How a claim is decided (``kind``)
---------------------------------
``identity``
    Exact: holds to float precision whatever the seed (an algebraic identity, a closed form against another
    closed form). A failure is a bug: the chapter stops there.
``estimate``
    A statement about random quantities (Monte Carlo, training), judged against a threshold stated in standard
    errors computed by the run (or a margin the chapter justifies). Three outcomes: it *holds*, it *fails*, or it
    is *inconclusive* when the interval of the estimate straddles the threshold (or the sample is too small to
    decide): :func:`decide` gives the verdict. An inconclusive check is reported as such and never asserted.

What a claim is for (``group``)
-------------------------------
``derivation``
    Checks an equation or a step of a source's argument numerically (an identity, or a closed form against
    Monte Carlo). It verifies that derivation item of the ledger. Asserted: a failure is a bug in the derivation
    or in our code.
``consistency``
    A theorem that holds for any model (IWAE >= ELBO, InfoNCE <= I_q <= rate, Jensen on the same samples), or a
    check that our code does what it says. Asserted, and shown, but never counted as reproducing a claim.
``source``
    An experimental claim of the source, judged by the criterion of its ledger item (written from the source's
    words before looking at our numbers). A *verdict, not a gate*: recorded, never asserted, so a re-run at any
    seed finishes with its verdicts.
``ours``
    A statement the source does not make (a looser or stronger variant, an observation of ours): shown, not
    asserted, never counted for the source.

So the build fails on a broken identity, derivation check or consistency check, never because a paper's claim
did not reproduce. On reduced data (the packaged 5,000-digit MNIST fallback) the chapter says so with a banner;
the assertions do not change, since none of them depends on the data being complete.

Values that are not finite are written as ``null`` with the entry's ``nonfinite`` list naming where they were (the
files are always valid JSON); a claim whose value is not finite is "not evaluated", never "holds".

The results folder is ``$VAEMI_RESULTS_DIR`` (the book build sets ``_build/results``), else ``./results``.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["Results", "results_dir", "claim_group", "decide", "all_of", "mean_se", "paired_mean_se", "glue_markdown", "GROUPS", "ASSERTED_GROUPS", "IDENTITY", "ESTIMATE",
           "HOLDS", "FAILS", "INCONCLUSIVE", "NOT_EVALUATED", "STATUSES"]

IDENTITY, ESTIMATE = "identity", "estimate"
HOLDS, FAILS, INCONCLUSIVE, NOT_EVALUATED = "holds", "fails", "inconclusive", "not evaluated"
STATUSES = (HOLDS, FAILS, INCONCLUSIVE, NOT_EVALUATED)
GROUPS = {"source": "Claims of the source", "derivation": "Derivation checks",
          "consistency": "Consistency checks (theorems that hold for any model; never counted as reproduced)",
          "ours": "Our additional checks"}
#: The groups whose failure fails the build (a bug in a derivation or in our code).
ASSERTED_GROUPS = frozenset({"derivation", "consistency"})
_NOT_STATED = ("not stated", "(not reported)", "not reported", "not measured", "(not stated")
_VERDICT_MD = {HOLDS: "holds", FAILS: "does **not** hold", INCONCLUSIVE: "is **inconclusive** at this sample size",
               NOT_EVALUATED: "could **not** be evaluated"}


def decide(estimate: float, se: float, threshold: float, *, above: bool, z: float = 2.0,
           min_ess: float | None = None, ess: float | None = None) -> bool | str | None:
    """The verdict of "``estimate`` is above (``above=True``) or below ``threshold``", judged in standard errors.

    Holds when the whole interval ``estimate ± z·se`` is on the claimed side, fails when it is entirely on the other
    side, and is :data:`INCONCLUSIVE` when it straddles the threshold, or when an effective sample size ``ess`` is
    given and is below ``min_ess`` (too few effective samples for the standard error to mean anything). ``None``
    (not evaluated) when the estimate or its standard error is not finite.

    Returns
    -------
    True, False, :data:`INCONCLUSIVE` or None
        To be passed as ``passed`` to :meth:`Results.claim`.
    """
    if not (math.isfinite(estimate) and math.isfinite(se)) or se < 0:
        return None
    if min_ess is not None and (ess is None or not math.isfinite(ess) or ess < min_ess):
        return INCONCLUSIVE
    lo, hi = estimate - z * se, estimate + z * se
    if above:
        return True if lo > threshold else (False if hi < threshold else INCONCLUSIVE)
    return True if hi < threshold else (False if lo > threshold else INCONCLUSIVE)


def all_of(verdicts: Iterable[Any]) -> bool | str | None:
    """One verdict for "all of these hold" (each True, False, :data:`INCONCLUSIVE` or None; numpy booleans
    allowed): False if one fails, else None if one was not evaluated, else :data:`INCONCLUSIVE` if one is, else
    True (also for no verdicts)."""
    vs = [bool(v) if isinstance(v, (bool, np.bool_)) else v for v in verdicts]
    if any(v is False for v in vs):
        return False
    if any(v is None for v in vs):
        return None
    if any(v == INCONCLUSIVE for v in vs):
        return INCONCLUSIVE
    return True


def mean_se(values: Any) -> tuple[float, float]:
    """Mean and standard error of the mean of a sample (array, list or tensor; float64). The standard error is
    NaN for fewer than two values (so :func:`decide` calls it not evaluated)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) == 0:
        raise ValueError("mean_se of an empty sample")
    return float(v.mean()), (float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan)


def paired_mean_se(a: Any, b: Any) -> tuple[float, float]:
    """Mean and standard error of the paired differences ``a - b`` (two aligned samples, e.g. per test image)."""
    a = a.detach().cpu().numpy() if hasattr(a, "detach") else a
    b = b.detach().cpu().numpy() if hasattr(b, "detach") else b
    return mean_se(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))


def claim_group(entry: dict[str, Any]) -> str:
    """The entry's own ``group`` (:data:`GROUPS`), else inferred (an identity is a derivation check; a claim whose
    source statement is "not stated/reported/measured" is ours; the rest are the source's)."""
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


def glue_markdown(name: str, text: str) -> None:
    """Glue ``text`` as Markdown (for ``{glue:md}``); a no-op outside a notebook build."""
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
        self.reduced_data: str | None = None  # why the run is on reduced data, if it is
        self.started: float | None = None  # time.perf_counter() at the chapter's start: finish records the minutes
        #: claim key -> how often it held over the chapter's published seed sweep (e.g. "3 of 4"), set by
        #: :meth:`vaemi.chapters.common.Chapter.start`; the glued verdict of a source or our claim then says it.
        self.seed_tally: dict[str, str] = {}

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
        """Say that the run uses reduced data (``reason``): a banner at this place of the page, and the reason in the
        results file (the scorecard and the ledger show it)."""
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
            "paper's. Put the full dataset in place (see the message printed here) and rebuild.</p></div>"))

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
        unknown = sorted(set(paper or {}) - set(values))
        if unknown:
            raise ValueError(f"record_many: paper values for keys that are not recorded: {unknown}")
        return {k: self.record(f"{prefix}{k}", v, unit=unit, paper=(paper or {}).get(k)) for k, v in values.items()}

    def claim(self, key: str, statement: str, passed: bool | str | None, *, ours: Any = None, paper: Any = None,
              kind: str = ESTIMATE, group: str | None = None, fails_if: str | None = None) -> bool:
        """Record a claim with its verdict (glued as ``key`` for ``{glue:md}``).

        Parameters
        ----------
        key : str
            Id of the claim (the glue name of its verdict; the ledger names it).
        statement : str
            The claim with its threshold ("within 3 standard errors", "by more than 2 SE").
        passed : bool, :data:`INCONCLUSIVE` or None
            Our verdict: True (holds), False (fails), :data:`INCONCLUSIVE` (the estimate cannot decide, see
            :func:`decide`), ``None`` (could not be evaluated: data missing, a non-finite value).
        ours, paper : optional
            Our value(s) and the source's number or statement. A non-finite number in ``ours`` makes the claim "not
            evaluated".
        kind : {"identity", "estimate"}
            An identity must hold exactly (it is never inconclusive); an estimate is judged in standard errors.
        group : {"derivation", "consistency", "source", "ours"}, optional
            What the claim is for (module docstring); default :func:`claim_group`.
        fails_if : str, optional
            The result that would make the claim fail, in words (shown with it; for a source claim, what our run
            would have to show to refute the source).

        Returns
        -------
        bool
            True when the claim holds.

        Raises
        ------
        AssertionError
            An identity of the derivation or consistency groups did not hold (a bug: the chapter stops here).
        """
        if kind not in (IDENTITY, ESTIMATE):
            raise ValueError(f"claim {key!r}: kind must be {IDENTITY!r} or {ESTIMATE!r}, got {kind!r}")
        group = claim_group({"group": group, "type": kind, "paper": paper}) if group is None else group
        if group not in GROUPS:
            raise ValueError(f"claim {key!r}: group must be one of {list(GROUPS)}, got {group!r}")
        if kind == IDENTITY and passed == INCONCLUSIVE:
            raise ValueError(f"claim {key!r}: an identity holds or fails; only an estimate can be inconclusive")
        if passed not in (True, False, None, INCONCLUSIVE) and not isinstance(passed, (bool, int)):
            if hasattr(passed, "item"):  # a numpy or torch boolean
                passed = bool(passed.item())
            else:
                raise TypeError(f"claim {key!r}: passed must be True, False, {INCONCLUSIVE!r} or None, got {passed!r}")
        bad: list[str] = []
        value = jsonable(ours, "$", bad)
        if passed is None or bad:
            status = NOT_EVALUATED
        elif passed == INCONCLUSIVE:
            status = INCONCLUSIVE
        else:
            status = HOLDS if bool(passed) else FAILS
        entry = {"kind": "claim", "type": kind, "group": group, "statement": statement, "status": status,
                 "passed": {HOLDS: True, FAILS: False}.get(status), "value": value, "paper": jsonable(paper),
                 "asserted": group in ASSERTED_GROUPS}
        if fails_if:
            entry["fails_if"] = fails_if
        if bad:
            entry["nonfinite"] = bad
        self.entries[key] = entry
        over_seeds = self.seed_tally.get(key) if group not in ASSERTED_GROUPS else None
        glue_markdown(key, _VERDICT_MD[status] + (f" (held at {over_seeds} seeds of the published sweep)"
                                                  if over_seeds else ""))
        if kind == IDENTITY and group in ASSERTED_GROUPS and status != HOLDS:
            raise AssertionError(f"identity {key!r} {status}: {statement} (ours: {ours!r}; paper: {paper!r})")
        return status == HOLDS

    def claims(self) -> list[dict[str, Any]]:
        """Every claim so far, as ``{"key", "type", "group", "status", "asserted", "statement", "value", "paper"}``."""
        return [{"key": k, **{f: e.get(f) for f in ("type", "group", "status", "asserted", "statement", "value", "paper")}}
                for k, e in self.entries.items() if e["kind"] == "claim"]

    def unmet(self) -> list[dict[str, Any]]:
        """The asserted claims (derivation and consistency checks) that failed. An inconclusive or unevaluated
        check is reported, not asserted; a source's claim is a verdict, never asserted."""
        return [c for c in self.claims() if c["asserted"] and c["status"] == FAILS]

    def finish(self, directory: str | Path | None = None):
        """The chapter's last step: save the results file, show every claim, and assert that every derivation and
        consistency check held (listing all that failed).

        Returns
        -------
        pandas.DataFrame
            One row per claim (key, group, kind, verdict, asserted, statement).
        """
        import pandas as pd  # only here: the table the chapter shows last

        if self.started is not None and "chapter_minutes" not in self.entries:
            self.record("chapter_minutes", (time.perf_counter() - self.started) / 60, unit="min")
        both = sorted(set(self.meta) & set(self.entries))
        if both:  # both are glued by name: the page build would stop on a duplicate glue key
            raise ValueError(f"{self.chapter!r}: {both} recorded both as an entry and as metadata (set_meta); "
                             "give them one name each")
        path = self.save(directory)
        table = pd.DataFrame([{"claim": c["key"], "group": c["group"], "kind": c["type"], "verdict": c["status"],
                               "asserted": "yes" if c["asserted"] else "no", "statement": c["statement"]}
                              for c in self.claims()])
        counts = {s: sum(c["status"] == s for c in self.claims()) for s in STATUSES}
        print(f"results written to {path.name} in the results folder; "
              + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" (of {len(table)} claims)")
        unmet = self.unmet()
        if unmet:
            _display(table)
            lines = "\n".join(f"  - {c['key']} ({c['group']}): {c['statement']}; ours: {c['value']!r}" for c in unmet)
            raise AssertionError(f"{len(unmet)} check(s) of {self.chapter!r} failed (a derivation or consistency check "
                                 f"fails only on a bug):\n{lines}")
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
