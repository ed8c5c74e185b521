"""Training faults surface where they happen (issue 14): NaN steps, NaN metrics, resume RNG states."""
import pytest
import torch

from vaemi import build_vae, get_loss, train
from vaemi.train.variants import fit
from vaemi.losses import ELBOLoss
from vaemi.train.loop import NonFiniteLossError, load_checkpoint, read_resume_state, seed_everything

#: the cadence of CUDA, forced on the CPU, so that the old "check every 50 steps" would misreport
CADENCE = 50


def _model(seed=0):
    seed_everything(seed)
    return build_vae((1, 28, 28), 3, hidden=(32,))


class _NaNAt(ELBOLoss):
    def __init__(self, bad_step):
        super().__init__()
        self.bad_step = bad_step

    def __call__(self, model, x, step=0):
        loss, logs = super().__call__(model, x, step)
        return loss * (float("nan") if step == self.bad_step else 1.0), logs


def _all_finite(state_dict):
    return all(torch.isfinite(v).all() for v in state_dict.values() if v.is_floating_point())


@pytest.mark.parametrize("check_every", [1, CADENCE])
def test_nan_names_first_bad_step_and_keeps_last_good_weights(tmp_path, tiny_images, check_every):
    # 64 images / batch 16 = 4 steps per epoch: step 5 is the second step of epoch 1
    ck = tmp_path / "model.pt"
    m = _model()
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 5\b"):
        train(m, _NaNAt(5), tiny_images, epochs=3, batch_size=16, progress=False, checkpoint=ck,
              check_every=check_every)
    assert _all_finite(m.state_dict())
    saved = load_checkpoint(ck)
    assert len(saved["history"]) == 1 and _all_finite(saved["model"])
    if check_every == CADENCE:  # the last passed check is the end of epoch 0 = the checkpoint
        for k, v in saved["model"].items():
            assert torch.equal(v.cpu(), m.state_dict()[k].cpu()), k  # train() may have moved m to a GPU


def test_the_error_says_where_and_carries_the_finished_epochs(tiny_images):
    with pytest.raises(NonFiniteLossError) as e:
        train(_model(), _NaNAt(5), tiny_images, epochs=3, batch_size=16, progress=False)
    assert e.value.step == 5 and len(e.value.history) == 1 and e.value.history[0]["epoch"] == 1


@pytest.mark.parametrize("use_cache", [False, True])
def test_fit_can_stop_at_a_divergence_and_keep_the_last_finite_weights(tmp_path, monkeypatch, tiny_images, use_cache):
    """``on_nonfinite="stop"`` (an objective known to be unbounded): the model keeps its last finite weights, the
    status says "diverged" and where, the finished epochs are its history, and nothing is cached; the default still
    raises, and an unknown choice is refused."""
    monkeypatch.setenv("VAEMI_CACHE", str(tmp_path / "cache"))
    m = _model()
    r = fit(m, _NaNAt(5), tiny_images, epochs=3, batch_size=16, progress=False, use_cache=use_cache,
            on_nonfinite="stop")
    assert r.status == "diverged" and r.extra["diverged_at_step"] == 5 and "step 5" in r.extra["diverged"]
    assert len(r.history) == 1 and _all_finite(r.model.state_dict())
    assert not list((tmp_path / "cache").glob("*.pt"))  # a diverged model is never a cache entry
    ok = fit(_model(), _NaNAt(10**6), tiny_images, epochs=1, batch_size=16, progress=False, use_cache=False,
             on_nonfinite="stop")
    assert ok.status == "trained"
    with pytest.raises(NonFiniteLossError):
        fit(_model(), _NaNAt(5), tiny_images, epochs=3, batch_size=16, progress=False, use_cache=False)
    with pytest.raises(ValueError, match="on_nonfinite must be 'raise' or 'stop'"):
        fit(_model(), _NaNAt(5), tiny_images, epochs=1, progress=False, on_nonfinite="ignore")


def test_nan_in_first_epoch_with_cadence_leaves_initial_weights(tiny_images):
    m = _model()
    init = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, step 2\b"):
        train(m, _NaNAt(2), tiny_images, epochs=2, batch_size=16, progress=False, check_every=CADENCE)
    for k, v in m.state_dict().items():
        assert torch.equal(v.cpu(), init[k]), k


def test_non_finite_eval_metric_names_the_metric(tmp_path, tiny_images):
    ck = tmp_path / "model.pt"
    with pytest.raises(NonFiniteLossError, match=r"mi_estimate=nan.*epoch 2"):
        train(_model(), get_loss("elbo"), tiny_images, epochs=3, batch_size=32, progress=False, checkpoint=ck,
              eval_fn=lambda m, e: {"ok": 1.0, "mi_estimate": float("nan") if e == 2 else 0.5})
    assert len(load_checkpoint(ck)["history"]) == 1  # no checkpoint written with the bad metric


def test_bad_check_every_is_rejected(tiny_images):
    with pytest.raises(ValueError, match="check_every"):
        train(_model(), get_loss("elbo"), tiny_images, epochs=1, check_every=0, progress=False)


def test_resume_state_keeps_rng_on_cpu_whatever_the_device(tmp_path, tiny_images):
    ck = tmp_path / "model.pt"
    train(_model(), get_loss("elbo"), tiny_images, epochs=1, batch_size=32, progress=False, checkpoint=ck)
    for device in ("meta", "cpu", torch.device("meta")):
        rng = read_resume_state(ck, device)["rng"]
        for t in [rng["batches"], rng["torch"], *rng.get("cuda", [])]:
            assert t.device.type == "cpu" and t.dtype == torch.uint8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (resume used to fail only there)")
def test_resume_on_cuda_reproduces_the_uninterrupted_run(tmp_path, tiny_images):
    ck = tmp_path / "model.pt"
    m1 = _model()
    train(m1, get_loss("elbo"), tiny_images, epochs=2, batch_size=16, progress=False, checkpoint=ck, device="cuda")
    m2 = _model(5)
    h2 = train(m2, get_loss("elbo"), tiny_images, epochs=3, batch_size=16, progress=False, checkpoint=ck,
               resume=True, device="cuda")
    m3 = _model()
    h3 = train(m3, get_loss("elbo"), tiny_images, epochs=3, batch_size=16, progress=False, device="cuda")
    assert list(h2["epoch"]) == [1, 2, 3]
    assert h2["loss"][2] == pytest.approx(h3["loss"][2], rel=1e-5)
