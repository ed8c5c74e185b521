"""vaemi: the shared code of "Mutual information in variational autoencoders — reproduced".

The package is layered; each wing imports only the wings below it:

* the science core, bottom up: :mod:`vaemi.maths` (closed forms and estimators on tensors: Gaussian and
  categorical formulas, the VIMAE priors, MMD, gradient estimators) and :mod:`vaemi.data` (datasets in memory)
  → :mod:`vaemi.models` (latent spaces, likelihoods, networks, the VAE) → :mod:`vaemi.losses` (every objective,
  registered by importing the package) → :mod:`vaemi.train` (the one training loop, variants, the model cache)
  → :mod:`vaemi.measures` (what is measured on trained models: ELBO and likelihoods, MI bounds, exact
  information identities, entropies, FID, representation quality, the variance loss, exact toy models);
* above it: :mod:`vaemi.book` (parameters, results and claims, published records, the scorecard, the
  build), :mod:`vaemi.chapters` (one module per chapter: its parameter schema, helpers, figures and paper
  tables) and :mod:`vaemi.sweep` (a chapter over a grid of parameters and seeds, on Dask).

``import vaemi`` loads the core only.
"""
import warnings

with warnings.catch_warnings():  # in a kernel without ipywidgets, tqdm.auto warns once, then uses its text bar
    warnings.simplefilter("ignore")
    import tqdm.auto  # noqa: F401  (imported once here, quietly; the modules below import it again)

from vaemi.data import ImageData, load_dataset
from vaemi.losses import BaseLoss, get_loss
from vaemi.models import VAE, build_vae
from vaemi.train import History, seed_everything, train

__version__ = "0.1.0"
__all__ = ["ImageData", "load_dataset", "BaseLoss", "get_loss", "VAE", "build_vae", "History",
           "seed_everything", "train"]
