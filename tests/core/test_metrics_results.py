import json
import math

import pytest
import torch

from vaemi import build_vae, get_loss, train
from vaemi.measures.metrics import active_units, evaluate_elbo, iwae_log_likelihood
from vaemi.book.results import Results
from vaemi.book.records import load_all
from vaemi.train.loop import seed_everything


@pytest.fixture(scope="module")
def trained():
    seed_everything(0)
    x = (torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    m = build_vae((1, 28, 28), 4, hidden=(64,))
    train(m, get_loss("elbo"), x, epochs=5, batch_size=32, lr=3e-3, progress=False)
    return m, x


def test_iwae_bound_is_above_elbo_and_tightens(trained):
    m, x = trained
    elbo = evaluate_elbo(m, x[:128])["elbo"]
    iw1 = iwae_log_likelihood(m, x[:128], k=1, seed=0)
    iw50 = iwae_log_likelihood(m, x[:128], k=50, seed=0)
    assert abs(iw1 - elbo) < 2.0  # K=1 is an unbiased estimate of the ELBO
    assert iw50 > elbo


def test_evaluate_elbo_parts_add_up(trained):
    m, x = trained
    ev = evaluate_elbo(m, x)
    assert ev["kl"] == pytest.approx(sum(ev[f"kl/z_{j}"] for j in range(4)))
    assert ev["elbo"] == pytest.approx(-(ev["rec"] + ev["kl"]))
    au = active_units(m, x)
    assert au.shape == (4,) and au.dtype == torch.bool


def test_results_record_claim_save(tmp_path):
    r = Results("demo", "Demo", {"seed": 0}, profile="smoke")
    assert r.record("a", torch.tensor(1.5), paper=2.0) == 1.5
    assert r.claim("ok", "one is less than two", 1 < 2)
    assert not r.claim("soft", "a source's claim fails as a verdict", False, group="source")
    assert not r.claim("deferred", "a check fails without stopping the chapter", False, group="consistency")
    with pytest.raises(AssertionError, match="hard"):
        r.claim("hard", "fails hard", False, kind="identity", group="derivation")
    path = r.save(tmp_path)
    d = json.loads(path.read_text())
    assert d["entries"]["a"] == {"kind": "number", "value": 1.5, "paper": 2.0, "description": "", "unit": ""}
    assert d["entries"]["soft"]["passed"] is False and d["params"] == {"seed": 0}
    assert [x["chapter"] for x in load_all(tmp_path)] == ["demo"]


def test_all_of_conjunction_has_four_outcomes():
    import numpy as np

    from vaemi.book.results import INCONCLUSIVE, all_of
    assert all_of([True, np.True_]) is True and all_of([]) is True
    assert all_of([True, INCONCLUSIVE]) == INCONCLUSIVE
    assert all_of([INCONCLUSIVE, None]) is None  # a part not evaluated: the whole is not
    assert all_of([None, np.False_, INCONCLUSIVE]) is False  # one failing part decides
    assert all_of(v for v in (True, True)) is True  # any iterable


def test_mean_se_and_paired_mean_se():
    import numpy as np

    from vaemi.book.results import decide, mean_se, paired_mean_se
    m, se = mean_se([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert mean_se(torch.tensor([1.0, 3.0])) == (2.0, 1.0)
    assert math.isnan(mean_se([5.0])[1]) and decide(*mean_se([5.0]), 0.0, above=True) is None
    with pytest.raises(ValueError, match="empty"):
        mean_se([])
    a, b = np.array([3.0, 5.0, 7.0]), np.array([1.0, 2.0, 3.0])
    assert paired_mean_se(a, b) == mean_se(a - b)


def test_finish_refuses_a_name_that_is_both_entry_and_metadata(tmp_path):
    r = Results("toy", "Toy", {"seed": 0}, profile="smoke")
    r.record("n_train_used", 10)
    r.set_meta(n_train_used=10)
    with pytest.raises(ValueError, match="n_train_used"):
        r.finish(tmp_path)


def test_a_verdict_says_how_often_it_held_over_the_published_seeds(monkeypatch):
    import vaemi.book.results as results_module
    glued = {}
    monkeypatch.setattr(results_module, "glue_markdown", lambda k, text: glued.__setitem__(k, text))
    r = Results("toy", "Toy", {"seed": 0}, profile="smoke")
    r.seed_tally = {"grows": "3 of 4", "exact": "4 of 4"}
    r.claim("grows", "it grows", True, kind="estimate", group="source")
    r.claim("exact", "an identity", True, kind="identity", group="derivation")
    r.claim("other", "not in the sweep", False, kind="estimate", group="source")
    assert glued["grows"] == "holds (held at 3 of 4 seeds of the published sweep)"
    assert glued["exact"] == "holds"  # asserted checks hold at every seed or the build fails: no tally
    assert glued["other"] == "does **not** hold"
