"""Closed forms against torch.distributions (tight) and Monte Carlo (within 5 standard errors)."""
import math

import pytest
import torch
from torch import distributions as D

from vaemi.maths import distributions as vd


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _mc_check(samples: torch.Tensor, value: float, k: float = 5.0):
    se = samples.std() / math.sqrt(samples.numel())
    assert abs(samples.mean() - value) < k * se, (float(samples.mean()), value, float(se))


@pytest.mark.parametrize("d", [1, 2, 10, 100])
def test_kl_normal_std_normal_matches_torch_and_mc(d):
    g = torch.Generator().manual_seed(d)
    mu, logvar = torch.randn(d, generator=g), torch.randn(d, generator=g).clamp(-2, 2)
    closed = vd.kl_normal_std_normal(mu, logvar).sum()
    q = D.Independent(D.Normal(mu, (0.5 * logvar).exp()), 1)
    p = D.Independent(D.Normal(torch.zeros(d), torch.ones(d)), 1)
    assert torch.allclose(closed, D.kl_divergence(q, p), atol=1e-6)
    torch.manual_seed(d)
    z = q.sample((100_000,))
    _mc_check(q.log_prob(z) - p.log_prob(z), float(closed))


def test_kl_is_zero_iff_equal_and_positive_otherwise():
    assert torch.allclose(vd.kl_normal_std_normal(torch.zeros(5), torch.zeros(5)), torch.zeros(5))
    assert (vd.kl_normal_std_normal(torch.randn(100), torch.randn(100)) >= 0).all()


def test_kl_normal_normal_matches_torch_and_mc():
    g = torch.Generator().manual_seed(1)
    a, b, c, e = (torch.randn(7, generator=g) for _ in range(4))
    ours = vd.kl_normal_normal(a, b, c, e)
    q, p = D.Normal(a, (0.5 * b).exp()), D.Normal(c, (0.5 * e).exp())
    assert torch.allclose(ours, D.kl_divergence(q, p), atol=1e-10)
    torch.manual_seed(0)
    z = q.sample((100_000,))
    for j in range(7):
        _mc_check((q.log_prob(z) - p.log_prob(z))[:, j], float(ours[j]))


def test_entropies_match_torch_and_mc():
    logvar = torch.linspace(-3, 3, 7)
    q = D.Normal(torch.zeros(7), (0.5 * logvar).exp())
    assert torch.allclose(vd.gaussian_entropy(logvar), q.entropy(), atol=1e-10)
    torch.manual_seed(0)
    z = q.sample((100_000,))
    for j in range(7):
        _mc_check(-q.log_prob(z)[:, j], float(vd.gaussian_entropy(logvar)[j]))
    assert vd.std_normal_entropy(3) == pytest.approx(1.5 * math.log(2 * math.pi * math.e))
    assert vd.std_normal_entropy(1) == pytest.approx(float(D.Normal(0.0, 1.0).entropy()))


def test_gaussian_log_prob_matches_torch():
    x, m = torch.randn(20), torch.randn(20)
    assert torch.allclose(vd.gaussian_log_prob(x, m, 0.3), D.Normal(m, math.sqrt(0.3)).log_prob(x), atol=1e-10)


def test_categorical_kl_and_entropy_match_torch():
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(2))
    uniform = D.Categorical(logits=torch.zeros(10))
    ref = D.kl_divergence(D.Categorical(logits=logits), uniform)
    assert torch.allclose(vd.kl_categorical_uniform(logits), ref, atol=1e-10)
    assert torch.allclose(vd.categorical_entropy(logits), D.Categorical(logits=logits).entropy(), atol=1e-10)
    assert (vd.kl_categorical_uniform(logits) <= math.log(10) + 1e-12).all()
