"""The thesis's machinery: MI targets, the auxiliary Q network, the regularized loss with Algorithm 1,
the posterior-sampled bound, the categorical KL decomposition (eq. 4.23) and clustering accuracy."""
import copy
import math

import numpy as np
import pytest
import torch

from vaemi import build_vae, get_loss, train
from vaemi.measures.metrics import (categorical_kl_decomposition, category_probs, cluster_accuracy,
                                    traversal_sensitivity)
from vaemi.losses.mi import AuxiliaryQ, InfoVAELoss, MITarget, VariationalMILoss
from vaemi.measures.mi import posterior_mi_lower_bound
from vaemi.models import CategoricalPart, GaussianPart, LatentSpace
from vaemi.chapters.figures import code_sweep
from vaemi.train.loop import seed_everything


def _joint(seed=0, temperature=0.67, **kw):
    seed_everything(seed)
    lat = LatentSpace([GaussianPart(4, "z"), CategoricalPart(5, temperature=temperature, name="c", **kw)])
    return build_vae((1, 28, 28), lat, hidden=(32,))


def _q(model, part="c", dims=None):
    return AuxiliaryQ((1, 28, 28), MITarget(model.latent, part, dims), hidden=(16,))


# ------------------------------------------------------------------------------------------ targets
def test_target_selects_a_part_or_some_gaussian_dimensions():
    m = _joint()
    code = torch.arange(9.0).repeat(3, 1)
    assert torch.equal(MITarget(m.latent, "c").select(code), code[:, 4:])
    t = MITarget(m.latent, "z", [3, 1])
    assert torch.equal(t.select(code), code[:, [3, 1]])
    assert t.n_params == 4 and t.prior_entropy() == pytest.approx(math.log(2 * math.pi * math.e))
    params = m.encode(torch.rand(2, 1, 28, 28))
    mu, logvar = params["z"].chunk(2, -1)
    assert torch.equal(t.select_params(params), torch.cat([mu[:, [3, 1]], logvar[:, [3, 1]]], -1))
    assert MITarget(m.latent, "c").prior_entropy() == pytest.approx(math.log(5))


@pytest.mark.parametrize("part,dims", [("c", [0]), ("z", [4]), ("z", [1, 1]), ("z", []), ("w", None)])
def test_bad_targets_are_refused(part, dims):
    m = _joint()
    with pytest.raises((ValueError, KeyError)):
        MITarget(m.latent, part, dims)


# -------------------------------------------------------------------------------- categorical part
def test_exact_categorical_samples_are_one_hot_and_seeded():
    part = CategoricalPart(4)
    logits = torch.randn(100, 4)
    a = part.sample(logits, torch.Generator().manual_seed(1))
    b = part.sample(logits, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(a.sum(-1), torch.ones(100)) and set(a.unique().tolist()) == {0.0, 1.0}


def test_temperature_annealing_schedule():
    part = CategoricalPart(3, temperature=1.0, temperature_min=0.5, anneal_rate=1e-3)
    part.set_step(0)
    assert part.temperature == 1.0
    part.set_step(100)
    assert part.temperature == pytest.approx(math.exp(-0.1))
    part.set_step(10**6)
    assert part.temperature == 0.5
    with pytest.raises(ValueError):
        CategoricalPart(3, temperature=0.5, temperature_min=0.7)
    with pytest.raises(ValueError):
        CategoricalPart(3, anneal_rate=-1)


# ------------------------------------------------------------------------------------------- loss
def test_lambda_zero_is_the_elbo_and_q_still_scores(tiny_images):
    m = _joint()
    q = _q(m)
    seed_everything(1)
    a, logs = VariationalMILoss(q, lam=0.0)(m, tiny_images)
    seed_everything(1)
    b, _ = get_loss("elbo")(m, tiny_images)
    assert torch.equal(a, b)
    assert "mi_lb" in logs and torch.isfinite(logs["mi_lb"]) and logs["temperature_c"] == pytest.approx(0.67)


@pytest.mark.parametrize("source", ["posterior", "prior"])
def test_mi_term_gradients_reach_the_vae_but_not_q(tiny_images, source):
    m = _joint()
    q = _q(m)
    elbo_only, _ = VariationalMILoss(q, lam=0.0)(m, tiny_images)
    loss, _ = VariationalMILoss(q, lam=3.0, code_source=source)(m, tiny_images)
    loss.backward()
    assert m.decoder.net[0].weight.grad.abs().sum() > 0
    if source == "posterior":  # the code is the encoder's sample, so the encoder gets the term's gradient too
        assert m.encoder.net[0].weight.grad.abs().sum() > 0


def test_auxiliary_step_trains_only_q(tiny_images):
    m = _joint()
    q = _q(m)
    aux = VariationalMILoss(q, lam=1.0).auxiliary_loss(m, tiny_images)
    aux.backward()
    assert all(p.grad is None for p in m.parameters())
    assert all(p.grad is not None for p in q.parameters())


def test_infovae_is_the_recycled_encoder_prior_code_case(tiny_images):
    lat = LatentSpace([GaussianPart(3, "z"), GaussianPart(2, "c")])
    seed_everything(0)
    m = build_vae((1, 28, 28), lat, hidden=(32,))
    for lam in (0.0, 2.0):
        torch.manual_seed(5)
        a, _ = InfoVAELoss(lam=lam, x_tilde="relaxed")(m, tiny_images)
        torch.manual_seed(5)
        b, _ = VariationalMILoss(None, lam=lam, part="c", x_tilde="relaxed", code_source="prior")(m, tiny_images)
        assert torch.equal(a, b)
    assert isinstance(get_loss("vmi", q=None, lam=1.0), VariationalMILoss)


@pytest.mark.parametrize("kw", [dict(lam=-1), dict(x_tilde="sample"), dict(code_source="data"), dict(entropy="x"),
                                dict(temperature=0), dict(beta=-1), dict(entropy="marginal", code_source="prior")])
def test_bad_loss_settings_are_refused(kw):
    m = _joint()
    with pytest.raises(ValueError):
        VariationalMILoss(_q(m), **kw)


def test_marginal_entropy_needs_a_categorical_code():
    m = _joint()
    with pytest.raises(ValueError):
        VariationalMILoss(_q(m, "z", [0]), entropy="marginal")


def test_marginal_entropy_penalizes_a_code_that_never_varies(tiny_images):
    """The thesis's H(c) = log K rewards a constant c (Q predicts it perfectly); the marginal entropy does not."""
    m = _joint()
    with torch.no_grad():  # the encoder puts all mass on category 0 for every input
        last = m.encoder.net[-1]
        last.weight[-5:] = 0.0
        last.bias[-5:] = torch.tensor([30.0, 0, 0, 0, 0])
    q = _q(m)
    with torch.no_grad():
        q.net.net[-1].weight.zero_()
        q.net.net[-1].bias.copy_(torch.tensor([30.0, 0, 0, 0, 0]))
    m.eval()
    prior_h = VariationalMILoss(q, lam=1.0)
    marg_h = VariationalMILoss(q, lam=1.0, entropy="marginal")
    _, lp = prior_h(m, tiny_images)
    _, lm = marg_h(m, tiny_images)
    assert float(lp["mi_lb"]) == pytest.approx(math.log(5), abs=1e-3)   # the maximum, for no information at all
    assert abs(float(lm["mi_lb"])) < 1e-3
    b = posterior_mi_lower_bound(m, q, tiny_images)
    assert b["mi_lb"] == pytest.approx(math.log(5), abs=1e-3) and abs(b["mi_lb_marginal"]) < 1e-3
    assert b["h_marginal"] < 1e-6


def test_training_steps_q_first_and_logs_the_bound_and_temperature(tiny_images):
    m = _joint(temperature=1.0, temperature_min=0.5, anneal_rate=0.05)
    q = _q(m)
    q0 = copy.deepcopy(q.state_dict())
    h = train(m, VariationalMILoss(q, lam=1.0), tiny_images, epochs=3, batch_size=16, progress=False)
    assert any(not torch.equal(q0[k], v) for k, v in q.state_dict().items())
    assert np.isfinite(h["mi_lb"]).all()
    t = h["temperature_c"]
    assert t[0] > t[-1] >= 0.5
    assert h["kl/c_0"].shape == (3,)


def test_posterior_bound_is_seeded_and_has_the_marginal_entropy(tiny_images):
    m = _joint()
    q = _q(m)
    a = posterior_mi_lower_bound(m, q, tiny_images, seed=2)
    b = posterior_mi_lower_bound(m, q, tiny_images, seed=2)
    assert a == b
    probs = category_probs(m, tiny_images)
    assert a["h_marginal"] == pytest.approx(categorical_kl_decomposition(probs)["h_marginal"], abs=1e-9)
    assert a["mi_lb"] - a["mi_lb_marginal"] == pytest.approx(math.log(5) - a["h_marginal"])
    g = posterior_mi_lower_bound(m, _q(m, "z", [0, 2]), tiny_images)
    assert "h_marginal" not in g and math.isfinite(g["mi_lb"])


# ----------------------------------------------------------------------------------- eq. 4.23, accuracy
@pytest.mark.parametrize("seed", range(4))
def test_kl_decomposition_is_an_identity(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(10, 0.3), size=500)
    d = categorical_kl_decomposition(probs)
    assert abs(d["residual"]) < 1e-12
    assert d["mi"] >= 0 and d["marginal_kl"] >= 0 and d["rate"] >= d["mi"]
    # against the textbook form I = H(q(c)) - E_x H(q(c|x))
    h_cond = -(probs * np.log(probs)).sum(1).mean()
    assert d["mi"] == pytest.approx(d["h_marginal"] - h_cond, abs=1e-12)


def test_kl_decomposition_extremes():
    k = 4
    constant = np.tile(np.eye(k)[0], (8, 1))           # a code that never varies: all rate, no information
    d = categorical_kl_decomposition(constant)
    assert d["mi"] == pytest.approx(0) and d["rate"] == pytest.approx(math.log(k))
    balanced = np.tile(np.eye(k), (2, 1))              # a deterministic, balanced code: all rate is information
    d = categorical_kl_decomposition(balanced)
    assert d["mi"] == pytest.approx(math.log(k)) and d["marginal_kl"] == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError):
        categorical_kl_decomposition(np.ones((3, 4)))


def test_cluster_accuracy_one_to_one_and_majority():
    labels = np.repeat(np.arange(4), 25)
    perm = np.array([2, 0, 3, 1])
    acc = cluster_accuracy(perm[labels], labels, 4)
    assert acc["hungarian"] == 1.0 and acc["majority"] == 1.0
    assert {perm[i]: i for i in range(4)} == acc["mapping"]
    merged = np.where(labels == 1, 0, labels)           # clusters 0 and 1 merged: majority cannot tell them apart
    acc = cluster_accuracy(merged, labels, 4)
    assert acc["hungarian"] == pytest.approx(0.75) and acc["majority"] == pytest.approx(0.75)
    assert acc["counts"].sum() == 100
    split = labels * 2 + (np.arange(100) % 2)            # 8 clusters for 4 labels: many-to-one is perfect
    acc = cluster_accuracy(split, labels, 8)
    assert acc["majority"] == 1.0 and acc["hungarian"] == pytest.approx(0.52)  # 13 of each 25 in one half
    with pytest.raises(ValueError):
        cluster_accuracy(np.zeros(3), np.zeros(4))


# -------------------------------------------------------------------------------------- figures' data
def test_code_sweep_rows_start_with_the_image():
    m = _joint()
    x = torch.rand(3, 1, 28, 28)
    imgs = code_sweep(m, x, "c")
    assert imgs.shape == (3 * 6, 1, 28, 28)
    assert torch.equal(imgs[0], x[0]) and torch.equal(imgs[6], x[1])
    g = code_sweep(m, x, "z", dim=1, values=[-5, 0, 5])
    assert g.shape == (3 * 4, 1, 28, 28)
    with pytest.raises(ValueError):
        code_sweep(m, x, "z")


def test_traversal_sensitivity_averages_over_a_batch_of_bases():
    m = _joint()
    bases = torch.randn(3, m.latent.size)
    s = traversal_sensitivity(m, base=bases)
    each = torch.stack([traversal_sensitivity(m, base=b) for b in bases]).mean(0)
    assert torch.allclose(s, each, atol=1e-6)
