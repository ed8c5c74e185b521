"""Objectives. Every loss derives from :class:`BaseLoss` and is built by :func:`get_loss`.

A loss maps ``(model, x)`` to a scalar to *minimize* and a dict of detached per-batch
quantities that the trainer averages per epoch (reconstruction, KL, and the KL of every latent
dimension as one vector per part, ``kl/<part>``, expanded by the trainer into ``kl/<part>_<j>``). A loss with an auxiliary network (e.g. the thesis's Q network,
updated first in each step of its Algorithm 1) exposes it through :meth:`BaseLoss.auxiliary` and
:meth:`BaseLoss.auxiliary_loss`; the trainer then runs one optimizer step on it before the step
on the VAE.
"""
from __future__ import annotations

import abc
from typing import Callable

import torch
import torch.nn as nn

from .models import VAE, VAEOutput

__all__ = ["BaseLoss", "ELBOLoss", "LOSSES", "register_loss", "get_loss", "elbo_terms"]

LOSSES: dict[str, type["BaseLoss"]] = {}


def register_loss(name: str) -> Callable[[type["BaseLoss"]], type["BaseLoss"]]:
    """Class decorator that makes a loss available to :func:`get_loss` under ``name``."""

    def deco(cls: type[BaseLoss]) -> type[BaseLoss]:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} registered twice")
        cls.name = name
        LOSSES[name] = cls
        return cls

    return deco


def get_loss(name: str, **kwargs) -> "BaseLoss":
    """Instantiate the loss registered as ``name`` (e.g. ``get_loss("elbo", beta=4)``)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; registered: {sorted(LOSSES)}")
    return LOSSES[name](**kwargs)


def elbo_terms(model: VAE, x: torch.Tensor, out: VAEOutput | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor], VAEOutput]:
    """Per-example reconstruction :math:`-\\log p(x\\mid z)` and per-part, per-dim KL.

    Returns
    -------
    rec : tensor (batch,)
    kl : dict part -> tensor (batch, dims)
    out : the forward pass used
    """
    out = model(x) if out is None else out
    rec = -model.likelihood.log_prob(x, out.out)
    return rec, model.latent.kl(out.params), out


class BaseLoss(abc.ABC):
    """Base class of all objectives."""

    name = "base"

    @abc.abstractmethod
    def __call__(self, model: VAE, x: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return (loss to minimize, logs)."""

    def auxiliary(self) -> nn.Module | None:
        """A module trained by its own optimizer, stepped before the VAE each minibatch."""
        return None

    def auxiliary_loss(self, model: VAE, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def _logs(rec: torch.Tensor, kl: dict[str, torch.Tensor], loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """Detached batch means: ``loss``, ``rec``, ``kl``, ``elbo``, ``kl_<part>`` and the per-dimension
        vector ``kl/<part>`` (the trainer expands it into ``kl/<part>_<j>``)."""
        logs = {"loss": loss.detach(), "rec": rec.mean().detach()}
        total = 0.0
        for part, k in kl.items():
            kmean = k.detach().mean(0)
            logs[f"kl/{part}"] = kmean
            logs[f"kl_{part}"] = kmean.sum()
            total = total + logs[f"kl_{part}"]
        logs["kl"] = torch.as_tensor(total)
        logs["elbo"] = -(logs["rec"] + logs["kl"])
        return logs


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

    def __call__(self, model, x, step=0):
        rec, kl, _ = elbo_terms(model, x)
        kl_total = sum(k.sum(-1) for k in kl.values())
        if self.capacity is None:
            loss = (rec + self.beta * kl_total).mean()
        else:
            c = self.capacity * min(1.0, step / max(1, self.capacity_steps))
            loss = rec.mean() + self.gamma * (kl_total.mean() - c).abs()
        return loss, self._logs(rec, kl, loss)
