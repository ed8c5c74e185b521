"""MNIST-format (IDX) files, for MNIST and Fashion-MNIST: their layout and their checks.

torchvision reads these files; here they are checked first (:func:`_idx_files_present`): header
(magic number, dimensions) and exact size of each uncompressed file, the MD5 of each ``.gz`` that
is there, and a verified ``.gz`` without its uncompressed file is decompressed. A file that is there
but wrong raises :class:`~vaemi.data.DatasetFileError` naming it.
"""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from vaemi.data.files import DatasetFileError, _md5

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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with gzip.open(gz, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _md5_of_resources(name: str) -> dict[str, str]:
    import torchvision.datasets as tvd  # heavy (~1.5 s): imported only once files are checked, not with vaemi

    cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
    return dict(cls.resources)


def _idx_files_present(name: str, root: Path) -> bool:
    """Check the four IDX files of ``name``: False when one is missing, True when all are there and sound.

    torchvision needs all four files, whatever the split: header (magic number, dimensions) and
    exact size of each uncompressed file, and the MD5 of torchvision's ``resources`` for each
    ``.gz`` file that is there (a verified ``.gz`` without its uncompressed file is decompressed,
    so that the ``.gz`` files alone also work offline).

    Raises
    ------
    DatasetFileError
        A file is there but corrupt or truncated (the message names it).
    """
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
