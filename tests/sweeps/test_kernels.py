"""Sweep runs never die at kernel start, and a run that finished with its verdicts is told from a run that crashed
(issues: a run died as its kernel started on a loaded 16-worker machine; a crashed run and a run whose last-cell
assertions failed were both 'failed')."""
import json
from concurrent.futures import ProcessPoolExecutor

import nbformat
import pytest

from vaemi.sweep import run

pytestmark = pytest.mark.slow  # starts 40 kernels and a few papermill runs: about a minute


def _notebook(*sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "vaemi", "display_name": "Python (vaemi)", "language": "python"}
    return nbformat.writes(nb)


def _one(args):
    folder, i = args
    return run.run_one(_notebook("x = 0", "import os\nprint(os.getpid())"), "probe", f"{folder}/run{i}", {"x": i}, "off")


def test_eight_kernels_started_at_once_five_times_never_fail(tmp_path):
    for round_ in range(5):
        with ProcessPoolExecutor(8) as pool:  # eight worker processes, as a sweep's local cluster has
            recs = list(pool.map(_one, [(tmp_path / f"round{round_}", i) for i in range(8)]))
        assert [r["status"] for r in recs] == ["done"] * 8, recs
        assert all(r["attempts"] == 1 and "kernel_restarts" not in r for r in recs), recs  # no start was lost


def test_a_run_that_finished_with_a_failed_check_is_not_a_crash(tmp_path):
    write = "import json, os\njson.dump({'chapter': 'probe', 'entries': {}}, open(os.environ['VAEMI_RESULTS_DIR'] + '/probe.json', 'w'))"
    rec = run.run_one(_notebook("x = 0", write, "raise AssertionError('1 check failed')"), "probe", str(tmp_path / "a"), {}, "off")
    assert rec["status"] == "checks failed" and rec["error"]["exception"] == "AssertionError"
    rec = run.run_one(_notebook("x = 0", "raise ValueError('broken')", write), "probe", str(tmp_path / "b"), {}, "off")
    assert rec["status"] == "failed" and rec["error"]["exception"] == "ValueError"
    rec = run.run_one(_notebook("x = 0", "raise AssertionError('not the last cell')", write), "probe", str(tmp_path / "c"), {}, "off")
    assert rec["status"] == "failed"  # an assertion before the last cell: the chapter did not finish
    assert json.loads((tmp_path / "a" / "run.json").read_text())["status"] == "checks failed"


def _kernels():
    import psutil  # a dependency of Dask's distributed

    return [p.pid for p in psutil.Process().children(recursive=True) if "ipykernel_launcher" in " ".join(p.cmdline())]


def test_a_run_leaves_no_kernel_behind(tmp_path):
    """A worker runs many grid points one after another: each run's kernel (a chapter's holds ~1 GB) must stop when
    the run ends, whether it finished or a cell failed, not linger until the worker exits."""
    before = _kernels()
    assert run.run_one(_notebook("x = 0", "print(1)"), "probe", str(tmp_path / "ok"), {}, "off")["status"] == "done"
    assert run.run_one(_notebook("x = 0", "raise ValueError('broken')"), "probe", str(tmp_path / "bad"), {}, "off")["status"] == "failed"
    assert _kernels() == before


def test_a_run_does_not_inherit_the_dask_workers_malloc_setting(tmp_path, monkeypatch):
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers; a run's kernel that inherited it trained a conv VAE
    1.5x slower (benchmarks/malloc_trim.py). The kernel gets the rest of the worker's environment."""
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("VAEMI_PROBE", "kept")
    probe = ("import json, os\njson.dump({'chapter': 'probe', 'entries': {k: os.environ.get(k) for k in "
             "('MALLOC_TRIM_THRESHOLD_', 'VAEMI_PROBE')}}, open(os.environ['VAEMI_RESULTS_DIR'] + '/probe.json', 'w'))")
    assert run.run_one(_notebook("x = 0", probe), "probe", str(tmp_path / "env"), {}, "off")["status"] == "done"
    seen = json.loads((tmp_path / "env" / "probe.json").read_text())["entries"]
    assert seen == {"MALLOC_TRIM_THRESHOLD_": None, "VAEMI_PROBE": "kept"}
