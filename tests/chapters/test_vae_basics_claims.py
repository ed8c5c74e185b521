"""The functions that decide the claims of book/vae_basics.ipynb: each holds on a correct small case and turns to a
failing verdict on a broken model or a corrupted input (so that a check that cannot fail would be caught here)."""
import math

import numpy as np
import pytest
import torch
from scipy import optimize, stats
from torch import distributions as D

import vaemi
from vaemi.book.results import INCONCLUSIVE
from vaemi.chapters import vae_basics as vb
from vaemi.measures.toy import LinearGaussian


# ------------------------------------------------------------------------------------------- verdict helpers
def test_within_median_below_and_combine_have_three_outcomes():
    assert vb.within(0.1, 0.05, z=3, n=100) is True
    assert vb.within(0.5, 0.05, z=3, n=100) is False
    assert vb.within(0.1, 0.05, z=3, n=5) == INCONCLUSIVE          # too few draws for the SE to mean anything
    assert vb.within(np.nan, 0.05, z=3, n=100) is None
    assert vb.within([0.0, 0.1], [0.1, 0.01], z=5, n=100) is False   # every element must agree
    assert vb.median_below(np.r_[np.zeros(95), np.ones(5)], 0.5) is True
    assert vb.median_below(np.ones(100), 0.5) is False
    assert vb.median_below(np.r_[np.zeros(52), np.ones(48)], 0.5) == INCONCLUSIVE


# ------------------------------------------------------------------------------------------- 1. motivation
def _mixture(seed=0, n=5000):
    rng = np.random.default_rng(seed)
    (x_fit, z_fit), (x_held, z_held) = vb.sample_mixture(rng, n), vb.sample_mixture(rng, n)
    single = stats.norm(x_fit.mean(), x_fit.std())
    return x_fit, z_fit, x_held, z_held, vb.mixture_logpdf(x_held), single.logpdf(x_held)


def test_mixture_claim_holds_for_the_true_mixture_and_fails_for_one_gaussian():
    *_, lt, ls = _mixture()
    assert vb.mixture_verdict(lt, ls, lt)["passed"] is True          # the true density as the latent-variable model
    assert vb.mixture_verdict(lt, ls, ls)["passed"] is False         # "a mixture" that is one Gaussian


def test_conditional_is_simple_fails_when_the_latent_says_nothing():
    x_fit, z_fit, x_held, z_held, lt, ls = _mixture()
    assert vb.conditional_is_simple(x_fit, z_fit, x_held, z_held, lt, ls)["passed"] is True
    rng = np.random.default_rng(1)   # a latent unrelated to x: x | z is the whole mixture, not one Gaussian
    bad = vb.conditional_is_simple(x_fit, rng.permutation(z_fit), x_held, rng.permutation(z_held), lt, ls)
    assert bad["passed"] is False


# ------------------------------------------------------------------------------------------- 2. the marginal
def test_eq1_checks_hold_on_the_estimator_and_fail_on_a_biased_one():
    marg = vb.marginal_errors([1, 2], 500, 20, seed=0)
    summary = vb.marginal_summary(marg)
    assert vb.marginal_low_dim(summary) is True
    verdict, dims = vb.marginal_unbiased(summary, 500)
    assert verdict is True and dims[0] == 1
    biased = marg.assign(error=marg.error - 0.3, ratio=marg.ratio * math.exp(-0.3))   # an estimator 0.3 nats low
    summary_b = vb.marginal_summary(biased)
    assert vb.marginal_low_dim(summary_b) is False and vb.marginal_unbiased(summary_b, 500)[0] is False
    few = vb.marginal_summary(vb.marginal_errors([1, 2], 500, 4, seed=0))                 # 4 repeats: cannot decide
    assert vb.marginal_low_dim(few) == INCONCLUSIVE


def test_prior_sampling_fails_in_high_dimension_decided():
    marg = vb.marginal_errors([1, 20], 500, 20, seed=3)
    assert vb.marginal_fails_high_dim(marg, 500)["passed"] is True
    assert vb.marginal_degrades(vb.marginal_summary(marg)) is True
    assert vb.marginal_fails_high_dim(vb.marginal_errors([1, 2], 500, 20, seed=3), 500)["passed"] is False


def test_eq2_product_form_is_degenerate_only_for_a_dataset():
    lg = LinearGaussian.random(2, 2, sigma=0.5, seed=2)
    x = lg.sample(20, seed=3)[0]
    ok = vb.eq2_verdicts(vb.eq2_estimates(lg, x, 500, 20, seed=0), 20, 500)
    assert ok["per_point_ok"] is True and ok["product_degenerate"] is True
    one = vb.eq2_verdicts(vb.eq2_estimates(lg, x[:1], 500, 20, seed=0), 1, 500)   # one point: the two forms coincide
    assert one["product_degenerate"] is False
    est = vb.eq2_estimates(lg, x, 500, 20, seed=0)
    assert vb.eq2_verdicts(est.assign(per_point_error=est.per_point_error - 3.0), 20, 500)["per_point_ok"] is False


# ------------------------------------------------------------------------------------------- 3. MLE = min KL
def test_mle_equals_min_kl_and_its_failure_on_a_biased_estimate():
    p = stats.gamma(a=2.0)
    x = p.rvs(size=20000, random_state=0)
    assert vb.sample_sd_se(p, 1) == pytest.approx(math.sqrt(5) / 2 * p.std(), rel=1e-12)   # delta method, Gamma(2)
    ok = vb.mle_equals_min_kl(x.mean(), x.std(), p.mean(), p.std(), p, len(x))
    assert ok["passed"] is True
    assert vb.mle_equals_min_kl(x.mean(), 1.05 * x.std(), p.mean(), p.std(), p, len(x))["passed"] is False


def test_kl_zero_iff_equal_catches_a_kl_that_vanishes_between_different_distributions():
    assert vb.kl_zero_iff_equal([1, 5], 0, 0.0, 0.1)["passed"] is True
    no_mean = lambda mu, lv: -0.5 * (1 + lv - lv.exp())   # forgets the mu^2 term
    assert vb.kl_zero_iff_equal([1, 5], 0, 0.0, 0.1, kl_fn=lambda mu, lv: no_mean(mu, 0 * lv))["passed"] is False
    assert vb.kl_zero_iff_equal([1], 0, 0.0, 0.0)["passed"] is False   # KL zero to a distribution outside the family


def test_argmax_and_underflow_checks():
    x = stats.gamma(a=2.0).rvs(size=5000, random_state=1)
    assert vb.argmax_agree(x[:50], x.mean(), x.std())["passed"] is True
    assert vb.argmax_agree(x, x.mean(), x.std())["passed"] is False     # 5000 factors: the product is 0 everywhere
    assert vb.product_underflow(x, x.mean() + 0.5, x.std())["passed"] is True
    assert vb.product_underflow(x[:20], x.mean() + 0.5, x.std())["passed"] is False   # a small product is representable


# ------------------------------------------------------------------------------------------- 4. Jensen
def test_log_tangent_and_jensen_gap_verdicts():
    assert vb.log_tangent_gap(50)["passed"] is True
    gaps = vb.jensen_gaps([1, 20], 500, seed=0)
    v = vb.gap_verdicts(gaps)
    assert v["very_large"] is True and v["grows"] is True
    small = gaps.assign(mean_gap=gaps.mean_gap / 100, se_gap=gaps.se_gap / 100)   # a gap of a fraction of a nat
    assert vb.gap_verdicts(small)["very_large"] is False
    flat = gaps.assign(mean_gap=[5.0, 6.0], se_gap=[0.01, 0.01])
    assert vb.gap_verdicts(flat)["grows"] is False


def test_prior_objective_switches_the_latent_off():
    pf = vb.prior_objective_fit(seed=0, n=2000)
    assert pf["passed"] is True and pf["w_norm_prior"] < 1e-4 < pf["w_norm_ml"]


# ------------------------------------------------------------------------------------------- 5. the ELBO
def _q(g, d=3):
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    return D.MultivariateNormal(torch.randn(d, generator=g, dtype=torch.float64), A @ A.T + 0.1 * torch.eye(d, dtype=torch.float64))


def test_maximizing_the_elbo_over_q_reaches_the_posterior_and_a_truncated_run_fails():
    import pandas as pd

    lg = LinearGaussian.random(3, 5, seed=1)
    x = lg.sample(1, seed=2)[0][0]
    g = torch.Generator().manual_seed(0)
    qs = [_q(g) for _ in range(3)]
    assert vb.elbo_max_verdict(pd.DataFrame([vb.maximize_elbo_over_q(lg, x, q) for q in qs])) is True
    assert vb.elbo_max_verdict(pd.DataFrame([vb.maximize_elbo_over_q(lg, x, q, max_iter=2) for q in qs])) is False


def test_elbo_sum_over_data_and_a_wrong_posterior():
    lg = LinearGaussian.random(3, 5, seed=1)
    x = lg.sample(10, seed=2)[0]
    g = torch.Generator().manual_seed(0)
    qs = [_q(g) for _ in range(10)]
    assert vb.elbo_sum_over_data(lg, x, qs)["passed"] is True
    wrong = LinearGaussian(lg.W, lg.b, lg.sigma2)
    wrong.posterior = lambda xi: LinearGaussian(lg.W, lg.b, 2 * lg.sigma2).posterior(xi)   # a posterior off by a factor
    assert vb.elbo_sum_over_data(wrong, x, qs)["passed"] is False


def test_optimal_diag_q_is_the_per_point_maximum_of_the_elbo():
    g = torch.Generator().manual_seed(0)
    W, b = torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    ls2 = torch.tensor(math.log(0.3), dtype=torch.float64)
    x = torch.randn(1, 5, generator=g, dtype=torch.float64)
    m, lv = vb.optimal_diag_q(x, W, b, ls2)
    f = lambda t: -float(vb._toy_elbo(x, torch.tensor(t[:2])[None], torch.tensor(t[2:])[None], W, b, ls2))
    res = optimize.minimize(f, np.zeros(4), method="BFGS", options=dict(gtol=1e-10))
    assert -res.fun == pytest.approx(-f(np.r_[m[0].numpy(), lv[0].numpy()]), abs=1e-8)
    assert np.allclose(res.x, np.r_[m[0].numpy(), lv[0].numpy()], atol=1e-4)


def test_amortization_verdicts_fail_when_per_point_q_wins():
    toy = {"elbo_diff": {5: (0.5, 0.02), 50: (0.3, 0.02)}, "kl_data_initial": 3.0, "kl_data_final": 0.01,
           "amortization_gap": 0.01, "amortization_gap_se": 0.001}
    assert vb.amortization_verdicts(toy) == dict(beats=True, recovers=True, new_points=True)
    bad = toy | {"elbo_diff": {5: (0.5, 0.02), 50: (-0.3, 0.02)}, "kl_data_final": 0.5, "amortization_gap": 0.2}
    assert vb.amortization_verdicts(bad) == dict(beats=False, recovers=False, new_points=False)


# ------------------------------------------------------------------------------------------- 6-7. KL and gradients
def test_density_j_integrals_and_kl_gradient():
    g = torch.Generator().manual_seed(0)
    mu, lv = torch.randn(4, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    z = D.Independent(D.Normal(mu, (0.5 * lv).exp()), 1).sample((100,))
    err = vb.diag_density_errors(mu, lv, z)
    assert err["rel_q"] < 1e-9 and err["rel_p"] < 1e-9
    j = vb.j_integrals(seed=0, n=2)
    assert j["rel_1d"] < 1e-8 and j["rel_J"] < 1e-7 and j["rel_I2"] < 1e-7
    assert vb.kl_gradient_check(mu, lv, 5000, seed=0)["passed"] is True
    no_half = lambda m, v: -(1 + v - v.exp() - m.pow(2))   # eq. 22 without its 1/2
    assert vb.kl_gradient_check(mu, lv, 5000, seed=0, kl_fn=no_half)["passed"] is False


def test_gradient_estimators_unbiased_and_variance_verdicts():
    tab = vb.gradient_estimators([1, 10], 20000, seed=0)
    v = vb.reparam_verdicts(tab)
    assert v["unbiased"] is True and v["lower"] is True and v["grows"] is True
    swapped = tab.assign(method=tab.method.map({"pathwise": "score", "score": "pathwise"}))
    assert vb.reparam_verdicts(swapped)["lower"] is False


# ------------------------------------------------------------------------------------------- 8. the VAE
@pytest.fixture(scope="module")
def small_vae():
    torch.manual_seed(0)
    return vaemi.build_vae((1, 28, 28), 2, hidden=[32], likelihood="gaussian", variance=0.05), \
        (torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(1)) > 0.6).float()


def test_eq26_by_hand_holds_for_the_vae_and_fails_for_the_printed_form(small_vae):
    vae, x = small_vae
    assert vb.eq26_by_hand(vae, x[:50])["passed"] is True
    printed = vaemi.build_vae((1, 28, 28), 2, hidden=[32], likelihood="gaussian", variance=0.05)
    printed.load_state_dict(vae.state_dict())
    # the notes' printed eq. 26: -||f - x||^2 with no 1/(2 s^2) (and no constant) as the reconstruction term
    printed.likelihood.log_prob = lambda xx, out: -(xx - printed.likelihood.mean(out)).pow(2).flatten(1).sum(1)
    assert vb.eq26_by_hand(printed, x[:50])["passed"] is False


def test_importance_terms_and_encoder_gain(small_vae):
    vae, x = small_vae
    imp = vb.importance_terms(vae, x, 8, seed=0, batch_size=50)
    assert len(imp) == len(x) and (imp.iwae >= imp.elbo - 1e-9 * imp.elbo.abs()).all()
    broken = vaemi.build_vae((1, 28, 28), 2, hidden=[32], likelihood="gaussian", variance=0.05)
    broken.load_state_dict(vae.state_dict())
    with torch.no_grad():   # an encoder that puts every q(z|x) far out in the tails of the prior
        broken.encoder.net[-1].bias[:2] += 8.0
    imp_b = vb.importance_terms(broken, x, 8, seed=0, batch_size=50)
    assert vb.encoder_gain(broken, x, imp_b.e_q_loglik, 8, seed=1)["passed"] is False


def test_minibatch_gradient_unbiased_only_for_uniform_indices(small_vae):
    vae, x = small_vae
    g, err = vb.output_bias_gradients(vae, x, seed=0)
    assert g.shape == (len(x), 784) and err < 1e-4
    assert vb.minibatch_gradient(g, 20, 2000, seed=0)["passed"] is True
    probs = np.linspace(1, 3, len(x))     # indices drawn with unequal probabilities: a biased estimate
    assert vb.minibatch_gradient(g, 20, 2000, seed=0, probs=probs / probs.sum())["passed"] is False


def test_paired_trend():
    rng = np.random.default_rng(0)
    base = rng.normal(size=500)
    up = [base, base + 0.5 + 0.1 * rng.normal(size=500), base + 1.0 + 0.1 * rng.normal(size=500)]
    assert vb.paired_trend(up, increasing=True) is True
    assert vb.paired_trend(up, increasing=False) is False
