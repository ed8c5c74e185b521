r"""Maximum Mean Discrepancy between two samples (eq. 13 of the VIMAE paper), with the kernels of the
Wasserstein auto-encoder code (Tolstikhin et al., 2017, ``mmd_penalty`` in ``wae.py``).

For a positive definite kernel :math:`k` with RKHS :math:`\mathcal H_k`, the MMD of eq. 13,
:math:`\sup_{\|f\|_{\mathcal H_k}\le 1}\mathbb E_p f - \mathbb E_q f`, has the closed square

.. math:: \mathrm{MMD}^2(q, p) = \mathbb E\,k(x,x') + \mathbb E\,k(y,y') - 2\,\mathbb E\,k(x,y),
          \qquad x,x'\sim q,\; y,y'\sim p \text{ independent.}

:func:`mmd2` estimates it from samples :math:`x_{1..n}\sim q`, :math:`y_{1..m}\sim p`. The unbiased
estimator (a U-statistic, the one WAE trains with) leaves out the diagonal terms :math:`k(x_i,x_i)` and
:math:`k(y_j,y_j)`:

.. math:: \widehat{\mathrm{MMD}}{}^2_u = \frac{\sum_{i\ne i'}k(x_i,x_{i'})}{n(n-1)}
          + \frac{\sum_{j\ne j'}k(y_j,y_{j'})}{m(m-1)} - \frac{2}{nm}\sum_{i,j}k(x_i,y_j);

it can be negative. The biased (V-statistic) version keeps the diagonals and divides by
:math:`n^2, m^2`; it is :math:`\ge 0` and its mean exceeds the population value by
:math:`(\bar k_0 - \mathbb E k(x,x'))/n + (\bar k_0 - \mathbb E k(y,y'))/m`, :math:`\bar k_0=k(z,z)`.

Kernels (``r^2 = \|x-y\|^2``):

* ``"imq"`` — inverse multiquadratic, summed over scales as in WAE:
  :math:`k = \sum_s C_s/(C_s + r^2)`, :math:`C_s = 2\,d\,\sigma^2_p\,s`, :math:`s\in` :data:`WAE_IMQ_SCALES`,
  :math:`\sigma^2_p` the prior's variance per dimension (1 for both VIMAE priors).
* ``"rbf"`` — Gaussian, :math:`k = \exp(-r^2/(2h^2))`, with a fixed bandwidth :math:`h` or WAE's
  data-dependent :math:`h^2` (:func:`wae_median_bandwidth2`, the median heuristic).

:func:`gaussian_rbf_mmd2_closed_form` is the population value of the RBF MMD² between two Gaussians, the
ground truth the estimator is tested against; :func:`mmd_permutation_test` is a two-sample test.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = [
    "WAE_IMQ_SCALES", "KERNELS", "squared_distances", "wae_median_bandwidth2", "kernel_from_sq_distances",
    "mmd2", "gaussian_rbf_mmd2_closed_form", "mmd_permutation_test",
]

#: Multipliers of :math:`C_{\rm base} = 2 d\sigma_p^2` summed in WAE's IMQ kernel (``wae.py``, ``mmd_penalty``).
WAE_IMQ_SCALES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

#: The kernels :func:`mmd2` knows.
KERNELS: tuple[str, ...] = ("imq", "rbf")

#: Kernel values per block of rows of the pooled kernel matrix in :func:`mmd_permutation_test`: bounds its
#: memory, and keeps the few block-sized buffers (4 MiB each in float32) in a CPU's last-level cache.
_BLOCK_ELEMENTS = 2**20


# --------------------------------------------------------------------------------------------- checks
def _check_samples(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """``x``, ``y`` as floating tensors of one dtype; ValueError naming the problem otherwise."""
    out = []
    for name, t in (("x", x), ("y", y)):
        t = torch.as_tensor(t)
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D (samples, dimensions), got shape {tuple(t.shape)}")
        if t.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 rows (samples) for the unbiased MMD, got {t.shape[0]}")
        if t.shape[1] < 1:
            raise ValueError(f"{name} needs at least 1 column, got shape {tuple(t.shape)}")
        if not (t.is_floating_point()):
            t = t.to(torch.get_default_dtype())
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains non-finite values (nan or inf)")
        out.append(t)
    x, y = out
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of columns, got {x.shape[1]} and {y.shape[1]}")
    if x.device != y.device:
        raise ValueError(f"x and y must be on one device, got {x.device} and {y.device}")
    dtype = torch.promote_types(x.dtype, y.dtype)
    return x.to(dtype), y.to(dtype)


def _check_kernel(kernel: str, scales, sigma2, bandwidth) -> tuple[str, tuple[float, ...]]:
    name = str(kernel).lower()
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {list(KERNELS)}")
    scales = tuple(float(s) for s in scales)
    if name == "imq":
        if not scales or not all(math.isfinite(s) and s > 0 for s in scales):
            raise ValueError(f"IMQ scales must be a non-empty sequence of positive numbers, got {scales}")
        if not (math.isfinite(float(sigma2)) and float(sigma2) > 0):
            raise ValueError(f"sigma2 (the prior variance) must be positive and finite, got {sigma2}")
    elif isinstance(bandwidth, str):
        if bandwidth != "median":
            raise ValueError(f"RBF bandwidth must be a positive number, 'median' or None, got {bandwidth!r}")
    elif bandwidth is not None:
        h = float(bandwidth)
        if not (math.isfinite(h) and h > 0):
            raise ValueError(f"RBF bandwidth must be positive and finite, or 'median', got {bandwidth}")
    return name, scales


# -------------------------------------------------------------------------------------------- kernels
def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Matrix :math:`\|x_i - y_j\|^2`, shape ``(n, m)``, by ``matmul`` (the WAE expansion
    :math:`\|x\|^2+\|y\|^2-2x^\top y`), clamped at 0.

    Both samples are first shifted by their pooled mean (distances do not change) to limit cancellation in
    the expansion. Unlike ``torch.cdist(x, y) ** 2`` this has finite gradients at zero distance (the
    diagonal of ``squared_distances(x, x)``).
    """
    c = torch.cat([x, y]).mean(0, keepdim=True).detach()
    x, y = x - c, y - c
    norms = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1)
    d2 = torch.addmm(norms, x, y.T, beta=1.0, alpha=-2.0)
    return d2.clamp_min(0.0)


def _kth_largest(t: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th largest entry of ``t`` (1-based), like ``tf.nn.top_k(t, k).values[k - 1]``."""
    flat = t.reshape(-1)
    return flat.kthvalue(flat.numel() - k + 1).values


def wae_median_bandwidth2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""WAE's data-dependent :math:`h^2` of the RBF kernel (the "median heuristic" of ``wae.py``).

    With :math:`x` the encoder sample (``sample_qz``) and :math:`y` the prior sample (``sample_pz``):

    .. math:: h^2 = \operatorname{med}_{i,j}\|x_i-y_j\|^2 + \operatorname{med}_{i\ne i'}\|x_i-x_{i'}\|^2,

    each "median" being, as in WAE, the :math:`\mathrm{half}`-th largest of the flattened distance matrix
    with :math:`\mathrm{half} = (n^2-n)/2` (the upper median of the off-diagonal values for the
    :math:`x`–:math:`x` matrix, whose :math:`n` zero diagonal entries are at the bottom). For
    :math:`n \ne m` the cross term uses :math:`(nm - \min(n,m))/2`. Differentiable, as in WAE (the selected
    entries carry gradients).
    """
    x, y = _check_samples(x, y)
    n, m = x.shape[0], y.shape[0]
    cross = squared_distances(x, y)
    within = squared_distances(x, x)
    return _kth_largest(cross, max(1, (n * m - min(n, m)) // 2)) + _kth_largest(within, max(1, (n * n - n) // 2))


def _pooled_median_bandwidth2(z: torch.Tensor) -> torch.Tensor:
    r""":math:`h^2 = 2\operatorname{med}_{i\ne i'}\|z_i - z_{i'}\|^2` over the pooled sample — WAE's rule with
    both medians taken on the pooled sample, hence invariant to relabelling (for permutation tests)."""
    nz = z.shape[0]
    # a fixed subsample keeps the median cheap for large pools; it depends only on the pooled set's order,
    # which the caller fixes (cat(x, y)), not on the permutation
    sub = z if nz <= 2048 else z[torch.linspace(0, nz - 1, 2048, device=z.device).long()]
    d2 = squared_distances(sub, sub)
    k = sub.shape[0]
    return 2.0 * _kth_largest(d2, max(1, (k * k - k) // 2))


def kernel_from_sq_distances(d2: torch.Tensor, kernel: str, dim: int, scales: Sequence[float] = WAE_IMQ_SCALES,
                             sigma2: float = 1.0, bandwidth2: torch.Tensor | float | None = None) -> torch.Tensor:
    r"""Kernel values from squared distances ``d2``.

    Parameters
    ----------
    d2 : tensor
        Squared distances :math:`r^2`.
    kernel : {"imq", "rbf"}
        ``"imq"``: :math:`\sum_s C_s/(C_s+r^2)`, :math:`C_s = 2\,\mathrm{dim}\,\sigma^2 s`;
        ``"rbf"``: :math:`\exp(-r^2/(2h^2))`.
    dim : int
        Dimension :math:`d` of the samples (enters the IMQ constant).
    scales, sigma2 : IMQ only
        Scale multipliers and prior variance.
    bandwidth2 : float or tensor, RBF only
        :math:`h^2`.
    """
    inplace = not (torch.is_grad_enabled() and d2.requires_grad)   # no graph to keep: reuse buffers
    if kernel == "imq":
        cbase = 2.0 * dim * float(sigma2)
        out = torch.zeros_like(d2)
        tmp = torch.empty_like(d2) if inplace else None
        for s in scales:
            c = cbase * float(s)
            if inplace:
                torch.add(d2, c, out=tmp).reciprocal_()
                out.add_(tmp, alpha=c)
            else:
                out = out + c / (c + d2)
        return out
    if kernel == "rbf":
        if bandwidth2 is None:
            raise ValueError("the RBF kernel needs bandwidth2")
        if inplace and not torch.is_tensor(bandwidth2):
            return d2.mul(-0.5 / float(bandwidth2)).exp_()
        return torch.exp(-d2 / (2.0 * bandwidth2))
    raise ValueError(f"unknown kernel {kernel!r}; choose one of {list(KERNELS)}")


# ------------------------------------------------------------------------------------------------ MMD
def mmd2(x: torch.Tensor, y: torch.Tensor, kernel: str = "imq", scales: Sequence[float] = WAE_IMQ_SCALES,
         sigma2: float = 1.0, bandwidth: float | str | None = None, unbiased: bool = True) -> torch.Tensor:
    r"""Estimate :math:`\mathrm{MMD}^2` between the samples ``x`` (n, d) and ``y`` (m, d).

    Differentiable in ``x`` and ``y``, on whatever device they live (three kernel matrices, built with
    ``matmul``). With ``n == m``, ``kernel="imq"`` and ``unbiased=True`` this is WAE's ``mmd_penalty``
    exactly; the same holds for ``kernel="rbf"`` with the median bandwidth.

    Parameters
    ----------
    x, y : tensor (n, d), (m, d)
        Samples, at least 2 rows each, finite. In VIMAE/WAE ``x`` is the encoder's (aggregate posterior)
        sample and ``y`` the prior sample; the order matters only for the RBF median bandwidth.
    kernel : {"imq", "rbf"}
        See the module docstring.
    scales : sequence of float
        IMQ scale multipliers (default :data:`WAE_IMQ_SCALES`).
    sigma2 : float
        Prior variance per dimension :math:`\sigma_p^2` in the IMQ constant (1 for the VIMAE priors).
    bandwidth : float, "median" or None
        RBF length scale :math:`h`; ``None`` or ``"median"`` uses WAE's :func:`wae_median_bandwidth2`.
    unbiased : bool
        U-statistic (diagonals of the :math:`x`–:math:`x` and :math:`y`–:math:`y` matrices left out, the
        default) or V-statistic.

    Returns
    -------
    tensor
        Scalar estimate (can be negative when ``unbiased``).

    Raises
    ------
    ValueError
        Bad samples (not 2-D, different column counts, fewer than 2 rows, non-finite, different devices),
        unknown kernel, non-positive scales / sigma2 / bandwidth.
    """
    x, y = _check_samples(x, y)
    name, scales = _check_kernel(kernel, scales, sigma2, bandwidth)
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    h2 = None
    if name == "rbf":
        h2 = wae_median_bandwidth2(x, y) if bandwidth is None or isinstance(bandwidth, str) else float(bandwidth) ** 2

    def k(a, b):
        return kernel_from_sq_distances(squared_distances(a, b), name, d, scales, sigma2, h2)

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    if unbiased:
        sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    else:
        sxx, syy = kxx.mean(), kyy.mean()
    return sxx + syy - 2.0 * kxy.mean()


# ------------------------------------------------------------------------------------- closed form
def _as_mean_cov(mu, cov, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    mu = torch.as_tensor(mu, dtype=torch.float64).cpu().reshape(-1)
    cov = torch.as_tensor(cov, dtype=torch.float64).cpu()
    d = mu.shape[0]
    if cov.shape != (d, d):
        raise ValueError(f"cov{name} must be ({d}, {d}) to match mu{name}, got shape {tuple(cov.shape)}")
    if not (bool(torch.isfinite(mu).all()) and bool(torch.isfinite(cov).all())):
        raise ValueError(f"mu{name} and cov{name} must be finite")
    if not torch.allclose(cov, cov.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"cov{name} must be symmetric")
    if float(torch.linalg.eigvalsh(cov).min()) < -1e-12 * max(1.0, float(cov.abs().max())):
        raise ValueError(f"cov{name} must be positive semi-definite")
    return mu, cov


def _gaussian_rbf_expectation(delta: torch.Tensor, s: torch.Tensor, h2: float) -> torch.Tensor:
    r""":math:`\mathbb E\exp(-\|u\|^2/(2h^2))` for :math:`u\sim\mathcal N(\delta, S)`."""
    d = delta.shape[0]
    a = s + h2 * torch.eye(d, dtype=s.dtype)                  # S + h^2 I, positive definite
    _, logdet = torch.linalg.slogdet(a)
    quad = delta @ torch.linalg.solve(a, delta)
    # det(I + S/h^2)^(-1/2) = (h^2)^(d/2) det(S + h^2 I)^(-1/2)
    return torch.exp(0.5 * d * math.log(h2) - 0.5 * logdet - 0.5 * quad)


def gaussian_rbf_mmd2_closed_form(mu1, cov1, mu2, cov2, h: float) -> float:
    r"""Population :math:`\mathrm{MMD}^2` of the RBF kernel :math:`\exp(-\|x-y\|^2/(2h^2))` between
    :math:`P=\mathcal N(\mu_1,\Sigma_1)` and :math:`Q=\mathcal N(\mu_2,\Sigma_2)`.

    Derivation. For independent :math:`x\sim\mathcal N(\mu_a,\Sigma_a)`, :math:`x'\sim\mathcal N(\mu_b,\Sigma_b)`,
    :math:`u = x-x'\sim\mathcal N(\delta, S)` with :math:`\delta=\mu_a-\mu_b`, :math:`S=\Sigma_a+\Sigma_b`.
    Completing the square in the Gaussian integral of :math:`e^{-u^\top A u/2}`, :math:`A = I/h^2`,

    .. math:: J(\delta, S) = \mathbb E\,e^{-\|u\|^2/(2h^2)}
              = \det(I + S/h^2)^{-1/2}\exp\!\big(-\tfrac12\,\delta^\top (S + h^2 I)^{-1}\delta\big)

    (the exponent's matrix is :math:`A - A(A+S^{-1})^{-1}A = (S + A^{-1})^{-1}` by Woodbury; the formula
    holds for singular :math:`S` too). Hence

    .. math:: \mathrm{MMD}^2 = J(0, 2\Sigma_1) + J(0, 2\Sigma_2) - 2\,J(\mu_1-\mu_2, \Sigma_1+\Sigma_2).

    In one dimension with :math:`\Sigma=\sigma^2`: :math:`J = h/\sqrt{h^2+S}\;e^{-\delta^2/(2(h^2+S))}`.

    Parameters
    ----------
    mu1, mu2 : array-like (d,)
    cov1, cov2 : array-like (d, d)
        Symmetric positive semi-definite.
    h : float
        Kernel length scale, > 0.

    Returns
    -------
    float
        :math:`\mathrm{MMD}^2 \ge 0` (computed in float64).
    """
    mu1, cov1 = _as_mean_cov(mu1, cov1, "1")
    mu2, cov2 = _as_mean_cov(mu2, cov2, "2")
    if mu1.shape != mu2.shape:
        raise ValueError(f"the two Gaussians must have one dimension, got {mu1.shape[0]} and {mu2.shape[0]}")
    h = float(h)
    if not (math.isfinite(h) and h > 0):
        raise ValueError(f"bandwidth h must be positive and finite, got {h}")
    h2 = h * h
    zero = torch.zeros_like(mu1)
    val = (_gaussian_rbf_expectation(zero, 2 * cov1, h2) + _gaussian_rbf_expectation(zero, 2 * cov2, h2)
           - 2 * _gaussian_rbf_expectation(mu1 - mu2, cov1 + cov2, h2))
    return float(val)


# ------------------------------------------------------------------------------------ permutation test
@torch.no_grad()
def mmd_permutation_test(x: torch.Tensor, y: torch.Tensor, n_permutations: int = 200, seed: int = 0,
                         kernel: str = "imq", scales: Sequence[float] = WAE_IMQ_SCALES, sigma2: float = 1.0,
                         bandwidth: float | str | None = None, unbiased: bool = True) -> tuple[float, float]:
    r"""Two-sample permutation test of :math:`H_0: q = p` with the :func:`mmd2` statistic.

    The pooled sample :math:`z = (x, y)` is relabelled ``n_permutations`` times (uniformly random splits
    into ``n`` and ``m`` points, from ``torch.Generator().manual_seed(seed)``); the p-value is
    :math:`(1 + \#\{b: T_b \ge T_{\rm obs}\})/(1 + B)`, exact (valid at every level) under :math:`H_0`,
    never below :math:`1/(B+1)`.

    All statistics come from one pooled kernel matrix :math:`K` (built in row blocks, never stored whole):
    with the label indicators as columns of :math:`S`, :math:`KS` gives every within- and cross-sum at once.
    :math:`K` is shifted by a constant first — the MMD estimators are invariant to adding a constant to every
    kernel value — which keeps the float32 sums accurate.

    For ``kernel="rbf"`` with ``bandwidth`` ``None``/``"median"`` the bandwidth is WAE's rule computed on the
    *pooled* sample (:math:`h^2 = 2\,\mathrm{med}\|z_i-z_{i'}\|^2`), so that it is the same for every
    labelling (the test stays exact); the returned statistic is then not bit-equal to
    ``mmd2(x, y, kernel="rbf")``, which takes the medians on the observed split.

    Returns
    -------
    (float, float)
        Observed :math:`\widehat{\mathrm{MMD}}{}^2` and the p-value.
    """
    x, y = _check_samples(x, y)
    name, scales = _check_kernel(kernel, scales, sigma2, bandwidth)
    b = int(n_permutations)
    if b < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    z = torch.cat([x, y])
    nz = n + m
    h2 = None
    if name == "rbf":
        h2 = _pooled_median_bandwidth2(z) if bandwidth is None or isinstance(bandwidth, str) else float(bandwidth) ** 2

    g = torch.Generator().manual_seed(int(seed))
    perms = torch.stack([torch.arange(nz)] + [torch.randperm(nz, generator=g) for _ in range(b)])  # (b+1, nz)
    s = torch.zeros(nz, b + 1, dtype=z.dtype)
    s.scatter_(0, perms[:, :n].T.contiguous(), 1.0)          # column c: indicator of the "x" set of labelling c
    s = s.to(z.device)

    ks = torch.empty(nz, b + 1, dtype=z.dtype, device=z.device)
    rows = torch.empty(nz, dtype=z.dtype, device=z.device)
    diag = torch.empty(nz, dtype=z.dtype, device=z.device)
    shift = None
    block = max(1, _BLOCK_ELEMENTS // nz)
    for lo in range(0, nz, block):
        hi = min(lo + block, nz)
        kb = kernel_from_sq_distances(squared_distances(z[lo:hi], z), name, d, scales, sigma2, h2)
        if shift is None:
            shift = kb.mean()
        kb = kb - shift
        ks[lo:hi] = kb @ s
        rows[lo:hi] = kb.sum(1)
        diag[lo:hi] = kb.diagonal(offset=lo)
    total = rows.sum()
    sxx = (s * ks).sum(0)                 # sum over X x X
    sxa = rows @ s                        # sum over X x all
    sxy = sxa - sxx
    syy = total - 2.0 * sxa + sxx
    if unbiased:
        dx = diag @ s
        dy = diag.sum() - dx
        stat = (sxx - dx) / (n * (n - 1)) + (syy - dy) / (m * (m - 1)) - 2.0 * sxy / (n * m)
    else:
        stat = sxx / n**2 + syy / m**2 - 2.0 * sxy / (n * m)
    observed = stat[0]
    p = (1.0 + float((stat[1:] >= observed).sum())) / (1.0 + b)
    return float(observed), p
