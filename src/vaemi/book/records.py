"""Reading results: a build's results files (:func:`load_all`) and the published records of sweeps
(``sweeps/results/<name>``: :func:`load_published`, :func:`published_dir`), with the tables the chapters show from
them (:func:`seed_robustness`, :func:`ablation_table`, :func:`format_mean_std`, :func:`ablation_provenance`).
Writing a record is :func:`vaemi.sweep.publish.publish`."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from vaemi.book.results import results_dir

__all__ = ["load_all", "published_names", "seed_sweep_tables", "MANIFEST", "SEED", "load_published", "published_dir", "seed_robustness", "ablation_table", "format_mean_std", "ablation_provenance"]


MANIFEST = "manifest.json"


SEED = "seed"


# ---------------------------------------------------------------------------------------------- input
def repository_roots() -> list[Path]:
    """Repository roots in which a chapter stem is looked up: above the current folder, then the
    checkout holding this package."""
    roots = []
    for start in (Path.cwd().resolve(), Path(__file__).resolve()):
        for q in (start, *start.parents):
            if (q / "_toc.yml").exists() and (q / "book").is_dir():
                if q not in roots:
                    roots.append(q)
                break
    return roots


def format_value(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), sort_keys=True)
    return re.sub(r"[^A-Za-z0-9._,\-\[\]+]", "_", s)


def hashable(v: Any) -> Any:
    """A grid value as a table cell: lists and mappings as compact JSON."""
    return json.dumps(v, separators=(",", ":"), sort_keys=True) if isinstance(v, (list, dict)) else v


def load_published(dest: str | Path) -> dict[str, Any]:
    """Read a record written by :func:`publish`.

    Returns
    -------
    dict
        ``numbers`` (DataFrame of ``numbers.csv``), ``claims`` (of ``claims.csv``), ``runs`` (one row per run
        and recorded number: ``run``, the grid values, ``number``, ``value``), ``manifest`` and ``provenance``.

    Raises
    ------
    FileNotFoundError
        ``dest`` holds no published sweep (the message names the command that makes one).
    """
    import pandas as pd

    dest = Path(dest)
    if not (dest / "provenance.json").is_file():
        raise FileNotFoundError(f"no published sweep in {dest.name!r}: run the sweep and publish it "
                                f"(python -m vaemi.sweep ... --out DIR --publish {dest.name})")
    manifest = json.loads((dest / MANIFEST).read_text())
    rows = []
    for m in manifest["runs"]:
        f = dest / "runs" / f"{m['name']}.json"
        if not f.is_file():
            continue
        for key, e in json.loads(f.read_text()).get("entries", {}).items():
            v = e.get("value")
            if e.get("kind") == "number" and isinstance(v, (int, float)) and not isinstance(v, bool):
                rows.append({"run": m["name"], **{k: hashable(v2) for k, v2 in m["point"].items()}, "number": key,
                             "value": float(v)})
    return {"numbers": pd.read_csv(dest / "numbers.csv"), "claims": pd.read_csv(dest / "claims.csv"),
            "runs": pd.DataFrame(rows), "manifest": manifest,
            "provenance": json.loads((dest / "provenance.json").read_text())}


# ---------------------------------------------------------------------------------------------- ablations
def published_dir(name: str) -> Path:
    """The folder of the published sweep ``name``: ``sweeps/results/<name>`` in the first repository root that
    has it (the current folder's, then this package's checkout); where none has it, the path in the first root
    (reading it then raises the error that names the command)."""
    candidates = [root / "sweeps" / "results" / name for root in repository_roots()] or [Path.cwd() / "sweeps" / "results" / name]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def seed_robustness(name: str):
    """How often each claim held over the seeds of the published sweep ``name`` (:func:`published_dir`), a sweep
    of one chapter over seeds alone (``--grid seed=...``).

    Returns
    -------
    table : DataFrame
        One row per claim in the chapter's order: ``claim``, ``held``, ``failed``, ``inconclusive``, ``not_evaluated``, ``n`` (runs
        with a results file) and ``held_of`` (e.g. ``"3 of 4"``).
    provenance : dict
        The record's ``provenance.json`` (command, commit, date, machine, seconds per run).

    Raises
    ------
    FileNotFoundError
        No such published sweep (the message names the command that makes one).
    ValueError
        The sweep varied another parameter than the seed.
    """
    rec = load_published(published_dir(name))
    claims = rec["claims"]
    if set(claims["point"]) != {"all"}:
        raise ValueError(f"sweep {name!r} varies more than the seed (points: {sorted(set(claims['point']))})")
    if "inconclusive" not in claims:  # a record published before checks could be inconclusive
        claims = claims.assign(inconclusive=0)
    table = claims[["claim", "held", "failed", "inconclusive", "not_evaluated", "n"]].reset_index(drop=True)
    table["held_of"] = [f"{h} of {n}" for h, n in zip(table["held"], table["n"])]
    return table, rec["provenance"]


def ablation_table(records: dict[str, str | Path], numbers: Sequence[str]):
    """Mean, standard deviation and seeds of ``numbers`` for every setting of several published sweeps.

    A setting is a sweep's fixed overrides (``-p``) with one point of its grid other than the seed; the
    statistics are over that point's seeds. A missing record raises :class:`FileNotFoundError` (naming the
    command that makes it).

    Parameters
    ----------
    records : dict
        Label of each sweep -> its published folder (:func:`publish`).
    numbers : sequence of str
        Recorded numbers to summarize.

    Returns
    -------
    DataFrame
        One row per setting: ``sweep``, ``setting`` (e.g. ``"arch=conv, lam=5"``; ``"base"`` when nothing is
        changed), ``parameters`` (all the run's parameters but the seed), ``n`` (runs), and per number ``<number>_mean``, ``<number>_std`` (NaN for one run) and
        ``<number>_values`` (the per-seed values, in seed order).
    """
    import pandas as pd

    rows = []
    for label, dest in records.items():
        rec = load_published(dest)
        runs, meta = rec["runs"], rec["manifest"]
        if runs.empty:
            continue
        keys = [k for k in meta["grid"] if k != SEED]
        fixed = dict(meta.get("overrides") or {})
        params = {m["name"]: m.get("parameters") or {} for m in meta["runs"]}
        groups = runs.groupby(keys, sort=True) if keys else [((), runs)]
        for point, g in groups:
            point = point if isinstance(point, tuple) else (point,)
            setting = {**fixed, **dict(zip(keys, point))}
            row: dict[str, Any] = {"sweep": label, "n": g.run.nunique(),
                                   "setting": ", ".join(f"{k}={format_value(v)}" for k, v in setting.items()) or "base",
                                   "parameters": {k: v for k, v in params.get(g.run.iloc[0], {}).items() if k != SEED}}
            for num in numbers:
                v = g[g.number == num].sort_values(SEED if SEED in g else "run").value
                row[f"{num}_mean"] = float(v.mean()) if len(v) else float("nan")
                row[f"{num}_std"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
                row[f"{num}_values"] = [float(x) for x in v]
            rows.append(row)
    return pd.DataFrame(rows)


def format_mean_std(table, numbers: Sequence[str], digits: int = 2, percent: Sequence[str] = ()):
    """``table`` of :func:`ablation_table` as text cells ``"mean ± std"`` (columns ``sweep``, ``setting``,
    ``n`` and one per number; the numbers in ``percent`` as percentages)."""
    out = table[["sweep", "setting", "n"]].copy()
    for num in numbers:
        def cell(r, num=num):
            m, s = r[f"{num}_mean"], r[f"{num}_std"]
            if num in percent:
                return f"{m:.{max(digits - 2, 0)}%}" + ("" if s != s else f" ± {100 * s:.{max(digits - 2, 0)}f}")
            return f"{m:.{digits}f}" + ("" if s != s else f" ± {s:.{digits}f}")
        out[num] = table.apply(cell, axis=1)
    return out


def ablation_provenance(records: dict[str, str | Path]):
    """Where each published sweep comes from: one row per sweep with ``sweep``, ``command`` (it re-runs the
    sweep), ``commit``, ``date``, ``machine``, ``runs_done``, ``runs_failed``, ``seconds_per_run_mean``, ``note``; a sweep
    that is not published has only ``sweep`` and ``command`` = ``"not published"``."""
    import pandas as pd

    rows = []
    for label, dest in records.items():
        try:
            p = load_published(dest)["provenance"]
        except FileNotFoundError:
            rows.append({"sweep": label, "command": "not published"})
            continue
        rows.append({"sweep": label, **{k: p.get(k) for k in ("command", "commit", "date", "machine", "runs_done",
                                                             "runs_failed", "seconds_per_run_mean", "note")}})
    return pd.DataFrame(rows)


def load_all(directory: str | Path | None = None) -> list[dict[str, Any]]:
    """Every results file in the folder, in the order of the book's table of contents (the ``_toc.yml`` of the first
    :func:`repository_roots`; chapters it does not list after the rest), else sorted by chapter id."""
    d = Path(directory) if directory is not None else results_dir()
    runs = [r for r in (json.loads(p.read_text()) for p in sorted(d.glob("*.json")))
            if isinstance(r, dict) and "chapter" in r and "entries" in r]  # not a sweep run's params.json or run.json
    roots = repository_roots()
    if roots:
        toc = (roots[0] / "_toc.yml").read_text()
        runs.sort(key=lambda r: toc.find(f"book/{r.get('chapter')}") % (len(toc) + 1))  # -1 (absent) sorts last
    return runs


def published_names() -> list[str]:
    """The names of every published sweep record (``sweeps/results/<name>`` with a provenance), sorted."""
    roots = repository_roots()
    folder = (roots[0] if roots else Path.cwd()) / "sweeps" / "results"
    return sorted(d.name for d in folder.glob("*") if (d / "provenance.json").is_file())


def seed_sweep_tables(sweeps: dict[str, str]) -> str:
    """HTML: for each chapter's seed sweep (``{chapter: record name}``), every claim and how many runs gave each
    verdict, and the record's provenance; a chapter whose record is not published says so."""
    import html

    out = []
    for chapter, name in sweeps.items():
        out.append(f"<h3 id='seeds-{html.escape(chapter)}'>{html.escape(chapter)}</h3>")
        try:
            table, prov = seed_robustness(name)
        except FileNotFoundError:
            out.append(f"<p>No seed sweep of this chapter is published yet (<code>sweeps/results/{html.escape(name)}"
                       f"</code>; make it with <code>python -m vaemi.sweep {html.escape(chapter)} --grid seed=0..3 "
                       f"--out DIR --publish sweeps/results/{html.escape(name)}</code>).</p>")
            continue
        cols = ["claim", "held", "failed", "inconclusive", "not_evaluated", "n"]
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>"
                       for _, r in table.iterrows())
        out.append(f"<p>Record <code>sweeps/results/{html.escape(name)}</code>: <code>{html.escape(prov['command'])}</code>"
                   f" (commit {html.escape(str(prov.get('commit')))}, {html.escape(str(prov.get('date')))}, "
                   f"{html.escape(str(prov.get('machine')))}; {prov.get('runs_done')} runs done, "
                   f"{prov.get('seconds_per_run_mean')} s per run).</p>")
        out.append("<table class='table seeds'><thead><tr>" + "".join(f"<th>{c}</th>" for c in cols)
                   + f"</tr></thead><tbody>{rows}</tbody></table>")
    return "\n".join(out)
