r"""The five models of the VIMAE paper and what the chapter measures on them.

* ``"VAE"``: the ELBO with an L2 reconstruction (a Gaussian decoder of variance 1/2, so that
  :math:`-\log p(x\mid z) = \|x - g(z)\|_2^2` + const), a Gaussian encoder and the Normal prior;
* ``"beta_H-VAE"``, ``"beta_A-VAE"``: the same with the KL weighted by :math:`\beta_H` (Higgins et al., 10) or
  :math:`\beta_A` (Alemi et al., 0.2);
* ``"VIMAE-n"``, ``"VIMAE-l"``: a deterministic encoder fed noisy inputs, the same decoder, and
  :class:`vaemi.losses.VIMAELoss` (L2 + λ·MMD²) towards a Normal resp. Logistic prior.

**The rate of a deterministic encoder.** A deterministic code has no density given :math:`x`, so
:math:`\mathrm{KL}(q(z\mid x)\,\|\,p(z))` is infinite. What is finite is the rate of the channel the paper
trains, the encoder fed :math:`x+\nu` with the small noise :math:`\nu`: to first order
:math:`z = f(x) + J_x\nu`, so :math:`q(z\mid x)\approx\mathcal N(f(x), v\,J_xJ_x^\top)` with :math:`v` the variance
of the truncated noise. :func:`noise_channel_rate` returns :math:`\mathbb E_x\,\mathrm{KL}` of that Gaussian to the
prior. It grows like :math:`-\tfrac d2\log v` as the noise shrinks: it measures the noise as much as the model,
and is comparable between the two VIMAEs (same noise), not with the VAEs' rates.
"""
from __future__ import annotations

import math
import sys
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy import stats

from vaemi.book.params import Bool, Choice, Float, Int, ListOf, require
from vaemi.chapters.common import PROFILE, Chapter
from vaemi.data import DatasetNotFoundError, ImageData, data_tensor, load_omniglot, load_splits
from vaemi.losses import get_loss
from vaemi.maths.mmd import gaussian_rbf_mmd2_closed_form, mmd2, mmd_permutation_test
from vaemi.maths.priors import PRIORS, entropy_mc, make_prior, prior_entropy
from vaemi.measures import information as it
from vaemi.measures.entropy import kl_additive_check, knn_entropy, mixture_entropy_bounds
from vaemi.measures.fid import make_scorer, train_feature_classifier
from vaemi.measures.parzen import parzen_nll
from vaemi.measures.representation import robustness_table
from vaemi.models import VAE, DeterministicPart, GaussianPart, LatentSpace, build_vae, model_device
from vaemi.train.loop import seed_everything
from vaemi.train.variants import fit

__all__ = ["MODEL_KINDS", "ELBO_KINDS", "build_model", "train_models", "codes", "rate", "noise_channel_rate",
           "l2_reconstruction", "prior_mmd", "model_table", "truncated_noise_variance", "identity_table", "chain_check",
           "kl_additive_table", "alemi_family_check", "prior_entropy_table", "mmd_checks", "code_entropy_table",
           "robustness_drops", "beside_paper", "omniglot_splits", "parzen_table", "run_extra_dataset", "PAPER_TABLE1_NLL",
           "PAPER_TABLE2", "PAPER_TABLE3", "PAPER_TABLE4", "PAPER_TABLE5_FID"]


# ------------------------------------------------------------------------------------------- parameters
positive = Float(0, open_low=True)

SCHEMA = {
    "profile": PROFILE, "seed": Int(0), "strict_claims": Bool(), "allow_fallback": Bool(),
    "discrete_trials": Int(5), "n_x": Int(2, 200), "n_z": Int(2, 200), "entropy_mc_n": Int(100),
    "mmd_n": Int(20, 20_000), "mmd_permutations": Int(20),
    "fig1_n_train": Int(100), "fig1_epochs": Int(1), "fig1_hidden": ListOf(Int(1, 100_000), min_len=1), "fig1_seeds": Int(1, 20),
    "n_train": Int(100), "n_test": Int(100, 10_000), "latent_dim": Int(1, 1000), "epochs": Int(1),
    "channels": ListOf(Int(1, 4096), min_len=2), "batch_size": Int(2), "lr": Float(0, 1, open_low=True),
    "beta1": Float(0, 1, open_high=True), "beta_h": positive, "beta_a": positive, "lam": Float(0), "input_noise": positive,
    "fid_n": Int(10, 50_000), "fid_features": Choice(["classifier", "inception", "auto"]), "classifier_epochs": Int(1),
    "labels_per_class": Int(1), "svm_draws": Int(2), "noise_sigmas": ListOf(positive, min_len=1),
    "mask_probs": ListOf(Float(0, 1, open_low=True, open_high=True), min_len=1),
    "omniglot": Bool(), "omniglot_test_alphabet": Choice(["Balinese", "Early_Aramaic", "Greek", "Japanese_(katakana)", "Korean", "Latin", "Sanskrit", "Tagalog"]),
    "omniglot_n_train": Int(100), "omniglot_epochs": Int(1), "few_shot_draws": Int(2),
    "parzen_n": Int(10), "parzen_sigmas": ListOf(positive, min_len=1, increasing=True),
    "extra_datasets": ListOf(Choice(["cifar10", "celeba"]), min_len=0), "extra_latent_dim": Int(1, 1000), "extra_lam": Float(0),
    "extra_beta_a": positive, "extra_epochs": Int(1),
}


def _check(p: dict) -> None:
    """Cross-parameter rules of the chapter."""
    require(
        p["batch_size"] <= min(p["n_train"], p["fig1_n_train"], p["omniglot_n_train"]),
        f"parameter 'batch_size' ({p['batch_size']}) must not exceed 'n_train', 'fig1_n_train' or 'omniglot_n_train'",
    )
    require(
        p["fid_n"] <= p["n_test"],
        f"parameter 'fid_n' ({p['fid_n']}) must not exceed 'n_test' ({p['n_test']}): FID compares with test images",
    )
    require(
        len(p["channels"]) >= 3,
        f"parameter 'channels' needs at least 3 stages for 28x28 images (the decoder starts at 7x7), got {p['channels']}",
    )
    require(
        p["labels_per_class"] * 10 <= p["n_train"],
        f"parameter 'labels_per_class' ({p['labels_per_class']}) needs 10x as many 'n_train' images",
    )
    require(
        len(set(p["extra_datasets"])) == len(p["extra_datasets"]),
        f"parameter 'extra_datasets' lists a dataset twice: {p['extra_datasets']}",
    )


chapter = Chapter("vimae", "The Variational InfoMax AutoEncoder", SCHEMA, (_check,))



#: The paper's five models, in its order.
MODEL_KINDS = ("VAE", "beta_H-VAE", "beta_A-VAE", "VIMAE-n", "VIMAE-l")
#: The ELBO-based ones.
ELBO_KINDS = MODEL_KINDS[:3]

#: The paper's accuracy tables (percent), columns clean, N(0, 0.2^2), N(0, 0.4^2), B(0.2), B(0.5): Table 3 (MNIST,
#: M1+TSVM on 1,000 labels) and Table 4 (Omniglot, 5 characters of an unseen alphabet; chance 20%).
PAPER_COLUMNS = ("clean 0.0", "gaussian 0.2", "gaussian 0.4", "mask 0.2", "mask 0.5")
PAPER_TABLE3 = {"VAE": (80, 77, 70, 72, 52), "beta_H-VAE": (92, 86, 82, 91, 84), "beta_A-VAE": (93, 66, 13, 85, 65),
                "VIMAE-n": (93, 92, 86, 92, 86), "VIMAE-l": (93, 92, 88, 92, 87)}
PAPER_TABLE4 = {"VAE": (22, 22, 17, 22, 16), "beta_H-VAE": (21, 21, 22, 19, 17), "beta_A-VAE": (22, 22, 21, 21, 24),
                "VIMAE-n": (22, 23, 24, 22, 22), "VIMAE-l": (24, 23, 20, 23, 22)}
#: Table 2 (CIFAR-10, M1+TSVM): columns clean, N(0, 0.3^2), B(0.2).
PAPER_TABLE2_COLUMNS = ("clean 0.0", "gaussian 0.3", "mask 0.2")
PAPER_TABLE2 = {"VAE": (30, 25, 16), "beta_H-VAE": (29, 26, 19), "beta_A-VAE": (31, 31, 18), "VIMAE-n": (29, 28, 23),
                "VIMAE-l": (32, 34, 23)}
#: Table 1: "NLL for generated samples" on Omniglot.
PAPER_TABLE1_NLL = {"VAE": 1224, "beta_H-VAE": 1254, "beta_A-VAE": 1228, "VIMAE-n": 1190, "VIMAE-l": 1223}
#: Table 5: FID of 10^4 samples (Inception), CelebA and CIFAR-10 (beta_H-VAE "does not converge" on CelebA).
PAPER_TABLE5_FID = {"celeba": {"VAE": 82, "beta_A-VAE": 89, "VIMAE-l": 56, "VIMAE-n": 55},
                    "cifar10": {"VAE": 168, "beta_H-VAE": 262, "beta_A-VAE": 174, "VIMAE-l": 103, "VIMAE-n": 104}}


def _check_kind(kind: str) -> str:
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model {kind!r}; choose one of {list(MODEL_KINDS)}")
    return kind


def build_model(kind: str, image_shape: Sequence[int], latent_dim: int, *, arch: str = "dcgan",
                hidden: Sequence[int] = (256, 256, 256), channels: Sequence[int] | None = None,
                beta_h: float = 10.0, beta_a: float = 0.2, lam: float = 10.0, input_noise: float = 0.01):
    """A freshly initialized model of ``kind`` (see the module docstring) and its loss.

    Parameters
    ----------
    kind : one of :data:`MODEL_KINDS`
    arch : {"mlp", "dcgan"}
        ``"mlp"``: ReLU layers of widths ``hidden`` (the paper's Fig. 1: 3 x 256); ``"dcgan"``: the WAE nets with
        ``channels`` (the paper's: 128, 256, 512, 1024).

    Returns
    -------
    model : VAE
    loss : BaseLoss
    """
    _check_kind(kind)
    vimae = kind.startswith("VIMAE")
    part = (DeterministicPart(latent_dim, prior="logistic" if kind == "VIMAE-l" else "normal") if vimae
            else GaussianPart(latent_dim))
    model = build_vae(image_shape, LatentSpace([part]), arch=arch, hidden=hidden, channels=channels,
                      activation="relu", likelihood="gaussian", variance=0.5)
    if vimae:
        return model, get_loss("vimae", lam=lam, input_noise=input_noise)
    return model, get_loss("elbo", beta={"VAE": 1.0, "beta_H-VAE": beta_h, "beta_A-VAE": beta_a}[kind])


def train_models(kinds: Sequence[str], train: ImageData, *, latent_dim: int, epochs: int, batch_size: int = 100,
                 lr: float = 1e-3, beta1: float = 0.5, seed: int = 0, results=None, desc: str = "",
                 **model_kw) -> dict[str, VAE]:
    """Train one model of each kind (each initialized from ``seed``) through the model cache, with Adam
    (``lr``, :math:`\\beta_1` = ``beta1``, :math:`\\beta_2` = 0.999) as in the paper; ``model_kw`` go to
    :func:`build_model`. Returns ``kind -> trained model`` (in eval mode)."""

    out = {}
    for kind in kinds:
        seed_everything(seed)
        model, loss = build_model(kind, train.image_shape, latent_dim, **model_kw)
        label = f"{desc} {kind}".strip()
        trained = fit(model, loss, train, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                      betas=(beta1, 0.999), desc=label)
        if results is not None:
            results.meta.setdefault("models", {})[label] = trained.status
        out[kind] = trained.model.eval()
    return out


@torch.no_grad()
def codes(model: VAE, data: ImageData | torch.Tensor, *, sample: bool = True, seed: int = 0,
          batch_size: int = 1000) -> torch.Tensor:
    """Codes of ``data`` (CPU): draws :math:`z\\sim q(z\\mid x)` (``sample``; one per image, so that together they
    sample the aggregate posterior :math:`q(z)`) or the posterior means; a deterministic encoder gives its code."""
    model.eval()
    dev = model_device(model)
    x = data_tensor(data, dev)
    g = torch.Generator(device=dev).manual_seed(seed)
    out = []
    for s in range(0, x.shape[0], batch_size):
        params = model.encode(x[s:s + batch_size])
        out.append(model.latent.sample(params, g) if sample else model.latent.mode(params))
    return torch.cat(out).cpu()


def truncated_noise_variance(std: float) -> float:
    """Variance of a Gaussian of standard deviation ``std`` truncated to ±2 ``std``
    (:func:`vaemi.losses.truncated_noise`)."""
    return float(stats.truncnorm(-2, 2, scale=std).var())


def _prior_cross_entropy_diag(part, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """:math:`-\\mathbb E_{\\mathcal N(m, \\mathrm{diag}\\,v)}\\log p(z)` per row (the priors factorize), by the Gauss-Hermite
    quadrature of :class:`vaemi.models.GaussianPart`."""
    probe = GaussianPart(part.size, prior=part.prior)
    kl = probe.kl(torch.cat([mean, var.log()], -1))
    return (kl + 0.5 * (math.log(2 * math.pi * math.e) + var.log())).sum(-1)


def noise_channel_rate(model: VAE, data: ImageData | torch.Tensor, input_noise: float, *,
                       batch_size: int = 250) -> dict[str, float]:
    r"""Rate of a deterministic encoder's noise channel (module docstring): the mean over ``data`` of
    :math:`\mathrm{KL}(\mathcal N(f(x), vJ_xJ_x^\top)\,\|\,p(z)) = -h(\mathcal N(f(x), vJ_xJ_x^\top))
    - \mathbb E\log p(z)`, the Jacobian :math:`J_x` by one backward pass per code dimension, the cross-entropy
    by quadrature on the marginals (the priors factorize).

    Returns
    -------
    dict
        ``rate`` (nats), ``se`` (standard error over images), ``log_det_mean`` (mean :math:`\log\det` of the code
        covariance).
    """
    part = model.latent.parts[0]
    if len(model.latent.parts) != 1 or part.kind != "deterministic":
        raise ValueError("noise_channel_rate needs a model with one deterministic latent part")
    if not input_noise > 0:
        raise ValueError(f"input_noise must be > 0, got {input_noise}")
    model.eval()
    dev = model_device(model)
    x_all, v, d = data_tensor(data, dev), truncated_noise_variance(input_noise), part.size
    rates, logdets = [], []
    for s in range(0, x_all.shape[0], batch_size):
        x = x_all[s:s + batch_size].clone().requires_grad_(True)
        z = model.latent.mode(model.encode(x))
        jac = torch.stack([torch.autograd.grad(z[:, i].sum(), x, retain_graph=i < d - 1)[0].flatten(1)
                           for i in range(d)], 1).double()  # (B, d, D)
        cov = v * jac @ jac.transpose(1, 2) + 1e-12 * torch.eye(d, dtype=torch.float64, device=dev)
        logdet = torch.linalg.slogdet(cov)[1]
        entropy = 0.5 * (d * math.log(2 * math.pi * math.e) + logdet)
        cross = _prior_cross_entropy_diag(part, z.detach().double(), torch.diagonal(cov, dim1=1, dim2=2))
        rates.append((cross - entropy).cpu())
        logdets.append(logdet.cpu())
    r = torch.cat(rates)
    return {"rate": float(r.mean()), "se": float(r.std() / math.sqrt(len(r))), "log_det_mean": float(torch.cat(logdets).mean())}


@torch.no_grad()
def rate(model: VAE, data: ImageData | torch.Tensor, input_noise: float = 0.01) -> float:
    """:math:`\\mathbb E_x\\mathrm{KL}(q(z\\mid x)\\,\\|\\,p(z))` in nats: closed form (or quadrature) for a Gaussian
    encoder, :func:`noise_channel_rate` at ``input_noise`` for a deterministic one."""
    if model.latent.parts[0].kind == "deterministic":
        with torch.enable_grad():
            return noise_channel_rate(model, data, input_noise)["rate"]
    model.eval()
    x = data_tensor(data, model_device(model))
    return float(sum(k.sum(-1) for k in model.latent.kl(model.encode(x)).values()).mean())


@torch.no_grad()
def l2_reconstruction(model: VAE, data: ImageData | torch.Tensor) -> float:
    """Mean over images of :math:`\\|x - g(\\text{code of }x)\\|_2^2` (posterior mean / deterministic code), the
    number in the paper's captions."""
    x = data_tensor(data, model_device(model))
    return float((x - model.reconstruct(x)).pow(2).flatten(1).sum(1).mean())


@torch.no_grad()
def prior_mmd(model: VAE, data: ImageData | torch.Tensor, *, seed: int = 0) -> float:
    """MMD² (WAE's IMQ kernel, unbiased) between codes :math:`z\\sim q(z)` of ``data`` and as many prior draws
    (the number under each panel of the paper's Fig. 1)."""
    z = codes(model, data, seed=seed)
    zp = model.latent.parts[0].sample_prior(len(z), generator=torch.Generator().manual_seed(seed + 1))
    return float(mmd2(z.double(), zp.double()))


def model_table(models: dict[str, VAE], test: ImageData, *, input_noise: float, seed: int = 0) -> pd.DataFrame:
    """One row per model: ``model``, ``l2`` (:func:`l2_reconstruction`), ``rate`` (:func:`rate`), ``mmd``
    (:func:`prior_mmd`), ``prior``, ``encoder`` (gaussian / deterministic)."""
    rows = []
    for kind, m in models.items():
        part = m.latent.parts[0]
        rows.append(dict(model=kind, l2=l2_reconstruction(m, test), rate=rate(m, test, input_noise),
                         mmd=prior_mmd(m, test, seed=seed), prior=part.prior, encoder=part.kind))
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ exact identities (finite joints)
def identity_table(trials: int, *, n_x: int, n_z: int, lam: float, seed: int = 0) -> pd.DataFrame:
    """Largest absolute residual of each identity of :func:`vaemi.measures.information.information_terms` over ``trials``
    random finite joints (:func:`vaemi.measures.information.random_model`), with ``holds_in_general`` False for the two
    printed forms that need an assumption (eqs. 15 and 8 as the paper prints them)."""

    rng = np.random.default_rng(seed)
    names = {"res_rate_split": ("rate split (§2.3, thesis eq. 4.23)", True), "res_eq5": ("eq. 5", True),
             "res_eq14": ("eq. 14", True), "res_eq15_general": ("eq. 15, general form", True),
             "res_eq8_general": ("eq. 8, general form", True), "res_eq15_printed": ("eq. 15 as printed", False),
             "res_eq8_printed": ("eq. 8 as printed", False)}
    worst = dict.fromkeys(names, 0.0)
    for _ in range(trials):
        terms = it.random_model(n_x, n_z, rng).terms(lam=lam)
        for k in names:
            worst[k] = max(worst[k], abs(terms[k]))
    return pd.DataFrame([dict(identity=label, holds_in_general=general, max_abs_residual=worst[k])
                         for k, (label, general) in names.items()])


def chain_check(trials: int, *, n_x: int, n_z: int, seed: int = 0) -> pd.DataFrame:
    """The appendix's chain on random finite joints: per trial ``I_q``, ``I_theta``, ``I_theta_phi`` of a generic
    model, ``iq_ge_itp`` (:math:`I_q\\ge I_{\\theta,\\phi}`), ``itheta_ge_iq`` and ``optimum_gap`` = the largest
    difference among the three informations of a model with :math:`q(z)=p(z)` and :math:`p_\\theta(x\\mid z) =
    q(x\\mid z)`."""

    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(trials):
        t = it.random_model(n_x, n_z, rng).terms()
        o = it.random_model(n_x, n_z, rng, matched=True, decoder="posterior").terms()
        infos = [o["I_q"], o["I_theta"], o["I_theta_phi"]]
        rows.append(dict(I_q=t["I_q"], I_theta=t["I_theta"], I_theta_phi=t["I_theta_phi"],
                         iq_ge_itp=t["I_q"] >= t["I_theta_phi"] - 1e-12, itheta_ge_iq=t["I_theta"] >= t["I_q"] - 1e-12,
                         optimum_gap=max(infos) - min(infos)))
    return pd.DataFrame(rows)


def kl_additive_table(d: int, *, n_samples: int, seed: int = 0) -> pd.DataFrame:
    """Eq. 3 on a random factorized Gaussian posterior of ``d`` dimensions, for both priors
    (:func:`vaemi.measures.entropy.kl_additive_check`): the sum of the per-dimension KLs (quadrature) beside the joint KL,
    in closed form where there is one (Normal) and by Monte Carlo (``n_samples`` draws), with ``z`` = the Monte Carlo
    estimate's distance to the sum in standard errors."""

    rng = np.random.default_rng(seed)
    mu, sigma = rng.normal(size=d), rng.uniform(0.3, 1.5, size=d)
    rows = []
    for prior in ("normal", "logistic"):
        r = kl_additive_check(mu, sigma, prior=prior, n_samples=n_samples, seed=seed)
        rows.append(dict(prior=prior, d=int(d), sum_per_dim=r["sum_per_dim"], joint_closed_form=r["joint_closed_form"],
                         joint_mc=r["joint_mc"], joint_mc_se=r["joint_mc_se"],
                         z=abs(r["joint_mc"] - r["sum_per_dim"]) / r["joint_mc_se"]))
    return pd.DataFrame(rows)


def alemi_family_check(model: VAE, x: torch.Tensor, *, beta: float, seed: int = 0) -> dict[str, float]:
    r"""Eq. 4, :math:`\mathbb E\log p(x\mid z) - \beta\lvert R_0-\text{rate}\rvert`, is the capacity form of
    :class:`vaemi.losses.ELBOLoss` (``capacity`` = :math:`R_0`, ``gamma`` = β). On one minibatch (one shared
    reparameterized draw, seeded) return the absolute differences: ``beta_vae`` between eq. 4 at :math:`R_0=0` and
    the β-VAE loss; ``rate_reward`` between eq. 4 at an :math:`R_0` above the batch rate and
    rec − β·rate + β·R₀ (the rate is then *rewarded*, as by InfoVAE with a negative information weight)."""
    def loss(**kw):
        torch.manual_seed(seed)
        value, logs = get_loss("elbo", **kw)(model, x, step=1)
        return float(value.detach()), float(logs["rec"]), float(logs["kl"])

    was = model.training
    model.eval()
    try:
        beta_vae, rec, kl = loss(beta=beta)
        at_zero = loss(capacity=0.0, gamma=beta, capacity_steps=1)[0]
        r0 = 2 * kl + 1
        above = loss(capacity=r0, gamma=beta, capacity_steps=1)[0]
    finally:
        model.train(was)
    return {"beta_vae": abs(at_zero - beta_vae), "rate_reward": abs(above - (rec - beta * kl + beta * r0)),
            "rate": kl, "R0": r0}


def prior_entropy_table(dims: Sequence[int], *, n: int, seed: int = 0) -> pd.DataFrame:
    """Closed-form entropy of both priors (:func:`vaemi.maths.priors.prior_entropy`) beside a Monte Carlo estimate
    (:func:`vaemi.maths.priors.entropy_mc`, ``n`` draws, float64) for each dimension in ``dims``."""

    rows = []
    for d in dims:
        for name in PRIORS:
            mc, se = entropy_mc(make_prior(name, d, dtype=torch.float64), n, seed=seed)
            rows.append(dict(d=int(d), prior=name, closed_form=prior_entropy(name, d), mc=mc, se=se))
    return pd.DataFrame(rows)


def mmd_checks(*, n: int, d: int = 2, permutations: int = 200, repeats: int = 20, seed: int = 0) -> dict[str, float]:
    """Three checks of the MMD estimator (:mod:`vaemi.maths.mmd`): ``same_*``: IMQ MMD² of two samples of
    :math:`\\mathcal N(0,I_d)`, mean and standard error over ``repeats`` pairs of ``n``; ``gauss_*``: RBF (unit width)
    MMD² between :math:`\\mathcal N(0,I)` and :math:`\\mathcal N(0.5\\cdot\\mathbf 1, I)`, estimate vs closed form;
    ``nl_*``: permutation test of ``n`` Normal against ``n`` Logistic draws (IMQ)."""

    g = torch.Generator().manual_seed(seed)
    same = torch.stack([mmd2(torch.randn(n, d, generator=g, dtype=torch.float64),
                             torch.randn(n, d, generator=g, dtype=torch.float64)) for _ in range(repeats)])
    shift = torch.full((d,), 0.5, dtype=torch.float64)
    gauss = torch.stack([mmd2(torch.randn(n, d, generator=g, dtype=torch.float64),
                              torch.randn(n, d, generator=g, dtype=torch.float64) + shift, kernel="rbf", bandwidth=1.0)
                         for _ in range(repeats)])
    eye = torch.eye(d, dtype=torch.float64)
    exact = gaussian_rbf_mmd2_closed_form(torch.zeros(d, dtype=torch.float64), eye, shift, eye, 1.0)
    torch.manual_seed(seed)
    zn, zl = (make_prior(name, d, dtype=torch.float64).sample((n,)) for name in ("normal", "logistic"))
    stat, p = mmd_permutation_test(zn, zl, n_permutations=permutations, seed=seed)
    root = math.sqrt(repeats)
    return {"same_mean": float(same.mean()), "same_se": float(same.std() / root), "gauss_mean": float(gauss.mean()),
            "gauss_se": float(gauss.std() / root), "gauss_exact": float(exact), "nl_mmd2": float(stat), "nl_p": float(p)}


# ------------------------------------------------------------------------------------------- Fig. 1
@torch.no_grad()
def code_entropy_table(models: dict[str, VAE], test: ImageData, *, seed: int = 0) -> pd.DataFrame:
    """Per model: ``mmd`` (:func:`prior_mmd`), the prior's entropy ``h_prior``, and the entropy of the aggregate
    posterior on ``test``: for a Gaussian encoder the Kolchinsky-Tracey bounds ``h_lower``, ``h_upper`` of the
    mixture (:func:`vaemi.measures.entropy.mixture_entropy_bounds`); for every encoder ``h_knn``, the Kozachenko-Leonenko
    estimate on codes (:func:`vaemi.measures.entropy.knn_entropy`)."""

    rows = []
    for kind, m in models.items():
        part = m.latent.parts[0]
        x = data_tensor(test, model_device(m))
        lo = hi = float("nan")
        if part.kind == "gaussian":
            mu, logvar = part.split(m.encode(x)[part.name])
            lo, hi = mixture_entropy_bounds(mu.double().cpu().numpy(), logvar.exp().double().cpu().numpy())
        rows.append(dict(model=kind, mmd=prior_mmd(m, test, seed=seed), h_prior=part.prior_entropy(), h_lower=float(lo),
                         h_upper=float(hi), h_knn=float(knn_entropy(codes(m, test, seed=seed).double().numpy()))))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------- robustness
def robustness_drops(table: pd.DataFrame, worst: tuple[str, float]) -> pd.DataFrame:
    """Accuracy lost from clean inputs to the corruption ``worst`` = (kind, level), per model, from a
    :func:`vaemi.measures.representation.robustness_table`: ``drop`` (points) and its standard error ``se`` (the two means'
    standard errors over label draws, added in quadrature)."""
    def pick(kind, level):
        rows = table[(table.kind == kind) & np.isclose(table.level, level)].set_index("model")
        if rows.empty:
            raise ValueError(f"no rows for corruption {kind} {level} in the table")
        return rows

    clean, noisy = pick("clean", 0.0), pick(*worst)
    se = lambda r: r["std"] / np.sqrt(r["draws"])
    return pd.DataFrame({"drop": clean["mean"] - noisy["mean"], "se": np.sqrt(se(clean) ** 2 + se(noisy) ** 2)})


# ------------------------------------------------------------------------------------------- Omniglot
def beside_paper(table: pd.DataFrame, paper: dict[str, Sequence[float]],
                 columns: Sequence[str] = PAPER_COLUMNS) -> pd.DataFrame:
    """Mean accuracies of :func:`vaemi.measures.representation.robustness_table` (or ``few_shot_accuracy``) as one row per model
    and one column per corruption (``"<kind> <level>"``), followed by the paper's rows (``"paper <model>"``, with
    ``columns``, default :data:`PAPER_COLUMNS`); a corruption only one side ran is NaN on the other."""
    ours = (table.assign(col=table["kind"] + " " + table["level"].astype(float).astype(str))
            .pivot(index="model", columns="col", values="mean"))
    ours = ours.loc[[k for k in MODEL_KINDS if k in ours.index]]
    theirs = pd.DataFrame.from_dict(dict(paper), orient="index", columns=list(columns)).rename(index="paper {}".format)
    cols = list(dict.fromkeys([*ours.columns, *columns]))
    return pd.concat([ours, theirs])[cols].rename_axis(columns=None)


def omniglot_splits(enabled: bool, *, test_alphabet: str, n_train: int, seed: int = 0,
                    rotations: Sequence[int] = (0, 90, 180, 270)) -> dict[str, ImageData] | None:
    """Omniglot's background alphabets with their rotated copies: ``train`` (every alphabet but ``test_alphabet``,
    a random ``n_train`` of its images) and ``held_out`` (``test_alphabet``, all its images). ``None`` (with a
    message saying which files to add) when ``enabled`` is False or the files are missing."""

    if not enabled:
        return None
    try:
        full = load_omniglot("background", rotations=rotations)
    except DatasetNotFoundError as e:
        print(f"Omniglot section skipped: {e}", file=sys.stderr)  # stderr: the message names this machine's paths
        return None
    if test_alphabet not in full.group_names:
        raise ValueError(f"omniglot_test_alphabet {test_alphabet!r} is not among {list(full.group_names)}")
    others = [a for a in full.group_names if a != test_alphabet]
    return {"train": load_omniglot("background", alphabets=others, rotations=rotations).subset(n_train, seed=seed),
            "held_out": load_omniglot("background", alphabets=[test_alphabet], rotations=rotations)}


@torch.no_grad()
def parzen_table(models: dict[str, VAE], held_out: ImageData, *, n: int, sigmas: Sequence[float],
                 seed: int = 0) -> pd.DataFrame:
    """Parzen-window NLL (nats per image, :func:`vaemi.measures.parzen.parzen_nll`) of ``n`` samples of each model,
    the width chosen on half of ``held_out`` and the NLL reported on the other half."""

    perm = torch.randperm(len(held_out), generator=torch.Generator().manual_seed(seed))
    half = len(perm) // 2
    valid, test = held_out.x[perm[:half]], held_out.x[perm[half:]]
    rows = []
    for kind, m in models.items():
        samples = m.generate(n, generator=torch.Generator(device=model_device(m)).manual_seed(seed)).cpu()
        out = parzen_nll(samples, valid, test, sigmas)
        rows.append(dict(model=kind, nll=out["nll"], se=out["se"], sigma=out["sigma"]))
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ CIFAR-10 / CelebA
def run_extra_dataset(name: str, *, seed: int, allow_fallback: bool, latent_dim: int, lam: float, beta_h: float,
                      beta_a: float, epochs: int, channels, fid_n: int, fid_features: str, results=None,
                      n_train: int | None = None, n_test: int = 10_000, batch_size: int = 100, labels_per_class: int = 100,
                      svm_draws: int = 5) -> dict[str, pd.DataFrame] | None:
    """The paper's Tables 2 and 5 on ``name`` (``"cifar10"`` or ``"celeba"``): the five models with the WAE nets,
    :func:`model_table`, the FID of ``fid_n`` samples (``fid_features``, see :func:`vaemi.measures.fid.make_scorer`) and the
    paper's FID (``paper_fid``, Table 5); on CIFAR-10 also Table 2, the SVM accuracy on the codes (``labels_per_class``
    labelled images per class, ``svm_draws`` draws; :func:`vaemi.measures.representation.robustness_table`) for clean inputs,
    N(0, 0.3²) noise and B(0.2) masks, beside the paper's rows (:func:`beside_paper`).

    Returns
    -------
    dict or None
        ``"models"``: one row per model; ``"table2"`` (CIFAR-10 only). ``None`` (after printing the data module's
        message, which says which files to put where) when the dataset's files are missing, so that a chapter
        asking for it still builds.
    """

    splits = load_splits(name, n_train=n_train, n_test=n_test, seed=seed, allow_fallback=allow_fallback, optional=True)
    if splits is None:  # the files are missing: the data message is printed (path-free on the page)
        return None
    train, test = splits
    models = train_models(MODEL_KINDS, train, latent_dim=latent_dim, epochs=epochs, batch_size=batch_size, seed=seed,
                          results=results, desc=name, arch="dcgan", channels=channels, beta_h=beta_h, beta_a=beta_a,
                          lam=lam)
    table = model_table(models, test, input_noise=0.01, seed=seed)
    clf = train_feature_classifier(train, test, seed=seed) if fid_features != "inception" else None
    scorer = make_scorer(fid_features, test.x[:fid_n], classifier=clf)
    g = torch.Generator(device=model_device(models[MODEL_KINDS[0]])).manual_seed(seed)
    table["fid"] = [scorer(models[k].generate(fid_n, generator=g)) for k in table.model]
    table["fid_features"] = scorer.label
    table["paper_fid"] = table.model.map(PAPER_TABLE5_FID[name])
    out = {"models": table.set_index("model")}
    if name == "cifar10":
        corruptions = [("clean", 0.0), ("gaussian", 0.3), ("mask", 0.2)]
        robust = robustness_table(models, train, test, corruptions=corruptions, n_per_class=labels_per_class,
                                  draws=svm_draws, seed=seed)
        out["table2"] = beside_paper(robust, PAPER_TABLE2, PAPER_TABLE2_COLUMNS)
    return out


# ------------------------------------------------------------------------------------- VIMAE chapter
def code_panels(codes: dict, prior_draws: dict, *, labels=None, titles: dict | None = None, lim: float = 4.0) -> plt.Figure:
    """One panel per model: 2-D codes of test images (coloured by ``labels``) over draws of the model's prior
    (grey), as the VIMAE paper's Fig. 1."""
    fig, axes = plt.subplots(1, len(codes), figsize=(3.1 * len(codes), 3.4), sharex=True, sharey=True, squeeze=False)
    for ax, (name, z) in zip(axes[0], codes.items()):
        zp = prior_draws[name]
        ax.scatter(zp[:, 0], zp[:, 1], s=2, color="0.75", alpha=0.5, rasterized=True)
        ax.scatter(z[:, 0], z[:, 1], s=2, c=None if labels is None else labels, cmap="tab10", alpha=0.6, rasterized=True)
        ax.set(title=(titles or {}).get(name, name), aspect="equal", xlim=(-lim, lim), ylim=(-lim, lim))
        ax.title.set_fontsize(9)
    fig.tight_layout()
    return fig
