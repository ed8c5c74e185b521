r"""Mutual information between a part of the code and the data: the variational lower bound of
Agakov & Barber (the InfoGAN bound), an upper bound by the rate, and the infoVAE objective.

For a latent part :math:`c` with prior :math:`p(c)` and any conditional :math:`q(c\mid x)`,

.. math::
    I(c; x) = H(c) - H(c\mid x) \;\ge\; \mathbb E_{c\sim p(c),\,x\sim p(x\mid c)}\big[\log q(c\mid x)\big] + H(c),

with equality iff :math:`q(c\mid x)` is the true posterior (the gap is
:math:`\mathbb E_x\mathrm{KL}(p(c\mid x)\,\|\,q(c\mid x))`). Ducau & Trénous recycle the encoder as
:math:`q`; the thesis chapter passes a separate network :math:`Q` (one implementation, parameterized).

For the encoder's own joint :math:`q(c\mid x)p_\text{data}(x)`, the rate is an upper bound:
:math:`I_q(c;x) = \mathbb E_x\mathrm{KL}(q(c\mid x)\,\|\,p(c)) - \mathrm{KL}(q(c)\,\|\,p(c)) \le
\mathbb E_x\mathrm{KL}(q(c\mid x)\,\|\,p(c))`.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .data import ImageData
from .losses import ELBOLoss, register_loss
from .models import VAE, BernoulliLikelihood

__all__ = ["generate_and_reencode", "mi_lower_bound", "mi_upper_bound", "InfoVAELoss", "lemma1_sides"]


def _parts(part: str | list[str]) -> list[str]:
    return [part] if isinstance(part, str) else list(part)


def generate_and_reencode(model: VAE, n: int, part: str | list[str], *, x_tilde: str = "mean", temperature: float = 0.5,
                          q: Callable[[torch.Tensor], torch.Tensor] | None = None,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Steps 4-6 of the infoVAE algorithm: draw the whole code from the prior, decode, make
    :math:`\tilde x`, re-encode, and return :math:`\log q(\tilde c\mid\tilde x)` per sample, shape ``(n,)``.

    Parameters
    ----------
    part : name (or list of names) of the latent part(s) :math:`c` whose information is measured; for a
        list, :math:`\log q` is summed over the parts (the encoder's posterior factorizes over parts).
    x_tilde : {"mean", "relaxed", "sample"}
        How :math:`\tilde x\sim p(x\mid\tilde z,\tilde c)` is made: the decoder mean (deterministic, so
        gradients reach the decoder), a relaxed Bernoulli sample (``temperature``; differentiable), or an
        exact sample (no gradient through :math:`\tilde x`; for evaluation).
    q : callable, optional
        Maps :math:`\tilde x` to the parameters of :math:`q(c\mid\tilde x)` for that part; default the
        encoder itself (recycled, as in Ducau & Trénous).
    """
    device = next(model.parameters()).device
    code = model.latent.sample_prior(n, device=device, generator=generator)
    out = model.decode(code)
    if x_tilde == "mean":
        x = model.likelihood.mean(out)
    elif x_tilde == "relaxed":
        t = torch.tensor(temperature, device=device)
        x = torch.distributions.RelaxedBernoulli(t, logits=out).rsample()
    elif x_tilde == "sample":
        if isinstance(model.likelihood, BernoulliLikelihood):  # draw from the given generator, not the global RNG
            x = torch.bernoulli(model.likelihood.mean(out), generator=generator)
        else:
            x = model.likelihood.sample(out)
    else:
        raise ValueError(f"x_tilde must be 'mean', 'relaxed' or 'sample', got {x_tilde!r}")
    codes = model.latent.split_code(code)
    if q is not None:
        if not isinstance(part, str):
            raise ValueError("an auxiliary q serves a single latent part")
        return model.latent[part].log_prob(q(x), codes[part])
    params = model.encode(x)
    return sum(model.latent[p].log_prob(params[p], codes[p]) for p in _parts(part))


def mi_lower_bound(model: VAE, part: str | list[str], n: int = 10_000, *, x_tilde: str = "mean", batch_size: int = 1000,
                   q: Callable[[torch.Tensor], torch.Tensor] | None = None, seed: int = 0) -> tuple[float, float]:
    r"""Monte Carlo estimate of :math:`\mathbb E[\log q(c\mid x)] + H(c)` and its standard error (nats)."""
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    vals = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            vals.append(generate_and_reencode(model, min(batch_size, n - start), part, x_tilde=x_tilde, q=q,
                                              generator=g).double().cpu())
    v = torch.cat(vals)
    h = sum(model.latent[p].prior_entropy() for p in _parts(part))
    return float(v.mean()) + h, float(v.std() / math.sqrt(len(v)))


def mi_upper_bound(model: VAE, data: ImageData | torch.Tensor, part: str | list[str], batch_size: int = 1000) -> float:
    r""":math:`\mathbb E_x\,\mathrm{KL}(q(c\mid x)\,\|\,p(c))`, the rate of the part (nats)."""
    model.eval()
    device = next(model.parameters()).device
    x = (data.x if isinstance(data, ImageData) else data).to(device)
    total = 0.0
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            params = model.encode(x[start:start + batch_size])
            total += sum(float(model.latent[p].kl(params[p]).sum()) for p in _parts(part))
    return total / x.shape[0]


@register_loss("infovae")
class InfoVAELoss(ELBOLoss):
    r"""The infoVAE objective of Ducau & Trénous: negative ELBO :math:`-\lambda\,\hat I(c; x)`.

    Per minibatch (their section 2.1.2): steps 1-3 are the ELBO on the data; steps 4-6 draw
    :math:`(\tilde z,\tilde c)` from the prior (as many as the batch), decode, re-encode the generated
    :math:`\tilde x` with the same encoder and add :math:`-\lambda\,(\mathbb E\log q(\tilde c\mid\tilde x) + H(c))`.

    Parameters
    ----------
    lam : float
        :math:`\lambda \ge 0` (0 gives the plain VAE; the seed never states its value).
    part : str
        Latent part :math:`c` carrying the MI term.
    x_tilde : {"mean", "relaxed"}
        How :math:`\tilde x` is made differentiable (see :func:`generate_and_reencode`).
    beta : float
        Weight of the KL term, as in :class:`ELBOLoss`.
    """

    def __init__(self, lam: float = 1.0, part: str = "c", x_tilde: str = "mean", temperature: float = 0.5,
                 beta: float = 1.0):
        super().__init__(beta=beta)
        if lam < 0:
            raise ValueError(f"lambda must be >= 0, got {lam}")
        if x_tilde not in ("mean", "relaxed"):
            raise ValueError(f"x_tilde must be 'mean' or 'relaxed' for training, got {x_tilde!r}")
        self.lam, self.part, self.x_tilde, self.temperature = lam, part, x_tilde, temperature

    def __call__(self, model, x, step=0):
        loss, logs = super().__call__(model, x, step)
        if self.lam == 0:
            return loss, logs
        logq = generate_and_reencode(model, x.shape[0], self.part, x_tilde=self.x_tilde,
                                     temperature=self.temperature)
        mi = logq.mean() + model.latent[self.part].prior_entropy()
        loss = loss - self.lam * mi
        logs["loss"] = loss.detach()
        logs[f"mi_lb_{self.part}"] = mi.detach()
        return loss, logs


def lemma1_sides(p_z: np.ndarray, p_x_given_z: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    r"""Both sides of Lemma 1 (InfoGAN), computed exactly on finite spaces:
    :math:`\mathbb E_{z, x\mid z}[f(x,z)]` and :math:`\mathbb E_{z, x\mid z, z'\sim p(z\mid x)}[f(x,z')]`.

    Parameters
    ----------
    p_z : (Z,) prior
    p_x_given_z : (Z, X) conditional, rows sum to one
    f : (X, Z) any function of (x, z)
    """
    p_z, pxz, f = np.asarray(p_z, float), np.asarray(p_x_given_z, float), np.asarray(f, float)
    joint = p_z[:, None] * pxz                     # p(z, x), shape (Z, X)
    lhs = float((joint * f.T).sum())
    p_x = joint.sum(0)                             # (X,)
    post = joint / p_x                             # p(z | x), columns sum to one, shape (Z, X)
    inner = (post * f.T).sum(0)                    # E_{z' ~ p(z'|x)} f(x, z'), shape (X,)
    rhs = float((p_x * inner).sum())
    return lhs, rhs


@torch.no_grad()
def reconstruction_probability(model: VAE, x: torch.Tensor, k: int = 100, seed: int = 0) -> dict[str, float]:
    r"""Section 4 of Ducau & Trénous on a trained model, by importance sampling with :math:`q(z\mid x)`.

    Returns per-image averages (nats) of

    * ``log_px``: :math:`\log p(x)` (the IWAE estimate with ``k`` samples),
    * ``elbo``: :math:`\mathbb E_q\log\frac{p(x,z)}{q(z|x)}`,
    * ``rec_term``: :math:`\mathbb E_q\log p(x\mid z)`,
    * ``log_rec_prob``: :math:`\log\mathbb E_{p(z\mid x)}p(x\mid z)=\log\frac{\mathbb E_q[p(x|z)^2p(z)/q(z|x)]}{p(x)}`,
      the log-probability of reconstructing :math:`x` when :math:`z` is drawn from the true posterior,
    * ``rec_prob_bound``: the seed's lower bound :math:`-\mathrm{KL}(q\,\|\,p(z\mid x))+\mathbb E_q\log p(x\mid z)`
      :math:`=\text{elbo}-\log p(x)+\text{rec\_term}`.

    Gaussian latent parts only. Ratios of estimates are biased for small ``k``; the values are estimates.
    """
    if any(p.kind != "gaussian" for p in model.latent.parts):
        raise ValueError("reconstruction_probability supports Gaussian latent parts only")
    model.eval()
    device = next(model.parameters()).device
    x = x.to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    params = model.encode(x)
    codes, logq, logp = {}, 0.0, 0.0
    for p in model.latent.parts:
        mu, logvar = p.split(params[p.name])
        eps = torch.randn((k, *mu.shape), generator=g, device=device)
        codes[p.name] = mu + (0.5 * logvar).exp() * eps
        logq = logq + (-0.5 * (math.log(2 * math.pi) + logvar + eps.pow(2))).sum(-1)
        logp = logp + (-0.5 * (math.log(2 * math.pi) + codes[p.name].pow(2))).sum(-1)
    z = model.latent.join(codes)
    xr = x.unsqueeze(0).expand(k, *x.shape).flatten(0, 1)
    loglik = model.likelihood.log_prob(xr, model.decode(z.flatten(0, 1))).view(k, -1)
    logw = loglik + logp - logq
    log_px = torch.logsumexp(logw, 0) - math.log(k)
    elbo, rec_term = logw.mean(0), loglik.mean(0)
    log_rec_prob = torch.logsumexp(logw + loglik, 0) - math.log(k) - log_px
    out = {"log_px": log_px, "elbo": elbo, "rec_term": rec_term, "log_rec_prob": log_rec_prob,
           "rec_prob_bound": elbo - log_px + rec_term}
    return {key: float(v.mean()) for key, v in out.items()}
