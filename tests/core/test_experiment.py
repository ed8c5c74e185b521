"""Variant trainer and model cache (issue 9, items 2 and 3)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import vaemi
from vaemi.train import cache
from vaemi.train.variants import fit, train_variants

TRAIN = dict(epochs=2, batch_size=16, lr=1e-3, seed=3)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMI_CACHE", str(tmp_path / "models"))
    return tmp_path / "models"


@pytest.fixture
def init(tiny_images):
    vaemi.seed_everything(0)
    return vaemi.build_vae(tiny_images.shape[1:], 3, hidden=[32])


def _weights(m):
    return torch.cat([p.detach().flatten().cpu() for p in m.state_dict().values()])


def test_variants_share_the_initialization_and_the_batches(init, tiny_images, cache_dir):
    before = copy.deepcopy(init.state_dict())
    runs = train_variants(init, {"a": vaemi.get_loss("elbo"), "b": vaemi.get_loss("elbo"),
                                 "beta": vaemi.get_loss("elbo", beta=4.0)}, tiny_images, **TRAIN)
    assert list(runs) == ["a", "b", "beta"]
    assert all(torch.equal(before[k], v) for k, v in init.state_dict().items()), "init must not be trained"
    # same initialization + same batches + same loss => the same weights; another loss => other weights
    assert torch.equal(_weights(runs["a"].model), _weights(runs["b"].model))
    assert runs["a"].history.records[0]["loss"] == runs["b"].history.records[0]["loss"]
    assert not torch.equal(_weights(runs["a"].model), _weights(runs["beta"].model))
    assert runs["a"].model is not runs["b"].model and runs["a"].loss is not runs["b"].loss
    # the first-step loss of every variant is computed on the same initial weights and batch
    assert runs["a"].history.records[0]["rec"] == pytest.approx(runs["beta"].history.records[0]["rec"], rel=0.05)


def test_variant_can_change_the_model(init, tiny_images, cache_dir):
    def wider_prior(m):
        m.tag = "changed"
        return m, vaemi.get_loss("elbo")

    runs = train_variants(init, {"plain": vaemi.get_loss("elbo"), "tweak": wider_prior}, tiny_images, **TRAIN)
    assert getattr(runs["tweak"].model, "tag", None) == "changed" and not hasattr(init, "tag")


def test_key_changes_with_every_input_and_only_then(init, tiny_images):
    loss = vaemi.get_loss("elbo")
    base = cache.training_key(init, loss, tiny_images, **TRAIN)
    assert cache.training_key(copy.deepcopy(init), vaemi.get_loss("elbo"), tiny_images.clone(), **TRAIN) == base
    other_init = copy.deepcopy(init)
    with torch.no_grad():
        next(other_init.parameters())[0, 0] += 1e-3
    vaemi.seed_everything(0)
    wider = vaemi.build_vae(tiny_images.shape[1:], 3, hidden=[33])
    changed = {
        "init weights": cache.training_key(other_init, loss, tiny_images, **TRAIN),
        "architecture": cache.training_key(wider, loss, tiny_images, **TRAIN),
        "loss setting": cache.training_key(init, vaemi.get_loss("elbo", beta=2.0), tiny_images, **TRAIN),
        "data": cache.training_key(init, loss, tiny_images[:-1], **TRAIN),
        "data values": cache.training_key(init, loss, 1 - tiny_images, **TRAIN),
        **{k: cache.training_key(init, loss, tiny_images, **{**TRAIN, k: v})
           for k, v in dict(epochs=3, batch_size=8, lr=2e-3, seed=4).items()},
    }
    for what, key in changed.items():
        assert key != base, f"the key must change with the {what}"


def test_key_covers_torch_version_and_sources(init, tiny_images, monkeypatch):
    loss = vaemi.get_loss("elbo")
    base = cache.training_key(init, loss, tiny_images, **TRAIN)
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert cache.training_key(init, loss, tiny_images, **TRAIN) != base
    monkeypatch.undo()
    monkeypatch.setattr(cache, "_sources_digest", lambda: "edited")
    assert cache.training_key(init, loss, tiny_images, **TRAIN) != base


def test_loaded_model_gives_the_same_numbers(init, tiny_images, cache_dir):
    first = fit(copy.deepcopy(init), vaemi.get_loss("elbo"), tiny_images, **TRAIN)
    after_training = (torch.randn(4), np.random.rand(), __import__("random").random())
    second = fit(copy.deepcopy(init), vaemi.get_loss("elbo"), tiny_images, **TRAIN)
    after_loading = (torch.randn(4), np.random.rand(), __import__("random").random())
    assert (first.status, second.status) == ("trained", "loaded")
    assert torch.equal(_weights(first.model), _weights(second.model))
    assert first.history.records == second.history.records
    assert torch.equal(after_training[0], after_loading[0]) and after_training[1:] == after_loading[1:]
    assert not second.model.training


@pytest.mark.parametrize("damage", ["truncate", "garble", "other key"])
def test_corrupt_entry_is_detected_and_retrained(init, tiny_images, cache_dir, damage):
    first = fit(copy.deepcopy(init), vaemi.get_loss("elbo"), tiny_images, **TRAIN)
    path = cache.entry_path(cache_dir, first.key)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garble":
        path.write_bytes(data[:100] + bytes(len(data) - 100))
    else:  # a well-formed entry stored under the wrong name
        other = fit(copy.deepcopy(init), vaemi.get_loss("elbo"), tiny_images, **{**TRAIN, "seed": 9})
        path.write_bytes(cache.entry_path(cache_dir, other.key).read_bytes())
        path.with_suffix(".sha256").write_text(cache.entry_path(cache_dir, other.key).with_suffix(".sha256").read_text())
    with pytest.warns(UserWarning, match="unusable"):
        again = fit(copy.deepcopy(init), vaemi.get_loss("elbo"), tiny_images, **TRAIN)
    assert again.status == "trained"
    assert torch.equal(_weights(first.model), _weights(again.model))
    assert fit(copy.deepcopy(init), vaemi.get_loss("elbo"), tiny_images, **TRAIN).status == "loaded"


class _Interrupt(Exception):
    pass


def test_interrupted_training_resumes_at_the_last_finished_epoch(init, tiny_images, cache_dir, tmp_path,
                                                                monkeypatch):
    settings = {**TRAIN, "epochs": 3}

    def stop_in_epoch_2(model, epoch):
        if epoch == 2:
            raise _Interrupt
        return {}

    with pytest.raises(_Interrupt):
        fit(copy.deepcopy(init), vaemi.get_loss("elbo"), tiny_images, eval_fn=stop_in_epoch_2, **settings)
    key = cache.training_key(init, vaemi.get_loss("elbo"), tiny_images, **settings, aux_lr=None, device="cpu")
    assert cache.partial_path(cache_dir, key).exists() and not cache.entry_path(cache_dir, key).exists()
    resumed = fit(copy.deepcopy(init), vaemi.get_loss("elbo"), tiny_images, **settings)
    assert resumed.status == "resumed" and len(resumed.history) == 3
    assert not cache.partial_path(cache_dir, key).exists()
    monkeypatch.setenv("VAEMI_CACHE", str(tmp_path / "fresh"))
    straight = fit(copy.deepcopy(init), vaemi.get_loss("elbo"), tiny_images, **settings)
    assert straight.status == "trained"
    assert torch.equal(_weights(resumed.model), _weights(straight.model)), "resume must be exact"


def test_cache_off_and_provenance_in_results(init, tiny_images, monkeypatch):
    from vaemi.book.results import Results

    monkeypatch.setenv("VAEMI_CACHE", "off")
    assert cache.cache_root() is None
    R = Results("t", "t", {})
    runs = train_variants(init, {"a": vaemi.get_loss("elbo")}, tiny_images, results=R, desc="exp", **TRAIN)
    assert runs["a"].status == "trained" and runs["a"].key is None
    assert R.meta["models"] == {"exp a": "trained"}


def test_gaussian_decoder_with_a_fixed_variance_is_cached(tiny_images, cache_dir):
    """The fixed log-variance of a Gaussian decoder is a 0-d buffer: it must enter the key (one value per
    variance) and not break it."""
    def with_variance(s2):
        def make(m):
            m.load_state_dict({**m.state_dict(), "likelihood.logvar": torch.tensor(np.log(s2))})
            return m, vaemi.get_loss("elbo")
        return make

    vaemi.seed_everything(0)
    init = vaemi.build_vae(tiny_images.shape[1:], 3, hidden=[32], likelihood="gaussian")
    runs = train_variants(init, {0.05: with_variance(0.05), 2.0: with_variance(2.0)}, tiny_images, **TRAIN)
    assert runs[0.05].key != runs[2.0].key and {r.status for r in runs.values()} == {"trained"}
    again = train_variants(init, {0.05: with_variance(0.05), 2.0: with_variance(2.0)}, tiny_images, **TRAIN)
    assert {r.status for r in again.values()} == {"loaded"}
    assert torch.equal(_weights(again[2.0].model), _weights(runs[2.0].model))
