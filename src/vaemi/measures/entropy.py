r"""Information of continuous codes: eq. 3 of the VIMAE paper (the KL of factorized laws is the sum of the
per-dimension KLs, :func:`kl_additive_check`), bounds on the entropy :math:`h(q(z))` of a Gaussian aggregate
posterior (:func:`mixture_entropy_bounds`, Kolchinsky & Tracey 2017) and two estimators of it
(:func:`mixture_entropy_mc`; :func:`knn_entropy`, Kozachenko–Leonenko)."""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln, logsumexp
from torch import distributions as D

from vaemi.maths.priors import make_prior

__all__ = ["kl_additive_check", "mixture_entropy_bounds", "mixture_entropy_mc", "knn_entropy"]


def _vector(a, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a, dtype=np.float64))
    if t.ndim != 1 or t.numel() == 0 or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be a non-empty finite 1-d array, got shape {tuple(t.shape)}")
    return t


@torch.no_grad()
def kl_additive_check(mu, sigma, *, prior: str = "normal", n_samples: int = 200_000, seed: int = 0,
                      n_nodes: int = 101) -> dict[str, float | np.ndarray]:
    r"""Eq. 3 on one posterior: for :math:`q(z\mid x)=\prod_i\mathcal N(\mu_i,\sigma_i^2)` and a factorized prior
    :math:`p(z)=\prod_i p(z_i)` (:func:`vaemi.maths.priors.make_prior`),

    .. math:: \mathrm{KL}(q(z\mid x)\|p(z)) = \sum_{i=1}^d \mathrm{KL}(q(z_i\mid x)\|p(z_i)).

    The per-dimension KLs are computed by Gauss–Hermite quadrature,
    :math:`\mathrm{KL}_i=-\tfrac12\log(2\pi e\sigma_i^2)-\mathbb E_{\mathcal N(\mu_i,\sigma_i^2)}[\log p(z_i)]`
    (and, for the normal prior, in closed form by ``torch.distributions.kl_divergence`` on ``Normal``); the joint
    KL in closed form (normal prior: ``kl_divergence`` of the two ``Independent`` laws) and by Monte Carlo
    :math:`\frac1n\sum_k\log q(z_k\mid x)-\log p(z_k)`, :math:`z_k\sim q(z\mid x)`; and the sum of per-dimension
    Monte-Carlo KLs from a second, independent set of draws.

    Parameters
    ----------
    mu, sigma : array_like (d,)
        Posterior means and standard deviations (``sigma`` > 0).
    prior : {"normal", "logistic"}
        The prior (:data:`vaemi.maths.priors.PRIORS`), built in float64.
    n_samples : int
        Monte-Carlo draws, >= 2.
    seed : int
        Seed of a private ``torch.Generator``.
    n_nodes : int
        Gauss–Hermite nodes.

    Returns
    -------
    dict
        ``per_dim`` (ndarray (d,), quadrature), ``sum_per_dim``, ``per_dim_closed_form`` and
        ``sum_per_dim_closed_form`` (normal prior; ``nan`` otherwise), ``joint_closed_form`` (normal prior; ``nan``
        otherwise), ``joint_mc`` and ``joint_mc_se``, ``sum_per_dim_mc`` and ``sum_per_dim_mc_se``, in nats.

    Raises
    ------
    ValueError
        If ``mu``/``sigma`` are not matching finite vectors, ``sigma`` is not positive, ``prior`` is unknown or
        ``n_samples`` < 2.
    """
    mu, sigma = _vector(mu, "mu"), _vector(sigma, "sigma")
    if sigma.shape != mu.shape:
        raise ValueError(f"sigma must have the shape of mu {tuple(mu.shape)}, got {tuple(sigma.shape)}")
    if bool((sigma <= 0).any()):
        raise ValueError("sigma must be positive")
    n_samples = int(n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    d = mu.numel()
    p = make_prior(prior, d, dtype=torch.float64)
    q = D.Independent(D.Normal(mu, sigma), 1)

    nodes, wts = np.polynomial.hermite_e.hermegauss(int(n_nodes))  # weight exp(-t^2/2)
    wts = torch.as_tensor(wts / math.sqrt(2.0 * math.pi))
    z_nodes = mu[None, :] + sigma[None, :] * torch.as_tensor(nodes)[:, None]
    e_logp = (wts[:, None] * p.base_dist.log_prob(z_nodes)).sum(0)
    per_dim = (-0.5 * torch.log(2.0 * math.pi * math.e * sigma ** 2) - e_logp).numpy()

    nan = float("nan")
    per_dim_cf, joint_cf = np.full(d, nan), nan
    if prior == "normal":
        per_dim_cf = D.kl_divergence(q.base_dist, p.base_dist).numpy()
        joint_cf = float(D.kl_divergence(q, p))

    g = torch.Generator().manual_seed(int(seed))
    z = mu + sigma * torch.randn((n_samples, d), generator=g, dtype=torch.float64)
    diff = q.log_prob(z) - p.log_prob(z)
    z2 = mu + sigma * torch.randn((n_samples, d), generator=g, dtype=torch.float64)
    diff2 = q.base_dist.log_prob(z2) - p.base_dist.log_prob(z2)  # (n, d), independent of the draws above
    return {"per_dim": per_dim, "sum_per_dim": float(per_dim.sum()),
            "per_dim_closed_form": per_dim_cf, "sum_per_dim_closed_form": float(per_dim_cf.sum()),
            "joint_closed_form": joint_cf,
            "joint_mc": float(diff.mean()), "joint_mc_se": float(diff.std() / math.sqrt(n_samples)),
            "sum_per_dim_mc": float(diff2.mean(0).sum()),
            "sum_per_dim_mc_se": float(math.sqrt(float(diff2.var(0).sum()) / n_samples))}


def _mixture_args(mu, var, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    if mu.ndim != 2 or mu.shape[0] == 0 or mu.shape[1] == 0:
        raise ValueError(f"mu must be a non-empty (N, d) array, got shape {mu.shape}")
    if var.shape != mu.shape:
        raise ValueError(f"var must have the shape of mu {mu.shape}, got {var.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(var))):
        raise ValueError("mu and var must be finite")
    if np.any(var <= 0):
        raise ValueError("var must be positive")
    if weights is None:
        w = np.full(mu.shape[0], 1.0 / mu.shape[0])
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (mu.shape[0],) or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.isclose(w.sum(), 1):
            raise ValueError(f"weights must be a probability vector of length N={mu.shape[0]}")
    return mu, var, w


def mixture_entropy_bounds(mu, var, weights=None, *, chunk_elems: int = 2 ** 22) -> tuple[float, float]:
    r"""Lower and upper bounds on the entropy of a mixture of diagonal Gaussians (Kolchinsky & Tracey 2017,
    "Estimating mixture entropy with pairwise distances", Entropy 19:361), e.g. the aggregate posterior
    :math:`q(z)=\frac1N\sum_n\mathcal N(\mu_n,\mathrm{diag}\,\sigma_n^2)`.

    With component entropies :math:`h(p_i)=\tfrac12\sum_k\log(2\pi e\,\sigma_{ik}^2)`, the pairwise-distance
    estimator

    .. math:: \hat h_D = \sum_i w_i h(p_i) - \sum_i w_i \log\sum_j w_j\, e^{-D(p_i\|p_j)}

    is an upper bound with :math:`D=\mathrm{KL}` and a lower bound with the Bhattacharyya distance (the Chernoff
    :math:`\alpha`-divergence at :math:`\alpha=\tfrac12`). For diagonal Gaussians

    .. math:: \mathrm{KL}(p_i\|p_j) = \tfrac12\sum_k\Big[\log\frac{\sigma_{jk}^2}{\sigma_{ik}^2}
              + \frac{\sigma_{ik}^2 + (\mu_{ik}-\mu_{jk})^2}{\sigma_{jk}^2} - 1\Big],\qquad
              \mathrm{BD}(p_i,p_j) = \sum_k\Big[\frac{(\mu_{ik}-\mu_{jk})^2}{8\,\bar\sigma_{k}^2}
              + \tfrac12\log\frac{\bar\sigma_{k}^2}{\sigma_{ik}\sigma_{jk}}\Big],

    :math:`\bar\sigma_k^2=\tfrac12(\sigma_{ik}^2+\sigma_{jk}^2)`. Both bounds equal :math:`h(p_1)` for one
    component (or identical ones) and :math:`\sum_i w_ih(p_i)+H(w)` for components infinitely far apart.

    Parameters
    ----------
    mu, var : array_like (N, d)
        Component means and variances (> 0).
    weights : array_like (N,), optional
        Mixture weights (default :math:`1/N`).
    chunk_elems : int
        Rows of the :math:`N\times N` distance matrices are processed in blocks of about this many
        :math:`(i,j)` pairs (memory :math:`\approx 8\times` that in bytes per temporary, a handful of them).
        The KL matrix comes from matrix products (expanding :math:`(\mu_{ik}-\mu_{jk})^2`), the
        Bhattacharyya matrix from a loop over the :math:`d` dimensions.

    Returns
    -------
    (float, float)
        ``(lower, upper)`` in nats.

    Raises
    ------
    ValueError
        If ``mu``/``var``/``weights`` are malformed (the message names the argument).
    """
    mu, var, w = _mixture_args(mu, var, weights)
    n, d = mu.shape
    log_var = np.log(var)
    sum_log_var = log_var.sum(1)
    h_comp = 0.5 * (d * math.log(2.0 * math.pi * math.e) + sum_log_var)
    inv_var = 1.0 / var
    # KL by matrix products: sum_k (mu_ik - mu_jk)^2 / v_jk expanded in mu_i and mu_j
    scale = np.exp(np.median(log_var, axis=0))   # per-dimension scale, keeps the products below in range
    v_s, mu_s = var / scale, mu / np.sqrt(scale)
    # S_i = sum_j w_j exp(-D_ij) accumulated directly: every term is <= w_j <= 1 and the diagonal one is w_i,
    # so no shift is needed (the log-sum-exp of the formula is log S_i).
    s_kl, s_bd = np.zeros(n), np.zeros(n)
    sq_norm = (mu ** 2 * inv_var).sum(1)
    mu_iv = mu * inv_var
    log_const = 0.5 * (np.log(scale).sum() - d * math.log(2.0))
    step = max(1, int(chunk_elems) // n)
    for s in range(0, n, step):
        e = min(n, s + step)
        rows = np.arange(e - s)
        kl = (var[s:e] + mu[s:e] ** 2) @ inv_var.T - 2.0 * mu[s:e] @ mu_iv.T
        kl += sq_norm[None, :] + sum_log_var[None, :] - sum_log_var[s:e, None] - d
        kl *= -0.5
        kl[rows, rows + s] = 0.0  # exact zeros on the diagonal (rounding otherwise leaves ~1e-16)
        s_kl[s:e] = np.exp(kl, out=kl) @ w
        # Bhattacharyya is symmetric: only columns j >= s, each off-diagonal block counted for rows and columns
        shape = (e - s, n - s)
        quad = np.zeros(shape)                     # sum_k (mu_ik - mu_jk)^2 / (v_ik + v_jk)
        log_sum = np.zeros(shape)                  # sum_k log((v_ik + v_jk) / scale_k), 4 factors per log
        prod, vs, dm = np.ones(shape), np.empty(shape), np.empty(shape)
        for k in range(d):
            np.add(v_s[s:e, k, None], v_s[None, s:, k], out=vs)
            np.subtract(mu_s[s:e, k, None], mu_s[None, s:, k], out=dm)
            np.multiply(dm, dm, out=dm)
            np.divide(dm, vs, out=dm)
            quad += dm
            prod *= vs
            if k % 4 == 3 or k == d - 1:
                log_sum += np.log(prod, out=prod)
                prod.fill(1.0)
        bd = -0.25 * quad - 0.5 * log_sum
        bd += 0.25 * (sum_log_var[s:e, None] + sum_log_var[None, s:]) - log_const
        bd[rows, rows] = 0.0
        np.exp(bd, out=bd)
        s_bd[s:e] += bd @ w[s:]
        s_bd[e:] += w[s:e] @ bd[:, e - s:]
    h_cond = float(w @ h_comp)
    pos = w > 0
    return h_cond - float(w[pos] @ np.log(s_bd[pos])), h_cond - float(w[pos] @ np.log(s_kl[pos]))


def mixture_entropy_mc(mu, var, weights=None, *, n_samples: int = 100_000,
                       rng: np.random.Generator | int | None = None) -> tuple[float, float]:
    r"""Monte-Carlo entropy :math:`-\frac1n\sum_k\log q(z_k)`, :math:`z_k\sim q`, of the mixture of
    :func:`mixture_entropy_bounds`, with its standard error.

    Parameters
    ----------
    mu, var : array_like (N, d)
    weights : array_like (N,), optional
    n_samples : int
        Draws, >= 2 (memory :math:`\propto` ``n_samples`` :math:`\times N`; keep :math:`N` small).
    rng : numpy Generator or int or None

    Returns
    -------
    (float, float)
        Estimate and standard error, in nats.
    """
    mu, var, w = _mixture_args(mu, var, weights)
    n_samples = int(n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    rng = np.random.default_rng(rng)
    comp = rng.choice(mu.shape[0], size=n_samples, p=w)
    z = mu[comp] + np.sqrt(var[comp]) * rng.standard_normal((n_samples, mu.shape[1]))
    log_comp = -0.5 * (np.log(2.0 * math.pi * var)[None] + (z[:, None, :] - mu[None]) ** 2 / var[None]).sum(-1)
    with np.errstate(divide="ignore"):
        nll = -logsumexp(np.log(w)[None, :] + log_comp, axis=1)
    return float(nll.mean()), float(nll.std(ddof=1) / math.sqrt(n_samples))


def knn_entropy(z, k: int = 3) -> float:
    r"""Kozachenko–Leonenko :math:`k`-nearest-neighbour estimate of the differential entropy of samples ``z``,

    .. math:: \hat h = \psi(N) - \psi(k) + \log V_d + \frac dN\sum_{n=1}^N \log r_{n,k},
              \qquad V_d = \frac{\pi^{d/2}}{\Gamma(d/2+1)},

    :math:`r_{n,k}` the Euclidean distance from :math:`z_n` to its :math:`k`-th nearest other sample
    (``scipy.spatial.cKDTree``). Meant for deterministic codes :math:`z_n=f(x_n)`, whose aggregate posterior is
    a set of points.

    Parameters
    ----------
    z : array_like (N, d)
        Samples (N > k), pairwise distinct enough that every :math:`r_{n,k}>0`.
    k : int
        Neighbour order, >= 1.

    Returns
    -------
    float
        Estimate in nats.

    Raises
    ------
    ValueError
        If ``z`` is not a finite (N, d) array with N > ``k``, if ``k`` < 1, or if some point has ``k``
        duplicates (zero distance).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] == 0 or z.shape[0] <= k or not np.all(np.isfinite(z)):
        raise ValueError(f"z must be a finite (N, d) array with N > k={k}, got shape {z.shape}")
    n, d = z.shape
    dist, _ = cKDTree(z).query(z, k=k + 1)
    r = dist[:, -1]
    if np.any(r <= 0):
        raise ValueError(f"z has {int(np.sum(r <= 0))} points with a zero distance to their k-th neighbour "
                         "(duplicates); add jitter or deduplicate")
    log_vd = 0.5 * d * math.log(math.pi) - gammaln(0.5 * d + 1.0)
    return float(digamma(n) - digamma(k) + log_vd + d * np.mean(np.log(r)))
