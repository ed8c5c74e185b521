"""The ablation notebooks behind "why the numbers differ" (sweeps/*.ipynb): they run at their smoke profile,
record what the chapters read from the published sweeps, and reject bad parameters before any training."""
from __future__ import annotations

import json
import math

import papermill as pm
import pytest
import yaml

from conftest import ROOT
from vaemi.book.build import ensure_kernel

pytestmark = pytest.mark.slow  # kernels, builds or clusters: minutes; left out of `-m 'not slow'`


def _run(tmp_path, monkeypatch, stem: str, **overrides):
    params = yaml.safe_load((ROOT / "profiles" / "smoke" / f"{stem}.yaml").read_text())
    params.update(overrides)
    monkeypatch.setenv("VAEMI_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    pm.execute_notebook(str(ROOT / "sweeps" / f"{stem}.ipynb"), str(tmp_path / "out.ipynb"), parameters=params,
                        kernel_name=ensure_kernel(), cwd=str(ROOT / "sweeps"), progress_bar=False)
    files = [p for p in tmp_path.glob("*.json")]
    assert len(files) == 1, files
    return {k: e.get("value") for k, e in json.loads(files[0].read_text())["entries"].items()}


def test_clustering_ablation_records_what_the_chapter_reads(tmp_path, monkeypatch):
    # the conv networks and the annealed temperature: the MLP path is the chapter's own (tested by its smoke runs)
    v = _run(tmp_path, monkeypatch, "vmim_clustering", arch="conv", anneal_rate=0.001, temperature=1.0, temperature_min=0.5)
    for key in ("acc_hungarian", "acc_majority", "I_q", "kl_c", "used_categories", "elbo", "minutes"):
        assert isinstance(v.get(key), (int, float)) and math.isfinite(v[key]), key
    assert 0.0 <= v["acc_hungarian"] <= 1.0 and 1 <= v["used_categories"] <= 10
    assert -1e-9 <= v["I_q"] <= v["kl_c"] + 1e-9 <= math.log(10) + 1e-6  # eq. 4.23: the KL of c bounds I_q


def test_infovae_ablation_records_both_bounds(tmp_path, monkeypatch):
    v = _run(tmp_path, monkeypatch, "infovae_exp2", x_tilde="straight_through")
    for key in ("I_z", "Iq_z", "rate_z", "Iq_c", "rate_c", "sens_ratio", "elbo", "log_n", "minutes"):
        assert isinstance(v.get(key), (int, float)) and math.isfinite(v[key]), key
    assert v["log_n"] == pytest.approx(math.log(200))
    for part in ("z", "c"):  # InfoNCE never exceeds log N; the rate is non-negative
        assert v[f"Iq_{part}"] <= v["log_n"] + 1e-9 and v[f"rate_{part}"] >= 0


@pytest.mark.parametrize("stem, override, name", [("vmim_clustering", {"arch": "rnn"}, "arch"),
                                                  ("vmim_clustering", {"temperature_min": 2.0}, "temperature_min"),
                                                  ("infovae_exp2", {"mi_dim": 6}, "mi_dim"),
                                                  ("infovae_exp2", {"x_tilde": "exact"}, "x_tilde")])
def test_bad_parameter_is_named_before_training(tmp_path, monkeypatch, stem, override, name):
    with pytest.raises(pm.PapermillExecutionError) as e:
        _run(tmp_path, monkeypatch, stem, **override)
    assert f"'{name}'" in str(e.value)
    assert e.value.exec_count <= 3  # the validation cell, before any data or training
