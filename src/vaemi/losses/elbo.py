"""The ELBO family: the negative ELBO, the β-VAE and the capacity-annealed β-VAE (:class:`ELBOLoss`)."""
from __future__ import annotations

import torch

from vaemi.losses.base import BaseLoss, elbo_terms, register_loss
from vaemi.models import VAE, VAEOutput

__all__ = ["ELBOLoss"]


@register_loss("elbo")
class ELBOLoss(BaseLoss):
    r"""Negative ELBO with optional β weight or capacity target.

    .. math::
        \mathcal L = \mathbb E_q[-\log p(x\mid z)] + \beta\,\mathrm{KL}(q(z\mid x)\,\|\,p(z))

    or, with ``capacity`` :math:`C` (Burgess et al. 2018), :math:`\mathbb E_q[-\log p(x\mid z)]
    + \gamma\,|\mathrm{KL} - C_t|` with :math:`C_t` growing linearly from 0 to ``capacity`` over
    ``capacity_steps`` steps.

    Parameters
    ----------
    beta : float
        Weight of the KL term (1 = the VAE; >1 = β-VAE).
    capacity : float, optional
        Target KL in nats.
    gamma : float
        Weight of the capacity penalty.
    capacity_steps : int
        Steps over which the target grows to ``capacity``.
    """

    def __init__(self, beta: float = 1.0, capacity: float | None = None, gamma: float = 100.0,
                 capacity_steps: int = 10_000):
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta, self.capacity, self.gamma, self.capacity_steps = beta, capacity, gamma, capacity_steps

    def loss_and_output(self, model: VAE, x: torch.Tensor, step: int = 0, out: VAEOutput | None = None
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor], VAEOutput]:
        """The loss, its logs and the forward pass it used, for objectives that add a term to the ELBO.

        Parameters
        ----------
        model : VAE
        x : tensor (batch, C, H, W)
        step : int
            Training step (for the capacity schedule).
        out : VAEOutput, optional
            A forward pass to reuse (default: a fresh one).

        Returns
        -------
        loss : tensor
            Scalar to minimize.
        logs : dict
            See :meth:`BaseLoss._logs`.
        out : VAEOutput
            The forward pass (posterior parameters, the reparameterized code, the decoder output).
        """
        rec, kl, out = elbo_terms(model, x, out)
        kl_total = sum(k.sum(-1) for k in kl.values())
        if self.capacity is None:
            loss = (rec + self.beta * kl_total).mean()
        else:
            c = self.capacity * min(1.0, step / max(1, self.capacity_steps))
            loss = rec.mean() + self.gamma * (kl_total.mean() - c).abs()
        return loss, self._logs(rec, kl, loss), out

    def __call__(self, model, x, step=0):
        """Negative ELBO (or its β / capacity variant) on one minibatch; see :meth:`BaseLoss.__call__`."""
        loss, logs, _ = self.loss_and_output(model, x, step)
        return loss, logs
