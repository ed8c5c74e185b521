"""The regularized deterministic autoencoder of Ghosh et al. (2020), the baseline rows of Asperti's Tables 1-2:
``"rae"`` (:class:`RAELoss`)."""
from __future__ import annotations

import torch

from vaemi.losses.base import BaseLoss, register_loss
from vaemi.models import VAE

__all__ = ["RAELoss"]


@register_loss("rae")
class RAELoss(BaseLoss):
    r"""The regularized deterministic autoencoder of Ghosh et al. (RAE): per-image squared error plus
    :math:`\beta\cdot\frac12\|z\|^2` plus ``decoder_l2`` times the sum of the decoder's squared weights (RAE-L2;
    0 for RAE-SN, whose decoder is spectrally normalized instead)."""

    def __init__(self, beta: float = 1e-3, decoder_l2: float = 1e-6):
        self.beta, self.decoder_l2 = float(beta), float(decoder_l2)

    def __call__(self, model: VAE, x: torch.Tensor, step: int = 0):
        z = model.latent.mode(model.encode(x))
        sq = (x - model.likelihood.mean(model.decode(z))).pow(2).flatten(1).sum(1)
        code = 0.5 * z.pow(2).sum(1)
        loss = sq.mean() + self.beta * code.mean()
        if self.decoder_l2:
            loss = loss + self.decoder_l2 * sum(p.pow(2).sum() for k, p in model.decoder.named_parameters() if k.endswith("weight"))
        return loss, {"loss": loss.detach(), "rec": sq.mean().detach(), "code": code.mean().detach()}
