"""The dataset files on disk: where they go, what they are checked against, and the errors they raise.

Shared by every reader: the names of the datasets, the table of the files each one needs
(:func:`expected_files`, for the messages), the data folder (:func:`default_root`), the environment
flags ``VAEMI_OFFLINE`` and ``VAEMI_ALLOW_FALLBACK``, the ``origin`` values of
:attr:`~vaemi.data.ImageData.provenance`, the MD5 checks against torchvision's own lists (CIFAR-10,
CelebA), and the two errors: :class:`DatasetNotFoundError` (files missing) and
:class:`DatasetFileError` (files there but unusable; never a fallback).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

DATASETS = ("mnist", "fashion_mnist", "cifar10", "omniglot", "celeba")

#: torchvision's folder of CelebA under the root, the folder of the aligned JPEGs in it, and their size.
_CELEBA_FOLDER, _CELEBA_IMAGES = "celeba", "img_align_celeba"
_CELEBA_ALIGNED_WH = (178, 218)

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
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _torchvision_md5s(name: str) -> dict[str, str]:
    """The files (relative to the root) whose MD5 torchvision's class checks before reading, and those MD5s.

    CIFAR-10: the five training batches, the test batch and ``batches.meta`` (for either split);
    CelebA: the five annotation files (not the images, and the zip may be deleted once extracted).
    Read from the classes themselves, so a test can give tiny files "known" checksums by patching them.
    """
    import torchvision.datasets as tvd  # heavy (~1.5 s): imported only once files are checked, not with vaemi

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
