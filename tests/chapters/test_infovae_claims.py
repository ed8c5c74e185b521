"""The functions that decide the infoVAE chapter's claims (vaemi.chapters.infovae): each holds on a correct small
case, and a broken model, a corrupted implementation or a model that lacks the property makes it fail."""
import math

import numpy as np
import pytest
import torch
from torch import distributions as D

from vaemi.book.results import INCONCLUSIVE
from vaemi.chapters import infovae as ch
from vaemi.losses.mi import AuxiliaryQ, InfoVAELoss, MITarget, VariationalMILoss
from vaemi.measures.toy import LinearGaussian

SHAPE = (1, 6, 6)


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(200, *SHAPE, generator=g) > 0.6).float()


def tiny(d=4, d_c=2, seed=0):
    return ch.build_init(SHAPE, d, d_c, [16], seed)


def set_encoder(model, *, scale: float, logvar: float):
    """Make the encoder's posterior mean ``scale`` times a fixed random projection of x and its log-variance
    ``logvar`` (``scale=0, logvar=0``: the posterior is the prior for every x)."""
    last = model.encoder.net[-1]
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.zero_()
        model.encoder.net[0].weight.copy_(torch.randn(model.encoder.net[0].weight.shape, generator=torch.Generator().manual_seed(1)))
        w = torch.randn(last.weight.shape, generator=torch.Generator().manual_seed(2))
        mu_rows = torch.cat([torch.arange(p_start, p_start + part.size) for p_start, part in _offsets(model)])
        last.weight[mu_rows] = scale * w[mu_rows]
        last.bias[[i for i in range(last.bias.shape[0]) if i not in set(mu_rows.tolist())]] = logvar
    return model


def _offsets(model):
    start, out = 0, []
    for part in model.latent.parts:
        out.append((start, part))
        start += part.n_params
    return out


# ------------------------------------------------------------------------------------------- helpers
def test_verdict_helpers():
    assert ch.agree(1.0, 1.0, 0.001) is True
    assert ch.agree(1.1, 1.0, 0.001) is False
    assert ch.agree(1.0, 1.0, 0.5) == INCONCLUSIVE  # too coarse to see a 2% discrepancy
    assert ch.agree(1.0, 1.0, 0.001, ess=10, min_ess=100) == INCONCLUSIVE
    assert ch.agree(float("nan"), 1.0, 0.1) is None
    a, b = ch.Bounds(5, 0.1, 6, 0.1), ch.Bounds(1, 0.1, 2, 0.1)
    assert ch.higher(a, b) is True and ch.higher(b, a) is False
    assert ch.higher(ch.Bounds(1, 0.1, 6, 0.1), ch.Bounds(2, 0.1, 3, 0.1)) == INCONCLUSIVE


# ------------------------------------------------------------------------------------------- derivations (toys)
class ShiftedElbo(LinearGaussian):
    def elbo(self, x, q):  # a wrong closed form: eq. 1 and eq. 2 must catch it
        return super().elbo(x, q) + 0.5


class ShiftedLikelihood(LinearGaussian):
    def likelihood(self, z):  # the sampler's model differs from the closed forms' (a bias)
        return D.Independent(D.Normal(z @ self.W.T + self.b + 1.0, math.sqrt(self.sigma2)), 1)


def _lg(cls=LinearGaussian):
    base = LinearGaussian.random(d=3, D_=6, sigma=0.7, seed=0)
    return cls(base.W, base.b, base.sigma2)


def test_eq1_eq2_hold_and_catch_a_wrong_elbo():
    ok = ch.elbo_identities(0)
    assert ok["gap_err"] < 1e-9 and ok["max_elbo_minus_logpx"] <= 1e-12 and ok["posterior_err"] < 1e-9
    bad = ch.elbo_identities(0, lg=_lg(ShiftedElbo))
    assert bad["gap_err"] > 0.4 and bad["posterior_err"] > 0.4


def test_eq4_reparameterized_estimator_holds_and_catches_a_bias():
    assert ch.reparam_check(0, draws=100_000)["verdict"] is True
    assert ch.reparam_check(0, draws=20_000, lg=_lg(ShiftedLikelihood))["verdict"] is False


def test_eq7_and_the_jensen_chain_hold_and_catch_a_wrong_model():
    assert ch.mi_gaussian_check(0)["verdict"] is True
    assert ch.jensen_chain_check(0)["verdict"] is True
    assert ch.jensen_chain_check(0, draws=5000, lg=_lg(ShiftedLikelihood))["verdict"] is False  # the closed form no longer matches


def test_discrete_and_dual_identities():
    dm = ch.discrete_mi_check(0)
    assert dm["spread"] < 1e-12 and dm["function_err"] < 1e-12 and dm["min_I"] >= 0 and dm["max_I_minus_minH"] <= 1e-12
    dv = ch.dual_vae_check(0)
    assert dv["swap_err"] < 1e-12 and dv["min_slack"] > 0 and dv["equality_err"] < 1e-12
    gp = ch.gaussian_pair_check(0)
    assert gp["agree"] is True and gp["above"]
    assert ch.gaussian_pair_check(0, sigma=1.0, rho=0.1)["above"] is False  # unit scale, weak correlation: I below H


# ------------------------------------------------------------------------------------------- the algorithm
def test_loss_steps_hold_and_catch_a_wrong_entropy(images, monkeypatch):
    m = tiny()
    r = ch.loss_steps_check(m, images[:50], 1.0, x_tilde="relaxed")
    assert max(r["mi_err"], r["elbo_err"], r["hand_elbo_err"]) < 1e-6
    monkeypatch.setattr(VariationalMILoss, "_entropy", lambda self, model, out: 0.0)  # H(c) forgotten
    assert ch.loss_steps_check(m, images[:50], 1.0, x_tilde="relaxed")["mi_err"] > 1e-3


def test_constant_compute_counts_passes(images):
    m = tiny()
    assert ch.constant_compute(m, images[:100], lams=(0.5,), sizes=(20, 40))["verdict"] is True

    def twice(model, x, step=0):  # a loss that decodes the batch twice
        out = model(x)
        return (model.decode(out.z).mean() + out.out.mean()), {}

    rows = ch.count_passes(m, twice, images[:20])
    assert len(rows["decoder"]) == 2 and len(rows["encoder"]) == 1


def test_no_extra_parameters_catches_an_auxiliary_network():
    vae, info = tiny(), tiny()
    assert ch.no_extra_parameters(vae, info, InfoVAELoss(lam=1.0))["verdict"] is True
    q = AuxiliaryQ(SHAPE, MITarget(vae.latent, "c"), hidden=[8])
    assert ch.no_extra_parameters(vae, info, VariationalMILoss(q=q))["verdict"] is False
    assert ch.no_extra_parameters(vae, tiny(d=5), InfoVAELoss(lam=1.0))["verdict"] is False


# ------------------------------------------------------------------------------------------- trained-model measures
def test_kl_mc_check_holds_and_catches_a_wrong_closed_form(images, monkeypatch):
    m = set_encoder(tiny(), scale=0.1, logvar=-1.0)
    assert ch.kl_closed_vs_mc(m, images, draws=200)["verdict"] is True
    monkeypatch.setattr(ch, "kl_normal_std_normal", lambda mu, logvar: 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar) + 0.1)
    assert ch.kl_closed_vs_mc(m, images, draws=200)["verdict"] is False


def test_minibatch_estimate_is_unbiased():
    v = np.random.default_rng(0).normal(-100, 20, 2000)
    assert ch.minibatch_unbiased(v, m=100, batches=1000)["verdict"] is True


def test_gradient_noise_l1_claim_turns_with_the_posterior_noise(images):
    sharp = set_encoder(tiny(), scale=1.0, logvar=-20.0)  # posterior almost a point: one sample is as good as ten
    with torch.no_grad():
        sharp.decoder.net[0].weight.mul_(5)
    r = ch.gradient_noise_ratio(sharp, images, batches=20, batch_size=20, seed=0)
    assert ch.decide(r["ratio"], r["se"], 1.25, above=False) is True
    noisy = set_encoder(tiny(), scale=0.1, logvar=2.0)  # wide posteriors and a decoder that listens: MC noise dominates
    with torch.no_grad():
        noisy.decoder.net[0].weight.mul_(20)
    r = ch.gradient_noise_ratio(noisy, images, batches=20, batch_size=20, seed=0)
    assert ch.decide(r["ratio"], r["se"], 1.25, above=False) is False


def test_encoder_bounds_decide_who_has_more_information(images):
    informative = set_encoder(tiny(), scale=3.0, logvar=-6.0)
    prior = set_encoder(tiny(), scale=0.0, logvar=0.0)  # q(z|x) = p(z): no information, zero rate
    a, b = ch.encoder_total_bounds(informative, images), ch.encoder_total_bounds(prior, images)
    assert b.up == pytest.approx(0.0, abs=1e-9) and a.lo > 1.0
    assert ch.higher(a, b) is True  # vae_mi_enforced with a trained-like model
    assert ch.higher(b, a) is False  # ... and with a model that learned nothing


def test_generative_upper_bound_is_near_zero_when_the_decoder_ignores_the_code():
    m = tiny()
    with torch.no_grad():
        m.decoder.net[0].weight.zero_()  # p(x|z, c) = p(x): no information
    up, se = ch.generative_mi_upper_bound(m, 400, 20, seed=0)
    assert abs(up) < 0.05 + 3 * se
    g_info = ch.Bounds(-1.0, 0.01, up, se)  # so "the total is higher for infoVAE" fails against any informative VAE
    assert ch.higher(g_info, ch.Bounds(2.0, 0.05, 3.0, 0.05), combined=True) is False


def test_z_to_zero_and_similar_total_turn():
    vae_z = ch.Bounds(4.0, 0.05, 5.0, 0.05)
    ok = ch.z_zero_quickly(ch.Bounds(0.0, 0.01, 0.05, 0.01), vae_z, [0.5, 0.1, 0.05, 0.04], share=0.05)
    assert ok["verdict"] is True and ok["first_epoch"] == 2
    assert ch.z_zero_quickly(ch.Bounds(2.0, 0.05, 3.0, 0.05), vae_z, [3.0, 3.0], share=0.05)["verdict"] is False
    slow = ch.z_zero_quickly(ch.Bounds(0.0, 0.01, 0.05, 0.01), vae_z, [1.0, 1.0, 1.0, 0.05], share=0.05)
    assert slow["verdict"] is False  # gets there, but not in the first half
    vae_total = ch.Bounds(9.0, 0.1, 10.0, 0.1)
    assert ch.ic_similar_total(ch.Bounds(9.5, 0.1, 0, 0), (10.0, 0.1), vae_total) is True
    assert ch.ic_similar_total(ch.Bounds(2.0, 0.1, 0, 0), (3.0, 0.1), vae_total) is False


def test_orders_and_delta_posterior_turn():
    rng = np.random.default_rng(0)
    base = rng.normal(-100, 5, 500)
    good = {"a": {"elbo": base + 2, "log_rec_prob": base + 3}, "b": {"elbo": base, "log_rec_prob": base}}
    assert ch.orders_agree(good)["verdict"] is True
    bad = {"a": {"elbo": base + 2, "log_rec_prob": base - 3}, "b": {"elbo": base, "log_rec_prob": base}}
    assert ch.orders_agree(bad)["verdict"] is False
    same = {"a": {"elbo": base, "log_rec_prob": base + 1}, "b": {"elbo": base, "log_rec_prob": base}}
    assert ch.orders_agree(same)["verdict"] is None  # no pair differs in ELBO
    lv_vae = rng.normal(-2, 0.1, 300)
    assert ch.delta_posterior([1.0, 0.3, 0.01], lv_vae - 10, lv_vae)["verdict"] is True
    assert ch.delta_posterior([1.0, 0.3, 0.5], lv_vae - 10, lv_vae)["verdict"] is False  # rises at the last epoch
    assert ch.delta_posterior([1.0, 0.9, 0.8], lv_vae - 1, lv_vae)["verdict"] is False  # narrower, not ten times


def test_salience_and_per_dim_bound():
    m = set_encoder(tiny(), scale=3.0, logvar=-4.0)
    bound, se = ch.per_dim_lower_bound(m, 500, seed=0)
    assert bound.shape == (4,) and np.all(np.isfinite(bound)) and np.all(se > 0)
    assert ch.spearman_salience(np.array([3, 2, 1, 0.0]), np.array([0.9, 0.5, 0.2, 0.1])) == pytest.approx(1.0)
    assert ch.spearman_salience(np.array([3, 2, 1, 0.0]), np.array([0.1, 0.2, 0.5, 0.9])) < 0.8
