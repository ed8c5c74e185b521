"""A sweep's input: the chapter (:func:`resolve_notebook`), the grid (:func:`parse_grid`) and the runs it makes
(:func:`plan_runs`, one per grid point, named by :func:`run_name`). Bad input raises :class:`SweepError` before
any run starts."""
from __future__ import annotations

import difflib
import itertools
import json
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from vaemi.book.build import parameter_names
from vaemi.book.records import format_value, repository_roots

__all__ = ["SweepError", "resolve_notebook", "parse_grid", "run_name", "plan_runs"]


class SweepError(ValueError):
    """Bad input to a sweep (the CLI exits with status 2 and this message, before any run starts)."""


def resolve_notebook(spec: str | Path) -> Path:
    """The chapter notebook named by ``spec``.

    Parameters
    ----------
    spec : str or Path
        A path to a notebook (``book/infovae.ipynb``) or a chapter stem (``infovae``), looked up in the
        ``book/`` folder of the repository.

    Returns
    -------
    Path
        The notebook's absolute path.

    Raises
    ------
    SweepError
        If no such notebook exists (with the closest chapter names).
    """
    p = Path(spec)
    if p.suffix == ".ipynb" and p.is_file():
        return p.resolve()
    chapters: list[str] = []
    for root in repository_roots():
        q = root / "book" / f"{p.stem if p.suffix == '.ipynb' else str(spec)}.ipynb"
        if q.is_file():
            return q.resolve()
        chapters += [c.stem for c in sorted((root / "book").glob("*.ipynb")) if c.stem not in chapters]
    chapters = [c for c in chapters if c != "scorecard"]
    close = difflib.get_close_matches(p.stem, chapters, 1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise SweepError(f"unknown notebook {str(spec)!r}{hint}; give a path to an .ipynb file or one of the "
                     f"chapters: {', '.join(chapters) or 'none found'}")


def _split_top(text: str) -> list[str]:
    """Split at the commas that are not inside brackets or braces (``[64,64],[128]`` -> two items)."""
    items, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    return items


_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


def parse_grid(items: Sequence[str] | None) -> dict[str, list[Any]]:
    """Read ``--grid`` options into ``{name: [values]}``.

    Parameters
    ----------
    items : sequence of str
        ``"NAME=V1,V2,..."`` each. Every value is read as YAML (``0.3`` -> float, ``[64, 64]`` -> list);
        ``A..B`` with integers is the inclusive range ``A, A+1, ..., B`` (``seed=0..9``).

    Returns
    -------
    dict
        Names in the order given, each with its list of values.

    Raises
    ------
    SweepError
        A malformed item (no ``=``, no name, an empty value, a value that is not YAML, a range that runs
        backwards), a name given twice, or a value repeated.
    """
    grid: dict[str, list[Any]] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SweepError(f"--grid expects NAME=V1,V2,... (or NAME=A..B), got {item!r}")
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise SweepError(f"--grid {item!r}: {name!r} is not a parameter name")
        if name in grid:
            raise SweepError(f"--grid {name!r} is given twice; list all its values in one --grid")
        values: list[Any] = []
        for token in _split_top(text):
            if not token.strip():
                raise SweepError(f"--grid {item!r}: empty value for {name!r} (expected NAME=V1,V2,... or NAME=A..B)")
            if m := _RANGE.match(token):
                a, b = int(m.group(1)), int(m.group(2))
                if b < a:
                    raise SweepError(f"--grid {item!r}: the range {a}..{b} runs backwards")
                values += list(range(a, b + 1))
                continue
            try:
                values.append(yaml.safe_load(token))
            except yaml.YAMLError as e:
                raise SweepError(f"--grid {item!r}: cannot read the value {token.strip()!r} "
                                 f"({str(e).splitlines()[0]})") from None
        keys = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(keys)) != len(keys):
            raise SweepError(f"--grid {item!r}: a value is repeated")
        grid[name] = values
    return grid


def _check_names(kind: str, names: Iterable[str], known: set[str], nb: Path) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        hints = [f"{u!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, known, 1)) else "")
                 for u in unknown]
        raise SweepError(f"{kind}: the chapter {nb.stem!r} has no parameter {', '.join(hints)}")


def run_name(point: dict[str, Any]) -> str:
    """The folder name of a run: ``lam=0.3__seed=1`` (grid parameters in grid order)."""
    return "__".join(f"{k}={format_value(v)}" for k, v in point.items()) or "run"


def plan_runs(notebook: str | Path, grid: dict[str, list[Any]], profile: str | Path | None = None,
              overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The runs of a sweep, with every input checked.

    Parameters
    ----------
    notebook : str or Path
        The chapter (path or stem, see :func:`resolve_notebook`).
    grid : dict
        ``{name: [values]}`` (see :func:`parse_grid`); the runs are the Cartesian product.
    profile : str or Path, optional
        A YAML file of parameters (``profiles/smoke/infovae.yaml``).
    overrides : dict, optional
        Parameters over the profile's (``-p NAME=VALUE``); the grid values go over both.

    Returns
    -------
    list of dict
        One per grid point: ``{"name", "point", "parameters", "notebook"}`` where ``point`` holds the
        grid values and ``parameters`` everything injected into the notebook.

    Raises
    ------
    SweepError
        An unknown notebook, an empty grid or one with no values, a profile file that is missing or not
        a mapping, or a parameter (in the grid, the profile or the overrides) that the chapter does not
        define.
    """

    nb = resolve_notebook(notebook)
    if not grid:
        raise SweepError("no --grid given: a sweep needs at least one NAME=V1,V2,... (e.g. --grid seed=0..4)")
    for k, v in grid.items():
        if not v:
            raise SweepError(f"--grid {k}: no values")
    known = parameter_names(nb)
    if not known:
        raise SweepError(f"{nb} has no cell tagged 'parameters': it cannot be swept")
    base: dict[str, Any] = {}
    if profile is not None:
        pf = Path(profile)
        if not pf.is_file():
            raise SweepError(f"-f {str(profile)!r}: no such profile file")
        try:
            base = yaml.safe_load(pf.read_text()) or {}
        except yaml.YAMLError as e:
            raise SweepError(f"-f {str(profile)!r}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(base, dict):
            raise SweepError(f"-f {str(profile)!r}: expected a mapping NAME: VALUE, got {type(base).__name__}")
        _check_names(f"-f {pf.name}", base, known, nb)
    _check_names("-p", overrides or {}, known, nb)
    _check_names("--grid", grid, known, nb)
    base.update(overrides or {})
    runs = []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        runs.append({"name": run_name(point), "point": point, "parameters": {**base, **point}, "notebook": str(nb)})
    return runs
