"""Omniglot read by alphabet: its folders or zips (also the small background splits), and its rotations.

:func:`~vaemi.data.load_omniglot` reads Omniglot by alphabet with :func:`_read_omniglot_alphabets`,
from the full splits of torchvision or from the small background splits ``images_background_small1/2``
of the Omniglot repository, as folders or as the zips themselves, and can augment it by rotations
(:func:`_check_rotations`). :func:`_omniglot_pixels` is the conversion of one image, shared with the
torchvision reader of ``load_dataset("omniglot")``.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from vaemi.data.container import ImageData, _from_uint8
from vaemi.data.files import DatasetFileError

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
#: Files whose presence tells that a local copy of Omniglot is there (for each split): torchvision
#: reads the folder but first checks the MD5 of the zip. CIFAR-10 and CelebA are checked by
#: :func:`_md5_checked_present` against torchvision's own lists.
_PRESENT = {
    "omniglot": {"train": ["omniglot-py/images_background.zip", "omniglot-py/images_background"],
                 "test": ["omniglot-py/images_evaluation.zip", "omniglot-py/images_evaluation"]},
}


def _omniglot_pixels(img, size: int = OMNIGLOT_SIDE) -> np.ndarray:
    """An Omniglot PIL image (105x105, strokes black on white) as ``size`` x ``size`` uint8, strokes 255."""
    img = img.convert("L").resize((size, size), Image.BILINEAR)
    return 255 - np.asarray(img, dtype=np.uint8)


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
