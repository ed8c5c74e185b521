import pytest
import torch
import torch.nn as nn

from vaemi import build_vae, get_loss, train
from vaemi.losses import LOSSES, BaseLoss, ELBOLoss, register_loss
from vaemi.train.loop import NonFiniteLossError, History, load_checkpoint, save_checkpoint, seed_everything


def _model(seed=0):
    seed_everything(seed)
    return build_vae((1, 28, 28), 3, hidden=(32,))


def test_same_seed_same_result_different_seed_differs(tiny_images):
    runs = []
    for s in (0, 0, 1):
        m = _model(0)
        h = train(m, get_loss("elbo"), tiny_images, epochs=2, batch_size=16, seed=s, progress=False)
        runs.append((h["loss"], torch.cat([p.flatten() for p in m.parameters()])))
    assert (runs[0][0] == runs[1][0]).all() and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][1], runs[2][1])


def test_training_decreases_the_loss(tiny_images):
    h = train(_model(), get_loss("elbo"), tiny_images, epochs=8, batch_size=16, lr=3e-3, progress=False)
    assert isinstance(h, History) and len(h) == 8
    assert h["loss"][-1] < h["loss"][0]
    assert {"rec", "kl", "elbo", "kl_z", "kl/z_0", "kl/z_2", "seconds"} <= set(h.df.columns)
    # per-dimension KLs add up to the total
    assert h.df[[f"kl/z_{j}" for j in range(3)]].sum(axis=1).values == pytest.approx(h["kl"], rel=1e-5)


def test_eval_fn_values_join_history(tiny_images):
    h = train(_model(), get_loss("elbo"), tiny_images, epochs=2, batch_size=32, progress=False,
              eval_fn=lambda m, e: {"marker": 10.0 * e})
    assert list(h["marker"]) == [10.0, 20.0]


class _NaNLoss(BaseLoss):
    def __call__(self, model, x, step=0):
        loss, logs = ELBOLoss()(model, x, step)
        return loss * (float("nan") if step == 2 else 1.0), logs


def test_non_finite_loss_stops_with_clear_error(tiny_images):
    with pytest.raises(NonFiniteLossError, match="epoch 0, step 2"):
        train(_model(), _NaNLoss(), tiny_images, epochs=3, batch_size=16, progress=False)


def test_beta_and_capacity_variants(tiny_images):
    m = _model()
    x = tiny_images[:16]
    seed_everything(0)
    l1, logs = get_loss("elbo", beta=1.0)(m, x)
    seed_everything(0)
    l4, _ = get_loss("elbo", beta=4.0)(m, x)
    assert float((l4 - l1).detach()) == pytest.approx(3 * float(logs["kl"]), rel=1e-4)
    seed_everything(0)
    lc, logs_c = get_loss("elbo", capacity=5.0, gamma=10.0, capacity_steps=10)(m, x, step=10)
    assert float(lc.detach()) == pytest.approx(float(logs_c["rec"] + 10 * abs(logs_c["kl"] - 5.0)), rel=1e-4)


def test_loss_factory_errors():
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("nope")
    with pytest.raises(ValueError, match="registered twice"):
        register_loss("elbo")(ELBOLoss)
    with pytest.raises(ValueError, match="beta"):
        get_loss("elbo", beta=-1)
    assert "elbo" in LOSSES


class _AuxLoss(ELBOLoss):
    """A loss with an auxiliary network, to check the two-optimizer step order (thesis Algorithm 1)."""

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(784, 1)
        self.order = []

    def auxiliary(self):
        return self.q

    def auxiliary_loss(self, model, x, step=0):
        self.order.append("aux")
        return self.q(x.flatten(1)).pow(2).mean()

    def __call__(self, model, x, step=0):
        self.order.append("main")
        return super().__call__(model, x, step)


def test_auxiliary_network_is_stepped_first(tiny_images):
    loss = _AuxLoss()
    before = loss.q.weight.detach().clone()
    train(_model(), loss, tiny_images, epochs=1, batch_size=32, progress=False)
    assert loss.order == ["aux", "main", "aux", "main"]
    assert not torch.equal(before, loss.q.weight)


def test_checkpoint_atomic_roundtrip_and_resume(tmp_path, tiny_images):
    m = _model()
    ck = tmp_path / "ck" / "model.pt"
    h = train(m, get_loss("elbo"), tiny_images, epochs=2, batch_size=16, progress=False, checkpoint=ck)
    assert ck.exists() and not list(ck.parent.glob("*.tmp"))
    state = load_checkpoint(ck, _model(5))  # weights_only=True inside
    assert len(state["history"]) == 2
    m2 = _model(5)
    load_checkpoint(ck, m2)
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    h2 = train(m2, get_loss("elbo"), tiny_images, epochs=3, batch_size=16, progress=False, checkpoint=ck, resume=True)
    assert list(h2["epoch"]) == [1, 2, 3]
    # resuming reproduces the uninterrupted run exactly (batch order, noise, optimizer state)
    m3 = _model()
    h3 = train(m3, get_loss("elbo"), tiny_images, epochs=3, batch_size=16, progress=False)
    assert h2["loss"][2] == h3["loss"][2]
    for a, b in zip(m2.state_dict().values(), m3.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_rejects_pickled_objects(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"model": {}, "evil": object()}, path)
    with pytest.raises(Exception):
        load_checkpoint(path)
    save_checkpoint(tmp_path / "ok.pt", nn.Linear(2, 2), note="plain")
    assert load_checkpoint(tmp_path / "ok.pt")["note"] == "plain"


def test_train_rejects_bad_arguments(tiny_images):
    with pytest.raises(ValueError, match="batch_size"):
        train(_model(), get_loss("elbo"), tiny_images, epochs=1, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="empty"):
        train(_model(), get_loss("elbo"), tiny_images[:0], epochs=1, progress=False)
