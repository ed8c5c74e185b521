"""MMD² estimator, WAE kernels, the Gaussian–RBF closed form and the permutation test (vaemi.maths.mmd)."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from vaemi.maths.mmd import (WAE_IMQ_SCALES, _gaussian_rbf_expectation, gaussian_rbf_mmd2_closed_form, mmd2,
                             mmd_permutation_test, wae_median_bandwidth2)
from vaemi.maths.priors import make_prior

#: Two Gaussians in d = 2 with different means and covariances (one correlated) for the closed-form checks.
MU1, COV1 = torch.tensor([0.0, 0.0]), torch.tensor([[1.0, 0.3], [0.3, 0.8]])
MU2, COV2 = torch.tensor([0.6, -0.2]), torch.tensor([[1.5, 0.0], [0.0, 0.6]])
H = 1.2


def _gaussian(mu, cov, n, g):
    return mu + torch.randn(n, mu.shape[0], generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T


# ---------------------------------------------------------------------- slow references (double loops)
def _imq_ref(a, b, d, scales=WAE_IMQ_SCALES, sigma2=1.0):
    r2 = float(((a - b) ** 2).sum())
    return sum(2 * d * sigma2 * s / (2 * d * sigma2 * s + r2) for s in scales)


def _mmd2_ref(x, y, k, unbiased=True):
    x, y = x.numpy(), y.numpy()
    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if not (unbiased and i == j))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if not (unbiased and i == j))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    nxx, nyy = (n * (n - 1), m * (m - 1)) if unbiased else (n * n, m * m)
    return sxx / nxx + syy / nyy - 2 * sxy / (n * m)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy 2-core machine torch's thread hand-offs cost more than the work
    (measured: 600 small MMDs 25x slower, the n = 4000 permutation test 3-10x slower with 2 threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny():
    g = torch.Generator().manual_seed(3)
    return torch.randn(6, 3, generator=g, dtype=torch.float64), 1.5 * torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.4


@pytest.mark.parametrize("unbiased", [True, False])
def test_imq_matches_double_loop(tiny, unbiased):
    x, y = tiny
    ref = _mmd2_ref(x, y, lambda a, b: _imq_ref(a, b, 3), unbiased)
    assert mmd2(x, y, unbiased=unbiased).item() == pytest.approx(ref, rel=1e-10, abs=1e-12)
    ref2 = _mmd2_ref(x, y, lambda a, b: _imq_ref(a, b, 3, (0.5, 3.0), 2.0), unbiased)
    assert mmd2(x, y, scales=(0.5, 3.0), sigma2=2.0, unbiased=unbiased).item() == pytest.approx(ref2, rel=1e-10)


def test_rbf_matches_double_loop_fixed_and_wae_median(tiny):
    x, y = tiny
    h = 0.9
    ref = _mmd2_ref(x, y, lambda a, b: math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h)))
    assert mmd2(x, y, kernel="rbf", bandwidth=h).item() == pytest.approx(ref, rel=1e-10)
    # WAE: sigma2_k = top_k(cross, half)[half-1] + top_k(within-x, half)[half-1], half = (n^2 - n)/2 (n = m)
    x, y = x[:5], y
    n = 5
    half = (n * n - n) // 2
    cross = np.sort(((x[:, None] - y[None]) ** 2).sum(-1).numpy().ravel())[::-1]
    within = np.sort(((x[:, None] - x[None]) ** 2).sum(-1).numpy().ravel())[::-1]
    h2 = cross[half - 1] + within[half - 1]
    assert wae_median_bandwidth2(x, y).item() == pytest.approx(h2, rel=1e-10)
    ref = _mmd2_ref(x, y, lambda a, b: math.exp(-float(((a - b) ** 2).sum()) / (2 * h2)))
    assert mmd2(x, y, kernel="RBF").item() == pytest.approx(ref, rel=1e-10)
    assert mmd2(x, y, kernel="rbf", bandwidth="median").item() == pytest.approx(ref, rel=1e-10)


def test_gradients_finite_and_correct(tiny):
    x, y = (t.clone().requires_grad_(True) for t in tiny)
    for kw in ({}, {"unbiased": False}, {"kernel": "rbf", "bandwidth": 0.8}, {"kernel": "rbf"}):
        assert torch.autograd.gradcheck(lambda a, b: mmd2(a, b, **kw), (x, y))
    # same point twice (zero distances off the diagonal too): gradients stay finite
    z = torch.zeros(4, 2, requires_grad=True)
    mmd2(z, torch.randn(4, 2)).backward()
    assert torch.isfinite(z.grad).all()


def test_same_distribution_gives_near_zero_and_shift_does_not():
    """At n = 2000 the null s.d. of the unbiased IMQ MMD² (7 scales) is ≈ 1.6e-3 (d = 1, 2, measured);
    5 s.d. ≈ 8e-3. A unit mean shift gives ≈ 0.5, far above."""
    n, threshold = 2000, 8e-3
    for d in (1, 2):
        p = make_prior("normal", d)
        torch.manual_seed(10 + d)
        x, y = p.sample((n,)), p.sample((n,))
        assert abs(mmd2(x, y).item()) < threshold
        assert mmd2(x, y + 1.0).item() > 20 * threshold
    q = make_prior("logistic", 2)
    x, y = q.sample((n,)), q.sample((n,))
    assert abs(mmd2(x, y).item()) < threshold


def test_closed_form_expectation_matches_quadrature_1d():
    """J(δ, S) = E exp(-u²/2h²), u ~ N(δ, S), against scipy quad; and MMD² = 0 for equal Gaussians."""
    for delta, s, h in [(0.0, 2.0, 1.0), (0.7, 1.3, 0.5), (-2.0, 0.4, 2.0)]:
        num, _ = integrate.quad(lambda u: math.exp(-u * u / (2 * h * h) - (u - delta) ** 2 / (2 * s))
                                / math.sqrt(2 * math.pi * s), -math.inf, math.inf)
        got = _gaussian_rbf_expectation(torch.tensor([delta], dtype=torch.float64),
                                        torch.tensor([[s]], dtype=torch.float64), h * h).item()
        assert got == pytest.approx(num, rel=1e-8)
        assert got == pytest.approx(h / math.sqrt(h * h + s) * math.exp(-delta ** 2 / (2 * (h * h + s))), rel=1e-12)
    assert gaussian_rbf_mmd2_closed_form(MU1, COV1, MU1, COV1, H) == pytest.approx(0.0, abs=1e-14)
    assert gaussian_rbf_mmd2_closed_form(MU1, COV1, MU2, COV2, H) > 0
    # a degenerate (point-mass) Gaussian is allowed: PSD, not PD
    assert np.isfinite(gaussian_rbf_mmd2_closed_form([0.0], [[0.0]], [1.0], [[1.0]], 1.0))


def test_unbiased_mean_matches_rbf_closed_form_and_biased_is_off():
    """Mean of the U-statistic over repeats = population MMD² (within 4 MC s.e.); the V-statistic's mean is
    higher by (1 - E k(x,x'))/n + (1 - E k(y,y'))/m, also within 4 s.e."""
    n, m, reps = 100, 80, 300
    g = torch.Generator().manual_seed(0)
    u, v = [], []
    for _ in range(reps):
        x, y = _gaussian(MU1.double(), COV1.double(), n, g), _gaussian(MU2.double(), COV2.double(), m, g)
        u.append(mmd2(x, y, kernel="rbf", bandwidth=H).item())
        v.append(mmd2(x, y, kernel="rbf", bandwidth=H, unbiased=False).item())
    u, v = np.array(u), np.array(v)
    truth = gaussian_rbf_mmd2_closed_form(MU1, COV1, MU2, COV2, H)
    se_u, se_v = u.std(ddof=1) / math.sqrt(reps), v.std(ddof=1) / math.sqrt(reps)
    assert se_u < truth / 10                                # the check has teeth
    assert abs(u.mean() - truth) < 4 * se_u
    zero = torch.zeros(2, dtype=torch.float64)
    exx = _gaussian_rbf_expectation(zero, 2 * COV1.double(), H * H).item()
    eyy = _gaussian_rbf_expectation(zero, 2 * COV2.double(), H * H).item()
    bias = (1 - exx) / n + (1 - eyy) / m
    assert bias > 5 * se_v                                  # ... and tells the two estimators apart
    assert abs(v.mean() - (truth + bias)) < 4 * se_v


def test_permutation_test_separates_normal_from_logistic():
    """Unit-variance Normal vs Logistic (same mean and variance, kurtosis 3 vs 4.2) with the WAE IMQ kernel:
    n = 4000 per sample in d = 1 rejects at 1% (estimated power there ≈ 0.9; 2000 gives ≈ 0.5-0.8). The
    same n does not reject for two Normal samples."""
    n = 4000
    torch.manual_seed(0)
    x, y = make_prior("normal", 1).sample((n,)), make_prior("logistic", 1).sample((n,))
    stat, p = mmd_permutation_test(x, y, n_permutations=200, seed=0)
    assert stat > 0 and p < 0.01
    stat0, p0 = mmd_permutation_test(x, make_prior("normal", 1).sample((n,)), n_permutations=200, seed=0)
    assert p0 > 0.01


@pytest.mark.parametrize("kw", [{}, {"unbiased": False}, {"kernel": "rbf", "bandwidth": 0.7}])
def test_permutation_statistic_is_mmd2(kw):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(70, 3, generator=g), torch.randn(50, 3, generator=g) * 1.3
    stat, p = mmd_permutation_test(x, y, n_permutations=99, seed=1, **kw)
    assert stat == pytest.approx(mmd2(x, y, **kw).item(), rel=1e-4, abs=1e-6)
    assert 1 / 100 <= p <= 1
    assert mmd_permutation_test(x, y, n_permutations=99, seed=1, **kw) == (stat, p)   # seeded


def test_permutation_median_bandwidth_runs():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g) + 1.0
    stat, p = mmd_permutation_test(x, y, n_permutations=50, kernel="rbf")
    assert stat > 0 and p == pytest.approx(1 / 51)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_matches_cpu(tiny):
    x, y = tiny
    for kw in ({}, {"kernel": "rbf"}):
        assert mmd2(x.cuda(), y.cuda(), **kw).item() == pytest.approx(mmd2(x, y, **kw).item(), rel=1e-10)
    cpu = mmd_permutation_test(x, y, 20)
    gpu = mmd_permutation_test(x.cuda(), y.cuda(), 20)
    assert gpu[0] == pytest.approx(cpu[0], rel=1e-9) and gpu[1] == cpu[1]


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("x, y, match", [
    (torch.zeros(5), torch.zeros(5, 1), "x must be 2-D"),
    (torch.zeros(5, 2), torch.zeros(5, 2, 1), "y must be 2-D"),
    (torch.zeros(5, 2), torch.zeros(5, 3), "same number of columns"),
    (torch.zeros(1, 2), torch.zeros(5, 2), "x needs at least 2 rows"),
    (torch.zeros(5, 2), torch.zeros(1, 2), "y needs at least 2 rows"),
    (torch.tensor([[0.0], [math.nan]]), torch.zeros(3, 1), "x contains non-finite"),
    (torch.zeros(3, 1), torch.tensor([[0.0], [math.inf]]), "y contains non-finite"),
])
def test_bad_samples(x, y, match):
    with pytest.raises(ValueError, match=match):
        mmd2(x, y)
    with pytest.raises(ValueError, match=match):
        mmd_permutation_test(x, y, 5)


def test_bad_options():
    x, y = torch.randn(4, 2), torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"unknown kernel 'gauss'.*'imq', 'rbf'"):
        mmd2(x, y, kernel="gauss")
    with pytest.raises(ValueError, match="scales"):
        mmd2(x, y, scales=())
    with pytest.raises(ValueError, match="scales"):
        mmd2(x, y, scales=(1.0, -1.0))
    with pytest.raises(ValueError, match="sigma2"):
        mmd2(x, y, sigma2=0.0)
    with pytest.raises(ValueError, match="bandwidth"):
        mmd2(x, y, kernel="rbf", bandwidth=0.0)
    with pytest.raises(ValueError, match="bandwidth"):
        mmd2(x, y, kernel="rbf", bandwidth="mean")
    with pytest.raises(ValueError, match="n_permutations"):
        mmd_permutation_test(x, y, n_permutations=0)
    with pytest.raises(ValueError, match="cov1 must be"):
        gaussian_rbf_mmd2_closed_form([0.0, 0.0], [[1.0]], [0.0, 0.0], np.eye(2), 1.0)
    with pytest.raises(ValueError, match="symmetric"):
        gaussian_rbf_mmd2_closed_form([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]], [0.0, 0.0], np.eye(2), 1.0)
    with pytest.raises(ValueError, match="positive semi-definite"):
        gaussian_rbf_mmd2_closed_form([0.0, 0.0], np.eye(2), [0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]], 1.0)
    with pytest.raises(ValueError, match="one dimension"):
        gaussian_rbf_mmd2_closed_form([0.0], [[1.0]], [0.0, 0.0], np.eye(2), 1.0)
    with pytest.raises(ValueError, match="bandwidth h"):
        gaussian_rbf_mmd2_closed_form([0.0], [[1.0]], [0.0], [[1.0]], -1.0)
