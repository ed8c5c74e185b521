"""vaemi: the shared code of "Mutual information in variational autoencoders — reproduced".

The science core, by role: :mod:`~vaemi.data` → :mod:`~vaemi.models` → :mod:`~vaemi.losses` (every
objective, registered by importing the package) → :mod:`~vaemi.training` → :mod:`~vaemi.metrics` and
:mod:`~vaemi.mi_estimators`; exact toys in :mod:`~vaemi.toy`. The submodules below are imported so that
``vaemi.<module>`` works after ``import vaemi``; no registration depends on it.
"""
from . import (data, distributions, losses, metrics, mi, mi_estimators, models, params, results, toy,  # noqa: F401
               training)
from .data import ImageData, load_dataset
from .losses import BaseLoss, get_loss
from .models import VAE, build_vae
from .training import History, seed_everything, train

__version__ = "0.1.0"
__all__ = ["ImageData", "load_dataset", "BaseLoss", "get_loss", "VAE", "build_vae", "History",
           "seed_everything", "train"]
