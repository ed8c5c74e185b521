import math

import numpy as np
import pytest
import torch
from torch import distributions as D

from vaemi.maths.gradients import per_sample_gradients
from vaemi.measures.toy import LinearGaussian, lemma1_sides, lemma1_trials


def _joint_conditional(lg, x):
    """Posterior by conditioning the joint Gaussian of (z, x) -- independent of the formula in toy.py."""
    d = lg.d
    cov_zz = torch.eye(d, dtype=torch.float64)
    cov_xz = lg.W
    cov_xx = lg.W @ lg.W.T + lg.sigma2 * torch.eye(lg.D, dtype=torch.float64)
    K = cov_xz.T @ torch.linalg.inv(cov_xx)
    return K @ (x - lg.b), cov_zz - K @ cov_xz


def test_posterior_matches_joint_gaussian_conditioning():
    lg = LinearGaussian.random(3, 6, seed=1)
    x = lg.sample(1, seed=2)[0][0]
    mean, cov = _joint_conditional(lg, x)
    post = lg.posterior(x)
    assert torch.allclose(post.mean, mean, atol=1e-10)
    assert torch.allclose(post.covariance_matrix, cov, atol=1e-10)


def test_elbo_identity_and_bayes_rule():
    lg = LinearGaussian.random(4, 5, seed=3)
    x = lg.sample(1, seed=4)[0][0]
    post, log_px = lg.posterior(x), lg.marginal().log_prob(x)
    q = D.MultivariateNormal(torch.ones(4, dtype=torch.float64), 0.5 * torch.eye(4, dtype=torch.float64))
    assert torch.allclose(lg.elbo(x, q) + D.kl_divergence(q, post), log_px, atol=1e-10)
    assert torch.allclose(lg.elbo(x, post), log_px, atol=1e-10)
    z = torch.randn(3, 4, dtype=torch.float64)  # Bayes: log p(x|z) + log p(z) - log p(z|x) = log p(x)
    assert torch.allclose(lg.likelihood(z).log_prob(x) + lg.prior().log_prob(z) - post.log_prob(z),
                          log_px.expand(3), atol=1e-10)


def test_mc_marginal_converges_in_low_dimension():
    lg = LinearGaussian.random(1, 1, seed=0)
    x = lg.sample(1)[0][0]
    est, ess = lg.mc_log_marginal(x, 200_000)
    assert abs(float(est - lg.marginal().log_prob(x))) < 0.01 and ess > 10_000


def test_gradient_estimators_unbiased_and_pathwise_lower_variance():
    mu, ls = torch.tensor([0.3, -0.7], dtype=torch.float64), torch.tensor([0.1, -0.2], dtype=torch.float64)
    exact = torch.cat([2 * mu, 2 * (2 * ls).exp()])
    var = {}
    for method in ("pathwise", "score"):
        g = per_sample_gradients(lambda z: z.pow(2).sum(-1), mu, ls, 200_000, method, seed=1)
        se = g.std(0) / math.sqrt(len(g))
        assert ((g.mean(0) - exact).abs() < 5 * se).all(), method
        var[method] = g.var(0).mean()
    assert var["score"] > 3 * var["pathwise"]


@pytest.mark.parametrize("seed", range(5))
def test_lemma1_holds_exactly_on_discrete_joints(seed):
    rng = np.random.default_rng(seed)
    p_z, pxz = rng.dirichlet(np.ones(4)), rng.dirichlet(np.ones(6), size=4)
    f = np.random.default_rng(100 + seed).normal(size=(pxz.shape[1], len(p_z)))
    lhs, rhs = lemma1_sides(p_z, pxz, f)
    assert lhs == pytest.approx(rhs, abs=1e-12)
    # with f(x, z) = log p(z | x) both sides are -H(z | x), computed here from the joint directly
    joint = p_z[:, None] * pxz
    post = joint / joint.sum(0)
    lhs, rhs = lemma1_sides(p_z, pxz, np.log(post).T)
    assert lhs == pytest.approx(float((joint * np.log(post)).sum()), abs=1e-12) and rhs == pytest.approx(lhs, abs=1e-12)


def test_lemma1_trials_bound_and_identity():
    t = lemma1_trials(np.random.default_rng(0), trials=7)
    assert len(t) == 7 and list(t.columns) == ["lemma_err", "I", "bound_any_q", "bound_true_posterior"]
    assert (t.lemma_err < 1e-12).all() and (t.I > 0).all()
    assert (t.bound_any_q <= t.I + 1e-12).all()
    assert np.allclose(t.bound_true_posterior, t.I, atol=1e-12)
    # the same generator state gives the same trials
    assert t.equals(lemma1_trials(np.random.default_rng(0), trials=7))
