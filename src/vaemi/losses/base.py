"""The loss registry and the base class of every objective.

A loss maps ``(model, x)`` to a scalar to *minimize* and a dict of detached per-batch quantities that the
trainer averages per epoch (reconstruction, KL, and the KL of every latent dimension as one vector per part,
``kl/<part>``, expanded by the trainer into ``kl/<part>_<j>``). A loss with an auxiliary network (e.g. the
thesis's Q network, updated first in each step of its Algorithm 1) exposes it through
:meth:`BaseLoss.auxiliary` and :meth:`BaseLoss.auxiliary_loss`; the trainer then runs one optimizer step on
it before the step on the VAE.

A class joins the registry with :func:`register_loss`; :func:`get_loss` builds one by name. The modules that
define objectives are imported by :mod:`vaemi.losses`, so importing that package registers all of them.
"""
from __future__ import annotations

import abc
import difflib
from typing import Callable

import torch
import torch.nn as nn

from vaemi.models import VAE, VAEOutput

__all__ = ["BaseLoss", "LOSSES", "register_loss", "get_loss", "elbo_terms"]

#: Registered objectives, name -> class (filled by :func:`register_loss`).
LOSSES: dict[str, type["BaseLoss"]] = {}


def register_loss(name: str) -> Callable[[type["BaseLoss"]], type["BaseLoss"]]:
    """Class decorator that makes a loss available to :func:`get_loss` under ``name``.

    Parameters
    ----------
    name : str
        The registry name (e.g. ``"elbo"``); it becomes the class attribute ``name``.

    Returns
    -------
    callable
        The decorator, which returns the class unchanged (but registered).

    Raises
    ------
    ValueError
        If ``name`` is already taken.
    """

    def deco(cls: type[BaseLoss]) -> type[BaseLoss]:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} registered twice")
        cls.name = name
        LOSSES[name] = cls
        return cls

    return deco


def get_loss(name: str, **kwargs) -> "BaseLoss":
    """Instantiate the loss registered as ``name`` (e.g. ``get_loss("elbo", beta=4)``).

    Parameters
    ----------
    name : str
        A key of :data:`LOSSES`.
    **kwargs
        Settings passed to the loss's constructor.

    Returns
    -------
    BaseLoss

    Raises
    ------
    ValueError
        For an unknown name; the message lists the registered names and suggests the closest one.
    """
    if name not in LOSSES:
        close = difflib.get_close_matches(str(name), list(LOSSES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown loss {name!r}.{hint} Registered losses: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](**kwargs)


def elbo_terms(model: VAE, x: torch.Tensor, out: VAEOutput | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor], VAEOutput]:
    r"""Per-example reconstruction :math:`-\log p(x\mid z)` and per-part, per-dim KL.

    Parameters
    ----------
    model : VAE
    x : tensor (batch, C, H, W)
    out : VAEOutput, optional
        A forward pass of ``model`` on ``x`` to reuse; default a fresh one (one reparameterized sample).

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
    """Base class of all objectives: ``loss(model, x, step) -> (scalar to minimize, logs)``."""

    name = "base"

    @abc.abstractmethod
    def __call__(self, model: VAE, x: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss on one minibatch.

        Parameters
        ----------
        model : VAE
        x : tensor (batch, C, H, W)
        step : int
            The training step (for schedules).

        Returns
        -------
        loss : tensor
            Scalar to minimize.
        logs : dict str -> tensor
            Detached per-batch quantities (see :meth:`_logs`).
        """

    def auxiliary(self) -> nn.Module | None:
        """A module trained by its own optimizer, stepped before the VAE each minibatch (default none).

        Returns
        -------
        nn.Module or None
        """
        return None

    def auxiliary_loss(self, model: VAE, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        """The auxiliary module's loss on one minibatch (only for losses with :meth:`auxiliary`).

        Parameters
        ----------
        model : VAE
        x : tensor (batch, C, H, W)
        step : int

        Returns
        -------
        tensor
            Scalar to minimize with respect to the auxiliary module.
        """
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
