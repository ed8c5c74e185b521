"""The book pipeline: clean committed notebooks, the execution cache key, and a strict smoke build."""
import json
import shutil
import subprocess
import sys

import nbformat
import pytest

from conftest import ROOT
from vaemi.book import build as book


def test_committed_notebooks_have_no_outputs():
    assert book.dirty_notebooks(ROOT) == []


def test_dirty_notebook_is_detected(tmp_path):
    (tmp_path / "book").mkdir()
    nb = json.loads((ROOT / "book" / "scorecard.ipynb").read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi"}]
    code["execution_count"] = 1
    (tmp_path / "book" / "x.ipynb").write_text(json.dumps(nb))
    problems = book.dirty_notebooks(tmp_path)
    assert any("has outputs" in p for p in problems) and any("execution counts" in p for p in problems)


def test_toc_lists_the_chapters_and_the_summary_pages_last():
    nbs = [nb.stem for nb in book.notebooks(ROOT)]
    assert nbs[-len(book.SUMMARY_PAGES):] == list(book.SUMMARY_PAGES)  # executed after the chapters they summarize
    assert [nb.stem for nb in book.chapters(ROOT)] == nbs[:-len(book.SUMMARY_PAGES)]
    assert "book/vae_basics" in book.toc_files(ROOT)


def test_execution_key_tracks_notebook_parameters_and_package(tmp_path, monkeypatch):
    nb = ROOT / "book" / "vae_basics.ipynb"
    results = tmp_path / "results"
    results.mkdir()
    base = book.execution_key(ROOT, nb, {}, results)
    assert book.execution_key(ROOT, nb, {}, results) == base
    assert book.execution_key(ROOT, nb, {"epochs": 1}, results) != base
    # a change in the vaemi package changes the key (jupyter-cache would miss it)
    pkg = tmp_path / "vaemi"
    shutil.copytree(book._PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(book, "_PKG", pkg)
    assert book.execution_key(ROOT, nb, {}, results) == base
    (pkg / "models" / "vae.py").write_text((pkg / "models" / "vae.py").read_text() + "\n# changed\n")
    assert book.execution_key(ROOT, nb, {}, results) != base
    # outputs and metadata of the notebook do not matter, its cells do
    d = json.loads(nb.read_text())
    d["metadata"]["anything"] = 1
    nb2 = tmp_path / "vae_basics.ipynb"
    nb2.write_text(json.dumps(d))
    monkeypatch.setattr(book, "_PKG", book.Path(book.__file__).resolve().parents[1])
    assert book.execution_key(ROOT, nb2, {}, results) == base
    d["cells"][0]["source"] = "# changed prose"  # a Markdown cell: prose does not re-execute the chapter
    nb2.write_text(json.dumps(d))
    assert book.execution_key(ROOT, nb2, {}, results) == base
    code = next(c for c in d["cells"] if c["cell_type"] == "code")
    code["source"] = "x = 1"
    nb2.write_text(json.dumps(d))
    assert book.execution_key(ROOT, nb2, {}, results) != base


def test_prose_edit_is_copied_into_the_executed_notebook(tmp_path):
    src = json.loads((ROOT / "book" / "vae_basics.ipynb").read_text())
    executed = json.loads(json.dumps(src))
    params_at = next(i for i, c in enumerate(executed["cells"]) if "parameters" in c["metadata"].get("tags", []))
    injected = {"cell_type": "code", "metadata": {"tags": ["injected-parameters", "remove-cell"]},
                "source": "seed = 1\n", "outputs": [], "execution_count": 2}
    executed["cells"].insert(params_at + 1, injected)
    for c in executed["cells"]:
        if c["cell_type"] == "code" and c is not injected:
            c["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran"}]
    run = tmp_path / "run.ipynb"
    run.write_text(json.dumps(executed))
    source = tmp_path / "src.ipynb"
    source.write_text(json.dumps(src))
    assert not book.sync_prose(source, run)  # nothing to refresh
    src["cells"][0]["source"] = "# VAE basics, edited\n"
    src["cells"].insert(4, {"cell_type": "markdown", "metadata": {}, "source": "A new paragraph."})
    source.write_text(json.dumps(src))
    assert book.sync_prose(source, run)
    out = json.loads(run.read_text())
    assert out["cells"][0]["source"] == "# VAE basics, edited\n" and out["cells"][4 + 1]["source"] == "A new paragraph."
    assert sum("injected-parameters" in c["metadata"].get("tags", []) for c in out["cells"]) == 1
    assert all(c["outputs"] for c in out["cells"] if c["cell_type"] == "code" and c is not out["cells"][params_at + 1])
    code = next(c for c in src["cells"] if c["cell_type"] == "code" and "parameters" not in c["metadata"].get("tags", []))
    code["source"] = "changed = True"
    source.write_text(json.dumps(src))
    before = run.read_text()
    assert not book.sync_prose(source, run) and run.read_text() == before  # code changed: execute again


def test_profiles_exist_for_every_chapter_and_parse():
    import yaml

    for nb in book.chapters(ROOT):
        for profile in ("smoke", "paper"):
            f = ROOT / "profiles" / profile / f"{nb.stem}.yaml"
            assert f.exists(), f"missing {f}"
            params = yaml.safe_load(f.read_text())
            assert params["profile"] == profile


@pytest.mark.slow
def test_strict_smoke_build_of_the_whole_book(smoke_site):
    """Executes every chapter with the smoke profile and renders with warnings as errors; then a warm
    rebuild must re-execute nothing."""
    tmp_path, cmd, r = smoke_site
    # the kernel's warnings (e.g. TCP ports) are not build noise; but jupyter_client sends every kernel an interrupt
    # (SIGINT) before its shutdown request, and on a loaded machine the kernel may log that it caught it: that is
    # the shutdown of a notebook that has finished, not a problem of the build
    kernel_lines = [line for line in (r.stdout + r.stderr).splitlines()
                    if "IPKernelApp" in line and "KeyboardInterrupt caught in kernel" not in line]
    assert not kernel_lines, kernel_lines
    html = tmp_path / "_build" / "html"
    for nb in book.notebooks(ROOT):
        page = html / "book" / f"{nb.stem}.html"
        assert page.exists(), page
        text = page.read_text()
        assert "Traceback" not in text
        # every glued figure is rendered as an image
        n_figures = sum("".join(c["source"]).count("{glue:figure}") for c in json.loads(nb.read_text())["cells"])
        assert text.count("<img") >= n_figures, f"{nb.stem}: {n_figures} figures, {text.count('<img')} images"
    results = tmp_path / "_build" / "results"
    chapters = [json.loads(p.read_text()) for p in results.glob("*.json")]
    assert {c["chapter"] for c in chapters} >= {nb.stem for nb in book.chapters(ROOT)}
    for c in chapters:
        assert c["profile"] == "smoke"
        failed = [k for k, e in c["entries"].items() if e["kind"] == "claim" and e["asserted"] and e["status"] == "fails"]
        assert not failed, failed  # the build fails on any of them; a source's claim may fail (a verdict)
    # the parameters cell is collapsed, with the short table of parameters above it and the downloads at the top
    for nb in book.chapters(ROOT):
        staged = json.loads((tmp_path / "_build" / "staging" / "book" / f"{nb.stem}.ipynb").read_text())
        deco = [c for c in staged["cells"] if book.DECORATION in c["metadata"].get("tags", [])]
        assert len(deco) == 2 and "Downloads" in "".join(deco[0]["source"]) and "| `seed` |" in "".join(deco[1]["source"])
        params = next(c for c in staged["cells"] if "parameters" in c["metadata"].get("tags", []))
        assert "hide-cell" in params["metadata"]["tags"]
    # the injected parameters cell is hidden from the page
    staged = json.loads((tmp_path / "_build" / "staging" / "book" / "vae_basics.ipynb").read_text())
    injected = [c for c in staged["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and all("remove-cell" in c["metadata"]["tags"] for c in injected)
    r2 = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, (r2.stdout + r2.stderr)[-4000:]
    assert r2.stdout.count("unchanged, not re-executed") == len(book.notebooks(ROOT)), r2.stdout


def test_chapters_run_one_per_core_each_kernel_with_its_share(monkeypatch):
    """``make book`` executes the chapters side by side: one per core (at most one per chapter), each kernel with
    ``cores // jobs`` threads, never more than ``OMP_NUM_THREADS`` asks for; a job count below 1 is refused."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(book, "cores", lambda: 2)
    assert book.book_jobs(None, 5) == (2, 1)
    assert book.book_jobs(None, 1) == (1, 2)  # one chapter left: both cores for it
    assert book.book_jobs(1, 5) == (1, 2)
    monkeypatch.setattr(book, "cores", lambda: 16)
    assert book.book_jobs(None, 5) == (5, 3)
    assert book.book_jobs(4, 5) == (4, 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert book.book_jobs(4, 5) == (4, 1)
    with pytest.raises(SystemExit, match="--jobs must be at least 1"):
        book.book_jobs(0, 5)


def test_the_longest_chapters_start_first(tmp_path):
    """The expected time of a chapter is the mean time of its published seed sweep's finished runs (0 without one)."""
    d = tmp_path / "sweeps" / "results" / "variance-loss-seeds"
    d.mkdir(parents=True)
    runs = [{"status": "done", "seconds": 100.0}, {"status": "done", "seconds": 300.0},
            {"status": "failed", "seconds": 5.0}]
    (d / "manifest.json").write_text(json.dumps({"runs": runs}))
    assert book.expected_seconds(tmp_path, "variance_loss") == 200.0
    assert book.expected_seconds(tmp_path, "vimae") == 0.0


def _tiny_book(root, cells):
    """A book of one page per ``{stem: code}`` (a parameters cell, then the code), without summary pages."""
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   + "".join(f"  - file: book/{stem}\n" for stem in cells))
    (root / "_config.yml").write_text("title: tiny\n")
    (root / "references.bib").write_text("")
    for stem, code in cells.items():
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {stem}"),
                    nbformat.v4.new_code_cell("seed: int = 0  # a parameter", metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(code)]
        nbformat.write(nb, root / "book" / f"{stem}.ipynb")


@pytest.mark.slow
def test_a_failing_chapter_stops_the_build_after_the_chapters_beside_it(tmp_path, monkeypatch):
    """Two chapters executed side by side: the one whose cell fails stops the build, naming itself and its cell, and
    the one that finished is kept (executed, with its cache key), so the next build re-executes only the failure."""
    root = tmp_path / "repo"
    _tiny_book(root, {"good": "import time; time.sleep(1); print('fine')", "bad": "raise ValueError('broken on purpose')"})
    monkeypatch.setenv("VAEMI_RESULTS_DIR", str(tmp_path))  # execute() sets it; restored after the test
    monkeypatch.setenv("VAEMI_PROGRESS", "")
    with pytest.raises(SystemExit) as e:
        book.execute(root, "book", root, jobs=2)
    assert "bad failed in cell 2: ValueError: broken on purpose" in str(e.value)
    assert "good" not in str(e.value)
    staged = root / "_build" / "staging" / "book"
    good = json.loads((staged / "good.ipynb").read_text())
    assert good["metadata"]["vaemi"]["key"]
    assert "fine" in json.dumps(good["cells"][-1]["outputs"])
    assert not (staged / "bad.ipynb").exists() and (staged / "bad.running.ipynb").exists()
