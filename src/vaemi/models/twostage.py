r"""The two-stage VAE (Dai & Wipf 2019) and the latent renormalization of Asperti (2020).

Stage 1 is an image VAE with a Gaussian decoder whose variance :math:`\gamma` is learned (a trained
parameter, Dai & Wipf; or the running minimum of the batch MSE, Asperti & Trentin): see
:class:`vaemi.models.GaussianLikelihood`. Stage 2 is a VAE on stage 1's latent codes, whose own
prior draws, decoded, are new codes :math:`\hat z` for stage 1's decoder.

Samples (:func:`sample_codes`): ``REC`` (posterior means of test images), ``GEN-1`` (prior draws fed to
stage 1's decoder), ``GEN-2`` (prior → stage 2 → stage 1). :func:`renormalize` rescales a set of codes
so that every latent dimension has unit variance — the "renormalization toward the expected normal
spherical distribution" of the paper, implemented as a per-dimension multiplicative factor (the
paper gives no formula; we do not re-centre, since stage 1's aggregate posterior has mean 0).
"""
from __future__ import annotations

from typing import Sequence

import torch

from vaemi.data import ImageData, data_tensor
from vaemi.models import VAE, GaussianLikelihood, build_vae, model_device

__all__ = ["GAMMA_RULES", "SAMPLE_KINDS", "build_first_stage", "with_gamma_rule", "build_second_stage", "stage1_codes", "sample_codes", "renormalize", "decode"]


#: How stage 1 learns its decoder variance γ.
GAMMA_RULES = ("learned", "running_min")


#: The image sets of the paper's Tables 1-2.
SAMPLE_KINDS = ("REC", "GEN-1", "GEN-2")


def build_first_stage(image_shape: Sequence[int], latent_dim: int, *, gamma_rule: str, arch: str = "conv",
                      hidden: Sequence[int] = (500, 500), channels: Sequence[int] | None = None,
                      gamma0: float = 1.0) -> VAE:
    """Stage 1: an image VAE with a Gaussian decoder of variance γ learned by ``gamma_rule``.

    Parameters
    ----------
    gamma_rule : {"learned", "running_min"}
    gamma0 : float
        Starting value of γ.
    """
    model = build_vae(image_shape, latent_dim, arch=arch, hidden=hidden, channels=channels,
                      activation="relu" if arch != "mlp" else "softplus", likelihood="gaussian", variance=gamma0)
    return with_gamma_rule(model, gamma_rule, gamma0)


def with_gamma_rule(model: VAE, gamma_rule: str, gamma0: float = 1.0) -> VAE:
    """Give ``model`` (in place) a Gaussian decoder likelihood of variance γ = ``gamma0`` learned by ``gamma_rule``,
    keeping its networks: the way to train both rules from one initialization
    (:func:`vaemi.train.variants.train_variants`)."""
    if gamma_rule not in GAMMA_RULES:
        raise ValueError(f"unknown gamma_rule {gamma_rule!r}; choose one of {list(GAMMA_RULES)}")
    model.likelihood = GaussianLikelihood(gamma0, learn_variance=gamma_rule == "learned", mean_activation="sigmoid",
                                          running_min=gamma_rule == "running_min")
    return model


def build_second_stage(latent_dim: int, hidden: Sequence[int] = (1024, 1024, 1024)) -> VAE:
    """Stage 2: an MLP VAE on codes of size ``latent_dim`` (its own latent of the same size, as in Dai & Wipf),
    with a Gaussian decoder of learned variance and an unsquashed mean."""
    return build_vae((latent_dim,), latent_dim, arch="mlp", hidden=hidden, activation="relu",
                     likelihood="gaussian", learn_variance=True, mean_activation="identity")


@torch.no_grad()
def stage1_codes(model: VAE, data: ImageData | torch.Tensor, *, sample: bool = True, seed: int = 0,
                 batch_size: int = 1000) -> torch.Tensor:
    r"""Stage 1's codes of ``data``: draws :math:`z\sim Q(z|X)` (``sample=True``, the training data of stage 2,
    whose distribution is the aggregate posterior :math:`Q(z)`) or the posterior means."""
    model.eval()
    x = data_tensor(data, model_device(model))
    g = torch.Generator(x.device).manual_seed(seed)
    out = []
    for s in range(0, x.shape[0], batch_size):
        params = model.encode(x[s:s + batch_size])
        out.append(model.latent.sample(params, g) if sample else model.latent.mode(params))
    return torch.cat(out)


@torch.no_grad()
def sample_codes(stage1: VAE, kind: str, n: int, *, stage2: VAE | None = None,
                 data: ImageData | torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    """Codes for stage 1's decoder: ``"REC"`` (posterior means of the first ``n`` images of ``data``), ``"GEN-1"``
    (prior draws), ``"GEN-2"`` (prior draws decoded by ``stage2``: its decoder mean)."""
    if kind not in SAMPLE_KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {list(SAMPLE_KINDS)}")
    device = model_device(stage1)
    g = torch.Generator(device).manual_seed(seed)
    if kind == "REC":
        if data is None:
            raise ValueError("kind='REC' needs data")
        return stage1_codes(stage1, data_tensor(data, device)[:n], sample=False)
    u = stage1.latent.sample_prior(n, device=device, generator=g)
    if kind == "GEN-1":
        return u
    if stage2 is None:
        raise ValueError("kind='GEN-2' needs stage2")
    stage2.eval()
    return stage2.likelihood.mean(stage2.decode(u.to(model_device(stage2)))).to(device)


def renormalize(z: torch.Tensor) -> torch.Tensor:
    """Rescale every column of ``z`` (n, d) to unit (population) standard deviation, without re-centring."""
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"renormalize needs codes of shape (n >= 2, d), got {tuple(z.shape)}")
    return z / z.std(0, unbiased=False).clamp_min(torch.finfo(z.dtype).tiny)


@torch.no_grad()
def decode(stage1: VAE, z: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Stage 1's decoder means at codes ``z`` (images in [0, 1])."""
    stage1.eval()
    return torch.cat([stage1.likelihood.mean(stage1.decode(z[s:s + batch_size]))
                      for s in range(0, z.shape[0], batch_size)])
