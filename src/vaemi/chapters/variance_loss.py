"""The chapter on Asperti's "Variance Loss in Variational Autoencoders" (seed 002): its parameter schema, the runs
of its sections (PCA, the three cases of §3.1, Fig. 4's grid of models, the encoder checks, the two-stage VAE's
pairs and their FID) and its figures. The measures themselves are in :mod:`vaemi.measures.variance`; the stages
of the two-stage VAE in :mod:`vaemi.models.twostage`."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from vaemi.book.params import Bool, Choice, Float, Int, ListOf, require
from vaemi.chapters.common import PROFILE, Chapter
from vaemi.data import ImageData, data_tensor
from vaemi.losses import get_loss
from vaemi.measures.variance import (
    gaussian_smooth,
    kl_rate_split,
    loss_stats,
    mse,
    pca_reconstruction,
    permutation_average,
    shrink_toward_mean,
    variance_law,
    variance_loss,
)
from vaemi.models.twostage import (
    SAMPLE_KINDS,
    build_first_stage,
    build_second_stage,
    decode,
    renormalize,
    sample_codes,
    stage1_codes,
    with_gamma_rule,
)
from vaemi.train.loop import seed_everything
from vaemi.train.variants import fit, train_variants

# ------------------------------------------------------------------------------------------- parameters
IMAGE_SETS, ARCHS = ["mnist", "fashion_mnist", "cifar10", "celeba"], ["mlp", "conv", "resnet"]
SIDE = {"mnist": 28, "fashion_mnist": 28, "cifar10": 32, "celeba": 64}
widths = ListOf(Int(1, 100_000), min_len=1)

SCHEMA = {
    "profile": PROFILE, "seed": Int(0), "strict_claims": Bool(), "allow_fallback": Bool(),
    "ratios": ListOf(Float(0), min_len=2, increasing=True), "pca_n": Int(10),
    "pca_components": ListOf(Int(1, 10_000), min_len=2, increasing=True), "linear_ae_steps": Int(1),
    "case_trials": Int(10), "signal_length": Int(16), "smooth_sigma": Float(0, open_low=True),
    "datasets": ListOf(Choice(IMAGE_SETS), min_len=1), "archs": ListOf(Choice(ARCHS), min_len=1),
    "n_train": Int(100), "n_test": Int(100, 10000), "latent_dim": Int(2, 1000),
    "epochs": Int(1), "batch_size": Int(1), "lr": Float(0, 1, open_low=True), "gamma_init": Float(0, open_low=True),
    "hidden": widths, "channels": ListOf(Int(1, 4096), min_len=1),
    "overfit_hidden": widths, "overfit_n_train": Int(10), "overfit_epochs": Int(1),
    "two_stage_dataset": Choice(IMAGE_SETS), "two_stage_arch": Choice(ARCHS), "n_trainings": Int(2),
    "gamma_rules": ListOf(Choice(["learned", "running_min"]), min_len=1),
    "stage1_epochs": Int(1), "stage2_epochs": Int(1), "stage2_hidden": widths,
    "fid_n": Int(10, 50_000), "fid_features": Choice(["classifier", "inception", "auto"]), "classifier_epochs": Int(1),
    "mmd_n": Int(20),
}


def _check(p: dict) -> None:
    """Cross-parameter rules of the chapter."""
    for name, items in {"datasets": p["datasets"], "archs": p["archs"], "gamma_rules": p["gamma_rules"]}.items():
        require(len(set(items)) == len(items), f"parameter '{name}' lists an entry twice: {items}")
    require(
        p["batch_size"] <= min(p["n_train"], p["overfit_n_train"]),
        f"parameter 'batch_size' ({p['batch_size']}) must not exceed 'n_train' ({p['n_train']}) or 'overfit_n_train' ({p['overfit_n_train']})",
    )
    require(
        p["pca_components"][-1] <= min(p["pca_n"], 784),
        f"parameter 'pca_components' must not exceed 'pca_n' ({p['pca_n']}) or 784 pixels",
    )
    require(
        p["fid_n"] <= p["n_test"],
        f"parameter 'fid_n' ({p['fid_n']}) must not exceed 'n_test' ({p['n_test']}): FID compares with test images",
    )
    require(p["mmd_n"] <= p["n_test"], f"parameter 'mmd_n' ({p['mmd_n']}) must not exceed 'n_test' ({p['n_test']})")
    for ds in {*p["datasets"], p["two_stage_dataset"]}:
        require(
            SIDE[ds] % 2 ** len(p["channels"]) == 0,
            f"parameter 'channels' has {len(p['channels'])} stride-2 stages, but {ds}'s "
            f"{SIDE[ds]}-pixel side is not divisible by {2 ** len(p['channels'])}",
        )
    require(
        2 * p["signal_length"] > 8 * p["smooth_sigma"],
        f"parameter 'smooth_sigma' ({p['smooth_sigma']}) is too wide for 'signal_length' ({p['signal_length']})",
    )


chapter = Chapter("variance_loss", "Variance loss in VAEs", SCHEMA, (_check,))




# ----------------------------------------------------------------------------------- the chapter's runs
def pca_table(x, ks) -> pd.DataFrame:
    """MSE and variance loss of :func:`pca_reconstruction` for each number of components in ``ks``, with
    ``relative_gap`` = |VL - MSE| / MSE (zero up to round-off: §3 of the paper)."""
    rows = []
    for k in ks:
        x_hat = pca_reconstruction(x, k)
        rows.append(dict(k=int(k), mse=mse(x, x_hat), variance_loss=variance_loss(x, x_hat)))
    df = pd.DataFrame(rows)
    df["relative_gap"] = (df.variance_loss - df.mse).abs() / df.mse
    return df


def case_gaps(trials: int, seed: int = 0) -> dict[str, np.ndarray]:
    r"""VL - MSE on ``trials`` random instances of each case of §3.1: ``"a"`` (:func:`shrink_toward_mean`),
    ``"b"`` (one permutation), ``"c"`` (2-4 permutations, :func:`permutation_average`). Each instance is a random
    :math:`n\times m` Gaussian matrix (:math:`3\le n<40`, :math:`1\le m<6`) with Gamma-distributed column scales."""
    rng = np.random.default_rng(seed)
    gaps: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    for _ in range(trials):
        n, m = int(rng.integers(3, 40)), int(rng.integers(1, 6))
        x = rng.normal(size=(n, m)) * rng.gamma(2.0, size=m)
        made = {"a": shrink_toward_mean(x, rng.uniform(size=(n, m))),
                "b": permutation_average(x, [rng.permutation(n)]),
                "c": permutation_average(x, [rng.permutation(n) for _ in range(int(rng.integers(2, 5)))])}
        for case, x_hat in made.items():
            gaps[case].append(variance_loss(x, x_hat) - mse(x, x_hat))
    return {k: np.array(v) for k, v in gaps.items()}


def closed_random_walk(length: int, seed: int = 0) -> np.ndarray:
    """A Gaussian random walk with its linear drift removed so that it closes on itself (for circular smoothing)."""
    s = np.cumsum(np.random.default_rng(seed).normal(size=length))
    return s - np.linspace(0, 1, length) * (s[-1] - s[0])


def smoothing_gaps(trials: int, seed: int = 0) -> np.ndarray:
    """VL - MSE of :func:`gaussian_smooth` on ``trials`` random heavy-tailed signals (Student t, 3 degrees of
    freedom, 16-300 samples) and widths (0.2-20 samples): never negative (the Fourier argument of the chapter)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(trials):
        s, w = rng.standard_t(3, size=int(rng.integers(16, 300))), rng.uniform(0.2, 20)
        sm = gaussian_smooth(s, w)
        out.append(s.var() - sm.var() - np.mean((s - sm) ** 2))
    return np.array(out)


def fit_grid(data: dict, archs, *, latent_dim: int, gamma0: float, epochs: int, batch_size: int, lr: float,
             seed: int = 0, hidden=(500, 500), channels=None) -> tuple[dict, pd.DataFrame]:
    """Fig. 4: one VAE with a learned decoder variance per dataset and architecture (through the model cache),
    and its :func:`loss_stats` on the test set.

    Parameters
    ----------
    data : dict
        ``name -> (train, test)``.
    archs : sequence of {"mlp", "conv", "resnet"}

    Returns
    -------
    models : dict
        ``(dataset, arch) -> VAE``.
    table : DataFrame
        One row per model: ``dataset``, ``arch``, ``mse``, ``vl_rec``, ``vl_gen``, ``var_data``, ``gamma``.
    """

    models, rows = {}, []
    for name, (train, test) in data.items():
        for arch in archs:
            seed_everything(seed)
            init = build_first_stage(train.image_shape, latent_dim, gamma_rule="learned", arch=arch, hidden=hidden,
                                     channels=channels, gamma0=gamma0)
            m = fit(init, get_loss("elbo"), train, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                    desc=f"{name} {arch}").model
            models[(name, arch)] = m
            rows.append(dict(dataset=name, arch=arch, **loss_stats(m, test, seed=seed), gamma=float(m.likelihood.variance.detach())))
    return models, pd.DataFrame(rows)


def encoder_checks(models: dict, data: dict, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The variance law (:func:`variance_law`, summarized per model for active and inactive dimensions) and eq. 1
    (:func:`kl_rate_split`, with ``printed_line`` = the paper's middle lines as printed: rate - 2 H(Q, P)) for every
    ``(dataset, arch) -> model`` of ``models`` on ``data[dataset][1]`` (the test set)."""
    law_rows, split_rows = [], []
    for (name, arch), m in models.items():
        test = data[name][1]
        for active, g in variance_law(m, test).groupby("active"):
            dev = (g.moment - 1).abs()
            law_rows.append(dict(dataset=name, arch=arch, active=active, dims=len(g), max_abs_mean=float(g.mean_mu.abs().max()),
                                 mean_abs_moment_dev=float(dev.mean()), max_abs_moment_dev=float(dev.max())))
        split = kl_rate_split(m, test, seed=seed)
        split_rows.append(dict(dataset=name, arch=arch, **split, printed_line=split["rate"] - 2 * split["cross_entropy"]))
    return pd.DataFrame(law_rows), pd.DataFrame(split_rows)


def train_pairs(train: ImageData, *, n_trainings: int, gamma_rules: Sequence[str], latent_dim: int,
                stage1: dict, stage1_epochs: int, stage2_epochs: int, stage2_hidden: Sequence[int],
                batch_size: int, lr: float, seed: int = 0, results=None) -> dict:
    """Train ``n_trainings`` independent pairs of stages per γ rule; the rules of one training share stage 1's
    initialization and batches (:func:`vaemi.train.variants.train_variants`).

    Parameters
    ----------
    stage1 : dict
        Keyword arguments of :func:`build_first_stage` besides the rule: ``arch``, ``hidden``, ``channels``,
        ``gamma0``.
    results : vaemi.book.results.Results, optional
        Where to record each model's provenance.

    Returns
    -------
    dict
        ``(rule, training) -> (stage 1, stage 2)``; training ``r`` uses seed ``seed + r``.
    """

    elbo, gamma0 = get_loss("elbo"), stage1.get("gamma0", 1.0)
    stages = {}
    for r in range(n_trainings):
        seed_everything(seed + r)
        init = build_first_stage(train.image_shape, latent_dim, gamma_rule="learned", **stage1)
        variants = {rule: (lambda m, rule=rule: (with_gamma_rule(m, rule, gamma0), elbo)) for rule in gamma_rules}
        firsts = train_variants(init, variants, train, epochs=stage1_epochs, batch_size=batch_size, lr=lr,
                                seed=seed + r, results=results, desc=f"stage 1 #{r}")
        for rule, first in firsts.items():
            codes = stage1_codes(first.model, train, sample=True, seed=seed + r)
            seed_everything(seed + r)
            second = fit(build_second_stage(latent_dim, stage2_hidden), elbo, codes, epochs=stage2_epochs,
                         batch_size=batch_size, lr=lr, seed=seed + r, desc=f"stage 2 #{r} {rule}").model
            stages[(rule, r)] = (first.model, second)
    return stages


def evaluate_pairs(stages: dict, scorer, test: ImageData, train: ImageData, n: int, seed: int = 0):
    """FID (with ``scorer``) and variance loss of every image set of every pair, with and without
    :func:`renormalize`, and the mean per-dimension variance of every set of codes (``REC``, ``GEN-1``, ``GEN-2``,
    and ``Q(z)``: stage 2's training codes).

    Returns
    -------
    fid_df : DataFrame
        ``rule``, ``training``, ``kind``, ``normalized``, ``fid``, ``variance_loss``.
    var_df : DataFrame
        ``rule``, ``training``, ``kind``, ``code_variance``.
    """
    import pandas as pd


    real = data_tensor(test, "cpu")[:n]
    fid_rows, var_rows = [], []
    for (rule, r), (first, second) in stages.items():
        z_q = stage1_codes(first, train, sample=True, seed=seed + r)
        var_rows.append(dict(rule=rule, training=r, kind="Q(z)", code_variance=float(z_q.var(0, unbiased=False).mean())))
        for kind in SAMPLE_KINDS:
            z = sample_codes(first, kind, n, stage2=second, data=test, seed=seed + 100 + r)
            var_rows.append(dict(rule=rule, training=r, kind=kind, code_variance=float(z.var(0, unbiased=False).mean())))
            for norm in (False, True):
                images = decode(first, renormalize(z) if norm else z)
                fid_rows.append(dict(rule=rule, training=r, kind=kind, normalized=norm, fid=scorer(images),
                                     variance_loss=variance_loss(real, images)))
    return pd.DataFrame(fid_rows), pd.DataFrame(var_rows)


def paired_difference(a, b) -> dict:
    """Mean, standard error and sign count of the paired differences ``a - b`` (two aligned series)."""
    import math

    d = (a - b).astype(float)
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / math.sqrt(len(d))), "below": int((d < 0).sum()),
            "of": int(len(d))}


# ------------------------------------------------------------------------------- variance-loss chapter
def pca_figure(cloud: np.ndarray, cloud_hat: np.ndarray, table, ae: dict | None = None) -> plt.Figure:
    """Left: 2-D points, their first principal component and projections (Asperti's Fig. 2); right: MSE and
    variance loss of PCA against the number of components (``table`` from :func:`vaemi.chapters.variance_loss.pca_table`),
    with ``ae`` = ``{"k", "mse"}`` of a linear autoencoder."""

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    direction = cloud_hat[-1] - cloud_hat[0]
    direction = direction / np.linalg.norm(direction)
    line = cloud.mean(0) + np.outer([-5, 5], direction)
    ax.plot(*line.T, color="C2", lw=2, label="first principal component")
    ax.plot(*np.stack([cloud, cloud_hat], 1).transpose(2, 1, 0), color="0.6", lw=0.8)
    ax.scatter(*cloud.T, color="C3", s=18, zorder=3, label="data")
    ax.scatter(*cloud_hat.T, color="C0", s=12, zorder=3, label="projections")
    ax.set(aspect="equal", title=f"VL = {variance_loss(cloud, cloud_hat):.3f},  MSE = {mse(cloud, cloud_hat):.3f}")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(table.k, table.mse, "o-", label="MSE")
    ax.plot(table.k, table.variance_loss, "x--", ms=9, label="variance loss")
    if ae is not None:
        ax.plot([ae["k"]], [ae["mse"]], "s", color="C3", label=f"linear AE (k={ae['k']}), MSE")
    ax.set(xscale="log", xlabel="principal components kept", ylabel="per-pixel value")
    ax.legend(fontsize=8)
    return fig


def signal_figure(signal: np.ndarray, smooth: np.ndarray, label: str, title: str) -> plt.Figure:
    """A 1-D signal, its smoothed version and their common mean (Asperti's Fig. 3)."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(signal, color="C0", lw=1, label="signal")
    ax.plot(smooth, color="C2", lw=2, label=label)
    ax.axhline(signal.mean(), color="k", lw=0.6, ls=":")
    ax.set(xlabel="t", title=title)
    ax.legend(fontsize=8)
    return fig


#: Asperti's Fig. 4 colours: blue dense, red ResNet-like, green conv (orange: the overfitting dense net).
ARCH_COLORS = {"mlp": "C0", "resnet": "C3", "conv": "C2", "mlp (overfit)": "C1"}


def mse_vs_variance_loss(table, first_dataset: str) -> plt.Figure:
    """MSE of reconstructions against the variance loss of reconstructions and of generated images, one point
    per model of ``table`` (columns ``dataset``, ``arch``, ``mse``, ``vl_rec``, ``vl_gen``), the diagonal dotted."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, key, title in zip(axes, ["vl_rec", "vl_gen"], ["reconstructions", "generated images"]):
        for (arch, ds), g in table.groupby(["arch", "dataset"]):
            ax.scatter(g.mse, g[key], color=ARCH_COLORS.get(arch, "C7"), marker="o" if ds == first_dataset else "s",
                       s=45, label=f"{arch}, {ds}")
        lim = [0, 1.1 * float(max(table.mse.max(), table[key].max()))]
        ax.plot(lim, lim, "k:", lw=0.8)
        ax.set(xlim=lim, ylim=lim, xlabel="MSE of reconstructions", ylabel="variance loss", title=title, aspect="equal")
    axes[1].legend(fontsize=7, loc="lower right")
    return fig


def code_scatter(z_q: torch.Tensor, z_p: torch.Tensor, dims: Sequence[int], lim: float = 4.0) -> plt.Figure:
    """Two dimensions of codes from the aggregate posterior beside the same of prior draws."""
    i, j = dims
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharex=True, sharey=True)
    axes[0].scatter(z_q[:, i], z_q[:, j], s=3, alpha=0.5, color="C0")
    axes[0].set(title=f"Q(z): dims {i}, {j} (most active)")
    axes[1].scatter(z_p[:, i], z_p[:, j], s=3, alpha=0.5, color="C7")
    axes[1].set(title="P(z) = N(0, I)")
    for ax in axes:
        ax.set(aspect="equal", xlim=(-lim, lim), ylim=(-lim, lim))
    return fig
