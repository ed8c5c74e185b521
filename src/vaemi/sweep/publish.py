"""Publishing a finished sweep: its small, path-free record (manifest, tables, per-run results, provenance with
the command that re-runs it) copied into the repository (:func:`publish`)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from vaemi.book.machine import machine
from vaemi.book.records import MANIFEST, format_value, repository_roots
from vaemi.sweep.plan import SweepError
from vaemi.sweep.run import write_json
from vaemi.sweep.tables import aggregate

__all__ = ["sweep_command", "publish"]


# ---------------------------------------------------------------------------------------------- the CLI
# ---------------------------------------------------------------------------------------------- publishing
def _repo_relative(path: str | None) -> str | None:
    """``path`` relative to the repository root that holds it, else its file name (never a machine path)."""
    if not path:
        return path
    p = Path(path).resolve()
    for root in repository_roots():
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            continue
    return p.name


def sweep_command(meta: dict[str, Any]) -> str:
    """The command line that re-runs a sweep, from its manifest's ``meta`` (paths relative to the repository)."""
    parts = ["python -m vaemi.sweep", _repo_relative(meta["notebook"]) or meta["chapter"]]
    for name, values in meta["grid"].items():
        parts.append("--grid " + name + "=" + ",".join(format_value(v) for v in values))
    if meta.get("profile"):
        parts.append("-f " + _repo_relative(meta["profile"]))
    for name, v in (meta.get("overrides") or {}).items():
        parts.append(f"-p {name}={format_value(v)}")
    return " ".join(parts)



def publish(out: str | Path, dest: str | Path, *, note: str = "") -> Path:
    """Copy the small, path-free record of a finished sweep into ``dest`` (to be committed).

    ``dest`` receives ``manifest.json`` (grid, parameters, status and seconds of every run; no machine paths),
    ``numbers.csv``, ``claims.csv``, ``runs/<run>.json`` (each run's results file) and ``provenance.json``
    (the command that re-runs the sweep, the commit, the date, the machine, the total and per-run time).
    The executed notebooks and the model cache stay behind.

    Parameters
    ----------
    out : str or Path
        The sweep's folder.
    dest : str or Path
        Where the record goes (created; files of an earlier record are replaced).
    note : str
        A line stored in the provenance (e.g. why the sweep was run).

    Returns
    -------
    Path
        ``dest``.
    """
    import shutil
    import subprocess

    out, dest = Path(out), Path(dest)
    meta = json.loads((out / MANIFEST).read_text())
    if not any(m["status"] in ("done", "checks failed") for m in meta["runs"]):
        raise SweepError(f"{out}: no finished run to publish")
    aggregate(out)
    (dest / "runs").mkdir(parents=True, exist_ok=True)
    for old in (dest / "runs").glob("*.json"):
        old.unlink()
    runs = []
    for m in meta["runs"]:
        f = out / m["name"] / f"{meta['chapter']}.json"
        if f.is_file():
            shutil.copyfile(f, dest / "runs" / f"{m['name']}.json")
        run = {k: m.get(k) for k in ("name", "point", "parameters", "status", "seconds", "threads", "error")}
        if run["status"] not in ("done", "checks failed", "failed"):  # the sweep was stopped before this run finished
            run["status"] = "interrupted"
        runs.append(run)
    clean = {"notebook": _repo_relative(meta["notebook"]), "chapter": meta["chapter"], "grid": meta["grid"],
             "profile": _repo_relative(meta.get("profile")), "overrides": meta.get("overrides") or {}, "runs": runs}
    write_json(dest / MANIFEST, clean)
    for name in ("numbers.csv", "claims.csv"):
        shutil.copyfile(out / name, dest / name)
    commit = os.environ.get("VAEMI_COMMIT", "")  # set where the code runs from a copy without .git
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip() or "unknown"
        except (OSError, subprocess.SubprocessError):
            commit = "unknown"
    secs = [m["seconds"] for m in runs if m["status"] in ("done", "checks failed") and m["seconds"] is not None]
    write_json(dest / "provenance.json", {
        "command": sweep_command(meta), "commit": commit, "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "runs_done": len(secs), "runs_checks_failed": sum(m["status"] == "checks failed" for m in runs),
        "runs_failed": sum(m["status"] == "failed" for m in runs),
        "seconds_total_of_runs": round(sum(secs), 1), "seconds_per_run_mean": round(sum(secs) / len(secs), 1) if secs else None,
        "note": note})
    return dest
