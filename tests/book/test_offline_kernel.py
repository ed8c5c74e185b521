"""A paper-scale run refuses the fallback before any work; the chapters always run on the project's own kernel.
(That every chapter runs offline on the packaged digits, with its banner and its optional sections skipped, is
tests/sweeps/test_seeds.py's offline test, at seed 3.)"""
import json
import os
import subprocess
import sys

import nbformat
import pytest

from conftest import ROOT
from vaemi.book import build as book

pytestmark = pytest.mark.slow  # kernels, builds or clusters: minutes; left out of `-m 'not slow'`


def _env(**kw):
    env = {k: v for k, v in os.environ.items() if k not in ("VAEMI_ALLOW_FALLBACK",)}
    env.update(MPLBACKEND="Agg", **kw)
    return env


def _run(nb_path, out, params, env):
    code = ("import papermill as pm, sys\n"
            "from vaemi.book.build import ensure_kernel\n"
            f"pm.execute_notebook({str(nb_path)!r}, {str(out)!r}, parameters={params!r}, kernel_name=ensure_kernel(),"
            " progress_bar=False, cwd=" + repr(str(out.parent)) + ")\n")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_paper_profile_stops_on_missing_data_before_any_work(tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    params = book.run_parameters(ROOT, "paper", ROOT / "book" / "vae_basics.ipynb")
    assert params["allow_fallback"] is False
    out = tmp_path / "out.ipynb"
    r = _run(ROOT / "book" / "vae_basics.ipynb", out, params,
             _env(VAEMI_OFFLINE="1", VAEMI_DATA=str(empty), VAEMI_RESULTS_DIR=str(tmp_path / "results")))
    assert r.returncode != 0
    assert "DatasetNotFoundError" in r.stderr and "train-images-idx3-ubyte" in r.stderr, r.stderr[-3000:]
    executed = nbformat.read(out, as_version=4)
    failing = [c for c in executed.cells if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.outputs)]
    assert len(failing) == 1 and "chapter.start(" in failing[0].source  # the set-up cell, before any data or training


def test_chapters_run_on_the_projects_kernel_not_a_user_python3(tmp_path):
    bogus = tmp_path / "jupyter" / "kernels" / "python3"
    bogus.mkdir(parents=True)
    (bogus / "kernel.json").write_text(json.dumps({"argv": ["/bin/false", "{connection_file}"],
                                                   "display_name": "someone else's Python", "language": "python"}))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys, vaemi\nprint(sys.executable)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "probe.ipynb"
    nbformat.write(nb, src)
    out = tmp_path / "probe.out.ipynb"
    r = _run(src, out, {}, _env(JUPYTER_PATH=str(tmp_path / "jupyter")))
    assert r.returncode == 0, r.stderr[-3000:]
    printed = nbformat.read(out, as_version=4).cells[0].outputs[0]["text"].strip()
    assert os.path.realpath(printed) == os.path.realpath(sys.executable)


def test_prepared_notebooks_name_the_projects_kernel(tmp_path):
    made = book.prepare(ROOT, "smoke", tmp_path, {"seed": 1})
    for p in made:
        nb = json.loads(p.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == book.KERNEL
    chapters = [p for p in made if not any(s in p.stem for s in book.SUMMARY_PAGES)]
    assert all("seed = 1" in "".join(c["source"]) for p in chapters for c in json.loads(p.read_text())["cells"]
               if "injected-parameters" in c["metadata"].get("tags", []))


def test_unknown_override_fails_with_a_hint():
    r = subprocess.run([sys.executable, "-m", "vaemi.book", "prepare", "--out", "/nonexistent", "-p", "sede=1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "did you mean 'seed'" in r.stderr
