"""vaemi: the shared code of "Mutual information in variational autoencoders — reproduced"."""
from . import data, distributions, losses, metrics, mi, models, params, results, training  # noqa: F401
from .data import ImageData, load_dataset
from .losses import BaseLoss, get_loss
from .models import VAE, build_vae
from .training import History, seed_everything, train

__version__ = "0.1.0"
__all__ = ["ImageData", "load_dataset", "BaseLoss", "get_loss", "VAE", "build_vae", "History",
           "seed_everything", "train"]
