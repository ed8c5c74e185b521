"""The variance-loss chapter's machinery: vaemi.measures.variance, vaemi.models.twostage and the γ rules of the decoder (FID: test_fid.py)."""
import numpy as np
import pytest
import torch

import vaemi
from vaemi.chapters import variance_loss as ch
from vaemi.models import twostage as ts
from vaemi.measures import variance as vl
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
    from vaemi.measures.metrics import evaluate_elbo  # not loaded by `import vaemi` (the core only)

    assert out["rate"] == pytest.approx(float(evaluate_elbo(m, x)["kl"]), rel=1e-4)


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


# ------------------------------------------------------------------------------- the chapter's runs
def _images(n, side=8, seed=0, split="train"):
    g = torch.Generator().manual_seed(seed)
    return vaemi.data.ImageData("mnist", split, torch.rand(n, 1, side, side, generator=g),
                                torch.arange(n) % 10, "synthetic")


def test_pca_table_cases_and_smoothing_gaps():
    x = np.random.default_rng(0).normal(size=(120, 9))
    df = ch.pca_table(x, [1, 4, 9])
    assert list(df.columns) == ["k", "mse", "variance_loss", "discarded", "relative_gap", "eig_gap"]
    assert (df.relative_gap[:2] < 1e-10).all() and df.mse.iloc[-1] < 1e-20  # all components: nothing lost
    assert (df.eig_gap[:2] < 1e-10).all() and df.discarded.iloc[-1] < 1e-12
    assert df.mse.is_monotonic_decreasing
    gaps = ch.case_gaps(60, seed=1)
    assert {k: len(v) for k, v in gaps.items()} == {"a": 60, "b": 60, "c": 60, "mean": 60, "mean_var": 60}
    assert gaps["a"].min() >= -1e-12 and np.abs(gaps["b"]).max() < 1e-12
    assert np.array_equal(gaps["c"], ch.case_gaps(60, seed=1)["c"])  # reproducible
    walk = ch.closed_random_walk(100, seed=3)
    assert walk.shape == (100,) and walk[0] == pytest.approx(walk[-1])
    assert ch.smoothing_gaps(40, seed=2).min() >= -1e-10


def test_fit_grid_and_encoder_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMI_CACHE", str(tmp_path))
    data = {"mnist": (_images(60), _images(30, seed=1, split="test"))}
    models, table = ch.fit_grid(data, ["mlp", "conv"], latent_dim=3, gamma0=0.1, epochs=1, batch_size=20, lr=1e-3,
                                hidden=[16], channels=[4])
    assert set(models) == {("mnist", "mlp"), ("mnist", "conv")}
    assert list(table.arch) == ["mlp", "conv"] and (table.vl_gen > -1).all() and (table.gamma > 0).all()
    assert table.mse.iloc[0] == pytest.approx(vl.loss_stats(models[("mnist", "mlp")], data["mnist"][1])["mse"])
    law, split = ch.encoder_checks(models, data, seed=0)
    assert set(law.columns) >= {"dataset", "arch", "active", "dims", "max_abs_mean", "mean_abs_moment_dev"}
    assert law.groupby("arch").dims.sum().tolist() == [3, 3]
    assert (split.residual.abs() < 1e-9).all()
    assert np.allclose(split.printed_line, split.rate - 2 * split.cross_entropy)


def test_train_and_evaluate_pairs(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMI_CACHE", str(tmp_path))
    train, test = _images(60), _images(40, seed=1, split="test")
    stages = ch.train_pairs(train, n_trainings=2, gamma_rules=["learned", "running_min"], latent_dim=3,
                            stage1=dict(arch="mlp", hidden=[16], gamma0=0.2), stage1_epochs=1, stage2_epochs=1,
                            stage2_hidden=[8], batch_size=20, lr=1e-3, seed=5)
    assert set(stages) == {(r, t) for r in ["learned", "running_min"] for t in [0, 1]}
    assert stages[("running_min", 0)][0].likelihood.running_min
    # the rules of one training start from one initialization, trainings from different ones
    assert not torch.equal(stages[("learned", 0)][0].encoder.net[0].weight, stages[("learned", 1)][0].encoder.net[0].weight)
    ev = ch.evaluate_pairs(stages, lambda images: float(images.mean()), test, train, 20, seed=0, mmd_n=10)
    fid_df, var_df = ev["fid"], ev["codes"]
    # every kind without; GEN-2 with both rules; every kind with the published rule for the running-minimum rule
    assert len(fid_df) == 2 * (2 * len(ts.SAMPLE_KINDS) + 1) + 2 * (len(ts.SAMPLE_KINDS) + 2) and set(fid_df.norm) == set(ch.NORMS)
    assert set(fid_df[fid_df.norm == "unit"].kind) == {"GEN-2"}
    assert set(fid_df[(fid_df.norm == "paper") & (fid_df.rule == "learned")].kind) == {"GEN-2"}
    assert set(var_df.kind) == {"Q(z)", *ts.SAMPLE_KINDS} and len(var_df) == 4 * (len(ts.SAMPLE_KINDS) + 1)
    assert (var_df.code_variance > 0).all() and var_df[var_df.kind.isin(["GEN-1", "GEN-2"])].mmd_to_qz.notna().all()
    assert len(ev["fig6"]) == len(ev["rule"]) == 4 and set(ev["real"]) == {"sharpness", "contrast", "data_std"}
    raes = ch.train_raes(train, n_trainings=2, latent_dim=3, stage1=dict(arch="mlp", hidden=[16]), epochs=1, batch_size=20,
                         lr=1e-3, seed=5)
    assert set(raes) == {(v, t) for v in ch.RAE_VARIANTS for t in [0, 1]}
    rae_df = ch.evaluate_raes(raes, lambda images: float(images.mean()), test, train, 20, seed=0)
    assert len(rae_df) == 4 * len(ts.SAMPLE_KINDS) and set(rae_df.norm) == {"none"}
    table = ch.fid_table(fid_df, rae_df)
    assert list(table.columns) == list(ts.SAMPLE_KINDS) and "RAE-SN" in table.index


def test_paired_difference_by_hand():
    import pandas as pd

    out = ch.paired_difference(pd.Series([1.0, 2.0, 6.0]), pd.Series([2.0, 2.0, 3.0]))
    assert out == {"mean": pytest.approx(2 / 3), "se": pytest.approx(np.std([-1, 0, 3], ddof=1) / np.sqrt(3)),
                   "below": 1, "of": 3}
    assert ch.paired_difference(pd.Series([0.5, 0.7]), 1.0)["below"] == 2
