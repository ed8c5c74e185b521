"""The chapter on Ducau & Trénous, "Mutual Information in Variational Autoencoders" (seed 000): its parameter
schema (and that of its experiment-2 ablation), and every function that decides a claim of the chapter.

The notebook (``book/infovae.ipynb``) trains the models and records the claims; the functions here compute the
numbers and return the verdicts, so that the tests (``tests/chapters/test_infovae_claims.py``) can feed them a
broken model or a corrupted input and watch the verdict turn. A verdict is True (holds), False (fails),
:data:`~vaemi.book.results.INCONCLUSIVE` or None (not evaluated).

Verdict helpers (they would belong in :mod:`vaemi.book.results`, beside :func:`~vaemi.book.results.decide`):

* :func:`agree`: a Monte Carlo estimate equals a closed form up to ``z`` standard errors; inconclusive when the
  sample is too small for the check to resolve a discrepancy of ``tol`` (or has too few effective samples);
* :class:`Bounds` and :func:`higher`: "A carries more information than B", decided lower bound against upper
  bound (holds when A's lower bound is above B's upper bound, fails when A's upper bound is below B's lower bound,
  inconclusive when the intervals overlap);
* :func:`~vaemi.book.results.all_of`: the verdict of a conjunction.

Measures on trained models that are not in :mod:`vaemi.measures` (they would belong there): the generative upper
bound on :math:`I([z,c];\\tilde x)` (:func:`generative_mi_upper_bound`), the per-dimension generative lower bound
(:func:`per_dim_lower_bound`), InfoNCE on the whole code (:func:`encoder_total_bounds`), per-image ELBO terms
(:func:`per_image_elbo`) and per-image reconstruction probabilities (:func:`recprob_per_image`).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import integrate, stats
from torch import distributions as D

from vaemi.book.params import Bool, Choice, Float, Int, ListOf, require
from vaemi.book.results import INCONCLUSIVE, all_of, decide, mean_se, paired_mean_se
from vaemi.chapters.common import PROFILE, Chapter
from vaemi.data import data_tensor
from vaemi.losses.elbo import ELBOLoss
from vaemi.losses.mi import InfoVAELoss, make_x_tilde
from vaemi.maths.distributions import LOG_2PI, kl_normal_std_normal, log_mean_exp
from vaemi.measures.metrics import importance_log_weights
from vaemi.measures.toy import LinearGaussian
from vaemi.models import VAE, GaussianPart, LatentSpace, build_vae, model_device

# ------------------------------------------------------------------------------------------- parameters
SCHEMA = {
    "profile": PROFILE, "seed": Int(0), "allow_fallback": Bool(),
    "dataset": Choice(["mnist", "fashion_mnist"]), "n_train": Int(100, 60000), "n_test": Int(100, 10000),
    "hidden": ListOf(Int(1, 10_000)), "batch_size": Int(1), "lr": Float(0, 1, open_low=True),
    "lam": Float(0, open_low=True), "x_tilde": Choice(["mean", "relaxed"]),
    "latent_dim": Int(2, 1000), "mi_dim": Int(1, 999), "epochs": Int(1),
    "latent_dim_big": Int(2, 1000), "mi_dim_big": Int(1, 999), "epochs_big": Int(1),
    "sweep_lams": ListOf(Float(0), min_len=2, increasing=True), "sweep_epochs": Int(1), "sweep_n_train": Int(100, 60000),
    "mi_samples": Int(100), "mi_samples_epoch": Int(100), "iwae_samples": Int(2),
    "upper_samples": Int(10), "upper_k": Int(2), "grad_batches": Int(4), "s4_images": Int(10, 10000),
}


def _check(p: dict) -> None:
    """Cross-parameter rules of the chapter."""
    require(
        p["mi_dim"] < p["latent_dim"],
        f"parameter 'mi_dim' ({p['mi_dim']}) must be smaller than 'latent_dim' ({p['latent_dim']})",
    )
    require(
        p["mi_dim_big"] < p["latent_dim_big"],
        f"parameter 'mi_dim_big' ({p['mi_dim_big']}) must be smaller than 'latent_dim_big' ({p['latent_dim_big']})",
    )
    require(
        p["batch_size"] <= min(p["n_train"], p["sweep_n_train"]),
        f"parameter 'batch_size' ({p['batch_size']}) must not exceed 'n_train' ({p['n_train']}) or 'sweep_n_train' ({p['sweep_n_train']})",
    )
    require(p["sweep_lams"][0] == 0.0, f"parameter 'sweep_lams' must start at 0 (the plain VAE), got {p['sweep_lams']}")
    require(p["grad_batches"] % 2 == 0, f"parameter 'grad_batches' ({p['grad_batches']}) must be even (they are used in pairs)")


chapter = Chapter("infovae", "infoVAE: MI on part of the code", SCHEMA, (_check,))


SCHEMA_EXP2 = {
    "profile": PROFILE, "seed": Int(0), "allow_fallback": Bool(),
    "n_train": Int(100, 60000), "n_test": Int(100, 10000), "hidden": ListOf(Int(1, 10_000)),
    "latent_dim": Int(2, 1000), "mi_dim": Int(1, 999), "lam": Float(0), "x_tilde": Choice(["mean", "relaxed", "straight_through"]),
    "epochs": Int(1), "batch_size": Int(1), "lr": Float(0, 1, open_low=True), "mi_samples": Int(100),
}


def _check_exp2(p: dict) -> None:
    """Cross-parameter rules of the chapter."""
    require(
        p["mi_dim"] < p["latent_dim"],
        f"parameter 'mi_dim' ({p['mi_dim']}) must be smaller than 'latent_dim' ({p['latent_dim']})",
    )
    require(
        p["batch_size"] <= p["n_train"],
        f"parameter 'batch_size' ({p['batch_size']}) must not exceed 'n_train' ({p['n_train']})",
    )


exp2 = Chapter("infovae_exp2", "Ablation: infoVAE experiment 2", SCHEMA_EXP2, (_check_exp2,))

#: Sizes of the exact-toy checks (the same in every profile: they cost well under a second).
TOY = dict(d=3, D=6, points=10, qs=20, draws=100_000, reparam_draws=100_000, is_draws=20_000, joints=20)
#: An agreement check (closed form against Monte Carlo) is decided only if its 4-SE interval is narrower than this
#: share of the target's magnitude (at least 1): the check must be able to see a discrepancy of 2%.
REL_TOL = 0.02


# ------------------------------------------------------------------------------------------- verdicts
def agree(estimate: float, target: float, se: float, *, z: float = 4.0, tol: float | None = None,
          ess: float | None = None, min_ess: float | None = None) -> bool | str | None:
    """Verdict of "the Monte Carlo ``estimate`` equals ``target``": fails when they differ by more than ``z``
    standard errors; inconclusive when they do not, but the check is too coarse to see a discrepancy of ``tol``
    (``z * se > tol``, default ``REL_TOL * max(1, |target|)``) or rests on fewer than ``min_ess`` effective
    samples; holds otherwise. None when a value is not finite."""
    if not all(math.isfinite(v) for v in (estimate, target, se)) or se < 0:
        return None
    if min_ess is not None and (ess is None or not math.isfinite(ess) or ess < min_ess):
        return INCONCLUSIVE
    if abs(estimate - target) > z * se:
        return False
    tol = REL_TOL * max(1.0, abs(target)) if tol is None else tol
    return INCONCLUSIVE if z * se > tol else True


@dataclass(frozen=True)
class Bounds:
    """A lower and an upper bound on one information (nats), each with its standard error."""

    lo: float
    se_lo: float
    up: float
    se_up: float

    def scaled(self, k: float) -> Bounds:
        """The bounds on ``k`` times the information (``k >= 0``)."""
        return Bounds(k * self.lo, k * self.se_lo, k * self.up, k * self.se_up)

    def to_dict(self) -> dict[str, float]:
        return {"lo": self.lo, "se_lo": self.se_lo, "up": self.up, "se_up": self.se_up}

    @classmethod
    def point(cls, value: float, se: float) -> Bounds:
        """One estimate serving as both bounds (e.g. a rate compared as a number)."""
        return cls(value, se, value, se)


def higher(a: Bounds, b: Bounds, *, z: float = 2.0, combined: bool = False) -> bool | str | None:
    """Verdict of "A carries more information than B", lower bound against upper bound.

    Holds when A's lower bound is above B's upper bound, fails when A's upper bound is below B's lower bound,
    inconclusive when neither (the bounds overlap). ``combined=False``: each bound ``z`` of its own standard
    errors out; ``combined=True``: the difference beyond ``z`` combined standard errors."""
    vals = (a.lo, a.se_lo, a.up, a.se_up, b.lo, b.se_lo, b.up, b.se_up)
    if not all(math.isfinite(v) for v in vals):
        return None
    if combined:
        win = a.lo - b.up > z * math.hypot(a.se_lo, b.se_up)
        lose = b.lo - a.up > z * math.hypot(a.se_up, b.se_lo)
    else:
        win = a.lo - z * a.se_lo > b.up + z * b.se_up
        lose = a.up + z * a.se_up < b.lo - z * b.se_lo
    return True if win else (False if lose else INCONCLUSIVE)


# ------------------------------------------------------------------------------------------- models
def build_init(image_shape: Sequence[int], d: int, d_c: int, hidden: Sequence[int], seed: int) -> VAE:
    """The shared initialization of a VAE with the code split ``[z, c]`` (``d - d_c`` and ``d_c`` dimensions)."""
    torch.manual_seed(seed)
    return build_vae(image_shape, LatentSpace([GaussianPart(d - d_c, "z"), GaussianPart(d_c, "c")]), hidden=hidden)


# ------------------------------------------------------------------------------------------- §2.1 toys
def _lg(seed: int) -> LinearGaussian:
    return LinearGaussian.random(d=TOY["d"], D_=TOY["D"], sigma=0.7, seed=seed)


def _random_q(lg: LinearGaussian, g: torch.Generator, n: int, x: torch.Tensor | None = None, near: bool = False
              ) -> D.MultivariateNormal:
    """``n`` random diagonal Gaussians over z (near the posterior at ``x`` and wider than it when ``near``)."""
    d = lg.d
    if near:
        post = lg.posterior(x)
        sd = post.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt()
        mean = post.mean + 0.3 * sd * torch.randn(n, d, generator=g, dtype=torch.float64)
        std = sd * (0.8 + 0.5 * torch.rand(n, d, generator=g, dtype=torch.float64))
    else:
        mean = torch.randn(n, d, generator=g, dtype=torch.float64)
        std = torch.exp(0.5 * torch.randn(n, d, generator=g, dtype=torch.float64))
    return D.MultivariateNormal(mean, torch.diag_embed(std.pow(2)))


def elbo_identities(seed: int, lg: LinearGaussian | None = None) -> dict[str, Any]:
    """Eq. 1 and eq. 2 on a linear-Gaussian model, every term in closed form (float64): for ``TOY['points']``
    data points and ``TOY['qs']`` random Gaussian q each, the largest |log p(x) - KL(q || p(z|x)) - ELBO(q)|, the
    largest ELBO(q) - log p(x) (must be <= 0), and |ELBO(posterior) - log p(x)|. ``lg``: another model (default a
    random one from ``seed``)."""
    lg = _lg(seed) if lg is None else lg
    g = torch.Generator().manual_seed(seed + 1)
    x, _ = lg.sample(TOY["points"], seed=seed + 2)
    gap_err, above, at_post = 0.0, -math.inf, 0.0
    for xi in x:
        q = _random_q(lg, g, TOY["qs"])
        logpx = lg.marginal().log_prob(xi)
        post = lg.posterior(xi)
        elbo = lg.elbo(xi, q)
        kl = D.kl_divergence(q, D.MultivariateNormal(post.mean.expand(TOY["qs"], -1), post.covariance_matrix))
        gap_err = max(gap_err, float((logpx - kl - elbo).abs().max()))
        above = max(above, float((elbo - logpx).max()))
        at_post = max(at_post, float((lg.elbo(xi, post) - logpx).abs()))
    return {"gap_err": gap_err, "max_elbo_minus_logpx": above, "posterior_err": at_post}


def reparam_check(seed: int, draws: int | None = None, lg: LinearGaussian | None = None) -> dict[str, Any]:
    """Eq. 4 with L = 1 on a linear-Gaussian model: the mean over ``draws`` reparameterized draws
    z = m + s * eps of -KL(q || p(z)) + log p(x|z) against the closed-form ELBO, and the mean of the per-draw
    gradients with respect to (m, log s) against the gradient of the closed-form ELBO, each with its standard
    error; ``verdict`` combines :func:`agree` over the value and every coordinate."""
    draws = TOY["reparam_draws"] if draws is None else draws
    lg = _lg(seed) if lg is None else lg
    g = torch.Generator().manual_seed(seed + 3)
    x = lg.sample(1, seed=seed + 4)[0][0]
    m0 = torch.randn(lg.d, generator=g, dtype=torch.float64)
    ls0 = 0.3 * torch.randn(lg.d, generator=g, dtype=torch.float64)
    # closed form and its gradient
    m, ls = m0.clone().requires_grad_(), ls0.clone().requires_grad_()
    closed = lg.elbo(x, D.MultivariateNormal(m, torch.diag(torch.exp(2 * ls))))
    gm, gls = torch.autograd.grad(closed, (m, ls))
    # per-draw estimator (one row of parameters per draw, so that the gradient of the sum is per draw)
    mr = m0.expand(draws, -1).clone().requires_grad_()
    lsr = ls0.expand(draws, -1).clone().requires_grad_()
    eps = torch.randn(draws, lg.d, generator=g, dtype=torch.float64)
    z = mr + torch.exp(lsr) * eps
    kl = kl_normal_std_normal(mr, 2 * lsr).sum(-1)
    est = -kl + lg.likelihood(z).log_prob(x)
    grm, grls = torch.autograd.grad(est.sum(), (mr, lsr))
    scale = max(1.0, float(torch.cat([gm, gls]).norm()))  # a gradient coordinate is resolved against the gradient's norm
    closed = float(closed.detach())
    rows = [("value", est.detach(), closed, REL_TOL * max(1.0, abs(closed)))]
    rows += [(f"d/dm{j}", grm[:, j], float(gm[j]), REL_TOL * scale) for j in range(lg.d)]
    rows += [(f"d/dlogs{j}", grls[:, j], float(gls[j]), REL_TOL * scale) for j in range(lg.d)]
    out = []
    for name, sample, target, tol in rows:
        mean, se = mean_se(sample)
        out.append(dict(term=name, estimate=mean, closed=target, se=se, verdict=agree(mean, target, se, tol=tol)))
    return {"rows": out, "verdict": all_of(r["verdict"] for r in out), "draws": draws,
            "max_z": max(abs(r["estimate"] - r["closed"]) / r["se"] for r in out)}


def discrete_mi_check(seed: int, joints: int | None = None) -> dict[str, float]:
    """§2.1.2 on random discrete joints p(x, z) (6 x 4): the spread of H(x) - H(x|z), H(z) - H(x|z) and the KL
    form, the smallest I and the largest I - min(H(x), H(z)), and |I - H(z)| for a joint where z = f(x)."""
    rng = np.random.default_rng(seed)
    spread, i_min, over = 0.0, math.inf, -math.inf
    for _ in range(TOY["joints"] if joints is None else joints):
        p = rng.dirichlet(np.ones(24)).reshape(6, 4)
        spread_i, mi, hx, hz = _mi_forms(p)
        spread, i_min, over = max(spread, spread_i), min(i_min, mi), max(over, mi - min(hx, hz))
    px = rng.dirichlet(np.ones(6))
    f = np.zeros((6, 4))
    f[np.arange(6), np.arange(6) % 4] = 1.0  # z = x mod 4, a function of x
    _, mi, _, hz = _mi_forms(px[:, None] * f)
    return {"spread": spread, "min_I": i_min, "max_I_minus_minH": over, "function_err": abs(mi - hz)}


def _mi_forms(p: np.ndarray) -> tuple[float, float, float, float]:
    """(spread of the three forms, I, H(x), H(z)) of a joint ``p`` (rows x, columns z; zeros allowed)."""
    def h(v):
        v = v[v > 0]
        return float(-(v * np.log(v)).sum())
    px, pz = p.sum(1), p.sum(0)
    hxz = h(p.ravel())
    h_x_given_z, h_z_given_x = hxz - h(pz), hxz - h(px)
    nz = p > 0
    kl = float((p[nz] * np.log(p[nz] / np.outer(px, pz)[nz])).sum())
    forms = [h(px) - h_x_given_z, h(pz) - h_z_given_x, kl]
    return max(forms) - min(forms), kl, h(px), h(pz)


def uniform_entropy_check(seed: int, draws: int = 1000) -> dict[str, float]:
    """Footnote 1: the differential entropy of U[0, 1/2] by quadrature of -p log p and by Monte Carlo of -log p(u)
    (the density is constant, so the Monte Carlo estimate is exact), against -log 2."""
    quad, _ = integrate.quad(lambda u: -2.0 * math.log(2.0), 0.0, 0.5)
    u = np.random.default_rng(seed).uniform(0.0, 0.5, draws)
    mc = float(np.mean(-np.log(np.full_like(u, 2.0))))
    return {"quad": quad, "mc": mc, "exact": -math.log(2.0)}


def gaussian_pair_check(seed: int, sigma: float = 0.1, rho: float = 0.99, draws: int | None = None) -> dict[str, Any]:
    """'The mutual information becomes only bounded by below': a bivariate Gaussian (std ``sigma``, correlation
    ``rho``) whose MI -1/2 log(1 - rho^2) exceeds both differential entropies 1/2 log(2 pi e sigma^2); the MI by
    Monte Carlo of log p(x, z) - log p(x) - log p(z) against the closed form."""
    draws = TOY["draws"] if draws is None else draws
    mi = -0.5 * math.log(1 - rho ** 2)
    h = 0.5 * math.log(2 * math.pi * math.e * sigma ** 2)
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64) * sigma ** 2
    joint = D.MultivariateNormal(torch.zeros(2, dtype=torch.float64), cov)
    torch.manual_seed(seed)
    s = joint.sample((draws,))
    marg = D.Normal(torch.zeros((), dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64))
    v = joint.log_prob(s) - marg.log_prob(s[:, 0]) - marg.log_prob(s[:, 1])
    est, se = mean_se(v)
    return {"mi": mi, "h": h, "estimate": est, "se": se, "agree": agree(est, mi, se), "above": bool(mi > h and mi >= 0)}


def mi_gaussian_check(seed: int, draws: int | None = None, lg: LinearGaussian | None = None) -> dict[str, Any]:
    """Eq. 6 and eq. 7 on a linear-Gaussian model: the closed-form MI 1/2 log det(I + W^T W / sigma^2) against
    H(z) - H(z|x) of the closed-form Gaussians (an identity) and against the Monte Carlo of eq. 7,
    -log p(z) + log p(z|x) over ``draws`` joint draws."""
    draws = TOY["draws"] if draws is None else draws
    lg = _lg(seed) if lg is None else lg
    d = lg.d
    closed = 0.5 * float(torch.logdet(torch.eye(d, dtype=torch.float64) + lg.W.T @ lg.W / lg.sigma2))
    x, z = lg.sample(draws, seed=seed + 5)
    post = lg.posterior(x)
    h_diff = float(lg.prior().entropy() - post.entropy()[0])
    v = -lg.prior().log_prob(z) + post.log_prob(z)
    est, se = mean_se(v)
    return {"closed": closed, "entropy_form": h_diff, "identity_err": abs(closed - h_diff), "estimate": est, "se": se,
            "verdict": all_of([abs(closed - h_diff) < 1e-9, agree(est, closed, se)])}


def jensen_chain_check(seed: int, draws: int | None = None, lg: LinearGaussian | None = None) -> dict[str, Any]:
    """The §4 chain on a linear-Gaussian model, for ``TOY['qs']`` random Gaussian q (near the posterior, wider
    than it): (i) the closed form of log E_p(z|x) p(x|z) = log N(x; W m + b, W S W^T + sigma^2 I) against its
    importance-sampling estimate log mean_k p(z_k|x) p(x|z_k) / q(z_k), z_k ~ q (the change of measure), within
    4 standard errors (delta method), with at least 1000 effective draws; (ii) the closed-form right
    side -KL(q || p(z|x)) + E_q log p(x|z) never above the left side, and equal to the left side minus the
    Jensen gap of the exact posterior at q = p(z|x)."""
    draws = TOY["is_draws"] if draws is None else draws
    lg = _lg(seed) if lg is None else lg
    g = torch.Generator().manual_seed(seed + 6)
    x = lg.sample(1, seed=seed + 7)[0][0]
    post = lg.posterior(x)
    m, S = post.mean, post.covariance_matrix
    lhs = float(D.MultivariateNormal(lg.W @ m + lg.b, lg.W @ S @ lg.W.T + lg.sigma2 * torch.eye(lg.D, dtype=torch.float64)).log_prob(x))
    qs = _random_q(lg, g, TOY["qs"], x, near=True)
    rows, verdicts = [], []
    for i in range(TOY["qs"]):
        q = D.MultivariateNormal(qs.mean[i], qs.covariance_matrix[i])
        z = q.mean + torch.randn(draws, lg.d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(q.covariance_matrix).T
        logw = post.log_prob(z) + lg.likelihood(z).log_prob(x) - q.log_prob(z)
        est = float(log_mean_exp(logw, 0))
        w = torch.exp(logw - logw.max())
        ess = float(w.sum() ** 2 / w.pow(2).sum())
        se = float(w.std() / (math.sqrt(draws) * w.mean()))  # delta method: sd(w) / (sqrt(K) mean(w))
        rhs = float(-D.kl_divergence(q, post) + lg.expected_loglik(x, q.mean, q.covariance_matrix))
        rows.append(dict(estimate=est, se=se, ess=ess, rhs=rhs))
        verdicts.append(agree(est, lhs, se, ess=ess, min_ess=1000))
    # at q = p(z|x) the KL vanishes and the gap is the Jensen gap log E_post p(x|z) - E_post log p(x|z) > 0
    rhs_post = float(-D.kl_divergence(post, post) + lg.expected_loglik(x, m, S))
    rhs = np.array([r["rhs"] for r in rows] + [rhs_post])
    inequality = bool((rhs <= lhs + 1e-12).all()) and lhs - rhs_post > 0
    return {"lhs": lhs, "rows": rows, "rhs_post": rhs_post, "jensen_gap_post": lhs - rhs_post, "inequality": inequality,
            "gap_min": float(lhs - rhs.max()), "verdict": all_of([*verdicts, inequality]),
            "max_z": max(abs(r["estimate"] - lhs) / r["se"] for r in rows), "min_ess": min(r["ess"] for r in rows)}


def mi_bound_term(prior: np.ndarray, forward: np.ndarray, backward: np.ndarray) -> float:
    """E_{a ~ prior} E_{b ~ forward(b|a)} log backward(a|b): the MI lower bound's term without H (``forward``
    (A, B) and ``backward`` (B, A) rows are conditionals). With (p(z), p(x|z), q(z|x)) it is the seed's MI bound
    term; with (p_data(x), q(z|x), p(x|z)) it is the VAE's reconstruction term (the dual VAE)."""
    return float((prior[:, None] * forward * np.log(backward.T)).sum())


def dual_vae_check(seed: int, joints: int | None = None, nx: int = 6, nz: int = 4) -> dict[str, float]:
    """§4 'the reconstruction term is the MI lower bound of a dual VAE', on random discrete (p_data, q, p):
    (i) the reconstruction term sum_x p_data(x) sum_z q(z|x) log p(x|z) (by explicit loops) against
    :func:`mi_bound_term` with the roles of x and z swapped; (ii) reconstruction term + H(p_data) <= I_q(x; z)
    of the encoder's joint p_data(x) q(z|x), with equality when p(x|z) is that joint's posterior q(x|z)."""
    rng = np.random.default_rng(seed)
    err, slack, eq_err = 0.0, math.inf, 0.0
    for _ in range(TOY["joints"] if joints is None else joints):
        p_data = rng.dirichlet(np.ones(nx))
        q = rng.dirichlet(np.ones(nz), size=nx)              # q(z|x), (X, Z)
        p = rng.dirichlet(np.ones(nx), size=nz)              # p(x|z), (Z, X)
        rec = sum(p_data[i] * q[i, j] * math.log(p[j, i]) for i in range(nx) for j in range(nz))
        err = max(err, abs(rec - mi_bound_term(p_data, q, p)))
        joint = p_data[:, None] * q
        qz = joint.sum(0)
        h_data = float(-(p_data * np.log(p_data)).sum())
        iq = float((joint * np.log(joint / (p_data[:, None] * qz[None, :]))).sum())
        slack = min(slack, iq - (rec + h_data))
        q_x_given_z = (joint / qz[None, :]).T                # (Z, X), the encoder joint's posterior
        eq_err = max(eq_err, abs(mi_bound_term(p_data, q, q_x_given_z) + h_data - iq))
    return {"swap_err": err, "min_slack": slack, "equality_err": eq_err}


# ------------------------------------------------------------------------------------------- §2.1 on the models
@torch.no_grad()
def per_image_elbo(model: VAE, x: torch.Tensor, seed: int = 0, batch_size: int = 1000) -> dict[str, np.ndarray]:
    """Per-image ELBO terms with one seeded posterior sample each (the caller's random state is left untouched):
    ``rec`` (-log p(x|z)), ``kl`` (closed form, whole code), ``kl_<part>``, ``elbo``, and ``logvar`` (the mean
    posterior log-variance over the code's dimensions)."""
    model.eval()
    device = model_device(model)
    x = data_tensor(x, device)
    out: dict[str, list] = {}
    g = torch.Generator(device=device).manual_seed(seed)
    for s in range(0, x.shape[0], batch_size):
        xb = x[s:s + batch_size]
        params = model.encode(xb)
        codes, kls, lvs = {}, {}, []
        for p in model.latent.parts:
            mu, logvar = p.split(params[p.name])
            codes[p.name] = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g, device=device)
            kls[p.name] = kl_normal_std_normal(mu, logvar).sum(-1)
            lvs.append(logvar)
        rec = -model.likelihood.log_prob(xb, model.decode(model.latent.join(codes)))
        for k, v in [("rec", rec), ("kl", sum(kls.values())), ("logvar", torch.cat(lvs, -1).mean(-1))] + \
                [(f"kl_{n}", v) for n, v in kls.items()]:
            out.setdefault(k, []).append(v.double().cpu())
    res = {k: torch.cat(v).numpy() for k, v in out.items()}
    res["elbo"] = -(res["rec"] + res["kl"])
    return res


def kl_closed_vs_mc(model: VAE, x: torch.Tensor, draws: int = 100, seed: int = 0, batch_size: int = 500) -> dict[str, Any]:
    """Eq. 3 against eq. 2 on a trained model: per image, the mean over ``draws`` samples z ~ q(z|x) of
    log q(z|x) - log p(z) minus the closed-form KL; the mean difference over images with its standard error, and
    the verdict of :func:`agree` (4 standard errors, resolving 2% of the mean KL)."""
    model.eval()
    device = model_device(model)
    x = data_tensor(x, device)
    g = torch.Generator(device=device).manual_seed(seed)
    diffs, kls = [], []
    with torch.no_grad():
        for s in range(0, x.shape[0], batch_size):
            params = model.encode(x[s:s + batch_size])
            mc, closed = 0.0, 0.0
            for p in model.latent.parts:
                mu, logvar = (t.double() for t in p.split(params[p.name]))
                eps = torch.randn((draws, *mu.shape), generator=g, device=device, dtype=torch.float64)
                z = mu + (0.5 * logvar).exp() * eps
                logq = (-0.5 * (LOG_2PI + logvar + eps.pow(2))).sum(-1)
                logp = (-0.5 * (LOG_2PI + z.pow(2))).sum(-1)
                mc = mc + (logq - logp).mean(0)
                closed = closed + kl_normal_std_normal(mu, logvar).sum(-1)
            diffs.append((mc - closed).cpu())
            kls.append(closed.cpu())
    d, se = mean_se(torch.cat(diffs))
    kl = float(torch.cat(kls).mean())
    return {"diff": d, "se": se, "kl": kl, "draws": draws,
            "verdict": agree(d, 0.0, se, tol=REL_TOL * max(1.0, kl))}


def minibatch_unbiased(values: np.ndarray, m: int = 100, batches: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Eq. 5: N/M times the sum over a random minibatch of M (without replacement), averaged over ``batches``
    minibatches, against the full-data sum; :func:`agree` within 4 standard errors (resolving 2% of |sum|)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    m = min(m, n)
    rng = np.random.default_rng(seed)
    est = np.array([n / m * values[rng.choice(n, m, replace=False)].sum() for _ in range(batches)])
    mean, se = mean_se(est)
    full = float(values.sum())
    return {"estimate": mean, "full": full, "se": se, "m": m, "batches": batches,
            "verdict": agree(mean, full, se, tol=REL_TOL * max(1.0, abs(full)))}


def elbo_gradient(model: VAE, xb: torch.Tensor, samples: int) -> torch.Tensor:
    """The flattened gradient of the eq.-4 estimate of the minibatch's mean negative ELBO with ``samples`` (L)
    posterior draws per image (closed-form KL, global random state)."""
    model.zero_grad(set_to_none=True)
    params = model.encode(xb)
    codes, kl = {}, 0.0
    for p in model.latent.parts:
        mu, logvar = p.split(params[p.name])
        codes[p.name] = mu + (0.5 * logvar).exp() * torch.randn((samples, *mu.shape), device=mu.device)
        kl = kl + kl_normal_std_normal(mu, logvar).sum(-1)
    z = model.latent.join(codes).flatten(0, 1)
    xr = xb.unsqueeze(0).expand(samples, *xb.shape).flatten(0, 1)
    rec = -model.likelihood.log_prob(xr, model.decode(z)).view(samples, -1).mean(0)
    (rec + kl).mean().backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).detach()


def gradient_noise_ratio(model: VAE, x: torch.Tensor, *, batches: int, batch_size: int = 100, big_l: int = 10,
                         seed: int = 0) -> dict[str, float]:
    """'L can be set to one': the total variance over minibatches of the ELBO gradient with L = 1 divided by that
    with L = ``big_l`` (same minibatches), with its standard error.

    The variance is estimated from independent pairs of minibatches, tr Cov = E ||g_a - g_b||^2 / 2, so that the
    pairs are independent and the ratio's standard error follows from the delta method (paired)."""
    model = copy.deepcopy(model).train()
    x = data_tensor(x, model_device(model))
    gen = torch.Generator().manual_seed(seed)
    s1, sl = [], []
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        for _ in range(batches // 2):
            g = {}
            for side in (0, 1):
                idx = torch.randperm(x.shape[0], generator=gen)[:batch_size].to(x.device)
                g[side] = (elbo_gradient(model, x[idx], 1), elbo_gradient(model, x[idx], big_l))
            s1.append(float((g[0][0] - g[1][0]).pow(2).sum()) / 2)
            sl.append(float((g[0][1] - g[1][1]).pow(2).sum()) / 2)
    a, b = np.array(s1), np.array(sl)
    r = a.mean() / b.mean()
    se = float(np.std(a - r * b, ddof=1) / math.sqrt(len(a)) / b.mean())
    return {"ratio": float(r), "se": se, "var_l1": float(a.mean()), "var_lbig": float(b.mean()), "pairs": len(a)}


def parameter_layout(model: VAE) -> list[tuple[str, tuple[int, ...]]]:
    """The model's trainable parameters, (name, shape)."""
    return [(n, tuple(p.shape)) for n, p in model.named_parameters() if p.requires_grad]


def no_extra_parameters(vae: VAE, info: VAE, loss: Any) -> dict[str, Any]:
    """'Not adding complexity ... in terms of the number of parameters' and 'q can be recycled': the infoVAE has
    exactly the VAE's parameters (names and shapes), and its loss owns none (no auxiliary network)."""
    aux = loss.auxiliary() if hasattr(loss, "auxiliary") else None
    own = sum(p.numel() for p in aux.parameters()) if aux is not None else 0
    own += sum(p.numel() for p in loss.parameters()) if isinstance(loss, torch.nn.Module) else 0
    n_vae = sum(p.numel() for p in vae.parameters())
    n_info = sum(p.numel() for p in info.parameters())
    same = parameter_layout(vae) == parameter_layout(info)
    return {"n_vae": n_vae, "n_info": n_info, "loss_params": own, "verdict": bool(same and n_vae == n_info and own == 0)}


def count_passes(model: VAE, loss: Any, x: torch.Tensor, *, seed: int = 0) -> dict[str, list[int]]:
    """Forward passes of the encoder and the decoder, and the rows of each, in one optimizer step of ``loss`` on
    the minibatch ``x`` (on a copy of ``model``)."""
    model = copy.deepcopy(model).train()
    rows: dict[str, list[int]] = {"encoder": [], "decoder": []}
    hooks = [getattr(model, name).register_forward_hook(lambda m, inp, out, _n=name: rows[_n].append(int(inp[0].shape[0])))
             for name in rows]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.manual_seed(seed)
    try:
        value, _ = loss(model, x.to(model_device(model)))
        opt.zero_grad()
        value.backward()
        opt.step()
    finally:
        for h in hooks:
            h.remove()
    return rows


def constant_compute(model: VAE, x: torch.Tensor, lams: Sequence[float] = (0.3, 3.0), sizes: Sequence[int] = (50, 100),
                     x_tilde: str = "relaxed") -> dict[str, Any]:
    """'A constant larger number of computations': per training step the infoVAE runs exactly 2 encoder and 2
    decoder passes of M rows (the VAE 1 and 1), for every λ in ``lams`` and minibatch size M in ``sizes``."""
    table, ok = [], True
    for m in sizes:
        xb = x[:m]
        for lam in (0.0, *lams):
            r = count_passes(model, InfoVAELoss(lam=lam, part="c", x_tilde=x_tilde), xb)
            want = 1 if lam == 0 else 2
            good = all(len(r[k]) == want and all(n == m for n in r[k]) for k in r)
            ok = ok and good
            table.append(dict(M=m, lam=lam, encoder=len(r["encoder"]), decoder=len(r["decoder"]), expected=want, ok=good))
    return {"rows": table, "verdict": ok}


@torch.no_grad()
def loss_steps_check(model: VAE, x: torch.Tensor, lam: float, x_tilde: str = "relaxed", seed: int = 0) -> dict[str, float]:
    """The infoVAE algorithm, steps 1-6, recomputed by hand in float64 with the same random draws as
    :class:`~vaemi.losses.mi.InfoVAELoss`: |InfoVAELoss(λ) - InfoVAELoss(0) + λ (mean log q(c~|x~) + H(c))| and
    |InfoVAELoss(0) - ELBOLoss|."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        m = copy.deepcopy(model).double().eval()
        xb = x.double().to(model_device(m))
        torch.manual_seed(seed)
        loss_lam, _ = InfoVAELoss(lam=lam, part="c", x_tilde=x_tilde)(m, xb)
        torch.manual_seed(seed)
        loss_0, _ = InfoVAELoss(lam=0.0, part="c", x_tilde=x_tilde)(m, xb)
        torch.manual_seed(seed)
        loss_elbo, _ = ELBOLoss()(m, xb)
        # by hand: steps 1-3 (the ELBO) consume the same draws, then steps 4-6
        torch.manual_seed(seed)
        params = m.encode(xb)                                                      # step 1
        z = m.latent.rsample(params)                                               # step 2
        rec = -m.likelihood.log_prob(xb, m.decode(z))                              # step 3
        kl = sum(kl_normal_std_normal(*p.split(params[p.name])).sum(-1) for p in m.latent.parts)
        elbo_hand = (rec + kl).mean()
        code = torch.cat([torch.randn(xb.shape[0], p.size, device=xb.device) for p in m.latent.parts], -1)  # step 4
        logits = m.decode(code)                                                    # step 5
        if x_tilde == "relaxed":
            xt = D.RelaxedBernoulli(torch.tensor(0.5), logits=logits).rsample()
        else:
            xt = torch.sigmoid(logits)
        mu, logvar = m.latent["c"].split(m.encode(xt)["c"])                        # step 6
        d_c = m.latent["c"].size
        c = code[:, -d_c:]
        log_q = (-0.5 * (LOG_2PI + logvar + (c - mu).pow(2) / logvar.exp())).sum(-1)
        mi = log_q.mean() + 0.5 * d_c * math.log(2 * math.pi * math.e)
        return {"mi_err": float((loss_lam - loss_0 + lam * mi).abs()), "elbo_err": float((loss_0 - loss_elbo).abs()),
                "hand_elbo_err": float((loss_0 - elbo_hand).abs()), "mi": float(mi)}
    finally:
        torch.set_default_dtype(old)


# ------------------------------------------------------------------------------------------- information
@torch.no_grad()
def generative_mi_upper_bound(model: VAE, n: int, k: int, *, seed: int = 0, batch_size: int = 100) -> tuple[float, float]:
    """An upper bound on the generative information I([z, c]; x~) of ``model``'s joint p(z, c) p(x|z, c), on exact
    Bernoulli samples: the mean over n prior draws of log p(x~|z, c) - IWAE_k(x~), with the encoder as proposal.
    Since E IWAE_k(x~) <= E log p(x~) and I = E[log p(x~|z, c) - log p(x~)], it is an upper bound in expectation
    (tight as k grows). Returns (bound, standard error)."""
    model.eval()
    device = model_device(model)
    g = torch.Generator(device=device).manual_seed(seed)
    vals = []
    for s in range(0, n, batch_size):
        code = model.latent.sample_prior(min(batch_size, n - s), device=device, generator=g)
        out = model.decode(code)
        xt = make_x_tilde(model, out, "sample", generator=g)
        loglik = model.likelihood.log_prob(xt, out)
        (ll, lr), = importance_log_weights(model, xt, k, seed=seed + 1 + s)
        vals.append((loglik - log_mean_exp(ll + lr, 0)).double().cpu())
    return mean_se(torch.cat(vals))


@torch.no_grad()
def per_dim_lower_bound(model: VAE, n: int, *, seed: int = 0, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The seed's lower bound, per code dimension j: E log q(code_j | x~) + H(code_j) with the code from the prior
    and x~ an exact Bernoulli sample of the decoder (the encoder's posterior factorizes over dimensions).
    Returns (bound, standard error), each of the code's size, in the order of the code [z, c]."""
    model.eval()
    device = model_device(model)
    g = torch.Generator(device=device).manual_seed(seed)
    rows = []
    for s in range(0, n, batch_size):
        code = model.latent.sample_prior(min(batch_size, n - s), device=device, generator=g)
        xt = make_x_tilde(model, model.decode(code), "sample", generator=g)
        params = model.encode(xt)
        parts = []
        for p in model.latent.parts:
            mu, logvar = p.split(params[p.name])
            parts.append((mu, logvar))
        mu = torch.cat([a for a, _ in parts], -1)
        logvar = torch.cat([b for _, b in parts], -1)
        rows.append((-0.5 * (LOG_2PI + logvar + (code - mu).pow(2) / logvar.exp())).double().cpu())
    v = torch.cat(rows).numpy()
    h = 0.5 * math.log(2 * math.pi * math.e)
    return v.mean(0) + h, v.std(0, ddof=1) / math.sqrt(v.shape[0])


@torch.no_grad()
def encoder_total_bounds(model: VAE, x: torch.Tensor, *, seed: int = 0, batch_size: int = 250) -> Bounds:
    """Both bounds on I_q([z, c]; x), the information the encoder puts in the whole code, on the images ``x``:
    InfoNCE with the images as the contrast set (at most log N) below, the rate E_x KL(q(z, c|x) || p(z, c))
    above (see :func:`vaemi.measures.mi.encoder_mi_bounds`, which does one part)."""
    model.eval()
    device = model_device(model)
    x = data_tensor(x, device)
    params = [model.encode(x[s:s + 1000]) for s in range(0, x.shape[0], 1000)]
    mus, lvs = [], []
    for p in model.latent.parts:
        mu, logvar = p.split(torch.cat([b[p.name] for b in params]).double())
        mus.append(mu)
        lvs.append(logvar)
    mean, logvar = torch.cat(mus, -1), torch.cat(lvs, -1)
    std = (0.5 * logvar).exp()
    n = mean.shape[0]
    g = torch.Generator(device=device).manual_seed(seed)
    z = mean + std * torch.randn(mean.shape, generator=g, device=device, dtype=mean.dtype)
    prec = std.pow(-2)
    rows = []
    for s in range(0, n, batch_size):
        zi = z[s:s + batch_size]
        quad = zi.pow(2) @ prec.T - 2 * zi @ (mean * prec).T + (mean.pow(2) * prec).sum(-1)[None]
        logq = -0.5 * quad - std.log().sum(-1)[None] - 0.5 * mean.shape[-1] * LOG_2PI
        pos = logq[torch.arange(zi.shape[0]), torch.arange(s, s + zi.shape[0])]
        rows.append(pos - (torch.logsumexp(logq, 1) - math.log(n)))
    lo, se_lo = mean_se(torch.cat(rows))
    up, se_up = mean_se(kl_normal_std_normal(mean, logvar).sum(-1))
    return Bounds(lo, se_lo, up, se_up)


def part_bounds(s: dict[str, float], part: str) -> Bounds:
    """Both bounds on I_q(part; x) from a :func:`vaemi.chapters.reports.mi_report` summary (``encoder=True``)."""
    return Bounds(s[f"Iq_{part}"], s[f"se_Iq_{part}"], s[f"rate_{part}"], s[f"se_rate_{part}"])


def ic_similar_total(info_c: Bounds, info_total_up: tuple[float, float], vae_total: Bounds, *, low: float = 0.8,
                     high: float = 1.2) -> bool | str | None:
    """'The MI in c assumed a similar value as the overall MI when training a stock VAE', two-sided on one joint:
    the infoVAE's information in c is at least ``low`` and at most ``high`` times the VAE's whole-code
    information, each decided lower bound against upper bound (2 SE each). The infoVAE's upper bound on I(c) is its
    upper bound on I([z, c])."""
    c = Bounds(info_c.lo, info_c.se_lo, *info_total_up)
    return all_of([higher(c, vae_total.scaled(low)), higher(vae_total.scaled(high), c)])


def z_zero_quickly(info_z: Bounds, vae_z: Bounds, rate_per_epoch: Sequence[float], *, share: float = 0.05
                   ) -> dict[str, Any]:
    """'The MI in z quickly went to zero': the infoVAE's information in z is at most ``share`` of the plain VAE's
    (upper bound against the VAE's lower bound, 2 SE each; it fails when the infoVAE's lower bound is above
    ``share`` times the VAE's upper bound), and the per-epoch rate of z is below ``share`` times the VAE's lower
    bound (2 SE out) within the first half of the epochs."""
    level = share * (vae_z.lo - 2 * vae_z.se_lo)
    rates = np.asarray(rate_per_epoch, dtype=float)
    below = np.flatnonzero(rates <= level)
    first = int(below[0]) + 1 if len(below) else None
    half = math.ceil(len(rates) / 2)
    quick = bool(first is not None and first <= half and level > 0)
    return {"level": level, "first_epoch": first, "half": half,
            "verdict": all_of([higher(vae_z.scaled(share), info_z), quick])}


def spearman_salience(bound: np.ndarray, influence: np.ndarray) -> float:
    """Spearman correlation between per-dimension MI lower bounds and traversal influences."""
    return float(stats.spearmanr(bound, influence).statistic)


@torch.no_grad()
def recprob_per_image(model: VAE, x: torch.Tensor, k: int, *, seed: int = 0, batch_size: int = 100) -> dict[str, np.ndarray]:
    """§4 per image, by importance sampling with q (see
    :func:`vaemi.measures.metrics.reconstruction_probability`, which returns the averages): ``log_px``, ``elbo``,
    ``rec_term``, ``log_rec_prob`` = log E_p(z|x) p(x|z) and ``rec_prob_bound`` (the seed's right side)."""
    parts = [tuple(t.double() for t in w) for w in importance_log_weights(model, x, k, batch_size=batch_size, seed=seed)]
    loglik = torch.cat([a for a, _ in parts], 1)
    logw = loglik + torch.cat([b for _, b in parts], 1)
    log_px = log_mean_exp(logw, 0)
    elbo, rec_term = logw.mean(0), loglik.mean(0)
    out = {"log_px": log_px, "elbo": elbo, "rec_term": rec_term, "log_rec_prob": log_mean_exp(logw + loglik, 0) - log_px,
           "rec_prob_bound": elbo - log_px + rec_term}
    return {key: v.cpu().numpy() for key, v in out.items()}


def orders_agree(per_model: dict[Any, dict[str, np.ndarray]], z: float = 2.0) -> dict[str, Any]:
    """'Maximizing the ELBO is equivalent to maximizing the probability of a correct reconstruction': for every
    pair of models whose paired test ELBO differs by more than ``z`` SE, the model with the higher ELBO must
    also have the higher log E_p(z|x) p(x|z), decided in ``z`` SE of the paired difference (holds beyond, fails
    when reversed beyond, inconclusive between). Fails if one pair is reversed; not evaluated if no pair's ELBO
    differs."""
    names = list(per_model)
    rows, verdicts = [], []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            de, se_e = paired_mean_se(per_model[a]["elbo"], per_model[b]["elbo"])
            if abs(de) <= z * se_e:
                continue
            sign = 1.0 if de > 0 else -1.0
            dr, se_r = paired_mean_se(per_model[a]["log_rec_prob"], per_model[b]["log_rec_prob"])
            v = decide(sign * dr, se_r, 0.0, above=True, z=z)
            rows.append(dict(a=a, b=b, d_elbo=de, se_elbo=se_e, d_recprob=dr, se_recprob=se_r, verdict=v))
            verdicts.append(v)
    return {"rows": rows, "pairs": len(rows), "reversed": sum(v is False for v in verdicts),
            "verdict": all_of(verdicts) if verdicts else None}


# ------------------------------------------------------------------------------------------- §4 without the KL
@torch.no_grad()
def posterior_geo_std(model: VAE, x: torch.Tensor) -> float:
    """The geometric-mean posterior standard deviation over images and code dimensions, exp(mean log-var / 2)."""
    return float(np.exp(per_image_elbo(model, x)["logvar"].mean() / 2))


def delta_posterior(std_per_epoch: Sequence[float], nokl_logvar: np.ndarray, vae_logvar: np.ndarray,
                    factor: float = 10.0) -> dict[str, Any]:
    """'Omitting the KL term would lead to a posterior that approaches a delta distribution': the geometric-mean
    posterior std of the model trained without KL falls at every epoch (from its initialization on) and ends at
    least ``factor`` times smaller than the plain VAE's, decided on the paired per-image difference of half the
    mean log-variance (log of the ratio) against -log(factor), 2 SE."""
    s = np.asarray(std_per_epoch, dtype=float)
    falls = bool(len(s) >= 2 and np.all(np.diff(s) < 0))
    d, se = paired_mean_se(np.asarray(nokl_logvar) / 2, np.asarray(vae_logvar) / 2)
    return {"falls": falls, "log_ratio": d, "se": se, "ratio": float(np.exp(d)),
            "verdict": all_of([falls, decide(d, se, -math.log(factor), above=False)])}


def listed(values: Iterable[float], fmt: str = "{:.3g}") -> str:
    """Numbers as a comma-separated string (for glued lists in the text)."""
    return ", ".join(fmt.format(v) for v in values)
