"""vaemi.measures.fid: torchmetrics' FID with a classifier's or Inception's features, offline, on synthetic data."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy import linalg
from torchmetrics.image.fid import FrechetInceptionDistance

from vaemi.measures import fid
from vaemi.data import ImageData


class _Flatten(nn.Module):
    """Identity features: the FID is then the Fréchet distance of the pixel vectors' Gaussians."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x):
        return x.flatten(1)


def _frechet(m1, c1, m2, c2) -> float:
    """The closed form ||m1 - m2||^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2))."""
    return float(((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real))


def _gaussian_images(mean, cov, n, seed) -> torch.Tensor:
    """``n`` draws of N(mean, cov) as 1 x 1 x d "images" (the test keeps them inside [0, 1], no clamping)."""
    v = np.random.default_rng(seed).multivariate_normal(mean, cov, size=n)
    assert v.min() > 0 and v.max() < 1, "test Gaussians must lie inside [0, 1]"
    return torch.as_tensor(v, dtype=torch.float32).view(n, 1, 1, -1)


def _toy(n=400, side=8, seed=0) -> tuple[ImageData, ImageData]:
    """An easy 2-class problem: dim noise, class 1 has a bright top half."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=g)
    x = torch.rand(n, 1, side, side, generator=g) * 0.3
    x[y == 1, :, : side // 2] += 0.6
    cut = 3 * n // 4
    return (ImageData("toy", "train", x[:cut], y[:cut], "synthetic"),
            ImageData("toy", "test", x[cut:], y[cut:], "synthetic"))


# --- the distance ---------------------------------------------------------------------------------------

MEAN1, COV1 = np.array([0.45, 0.5, 0.55]), np.array([[2.0, 0.6, 0.0], [0.6, 1.5, -0.3], [0.0, -0.3, 1.0]]) * 1e-3
MEAN2, COV2 = np.array([0.5, 0.47, 0.55]), np.array([[1.0, 0.0, 0.2], [0.0, 2.5, 0.0], [0.2, 0.0, 1.2]]) * 1e-3


def test_gaussian_closed_form():
    """Identity features on Gaussian vectors: the FID is the Fréchet distance of the two Gaussians, within
    the sampling spread of the estimate (measured here on independent replicates)."""
    n = 20_000
    a, b = _gaussian_images(MEAN1, COV1, n, 0), _gaussian_images(MEAN2, COV2, n, 1)
    got = fid.FIDScorer(_Flatten(3), a, label="test")(b)
    # exact for these samples: the same formula on their means and (unbiased) covariances
    fa, fb = a.flatten(1).double().numpy(), b.flatten(1).double().numpy()
    assert got == pytest.approx(_frechet(fa.mean(0), np.cov(fa.T), fb.mean(0), np.cov(fb.T)), rel=1e-6)
    # the population value, within 5 standard deviations of the estimator at this n
    reps, small = 20, 2_000
    spread = np.std([_frechet(*(lambda u, v: (u.mean(0), np.cov(u.T), v.mean(0), np.cov(v.T)))(
        _gaussian_images(MEAN1, COV1, small, 10 + r).flatten(1).double().numpy(),
        _gaussian_images(MEAN2, COV2, small, 100 + r).flatten(1).double().numpy())) for r in range(reps)])
    sd = spread * math.sqrt(small / n)
    closed = _frechet(MEAN1, COV1, MEAN2, COV2)
    assert abs(got - closed) < 5 * sd + 3 * np.trace(COV1 + COV2) / n  # + the O(1/n) bias of the estimate
    assert abs(got - closed) < 0.1 * closed


def test_self_distance_is_zero_and_shift_grows_monotonically():
    g = torch.Generator().manual_seed(0)
    real = 0.2 + 0.5 * torch.rand(500, 1, 2, 2, generator=g)
    scorer = fid.FIDScorer(_Flatten(4), real, label="test")
    scale = float(real.flatten(1).double().var(0).sum())  # the FID to a set of the same spread, roughly
    assert abs(scorer(real)) < 1e-3 * scale
    shifts = (0.0, 0.02, 0.05, 0.1, 0.2)
    scores = [scorer(real + s) for s in shifts]
    assert all(u < v for u, v in zip(scores, scores[1:]))
    # a shift moves only the mean: FID = d * s^2 for d pixels
    assert scores[-1] == pytest.approx(4 * 0.2 ** 2, rel=1e-4)
    # with nonlinear features too: an (untrained) classifier on images
    torch.manual_seed(0)
    net = fid.FeatureClassifier((3, 16, 16), 2)
    imgs = 0.3 * torch.rand(200, 3, 16, 16, generator=g)
    sc = fid.FIDScorer(net, imgs, label=fid.CLASSIFIER_LABEL)
    s0, s1, s2 = sc(imgs), sc(imgs + 0.2), sc(imgs + 0.5)
    assert abs(s0) < 1e-3 * s2 and s0 < s1 < s2


def test_cached_real_statistics_match_a_fresh_torchmetrics_metric():
    """Scoring many sets reuses the real statistics, and each number is what a fresh metric gives."""
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    net = fid.FeatureClassifier((1, 12, 12), 3).eval()
    real = torch.rand(300, 1, 12, 12, generator=g)
    fakes = [torch.rand(200, 1, 12, 12, generator=g) ** p for p in (1.0, 2.0)]
    scorer = fid.FIDScorer(net, real, label=fid.CLASSIFIER_LABEL, batch_size=64)
    ours = [scorer(f) for f in fakes] + [scorer(fakes[0])]

    class Double(nn.Module):
        num_features = fid.FEATURE_DIM

        def forward(self, x):
            return net(x).double()

    for fake, got in zip(fakes + fakes[:1], ours):
        m = FrechetInceptionDistance(feature=Double())
        m.update(real, real=True)
        m.update(fake, real=False)
        assert got == pytest.approx(float(m.compute()), rel=1e-6)  # the scorer runs on a GPU where there is one
    assert ours[0] == ours[2] and ours[0] != ours[1]
    assert scorer.metric.real_features_num_samples == len(real)


# --- the classifier -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_classifier_shapes(shape):
    net = fid.FeatureClassifier(shape, 10)
    x = torch.rand(2, *shape)
    assert net(x).shape == (2, fid.FEATURE_DIM) and net.logits(x).shape == (2, 10)
    assert net.num_features == fid.FEATURE_DIM
    assert fid.FeatureClassifier(shape, 10, feature_dim=16)(x).shape == (2, 16)


def test_classifier_trains_and_is_loaded_from_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VAEMI_CACHE", str(tmp_path))
    train, test = _toy()
    net = fid.train_feature_classifier(train, test, epochs=8, batch_size=32, seed=0, progress=False, device="cpu")
    assert net.test_accuracy > 0.9 and net.dataset == "toy" and not net.training
    assert len(list((tmp_path / "fid").glob("*.pt"))) == 1

    def no_training(*a, **k):
        raise AssertionError("trained again instead of loading the cached classifier")

    with monkeypatch.context() as m:
        m.setattr(torch.optim, "Adam", no_training)
        again = fid.train_feature_classifier(train, test, epochs=8, batch_size=32, seed=0, progress=False, device="cpu")
    assert again.test_accuracy == net.test_accuracy and not again.training
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    # another setting is another entry; a corrupt entry is removed and retrained, with a warning
    fid.train_feature_classifier(train, test, epochs=1, batch_size=32, seed=0, progress=False, device="cpu")
    assert len(list((tmp_path / "fid").glob("*.pt"))) == 2
    for f in (tmp_path / "fid").glob("*.pt"):
        f.write_bytes(f.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unusable"):
        third = fid.train_feature_classifier(train, test, epochs=8, batch_size=32, seed=0, progress=False, device="cpu")
    assert third.test_accuracy == net.test_accuracy
    # and its features score: the test set against itself ~0 (relative to other sets), against the training
    # set small, against noise large
    scorer = fid.make_scorer("classifier", test.x, classifier=net)
    assert scorer.label == fid.CLASSIFIER_LABEL
    itself, train_set, noise = scorer(test.x), scorer(train.x), scorer(torch.rand_like(test.x))
    assert abs(itself) < 1e-3 * train_set and train_set < noise


def test_classifier_cache_off(monkeypatch, tmp_path):
    monkeypatch.setenv("VAEMI_CACHE", "off")
    monkeypatch.setenv("HOME", str(tmp_path))
    train, test = _toy(n=80)
    fid.train_feature_classifier(train, test, epochs=1, progress=False, device="cpu")
    assert not any(tmp_path.rglob("*.pt"))


def test_classifier_bad_settings():
    train, test = _toy(n=40)
    with pytest.raises(ValueError, match="epochs"):
        fid.train_feature_classifier(train, test, epochs=0, use_cache=False)
    one_class = ImageData("toy", "train", train.x, torch.zeros_like(train.y), "synthetic")
    with pytest.raises(ValueError, match="2 classes"):
        fid.train_feature_classifier(one_class, test, use_cache=False)


# --- inputs ---------------------------------------------------------------------------------------------


def test_bad_images_are_named():
    scorer = fid.FIDScorer(_Flatten(2), torch.rand(10, 1, 1, 2), label="t")
    with pytest.raises(ValueError, match="shape"):
        scorer(torch.rand(10, 1, 2, 1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        scorer(torch.rand(10, 1, 1, 2) + 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        scorer(torch.rand(10, 1, 1, 2) - 0.5)
    bad = torch.rand(10, 1, 1, 2)
    bad[3, 0, 0, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        scorer(bad)
    with pytest.raises(ValueError, match="at least 2"):
        scorer(torch.rand(1, 1, 1, 2))
    with pytest.raises(ValueError, match="float"):
        scorer(torch.randint(0, 255, (10, 1, 1, 2), dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(n, C, H, W\)"):
        scorer(torch.rand(10, 2))
    with pytest.raises(ValueError, match="real images.*NaN"):
        fid.FIDScorer(_Flatten(2), bad, label="t")
    with pytest.raises(ValueError, match="num_features"):
        fid.FIDScorer(nn.Flatten(), torch.rand(10, 1, 1, 2), label="t")


def test_make_scorer_choices(monkeypatch, tmp_path):
    real = torch.rand(20, 1, 8, 8)
    with pytest.raises(ValueError, match="unknown FID features"):
        fid.make_scorer("inceptoin", real)
    with pytest.raises(ValueError, match="classifier"):
        fid.make_scorer("classifier", real)
    with pytest.raises(ValueError, match="trained on images of shape"):
        fid.make_scorer("classifier", real, classifier=fid.FeatureClassifier((1, 12, 12), 2))
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no hub-cached weights
    monkeypatch.delenv(fid.INCEPTION_WEIGHTS_ENV, raising=False)
    scorer = fid.make_scorer("auto", real, classifier=fid.FeatureClassifier((1, 8, 8), 2))
    assert scorer.label == fid.CLASSIFIER_LABEL and math.isfinite(scorer(torch.rand(20, 1, 8, 8)))


# --- Inception ------------------------------------------------------------------------------------------


def test_inception_unavailable_offline_says_what_to_provide(monkeypatch, tmp_path):
    monkeypatch.setattr(fid, "_has_torch_fidelity", lambda: True)  # the same whether it is installed or not
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no hub-cached weights
    monkeypatch.delenv(fid.INCEPTION_WEIGHTS_ENV, raising=False)
    assert not fid.inception_available()
    for call in (lambda: fid.make_scorer("inception", torch.rand(4, 3, 8, 8)),
                 lambda: fid.make_scorer("auto", torch.rand(4, 3, 8, 8)),  # auto without a classifier
                 lambda: fid.inception_scorer(torch.rand(4, 1, 8, 8))):
        with pytest.raises(fid.FIDUnavailable, match=fid.INCEPTION_WEIGHTS_ENV) as e:
            call()
        assert fid.INCEPTION_WEIGHTS_FILE in str(e.value) and "VAEMI_OFFLINE" in str(e.value)
    assert issubclass(fid.FIDUnavailable, RuntimeError)
    monkeypatch.setenv(fid.INCEPTION_WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    assert not fid.inception_available()
    with pytest.raises(fid.FIDUnavailable, match="not found"):
        fid.make_scorer("inception", torch.rand(4, 3, 8, 8))
    monkeypatch.setattr(fid, "_has_torch_fidelity", lambda: False)
    assert not fid.inception_available(tmp_path)
    with pytest.raises(fid.FIDUnavailable, match="torch-fidelity"):
        fid.inception_scorer(torch.rand(4, 3, 8, 8))


class _FakeInception(nn.Module):
    """Stands for torchmetrics' NoTrainInceptionV3: records the weights path and what it is fed."""

    paths: list = []

    def __init__(self, name, features_list, feature_extractor_weights_path=None):
        super().__init__()
        if feature_extractor_weights_path is not None and open(feature_extractor_weights_path, "rb").read() == b"bad":
            raise RuntimeError("not a state dict")
        self.paths.append(feature_extractor_weights_path)
        self.proj = nn.Linear(3, fid.INCEPTION_DIM)

    def forward(self, x):
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        return self.proj(x.float().mean((2, 3)) / 255)


def test_inception_weights_are_found(monkeypatch, tmp_path):
    """The path given, else $VAEMI_INCEPTION_WEIGHTS, else torch's hub cache, else a download (online only);
    grey images reach Inception as 3-channel uint8, and a failed load under "auto" falls back, warned."""
    import torchmetrics.image.fid as tm_fid

    monkeypatch.setattr(fid, "_has_torch_fidelity", lambda: True)
    monkeypatch.setattr(tm_fid, "NoTrainInceptionV3", _FakeInception)
    _FakeInception.paths = []
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(fid.INCEPTION_WEIGHTS_ENV, raising=False)
    given, env = tmp_path / "given.pth", tmp_path / "env.pth"
    given.write_bytes(b"ok")
    env.write_bytes(b"ok")
    real = torch.rand(6, 1, 8, 8)

    monkeypatch.setenv("VAEMI_OFFLINE", "0")
    assert fid.inception_available()
    s = fid.make_scorer("inception", real, device="cpu")  # online, nothing local: torch-fidelity downloads
    assert s.label == fid.INCEPTION_LABEL and int(s.metric.real_features_num_samples) == len(real)
    feats = s.metric.inception(real)  # (the distance itself is not computed here: a 2048 x 2048 eigvals, ~3 s)
    assert feats.shape == (len(real), fid.INCEPTION_DIM) and feats.dtype == torch.float64
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    monkeypatch.setenv(fid.INCEPTION_WEIGHTS_ENV, str(env))
    assert fid.inception_available() and fid.inception_available(given)
    fid.inception_scorer(real, device="cpu")
    fid.inception_scorer(real, given, device="cpu")
    monkeypatch.delenv(fid.INCEPTION_WEIGHTS_ENV)
    hub = tmp_path / "torch" / "hub" / "checkpoints" / fid.INCEPTION_WEIGHTS_FILE
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"ok")
    assert fid.inception_available()
    assert fid.make_scorer("auto", real, device="cpu").label == fid.INCEPTION_LABEL
    assert _FakeInception.paths == [None, str(env), str(given), str(hub)]

    hub.write_bytes(b"bad")  # e.g. a truncated download
    with pytest.raises(fid.FIDUnavailable, match="could not be loaded"):
        fid.make_scorer("inception", real)
    with pytest.warns(UserWarning, match="Falling back"):
        s = fid.make_scorer("auto", real, classifier=fid.FeatureClassifier((1, 8, 8), 2))
    assert s.label == fid.CLASSIFIER_LABEL
    with pytest.raises(ValueError, match="grey or RGB"):
        fid.inception_scorer(torch.rand(4, 2, 8, 8), given)
