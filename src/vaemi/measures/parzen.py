"""The Parzen-window estimate of the log-likelihood of held-out images under a model's samples (Breuleux et al.
2011, Goodfellow et al. 2014): the VIMAE paper's Table 1, "NLL for generated samples". Nats per image."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch

__all__ = ["parzen_log_likelihood", "parzen_select_sigma", "parzen_nll"]


# ------------------------------------------------------------------------------------------ Parzen
def _check_int(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)



def _flat64(a, name: str) -> torch.Tensor:
    t = a.detach() if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
    if t.ndim < 1 or t.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one item, got shape {tuple(t.shape)}")
    t = t.reshape(t.shape[0], -1).to("cpu", torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds non-finite values")
    return t


def _check_sigmas(sigmas, name: str = "sigmas") -> list[float]:
    try:
        out = [float(s) for s in (sigmas if np.ndim(sigmas) else [sigmas])]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be positive numbers, got {sigmas!r}") from None
    if not out or not all(0 < s < math.inf for s in out):
        raise ValueError(f"{name} must be {'a non-empty list of ' if name == 'sigmas' else ''}positive finite "
                         f"number{'s' if name == 'sigmas' else ''}, got {sigmas!r}")
    return out


def _parzen_grid(samples, x, sigmas: Sequence[float], batch_size: int) -> np.ndarray:
    """``(len(sigmas), len(x))`` Parzen log-likelihoods; the squared distances are computed once per batch."""
    s, xx = _flat64(samples, "samples"), _flat64(x, "x")
    if s.shape[1] != xx.shape[1]:
        raise ValueError(f"samples and x differ in dimension ({s.shape[1]} vs {xx.shape[1]} values per item)")
    sigmas = _check_sigmas(sigmas)
    batch_size = _check_int(batch_size, "batch_size")
    m, dim = s.shape
    s_sq = s.pow(2).sum(1)
    out = torch.empty(len(sigmas), xx.shape[0], dtype=torch.float64)
    for start in range(0, xx.shape[0], batch_size):
        xb = xx[start:start + batch_size]
        # ||x - s||^2 by the expansion, in float64: its cancellation error (~1e-16 * D) is negligible even for the
        # narrow kernels (sigma ~ 0.05) at which float32 would be off by a fraction of a nat
        d2 = (xb.pow(2).sum(1, keepdim=True) + s_sq - 2.0 * xb @ s.T).clamp_min_(0.0)
        for i, sg in enumerate(sigmas):
            out[i, start:start + xb.shape[0]] = (torch.logsumexp(d2 / (-2.0 * sg * sg), dim=1) - math.log(m)
                                                  - 0.5 * dim * math.log(2.0 * math.pi * sg * sg))
    return out.numpy()


def parzen_log_likelihood(samples, x, sigma: float, batch_size: int = 500) -> np.ndarray:
    r"""Parzen-window log-likelihood of each ``x`` under ``samples``: :math:`\log\frac1M\sum_m\mathcal N(x; s_m,
    \sigma^2 I)`.

    The estimate of Breuleux et al. (2011), used by Goodfellow et al. (2014) and the VIMAE paper (Table 1) to score
    generators without a likelihood. It is a density in pixel space: it rewards samples close to the test images in
    Euclidean distance and nothing else, and its value depends strongly on :math:`\sigma` (choose it on validation
    images, :func:`parzen_select_sigma`) and on the number of samples.

    Parameters
    ----------
    samples : tensor or array (M, ...)
        The model's samples (flattened per item).
    x : tensor or array (N, ...)
        Test images, the same number of values per item.
    sigma : float
        The kernel's std.
    batch_size : int
        Images of ``x`` per batch (memory ``batch_size * M`` float64).

    Returns
    -------
    ndarray (N,)
        Log-likelihoods in nats per image (float64, computed in float64 with :func:`torch.logsumexp`).
    """
    if np.ndim(sigma) != 0:
        raise ValueError(f"sigma must be one positive number, got {sigma!r}")
    return _parzen_grid(samples, x, _check_sigmas(sigma, "sigma"), batch_size)[0]


def parzen_select_sigma(samples, valid, sigmas: Sequence[float], batch_size: int = 500
                        ) -> tuple[float, pd.DataFrame]:
    """The kernel width of the grid ``sigmas`` with the highest mean Parzen log-likelihood of ``valid``.

    Parameters
    ----------
    samples : tensor or array (M, ...)
    valid : tensor or array (N, ...)
        Validation images (not the test images).
    sigmas : sequence of float
    batch_size : int

    Returns
    -------
    best_sigma : float
    table : DataFrame
        ``sigma``, ``mean_ll`` (mean log-likelihood of ``valid``, nats) and ``se`` (its standard error), one row per
        width.
    """
    sigmas = _check_sigmas(sigmas)
    ll = _parzen_grid(samples, valid, sigmas, batch_size)
    n = ll.shape[1]
    se = ll.std(axis=1, ddof=1) / math.sqrt(n) if n > 1 else np.full(len(sigmas), np.nan)
    table = pd.DataFrame(dict(sigma=sigmas, mean_ll=ll.mean(axis=1), se=se))
    return float(sigmas[int(np.argmax(table.mean_ll.to_numpy()))]), table


def parzen_nll(samples, valid, test, sigmas: Sequence[float], batch_size: int = 500) -> dict[str, float]:
    """Parzen-window negative log-likelihood of ``test``, the width chosen on ``valid`` (the paper's Table 1).

    Parameters
    ----------
    samples : tensor or array (M, ...)
        The model's samples.
    valid, test : tensor or array
        Validation images (to choose the width in ``sigmas``) and test images.
    sigmas : sequence of float
    batch_size : int

    Returns
    -------
    dict
        ``nll`` (mean over ``test``, nats per image), ``se`` (its standard error; NaN for one test image) and
        ``sigma`` (the chosen width).
    """
    sigma, _ = parzen_select_sigma(samples, valid, sigmas, batch_size)
    ll = parzen_log_likelihood(samples, test, sigma, batch_size)
    se = float(ll.std(ddof=1) / math.sqrt(len(ll))) if len(ll) > 1 else float("nan")
    return {"nll": float(-ll.mean()), "se": se, "sigma": sigma}
