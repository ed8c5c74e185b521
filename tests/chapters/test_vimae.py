"""The VIMAE chapter's machinery: latent priors, deterministic codes, the WAE/DCGAN nets, the VIMAE loss and
vaemi.chapters.vimae (rates, tables)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

import vaemi
import vaemi.data.loading
from vaemi.chapters import vimae
from vaemi.models import DeterministicPart, GaussianPart, LatentSpace, dcgan_decoder_channels


def test_logistic_prior_kl_by_quadrature_matches_monte_carlo():
    part = GaussianPart(3, prior="logistic")
    params = torch.tensor([[0.3, -1.0, 2.0, -0.5, 0.2, -2.0]], dtype=torch.float64)
    mu, logvar = params.chunk(2, -1)
    z = mu + (0.5 * logvar).exp() * torch.randn(400_000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    log_q = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z)
    mc = (log_q - part.prior_log_prob(z)).mean(0)
    assert torch.allclose(part.kl(params)[0], mc, atol=5e-3)
    # the Normal prior keeps its closed form, and the prior densities integrate to one
    assert torch.allclose(GaussianPart(3).kl(params), vaemi.maths.distributions.kl_normal_std_normal(mu, logvar))
    grid = torch.linspace(-30, 30, 200_001, dtype=torch.float64)
    assert float(part.prior_log_prob(grid).exp().sum() * (grid[1] - grid[0])) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="unknown prior"):
        GaussianPart(2, prior="cauchy")


def test_logistic_prior_samples_are_seeded_with_unit_variance():
    part = DeterministicPart(2, prior="logistic")
    a = part.sample_prior(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, part.sample_prior(5, generator=torch.Generator().manual_seed(3)))
    big = part.sample_prior(200_000, generator=torch.Generator().manual_seed(0))
    assert big.var(0).sub(1).abs().max() < 0.02 and big.mean(0).abs().max() < 0.01
    assert part.prior_entropy() == pytest.approx(2 * (math.log(math.sqrt(3) / math.pi) + 2))


def test_deterministic_part_has_no_kl():
    part = DeterministicPart(3)
    p = torch.randn(4, 3)
    assert torch.equal(part.rsample(p), p) and torch.equal(part.mode(p), p) and part.n_params == 3
    with pytest.raises(ValueError, match="deterministic"):
        part.kl(p)


@pytest.mark.parametrize("shape,dec", [((1, 28, 28), (64, 32, 16)), ((3, 32, 32), (64, 32, 16)), ((3, 64, 64), (64, 32, 16, 8))])
def test_dcgan_nets_shapes(shape, dec):
    assert dcgan_decoder_channels((8, 16, 32, 64), shape[1]) == dec
    m = vaemi.build_vae(shape, 5, arch="dcgan", channels=[8, 16, 32, 64], likelihood="gaussian")
    out = m(torch.rand(3, *shape))
    assert out.out.shape == (3, *shape) and out.z.shape == (3, 5)
    assert sum(isinstance(l, torch.nn.BatchNorm2d) for l in m.modules()) == 4 + len(dec) - 1
    with pytest.raises(ValueError, match="decoder stages"):
        dcgan_decoder_channels((8, 16), 64)


def test_vimae_loss_terms_and_training_with_beta1():
    torch.manual_seed(0)
    model, loss = vimae.build_model("VIMAE-l", (1, 8, 8), 2, arch="mlp", hidden=[16], lam=3.0, input_noise=0.0)
    x = torch.rand(32, 1, 8, 8)
    value, logs = loss(model, x)
    x_hat = model.reconstruct(x)
    assert float(logs["rec"]) == pytest.approx(float((x - x_hat).pow(2).sum((1, 2, 3)).mean()), rel=1e-5)
    assert float(value.detach()) == pytest.approx(float(logs["rec"] + 3.0 * logs["mmd"]), rel=1e-5)
    h = vaemi.train(model, loss, x, epochs=2, batch_size=16, progress=False, betas=(0.5, 0.999))
    assert len(h.records) == 2 and "mmd" in h.records[0]
    with pytest.raises(ValueError, match="betas"):
        vaemi.train(model, loss, x, epochs=1, batch_size=16, progress=False, betas=(1.5, 0.999))
    noise = vaemi.losses.truncated_noise(torch.zeros(100_000), 0.01)
    assert noise.abs().max() <= 0.02 and noise.var().item() == pytest.approx(vimae.truncated_noise_variance(0.01), rel=0.03)


def test_build_model_kinds():
    for kind in vimae.MODEL_KINDS:
        m, loss = vimae.build_model(kind, (1, 8, 8), 2, arch="mlp", hidden=[8])
        part = m.latent.parts[0]
        assert part.kind == ("deterministic" if kind.startswith("VIMAE") else "gaussian")
        assert part.prior == ("logistic" if kind == "VIMAE-l" else "normal")
        assert loss.name == ("vimae" if kind.startswith("VIMAE") else "elbo")
    assert vimae.build_model("beta_H-VAE", (1, 8, 8), 2, arch="mlp", hidden=[8], beta_h=7.0)[1].beta == 7.0
    with pytest.raises(ValueError, match="unknown model"):
        vimae.build_model("WAE", (1, 8, 8), 2)


def test_noise_channel_rate_of_a_linear_encoder_is_exact():
    """z = W x + b: q(z|x) = N(Wx + b, v W W^T) exactly, and its KL to N(0, I) has a closed form."""
    torch.manual_seed(0)
    part = DeterministicPart(2)
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    model = vaemi.models.VAE(enc, vaemi.models.MLPDecoder(2, (1, 4, 4), [4]), LatentSpace([part]),
                             vaemi.models.GaussianLikelihood(0.5))
    x = torch.rand(50, 1, 4, 4, dtype=torch.float32)
    out = vimae.noise_channel_rate(model, x, 0.1)
    w = enc[1].weight.detach().double()
    v = vimae.truncated_noise_variance(0.1)
    cov = v * w @ w.T
    m = enc(x).detach().double()
    kl = 0.5 * (torch.trace(cov) + m.pow(2).sum(1) - 2 - torch.logdet(cov))
    assert out["rate"] == pytest.approx(float(kl.mean()), rel=1e-5)
    with pytest.raises(ValueError, match="deterministic"):
        vimae.noise_channel_rate(vimae.build_model("VAE", (1, 4, 4), 2, arch="mlp", hidden=[4])[0], x, 0.1)


def test_model_table_and_robustness_drops(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMI_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    train = vaemi.data.ImageData("mnist", "train", torch.rand(40, 1, 8, 8, generator=g), torch.arange(40) % 10, "synthetic")
    models = vimae.train_models(["VAE", "VIMAE-n"], train, latent_dim=2, epochs=1, batch_size=20, arch="mlp", hidden=[8])
    table = vimae.model_table(models, train, input_noise=0.01)
    assert list(table.model) == ["VAE", "VIMAE-n"] and (table.l2 > 0).all() and np.isfinite(table.rate).all()
    robust = pd.DataFrame(dict(model=["a", "a", "b", "b"], kind=["clean", "gaussian"] * 2, level=[0.0, 0.4] * 2,
                               mean=[90.0, 80.0, 90.0, 50.0], std=[2.0, 2.0, 1.0, 1.0], draws=[4] * 4))
    drops = vimae.robustness_drops(robust, ("gaussian", 0.4))
    assert drops["drop"].to_dict() == {"a": 10.0, "b": 40.0}
    assert drops.se["a"] == pytest.approx(math.sqrt(2) * 1.0)
    with pytest.raises(ValueError, match="no rows"):
        vimae.robustness_drops(robust, ("mask", 0.5))


def test_prior_entropy_table_and_mmd_checks():
    ent = vimae.prior_entropy_table([1, 3], n=20_000, seed=0)
    assert ((ent.mc - ent.closed_form).abs() < 5 * ent.se).all()
    mm = vimae.mmd_checks(n=300, d=2, permutations=30, repeats=5, seed=0)
    assert abs(mm["same_mean"]) < 5 * mm["same_se"] + 1e-3
    assert abs(mm["gauss_mean"] - mm["gauss_exact"]) < 5 * mm["gauss_se"] + 1e-3
    assert 0 < mm["nl_p"] <= 1


def test_identity_table_and_chain_check():
    ident = vimae.identity_table(10, n_x=5, n_z=3, lam=10.0, seed=0)
    assert (ident[ident.holds_in_general].max_abs_residual < 1e-10).all()
    assert (ident[~ident.holds_in_general].max_abs_residual > 1e-3).all()  # the printed eqs. 15 and 8 are not identities
    chain = vimae.chain_check(10, n_x=5, n_z=3, seed=0)
    assert chain.iq_ge_itp.all() and chain.optimum_gap.abs().max() < 1e-10


def test_kl_additive_table_and_alemi_family_check():
    t = vimae.kl_additive_table(4, n_samples=20_000, seed=0).set_index("prior")
    assert abs(t.sum_per_dim["normal"] - t.joint_closed_form["normal"]) < 1e-9
    assert np.isnan(t.joint_closed_form["logistic"]) and (t.z < 5).all()
    assert t.sum_per_dim["logistic"] > 0
    torch.manual_seed(0)
    model, _ = vimae.build_model("VAE", (1, 28, 28), 3, arch="mlp", hidden=[16])
    x = torch.rand(20, 1, 28, 28)
    r = vimae.alemi_family_check(model, x, beta=3.0, seed=1)
    assert r["beta_vae"] < 1e-4 and r["rate_reward"] < 1e-4 and r["R0"] > r["rate"] > 0


def test_beside_paper_aligns_our_columns_with_the_papers():
    rows = [dict(model=m, kind=k, level=l, mean=50.0 + i, std=1.0, draws=2) for i, m in enumerate(["VIMAE-l", "VAE"])
            for k, l in [("clean", 0.0), ("gaussian", 0.2), ("gaussian", 0.3)]]
    t = vimae.beside_paper(pd.DataFrame(rows), vimae.PAPER_TABLE3)
    assert list(t.index[:2]) == ["VAE", "VIMAE-l"] and t.index[2] == "paper VAE" and len(t) == 7
    assert t.loc["VAE", "clean 0.0"] == 51.0 and t.loc["paper VIMAE-l", "gaussian 0.4"] == 88
    assert np.isnan(t.loc["VAE", "mask 0.5"]) and np.isnan(t.loc["paper VAE", "gaussian 0.3"])


def test_run_extra_dataset_skips_missing_files_with_the_data_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAEMI_OFFLINE", "1")
    monkeypatch.setenv("VAEMI_DATA", str(tmp_path))
    got = vimae.run_extra_dataset("cifar10", seed=0, allow_fallback=False, latent_dim=4, lam=10.0, beta_h=10.0,
                                  beta_a=0.4, epochs=1, channels=[4, 8, 8], fid_n=10, fid_features="classifier")
    assert got is None
    cap = capsys.readouterr()
    assert "cifar10: skipped" in cap.err and "cifar-10-batches-py" in cap.err  # the terminal: with this machine's paths
    assert "CIFAR10 IS NOT AVAILABLE" in cap.out and str(tmp_path) not in cap.out  # the page: path-free


def test_run_extra_dataset_gives_table5_and_table2_beside_the_paper(monkeypatch, tmp_path):
    monkeypatch.setenv("VAEMI_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)

    def fake(name, split="train", n=None, seed=0, allow_fallback=True):
        m = 60 if split == "train" else 30
        return vaemi.data.ImageData(name, split, torch.rand(m, 3, 32, 32, generator=g), torch.arange(m) % 10,
                                    source="synthetic")
    monkeypatch.setattr(vaemi.data.loading, "load_dataset", fake)
    got = vimae.run_extra_dataset("cifar10", seed=0, allow_fallback=True, latent_dim=4, lam=10.0, beta_h=10.0, beta_a=0.4,
                                  epochs=1, channels=[4, 8, 8], fid_n=20, fid_features="classifier", n_test=30,
                                  batch_size=20, labels_per_class=2, svm_draws=2)
    models, t2 = got["models"], got["table2"]
    assert list(models.index) == list(vimae.MODEL_KINDS) and models.paper_fid["VIMAE-l"] == 103
    assert np.isfinite(models.fid).all() and np.isfinite(models.l2).all()
    assert list(t2.columns) == list(vimae.PAPER_TABLE2_COLUMNS) and t2.loc["paper VIMAE-l", "gaussian 0.3"] == 34
    assert t2.loc[list(vimae.MODEL_KINDS)].notna().all().all()
