"""Sweeps of a chapter over a grid of parameters and seeds, on a Dask cluster.

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

import argparse
import difflib
import itertools
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

__all__ = ["SweepError", "resolve_notebook", "parse_grid", "plan_runs", "run_name", "run_one", "run_sweep",
           "aggregate", "plot_robustness", "is_finished", "publish", "load_published", "sweep_command", "main",
           "published_dir", "ablation_table", "format_mean_std", "ablation_provenance", "seed_robustness"]

MANIFEST = "manifest.json"
SEED = "seed"
STATUSES = ("pending", "running", "done", "failed")


class SweepError(ValueError):
    """Bad input to a sweep (the CLI exits with status 2 and this message, before any run starts)."""


# ---------------------------------------------------------------------------------------------- input
def _roots() -> list[Path]:
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
    for root in _roots():
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


def _format_value(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), sort_keys=True)
    return re.sub(r"[^A-Za-z0-9._,\-\[\]+]", "_", s)


def run_name(point: dict[str, Any]) -> str:
    """The folder name of a run: ``lam=0.3__seed=1`` (grid parameters in grid order)."""
    return "__".join(f"{k}={_format_value(v)}" for k, v in point.items()) or "run"


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
    from .tooling.book import parameter_names

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


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _kernel_manager(env: dict[str, str], kernel_name: str):
    """An async kernel manager whose kernel starts with ``env`` added to this process's environment
    (papermill gives no way to pass an environment; ``os.environ`` is shared by a worker's threads)."""
    from jupyter_client.manager import AsyncKernelManager

    class _EnvKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):  # type: ignore[override]
            full = dict(kw.pop("env", None) or os.environ)
            full.update(env)
            return await super().start_kernel(env=full, **kw)

    return _EnvKernelManager(kernel_name=kernel_name)


def _write_json(path: Path, obj: Any) -> None:
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
        ``{"status": "done" | "failed", "seconds", "worker", "threads", "error"}``; ``error`` (failed runs)
        holds ``exception``, ``message``, ``cell`` (papermill's execution count) and ``cell_index``.

    Raises
    ------
    Exception
        Anything but a failing cell (a dead kernel, a lost file system): Dask re-submits the task
        (``retries``) and the sweep records the last exception.
    """
    from urllib.parse import urlparse

    import nbformat
    import papermill as pm

    from .tooling.book import ensure_kernel

    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = "local"
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    for stale in (d / f"{chapter}.json", d / "run.json"):
        stale.unlink(missing_ok=True)
    _write_json(d / "params.json", parameters)
    host = urlparse(worker).hostname if "://" in worker else worker
    sharing = (host_threads or {}).get(host) or 1
    threads = max(1, _cores() // sharing)
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "VAEMI_RESULTS_DIR": str(d.resolve()),
           "MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    if cache is not None:
        env["VAEMI_CACHE"] = cache
    kernel = ensure_kernel()
    rec: dict[str, Any] = {"status": "running", "worker": worker, "host": host, "threads": threads,
                           "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write_json(d / "run.json", rec)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(nbformat.reads(notebook_json, as_version=4), str(d / f"{chapter}.ipynb"),
                            parameters=parameters, cwd=str(d), kernel_name=kernel, progress_bar=False,
                            log_output=False, km=_kernel_manager(env, kernel))
        rec.update(status="done", error=None)
    except pm.PapermillExecutionError as e:  # the chapter failed: deterministic, not retried
        rec.update(status="failed", error={"exception": e.ename, "message": e.evalue, "cell": e.exec_count,
                                           "cell_index": e.cell_index})
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    _write_json(d / "run.json", rec)
    return rec


# ---------------------------------------------------------------------------------------------- the sweep
def _connect(scheduler: str | None, workers: int | None):
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="5s"), None
        except (OSError, TimeoutError, ValueError) as e:
            raise SweepError(f"--scheduler {scheduler}: cannot reach the scheduler ({type(e).__name__}: {e})") from None
    import logging

    n = workers or _cores()
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
        _write_json(out / MANIFEST, {**meta, "runs": manifest})

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
                counts = {s: sum(x["status"] == s for x in manifest) for s in ("done", "failed", "running")}
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


# ---------------------------------------------------------------------------------------------- tables
def _grid_names(meta: dict[str, Any]) -> tuple[list[str], list[str]]:
    names = list(meta.get("grid", {}))
    return names, [n for n in names if n != SEED]


def _hashable(v: Any) -> Any:
    """A grid value as a table cell: lists and mappings as compact JSON."""
    return json.dumps(v, separators=(",", ":"), sort_keys=True) if isinstance(v, (list, dict)) else v


def _point_label(row: dict[str, Any], names: Sequence[str]) -> str:
    return ", ".join(f"{n}={row[n]}" for n in names) or "all"


def aggregate(out: str | Path, number: str | None = None) -> dict[str, Any]:
    """Aggregate a sweep's runs into ``numbers.csv``, ``claims.csv`` and ``robustness.png``.

    Only runs whose folder holds the chapter's results file count (a run that failed before the chapter
    saved its results does not).

    Parameters
    ----------
    out : str or Path
        The sweep's folder (with ``manifest.json``).
    number : str, optional
        The number drawn against the first swept non-seed parameter in ``robustness.png``; default: the
        first number whose mean changes along the grid.

    Returns
    -------
    dict
        ``{"numbers": DataFrame, "claims": DataFrame, "runs": int, "plot": Path or None}``. ``numbers``:
        one row per grid point and number, with ``mean``, ``std`` (ddof 1; empty when n = 1) and ``n``.
        ``claims``: one row per grid point and claim, with ``held``, ``failed``, ``not_evaluated``,
        ``missing`` (runs without the claim), ``n`` (runs with results) and ``share_held``.
    """
    import pandas as pd

    out = Path(out)
    meta = json.loads((out / MANIFEST).read_text())
    chapter = meta["chapter"]
    names, point_names = _grid_names(meta)
    nums, claims, n_runs = [], [], {}
    for m in meta["runs"]:
        f = out / m["name"] / f"{chapter}.json"
        if not f.is_file():
            continue
        res = json.loads(f.read_text())
        point = {k: _hashable(m["point"][k]) for k in point_names}
        label = _point_label(point, point_names)
        n_runs[label] = n_runs.get(label, 0) + 1
        for key, e in res.get("entries", {}).items():
            if e.get("kind") == "number":
                v = e.get("value")
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    nums.append({"point": label, **point, "number": key, "value": float(v)})
            elif e.get("kind") == "claim":
                claims.append({"point": label, **point, "claim": key, "status": e.get("status"),
                               "statement": e.get("statement")})
    keys = ["point", *point_names]
    if nums:
        nt = pd.DataFrame(nums)
        numbers = (nt.groupby(keys + ["number"], sort=False, dropna=False)["value"]
                   .agg(mean="mean", std="std", n="count").reset_index())
    else:
        numbers = pd.DataFrame(columns=keys + ["number", "mean", "std", "n"])
    rows = []
    if claims:
        ct = pd.DataFrame(claims)
        for (label, claim), g in ct.groupby(["point", "claim"], sort=False):
            n = n_runs[label]
            held = int((g.status == "holds").sum())
            rows.append({"point": label, **{k: g.iloc[0][k] for k in point_names}, "claim": claim,
                         "held": held, "failed": int((g.status == "fails").sum()),
                         "not_evaluated": int((g.status == "not evaluated").sum()), "missing": n - len(g), "n": n,
                         "share_held": held / n, "statement": g.iloc[0].statement})
    claims_t = pd.DataFrame(rows, columns=keys + ["claim", "held", "failed", "not_evaluated", "missing", "n",
                                                  "share_held", "statement"])
    numbers.to_csv(out / "numbers.csv", index=False)
    claims_t.to_csv(out / "claims.csv", index=False)
    plot = plot_robustness(out, claims_t, numbers, point_names, number) if len(claims_t) or len(numbers) else None
    return {"numbers": numbers, "claims": claims_t, "runs": sum(n_runs.values()), "plot": plot}


def _default_number(numbers, param: str) -> str | None:
    skip = re.compile(r"(_minutes|_used|_n|_shown)$")
    for name, g in numbers.groupby("number", sort=False):
        if skip.search(name) or len(g) < 2:
            continue
        if g["mean"].nunique() > 1:
            return name
    return None


def plot_robustness(out: str | Path, claims, numbers, point_names: Sequence[str], number: str | None = None) -> Path:
    """Draw ``robustness.png``: the share of runs in which each claim held, per grid point (a heatmap
    annotated ``held/n``), and, when a numeric non-seed parameter is swept, one number (mean ± std over
    the seeds) against it.

    Parameters
    ----------
    out : str or Path
        The sweep's folder.
    claims, numbers : pandas.DataFrame
        The tables of :func:`aggregate`.
    point_names : sequence of str
        The swept parameters other than the seed.
    number : str, optional
        The number to draw; default: the first that changes along the grid.

    Returns
    -------
    Path
        The PNG written.
    """
    import numpy as np
    import pandas as pd
    import seaborn as sns
    from matplotlib.figure import Figure

    param = next((p for p in point_names
                  if pd.api.types.is_numeric_dtype(numbers[p]) and numbers[p].nunique() > 1), None) \
        if len(numbers) else None
    if param is not None and number is None:
        number = _default_number(numbers, param)
    two = param is not None and number is not None and number in set(numbers["number"])
    n_claims = max(1, claims["claim"].nunique()) if len(claims) else 1
    n_points = max(1, claims["point"].nunique()) if len(claims) else 1
    fig = Figure(figsize=(max(5.0, 1.3 * n_points + 4.5) + (5.0 if two else 0), 1.2 + 0.32 * n_claims))
    axes = fig.subplots(1, 2 if two else 1, squeeze=False, gridspec_kw={"width_ratios": [1.3, 1] if two else [1]})[0]
    ax = axes[0]
    if len(claims):
        share = claims.pivot_table(index="claim", columns="point", values="share_held", sort=False)
        share = share[list(dict.fromkeys(claims["point"]))]
        held = claims.pivot_table(index="claim", columns="point", values="held", sort=False).reindex_like(share)
        n = claims.pivot_table(index="claim", columns="point", values="n", sort=False).reindex_like(share)
        annot = held.astype(int).astype(str) + "/" + n.astype(int).astype(str)
        sns.heatmap(share, ax=ax, vmin=0, vmax=1, cmap="RdYlGn", annot=annot.values, fmt="", cbar=True,
                    cbar_kws={"label": "share of runs in which the claim held"}, linewidths=0.5)
        ax.set_xlabel(", ".join(point_names) if point_names else "all runs")
        ax.set_ylabel("")
        ax.set_title("claim robustness: runs in which each claim held")
    if two:
        g = numbers[numbers["number"] == number].sort_values(param)
        ax2 = axes[1]
        others = [p for p in point_names if p != param]
        for label, gg in (g.groupby(others, sort=False) if others else [("", g)]):
            ax2.errorbar(gg[param], gg["mean"], yerr=np.nan_to_num(gg["std"].to_numpy(dtype=float)), marker="o",
                         capsize=4, label=str(label) if others else None)
        if others:
            ax2.legend(title=", ".join(others))
        ax2.set_xlabel(param)
        ax2.set_ylabel(number)
        ax2.set_title(f"{number}: mean ± std over seeds (n = {int(g['n'].max())})")
    fig.tight_layout()
    path = Path(out) / "robustness.png"
    fig.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------------------------------------- the CLI
# ---------------------------------------------------------------------------------------------- publishing
def _repo_relative(path: str | None) -> str | None:
    """``path`` relative to the repository root that holds it, else its file name (never a machine path)."""
    if not path:
        return path
    p = Path(path).resolve()
    for root in _roots():
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            continue
    return p.name


def sweep_command(meta: dict[str, Any]) -> str:
    """The command line that re-runs a sweep, from its manifest's ``meta`` (paths relative to the repository)."""
    parts = ["python -m vaemi.sweep", _repo_relative(meta["notebook"]) or meta["chapter"]]
    for name, values in meta["grid"].items():
        parts.append("--grid " + name + "=" + ",".join(_format_value(v) for v in values))
    if meta.get("profile"):
        parts.append("-f " + _repo_relative(meta["profile"]))
    for name, v in (meta.get("overrides") or {}).items():
        parts.append(f"-p {name}={_format_value(v)}")
    return " ".join(parts)


def _machine() -> str:
    """The machine in words (processor, cores, accelerator), without its name or any path."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    words = f"{_cores()} cores ({cpu})"
    try:
        import torch

        if torch.cuda.is_available():
            words += f", {torch.cuda.get_device_name(0)}"
        words += f"; torch {torch.__version__}"
    except ImportError:
        pass
    return words


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
    if not any(m["status"] == "done" for m in meta["runs"]):
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
        if run["status"] not in ("done", "failed"):  # the sweep was stopped before this run finished
            run["status"] = "interrupted"
        runs.append(run)
    clean = {"notebook": _repo_relative(meta["notebook"]), "chapter": meta["chapter"], "grid": meta["grid"],
             "profile": _repo_relative(meta.get("profile")), "overrides": meta.get("overrides") or {}, "runs": runs}
    _write_json(dest / MANIFEST, clean)
    for name in ("numbers.csv", "claims.csv"):
        shutil.copyfile(out / name, dest / name)
    commit = os.environ.get("VAEMI_COMMIT", "")  # set where the code runs from a copy without .git
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip() or "unknown"
        except (OSError, subprocess.SubprocessError):
            commit = "unknown"
    secs = [m["seconds"] for m in runs if m["status"] == "done" and m["seconds"] is not None]
    _write_json(dest / "provenance.json", {
        "command": sweep_command(meta), "commit": commit, "date": time.strftime("%Y-%m-%d"), "machine": _machine(),
        "runs_done": len(secs), "runs_failed": sum(m["status"] == "failed" for m in runs),
        "seconds_total_of_runs": round(sum(secs), 1), "seconds_per_run_mean": round(sum(secs) / len(secs), 1) if secs else None,
        "note": note})
    return dest


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
                rows.append({"run": m["name"], **{k: _hashable(v2) for k, v2 in m["point"].items()}, "number": key,
                             "value": float(v)})
    return {"numbers": pd.read_csv(dest / "numbers.csv"), "claims": pd.read_csv(dest / "claims.csv"),
            "runs": pd.DataFrame(rows), "manifest": manifest,
            "provenance": json.loads((dest / "provenance.json").read_text())}


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
    failed; bad input exits with status 2 before any run starts."""
    parser = _parser()
    a = parser.parse_args(argv)
    try:
        from .tooling.book import parse_overrides

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
    skipped = sum(m["skipped"] for m in manifest)
    print(f"[sweep] {len(done)} of {len(manifest)} runs done ({skipped} from before), {len(failed)} failed; "
          f"manifest: {out / MANIFEST}")
    for m in failed:
        e = m["error"] or {}
        cell = f" in cell {e['cell']}" if e.get("cell") is not None else ""
        print(f"[sweep] failed: {m['name']}{cell}: {e.get('exception')}: {e.get('message')}")
    if done:
        print(f"[sweep] tables: {out / 'numbers.csv'}, {out / 'claims.csv'}; plot: {out / 'robustness.png'}")
        if a.publish:
            print(f"[sweep] published: {publish(out, a.publish, note=a.note)}")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------- ablations
def published_dir(name: str) -> Path:
    """The folder of the published sweep ``name``: ``sweeps/results/<name>`` in the first repository root that
    has it (the current folder's, then this package's checkout); where none has it, the path in the first root
    (reading it then raises the error that names the command)."""
    candidates = [root / "sweeps" / "results" / name for root in _roots()] or [Path.cwd() / "sweeps" / "results" / name]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def seed_robustness(name: str):
    """How often each claim held over the seeds of the published sweep ``name`` (:func:`published_dir`), a sweep
    of one chapter over seeds alone (``--grid seed=...``).

    Returns
    -------
    table : DataFrame
        One row per claim in the chapter's order: ``claim``, ``held``, ``failed``, ``not_evaluated``, ``n`` (runs
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
    table = claims[["claim", "held", "failed", "not_evaluated", "n"]].reset_index(drop=True)
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
                                   "setting": ", ".join(f"{k}={_format_value(v)}" for k, v in setting.items()) or "base",
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


if __name__ == "__main__":
    from vaemi.sweep import main as _main  # the importable module, so that Dask pickles vaemi.sweep.run_one

    sys.exit(_main())
