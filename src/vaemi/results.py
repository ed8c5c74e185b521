"""Numbers and claims of a chapter: glued into the page and written to a results file.

Each chapter creates one :class:`Results`. ``record`` stores a number (optionally beside the
paper's) and glues it for ``{glue:text}`` in the text; ``claim`` does the same for a statement of
the paper and *asserts* it. Claims that only hold at the book/paper scale can be made with
``strict=False`` in the smoke profile: they are then recorded as passed/failed without stopping
the run. ``save`` writes ``<results dir>/<chapter>.json``, which the scorecard page collects.

The results folder is ``$VAEMI_RESULTS_DIR`` (the book build sets ``_build/results``), else
``./results``.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["Results", "results_dir", "load_all"]


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


def _glue_verdict(name: str, passed: bool) -> None:
    """Glue a claim's verdict as Markdown, for ``{glue:md}`name``` in the text."""
    try:
        from IPython.display import Markdown
    except ImportError:
        return
    _glue(name, Markdown("holds" if passed else "does **not** hold"))


def _plain(value: Any) -> Any:
    """Convert numpy/torch scalars to plain Python for JSON."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


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
        self.params = _plain(dict(params))
        self.entries: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, Any] = {}

    def set_meta(self, **kw: Any) -> None:
        """Free-form facts about the run (dataset source, device, timings)."""
        self.meta.update(_plain(kw))
        for k, v in kw.items():
            _glue(k, _plain(v))

    def record(self, key: str, value: Any, *, paper: Any = None, description: str = "", unit: str = "") -> Any:
        """Store ``value`` under ``key``, glue it, and return it."""
        value = _plain(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"result {key!r} is not finite ({value}); the run went wrong")
        self.entries[key] = {"kind": "number", "value": value, "paper": _plain(paper),
                             "description": description, "unit": unit}
        _glue(key, value)
        return value

    def claim(self, key: str, statement: str, passed: bool, *, ours: Any = None, paper: Any = None,
              strict: bool = True) -> bool:
        """Record a claim; raise ``AssertionError`` if it fails and ``strict``."""
        passed = bool(passed)
        self.entries[key] = {"kind": "claim", "statement": statement, "passed": passed,
                             "value": _plain(ours), "paper": _plain(paper), "strict": bool(strict)}
        _glue_verdict(key, passed)
        if not passed and strict:
            raise AssertionError(f"claim {key!r} failed: {statement} (ours: {ours!r}; paper: {paper!r})")
        return passed

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "chapter": self.chapter, "title": self.title, "profile": self.profile, "params": self.params,
            "meta": self.meta, "entries": self.entries,
            "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(),
        }

    def save(self, directory: str | Path | None = None) -> Path:
        """Write ``<directory>/<chapter>.json`` (atomically) and return its path."""
        d = Path(directory) if directory is not None else results_dir()
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{self.chapter}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False))
        os.replace(tmp, path)
        return path


def load_all(directory: str | Path | None = None) -> list[dict[str, Any]]:
    """Every results file in the folder, sorted by chapter id."""
    d = Path(directory) if directory is not None else results_dir()
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))]
