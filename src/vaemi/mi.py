"""Compatibility module: the names that used to live here, re-exported from their new homes.

``vaemi.mi`` had four jobs; each now lives with the code of its role:

* training objectives -> :mod:`vaemi.losses.mi`: :class:`VariationalMILoss` (``"vmi"``),
  :class:`InfoVAELoss` (``"infovae"``), :class:`MITarget`, :class:`AuxiliaryQ`, :func:`make_x_tilde`,
  :func:`generate_and_reencode` (registered by importing :mod:`vaemi.losses`);
* bounds on the information of a trained model -> :mod:`vaemi.mi_estimators`: :func:`mi_lower_bound`,
  :func:`mi_upper_bound`, :func:`posterior_mi_lower_bound`;
* the exact discrete check of Lemma 1 -> :mod:`vaemi.toy`: :func:`lemma1_sides`;
* the IWAE-type reconstruction probability -> :mod:`vaemi.metrics`: :func:`reconstruction_probability`
  (sharing :func:`vaemi.metrics.importance_log_weights` with :func:`vaemi.metrics.iwae_log_likelihood`).

New code should import from those modules.
"""
from .losses.mi import AuxiliaryQ, InfoVAELoss, MITarget, VariationalMILoss, generate_and_reencode, make_x_tilde
from .metrics import reconstruction_probability
from .mi_estimators import mi_lower_bound, mi_upper_bound, posterior_mi_lower_bound
from .toy import lemma1_sides

__all__ = ["generate_and_reencode", "mi_lower_bound", "mi_upper_bound", "InfoVAELoss", "lemma1_sides",
           "make_x_tilde", "MITarget", "AuxiliaryQ", "VariationalMILoss", "posterior_mi_lower_bound",
           "reconstruction_probability"]
