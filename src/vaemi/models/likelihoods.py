r"""Likelihoods of the decoder's output: Bernoulli (binarized images) and Gaussian with a fixed, learned or
running-minimum variance :math:`\gamma` (the two-stage VAE's first stage)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vaemi.maths.distributions import gaussian_log_prob

__all__ = ["BernoulliLikelihood", "GaussianLikelihood"]


#: Floor of the running-minimum decoder variance (a batch reconstructed exactly must not give log 0).
_MIN_VARIANCE = 1e-6


# ----------------------------------------------------------------------------------- likelihoods
class BernoulliLikelihood(nn.Module):
    """:math:`p(x\\mid z)=\\prod_i \\mathrm{Bern}(x_i\\mid \\sigma(\\ell_i))`; the decoder outputs logits ``ℓ``.

    Targets may be grey levels in [0, 1] (the usual 'continuous Bernoulli-free' practice for MNIST).
    """

    name = "bernoulli"

    def log_prob(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Per-example log-likelihood, summed over pixels."""
        return -F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)

    def sample(self, out: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(torch.sigmoid(out))


class GaussianLikelihood(nn.Module):
    r""":math:`p(x\mid z)=\mathcal N(x\mid f(z), s^2 I)` (eq. 26 of the basics chapter).

    Parameters
    ----------
    variance : float
        :math:`s^2`; fixed unless ``learn_variance``.
    learn_variance : bool
        Learn one scalar :math:`\log s^2` (as in the two-stage VAE's :math:`\gamma`).
    mean_activation : {"sigmoid", "identity"}
        Squash :math:`f(z)` into [0, 1] for images, or leave it free.
    running_min : bool
        Asperti & Trentin's rule for :math:`\gamma=s^2`: at every training step (module in training mode,
        gradients on) set :math:`s^2 \leftarrow \min(s^2, \mathrm{MSE}_\text{batch})`, the per-element mean
        squared error of the batch (not a gradient step; ``variance`` is the starting value).
    """

    name = "gaussian"

    def __init__(self, variance: float = 1.0, learn_variance: bool = False, mean_activation: str = "sigmoid",
                 running_min: bool = False):
        super().__init__()
        if not variance > 0:
            raise ValueError(f"decoder variance s^2 must be > 0, got {variance}")
        if mean_activation not in ("sigmoid", "identity"):
            raise ValueError(f"mean_activation must be 'sigmoid' or 'identity', got {mean_activation!r}")
        if learn_variance and running_min:
            raise ValueError("choose one rule for the decoder variance: learn_variance (a trained parameter, "
                             "Dai & Wipf) or running_min (the running minimum of the batch MSE, Asperti & Trentin)")
        logvar = torch.tensor(math.log(variance))
        if learn_variance:
            self.logvar = nn.Parameter(logvar)
        else:
            self.register_buffer("logvar", logvar)
        self.mean_activation = mean_activation
        self.running_min = bool(running_min)

    @property
    def variance(self) -> torch.Tensor:
        return self.logvar.exp()

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out) if self.mean_activation == "sigmoid" else out

    def log_prob(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        mean = self.mean(out)
        if self.running_min and self.training and torch.is_grad_enabled():
            with torch.no_grad():
                self.logvar.copy_(torch.minimum(self.logvar, (x - mean).pow(2).mean().clamp_min(_MIN_VARIANCE).log()))
        return gaussian_log_prob(x, mean, self.variance).flatten(1).sum(1)

    def sample(self, out: torch.Tensor) -> torch.Tensor:
        m = self.mean(out)
        return m + self.variance.sqrt() * torch.randn_like(m)
