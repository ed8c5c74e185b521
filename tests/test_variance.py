"""The variance-loss chapter's machinery: vaemi.variance, vaemi.twostage, vaemi.fid and the γ rules of the decoder."""
import math

import numpy as np
import pytest
import torch
from scipy import linalg

import vaemi
from vaemi import fid, twostage as ts, variance as vl
from vaemi.data import ImageData
from vaemi.models import GaussianLikelihood


# ----------------------------------------------------------------------------------- variance loss
def test_variance_loss_and_mse_by_hand():
    x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    xh = np.array([[1.0, 2.0], [2.0, 3.0], [3.0, 4.0]])
    assert vl.variance_loss(x, xh) == pytest.approx(np.mean(x.var(0) - xh.var(0)))
    assert vl.mse(x, xh) == pytest.approx(np.mean((x - xh) ** 2))
    with pytest.raises(ValueError, match="same shape"):
        vl.mse(x, xh[:2])
    with pytest.raises(ValueError, match="at least 2 items"):
        vl.variance_loss(x[:1], xh[:1])


@pytest.mark.parametrize("k", [1, 3, 10])
def test_pca_variance_loss_equals_mse(k):
    x = np.random.default_rng(k).normal(size=(200, 12)) @ np.random.default_rng(0).normal(size=(12, 12))
    xh = vl.pca_reconstruction(x, k)
    assert vl.variance_loss(x, xh) == pytest.approx(vl.mse(x, xh), rel=1e-10)


def test_linear_autoencoder_approaches_pca():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 10)) + 0.1 * rng.normal(size=(300, 10))
    xh, curve = vl.linear_autoencoder(x, 3, steps=800, lr=2e-2)
    assert curve[-1][1] < curve[0][1]
    assert vl.mse(x, xh) < 1.2 * vl.mse(x, vl.pca_reconstruction(x, 3))


def test_three_cases_of_section_3_1():
    rng = np.random.default_rng(1)
    signs = set()
    for _ in range(200):
        x = rng.normal(size=(int(rng.integers(3, 20)), 3))
        xa = vl.shrink_toward_mean(x, rng.uniform(size=x.shape))
        assert vl.mse(x, xa) <= vl.variance_loss(x, xa) + 1e-12
        xb = vl.permutation_average(x, [rng.permutation(len(x))])
        assert vl.mse(x, xb) == pytest.approx(vl.variance_loss(x, xb), abs=1e-12)
        xc = vl.permutation_average(x, [rng.permutation(len(x)) for _ in range(3)])
        signs.add(np.sign(round(vl.variance_loss(x, xc) - vl.mse(x, xc), 12)))
    assert {-1.0, 1.0} <= signs
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        vl.shrink_toward_mean(x, 1.5)
    with pytest.raises(ValueError, match="permutation"):
        vl.permutation_average(x, [[0, 0, 1]])


def test_gaussian_smoothing_keeps_mean_and_loses_more_variance_than_mse():
    rng = np.random.default_rng(2)
    for _ in range(50):
        s = rng.standard_t(3, size=int(rng.integers(8, 200)))
        sm = vl.gaussian_smooth(s, rng.uniform(0.3, 10))
        assert sm.mean() == pytest.approx(s.mean(), abs=1e-12)
        assert s.var() - sm.var() >= np.mean((s - sm) ** 2) - 1e-12
    with pytest.raises(ValueError, match="sigma"):
        vl.gaussian_smooth(s, 0)


@pytest.mark.parametrize("r", [0.0, 0.3, 1.0, 4.0, 50.0])
def test_kl_at_fixed_ratio_minimum_has_unit_second_moment(r):
    out = vl.kl_at_fixed_ratio(r)
    assert out["moment"] == pytest.approx(1.0, abs=1e-7)
    assert out["sigma2"] == pytest.approx(1 / (1 + r * r), rel=1e-6)


@pytest.fixture(scope="module")
def trained_vae():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(300, 1, 8, 8, generator=g) > 0.6).float()
    torch.manual_seed(0)
    m = vaemi.build_vae((1, 8, 8), 3, hidden=[32], likelihood="gaussian", variance=0.1)
    vaemi.train(m, vaemi.get_loss("elbo"), x, epochs=3, batch_size=50, progress=False)
    return m, x


def test_kl_rate_split_identity_and_monte_carlo(trained_vae):
    m, x = trained_vae
    out = vl.kl_rate_split(m, x, seed=0, repeats=20)
    assert abs(out["residual"]) < 1e-10
    assert abs(out["cross_entropy_mc"] - out["cross_entropy"]) < 4 * out["se_cross_entropy_mc"]
    assert abs(out["rate_mc"] - out["rate"]) < 4 * out["se_rate_mc"]
    assert out["rate"] == pytest.approx(float(vaemi.metrics.evaluate_elbo(m, x)["kl"]), rel=1e-4)


def test_variance_law_table(trained_vae):
    m, x = trained_vae
    df = vl.variance_law(m, x)
    mu, var = vl.encode_gaussian(m, x)
    assert list(df.dim) == [0, 1, 2]
    assert np.allclose(df.moment, (mu.pow(2) + var).mean(0).numpy())
    assert (df.active == (df.kl > vl.ACTIVE_KL)).all()


def test_loss_stats_of_a_model_that_outputs_the_mean():
    """A decoder that always outputs the data mean: variance loss = MSE = data variance (the PCA worst case)."""
    x = torch.rand(100, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    m = vaemi.build_vae((1, 4, 4), 2, hidden=[8], likelihood="gaussian", mean_activation="identity")
    with torch.no_grad():
        last = m.decoder.net[-1]
        last.weight.zero_()
        last.bias.copy_(x.mean(0).flatten())
    s = vl.loss_stats(m, x)
    assert s["vl_rec"] == pytest.approx(s["var_data"], rel=1e-5) and s["mse"] == pytest.approx(s["var_data"], rel=1e-5)
    assert s["vl_gen"] == pytest.approx(s["var_data"], rel=1e-5)


# ------------------------------------------------------------------------------------ γ rules, nets
def test_running_min_gamma_follows_the_batch_mse():
    lik = GaussianLikelihood(1.0, running_min=True)
    x, out = torch.zeros(4, 3), torch.zeros(4, 3)  # sigmoid(0) = 0.5 -> batch MSE 0.25
    lik.train()
    lik.log_prob(x, out)
    assert float(lik.variance) == pytest.approx(0.25)
    lik.log_prob(x, torch.full((4, 3), 10.0))  # a worse batch never raises it
    assert float(lik.variance) == pytest.approx(0.25)
    lik.eval()
    lik.log_prob(x, torch.full((4, 3), -10.0))  # evaluation never changes it
    assert float(lik.variance) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="one rule"):
        GaussianLikelihood(1.0, learn_variance=True, running_min=True)


@pytest.mark.parametrize("arch", ["conv", "resnet"])
def test_conv_and_resnet_vaes_on_28_and_32_pixels(arch):
    for shape in [(1, 28, 28), (3, 32, 32)]:
        m = vaemi.build_vae(shape, 5, arch=arch, likelihood="gaussian", channels=[8, 16])
        assert m(torch.rand(2, *shape)).out.shape == (2, *shape)
    with pytest.raises(ValueError, match="channels"):
        vaemi.build_vae((1, 28, 28), 5, arch="conv", channels=[])


def test_two_stage_variants_from_one_initialization_and_codes():
    torch.manual_seed(0)
    init = ts.build_first_stage((1, 8, 8), 3, gamma_rule="learned", arch="mlp", hidden=[16], gamma0=0.5)
    other = ts.with_gamma_rule(__import__("copy").deepcopy(init), "running_min", 0.5)
    assert other.likelihood.running_min and not isinstance(other.likelihood.logvar, torch.nn.Parameter)
    assert torch.equal(init.encoder.net[0].weight, other.encoder.net[0].weight)
    with pytest.raises(ValueError, match="gamma_rule"):
        ts.with_gamma_rule(init, "fixed")
    x = torch.rand(40, 1, 8, 8)
    codes = ts.stage1_codes(init, x, seed=0)
    assert codes.shape == (40, 3) and torch.equal(codes, ts.stage1_codes(init, x, seed=0))
    second = ts.build_second_stage(3, hidden=[8])
    for kind in ts.SAMPLE_KINDS:
        z = ts.sample_codes(init, kind, 10, stage2=second, data=x, seed=1)
        assert z.shape == (10, 3)
        assert ts.decode(init, z).shape == (10, 1, 8, 8)
    with pytest.raises(ValueError, match="stage2"):
        ts.sample_codes(init, "GEN-2", 10)
    zn = ts.renormalize(torch.randn(500, 3) * torch.tensor([0.5, 1.0, 3.0]) + 0.2)
    assert torch.allclose(zn.std(0, unbiased=False), torch.ones(3), atol=1e-5)


# ---------------------------------------------------------------------------------------------- FID
class _Flatten(torch.nn.Module):
    num_features = 2

    def forward(self, x):
        return x.flatten(1).double()


def _vectors(mean, cov, n, seed):
    g = np.random.default_rng(seed)
    v = g.multivariate_normal(mean, cov, size=n)
    return torch.as_tensor(v, dtype=torch.float64)


def test_fid_gaussian_closed_form_and_self_distance():
    """With identity features the FID is the Fréchet distance of the two samples' Gaussians."""
    m1, c1 = np.array([0.3, 0.5]), np.array([[0.010, 0.004], [0.004, 0.020]])
    m2, c2 = np.array([0.4, 0.45]), np.array([[0.015, 0.0], [0.0, 0.008]])
    a, b = _vectors(m1, c1, 20000, 0), _vectors(m2, c2, 20000, 1)
    imgs = lambda v: v.clamp(0, 1).float().view(-1, 1, 1, 2)
    scorer = fid.FIDScorer(_Flatten(), imgs(a), label="test")
    fa, fb = imgs(a).flatten(1).double().numpy(), imgs(b).flatten(1).double().numpy()
    ma, ca, mb, cb = fa.mean(0), np.cov(fa.T), fb.mean(0), np.cov(fb.T)
    exact = float(((ma - mb) ** 2).sum() + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real))
    assert scorer(imgs(b)) == pytest.approx(exact, rel=1e-5)
    closed = float(((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real))
    assert scorer(imgs(b)) == pytest.approx(closed, rel=0.1)
    assert abs(scorer(imgs(a))) < 1e-8
    shifts = [scorer((imgs(a) + s).clamp(0, 1)) for s in (0.0, 0.02, 0.05, 0.1)]
    assert all(u < v for u, v in zip(shifts, shifts[1:]))


def test_fid_bad_input_is_named():
    scorer = fid.FIDScorer(_Flatten(), torch.rand(10, 1, 1, 2), label="t")
    with pytest.raises(ValueError, match="shape"):
        scorer(torch.rand(10, 1, 2, 1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        scorer(torch.rand(10, 1, 1, 2) + 1)
    bad = torch.rand(10, 1, 1, 2)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        scorer(bad)
    with pytest.raises(ValueError, match="at least 2"):
        scorer(torch.rand(1, 1, 1, 2))
    with pytest.raises(ValueError, match="unknown FID features"):
        fid.make_scorer("inceptoin", torch.rand(4, 1, 1, 2))


def test_inception_unavailable_offline_says_what_to_provide(monkeypatch, tmp_path):
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    monkeypatch.delenv(fid.INCEPTION_WEIGHTS_ENV, raising=False)
    assert not fid.inception_available()
    with pytest.raises(fid.FIDUnavailable, match=fid.INCEPTION_WEIGHTS_ENV):
        fid.make_scorer("inception", torch.rand(4, 3, 8, 8))
    monkeypatch.setenv(fid.INCEPTION_WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(fid.FIDUnavailable, match="not"):
        fid.make_scorer("inception", torch.rand(4, 3, 8, 8))


def test_feature_classifier_trains_and_is_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("VAEMI_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    y = torch.randint(2, (400,), generator=g)
    x = torch.rand(400, 1, 8, 8, generator=g) * 0.3
    x[y == 1, :, :4] += 0.6  # class 1: bright top half
    train, test = ImageData("toy", "train", x[:300], y[:300], "synthetic"), ImageData("toy", "test", x[300:], y[300:], "synthetic")
    net = fid.train_feature_classifier(train, test, epochs=10, batch_size=32, seed=0, progress=False)
    assert net.test_accuracy > 0.9
    assert len(list((tmp_path / "fid").glob("*.pt"))) == 1
    again = fid.train_feature_classifier(train, test, epochs=10, batch_size=32, seed=0, progress=False)
    assert again.test_accuracy == net.test_accuracy
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    scorer = fid.make_scorer("auto", test.x, classifier=net)
    assert scorer.label == fid.CLASSIFIER_LABEL and abs(scorer(test.x)) < 1e-3
    assert math.isfinite(scorer(train.x[:50]))
