"""Objectives. Every loss derives from :class:`BaseLoss` and is built by name with :func:`get_loss`.

Importing this package registers every objective (no other import is needed):

* ``"elbo"``: :class:`ELBOLoss`, the negative ELBO, β-VAE and capacity variants (:mod:`vaemi.losses.elbo`);
* ``"vmi"``: :class:`VariationalMILoss`, ELBO plus λ times a variational MI bound with an auxiliary network
  (the thesis), and ``"infovae"``: :class:`InfoVAELoss`, the recycled-encoder, prior-code case (Ducau &
  Trénous) (:mod:`vaemi.losses.mi`);
* ``"vimae"``: :class:`VIMAELoss`, reconstruction plus λ·MMD² of the aggregate posterior to the prior with a
  deterministic, noise-fed encoder (the VIMAE paper, WAE) (:mod:`vaemi.losses.vimae`);
* ``"rae"``: :class:`RAELoss`, the regularized deterministic autoencoder (Ghosh et al.), a baseline of the
  variance-loss paper's tables (:mod:`vaemi.losses.rae`).

The registry itself (:data:`LOSSES`, :func:`register_loss`, :func:`get_loss`), :class:`BaseLoss` and
:func:`elbo_terms` live in :mod:`vaemi.losses.base`.
"""
from vaemi.losses.base import LOSSES, BaseLoss, elbo_terms, get_loss, register_loss
from vaemi.losses.elbo import ELBOLoss
from vaemi.losses.mi import AuxiliaryQ, InfoVAELoss, MITarget, VariationalMILoss, generate_and_reencode, make_x_tilde
from vaemi.losses.rae import RAELoss
from vaemi.losses.vimae import VIMAELoss, truncated_noise

__all__ = ["BaseLoss", "ELBOLoss", "LOSSES", "register_loss", "get_loss", "elbo_terms", "VariationalMILoss",
           "InfoVAELoss", "MITarget", "AuxiliaryQ", "make_x_tilde", "generate_and_reencode", "VIMAELoss", "RAELoss",
           "truncated_noise"]
