"""Running a sweep: every grid point is one papermill execution of the chapter, one Dask task.

Usage (from the repository root)::

    python -m vaemi.sweep infovae --grid lam=0.5,1.0 --grid seed=0..4 -f profiles/smoke/infovae.yaml --out sweeps/lam
    python -m vaemi.sweep infovae --grid seed=0..9 --scheduler tcp://host:8786 --out sweeps/seeds

Every grid point is one papermill execution of the chapter, submitted as one Dask task
(:func:`run_one`). Without ``--scheduler`` the runs go to a :class:`distributed.LocalCluster` with one
single-threaded worker process per core (``--workers N`` to choose); with ``--scheduler ADDRESS`` they go
to an existing cluster, whose workers must see ``--out`` at the same path (a shared filesystem) and have
this package installed.

Each run lands in ``DIR/<name=value__...>/`` (executed notebook, the chapter's results file,
``params.json``, ``run.json``); ``DIR/manifest.json`` lists every run with its status, time, worker and,
for a failed run, the exception and the failing cell. Re-running the same command skips the runs that
finished. At the end, :func:`aggregate` writes ``DIR/numbers.csv`` (mean, std, n of every recorded number
per grid point), ``DIR/claims.csv`` (the claim robustness table: in how many runs each claim held, per
grid point) and ``DIR/robustness.png``.

Threads: each run's kernel gets ``OMP_NUM_THREADS = MKL_NUM_THREADS = max(1, cores // worker threads on
that host)``, so that the runs on one machine do not oversubscribe its cores. Trained models are cached
in ``DIR/_model_cache`` (``--cache`` to choose another folder, ``--cache off`` to disable), never in the
user's cache: two runs that train the same model (the plain VAE of two λ at one seed) share it.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vaemi.book.build import ensure_kernel, kernel_manager, shut_down
from vaemi.book.machine import cores
from vaemi.book.records import MANIFEST
from vaemi.sweep.plan import SweepError, plan_runs
from vaemi.sweep.tables import aggregate

__all__ = ["STATUSES", "KERNEL_START_TRIES", "is_finished", "run_one", "run_sweep"]


#: A run's status: ``checks failed`` = the chapter ran to its end with its verdicts, but a derivation or consistency
#: check failed in its last cell (its results file is there); ``failed`` = it crashed before that.
STATUSES = ("pending", "running", "done", "checks failed", "failed")
#: Variables of a Dask worker's environment that a run's kernel does not inherit. Dask's nanny sets
#: ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers (``distributed.nanny.pre-spawn-environ``); setting it turns off glibc's
#: adaptive mmap threshold, so every large tensor of a training step is mmapped, zeroed and unmapped again.
KERNEL_UNSET = ("MALLOC_TRIM_THRESHOLD_",)
#: Starts of a run's kernel before it is given up: a kernel that dies before its first cell is started again.
KERNEL_START_TRIES = 3


# ---------------------------------------------------------------------------------------------- one run
def is_finished(run_dir: str | Path, chapter: str) -> bool:
    """Whether the run in ``run_dir`` finished: its ``run.json`` says done and the chapter's results file
    is there."""
    d = Path(run_dir)
    try:
        rec = json.loads((d / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return rec.get("status") == "done" and (d / f"{chapter}.json").is_file()



def _ran_no_cell(path: Path) -> bool:
    """Whether the executed notebook at ``path`` is missing or ran no cell (its kernel died at start)."""
    try:
        cells = json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return True
    return not any(c.get("execution_count") for c in cells if c.get("cell_type") == "code")


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def run_one(notebook_json: str, chapter: str, run_dir: str, parameters: dict[str, Any], cache: str | None,
            host_threads: dict[str, int] | None = None) -> dict[str, Any]:
    """Execute one grid point with papermill (the body of one Dask task).

    Parameters
    ----------
    notebook_json : str
        The chapter notebook's JSON text (sent to the worker, so it needs no copy of the book).
    chapter : str
        The chapter's stem; it writes its results to ``<run_dir>/<chapter>.json``.
    run_dir : str
        The run's folder (created), where the executed notebook, ``params.json`` and ``run.json`` go.
    parameters : dict
        Everything injected into the notebook.
    cache : str or None
        ``VAEMI_CACHE`` of the run (a folder or ``"off"``); ``None`` keeps the worker's own.
    host_threads : dict, optional
        Worker threads per host of the cluster; a run's kernel gets
        ``max(1, cores // host_threads[this host])`` threads.

    Returns
    -------
    dict
        ``{"status": "done" | "checks failed" | "failed", "seconds", "worker", "threads", "attempts", "error"}``:
        ``checks failed`` when the chapter ran to its last cell, wrote its results and then a derivation or
        consistency check failed there (a run with verdicts); ``failed`` when it crashed before; ``error`` holds
        ``exception``, ``message``, ``cell`` (papermill's execution count) and ``cell_index``. A kernel that dies
        before its first cell is started again (:data:`KERNEL_START_TRIES`; ``attempts`` says how many starts).

    Raises
    ------
    Exception
        Anything but a failing cell (a dead kernel, a lost file system): Dask re-submits the task
        (``retries``) and the sweep records the last exception.
    """
    from urllib.parse import urlparse

    import nbformat  # only in a worker: papermill and the jupyter stack are heavy
    import papermill as pm

    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = "local"
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    for stale in (d / f"{chapter}.json", d / "run.json"):
        stale.unlink(missing_ok=True)
    write_json(d / "params.json", parameters)
    host = urlparse(worker).hostname if "://" in worker else worker
    sharing = (host_threads or {}).get(host) or 1
    threads = max(1, cores() // sharing)
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "VAEMI_RESULTS_DIR": str(d.resolve()),
           "MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    if cache is not None:
        env["VAEMI_CACHE"] = cache
    kernel = ensure_kernel()
    rec: dict[str, Any] = {"status": "running", "worker": worker, "host": host, "threads": threads,
                           "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(d / "run.json", rec)
    t0 = time.perf_counter()
    out = d / f"{chapter}.ipynb"
    for attempt in range(1, KERNEL_START_TRIES + 1):
        sockets = tempfile.mkdtemp(prefix="vaemi-k")  # short: a socket's path has at most ~100 characters
        km = kernel_manager(env, kernel, sockets, unset=KERNEL_UNSET)
        try:
            pm.execute_notebook(nbformat.reads(notebook_json, as_version=4), str(out), parameters=parameters, cwd=str(d),
                                kernel_name=kernel, progress_bar=False, log_output=False, km=km)
            rec.update(status="done", error=None)
        except pm.PapermillExecutionError as e:  # a cell failed: deterministic, not retried
            finished = (e.ename == "AssertionError" and _failed_in_last_cell(out)
                        and (d / f"{chapter}.json").is_file())
            rec.update(status="checks failed" if finished else "failed",
                       error={"exception": e.ename, "message": e.evalue, "cell": e.exec_count, "cell_index": e.cell_index})
        except Exception as e:  # noqa: BLE001  the kernel died or never answered
            if attempt < KERNEL_START_TRIES and _ran_no_cell(out):
                rec.setdefault("kernel_restarts", []).append(f"{type(e).__name__}: {e}")
                continue  # it died before its first cell: start it again
            raise
        finally:
            shut_down(km)  # nbclient shuts down only the kernels of managers it made itself: this one would linger
            shutil.rmtree(sockets, ignore_errors=True)
        break
    rec["attempts"] = attempt
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(d / "run.json", rec)
    return rec


def _failed_in_last_cell(path: Path) -> bool:
    """Whether the executed notebook at ``path`` stopped in its last code cell (the chapter's ``finish``)."""
    try:
        cells = [c for c in json.loads(path.read_text())["cells"] if c.get("cell_type") == "code"]
    except (OSError, ValueError, KeyError):
        return False
    return bool(cells) and any(o.get("output_type") == "error" for o in cells[-1].get("outputs", []))


# ---------------------------------------------------------------------------------------------- the sweep
def _connect(scheduler: str | None, workers: int | None):
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="5s"), None
        except (OSError, TimeoutError, ValueError) as e:
            raise SweepError(f"--scheduler {scheduler}: cannot reach the scheduler ({type(e).__name__}: {e})") from None
    import logging

    n = workers or cores()
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _host_threads(client) -> dict[str, int]:
    """Worker threads per host (the host of each worker's address), over the whole cluster."""
    from urllib.parse import urlparse

    try:
        info = client.scheduler_info(n_workers=-1)  # recent distributed lists 5 workers unless told
    except TypeError:
        info = client.scheduler_info()
    out: dict[str, int] = {}
    for addr, w in info.get("workers", {}).items():
        host = urlparse(addr).hostname or addr
        out[host] = out.get(host, 0) + int(w.get("nthreads", 1))
    return out


def run_sweep(notebook: str | Path, grid: dict[str, list[Any]], out: str | Path, *, profile: str | Path | None = None,
              overrides: dict[str, Any] | None = None, scheduler: str | None = None, workers: int | None = None,
              retries: int = 0, cache: str | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Run (or resume) a sweep and aggregate it.

    Parameters
    ----------
    notebook, grid, profile, overrides
        See :func:`plan_runs`.
    out : str or Path
        The sweep's folder (runs, manifest, tables).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); default: a local cluster.
    workers : int, optional
        Worker processes of the local cluster (one thread each); default: the cores of this machine.
    retries : int
        Re-submissions of a run whose task raised (a lost worker, a dead kernel); a failing cell is
        recorded, not retried.
    cache : str, optional
        ``VAEMI_CACHE`` of the runs; default ``<out>/_model_cache``.
    progress : bool
        Show a progress bar (stderr).

    Returns
    -------
    list of dict
        The manifest: one record per run (``name``, ``point``, ``parameters``, ``status``, ``seconds``,
        ``worker``, ``error``, ``skipped``).
    """
    from distributed import Client  # noqa: F401  (fail early if distributed is missing)

    if retries < 0:
        raise SweepError(f"--retries must be >= 0, got {retries}")
    if workers is not None and workers < 1:
        raise SweepError(f"--workers must be >= 1, got {workers}")
    runs = plan_runs(notebook, grid, profile, overrides)
    nb = Path(runs[0]["notebook"])
    chapter = nb.stem
    out = Path(out).resolve()
    cache = cache if cache is not None else str(out / "_model_cache")
    if cache.lower() not in ("off", "0", "false", "none"):
        cache = str(Path(cache).resolve())
    old = {}
    if (out / MANIFEST).is_file():
        try:
            old = {r["name"]: r for r in json.loads((out / MANIFEST).read_text())["runs"]}
        except (ValueError, KeyError, TypeError):
            old = {}
    manifest: list[dict[str, Any]] = []
    for r in runs:
        rec = {"name": r["name"], "point": r["point"], "parameters": r["parameters"], "status": "pending",
               "seconds": None, "worker": None, "error": None, "skipped": False}
        if is_finished(out / r["name"], chapter):
            prev = old.get(r["name"]) or {}
            rec.update(status="done", skipped=True, seconds=prev.get("seconds"), worker=prev.get("worker"))
        manifest.append(rec)
    meta = {"notebook": str(nb), "chapter": chapter, "grid": grid, "profile": str(profile) if profile else None,
            "overrides": overrides or {}, "scheduler": scheduler, "cache": cache}

    def save() -> None:
        write_json(out / MANIFEST, {**meta, "runs": manifest})

    todo = [m for m in manifest if m["status"] != "done"]
    client, cluster = _connect(scheduler, workers) if todo else (None, None)  # SweepError before any output
    out.mkdir(parents=True, exist_ok=True)
    save()
    try:
        if todo:
            _execute(client, todo, manifest, nb, chapter, out, cache, retries, progress, save)
    finally:
        save()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    if any(m["status"] == "done" for m in manifest):
        aggregate(out)
    return manifest


def _execute(client, todo, manifest, nb, chapter, out, cache, retries, progress, save) -> None:
    from tqdm.auto import tqdm

    text = nb.read_text()
    threads = _host_threads(client)
    token = f"{os.getpid()}-{time.time_ns()}"
    futures = {}
    for m in todo:
        (out / m["name"] / "run.json").unlink(missing_ok=True)  # a stale "running" of a killed sweep
        key = f"vaemi-sweep-{m['name']}-{token}"
        futures[key] = (client.submit(run_one, text, chapter, str(out / m["name"]), m["parameters"], cache, threads,
                                      key=key, pure=False, retries=retries), m)
    total = len(manifest)
    done0 = sum(m["status"] == "done" for m in manifest)
    bar = tqdm(total=total, initial=done0, desc=f"sweep {chapter}", unit="run", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    pending = dict(futures)
    last_poll = 0.0
    try:
        while pending:
            changed = False
            for key, (fut, m) in list(pending.items()):
                if not fut.done():
                    continue
                del pending[key]
                if fut.status == "finished":
                    rec = fut.result()
                    m.update(status=rec["status"], seconds=rec.get("seconds"), worker=rec.get("worker"),
                             threads=rec.get("threads"), error=rec.get("error"))
                else:
                    exc = fut.exception()
                    m.update(status="failed", error={"exception": type(exc).__name__, "message": str(exc),
                                                     "cell": None, "cell_index": None})
                bar.update(1)
                changed = True
            now = time.monotonic()
            if pending and now - last_poll > 1.0:  # running: run_one has written run.json in its folder
                last_poll = now
                for fut, m in pending.values():
                    try:
                        rec = json.loads((out / m["name"] / "run.json").read_text())
                    except (OSError, ValueError):
                        continue
                    if rec.get("status") == "running" and m["status"] != "running":
                        m.update(status="running", worker=rec.get("worker"))
                        changed = True
            if changed:
                save()
                counts = {s: sum(x["status"] == s for x in manifest) for s in ("done", "checks failed", "failed", "running")}
                bar.set_postfix(counts, refresh=True)
            if pending:
                time.sleep(0.25)
    except KeyboardInterrupt:
        for fut, m in pending.values():  # noqa: B007
            fut.cancel()
            m.update(status="pending", worker=None)
        raise
    finally:
        bar.close()
