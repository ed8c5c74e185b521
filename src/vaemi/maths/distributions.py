"""Closed forms used throughout the book, each checked in ``tests/`` against
``torch.distributions`` and Monte Carlo.

Constants are written as formulas: the entropy of a standard normal in one dimension is
``0.5 * log(2*pi*e)``, not a decimal.
"""
from __future__ import annotations

import math

import torch

__all__ = [
    "LOG_2PI", "kl_normal_std_normal", "kl_normal_normal", "gaussian_entropy", "std_normal_entropy",
    "kl_categorical_uniform", "categorical_entropy", "gaussian_log_prob", "categorical_marginal_entropy",
    "log_mean_exp",
]

LOG_2PI = math.log(2 * math.pi)


def kl_normal_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""Per-dimension :math:`\mathrm{KL}(\mathcal N(\mu,\sigma^2)\,\|\,\mathcal N(0,1))`.

    .. math:: -\tfrac12\,(1 + \log\sigma^2 - \sigma^2 - \mu^2)

    Returns a tensor of the same shape as ``mu`` (sum over the last axis for a diagonal
    Gaussian).
    """
    return -0.5 * (1.0 + logvar - logvar.exp() - mu.pow(2))


def kl_normal_normal(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    r"""Per-dimension :math:`\mathrm{KL}(\mathcal N(\mu_q,\sigma_q^2)\,\|\,\mathcal N(\mu_p,\sigma_p^2))`."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0)


def gaussian_entropy(logvar: torch.Tensor) -> torch.Tensor:
    r"""Per-dimension entropy :math:`\tfrac12\log(2\pi e\sigma^2)` of a normal with log-variance ``logvar``."""
    return 0.5 * (LOG_2PI + 1.0 + logvar)


def std_normal_entropy(d: int) -> float:
    r"""Entropy of :math:`\mathcal N(0, I_d)`: :math:`\tfrac d2\log(2\pi e)` nats."""
    return 0.5 * d * math.log(2 * math.pi * math.e)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor | float) -> torch.Tensor:
    r"""Elementwise :math:`\log\mathcal N(x\mid m, v) = -\tfrac12\left(\log 2\pi v + (x-m)^2/v\right)`."""
    var = torch.as_tensor(var, dtype=mean.dtype, device=mean.device)
    return -0.5 * (LOG_2PI + var.log() + (x - mean).pow(2) / var)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of categorical distributions given unnormalized ``logits`` on the last axis."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def categorical_marginal_entropy(probs: torch.Tensor) -> torch.Tensor:
    r"""Entropy (nats) of the marginal :math:`q(c)=\frac1N\sum_n q(c\mid x_n)` of a categorical code.

    The one place where the book computes :math:`H(q(c))`: in the training objective (a minibatch
    estimate, differentiable), in the eq. 4.8 bound and in the eq. 4.23 decomposition.

    Parameters
    ----------
    probs : tensor (N, K)
        Rows :math:`q(c\mid x_n)`, each summing to one.

    Returns
    -------
    tensor
        Scalar :math:`-\sum_k q(c{=}k)\log q(c{=}k)`, with :math:`0\log 0=0` (the logarithm is taken of the
        probability clamped at the smallest normal number of its dtype, so gradients stay finite).
    """
    marg = probs.mean(0)
    return -(marg * marg.clamp_min(torch.finfo(marg.dtype).tiny).log()).sum(-1)


def log_mean_exp(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
    r""":math:`\log\frac1K\sum_k e^{t_k}` along ``dim`` (:math:`K` = ``t.shape[dim]``), computed stably.

    Parameters
    ----------
    t : tensor
        Log-values, e.g. importance log-weights ``(K, batch)``.
    dim : int
        The axis of the :math:`K` samples.

    Returns
    -------
    tensor
        ``t`` reduced over ``dim``.
    """
    return torch.logsumexp(t, dim) - math.log(t.shape[dim])


def kl_categorical_uniform(logits: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(q\,\|\,\mathcal U\{1..K\}) = \log K - H(q)` for each row of ``logits``."""
    return math.log(logits.shape[-1]) - categorical_entropy(logits)
