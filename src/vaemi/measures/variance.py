r"""The variance loss of autoencoders (Asperti 2020) and the moment checks of a VAE's latent space.

* :func:`variance_loss` and :func:`mse`: the two numbers the paper compares,
  :math:`\mathrm{mean}_j(\mathrm{var}_i X_{ij}-\mathrm{var}_i\hat X_{ij})` and
  :math:`\mathrm{mean}_{ij}(X_{ij}-\hat X_{ij})^2`.
* :func:`pca_reconstruction`, :func:`linear_autoencoder`: the PCA case, where the two are equal.
* :func:`shrink_toward_mean`, :func:`permutation_average`, :func:`gaussian_smooth`: the paper's §3.1 cases.
* :func:`kl_rate_split` (eq. 1), :func:`kl_at_fixed_ratio` (eq. 2), :func:`variance_law` (eqs. 3-4): the
  moments of a trained encoder.
* :func:`loss_stats`: MSE and variance loss of a model's reconstructions and samples (Fig. 4).

Variances are population variances (``ddof=0``) over the first axis, so that every identity below
holds exactly, not up to a factor :math:`n/(n-1)`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy import ndimage, optimize
from sklearn.decomposition import PCA

from vaemi.data import ImageData, data_tensor
from vaemi.maths.distributions import LOG_2PI, gaussian_entropy
from vaemi.models import VAE, GaussianPart, model_device

__all__ = ["ACTIVE_KL", "variance_loss", "mse", "pca_reconstruction", "linear_autoencoder", "shrink_toward_mean", "permutation_average", "gaussian_smooth", "encode_gaussian", "kl_rate_split", "kl_at_fixed_ratio", "variance_law", "loss_stats"]


#: A latent dimension is *active* when its average KL to the prior exceeds this (nats), as in
#: :func:`vaemi.measures.metrics.active_units`.
ACTIVE_KL = 1e-2


#: Search interval of :func:`kl_at_fixed_ratio` for :math:`\log\sigma^2` (the minimizer
#: :math:`-\log(1+r^2)` lies inside for every ratio :math:`r<e^{10}`).
_LOG_S2_BOUNDS = (-20.0, 5.0)


def _flat(a) -> np.ndarray:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    if a.ndim < 2 or a.shape[0] < 2:
        raise ValueError(f"expected at least 2 items of at least one feature (shape (n, ...)), got shape {a.shape}")
    return a.reshape(a.shape[0], -1).astype(np.float64)


def variance_loss(x, x_hat) -> float:
    r"""The paper's variance loss :math:`\mathrm{mean}_j\big(\mathrm{var}_i X_{ij}-\mathrm{var}_i\hat X_{ij}\big)`.

    Parameters
    ----------
    x, x_hat : array or tensor, shape (n, ...)
        Data and reconstructions (or generated data: the two sets need not be paired, only have the
        same feature shape; their sizes may differ).

    Returns
    -------
    float
        Mean over features of the difference of the per-feature (population) variances.
    """
    a, b = _flat(x), _flat(x_hat)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and x_hat must have the same number of features, got {a.shape[1]} and {b.shape[1]}")
    return float(np.mean(a.var(0) - b.var(0)))


def mse(x, x_hat) -> float:
    """Mean squared error over all axes between paired ``x`` and ``x_hat`` (same shape)."""
    a, b = _flat(x), _flat(x_hat)
    if a.shape != b.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {a.shape} and {b.shape}")
    return float(np.mean((a - b) ** 2))


def pca_reconstruction(x, k: int) -> np.ndarray:
    r"""Reconstruction of ``x`` from its first ``k`` principal components (float64, sklearn's PCA).

    Parameters
    ----------
    x : array (n, ...)
    k : int
        Number of components, ``1 <= k <= min(n, features)``.

    Returns
    -------
    array (n, features)
        :math:`\bar x + (x-\bar x)VV^\top`, :math:`V` the top-``k`` principal directions.
    """
    a = _flat(x)
    if not 1 <= k <= min(a.shape):
        raise ValueError(f"k must be in [1, {min(a.shape)}], got {k}")
    pca = PCA(n_components=k, svd_solver="covariance_eigh").fit(a)  # orthonormal directions, fast for n >> m
    return pca.inverse_transform(pca.transform(a))


def linear_autoencoder(x, k: int, *, steps: int = 500, lr: float = 1e-2, seed: int = 0) -> tuple[np.ndarray, list]:
    r"""A linear autoencoder :math:`\hat x = W_d(W_e x + b_e) + b_d` trained by full-batch Adam on the MSE.

    Its optimum spans the top-``k`` principal subspace (Baldi & Hornik 1989), so it approaches
    :func:`pca_reconstruction` as training proceeds.

    Parameters
    ----------
    x : array (n, ...)
    k : int
        Width of the bottleneck.
    steps, lr : int, float
        Full-batch Adam steps and learning rate.
    seed : int
        Seed of the initialization.

    Returns
    -------
    x_hat : array (n, features)
    mse_curve : list of (step, mse)
        The training MSE at ten evenly spaced steps and at the end.
    """
    a = torch.as_tensor(_flat(x), dtype=torch.float32)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    g = torch.Generator().manual_seed(seed)
    m = a.shape[1]
    enc, dec = torch.nn.Linear(m, k), torch.nn.Linear(k, m)
    for lin in (enc, dec):
        torch.nn.init.normal_(lin.weight, std=1 / math.sqrt(lin.in_features), generator=g)
        torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=lr)
    curve, every = [], max(1, steps // 10)
    for step in range(1, steps + 1):
        loss = (dec(enc(a)) - a).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            curve.append((step, float(loss.detach())))
    with torch.no_grad():
        return dec(enc(a)).double().numpy(), curve


def shrink_toward_mean(x, t) -> np.ndarray:
    r"""§3.1, case (a): :math:`\hat X_{ij}=\mu_j+t_{ij}(X_{ij}-\mu_j)` with :math:`t_{ij}\in[0,1]`, i.e. every
    reconstruction lies between the datum and the feature mean.

    Parameters
    ----------
    x : array (n, m)
    t : array broadcastable to (n, m), values in [0, 1]
    """
    a, t = _flat(x), np.asarray(t, dtype=np.float64)
    if np.any(t < 0) or np.any(t > 1):
        raise ValueError("t must lie in [0, 1] (the reconstruction between the datum and the mean)")
    mu = a.mean(0, keepdims=True)
    return mu + t * (a - mu)


def permutation_average(x, perms) -> np.ndarray:
    r"""§3.1, cases (b)-(c): :math:`\hat X=\frac{1}{k+1}\big(X+\sum_{r=1}^k X_{p_r}\big)`, the data averaged with
    ``k`` row permutations of itself (``k = 1``: the paper's :math:`(X+X_p)/2`).

    Parameters
    ----------
    x : array (n, m)
    perms : sequence of index arrays, each a permutation of ``range(n)``
    """
    a = _flat(x)
    for p in perms:
        if sorted(np.asarray(p).tolist()) != list(range(a.shape[0])):
            raise ValueError("every element of perms must be a permutation of range(n)")
    return (a + sum(a[np.asarray(p)] for p in perms)) / (len(perms) + 1)


def gaussian_smooth(signal, sigma: float) -> np.ndarray:
    r"""Circular Gaussian smoothing of a 1-D signal (the paper's Fig. 3), through the FFT.

    The transfer function :math:`h_f=e^{-2\pi^2\sigma^2 f^2/n^2}` lies in :math:`(0, 1]` and
    :math:`h_0=1`, so the mean is kept exactly (``scipy.ndimage.fourier_gaussian``).

    Parameters
    ----------
    signal : 1-D array
    sigma : float
        Width of the Gaussian, in samples (> 0).
    """
    s = np.asarray(signal, dtype=np.float64)
    if s.ndim != 1 or s.size < 2:
        raise ValueError(f"signal must be 1-D with at least 2 samples, got shape {s.shape}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return np.fft.ifft(ndimage.fourier_gaussian(np.fft.fft(s), sigma)).real


def encode_gaussian(model: VAE, data: ImageData | torch.Tensor, part: str = "z",
                    batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Posterior means and variances :math:`(\mu(X), \sigma^2(X))` of a Gaussian latent part, float64 on the CPU."""
    lat = model.latent[part]
    if not isinstance(lat, GaussianPart):
        raise TypeError(f"part {part!r} is not Gaussian")
    model.eval()
    x = data_tensor(data, model_device(model))
    with torch.no_grad():
        params = torch.cat([model.encode(x[s:s + batch_size])[part] for s in range(0, x.shape[0], batch_size)])
    mu, logvar = lat.split(params.double().cpu())
    return mu, logvar.exp()


def kl_rate_split(model: VAE, data: ImageData | torch.Tensor, *, part: str = "z", seed: int = 0,
                  repeats: int = 1) -> dict[str, float]:
    r"""The terms of eq. 1, :math:`\mathbb E_X\mathrm{KL}(Q(z|X)\|P(z))=-\mathbb E_X\mathcal H(Q(z|X))+\mathcal H(Q(z),P(z))`,
    each in closed form and by Monte Carlo over the aggregate posterior.

    The cross-entropy :math:`\mathcal H(Q(z),P(z))=-\mathbb E_{z\sim Q(z)}\log P(z)` with :math:`P=\mathcal N(0,I)`
    is :math:`\frac d2\log2\pi+\frac12\sum_j\mathbb E_X(\mu_j^2+\sigma_j^2)` in closed form; by Monte Carlo,
    :math:`z` is drawn from :math:`Q(z)` by drawing :math:`X` from the data and :math:`z\sim Q(z|X)`.

    Returns
    -------
    dict
        ``rate`` (closed-form average KL), ``entropy`` (:math:`\mathbb E_X\mathcal H(Q(z|X))`), ``cross_entropy``
        (closed form), ``residual`` (``rate + entropy - cross_entropy``, zero up to round-off),
        ``cross_entropy_mc`` / ``se_cross_entropy_mc`` and ``rate_mc`` / ``se_rate_mc``
        (:math:`\log Q(z|X)-\log P(z)` at the same draws), in nats.
    """
    mu, var = encode_gaussian(model, data, part)
    d = mu.shape[1]
    rate = 0.5 * (mu.pow(2) + var - var.log() - 1).sum(1)
    entropy = gaussian_entropy(var.log()).sum(1)
    cross = 0.5 * d * LOG_2PI + 0.5 * (mu.pow(2) + var).sum(1)
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn((repeats, *mu.shape), generator=g, dtype=torch.float64)
    z = mu + var.sqrt() * eps
    neg_log_p = 0.5 * d * LOG_2PI + 0.5 * z.pow(2).sum(-1)
    log_q = -0.5 * d * LOG_2PI - 0.5 * var.log().sum(-1) - 0.5 * eps.pow(2).sum(-1)
    kl_mc = (log_q + neg_log_p).flatten()
    neg_log_p = neg_log_p.flatten()
    n = neg_log_p.numel()
    return {"rate": float(rate.mean()), "entropy": float(entropy.mean()), "cross_entropy": float(cross.mean()),
            "residual": float(rate.mean() + entropy.mean() - cross.mean()),
            "cross_entropy_mc": float(neg_log_p.mean()), "se_cross_entropy_mc": float(neg_log_p.std() / math.sqrt(n)),
            "rate_mc": float(kl_mc.mean()), "se_rate_mc": float(kl_mc.std() / math.sqrt(n)), "dims": d}


def kl_at_fixed_ratio(ratio: float) -> dict[str, float]:
    r"""Eq. 2 along a ray :math:`\mu=r\sigma`: minimize :math:`\frac12(\mu^2+\sigma^2-\log\sigma^2-1)` over
    :math:`\sigma` numerically (``scipy.optimize.minimize_scalar`` on :math:`\log\sigma^2`).

    Analytically :math:`\frac{d}{d\sigma^2}\frac12\big((1+r^2)\sigma^2-\log\sigma^2-1\big)=0` gives
    :math:`\sigma^2=1/(1+r^2)`, hence :math:`\mu^2+\sigma^2=1`.

    Returns
    -------
    dict
        ``ratio``, ``sigma2`` and ``moment`` (:math:`\mu^2+\sigma^2`) at the numerical minimum, ``sigma2_exact``
        (:math:`1/(1+r^2)`) and ``kl_min``.
    """
    r2 = float(ratio) ** 2

    def kl(log_s2):
        s2 = math.exp(log_s2)
        return 0.5 * ((1 + r2) * s2 - log_s2 - 1)

    res = optimize.minimize_scalar(kl, bounds=_LOG_S2_BOUNDS, method="bounded", options={"xatol": 1e-12})
    s2 = math.exp(res.x)
    return {"ratio": float(ratio), "sigma2": s2, "moment": (1 + r2) * s2, "sigma2_exact": 1 / (1 + r2),
            "kl_min": float(res.fun)}


def variance_law(model: VAE, data: ImageData | torch.Tensor, part: str = "z") -> pd.DataFrame:
    r"""Eqs. 3-4 per latent dimension: :math:`\mathbb E_X\mu_j`, :math:`\mathbb E_X\mu_j^2`, :math:`\mathbb E_X\sigma_j^2`
    and their sum (the *variance law* expects 0 and 1), with each dimension's average KL and whether it is
    active (KL > :data:`ACTIVE_KL`).

    The sum is the second moment of the aggregate posterior :math:`Q(z)=\mathbb E_XQ(z|X)` in that dimension
    (law of total variance), so the law says :math:`Q(z)` has the prior's first two moments.
    """
    mu, var = encode_gaussian(model, data, part)
    kl = 0.5 * (mu.pow(2) + var - var.log() - 1).mean(0)
    df = pd.DataFrame({"dim": np.arange(mu.shape[1]), "mean_mu": mu.mean(0).numpy(),
                       "mean_mu2": mu.pow(2).mean(0).numpy(), "mean_sigma2": var.mean(0).numpy(), "kl": kl.numpy()})
    df["moment"] = df.mean_mu2 + df.mean_sigma2
    df["active"] = df.kl > ACTIVE_KL
    return df


@torch.no_grad()
def loss_stats(model: VAE, data: ImageData | torch.Tensor, *, n_generated: int | None = None, seed: int = 0
               ) -> dict[str, float]:
    r"""MSE and variance loss of a model's reconstructions (decoder mean at the posterior mean) and the
    variance loss of its samples (decoder means at prior draws), against ``data`` (Fig. 4 of the paper).

    Returns
    -------
    dict
        ``mse``, ``vl_rec``, ``vl_gen`` and ``var_data`` (the mean per-pixel variance of the data, the
        scale of both losses).
    """
    model.eval()
    device = model_device(model)
    x = data_tensor(data, device)
    rec = torch.cat([model.reconstruct(x[s:s + 1000]) for s in range(0, x.shape[0], 1000)])
    g = torch.Generator(device).manual_seed(seed)
    gen = model.generate(n_generated or x.shape[0], generator=g)
    return {"mse": mse(x, rec), "vl_rec": variance_loss(x, rec), "vl_gen": variance_loss(x, gen),
            "var_data": float(_flat(x).var(0).mean())}
