"""A fresh offline machine builds the whole book on the packaged digits (banner on every chapter, claims
that need the full data reported with their verdicts); a paper-scale run refuses the fallback before any work;
the chapters always run on the project's own kernel."""
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


def test_offline_smoke_build_on_the_packaged_digits_with_an_untuned_seed(tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    out = tmp_path / "site"
    cmd = [sys.executable, "-m", "vaemi.book", "build", "--profile", "smoke", "-p", "seed=3", "--out", str(out)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env=_env(VAEMI_OFFLINE="1", VAEMI_DATA=str(empty), VAEMI_CACHE="off"))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    html = out / "_build" / "html" / "book"
    chapters = [nb.stem for nb in book.chapters(ROOT)]
    for stem in chapters:
        page = (html / f"{stem}.html").read_text()
        assert "Built on reduced data" in page, f"{stem}: no reduced-data banner"
        assert str(empty) not in page and str(tmp_path) not in page, f"{stem}: a path of this machine on the page"
        res = json.loads((out / "_build" / "results" / f"{stem}.json").read_text())
        assert res["meta"]["reduced_data"] and res["params"]["seed"] == 3
        claims = [e for e in res["entries"].values() if e["kind"] == "claim"]
        assert all(not e["asserted"] or e["status"] != "fails" for e in claims)  # the build asserted them
    assert (html / f"{book.SCORECARD}.html").read_text().count("REDUCED DATA") >= len(chapters)
    vmim = json.loads((out / "_build" / "results" / "vmim.json").read_text())
    assert vmim["entries"]["fashion_status"]["value"] == "missing"  # the optional dataset's section is skipped
    assert {vmim["entries"][k]["status"] for k in ("fashion_marginal_beats_elbo", "fashion_thesis_beats_elbo")} == {"not evaluated"}
    vl = json.loads((out / "_build" / "results" / "variance_loss.json").read_text())
    assert vl["entries"]["fig4_datasets_missing"]["value"] == "fashion_mnist"  # Fig. 4 runs on what is there
    assert "FASHION-MNIST IS NOT AVAILABLE" in (html / "variance_loss.html").read_text()


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
