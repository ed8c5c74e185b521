"""CIFAR-10's python batches: their format, and which one cannot be read when torchvision fails.

torchvision reads the batches (after their MD5s are checked, :func:`~vaemi.data.files._md5_checked_present`);
when it fails anyway, :func:`_unreadable_cifar_batch` names the culprit instead of listing all files.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

#: CIFAR-10 python pickles: bytes per image (3 x 32 x 32) and the keys of a batch. The files are
#: Python 2 pickles: their keys load as ``b"data"`` with ``encoding="bytes"``, but as ``"data"`` with
#: the ``encoding="latin1"`` torchvision uses (and so do we).
_CIFAR_IMAGE_BYTES = 3 * 32 * 32
_CIFAR_KEYS = ("data", "labels")


def _unreadable_cifar_batch(root: Path, split: str) -> str | None:
    """The first CIFAR-10 pickle of ``split`` (or ``batches.meta``) that cannot be used, and why; None if all can.

    Only called once torchvision has failed (its MD5s matched, so the files are what torchvision
    knows, or its lists were patched): names the culprit instead of listing all files.
    """
    import torchvision.datasets as tvd  # heavy (~1.5 s): imported only once files are read, not with vaemi

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
