"""CelebA's aligned JPEGs, decoded lazily: only the chosen images, centre-cropped and resized.

``load_dataset("celeba", n=...)`` decodes only the ``n`` chosen JPEGs (all 162,770 training images
as float32 would take ~8 GB), each centre-cropped to :data:`CELEBA_CROP` and resized to
:data:`CELEBA_SIDE`. The layout and the annotation files' MD5s are torchvision's (checked by
:func:`~vaemi.data.files._md5_checked_present`), but only ``list_eval_partition.txt`` and the chosen
JPEGs are read, without torchvision's class.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from vaemi.data.files import _CELEBA_ALIGNED_WH, _CELEBA_FOLDER, _CELEBA_IMAGES, DatasetFileError

#: CelebA preprocessing: a centre crop of ``CELEBA_CROP`` x ``CELEBA_CROP`` pixels of the aligned
#: 178x218 face images, resized (PIL bilinear, antialiased) to ``CELEBA_SIDE`` x ``CELEBA_SIDE``: the
#: 64x64 CelebA of the two-stage VAE / Asperti-Trentin experiments this book reproduces.
CELEBA_CROP = 140
CELEBA_SIDE = 64
#: Our split -> torchvision's CelebA split (its "valid" split is not used), and the code of each
#: torchvision split in ``list_eval_partition.txt`` (torchvision's ``split_map``).
_CELEBA_SPLIT = {"train": "train", "test": "test"}
_CELEBA_PARTITION_CODE = {"train": 0, "valid": 1, "test": 2}
_CELEBA_PARTITION = "list_eval_partition.txt"
#: Threads decoding JPEGs (at most the number of CPUs).
_DECODE_THREADS = 8


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
