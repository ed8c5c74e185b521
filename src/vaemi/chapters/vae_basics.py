"""The chapter on the "Basics VAE" derivation notes (seed 001): its parameter schema, and the checks of its sections.

Every function that decides a claim of the chapter lives here, so that the tests can feed it a broken model or a
corrupted input and see the verdict turn (``tests/chapters/test_vae_basics_claims.py``). The notebook calls them and
records the claims. A verdict is True (holds), False (fails), :data:`~vaemi.book.results.INCONCLUSIVE` or None (not
evaluated).

Verdict helpers (they would belong in :mod:`vaemi.book.results`, beside :func:`~vaemi.book.results.decide`):

* :func:`within`: "``diff`` is zero (or at most ``tol``) up to ``z`` standard errors", the agreement check of a
  closed form with a Monte Carlo estimate; inconclusive when the sample is too small for its standard error to mean
  anything;
* :func:`median_below`: "the median of a sample is below a threshold", a sign test judged in standard errors;
* :func:`~vaemi.book.results.all_of`: the verdict of a conjunction (fails if one part fails, inconclusive if one part is and none fails).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import integrate, optimize, special, stats
from torch import distributions as D

from vaemi.book.params import Bool, Choice, Float, Int, ListOf, require
from vaemi.book.results import INCONCLUSIVE, all_of, decide, mean_se
from vaemi.chapters.common import PROFILE, Chapter
from vaemi.losses import elbo_terms, get_loss
from vaemi.maths import distributions as vd
from vaemi.maths.gradients import per_sample_gradients
from vaemi.measures.metrics import importance_log_weights
from vaemi.measures.toy import LinearGaussian
from vaemi.models import VAE, VAEOutput

# ------------------------------------------------------------------------------------------- parameters
SCHEMA = {
    "profile": PROFILE,
    "seed": Int(0),
    "allow_fallback": Bool(),
    "mc_samples": Int(1000),
    "kl_dims": ListOf(Int(1, 10_000), min_len=2, increasing=True),
    "marginal_dims": ListOf(Int(1, 1000), min_len=2, increasing=True),
    "marginal_samples": Int(10),
    "marginal_repeats": Int(2),
    "dataset": Choice(["mnist", "fashion_mnist"]),
    "n_train": Int(100, 60000),
    "n_test": Int(100, 10000),
    "hidden": ListOf(Int(1, 10_000)),
    "latent_dim": Int(2, 1000),
    "decoder_variance": Float(0, open_low=True),
    "epochs": Int(1),
    "batch_size": Int(1),
    "lr": Float(0, 1, open_low=True),
    "sweep_variances": ListOf(Float(0, open_low=True), min_len=2, increasing=True),
    "sweep_latent_dim": Int(1, 1000),
    "sweep_epochs": Int(1),
    "iwae_samples": Int(2),
}


def _check(p: dict) -> None:
    """Cross-parameter rules of the chapter."""
    require(
        p["batch_size"] <= p["n_train"],
        f"parameter 'batch_size' ({p['batch_size']}) must not exceed 'n_train' ({p['n_train']})",
    )
    require(
        0.5 in p["sweep_variances"] and p["sweep_variances"][0] < 0.5 < p["sweep_variances"][-1],
        f"parameter 'sweep_variances' must contain 0.5 (the notes' implicit s^2) and values on both sides of it, "
        f"got {p['sweep_variances']}",
    )


chapter = Chapter("vae_basics", "VAE basics", SCHEMA, (_check,))

#: Fewest independent draws for which a standard error is taken to mean something (below: inconclusive).
MIN_N = 10


# ------------------------------------------------------------------------------------------- verdict helpers
def within(diff: Any, se: Any, tol: float = 0.0, *, z: float, n: int | None = None,
           min_n: int = MIN_N) -> bool | str | None:
    """The verdict of "``diff`` is zero up to ``tol`` plus ``z`` standard errors", for a scalar or every element.

    Holds when every ``|diff| <= tol + z*se``, fails when one is beyond; :data:`INCONCLUSIVE` when the estimate rests
    on fewer than ``min_n`` independent draws ``n`` (its standard error then means little); None when a value is not
    finite.
    """
    diff, se = np.asarray(diff, dtype=float), np.asarray(se, dtype=float)
    if not (np.all(np.isfinite(diff)) and np.all(np.isfinite(se))) or np.any(se < 0):
        return None
    if n is not None and n < min_n:
        return INCONCLUSIVE
    return bool(np.all(np.abs(diff) <= tol + z * se))


def median_below(values: Any, threshold: float, *, z: float = 3.0) -> bool | str | None:
    """The verdict of "the median of ``values`` is below ``threshold``": the fraction of values below it is above
    one half by ``z`` standard errors (a sign test); inconclusive with fewer than :data:`MIN_N` values."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0 or not np.all(np.isfinite(v)):
        return None
    frac = float(np.mean(v < threshold))
    return decide(frac, math.sqrt(frac * (1 - frac) / len(v)), 0.5, above=True, z=z, min_ess=MIN_N, ess=len(v))


# ------------------------------------------------------------------------------------------- 1. motivation
#: The chapter's mixture of three Gaussians (the notes' Fig. 1 is missing from the text: our own components).
MIXTURE = {"w": np.array([0.3, 0.45, 0.25]), "mu": np.array([-4.0, 0.0, 3.5]), "sd": np.array([0.8, 1.0, 0.6])}


def sample_mixture(rng: np.random.Generator, n: int, mix: dict = MIXTURE) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws of the mixture and their components ``z`` (the latent description)."""
    comp = rng.choice(len(mix["w"]), size=n, p=mix["w"])
    return rng.normal(mix["mu"][comp], mix["sd"][comp]), comp


def mixture_logpdf(x: np.ndarray, mix: dict = MIXTURE) -> np.ndarray:
    """The mixture's log density at every point of ``x``."""
    return special.logsumexp(np.log(mix["w"]) + stats.norm.logpdf(np.asarray(x)[:, None], mix["mu"], mix["sd"]), axis=1)


def mixture_verdict(ll_true: np.ndarray, ll_single: np.ndarray, ll_model: np.ndarray) -> dict[str, Any]:
    """Fig. 1: the latent-variable model beats one Gaussian by more than 0.2 nats per point (3 SE of the paired
    difference) and comes within 0.02 nats + 3 SE of the true density, on held-out points (per-point log densities)."""
    gain, gain_se = mean_se(ll_model - ll_single)
    dist, dist_se = mean_se(ll_model - ll_true)
    passed = all_of([decide(gain, gain_se, 0.2, above=True, z=3), within(dist, dist_se, 0.02, z=3, n=len(ll_true))])
    return dict(gain=gain, gain_se=gain_se, dist=dist, dist_se=dist_se, passed=passed)


def conditional_is_simple(x_fit: np.ndarray, z_fit: np.ndarray, x_held: np.ndarray, z_held: np.ndarray,
                          ll_true: np.ndarray, ll_single: np.ndarray, mix: dict = MIXTURE) -> dict[str, Any]:
    """Given the component ``z = k``, one Gaussian fitted by maximum likelihood fits ``x | z = k`` as well as the
    true conditional (held-out paired difference within 0.01 nats + 3 SE, every ``k``), whereas one Gaussian fitted
    to the marginal is more than 0.2 nats per point below the true marginal density (by 3 SE)."""
    rows = []
    for k in range(len(mix["w"])):
        fit, held = x_fit[z_fit == k], x_held[z_held == k]
        diff = stats.norm.logpdf(held, fit.mean(), fit.std()) - stats.norm.logpdf(held, mix["mu"][k], mix["sd"][k])
        m, se = mean_se(diff) if len(held) > 1 else (math.nan, math.nan)
        rows.append(dict(k=k, n=len(held), diff=m, se=se, ok=within(m, se, 0.01, z=3, n=len(held))))
    table = pd.DataFrame(rows)
    loss, loss_se = mean_se(ll_true - ll_single)
    passed = all_of([*table.ok, decide(loss, loss_se, 0.2, above=True, z=3)])
    return dict(table=table, max_abs_diff=float(table["diff"].abs().max()), marginal_loss=loss,
                marginal_loss_se=loss_se, passed=passed)


# ------------------------------------------------------------------------------------------- 2. the marginal
def marginal_errors(dims: Sequence[int], m: int, repeats: int, seed: int) -> pd.DataFrame:
    """Eq. 1 in the linear-Gaussian model with ``D = d``: for each ``d``, one ``x`` and ``repeats`` independent
    estimates of ``log p(x)`` from ``m`` prior samples. Rows: ``d, error`` (estimate - truth), ``ratio``
    (:math:`\\hat p(x)/p(x)`) and ``ess`` (effective sample size of the weights :math:`p(x\\mid z_i)`)."""
    rows = []
    for d in dims:
        lg = LinearGaussian.random(d, d, sigma=0.5, seed=seed + d)
        x0 = lg.sample(1, seed=seed)[0][0]
        truth = float(lg.marginal().log_prob(x0))
        for r in range(repeats):
            est, ess = lg.mc_log_marginal(x0, m, seed=1_000_000 * seed + 1000 * d + r)
            err = float(est) - truth
            rows.append(dict(d=d, error=err, ratio=math.exp(min(err, 50.0)), ess=float(ess)))
    return pd.DataFrame(rows)


def marginal_summary(marg: pd.DataFrame) -> pd.DataFrame:
    """Per dimension: mean error and its SE, median ESS, mean log ESS and its SE, mean ratio and its SE."""
    def one(g):
        err, err_se = mean_se(g.error)
        lg_ess, lg_ess_se = mean_se(np.log(g.ess))
        ratio, ratio_se = mean_se(g.ratio)
        return pd.Series(dict(mean_error=err, se_error=err_se, median_ess=float(g.ess.median()), mean_log_ess=lg_ess,
                              se_log_ess=lg_ess_se, mean_ratio=ratio, se_ratio=ratio_se, repeats=len(g)))
    return pd.DataFrame([dict(d=d, **one(g)) for d, g in marg.groupby("d")])


def marginal_low_dim(summary: pd.DataFrame) -> bool | str | None:
    """Eq. 1, "≈": at the smallest dimension the log-estimate's mean error is within 0.05 nats + 3 SE of 0."""
    lo = summary.iloc[0]
    return within(lo.mean_error, lo.se_error, 0.05, z=3, n=int(lo.repeats))


def marginal_unbiased(summary: pd.DataFrame, m: int) -> tuple[bool | str | None, list[int]]:
    """Eq. 1: the estimate of p(x) itself is unbiased, mean of :math:`\\hat p/p` within 4 SE of 1, at the smallest
    dimension and at every dimension whose median ESS is at least 10% of ``m``. Returns the verdict and the
    dimensions checked."""
    rows = summary[(summary.index == 0) | (summary.median_ess >= 0.1 * m)]
    return (all_of([within(r.mean_ratio - 1, r.se_ratio, z=4, n=int(r.repeats)) for r in rows.itertuples()]),
            [int(d) for d in rows.d])


def marginal_fails_high_dim(marg: pd.DataFrame, m: int) -> dict[str, Any]:
    """Ours: at the largest dimension the log-estimate is more than 1 nat low (mean error below -1 by 3 SE) and the
    median ESS is below 1% of ``m`` (sign test, 3 SE)."""
    hi = marg[marg.d == marg.d.max()]
    err, se = mean_se(hi.error)
    bias = decide(err, se, -1.0, above=False, z=3, min_ess=MIN_N, ess=len(hi))
    ess = median_below(hi.ess, 0.01 * m)
    return dict(bias=err, se=se, median_ess=float(hi.ess.median()), bias_verdict=bias, ess_verdict=ess,
                passed=all_of([bias, ess]))


def marginal_degrades(summary: pd.DataFrame) -> bool | str | None:
    """Ours: from the smallest to the largest dimension the mean error falls and the mean log ESS falls (3 SE)."""
    lo, hi = summary.iloc[0], summary.iloc[-1]
    ok = min(lo.repeats, hi.repeats) >= MIN_N
    e = decide(hi.mean_error - lo.mean_error, math.hypot(hi.se_error, lo.se_error), 0.0, above=False, z=3,
               min_ess=MIN_N, ess=min(lo.repeats, hi.repeats))
    s = decide(hi.mean_log_ess - lo.mean_log_ess, math.hypot(hi.se_log_ess, lo.se_log_ess), 0.0, above=False, z=3,
               min_ess=MIN_N, ess=min(lo.repeats, hi.repeats))
    return all_of([e, s]) if ok else INCONCLUSIVE


def eq2_estimates(lg: LinearGaussian, x: torch.Tensor, m: int, repeats: int, seed: int) -> pd.DataFrame:
    """Eq. 2 for a dataset ``x`` (n, D): per repeat, the per-point estimator :math:`\\sum_j\\log\\frac1m\\sum_i
    p(x_j\\mid z_{ij})` and the notes' literal one, :math:`\\log\\frac1m\\sum_i\\prod_j p(x_j\\mid z_{ij})`, each
    minus the truth :math:`\\sum_j\\log p(x_j)`, and the ESS of the notes' weights :math:`\\prod_j p(x_j\\mid z_{ij})`."""
    truth = float(lg.marginal().log_prob(x).sum())
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(repeats):
        z = torch.randn(m, x.shape[0], lg.d, generator=g, dtype=torch.float64)
        w = lg.likelihood(z).log_prob(x)                       # (m, n): log p(x_j | z_ij)
        per_point = float(vd.log_mean_exp(w, 0).sum())
        logW = w.sum(1)                                        # the notes' product, one per i
        product = float(vd.log_mean_exp(logW, 0))
        ess = float(torch.exp(2 * torch.logsumexp(logW, 0) - torch.logsumexp(2 * logW, 0)))
        rows.append(dict(per_point_error=per_point - truth, product_error=product - truth, ess=ess))
    return pd.DataFrame(rows)


def eq2_verdicts(est: pd.DataFrame, n_points: int, m: int) -> dict[str, Any]:
    """Eq. 2: the per-point estimator is within 0.05 nats per data point + 3 SE of the truth; the notes' average of
    products is degenerate: its mean error more than 1 nat below the per-point one's (3 SE of the paired difference)
    and the median ESS of its weights below 1% of ``m``."""
    err, err_se = mean_se(est.per_point_error)
    gap, gap_se = mean_se(est.product_error - est.per_point_error)
    per_point = within(err, err_se, 0.05 * n_points, z=3, n=len(est))
    product = all_of([decide(gap, gap_se, -1.0, above=False, z=3, min_ess=MIN_N, ess=len(est)),
                      median_below(est.ess, 0.01 * m)])
    return dict(per_point_error=err, per_point_se=err_se, product_gap=gap, product_gap_se=gap_se,
                product_median_ess=float(est.ess.median()), per_point_ok=per_point, product_degenerate=product)


# ------------------------------------------------------------------------------------------- 3. MLE = min KL
def sample_sd_se(dist: Any, n: int) -> float:
    """Standard error of the sample standard deviation of ``n`` draws of the scipy distribution ``dist``, by the
    delta method: :math:`\\sqrt{(\\mu_4-\\sigma^4)/(4\\sigma^2 n)}`."""
    var, kurt = (float(v) for v in dist.stats(moments="vk"))
    mu4 = (kurt + 3.0) * var**2
    return math.sqrt((mu4 - var**2) / (4 * var * n))


def mle_equals_min_kl(mu_ml: float, sd_ml: float, mu_kl: float, sd_kl: float, dist: Any, n: int) -> dict[str, Any]:
    """Eq. 4: the maximum-likelihood Gaussian equals the KL minimizer up to sampling error, each parameter within
    4 standard errors (the sample mean's :math:`\\sigma/\\sqrt n`, the sample sd's delta-method SE)."""
    se_mu, se_sd = float(dist.std()) / math.sqrt(n), sample_sd_se(dist, n)
    passed = all_of([within(mu_ml - mu_kl, se_mu, z=4, n=n), within(sd_ml - sd_kl, se_sd, z=4, n=n)])
    return dict(z_mu=abs(mu_ml - mu_kl) / se_mu, z_sd=abs(sd_ml - sd_kl) / se_sd, se_mu=se_mu, se_sd=se_sd,
                passed=passed)


def kl_zero_iff_equal(kl_dims: Sequence[int], seed: int, kl_self: float, kl_best: float,
                      kl_fn=vd.kl_normal_std_normal, n: int = 1000) -> dict[str, Any]:
    """KL = 0 iff the distributions are equal: eq. 22 is exactly 0 at :math:`\\mu=0,\\sigma=1` and > 0 at ``n``
    random :math:`(\\mu,\\log\\sigma^2)` whose every coordinate is at least 1e-3 away from 0, at every ``d``;
    ``kl_self`` (quadrature KL(p_data || p_data)) below 1e-10; ``kl_best`` (KL from p_data to its best Gaussian) > 0."""
    g = torch.Generator().manual_seed(seed)
    at_zero, min_pos = [], math.inf
    for d in kl_dims:
        zero = torch.zeros(d, dtype=torch.float64)
        at_zero.append(float(kl_fn(zero, zero).sum()))
        mu, lv = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2))
        mu, lv = (t.sign() * t.abs().clamp_min(1e-3) for t in (mu, lv))
        min_pos = min(min_pos, float(kl_fn(mu, lv).sum(-1).min()))
    passed = all(v == 0.0 for v in at_zero) and min_pos > 0 and abs(kl_self) < 1e-10 and kl_best > 0
    return dict(max_at_zero=max(abs(v) for v in at_zero), min_positive=min_pos, kl_self=kl_self, kl_best=kl_best,
                passed=passed)


def argmax_agree(x: np.ndarray, mu: float, sd: float, n_grid: int = 301) -> dict[str, Any]:
    """"The maximum of log P equals the maximum of P", read as argmax: on a grid of means (sd fixed) and of sds (mean
    fixed), the likelihood :math:`\\prod_i N(x_i\\mid\\mu,\\sigma)` computed without logs and the log-likelihood
    have their maximum at the same grid point."""
    mus, sds = np.linspace(0.5, 3.5, n_grid), np.linspace(0.5, 3.0, n_grid)
    lik_mu = np.array([np.prod(stats.norm.pdf(x, m, sd)) for m in mus])
    lik_sd = np.array([np.prod(stats.norm.pdf(x, mu, s)) for s in sds])
    ll_mu = np.array([np.sum(stats.norm.logpdf(x, m, sd)) for m in mus])
    ll_sd = np.array([np.sum(stats.norm.logpdf(x, mu, s)) for s in sds])
    idx = dict(lik_mu=int(lik_mu.argmax()), ll_mu=int(ll_mu.argmax()), lik_sd=int(lik_sd.argmax()),
               ll_sd=int(ll_sd.argmax()))
    finite = lik_mu.max() > 0 and lik_sd.max() > 0
    return dict(**idx, mu_at=float(mus[idx["ll_mu"]]), sd_at=float(sds[idx["ll_sd"]]),
                passed=bool(finite and idx["lik_mu"] == idx["ll_mu"] and idx["lik_sd"] == idx["ll_sd"]))


def product_underflow(x: np.ndarray, mu: float, sd: float) -> dict[str, Any]:
    """The product of ``len(x)`` likelihoods underflows in float64 (exactly 0, gradient 0), whereas the sum of
    log-likelihoods is finite with the right gradient :math:`\\sum_i (x_i-\\mu)/\\sigma^2` (1e-8 relative)."""
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    m = torch.tensor(float(mu), dtype=torch.float64, requires_grad=True)
    dist = D.Normal(m, float(sd))
    prod = torch.prod(dist.log_prob(xt).exp())
    (g_prod,) = torch.autograd.grad(prod, m)
    loglik = dist.log_prob(xt).sum()
    (g_log,) = torch.autograd.grad(loglik, m)
    exact = float(((xt - float(mu)) / float(sd) ** 2).sum())
    rel = abs(float(g_log) - exact) / max(abs(exact), 1e-300)
    prod, loglik = float(prod.detach()), float(loglik.detach())
    passed = prod == 0.0 and float(g_prod) == 0.0 and math.isfinite(loglik) and rel < 1e-8
    return dict(product=prod, product_grad=float(g_prod), loglik=loglik, grad=float(g_log),
                grad_exact=exact, grad_rel_err=rel, passed=passed)


# ------------------------------------------------------------------------------------------- 4. Jensen
def log_tangent_gap(n: int = 400) -> dict[str, float]:
    """Eq. 6 for the log: the largest value of :math:`\\log y-\\log x-(y-x)/x` on an ``n`` x ``n`` log-spaced grid of
    x, y in [1e-3, 1e3] (should be <= 1e-12) and its largest absolute value on the diagonal y = x (<= 1e-15)."""
    t = np.logspace(-3, 3, n)
    x, y = t[:, None], t[None, :]
    gap = np.log(y) - np.log(x) - (y - x) / x
    return dict(max_gap=float(gap.max()), max_diag=float(np.abs(np.diag(gap)).max()),
                passed=bool(gap.max() <= 1e-12 and np.abs(np.diag(gap)).max() <= 1e-15))


def jensen_gaps(dims: Sequence[int], n_x: int, seed: int) -> pd.DataFrame:
    """The exact Jensen gap :math:`\\log p(x)-\\mathbb E_{p(z)}\\log p(x\\mid z)` at ``n_x`` data points drawn from
    each linear-Gaussian model of the section (``D = d``): its mean per data point and the mean's SE, per ``d``."""
    rows = []
    for d in dims:
        lg = LinearGaussian.random(d, d, sigma=0.5, seed=seed + d)
        x = lg.sample(n_x, seed=seed + 7)[0]
        zero, eye = torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)
        gap = (lg.marginal().log_prob(x) - lg.expected_loglik(x, zero, eye)).numpy()
        m, se = mean_se(gap)
        rows.append(dict(d=d, mean_gap=m, se_gap=se, n=n_x))
    return pd.DataFrame(rows)


def gap_verdicts(gaps: pd.DataFrame) -> dict[str, Any]:
    """"The gap can be very large": the mean gap at the largest dimension is above 10 nats (3 SE). Ours: it grows
    with the dimension, more than 10 times the gap at the smallest dimension (log ratio above log 10 by 3 SE)."""
    lo, hi = gaps.iloc[0], gaps.iloc[-1]
    large = decide(hi.mean_gap, hi.se_gap, 10.0, above=True, z=3, min_ess=MIN_N, ess=hi.n)
    if lo.mean_gap > 0 and hi.mean_gap > 0:
        log_ratio = math.log(hi.mean_gap / lo.mean_gap)
        se = math.hypot(hi.se_gap / hi.mean_gap, lo.se_gap / lo.mean_gap)
        grows = decide(log_ratio, se, math.log(10.0), above=True, z=3, min_ess=MIN_N, ess=min(lo.n, hi.n))
    else:
        log_ratio, grows = math.nan, None
    return dict(gap_lo=lo.mean_gap, gap_hi=hi.mean_gap, ratio=math.exp(log_ratio), very_large=large, grows=grows)


def ppca_mle(x: torch.Tensor, q: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Maximum-likelihood probabilistic PCA (Tipping & Bishop 1999, closed form): ``W`` from the top-``q``
    eigenpairs of the sample covariance, :math:`\\sigma^2` the mean of the other eigenvalues, ``b`` the mean."""
    b = x.mean(0)
    S = (x - b).T @ (x - b) / x.shape[0]
    lam, U = torch.linalg.eigh(S)
    lam, U = lam.flip(0), U.flip(1)
    s2 = float(lam[q:].mean())
    W = (U[:, :q] * (lam[:q] - s2).clamp_min(0).sqrt()).contiguous()
    return W, b, s2


def prior_objective_fit(seed: int, n: int = 2000, steps: int = 200) -> dict[str, Any]:
    """"Maximizing E_{z~p(z)} log p(x|z, Θ) gives a bad Θ": in the pPCA family fitted to ``n`` points of
    ``LinearGaussian.random(2, 5, seed=seed)``, maximum likelihood (closed form) against the maximizer of
    :math:`\\sum_j\\mathbb E_{z\\sim N(0,I)}\\log N(x_j\\mid Wz+b,\\sigma^2 I)` (L-BFGS from the MLE); per-point
    held-out log p(x) of both on ``n`` new points."""
    lg = LinearGaussian.random(2, 5, sigma=0.5, seed=seed)
    x_tr, x_te = lg.sample(n, seed=seed + 20)[0], lg.sample(n, seed=seed + 21)[0]
    W_ml, b_ml, s2_ml = ppca_mle(x_tr, 2)
    W = W_ml.clone().requires_grad_(True)
    b = b_ml.clone().requires_grad_(True)
    ls2 = torch.tensor(math.log(s2_ml), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b, ls2], max_iter=steps, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")
    Dd = x_tr.shape[1]

    def objective():
        return -(-0.5 * Dd * (math.log(2 * math.pi) + ls2)
                 - (((x_tr - b) ** 2).sum(1) + (W ** 2).sum()) / (2 * ls2.exp())).mean()

    def closure():
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss
    opt.step(closure)
    eye = torch.eye(Dd, dtype=torch.float64)
    with torch.no_grad():
        p_ml = D.MultivariateNormal(b_ml, W_ml @ W_ml.T + s2_ml * eye)
        p_prior = D.MultivariateNormal(b.detach(), W.detach() @ W.detach().T + ls2.exp().detach() * eye)
        diff = (p_ml.log_prob(x_te) - p_prior.log_prob(x_te)).numpy()
    m, se = mean_se(diff)
    return dict(loss=m, loss_se=se, w_norm_ml=float(W_ml.norm()), w_norm_prior=float(W.detach().norm()),
                s2_prior=float(ls2.detach().exp()), passed=decide(m, se, 0.1, above=True, z=3, min_ess=MIN_N, ess=n))


# ------------------------------------------------------------------------------------------- 5. the ELBO
def _mvn(mean: torch.Tensor, raw: torch.Tensor) -> D.MultivariateNormal:
    """A Gaussian with Cholesky factor ``tril(raw)`` whose diagonal is ``exp`` of ``raw``'s diagonal."""
    L = torch.tril(raw, -1) + torch.diag_embed(torch.diagonal(raw).exp())
    return D.MultivariateNormal(mean, scale_tril=L)


def maximize_elbo_over_q(lg: LinearGaussian, x: torch.Tensor, q: D.MultivariateNormal, max_iter: int = 1000
                         ) -> dict[str, float]:
    """"Maximizing L(Θ, Q) over Q decreases KL(Q || P(Z|X))": L-BFGS (scipy's L-BFGS-B, float64 autograd
    gradients) on the closed-form ELBO over the mean and the Cholesky factor (log diagonal) of a Gaussian ``q``,
    starting at ``q``. Returns, over the accepted iterates, the largest :math:`|\\mathcal L+\\mathrm{KL}(q\\|p(z|x))-
    \\log p(x)|`, the largest fall of the ELBO and rise of the KL from one iterate to the next, and at the end the KL
    and the largest errors of the mean and covariance."""
    post, log_px = lg.posterior(x), float(lg.marginal().log_prob(x))
    d = lg.d
    rows, cols = torch.tril_indices(d, d)
    L0 = torch.linalg.cholesky(q.covariance_matrix)
    raw0 = torch.tril(L0, -1) + torch.diag_embed(torch.diagonal(L0).log())
    theta0 = torch.cat([q.mean, raw0[rows, cols]]).numpy()

    def unpack(theta: torch.Tensor) -> D.MultivariateNormal:
        raw = torch.zeros(d, d, dtype=theta.dtype).index_put((rows, cols), theta[d:])
        return _mvn(theta[:d], raw)

    def value_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        loss = -lg.elbo(x, unpack(t))
        (grad,) = torch.autograd.grad(loss, t)
        return float(loss.detach()), grad.numpy()

    elbos, kls = [], []

    def record(theta: np.ndarray) -> None:
        with torch.no_grad():
            qq = unpack(torch.as_tensor(theta, dtype=torch.float64))
            elbos.append(float(lg.elbo(x, qq)))
            kls.append(float(D.kl_divergence(qq, post)))

    record(theta0)
    res = optimize.minimize(value_and_grad, theta0, jac=True, method="L-BFGS-B", callback=record,
                            options=dict(maxiter=max_iter, maxcor=20, gtol=1e-13, ftol=1e-16))
    record(res.x)
    with torch.no_grad():
        qq = unpack(torch.as_tensor(res.x, dtype=torch.float64))
        mean_err = float((qq.mean - post.mean).abs().max())
        cov_err = float((qq.covariance_matrix - post.covariance_matrix).abs().max())
    e, k = np.array(elbos), np.array(kls)
    return dict(residual=float(np.abs(e + k - log_px).max()), elbo_fall=float(max(0.0, -np.diff(e).min(initial=0.0))),
                kl_rise=float(max(0.0, np.diff(k).max(initial=0.0))), final_kl=float(k[-1]), mean_err=mean_err,
                cov_err=cov_err, iterations=int(res.nit))


def elbo_max_verdict(runs: pd.DataFrame) -> bool:
    """Every run: the identity to 1e-9 at every iterate, the ELBO never falls and the KL never rises (beyond
    1e-10), and at the end KL < 1e-8 and mean and covariance within 1e-4 of the posterior's."""
    return bool((runs.residual < 1e-9).all() and (runs.elbo_fall < 1e-10).all() and (runs.kl_rise < 1e-10).all()
                and (runs.final_kl < 1e-8).all() and (runs.mean_err < 1e-4).all() and (runs.cov_err < 1e-4).all())


def elbo_sum_over_data(lg: LinearGaussian, x: torch.Tensor, qs: Sequence[D.MultivariateNormal]) -> dict[str, Any]:
    """Eq. 12 with one ``q_i`` per point: :math:`\\sum_i\\mathcal L_i+\\sum_i\\mathrm{KL}(q_i\\|p(z|x_i))=
    \\sum_i\\log p(x_i)` (1e-9 relative), :math:`\\sum_i\\log p(x_i)` is the log density of the stacked dataset
    (block-diagonal Gaussian, 1e-9 relative), and :math:`\\sum_i\\mathcal L_i\\le\\log P(X)`."""
    marg = lg.marginal()
    log_px = marg.log_prob(x)
    total = float(log_px.sum())
    elbos = torch.stack([lg.elbo(xi, q) for xi, q in zip(x, qs)])
    kls = torch.stack([D.kl_divergence(q, lg.posterior(xi)) for xi, q in zip(x, qs)])
    stacked = D.MultivariateNormal(marg.mean.repeat(x.shape[0]),
                                   torch.block_diag(*[marg.covariance_matrix] * x.shape[0]))
    joint = float(stacked.log_prob(x.reshape(-1)))
    rel_identity = abs(float(elbos.sum() + kls.sum()) - total) / abs(total)
    rel_joint = abs(joint - total) / abs(total)
    bound = float(elbos.sum()) <= total
    return dict(rel_identity=rel_identity, rel_joint=rel_joint, sum_elbo=float(elbos.sum()), log_px=total,
                passed=bool(rel_identity < 1e-9 and rel_joint < 1e-9 and bound))


def _toy_elbo(x, m, lv, W, b, ls2) -> torch.Tensor:
    """Closed-form per-point ELBO of q = N(m, diag exp(lv)) under the decoder N(Wz + b, exp(ls2) I), prior N(0, I)."""
    s2, Dd = ls2.exp(), x.shape[-1]
    rec = ((x - b - m @ W.T) ** 2).sum(-1) + (lv.exp() * (W ** 2).sum(0)).sum(-1)
    return -0.5 * Dd * (math.log(2 * math.pi) + ls2) - rec / (2 * s2) - vd.kl_normal_std_normal(m, lv).sum(-1)


def optimal_diag_q(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, ls2: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-point diagonal Gaussian q that maximizes the ELBO of a linear-Gaussian decoder exactly: mean
    :math:`(W^\\top W+s^2I)^{-1}W^\\top(x-b)` (the posterior mean), variances :math:`1/(1+\\lVert W_j\\rVert^2/s^2)`."""
    s2 = ls2.exp()
    M = W.T @ W + s2 * torch.eye(W.shape[1], dtype=W.dtype)
    m = torch.linalg.solve(M, W.T @ (x - b).T).T
    lv = -torch.log1p((W ** 2).sum(0) / s2).expand_as(m)
    return m, lv


def amortization_experiment(seed: int, n_train: int = 2000, n_held: int = 1000, epochs: Sequence[int] = (5, 50),
                            batch: int = 100, lr: float = 1e-2) -> dict[str, Any]:
    """The toy amortization experiment (eqs. 12-13): data from ``LinearGaussian.random(2, 5, seed=seed)``; a decoder
    N(Wz + b, s²I) with (A) a free diagonal Gaussian q_i per training point, updated only when the point is in the
    minibatch (SparseAdam), or (B) an amortized linear encoder q(z|x) = N(Ax + c, diag exp(l)); the same
    initialization, minibatches and reparameterized samples (V = 1), Adam. Returns the paired per-point training
    ELBO of (B) minus (A) after each of ``epochs`` (closed form), the KL from the data distribution to (B)'s model
    before and after training, and (B)'s amortization gap on held-out points."""
    lg = LinearGaussian.random(2, 5, sigma=0.5, seed=seed)
    x, x_held = lg.sample(n_train, seed=seed + 30)[0], lg.sample(n_held, seed=seed + 31)[0]
    Dd, f64 = x.shape[1], torch.float64
    g0 = torch.Generator().manual_seed(seed + 32)
    W0 = 0.1 * torch.randn(Dd, 2, generator=g0, dtype=f64)
    p_data = lg.marginal()

    def model_kl(W, b, ls2):
        with torch.no_grad():
            return float(D.kl_divergence(p_data, D.MultivariateNormal(b, W @ W.T + ls2.exp() * torch.eye(Dd, dtype=f64))))

    # one decoder per variant, from the same initialization: [W, b, log s^2]
    dec = {v: [W0.clone().requires_grad_(True), torch.zeros(Dd, dtype=f64, requires_grad=True),
               torch.zeros((), dtype=f64, requires_grad=True)] for v in ("A", "B")}
    mu_e, lv_e = (torch.nn.Embedding(n_train, 2, sparse=True, dtype=f64) for _ in range(2))  # (A): phi_i per point
    torch.nn.init.zeros_(mu_e.weight), torch.nn.init.zeros_(lv_e.weight)
    A, c, l = (torch.zeros(s, dtype=f64, requires_grad=True) for s in ((2, Dd), (2,), (2,)))  # (B): q(z|x, phi)
    opts = [torch.optim.Adam(dec["A"], lr=lr), torch.optim.SparseAdam([mu_e.weight, lv_e.weight], lr=lr),
            torch.optim.Adam(dec["B"] + [A, c, l], lr=lr)]
    q = {"A": lambda xb, idx: (mu_e(idx), lv_e(idx)), "B": lambda xb, idx: (xb @ A.T + c, l.expand(xb.shape[0], 2))}
    out = {"kl_data_initial": model_kl(*dec["B"])}
    g_perm, g_eps = torch.Generator().manual_seed(seed + 33), torch.Generator().manual_seed(seed + 34)
    elbo_at = {}
    for epoch in range(1, max(epochs) + 1):
        perm = torch.randperm(n_train, generator=g_perm)
        for start in range(0, n_train, batch):
            idx = perm[start:start + batch]
            xb = x[idx]
            eps = torch.randn(len(idx), 2, generator=g_eps, dtype=f64)  # the same draws for both variants
            loss = 0.0
            for v in ("A", "B"):
                W, b, ls2 = dec[v]
                m, lv = q[v](xb, idx)
                z = m + (0.5 * lv).exp() * eps
                loglik = -0.5 * (Dd * (vd.LOG_2PI + ls2) + (xb - z @ W.T - b).pow(2).sum(-1) / ls2.exp())
                loss = loss - (loglik - vd.kl_normal_std_normal(m, lv).sum(-1)).mean()
            for o in opts:
                o.zero_grad()
            loss.backward()  # the two variants share no parameter: one backward pass serves both
            for o in opts:
                o.step()
        if epoch in epochs:
            with torch.no_grad():
                elbo_at[epoch] = (_toy_elbo(x, x @ A.T + c, l.expand(n_train, 2), *dec["B"])
                                  - _toy_elbo(x, mu_e.weight, lv_e.weight, *dec["A"])).numpy().copy()
    out["kl_data_final"] = model_kl(*dec["B"])
    with torch.no_grad():
        W, b, ls2 = dec["B"]
        gap = (_toy_elbo(x_held, *optimal_diag_q(x_held, W, b, ls2), W, b, ls2)
               - _toy_elbo(x_held, x_held @ A.T + c, l.expand(n_held, 2), W, b, ls2)).numpy()
    out["amortization_gap"], out["amortization_gap_se"] = mean_se(gap)
    out["amortization_gap_min"] = float(gap.min())
    out["elbo_diff"] = {e: mean_se(elbo_at[e]) for e in epochs}
    return out


def amortization_verdicts(toy: dict[str, Any], n_train: int = 2000, n_held: int = 1000) -> dict[str, Any]:
    """The three claims of the toy experiment: (B) above (A) by 3 SE after each number of epochs; the KL from the data
    distribution to (B)'s model below a tenth of its initial value and below 0.05 nats; (B)'s average amortization
    gap on held-out points below 0.05 nats (3 SE)."""
    beats = all_of([decide(m, se, 0.0, above=True, z=3, min_ess=MIN_N, ess=n_train)
                      for m, se in toy["elbo_diff"].values()])
    recovers = toy["kl_data_final"] < toy["kl_data_initial"] / 10 and toy["kl_data_final"] < 0.05
    new_points = decide(toy["amortization_gap"], toy["amortization_gap_se"], 0.05, above=False, z=3,
                        min_ess=MIN_N, ess=n_held)
    return dict(beats=beats, recovers=bool(recovers), new_points=new_points)


# ------------------------------------------------------------------------------------------- 6. the Gaussian KL
def diag_density_errors(mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> dict[str, float]:
    """Eq. 16: the product form of the diagonal Gaussian and of the standard normal log densities against
    ``MultivariateNormal`` with covariance diag(σ²) and I: largest relative errors."""
    d = mu.shape[-1]
    sigma = (0.5 * logvar).exp()
    prod_q = -0.5 * d * vd.LOG_2PI - sigma.log().sum() - 0.5 * (((z - mu) / sigma) ** 2).sum(-1)
    prod_p = -0.5 * d * vd.LOG_2PI - 0.5 * (z ** 2).sum(-1)
    mvn_q = D.MultivariateNormal(mu, torch.diag(logvar.exp())).log_prob(z)
    mvn_p = D.MultivariateNormal(torch.zeros_like(mu), torch.eye(d, dtype=mu.dtype)).log_prob(z)
    rel = lambda a, b: float(((a - b).abs() / b.abs().clamp_min(1e-300)).max())
    return dict(rel_q=rel(prod_q, mvn_q), rel_p=rel(prod_p, mvn_p))


def j_integrals(seed: int, n: int = 5) -> dict[str, float]:
    """The J integrals of the notes, by quadrature: :math:`\\int z^2e^{-(z-\\mu)^2/2\\sigma^2}dz=\\sqrt{2\\pi}\\sigma
    (\\sigma^2+\\mu^2)` for ``n`` random (μ, σ); in d = 2, :math:`J=(2\\pi)^{d/2}\\prod_k\\sigma_k\\sum_j(\\sigma_j^2+
    \\mu_j^2)` and :math:`I_2=\\log(2\\pi)^{-d/2}-J/(2(2\\pi)^{d/2}\\prod_k\\sigma_k)` equal to eq. 20. Relative
    errors."""
    rng = np.random.default_rng(seed)
    rel_1d = 0.0
    for _ in range(n):
        mu, s = rng.normal(0, 2), rng.uniform(0.3, 3)
        f = lambda z, mu=mu, s=s: z * z * math.exp(-(z - mu) ** 2 / (2 * s * s))
        val = integrate.quad(f, -np.inf, mu, epsabs=0, epsrel=1e-12)[0] + integrate.quad(f, mu, np.inf, epsabs=0,
                                                                                         epsrel=1e-12)[0]
        exact = math.sqrt(2 * math.pi) * s * (s * s + mu * mu)
        rel_1d = max(rel_1d, abs(val - exact) / exact)
    mu, s = rng.normal(0, 1, 2), rng.uniform(0.5, 2, 2)
    f2 = lambda z2, z1: (z1 ** 2 + z2 ** 2) * math.exp(-0.5 * (((z1 - mu[0]) / s[0]) ** 2 + ((z2 - mu[1]) / s[1]) ** 2))
    J = integrate.dblquad(f2, mu[0] - 12 * s[0], mu[0] + 12 * s[0], mu[1] - 12 * s[1], mu[1] + 12 * s[1],
                          epsabs=0, epsrel=1e-10)[0]
    J_exact = 2 * math.pi * s.prod() * ((s ** 2) + (mu ** 2)).sum()
    I2_quad = math.log(1 / (2 * math.pi)) - J / (2 * 2 * math.pi * s.prod())
    I2_eq20 = -math.log(2 * math.pi) - 0.5 * ((s ** 2) + (mu ** 2)).sum()
    return dict(rel_1d=rel_1d, rel_J=abs(J - J_exact) / J_exact, rel_I2=abs(I2_quad - I2_eq20) / abs(I2_eq20))


def kl_gradient_check(mu: torch.Tensor, logvar: torch.Tensor, n: int, seed: int,
                      kl_fn=vd.kl_normal_std_normal) -> dict[str, Any]:
    """Eq. 23's KL term: the autograd gradient of eq. 22 (``kl_fn``) w.r.t. (μ, log σ²) equals (μ, ½(σ² - 1)) to
    1e-10, and the mean of ``n`` per-sample pathwise gradients of log q(z) - log p(z), z = μ + σε, is within 5 SE of it
    in every coordinate."""
    m, lv = mu.detach().clone().requires_grad_(True), logvar.detach().clone().requires_grad_(True)
    g_mu, g_lv = torch.autograd.grad(kl_fn(m, lv).sum(), (m, lv))
    exact = torch.cat([mu, 0.5 * (logvar.exp() - 1)])
    identity_err = float((torch.cat([g_mu, g_lv]) - exact).abs().max())
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, mu.shape[-1], generator=g, dtype=mu.dtype)
    M = mu.detach().expand(n, -1).clone().requires_grad_(True)
    LV = logvar.detach().expand(n, -1).clone().requires_grad_(True)
    z = M + (0.5 * LV).exp() * eps
    f = (-0.5 * (vd.LOG_2PI + LV + (z - M) ** 2 / LV.exp())).sum(-1) - (-0.5 * (vd.LOG_2PI + z ** 2)).sum(-1)
    gm, gl = torch.autograd.grad(f.sum(), (M, LV))
    grads = torch.cat([gm, gl], -1)
    se = grads.std(0) / math.sqrt(n)
    diff = grads.mean(0) - exact
    max_z = float((diff.abs() / se.clamp_min(1e-300)).max())
    return dict(identity_err=identity_err, max_z=max_z,
                passed=all_of([identity_err < 1e-10, within(diff.numpy(), se.numpy(), z=5, n=n)]))


# ------------------------------------------------------------------------------------------- 7. reparameterization
def gradient_estimators(dims: Sequence[int], mc_samples: int, seed: int) -> pd.DataFrame:
    """Pathwise and score-function gradients of :math:`\\mathbb E\\lVert z-a\\rVert^2`, :math:`a=1`, at random
    (μ, log σ) per dimension: per method, the largest |mean - exact| in SE over coordinates (``max_abs_z``), the
    verdict of "every coordinate within 5 SE", the mean per-coordinate variance and its SE."""
    rows = []
    for d in dims:
        g = torch.Generator().manual_seed(seed + d)
        mu = torch.randn(d, generator=g, dtype=torch.float64)
        log_sigma = 0.3 * torch.randn(d, generator=g, dtype=torch.float64)
        a = torch.ones(d, dtype=torch.float64)
        exact = torch.cat([2 * (mu - a), 2 * (2 * log_sigma).exp()])
        n = max(1000, mc_samples // max(1, d))
        for method in ("pathwise", "score"):
            grads = per_sample_gradients(lambda z, a=a: (z - a).pow(2).sum(-1), mu, log_sigma, n, method, seed=seed)
            se = grads.std(0) / math.sqrt(n)
            diff = grads.mean(0) - exact
            sq = (grads - grads.mean(0)).pow(2).mean(1) * n / (n - 1)  # per sample: its share of the mean variance
            var, var_se = mean_se(sq.numpy())
            rows.append(dict(d=d, method=method, n=n, max_abs_z=float((diff.abs() / se).max()),
                             unbiased=within(diff.numpy(), se.numpy(), z=5, n=n), mean_variance=var,
                             variance_se=var_se))
    return pd.DataFrame(rows)


def variance_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Per dimension: the log of the score/pathwise variance ratio and its SE (delta method, the two estimates taken
    as independent)."""
    p = table[table.method == "pathwise"].set_index("d")
    s = table[table.method == "score"].set_index("d")
    log_ratio = np.log(s.mean_variance / p.mean_variance)
    se = np.hypot(s.variance_se / s.mean_variance, p.variance_se / p.mean_variance)
    return pd.DataFrame(dict(ratio=np.exp(log_ratio), log_ratio=log_ratio, se=se, n=p.n)).reset_index()


def reparam_verdicts(table: pd.DataFrame) -> dict[str, Any]:
    """Eq. 25: both estimators unbiased at every dimension (every coordinate within 5 SE). Ours: the pathwise one has
    the lower variance at every dimension (log ratio above 0 by 3 SE) and its advantage grows from the smallest to the
    largest dimension (difference of log ratios above 0 by 3 SE)."""
    r = variance_ratios(table)
    lower = all_of([decide(x.log_ratio, x.se, 0.0, above=True, z=3, min_ess=MIN_N, ess=x.n) for x in r.itertuples()])
    lo, hi = r.iloc[0], r.iloc[-1]
    grows = decide(hi.log_ratio - lo.log_ratio, math.hypot(hi.se, lo.se), 0.0, above=True, z=3)
    return dict(unbiased=all_of(table.unbiased), lower=lower, grows=grows, ratios=r)


# ------------------------------------------------------------------------------------------- 8. the VAE
def per_image_elbo(model: VAE, x: torch.Tensor, seed: int = 0, batch_size: int = 1000) -> np.ndarray:
    """Per-image ELBO (one seeded reparameterized sample each), float64, the caller's RNG untouched."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, x.shape[0], batch_size):
            rec, kl, _ = elbo_terms(model, x[start:start + batch_size].to(device))
            out.append(-(rec + sum(k.sum(-1) for k in kl.values())).double().cpu())
    return torch.cat(out).numpy()


def eq26_by_hand(model: VAE, x: torch.Tensor, seed: int = 0) -> dict[str, Any]:
    """Eq. 26 (corrected) recomputed by hand from the VAE's encoder and decoder for one seeded ε per image:
    (a) ``get_loss("elbo")`` on that forward pass equals minus the mean of
    :math:`-\\lVert f-x\\rVert^2/2s^2-\\tfrac D2\\log2\\pi s^2+\\tfrac12\\sum_j(1+\\log\\sigma_j^2-\\sigma_j^2-\\mu_j^2)`
    (1e-5 relative); (b) the notes' printed bracket equals that expression at s² = ½ plus (D/2) log π (1e-5
    relative); (c) the prior log density at z is :math:`-\\tfrac12\\lVert z\\rVert^2-\\tfrac d2\\log2\\pi`."""
    device = next(model.parameters()).device
    x = x.to(device)
    model.eval()
    part = model.latent.parts[0]
    with torch.no_grad():
        params = model.encode(x)
        mu, logvar = part.split(params[part.name])
        g = torch.Generator(device=device).manual_seed(seed)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g, device=device)
        out = model.decode(z)
        f = model.likelihood.mean(out)
        loss, _, _ = get_loss("elbo").loss_and_output(model, x, out=VAEOutput(params, z, out))
    x64, f64, mu64, lv64, z64 = (t.double().flatten(1) for t in (x, f, mu, logvar, z))
    Dd, s2 = x64.shape[1], float(model.likelihood.variance)
    sq = ((f64 - x64) ** 2).sum(1)
    kl_term = 0.5 * (1 + lv64 - lv64.exp() - mu64 ** 2).sum(1)
    L = lambda v: -sq / (2 * v) - 0.5 * Dd * math.log(2 * math.pi * v) + kl_term
    by_hand = float(-L(s2).mean())
    rel_loss = abs(float(loss) - by_hand) / abs(by_hand)
    printed = -sq + kl_term
    rel_printed = float(((printed - (L(0.5) + 0.5 * Dd * math.log(math.pi))).abs() / printed.abs()).max())
    prior = part.prior_log_prob(z).double().sum(-1).cpu()
    prior_err = float((prior - (-0.5 * (z64.cpu() ** 2).sum(1) - 0.5 * z64.shape[1] * vd.LOG_2PI)).abs().max())
    return dict(loss=float(loss), by_hand=by_hand, rel_loss=rel_loss, rel_printed=rel_printed, prior_err=prior_err,
                passed=bool(rel_loss < 1e-5 and rel_printed < 1e-5 and prior_err < 1e-4))


def importance_terms(model: VAE, x: torch.Tensor, k: int, seed: int = 0, batch_size: int = 100) -> pd.DataFrame:
    """Per image, from the same ``k`` samples z ~ q(z|x): the IWAE bound :math:`\\log\\frac1K\\sum_k w_k`, the ELBO
    estimate :math:`\\frac1K\\sum_k\\log w_k` (Jensen on the same samples: never above the IWAE bound) and
    :math:`\\frac1K\\sum_k\\log p(x|z_k)`; float64."""
    rows = []
    for loglik, log_ratio in importance_log_weights(model, x, k, batch_size=batch_size, seed=seed):
        lw = (loglik + log_ratio).double()
        rows.append(pd.DataFrame(dict(iwae=vd.log_mean_exp(lw, 0).cpu().numpy(), elbo=lw.mean(0).cpu().numpy(),
                                      e_q_loglik=loglik.double().mean(0).cpu().numpy())))
    return pd.concat(rows, ignore_index=True)


def closed_form_kl(model: VAE, x: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """Per-image KL(q(z|x) || p(z)) in closed form (eq. 22), float64."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            kl = model.latent.kl(model.encode(x[start:start + batch_size].to(device)))
            out.append(sum(v.sum(-1) for v in kl.values()).double().cpu())
    return torch.cat(out).numpy()


def prior_expected_loglik(model: VAE, x: torch.Tensor, k: int, seed: int = 0) -> np.ndarray:
    """Per image, :math:`\\frac1K\\sum_k\\log p(x\\mid z_k)` with the same ``k`` codes :math:`z_k\\sim p(z)` for
    every image (a Gaussian decoder: through the pairwise squared distances), float64."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = model.latent.sample_prior(k, device=device, generator=g)
        f = model.likelihood.mean(model.decode(z)).double().flatten(1).cpu()
    xf = x.double().flatten(1).cpu()
    s2, Dd = float(model.likelihood.variance), xf.shape[1]
    sq = (xf ** 2).sum(1, keepdim=True) + (f ** 2).sum(1) - 2 * xf @ f.T      # (n, k)
    return (-sq.clamp_min(0) / (2 * s2) - 0.5 * Dd * math.log(2 * math.pi * s2)).mean(1).numpy()


def encoder_gain(model: VAE, x: torch.Tensor, e_q_loglik: np.ndarray, k: int, seed: int = 0) -> dict[str, Any]:
    """"This Q(Z) will help to decrease the gap": per image, :math:`\\mathcal L(q_\\phi)-\\mathbb E_{p(z)}\\log
    p(x\\mid z)` with ``e_q_loglik`` (:math:`\\mathbb E_q\\log p(x|z)` per image, e.g. from :func:`importance_terms`),
    the KL in closed form and :math:`\\mathbb E_{p(z)}\\log p(x|z)` over ``k`` prior codes; holds when the mean is
    above 0 by 3 SE."""
    gain = np.asarray(e_q_loglik, dtype=float) - closed_form_kl(model, x) - prior_expected_loglik(model, x, k, seed)
    m, se = mean_se(gain)
    return dict(gain=m, se=se, passed=decide(m, se, 0.0, above=True, z=3, min_ess=MIN_N, ess=len(gain)))


def output_bias_gradients(model: VAE, x: torch.Tensor, seed: int = 0) -> tuple[np.ndarray, float]:
    """Per-image gradients :math:`g_i=\\nabla_b\\mathcal L_i` of the per-image ELBO (eq. 26 corrected, one seeded ε
    per image) with respect to the bias of the decoder's output layer, float64 (n, D); and the largest relative
    difference between :math:`\\sum_i g_i` and autograd's gradient of :math:`\\sum_i\\mathcal L_i` w.r.t. that bias
    (it checks that the per-image gradients are what they say)."""
    device = next(model.parameters()).device
    x = x.to(device)
    bias = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)][-1].bias
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        out = model(x)
    rec, kl, _ = elbo_terms(model, x, out)
    elbo = -(rec + sum(k.sum(-1) for k in kl.values()))
    g_out, g_bias = torch.autograd.grad(elbo.sum(), (out.out, bias))
    g = g_out.flatten(1).double().cpu()
    full = g_bias.double().cpu()
    return g.numpy(), float((g.sum(0) - full).abs().max() / full.abs().max().clamp_min(1e-30))


def minibatch_gradient(g: np.ndarray, m: int, repeats: int = 2000, seed: int = 0,
                       probs: np.ndarray | None = None) -> dict[str, Any]:
    """Eq. 24: ``repeats`` minibatches of ``m`` indices drawn uniformly with replacement (or with probabilities
    ``probs``, to show that only uniform sampling is unbiased); the estimate :math:`\\frac nm\\sum_{i\\in B}g_i` is
    unbiased for :math:`G=\\sum_i g_i`: every coordinate of its mean within 5 SE (sd over minibatches /
    sqrt(repeats)) of G, up to float round-off (1e-9 of the largest |G|)."""
    gt = torch.as_tensor(g, dtype=torch.float64)
    n = gt.shape[0]
    gen = torch.Generator().manual_seed(seed)
    if probs is None:
        idx = torch.randint(n, (repeats, m), generator=gen)
    else:
        p = torch.as_tensor(probs, dtype=torch.float64).expand(repeats, n)
        idx = torch.multinomial(p, m, replacement=True, generator=gen)
    counts = torch.zeros(repeats, n, dtype=torch.float64).scatter_add_(1, idx, torch.ones(repeats, m, dtype=torch.float64))
    est = (n / m) * counts @ gt                                  # (repeats, D)
    G = gt.sum(0)
    diff, se = (est.mean(0) - G).numpy(), (est.std(0) / math.sqrt(repeats)).numpy()
    tol = 1e-9 * float(G.abs().max())
    max_z = float(np.max(np.abs(diff) / np.maximum(se, 1e-300)))
    return dict(max_z=max_z, coords=len(diff), passed=within(diff, se, tol, z=5, n=repeats))


def paired_trend(values: Sequence[np.ndarray], *, increasing: bool) -> bool | str | None:
    """Ours (the s² sweep): each consecutive pair of per-image arrays differs in the stated direction by 3 SE of the
    paired difference."""
    out = []
    for a, b in pairwise(values):
        m, se = mean_se(np.asarray(b) - np.asarray(a))
        out.append(decide(m, se, 0.0, above=increasing, z=3, min_ess=MIN_N, ess=len(a)))
    return all_of(out)
