"""Evaluation of trained models: ELBO terms on a dataset, importance-weighted log-likelihood,
per-dimension KL and active units."""
from __future__ import annotations

import math

import torch

from .data import ImageData
from .losses import elbo_terms
from .models import VAE

__all__ = ["evaluate_elbo", "iwae_log_likelihood", "active_units", "traversal_sensitivity"]


def _x(data: ImageData | torch.Tensor, device) -> torch.Tensor:
    return (data.x if isinstance(data, ImageData) else data).to(device)


@torch.no_grad()
def evaluate_elbo(model: VAE, data: ImageData | torch.Tensor, batch_size: int = 1000, seed: int = 0
                  ) -> dict[str, float]:
    """Average reconstruction ``rec`` (:math:`-\\log p(x|z)`, one posterior sample), ``kl``, ``elbo``
    and the KL of each latent dimension (``kl/<part>_<j>``) over ``data``."""
    model.eval()
    device = next(model.parameters()).device
    x = _x(data, device)
    sums: dict[str, float] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # the posterior samples are reproducible; the caller's RNG is left untouched
        _accumulate_elbo(model, x, batch_size, sums)
    n = x.shape[0]
    out = {k: v / n for k, v in sums.items()}
    out["kl"] = sum(v for k, v in out.items() if k.startswith("kl/"))
    out["elbo"] = -(out["rec"] + out["kl"])
    return out


def _accumulate_elbo(model: VAE, x: torch.Tensor, batch_size: int, sums: dict[str, float]) -> None:
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        rec, kl, _ = elbo_terms(model, xb)
        sums["rec"] = sums.get("rec", 0.0) + float(rec.sum())
        for part, k in kl.items():
            ks = k.sum(0)
            for j, v in enumerate(ks):
                sums[f"kl/{part}_{j}"] = sums.get(f"kl/{part}_{j}", 0.0) + float(v)


@torch.no_grad()
def iwae_log_likelihood(model: VAE, data: ImageData | torch.Tensor, k: int = 100, batch_size: int = 100,
                        seed: int = 0) -> float:
    r"""Average importance-weighted estimate of :math:`\log p(x)` (Burda et al. 2016):

    .. math:: \log \frac1K\sum_{k} \frac{p(x\mid z_k)\,p(z_k)}{q(z_k\mid x)},\quad z_k\sim q(z\mid x)

    Only for latent spaces made of Gaussian parts. A lower bound that tightens as ``k`` grows.
    """
    model.eval()
    if any(p.kind != "gaussian" for p in model.latent.parts):
        raise ValueError("iwae_log_likelihood supports Gaussian latent parts only")
    device = next(model.parameters()).device
    x = _x(data, device)
    g = torch.Generator(device=device).manual_seed(seed)
    total = 0.0
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        params = model.encode(xb)
        logw = 0.0
        codes = {}
        for p in model.latent.parts:
            mu, logvar = p.split(params[p.name])
            eps = torch.randn((k, *mu.shape), generator=g, device=device)
            z = mu + (0.5 * logvar).exp() * eps
            codes[p.name] = z
            logq = (-0.5 * (math.log(2 * math.pi) + logvar + eps.pow(2))).sum(-1)
            logp = (-0.5 * (math.log(2 * math.pi) + z.pow(2))).sum(-1)
            logw = logw + logp - logq
        z = model.latent.join(codes)  # (k, b, d)
        out = model.decode(z.flatten(0, 1))
        xr = xb.unsqueeze(0).expand(k, *xb.shape).flatten(0, 1)
        loglik = model.likelihood.log_prob(xr, out).view(k, -1)
        total += float((torch.logsumexp(loglik + logw, 0) - math.log(k)).sum())
    return total / x.shape[0]


@torch.no_grad()
def active_units(model: VAE, data: ImageData | torch.Tensor, threshold: float = 1e-2, part: str | None = None
                 ) -> torch.Tensor:
    r"""Activity :math:`A_j=\mathrm{Var}_x\,\mathbb E_{q}[z_j]` (Burda et al.) per Gaussian dimension;
    returns the boolean mask :math:`A_j > \text{threshold}`."""
    model.eval()
    device = next(model.parameters()).device
    x = _x(data, device)
    name = part or next(p.name for p in model.latent.parts if p.kind == "gaussian")
    mus = torch.cat([model.latent[name].split(model.encode(x[s:s + 1000])[name])[0]
                     for s in range(0, x.shape[0], 1000)])
    return mus.var(0) > threshold


@torch.no_grad()
def traversal_sensitivity(model: VAE, values=(-2.5, 2.5), n_steps: int = 11, base: torch.Tensor | None = None
                          ) -> torch.Tensor:
    r"""Mean absolute pixel change of the decoder mean per unit move along each code dimension.

    For every dimension :math:`j`, the code moves from ``values[0]`` to ``values[1]`` in ``n_steps`` steps
    (the other dimensions at ``base``, default 0) and the mean absolute difference between consecutive
    decoded images is summed and divided by the distance travelled. Returns a tensor ``(latent.size,)``.
    """
    model.eval()
    device = next(model.parameters()).device
    d = model.latent.size
    base = torch.zeros(d, device=device) if base is None else base.to(device)
    grid = torch.linspace(values[0], values[1], n_steps, device=device)
    codes = base.repeat(d, n_steps, 1)                      # (d, steps, d)
    idx = torch.arange(d, device=device)
    codes[idx, :, idx] = grid
    imgs = model.likelihood.mean(model.decode(codes.view(-1, d))).view(d, n_steps, -1)
    change = (imgs[:, 1:] - imgs[:, :-1]).abs().mean(-1).sum(-1)
    return (change / (values[1] - values[0])).cpu()
