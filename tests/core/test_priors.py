"""The VIMAE priors (vaemi.maths.priors): moments, density, entropies, bad input."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from vaemi.maths.distributions import std_normal_entropy
from vaemi.maths.priors import (LOGISTIC_UNIT_SCALE, PRIORS, entropy_mc, make_prior, prior_entropy, standard_normal,
                                unit_logistic)

S = LOGISTIC_UNIT_SCALE


def test_scale_gives_unit_variance():
    assert S ** 2 * math.pi ** 2 / 3 == pytest.approx(1.0, rel=1e-15)
    assert stats.logistic(scale=S).var() == pytest.approx(1.0, rel=1e-12)


def test_logistic_mean_zero_variance_one_mc():
    n, d = 200_000, 2
    torch.manual_seed(0)
    z = unit_logistic(d, dtype=torch.float64).sample((n,))
    assert z.shape == (n, d)
    mean, var = z.mean(0), z.var(0)
    # s.e. of the mean 1/sqrt(n); of the variance sqrt((kurtosis - 1)/n), kurtosis 4.2
    assert (mean.abs() < 4 / math.sqrt(n)).all()
    assert ((var - 1).abs() < 4 * math.sqrt(3.2 / n)).all()
    # and it is not a normal: excess kurtosis 1.2 (s.e. of the sample kurtosis here ~ 0.03)
    kurt = ((z - mean) ** 4).mean(0) / var ** 2 - 3
    assert ((kurt - 1.2).abs() < 0.25).all()


def test_logistic_density_is_torch_and_exact():
    """torch's TransformedDistribution log_prob equals the logistic log-density, tails included, up to an
    absolute ~e^-20 (F.softplus returns t itself for t > 20)."""
    x = torch.tensor([-40.0, -12.0, -3.0, -0.5, 0.0, 0.7, 3.0, 12.0, 40.0], dtype=torch.float64)
    ref = stats.logistic.logpdf(x.numpy(), scale=S)
    lp = unit_logistic(1, dtype=torch.float64).log_prob(x[:, None]).numpy()
    np.testing.assert_allclose(lp, ref, rtol=0, atol=1e-8)
    lp32 = unit_logistic(1).log_prob(x[:, None].float()).numpy()
    np.testing.assert_allclose(lp32, ref, rtol=1e-5)
    # d dimensions: the log-density is the sum over dimensions
    z = torch.randn(7, 3, dtype=torch.float64)
    np.testing.assert_allclose(unit_logistic(3, dtype=torch.float64).log_prob(z).numpy(),
                               stats.logistic.logpdf(z.numpy(), scale=S).sum(1), rtol=1e-12)
    np.testing.assert_allclose(standard_normal(3, dtype=torch.float64).log_prob(z).numpy(),
                               stats.norm.logpdf(z.numpy()).sum(1), rtol=1e-12)


@pytest.mark.parametrize("name", PRIORS)
def test_density_integrates_to_one(name):
    p = make_prior(name, 1, dtype=torch.float64)

    def dens(x):
        return math.exp(p.log_prob(torch.tensor([[x]], dtype=torch.float64)).item())

    mass, _ = integrate.quad(dens, -math.inf, math.inf)
    second, _ = integrate.quad(lambda x: x * x * dens(x), -math.inf, math.inf)
    assert mass == pytest.approx(1.0, abs=1e-8)
    assert second == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("d", [1, 2, 8])
@pytest.mark.parametrize("name", PRIORS)
def test_entropy_closed_form_matches_mc(name, d):
    mean, se = entropy_mc(make_prior(name, d), 100_000, seed=d)
    assert 0 < se < 0.01 * max(1, d)
    assert abs(mean - prior_entropy(name, d)) < 4 * se


def test_entropy_values_and_logistic_below_normal():
    assert prior_entropy("normal", 1) == pytest.approx(0.5 * math.log(2 * math.pi * math.e), rel=1e-15)
    assert prior_entropy("logistic", 1) == pytest.approx(stats.logistic(scale=S).entropy(), rel=1e-12)
    for d in (1, 2, 8):
        assert prior_entropy("normal", d) == pytest.approx(std_normal_entropy(d), rel=1e-15)
        assert prior_entropy("logistic", d) < prior_entropy("normal", d)
        assert prior_entropy("normal", d) - prior_entropy("logistic", d) == pytest.approx(
            d * (0.5 * math.log(2 * math.pi * math.e) - math.log(S) - 2), rel=1e-12)
    # the MC estimates separate too (gap 0.115 nats at d = 8, s.e. ≈ 0.005 each)
    hn, sn = entropy_mc(make_prior("normal", 8), 100_000, seed=1)
    hl, sl = entropy_mc(make_prior("logistic", 8), 100_000, seed=1)
    assert hn - hl > 4 * math.hypot(sn, sl)


def test_entropy_mc_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = entropy_mc(make_prior("logistic", 2), 1000, seed=5)
    after = torch.rand(1)
    assert a == entropy_mc(make_prior("logistic", 2), 1000, seed=5)
    assert a != entropy_mc(make_prior("logistic", 2), 1000, seed=6)
    assert torch.equal(before, after)


def test_shapes_dtype_sampling():
    for name in PRIORS:
        p = make_prior(name, 4, dtype=torch.float64)
        z = p.sample((5,))
        assert z.shape == (5, 4) and z.dtype == torch.float64
        assert p.log_prob(z).shape == (5,)
        assert p.event_shape == (4,) and p.batch_shape == ()
    assert isinstance(make_prior("logistic", 2).base_dist, torch.distributions.TransformedDistribution)


def test_bad_input():
    with pytest.raises(ValueError, match=r"unknown prior 'laplace'.*'normal', 'logistic'"):
        make_prior("laplace", 2)
    with pytest.raises(ValueError, match="unknown prior"):
        prior_entropy("gaussian", 2)
    for bad in (0, -1, 2.5, True, "2"):
        with pytest.raises(ValueError, match="latent dimension"):
            make_prior("normal", bad)
        with pytest.raises(ValueError, match="latent dimension"):
            prior_entropy("logistic", bad)
    with pytest.raises(ValueError, match="n >= 2"):
        entropy_mc(make_prior("normal", 1), 1)
