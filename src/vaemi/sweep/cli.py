"""The command line ``python -m vaemi.sweep`` (see :mod:`vaemi.sweep.run` for what a sweep does)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from vaemi.book.build import parse_overrides
from vaemi.book.records import MANIFEST
from vaemi.sweep.plan import SweepError, parse_grid
from vaemi.sweep.publish import publish
from vaemi.sweep.run import run_sweep
from vaemi.sweep.tables import aggregate

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vaemi.sweep",
        description="Run a chapter over a grid of parameters and seeds on Dask, and report how often each "
                    "claim holds.")
    p.add_argument("notebook", help="the chapter: a path (book/infovae.ipynb) or a stem (infovae)")
    p.add_argument("--grid", action="append", metavar="NAME=V1,V2,...",
                   help="a swept parameter; values read as YAML, A..B = the integers A to B (repeat per parameter)")
    p.add_argument("-f", "--profile", metavar="PROFILE.yaml", help="parameters from a YAML file (profiles/smoke/X.yaml)")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="a fixed parameter (over the profile's)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://host:8786")
    where.add_argument("--workers", type=int, metavar="N", help="worker processes of the local cluster (default: cores)")
    p.add_argument("--retries", type=int, default=0, metavar="K", help="re-submissions of a run whose task was lost")
    p.add_argument("--cache", metavar="DIR|off", help="VAEMI_CACHE of the runs (default: OUT/_model_cache)")
    p.add_argument("--plot-number", metavar="NAME", help="the number drawn against the swept parameter")
    p.add_argument("--out", required=True, metavar="DIR", help="the sweep's folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--publish", metavar="DEST", help="then copy the small, path-free record (manifest, tables, "
                                                     "per-run results, provenance) into DEST, to be committed")
    p.add_argument("--note", default="", help="a line stored in the published provenance")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring). Returns 0 when every run is done, 1 when some
    crashed or finished with a failed check; bad input exits with status 2 before any run starts."""
    parser = _parser()
    a = parser.parse_args(argv)
    try:

        try:
            overrides = parse_overrides(a.param)
        except SystemExit as e:  # parse_overrides reports with SystemExit(message)
            raise SweepError(str(e.code)) from None
        grid = parse_grid(a.grid)
        manifest = run_sweep(a.notebook, grid, a.out, profile=a.profile, overrides=overrides, scheduler=a.scheduler,
                             workers=a.workers, retries=a.retries, cache=a.cache, progress=not a.no_progress)
    except SweepError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    out = Path(a.out)
    if a.plot_number and any(m["status"] == "done" for m in manifest):
        aggregate(out, number=a.plot_number)
    done = [m for m in manifest if m["status"] == "done"]
    failed = [m for m in manifest if m["status"] == "failed"]
    checks = [m for m in manifest if m["status"] == "checks failed"]
    skipped = sum(m["skipped"] for m in manifest)
    print(f"[sweep] {len(done)} of {len(manifest)} runs done ({skipped} from before), {len(checks)} finished with a failed "
          f"check, {len(failed)} crashed; "
          f"manifest: {out / MANIFEST}")
    for m in checks + failed:
        e = m["error"] or {}
        cell = f" in cell {e['cell']}" if e.get("cell") is not None else ""
        what = "finished, a check failed" if m["status"] == "checks failed" else "crashed"
        print(f"[sweep] {what}: {m['name']}{cell}: {e.get('exception')}: {e.get('message')}")
    if done or checks:
        print(f"[sweep] tables: {out / 'numbers.csv'}, {out / 'claims.csv'}; plot: {out / 'robustness.png'}")
        if a.publish:
            print(f"[sweep] published: {publish(out, a.publish, note=a.note)}")
    return 1 if failed or checks else 0
