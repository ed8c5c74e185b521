r"""The Variational InfoMax objective (eq. 7 of the VIMAE paper) with the MMD of WAE as the divergence:

.. math:: \mathcal L = \mathbb E_{p(x)}\,\|x - g_\theta(f_\phi(x + \nu))\|_2^2
          + \lambda\,\mathrm{MMD}^2_k\big(q_\phi(z), p(z)\big),

with a deterministic encoder :math:`f_\phi` fed inputs with a small truncated Gaussian noise :math:`\nu` (the
paper's appendix: "pixel-wise Gaussian noise truncated at 0.01, to make the encoder random"), the MMD estimated
on the minibatch's codes against as many prior draws (:func:`vaemi.maths.mmd.mmd2`, WAE's inverse-multiquadratic
kernel summed over scales), and the prior of the model's latent part (Normal: VIMAE-n, Logistic: VIMAE-l).
"""
from __future__ import annotations

import torch

from vaemi.losses.base import BaseLoss, register_loss
from vaemi.maths.mmd import mmd2
from vaemi.models import VAE

__all__ = ["VIMAELoss", "truncated_noise"]


def truncated_noise(like: torch.Tensor, std: float) -> torch.Tensor:
    """Gaussian noise of standard deviation ``std`` redrawn outside ``±2 std`` (TensorFlow's
    ``truncated_normal``, which the WAE code uses), shaped like ``like``; zeros when ``std`` is 0."""
    if std == 0:
        return torch.zeros_like(like)
    return torch.nn.init.trunc_normal_(torch.empty_like(like), std=std, a=-2 * std, b=2 * std)


@register_loss("vimae")
class VIMAELoss(BaseLoss):
    r"""Reconstruction (sum of squared pixel errors per image, times ``rec_weight``) plus ``lam`` times the MMD²
    between the batch's codes and prior draws.

    Parameters
    ----------
    lam : float
        :math:`\lambda` (the paper: 10 on MNIST and Omniglot, 100 on CIFAR-10 and CelebA).
    input_noise : float
        Standard deviation of the truncated Gaussian noise added to the encoder's input while training.
    kernel : {"imq", "rbf"}
        MMD kernel (WAE's defaults).
    rec_weight : float
        Weight of the squared error (1: the paper's :math:`\|x-x_g\|_2^2`; WAE's code uses 0.05).
    """

    def __init__(self, lam: float = 10.0, input_noise: float = 0.01, kernel: str = "imq", rec_weight: float = 1.0):
        if lam < 0 or input_noise < 0 or rec_weight <= 0:
            raise ValueError(f"need lam >= 0, input_noise >= 0 and rec_weight > 0; got lam={lam}, "
                             f"input_noise={input_noise}, rec_weight={rec_weight}")
        if kernel not in ("imq", "rbf"):
            raise ValueError(f"kernel must be 'imq' or 'rbf', got {kernel!r}")
        self.lam, self.input_noise, self.kernel, self.rec_weight = lam, input_noise, kernel, rec_weight

    def __call__(self, model: VAE, x: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss on one minibatch; logs ``loss``, ``rec`` (squared error per image), ``mmd``."""
        z = model.latent.mode(model.encode(x + truncated_noise(x, self.input_noise)))
        x_hat = model.likelihood.mean(model.decode(z))
        sq = (x - x_hat).pow(2).flatten(1).sum(1)
        z_p = model.latent.sample_prior(z.shape[0], device=z.device)
        mmd = mmd2(z, z_p, kernel=self.kernel)
        loss = self.rec_weight * sq.mean() + self.lam * mmd
        return loss, {"loss": loss.detach(), "rec": sq.mean().detach(), "mmd": mmd.detach()}
