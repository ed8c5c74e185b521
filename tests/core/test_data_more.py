"""CIFAR-10, CelebA and Omniglot-by-alphabet loading, on tiny synthetic files in the real layouts.

torchvision checks the MD5 of the CIFAR-10 pickles and of the CelebA annotation files (and of the
Omniglot zips) before reading them, and so does :mod:`vaemi.data` (it reads the lists from the
torchvision classes). Tiny files cannot have the real checksums, so these tests patch the classes'
MD5 lists (``CIFAR10.train_list``/``test_list``/``meta``, ``CelebA.file_list``, ``Omniglot.zips_md5``)
with the tiny files' own MD5s, through ``monkeypatch`` (undone after each test).
"""
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from PIL import Image, ImageDraw

from vaemi import data
from vaemi.data import (CELEBA_SIDE, DatasetFileError, DatasetNotFoundError, ORIGIN_LOCAL, celeba, files,
                        load_dataset, load_omniglot, loading, planned_origin)

# ----------------------------------------------------------------------------------------------- CIFAR-10
CIFAR_PER_BATCH = 4
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_FILES = CIFAR_BATCHES + ["test_batch", "batches.meta"]


def _cifar_batch(seed: int) -> dict:
    """A tiny batch with the real keys. The real files are Python 2 pickles whose keys read as b"data",
    b"labels" with ``encoding="bytes"`` but as "data", "labels" with the ``encoding="latin1"`` torchvision
    uses; Python 3 cannot write Python 2 byte-string keys, so str keys stand in (what torchvision sees)."""
    rng = np.random.default_rng(seed)
    return {"batch_label": "tiny", "data": rng.integers(0, 256, (CIFAR_PER_BATCH, 3072), dtype=np.uint8),
            "labels": [(seed + i) % 10 for i in range(CIFAR_PER_BATCH)], "filenames": ["x.png"] * CIFAR_PER_BATCH}


def _patch_cifar_md5s(monkeypatch, folder):
    """Give the tiny files "known" checksums: torchvision's (and our) MD5 lists now name them."""
    md5 = {f: files._md5(folder / f) for f in CIFAR_FILES}
    monkeypatch.setattr(tvd.CIFAR10, "train_list", [[f, md5[f]] for f in CIFAR_BATCHES])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": md5["batches.meta"]})


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i, f in enumerate(CIFAR_BATCHES + ["test_batch"]):
        (folder / f).write_bytes(pickle.dumps(_cifar_batch(i)))
    meta = {"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": CIFAR_PER_BATCH}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    _patch_cifar_md5s(monkeypatch, folder)
    return tmp_path


def test_cifar10_tiny_files_load_channel_first(cifar_root):
    tr = load_dataset("cifar10", root=cifar_root, download=False)
    te = load_dataset("cifar10", "test", root=cifar_root, download=False)
    assert tr.x.shape == (5 * CIFAR_PER_BATCH, 3, 32, 32) and te.x.shape == (CIFAR_PER_BATCH, 3, 32, 32)
    assert tr.x.dtype == torch.float32 and 0 <= tr.x.min() and tr.x.max() <= 1
    first, test = _cifar_batch(0), _cifar_batch(5)
    # a CIFAR row is R (1024 bytes), then G, then B, each row-major 32x32
    expected = torch.as_tensor(first["data"][0].reshape(3, 32, 32), dtype=torch.float32) / 255
    assert torch.allclose(tr.x[0], expected)
    assert tr.y[:CIFAR_PER_BATCH].tolist() == first["labels"] and te.y.tolist() == test["labels"]
    assert tr.source == "torchvision CIFAR10, local copy"
    assert planned_origin("cifar10", root=cifar_root, download=False) == ORIGIN_LOCAL


def test_cifar10_missing_files_are_listed_with_their_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    monkeypatch.setenv("VAEMI_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("cifar10", "test")
    for f in CIFAR_FILES:
        assert str(tmp_path / "cifar-10-batches-py" / f) in str(e.value)
    assert "cifar-10-python.tar.gz" in str(e.value)
    with pytest.raises(DatasetNotFoundError, match="batches.meta"):
        planned_origin("cifar10")


def test_cifar10_one_missing_file_is_missing_not_corrupt(cifar_root, monkeypatch):
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    (cifar_root / "cifar-10-batches-py" / "batches.meta").unlink()
    with pytest.raises(DatasetNotFoundError, match="batches.meta"):
        load_dataset("cifar10", "test", root=cifar_root)


def test_cifar10_short_pickle_fails_its_checksum_naming_it(cifar_root):
    f = cifar_root / "cifar-10-batches-py" / "data_batch_3"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DatasetFileError, match=r"data_batch_3: corrupt \(MD5 [0-9a-f]{32}, torchvision expects"):
        load_dataset("cifar10", root=cifar_root, download=False)


@pytest.mark.parametrize("payload,why", [
    (lambda b: b[:100], "not a readable CIFAR-10 pickle"),
    (lambda b: pickle.dumps({"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4}), r"data of shape \(4, 100\)"),
    (lambda b: pickle.dumps({"pixels": 0}), "not a CIFAR-10 batch"),
])
def test_cifar10_bad_pickle_with_known_checksum_is_named(cifar_root, monkeypatch, payload, why):
    """Even when the MD5 matches (here: patched), an unusable pickle is named, not just 'the files'."""
    folder = cifar_root / "cifar-10-batches-py"
    (folder / "data_batch_3").write_bytes(payload((folder / "data_batch_3").read_bytes()))
    _patch_cifar_md5s(monkeypatch, folder)
    with pytest.raises(DatasetFileError, match=f"data_batch_3: {why}"):
        load_dataset("cifar10", root=cifar_root, download=False)


# ------------------------------------------------------------------------------------------------ CelebA
CELEBA_W, CELEBA_H = 178, 218  # the aligned CelebA images
CELEBA_PARTITION = [0, 0, 0, 0, 0, 1, 2, 2]  # 5 train, 1 valid, 2 test (torchvision's 0/1/2)
CELEBA_ANNOTATIONS = ["list_eval_partition.txt", "identity_CelebA.txt", "list_attr_celeba.txt",
                      "list_bbox_celeba.txt", "list_landmarks_align_celeba.txt"]


def _celeba_image(i: int) -> Image.Image:
    """Red outside the centre 140x140 crop, a shade of green (varying with ``i``) inside it."""
    img = Image.new("RGB", (CELEBA_W, CELEBA_H), (255, 0, 0))
    left, top = (CELEBA_W - data.CELEBA_CROP) // 2, (CELEBA_H - data.CELEBA_CROP) // 2
    ImageDraw.Draw(img).rectangle([left, top, left + data.CELEBA_CROP - 1, top + data.CELEBA_CROP - 1],
                                  fill=(0, 255 - 20 * i, 0))
    return img


@pytest.fixture
def celeba_root(tmp_path, monkeypatch):
    folder = tmp_path / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(len(CELEBA_PARTITION))]
    for i, name in enumerate(names):
        _celeba_image(i).save(folder / "img_align_celeba" / name, quality=95)
    n = len(names)
    text = {
        "list_eval_partition.txt": [f"{f} {p}" for f, p in zip(names, CELEBA_PARTITION)],
        "identity_CelebA.txt": [f"{f} {100 + i}" for i, f in enumerate(names)],
        "list_attr_celeba.txt": [str(n), "Smiling Young"] + [f"{f}  1 -1" for f in names],
        "list_bbox_celeba.txt": [str(n), "image_id x_1 y_1 width height"] + [f"{f} 95 71 226 313" for f in names],
        "list_landmarks_align_celeba.txt": [str(n), "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                                            "leftmouth_x leftmouth_y rightmouth_x rightmouth_y"]
                                           + [f"{f} 69 109 106 113 77 142 73 152 108 154" for f in names],
    }
    for f, lines in text.items():
        (folder / f).write_text("\n".join(lines) + "\n")
    _patch_celeba_md5s(monkeypatch, folder)
    return tmp_path


def _patch_celeba_md5s(monkeypatch, folder):
    """The tiny annotation files' own MD5s stand in for torchvision's (the zip is not needed once extracted)."""
    file_list = [(fid, files._md5(folder / f) if f in CELEBA_ANNOTATIONS else md5, f)
                 for fid, md5, f in tvd.CelebA.file_list]
    monkeypatch.setattr(tvd.CelebA, "file_list", file_list)


def test_celeba_loads_cropped_and_resized_with_zero_labels(celeba_root, capsys):
    tr = load_dataset("celeba", root=celeba_root, download=False)
    te = load_dataset("celeba", "test", root=celeba_root, download=False)
    assert tr.x.shape == (5, 3, CELEBA_SIDE, CELEBA_SIDE) and te.x.shape == (2, 3, CELEBA_SIDE, CELEBA_SIDE)
    assert tr.x.dtype == torch.float32 and 0 <= tr.x.min() and tr.x.max() <= 1
    assert tr.y.dtype == torch.long and tr.y.tolist() == [0] * 5 and te.y.tolist() == [0, 0]
    # only the green centre crop is left (red borders cut away; JPEG blurs the edge a little)
    assert tr.x[:, 0].mean() < 0.05 and tr.x[:, 2].mean() < 0.05
    assert tr.x[0, 1].mean() > 0.95
    assert te.x[0, 1].mean() == pytest.approx((255 - 20 * 6) / 255, abs=0.03)  # file 7 is the first test image
    assert tr.source == "CelebA img_align_celeba (torchvision layout), centre crop 140x140 resized to 64x64, local copy"
    assert "celeba train -> tensors" in capsys.readouterr().err  # the tqdm progress bar
    assert planned_origin("celeba", root=celeba_root, download=False) == ORIGIN_LOCAL


def test_celeba_decodes_only_the_chosen_subset_and_caches_it(celeba_root, monkeypatch):
    full = load_dataset("celeba", root=celeba_root, download=False)
    decoded = []
    real = celeba._celeba_image
    monkeypatch.setattr(celeba, "_celeba_image", lambda path: decoded.append(path.name) or real(path))
    sub = load_dataset("celeba", root=celeba_root, download=False, n=3, seed=1)
    assert len(sub) == 3 and len(decoded) == 3
    assert torch.equal(sub.x, full.subset(3, seed=1).x)  # the same items as subsetting the whole split
    again = load_dataset("celeba", root=celeba_root, download=False, n=3, seed=1)
    assert again is sub and len(decoded) == 3  # cache hit: the subset is part of the key
    other = load_dataset("celeba", root=celeba_root, download=False, n=3, seed=2)
    assert len(decoded) == 6 and not torch.equal(other.x, sub.x)
    assert len(load_dataset("celeba", root=celeba_root, download=False, n=100)) == 5
    with pytest.raises(ValueError, match=">= 1"):
        load_dataset("celeba", root=celeba_root, download=False, n=0)


def test_celeba_missing_files_are_listed_with_their_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    monkeypatch.setenv("VAEMI_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("celeba", n=10)
    msg = str(e.value)
    assert str(tmp_path / "celeba" / "img_align_celeba" / "000001.jpg") in msg
    for f in CELEBA_ANNOTATIONS:
        assert str(tmp_path / "celeba" / f) in msg
    with pytest.raises(DatasetNotFoundError, match="list_eval_partition.txt"):
        planned_origin("celeba")


def test_celeba_corrupt_files_are_named(celeba_root, monkeypatch):
    (celeba_root / "celeba" / "img_align_celeba" / "000007.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetFileError, match="000007.jpg: cannot be decoded"):
        load_dataset("celeba", "test", root=celeba_root, download=False)
    assert len(load_dataset("celeba", root=celeba_root, download=False)) == 5  # train does not hold it
    (celeba_root / "celeba" / "list_attr_celeba.txt").write_text("changed\n")
    loading._load_cached.cache_clear()
    with pytest.raises(DatasetFileError, match=r"list_attr_celeba.txt: corrupt \(MD5"):
        load_dataset("celeba", root=celeba_root, download=False)
    partition = celeba_root / "celeba" / "list_eval_partition.txt"
    partition.write_text(partition.read_text() + "000009.jpg seven\n")
    _patch_celeba_md5s(monkeypatch, celeba_root / "celeba")  # known checksums, bad content
    with pytest.raises(DatasetFileError, match="list_eval_partition.txt: line 9 is not"):
        load_dataset("celeba", root=celeba_root, download=False)


# ---------------------------------------------------------------------------------------------- Omniglot
OMNI_SIDE = 105  # the original Omniglot images
ALPHABETS = {"Alpha": ["character01", "character02"], "Beta": ["character01", "character02"]}
DRAWINGS = 3


def _omniglot_png(k: int) -> Image.Image:
    """A binary 105x105 image, white, with a black square whose place depends on ``k``."""
    img = Image.new("1", (OMNI_SIDE, OMNI_SIDE), 1)
    x0 = 10 + 20 * (k % 4)
    ImageDraw.Draw(img).rectangle([x0, 30, x0 + 15, 75], fill=0)
    return img


def _omniglot_folder(folder, alphabets=ALPHABETS):
    k = 0
    for a, chars in alphabets.items():
        for c in chars:
            (folder / a / c).mkdir(parents=True)
            for d in range(DRAWINGS):
                _omniglot_png(k).save(folder / a / c / f"{k:04d}_{d + 1:02d}.png")
            k += 1


def _zip_folder(folder, zip_path):
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(folder.parent).as_posix())


@pytest.fixture
def omniglot_root(tmp_path):
    _omniglot_folder(tmp_path / "omniglot-py" / "images_background_small1")
    return tmp_path


def test_omniglot_by_alphabet_shapes_labels_and_groups(omniglot_root):
    d = load_omniglot(root=omniglot_root, download=False)
    n = 4 * DRAWINGS
    assert d.x.shape == (n, 1, 28, 28) and d.x.dtype == torch.float32
    assert 0 <= d.x.min() and d.x.max() <= 1
    assert d.x[:, :, 0, 0].max() == 0 and d.x.amax(dim=(1, 2, 3)).min() > 0.9  # background 0, strokes 1
    assert d.y.tolist() == [c for c in range(4) for _ in range(DRAWINGS)] and d.n_classes == 4
    assert d.groups.tolist() == [0] * 6 + [1] * 6 and d.group_names == ("Alpha", "Beta")
    assert d.class_names == ("Alpha/character01", "Alpha/character02", "Beta/character01", "Beta/character02")
    assert d.split == "background" and d.source == "Omniglot background (images_background_small1), local copy"
    s = d.subset(4, seed=0)  # subset keeps each image's alphabet
    assert s.groups.tolist() == [c // 2 for c in s.y.tolist()]
    assert load_omniglot(root=omniglot_root, download=False, size=14).x.shape == (n, 1, 14, 14)


def test_omniglot_rotations_multiply_the_classes(omniglot_root):
    base = load_omniglot(root=omniglot_root, download=False)
    d = load_omniglot(root=omniglot_root, download=False, rotations=(0, 90, 180, 270))
    assert len(d) == 4 * len(base) and d.n_classes == 4 * base.n_classes == 16
    assert torch.equal(d.x[:len(base)], base.x)
    assert torch.equal(d.x[len(base):2 * len(base)], torch.rot90(base.x, 1, dims=(2, 3)))
    assert d.y[len(base):2 * len(base)].tolist() == (base.y + 4).tolist()
    assert d.groups.tolist() == base.groups.tolist() * 4
    assert d.class_names[4] == "Alpha/character01 rot90" and "rotations 0/90/180/270" in d.source
    assert load_omniglot(root=omniglot_root, download=False, rotations=(-90, 90)).n_classes == 8
    with pytest.raises(ValueError, match="multiples of 90"):
        load_omniglot(root=omniglot_root, download=False, rotations=(0, 45))
    with pytest.raises(ValueError, match="same angle"):
        load_omniglot(root=omniglot_root, download=False, rotations=(0, 360))


def test_omniglot_alphabet_selection_and_unknown_alphabet(omniglot_root):
    d = load_omniglot(root=omniglot_root, download=False, alphabets=["Beta"])
    assert len(d) == 2 * DRAWINGS and d.y.tolist() == [0] * 3 + [1] * 3
    assert d.groups.tolist() == [0] * 6 and d.group_names == ("Beta",)
    assert d.class_names == ("Beta/character01", "Beta/character02") and "alphabets Beta" in d.source
    full = load_omniglot(root=omniglot_root, download=False)
    assert torch.equal(d.x, full.x[full.groups == 1])
    with pytest.raises(ValueError, match=r"unknown Omniglot alphabet.*'Gamma'.*available: \['Alpha', 'Beta'\]"):
        load_omniglot(root=omniglot_root, download=False, alphabets=["Beta", "Gamma"])
    with pytest.raises(ValueError, match="split"):
        load_omniglot("train", root=omniglot_root)


def test_omniglot_small_splits_zipped_and_overlapping(tmp_path):
    """small1 as a folder and small2 as a zip (as in ../shared/data), sharing the alphabet Beta."""
    base = tmp_path / "omniglot-py"
    _omniglot_folder(base / "images_background_small1")
    small2 = tmp_path / "src" / "images_background_small2"
    shutil.copytree(base / "images_background_small1" / "Beta", small2 / "Beta")  # the same files in both
    _omniglot_folder(small2, {"Gamma": ["character01"]})
    _zip_folder(small2, base / "images_background_small2.zip")
    d = load_omniglot(root=tmp_path, download=False)
    assert d.group_names == ("Alpha", "Beta", "Gamma") and d.n_classes == 5
    assert len(d) == 5 * DRAWINGS  # Beta's files are in both: each used once
    assert d.source == ("Omniglot background (images_background_small1, images_background_small2.zip), "
                        "local copy")
    (base / "images_background").mkdir()  # the full split, when there, is preferred
    _omniglot_folder(base / "images_background", {"Delta": ["character01"]})
    loading._load_cached.cache_clear()
    full = load_omniglot(root=tmp_path, download=False)
    assert full.group_names == ("Delta",) and full.source == "Omniglot background (images_background), local copy"


def test_omniglot_missing_files_name_the_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    monkeypatch.setenv("VAEMI_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as e:
        load_omniglot()
    for stem in ("images_background", "images_background_small1", "images_background_small2"):
        assert str(tmp_path / "omniglot-py" / stem) in str(e.value)
    with pytest.raises(DatasetNotFoundError, match="images_evaluation"):
        load_omniglot("evaluation")


def test_omniglot_evaluation_zip_and_corrupt_png(tmp_path):
    _omniglot_folder(tmp_path / "src" / "images_evaluation")
    (tmp_path / "omniglot-py").mkdir()
    _zip_folder(tmp_path / "src" / "images_evaluation", tmp_path / "omniglot-py" / "images_evaluation.zip")
    d = load_omniglot("evaluation", root=tmp_path, download=False)
    assert d.split == "evaluation" and len(d) == 4 * DRAWINGS and "images_evaluation.zip" in d.source
    _omniglot_folder(tmp_path / "omniglot-py" / "images_background_small1")
    bad = next((tmp_path / "omniglot-py" / "images_background_small1" / "Beta").rglob("*.png"))
    bad.write_bytes(b"not a png")
    with pytest.raises(DatasetFileError, match=f"{bad.name}: cannot be decoded"):
        load_omniglot(root=tmp_path, download=False)


def test_load_dataset_omniglot_still_reads_the_full_split_with_torchvision(tmp_path, monkeypatch):
    base = tmp_path / "omniglot-py"
    _omniglot_folder(base / "images_background")
    _zip_folder(base / "images_background", base / "images_background.zip")
    monkeypatch.setattr(tvd.Omniglot, "zips_md5", {**tvd.Omniglot.zips_md5,
                                                   "images_background": files._md5(base / "images_background.zip")})
    d = load_dataset("omniglot", root=tmp_path, download=False)
    assert d.x.shape == (4 * DRAWINGS, 1, 28, 28) and d.n_classes == 4 and d.groups is None
    assert d.source == "torchvision Omniglot, local copy"
    mine = load_omniglot(root=tmp_path, download=False)  # same images, same conversion
    assert d.x.sum().item() == pytest.approx(mine.x.sum().item())
