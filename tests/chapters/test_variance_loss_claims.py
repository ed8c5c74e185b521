"""The functions that decide the variance-loss chapter's claims turn their verdict on a broken model or a corrupted
input, and hold on a correct small case (tiny models and data: seconds)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

import vaemi
from vaemi.book.results import INCONCLUSIVE
from vaemi.chapters import variance_loss as ch
from vaemi.measures import variance as vl


def _images(n=200, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.rand(n, 1, 8, 8, generator=g)


def _vae(seed=0):
    torch.manual_seed(seed)
    return vaemi.build_vae((1, 8, 8), 3, hidden=[16], likelihood="gaussian", mean_activation="identity")


def _constant_decoder(m, image):
    """The decoder outputs ``image`` whatever the code."""
    with torch.no_grad():
        last = m.decoder.net[-1]
        last.weight.zero_()
        last.bias.copy_(image.flatten())
    return m


def _noisy_decoder(m, scale=10.0, seed=0):
    """The decoder's output varies wildly with the code (more variance than any image in [0, 1])."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lin in (m.decoder.net[0], m.decoder.net[-1]):
            lin.weight.copy_(scale * torch.randn(lin.weight.shape, generator=g))
    return m


# ------------------------------------------------------------------------------------ verdict helpers
def test_agrees_and_paired_verdict():
    assert ch.agrees(1.0, 1.0, 5000) is True and ch.agrees(5.0, 1.0, 5000) is False
    assert ch.agrees(0.5, 1.0, 10) == INCONCLUSIVE  # too few draws for the standard error to mean anything
    assert ch.agrees(float("nan"), 1.0, 5000) is None
    d = ch.paired_difference(pd.Series([1.0, 1.1, 0.9, 1.05]), pd.Series([2.0, 2.1, 2.05, 1.9]))
    assert ch.paired_verdict(d) is True and ch.paired_verdict(d, below=False) is False
    assert ch.paired_verdict(ch.paired_difference(pd.Series([1.0, -1.0, 0.5]), 0.0)) == INCONCLUSIVE


def test_bootstrap_variance_loss_matches_the_statistic_and_its_spread():
    x = _images(400)
    out = ch.bootstrap_variance_loss(x, 0.5 * x, seed=1)
    assert out["vl"] == pytest.approx(vl.variance_loss(x, 0.5 * x))
    # the weighted statistic of an all-ones resample is the statistic itself
    assert ch.weighted_mean_variance(x, np.ones((1, 400)))[0] == pytest.approx(float(x.flatten(1).var(0, unbiased=False).mean()))
    assert 0 < out["se"] < 0.1 * out["vl"]


# --------------------------------------------------------------------------------- derivation checks
def test_cross_entropy_scan_holds_and_a_corrupted_scan_fails():
    scan = ch.cross_entropy_scan(draws=5000, seed=0)
    assert ch.cross_entropy_verdict(scan, draws=5000) is True
    bad = scan.copy()
    bad["kl"] = bad.cross_entropy  # as if the cross-entropy alone were the divergence: its minimum is not at s = 1
    assert ch.cross_entropy_verdict(bad, draws=5000) is False
    biased = scan.assign(z=scan.z + 10.0)  # a Monte Carlo estimate off by ten standard errors
    assert ch.cross_entropy_verdict(biased, draws=5000) is False


def test_reparam_sampler_check_holds_and_a_broken_sampler_fails():
    m, x = _vae(), _images(20)
    assert ch.reparam_verdict(ch.reparam_moments(m, x, draws=1000, seed=0)) is True
    part = m.latent["z"]

    def too_wide(params, generator=None):  # samples with twice the encoder's standard deviation
        mu, logvar = part.split(params)
        return mu + 2 * (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator)

    part.sample = too_wide
    assert ch.reparam_verdict(ch.reparam_moments(m, x, draws=1000, seed=0)) is False


def test_reparam_gradient_check_holds_and_fails_when_the_decoder_ignores_the_code():
    m, x = _vae(), _images(20)
    g = ch.reparam_gradient_check(m, x, seed=0)
    assert ch.reparam_gradient_verdict(g) is True and g["rel_gap"] < 1e-6
    with torch.no_grad():
        m.decoder.net[0].weight.zero_()  # the code never reaches the output: no gradient to sigma
    assert ch.reparam_gradient_verdict(ch.reparam_gradient_check(m, x, seed=0)) is False


def test_encoder_monte_carlo_agrees_with_the_closed_forms():
    m, x = _vae(), _images(2000)
    out = ch.encoder_monte_carlo(m, x, seed=0)
    assert out["n"] == 2000
    assert all(abs(out[k]) < 4 for k in ("z_entropy", "z_cross_entropy", "z_rate")) and max(out["z_m1"], out["z_m2"]) < 4.5
    assert out["rate"] == pytest.approx(vl.kl_rate_split(m, x)["rate"])


def test_fig2_and_pca_identities_hold_and_corrupted_inputs_fail():
    cloud = np.random.default_rng(0).multivariate_normal([0, 0], [[3.0, 1.6], [1.6, 1.2]], size=40)
    scan = ch.fig2_scan(cloud)
    assert ch.fig2_verdict(scan) is True and scan["max_gap"] < 1e-12
    assert ch.fig2_verdict(scan | {"best_var_deg": scan["best_var_deg"] + 45}) is False
    x = np.random.default_rng(1).normal(size=(300, 12)) @ np.random.default_rng(2).normal(size=(12, 12))
    df = ch.pca_table(x, [1, 4])
    assert (df.relative_gap < 1e-9).all() and (df.eig_gap < 1e-9).all()
    x4 = vl.pca_reconstruction(x, 4)  # the literal per-datum reading of the definition is not the MSE
    assert abs(ch.variance_loss_per_datum(x, x4) - vl.mse(x, x4)) > 1e-3 * vl.mse(x, x4)


def test_averaging_identities_and_the_row_stochastic_counterexample():
    assert ch.doubly_stochastic_gaps(50, seed=0).min() >= -1e-12
    cond = ch.conditional_mean_gaps(np.random.default_rng(0).random((300, 6)), clusters=(4, 9))
    assert (cond.relative_gap < 1e-9).all() and (cond.min_var_drop >= -1e-12).all()
    c = ch.row_stochastic_counterexample()
    assert c["var_x_hat"] > c["var_x"]  # an average that is not doubly stochastic can raise the variance
    gaps = ch.case_gaps(50, seed=3)
    assert np.abs(gaps["mean"]).max() < 1e-12 and np.abs(gaps["mean_var"]).max() < 1e-12


def test_moving_average_keeps_the_mean_and_has_negative_lobes():
    s = ch.closed_random_walk(101, seed=0)
    sm = ch.moving_average(s, 5)
    assert sm.mean() == pytest.approx(s.mean(), abs=1e-12)
    alt = np.tile([1.0, -1.0], 50)  # the fastest wiggle: a 3-sample average flips its sign, VL < MSE
    box = ch.moving_average(alt, 3)
    assert alt.var() - box.var() < np.mean((alt - box) ** 2)
    with pytest.raises(ValueError, match="odd"):
        ch.moving_average(s, 4)


# ---------------------------------------------------------------------------------- source claims
def test_linear_ae_verdict_fails_untrained_and_holds_trained():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 10)) + 0.5 * rng.normal(size=(300, 10))
    pca_mse = vl.mse(x, vl.pca_reconstruction(x, 3))
    for steps, expected in [(2, False), (1000, True)]:
        xh, _ = vl.linear_autoencoder(x, 3, steps=steps, lr=1e-2, seed=0)
        assert ch.linear_ae_verdict(vl.mse(x, xh), vl.variance_loss(x, xh), pca_mse) is expected


def test_generated_variance_and_smoothness_turn_on_a_noisy_decoder():
    x = _images(300)
    good = ch.fig4_model_checks(_constant_decoder(_vae(), x.mean(0)), x, seed=0)  # outputs the mean image
    assert ch.decide(good["vl_gen"], good["vl_gen_se"], 0.0, above=True, z=3) is True
    assert ch.decide(good["smooth_gap"], good["smooth_gap_se"], 0.0, above=True, z=3) is True
    bad = ch.fig4_model_checks(_noisy_decoder(_vae()), x, seed=0)  # outputs that vary far more than the images
    assert ch.decide(bad["vl_gen"], bad["vl_gen_se"], 0.0, above=True, z=3) is False
    assert ch.decide(bad["smooth_gap"], bad["smooth_gap_se"], 0.0, above=True, z=3) is False


def test_table_rows_hold_in_the_papers_order_and_fail_reversed():
    def wide(order):
        rows = []
        for rule in ("learned", "running_min"):
            for t in range(4):
                for kind, base in zip(("REC", "GEN-2", "GEN-1"), order):
                    for norm in ("none", "unit", "paper"):
                        rows.append(dict(rule=rule, training=t, kind=kind, norm=norm,
                                         fid=base + 0.1 * t + (-1.0 if norm == "paper" else 0) + (0.5 if rule == "learned" else 0)))
        return ch.fid_wide(pd.DataFrame(rows))

    def rae(order):
        rows = [dict(rule=v, training=t, kind=k, norm="none", fid=b + 5 + 0.1 * t)
                for v in ("RAE-L2", "RAE-SN") for t in range(4) for k, b in zip(("REC", "GEN-2", "GEN-1"), order)]
        return ch.fid_wide(pd.DataFrame(rows))

    ok = ch.table_row_verdicts(wide((10.0, 20.0, 30.0)), rae((10.0, 20.0, 30.0)))
    assert {k: v for k, (v, _) in ok.items()} == dict.fromkeys(ok, True)
    bad = ch.table_row_verdicts(wide((30.0, 20.0, 10.0)), rae((30.0, 20.0, 10.0)))
    for key in ("dai_wipf_row_order", "ours_row_order", "rae_l2_row_order", "rae_sn_row_order"):
        assert bad[key][0] is False
    assert ch.table_row_verdicts(wide((10.0, 20.0, 30.0)).drop(index="running_min", level="rule"), rae((1, 2, 3)))["ours_row_order"][0] is None


def test_normalizations_and_the_shrunk_images():
    z = torch.randn(500, 3) * torch.tensor([0.5, 1.0, 2.0])
    assert torch.allclose(ch.normalize_codes(z, "GEN-2", "unit").std(0, unbiased=False), torch.ones(3), atol=1e-5)
    rule = {"fires": True, "target": 1.5}
    out = ch.normalize_codes(z, "GEN-2", "paper", rule)
    assert float(out.std(0, unbiased=False).mean()) == pytest.approx(1.5, rel=1e-5)
    assert torch.equal(ch.normalize_codes(z, "GEN-2", "paper", {"fires": False, "target": 9.0}), z)
    assert torch.equal(ch.normalize_codes(z, "GEN-1", "paper", rule), z * 1.5)
    x = _images(300)
    xs = ch.shrink_to_variance_loss(x, 0.3 * float(x.flatten(1).var(0, unbiased=False).mean()))
    assert vl.variance_loss(x, xs) == pytest.approx(0.3 * float(x.flatten(1).var(0, unbiased=False).mean()), rel=1e-5)
    img = ch.pixel_rescale(0.5 + 0.01 * torch.randn(100, 1, 8, 8), 0.1)
    assert float(img.flatten(1).std(0, unbiased=False).mean()) == pytest.approx(0.1, rel=0.05) and img.min() >= 0


def test_shrunk_fid_bootstrap_scores_what_the_scorer_scores():
    from vaemi.measures.fid import FeatureClassifier, FIDScorer

    torch.manual_seed(0)
    scorer = FIDScorer(FeatureClassifier((1, 8, 8), 10, width=4, feature_dim=8), _images(300, seed=1), label="test")
    out = ch.shrunk_fid(scorer, _images(300, seed=2), 0.05, _images(300, seed=1), n_boot=5, seed=0)
    assert out["fid_from_features"] == pytest.approx(out["fid"], rel=1e-6) and out["se"] > 0


def test_kl_ablation_and_the_collapse_verdict():
    x = _images(200)
    a, b = _vae(0), _vae(1)
    with torch.no_grad():
        b.encoder.net[-1].bias[3:] = -20.0  # log sigma^2 = -20: a collapsed encoder
    ab = ch.kl_ablation(a, b, x, seed=0)
    assert ab["sigma2_no_kl"] < 1e-3 < ab["sigma2_kl"] and ch.sigma_collapse_verdict(ab) is True
    assert ch.sigma_collapse_verdict(ch.kl_ablation(a, a, x, seed=0)) is False  # no collapse without a KL-free net
    assert math.isfinite(ab["mse_gap_se"]) and math.isfinite(ab["vl_gap_se"])
