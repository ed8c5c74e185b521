"""Sweeps on Dask (issue 12): real clusters, real papermill runs of the infovae chapter at the smoke profile.

One 2 x 2 sweep (lam x seed, a LocalCluster with 2 workers, through the command line) is shared by the
tests; the others reuse its model cache, so that their runs load the trained weights instead of training.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from vaemi.book import records
from vaemi.book.machine import cores
from vaemi.sweep import cli, plan, publish, run, tables

pytestmark = pytest.mark.slow  # kernels, builds or clusters: minutes; left out of `-m 'not slow'`

PROFILE = str(ROOT / "profiles" / "smoke" / "infovae.yaml")
GRID = ["--grid", "lam=0.5,1.0", "--grid", "seed=2,4"]  # seeds that no other test uses: a run that stops there fails
RUNS = ["lam=0.5__seed=2", "lam=0.5__seed=4", "lam=1.0__seed=2", "lam=1.0__seed=4"]


def _env() -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND="Agg", PYDEVD_DISABLE_FILE_VALIDATION="1")
    shared = ROOT.parent / "shared" / "data"
    if "VAEMI_DATA" not in env and (shared / "MNIST" / "raw").exists():
        env["VAEMI_DATA"] = str(shared)
    return env


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The 2 x 2 smoke sweep, run once through ``python -m vaemi.sweep``: ``(out, completed process)``."""
    out = tmp_path_factory.mktemp("sweep") / "lam"
    cmd = [sys.executable, "-m", "vaemi.sweep", "infovae", *GRID, "-f", PROFILE, "--workers", "2", "--out", str(out)]
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    return out, r


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _results(out: Path, name: str) -> dict:
    return json.loads((out / name / "infovae.json").read_text())


def test_every_run_lands_in_its_own_folder(swept):
    out, r = swept
    m = _manifest(out)
    assert [x["name"] for x in m["runs"]] == RUNS
    for x in m["runs"]:
        assert x["status"] == "done" and x["error"] is None and not x["skipped"]
        assert x["seconds"] > 0 and x["worker"].startswith("tcp://127.0.0.1:")
        assert x["threads"] == max(1, cores() // 2)  # 2 workers share this machine's cores
        d = out / x["name"]
        assert {"infovae.ipynb", "infovae.json", "params.json", "run.json"} <= {p.name for p in d.iterdir()}
        params = json.loads((d / "params.json").read_text())
        assert params["lam"] == x["point"]["lam"] and params["seed"] == x["point"]["seed"]
        assert params["n_train"] == 1000  # from the profile
        res = _results(out, x["name"])
        assert res["params"]["lam"] == x["point"]["lam"] and res["params"]["seed"] == x["point"]["seed"]
    assert {x["point"]["lam"] for x in m["runs"]} == {0.5, 1.0}  # floats, read as YAML
    # the progress bar went to the terminal (stderr) and the summary to stdout
    assert "4/4" in r.stderr and "done=4" in r.stderr
    assert "4 of 4 runs done" in r.stdout


def test_numbers_table_matches_the_runs_results(swept):
    out, _ = swept
    numbers = pd.read_csv(out / "numbers.csv")
    assert set(numbers.point) == {"lam=0.5", "lam=1.0"}
    checked = 0
    for lam in (0.5, 1.0):
        runs = [_results(out, f"lam={lam}__seed={s}")["entries"] for s in (2, 4)]
        for key, e in runs[0].items():
            if e["kind"] != "number" or isinstance(e["value"], bool) or not isinstance(e["value"], (int, float)):
                continue
            values = [r[key]["value"] for r in runs]
            row = numbers[(numbers.point == f"lam={lam}") & (numbers.number == key)]
            assert len(row) == 1, key
            row = row.iloc[0]
            mean = sum(values) / 2
            std = math.sqrt(sum((v - mean) ** 2 for v in values))  # ddof 1 with n = 2
            assert row["n"] == 2
            assert row["mean"] == pytest.approx(mean, rel=1e-9, abs=1e-12)
            assert row["std"] == pytest.approx(std, rel=1e-9, abs=1e-12)
            checked += 1
    assert checked > 40
    assert "x_tilde_used" not in set(numbers.number)  # a string is not a number


def test_claim_robustness_table_matches_the_runs_results(swept):
    out, _ = swept
    claims = pd.read_csv(out / "claims.csv")
    for lam in (0.5, 1.0):
        runs = [_results(out, f"lam={lam}__seed={s}")["entries"] for s in (2, 4)]
        keys = [k for k, e in runs[0].items() if e["kind"] == "claim"]
        sub = claims[claims.point == f"lam={lam}"].set_index("claim")
        assert list(sub.index) == keys
        for k in keys:
            statuses = [r[k]["status"] for r in runs]
            row = sub.loc[k]
            assert (row.held, row.failed, row.inconclusive, row.not_evaluated, row.missing, row.n) == (
                statuses.count("holds"), statuses.count("fails"), statuses.count("inconclusive"),
                statuses.count("not evaluated"), 0, 2), k
            assert row.share_held == statuses.count("holds") / 2
        assert sub.loc["lemma1_exact"].held == 2  # an identity holds whatever the seed
    # aggregate() is a function: the same tables again, and the plot
    agg = tables.aggregate(out)
    assert agg["runs"] == 4
    assert len(agg["claims"]) == len(claims) and len(agg["numbers"]) == len(pd.read_csv(out / "numbers.csv"))
    png = (out / "robustness.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sweep_on_a_running_scheduler_with_a_failing_run(swept, tmp_path, capsys):
    """A scheduler and a worker started as separate processes on loopback. Of the two runs, one fails in
    the chapter's own validation (n_train=50 < batch_size) and is reported with its error and cell; the
    other completes. It reuses the model cache of the local sweep (same parameters as its lam=1.0, seed=2
    run), so its numbers must equal that run's."""
    from distributed import Client

    out0, _ = swept
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = _env()
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], cwd=tmp_path, env=env,
                              stdout=open(logs / "scheduler.log", "w"), stderr=subprocess.STDOUT)]
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                       "--no-dashboard", "--host", "127.0.0.1"], cwd=tmp_path, env=env,
                                      stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT))
        deadline = time.time() + 60
        while True:
            try:
                with Client(address, timeout="5s") as c:
                    c.wait_for_workers(1, timeout=60)
                    worker = next(iter(c.scheduler_info()["workers"]))
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        out = tmp_path / "remote"
        rc = cli.main(["book/infovae.ipynb", "--grid", "n_train=50,1000", "-f", PROFILE, "-p", "seed=2",
                         "--scheduler", address, "--cache", str(out0 / "_model_cache"), "--no-progress",
                         "--out", str(out)])
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    assert rc == 1  # some run failed
    m = _manifest(out)
    assert m["scheduler"] == address
    by = {x["name"]: x for x in m["runs"]}
    assert set(by) == {"n_train=50", "n_train=1000"} and {x["worker"] for x in by.values()} == {worker}
    # the failing run: its exception, message and cell
    bad = by["n_train=50"]
    assert bad["status"] == "failed"
    err = bad["error"]
    assert err["exception"] == "ParameterError" and "n_train" in err["message"]
    cells = json.loads((out / "n_train=50" / "infovae.ipynb").read_text())["cells"]
    failing = [c for c in cells if c.get("execution_count") == err["cell"]]
    assert len(failing) == 1 and "validate(" in "".join(failing[0]["source"])  # the chapter's own validation
    assert f"crashed: n_train=50 in cell {err['cell']}: ParameterError" in capsys.readouterr().out
    # the other completed, with the local run's numbers and verdicts
    good = by["n_train=1000"]
    assert good["status"] == "done" and good["error"] is None
    remote, local = _results(out, "n_train=1000")["entries"], _results(out0, "lam=1.0__seed=2")["entries"]
    for key in ("e1_info_I_c", "e1_vae_I_c", "e2_info_I_z", "sweep_ic_hi"):
        assert remote[key]["value"] == pytest.approx(local[key]["value"], rel=1e-6), key
    assert {k: e["status"] for k, e in remote.items() if e["kind"] == "claim"} == \
           {k: e["status"] for k, e in local.items() if e["kind"] == "claim"}
    claims = pd.read_csv(out / "claims.csv")  # only runs with results count
    assert set(claims.point) == {"n_train=1000"} and set(claims.n) == {1}


def test_resume_runs_only_what_is_missing(swept, tmp_path):
    out0, _ = swept
    out = tmp_path / "resumed"
    shutil.copytree(out0, out)
    shutil.rmtree(out / "lam=0.5__seed=4")
    before = {n: (out / n / "infovae.json").stat().st_mtime_ns for n in RUNS if n != "lam=0.5__seed=4"}
    manifest = run.run_sweep("infovae", {"lam": [0.5, 1.0], "seed": [2, 4]}, out, profile=PROFILE, workers=1,
                               progress=False)
    by = {m["name"]: m for m in manifest}
    assert [n for n in RUNS if not by[n]["skipped"]] == ["lam=0.5__seed=4"]
    assert all(m["status"] == "done" for m in manifest)
    assert all(by[n]["worker"] and by[n]["seconds"] for n in RUNS)  # kept from the first sweep's manifest
    assert {n: (out / n / "infovae.json").stat().st_mtime_ns for n in before} == before
    assert (out / "lam=0.5__seed=4" / "infovae.json").is_file()
    assert set(pd.read_csv(out / "claims.csv").n) == {2}
    # nothing left to do: no cluster is started, nothing runs
    t0 = time.perf_counter()
    again = run.run_sweep("infovae", {"lam": [0.5, 1.0], "seed": [2, 4]}, out, profile=PROFILE, progress=False)
    assert all(m["skipped"] for m in again) and time.perf_counter() - t0 < 30


# ---------------------------------------------------------------------------------------------- bad input
def test_unknown_notebook_fails_fast_without_traceback(tmp_path):
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "vaemi.sweep", "infovea", "--grid", "seed=0,1", "--out",
                        str(tmp_path / "x")], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "unknown notebook 'infovea' (did you mean 'infovae'?)" in r.stderr
    assert "Traceback" not in r.stderr
    assert time.perf_counter() - t0 < 30 and not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, message", [
    (["--grid", "lam="], "--grid 'lam=': empty value for 'lam'"),
    (["--grid", "lam"], "--grid expects NAME=V1,V2,..."),
    (["--grid", "lam=0.5,,1"], "empty value for 'lam'"),
    (["--grid", "seed=3..1"], "the range 3..1 runs backwards"),
    (["--grid", "lam=[1"], "cannot read the value '[1'"),
    ([], "no --grid given"),
    (["--grid", "lamb=0.5,1"], "--grid: the chapter 'infovae' has no parameter 'lamb' (did you mean 'lam'?)"),
    (["--grid", "seed=0,1", "-p", "epochz=1"], "-p: the chapter 'infovae' has no parameter 'epochz' (did you mean 'epochs'?)"),
    (["--grid", "seed=0,1", "-p", "epochs"], "--param expects NAME=VALUE"),
    (["--grid", "seed=0,1", "-f", "profiles/smoke/nothing.yaml"], "no such profile file"),
    (["--grid", "seed=0,1", "--workers", "0"], "--workers must be >= 1"),
], ids=["empty", "no-equals", "empty-item", "backwards", "not-yaml", "no-grid", "unknown-name", "unknown-p",
        "malformed-p", "no-profile", "no-workers"])
def test_bad_input_fails_before_any_run(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        cli.main(["infovae", *args, "--out", str(out)])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unreachable_scheduler_fails_in_seconds(tmp_path, capsys):
    out = tmp_path / "out"
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as e:
        cli.main(["infovae", "--grid", "seed=0", "--scheduler", f"tcp://127.0.0.1:{_free_port()}", "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"--scheduler tcp://127.0.0.1:" in err and "cannot reach the scheduler" in err
    assert time.perf_counter() - t0 < 20 and not out.exists()


def test_grid_and_names():
    assert plan.parse_grid(["lam=0.3,1.0", "seed=0..3", "hidden=[64,64],[128]", "x_tilde=mean"]) == {
        "lam": [0.3, 1.0], "seed": [0, 1, 2, 3], "hidden": [[64, 64], [128]], "x_tilde": ["mean"]}
    assert plan.run_name({"lam": 0.3, "hidden": [64, 64], "seed": 1}) == "lam=0.3__hidden=[64,64]__seed=1"
    runs = plan.plan_runs(ROOT / "book" / "infovae.ipynb", {"lam": [0.5], "seed": [0, 1]}, PROFILE, {"epochs": 1})
    assert [r["name"] for r in runs] == ["lam=0.5__seed=0", "lam=0.5__seed=1"]
    assert runs[1]["parameters"]["epochs"] == 1 and runs[1]["parameters"]["n_train"] == 1000
    assert runs[1]["parameters"]["seed"] == 1 and runs[1]["point"] == {"lam": 0.5, "seed": 1}
    with pytest.raises(plan.SweepError, match="given twice"):
        plan.parse_grid(["seed=0", "seed=1"])
    with pytest.raises(plan.SweepError, match="repeated"):
        plan.parse_grid(["seed=0,0"])


# ---------------------------------------------------------------------------------------------- publishing
def test_publish_is_path_free_and_marks_unfinished_runs(swept, tmp_path, monkeypatch):
    out0, _ = swept
    out = tmp_path / "stopped"
    shutil.copytree(out0, out)
    meta = _manifest(out)
    meta["runs"][-1]["status"] = "running"  # as a sweep killed while this run was going
    (out / "manifest.json").write_text(json.dumps(meta))
    monkeypatch.setenv("VAEMI_COMMIT", "abc1234")
    dest = publish.publish(out, tmp_path / "record", note="a test")
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["claims.csv", "manifest.json", "numbers.csv", "provenance.json"] + [f"runs/{n}.json" for n in RUNS]
    for p in dest.rglob("*"):
        if p.is_file():
            text = p.read_text()
            assert str(tmp_path) not in text and str(ROOT) not in text and "/home/" not in text, p
    rec = records.load_published(dest)
    assert [r["status"] for r in rec["manifest"]["runs"]] == ["done"] * 3 + ["interrupted"]
    prov = rec["provenance"]
    assert prov["commit"] == "abc1234" and prov["note"] == "a test" and prov["runs_done"] == 3
    assert prov["command"].startswith("python -m vaemi.sweep book/infovae.ipynb --grid lam=0.5,1.0 --grid seed=2,4")
    assert "-f profiles/smoke/infovae.yaml" in prov["command"]
    # the per-run numbers are the runs' own results files
    r0 = _results(out0, RUNS[0])["entries"]["e1_info_I_c"]["value"]
    got = rec["runs"].query("run == @RUNS[0] and number == 'e1_info_I_c'").value.item()
    assert got == pytest.approx(r0)


def test_ablation_table_summarizes_seeds_per_setting(swept, tmp_path):
    out0, _ = swept
    dest = publish.publish(out0, tmp_path / "record")
    t = records.ablation_table({"lam sweep": dest}, ["e1_info_I_c"])
    assert list(t.setting) == ["lam=0.5", "lam=1.0"] and list(t.n) == [2, 2] and set(t.sweep) == {"lam sweep"}
    for row, lam in zip(t.itertuples(), (0.5, 1.0)):
        vals = [_results(out0, f"lam={lam}__seed={s}")["entries"]["e1_info_I_c"]["value"] for s in (2, 4)]
        assert row.e1_info_I_c_values == pytest.approx(vals)
        assert row.e1_info_I_c_mean == pytest.approx(sum(vals) / 2)
        assert row.e1_info_I_c_std == pytest.approx(abs(vals[0] - vals[1]) / math.sqrt(2))
        assert row.parameters["lam"] == lam and "seed" not in row.parameters
    cells = records.format_mean_std(t, ["e1_info_I_c"], digits=2)
    assert cells.e1_info_I_c.iloc[0] == f"{t.e1_info_I_c_mean.iloc[0]:.2f} ± {t.e1_info_I_c_std.iloc[0]:.2f}"
    prov = records.ablation_provenance({"lam sweep": dest, "missing": tmp_path / "nothing"})
    assert list(prov.sweep) == ["lam sweep", "missing"] and prov.command.iloc[1] == "not published"
    with pytest.raises(FileNotFoundError, match="nothing"):
        records.ablation_table({"missing": tmp_path / "nothing"}, ["e1_info_I_c"])


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "sweeps" / "results").iterdir() if p.is_dir()))
def test_committed_records_load_and_name_their_command(name):
    """Every record the chapters read loads, holds a run per finished run, and names a command that re-runs it."""
    rec = records.load_published(records.published_dir(name))
    done = [r["name"] for r in rec["manifest"]["runs"] if r["status"] == "done"]
    assert done and set(rec["runs"].run) == set(done)
    assert rec["provenance"]["runs_done"] == len(done)
    assert rec["provenance"]["command"].startswith(("python -m vaemi.sweep sweeps/", "python -m vaemi.sweep book/"))
    assert all(r["status"] in ("done", "checks failed", "failed", "interrupted") for r in rec["manifest"]["runs"])


def test_seed_robustness_counts_each_claim_over_the_seeds(swept, tmp_path, monkeypatch):
    table, prov = records.seed_robustness("vimae-seeds")  # the committed record the VIMAE chapter reads
    assert (table.held + table.failed + table.inconclusive + table.not_evaluated == table.n).all()
    assert prov["runs_done"] == table.n.max()
    ident = table.set_index("claim").loc["discrete_identities"]
    assert ident.held == ident.n and ident.held_of == f"{ident.n} of {ident.n}"
    out0, _ = swept  # a lam x seed sweep: not a seed sweep
    (tmp_path / "book").mkdir()
    (tmp_path / "_toc.yml").write_text("root: x\n")
    publish.publish(out0, tmp_path / "sweeps" / "results" / "lam")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="more than the seed"):
        records.seed_robustness("lam")
    with pytest.raises(FileNotFoundError, match="nothing"):
        records.seed_robustness("nothing")
