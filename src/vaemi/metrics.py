"""Evaluation of trained models: ELBO terms on a dataset, importance-weighted log-likelihood,
per-dimension KL and active units."""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.special import entr, rel_entr

from .data import ImageData
from .losses import elbo_terms
from .models import VAE

__all__ = ["evaluate_elbo", "iwae_log_likelihood", "active_units", "traversal_sensitivity", "category_probs",
           "cluster_accuracy", "categorical_kl_decomposition"]


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
    (the other dimensions at ``base``) and the mean absolute difference between consecutive decoded images is
    summed and divided by the distance travelled. ``base`` is one code ``(d,)`` (default 0) or a batch
    ``(n, d)`` (e.g. the posterior means of test images), over which the result is averaged.
    Returns a tensor ``(latent.size,)``.
    """
    model.eval()
    device = next(model.parameters()).device
    d = model.latent.size
    base = torch.zeros(d, device=device) if base is None else base.to(device)
    bases = base.view(-1, d)
    grid = torch.linspace(values[0], values[1], n_steps, device=device)
    idx = torch.arange(d, device=device)
    total = torch.zeros(d, device=device)
    for b in bases:
        codes = b.repeat(d, n_steps, 1)                     # (d, steps, d)
        codes[idx, :, idx] = grid
        imgs = model.likelihood.mean(model.decode(codes.view(-1, d))).view(d, n_steps, -1)
        total += (imgs[:, 1:] - imgs[:, :-1]).abs().mean(-1).sum(-1)
    return (total / len(bases) / (values[1] - values[0])).cpu()


@torch.no_grad()
def category_probs(model: VAE, data: ImageData | torch.Tensor, part: str = "c", batch_size: int = 1000) -> np.ndarray:
    r"""The encoder's category probabilities :math:`q(c\mid x)` on ``data``, shape ``(N, K)`` (float64)."""
    model.eval()
    device = next(model.parameters()).device
    x = _x(data, device)
    if model.latent[part].kind != "categorical":
        raise ValueError(f"part {part!r} is not categorical")
    out = [torch.softmax(model.encode(x[s:s + batch_size])[part].double(), -1).cpu() for s in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()


def cluster_accuracy(pred: np.ndarray, labels: np.ndarray, k: int | None = None) -> dict:
    """Accuracy of cluster indices ``pred`` as a classifier of ``labels``.

    * ``hungarian``: the best one-to-one map of clusters to labels
      (``scipy.optimize.linear_sum_assignment`` on the count matrix);
    * ``majority``: every cluster mapped to its most frequent label (many-to-one; never below ``hungarian``);
    * ``counts``: the label × cluster count matrix; ``mapping``: cluster -> label of the one-to-one map.
    """
    pred, labels = np.asarray(pred, int), np.asarray(labels, int)
    if pred.shape != labels.shape or pred.ndim != 1 or len(pred) == 0:
        raise ValueError(f"pred and labels must be equal-length 1-D arrays, got {pred.shape} and {labels.shape}")
    n_lab = int(labels.max()) + 1
    k = int(pred.max()) + 1 if k is None else k
    counts = np.zeros((n_lab, k), dtype=int)
    np.add.at(counts, (labels, pred), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    mapping = {int(c): int(r) for r, c in zip(rows, cols)}
    return {"hungarian": counts[rows, cols].sum() / len(pred), "majority": counts.max(0).sum() / len(pred),
            "counts": counts, "mapping": mapping}


def categorical_kl_decomposition(probs: np.ndarray, prior: np.ndarray | None = None) -> dict[str, float]:
    r"""The rate of a categorical code split as in eq. 4.23 of the thesis, computed exactly from
    :math:`q(c\mid x_n)` (rows of ``probs``) with :math:`p_\text{data}` uniform on the :math:`N` rows:

    .. math:: \underbrace{\tfrac1N\textstyle\sum_n \mathrm{KL}(q(c\mid x_n)\,\|\,p(c))}_{\texttt{rate}}
              = \underbrace{I_q(c;x)}_{\texttt{mi}} + \underbrace{\mathrm{KL}(q(c)\,\|\,p(c))}_{\texttt{marginal\_kl}},
              \qquad q(c)=\tfrac1N\textstyle\sum_n q(c\mid x_n),

    with :math:`I_q(c;x)=\frac1N\sum_n\mathrm{KL}(q(c\mid x_n)\,\|\,q(c))`, each side computed separately.
    ``residual`` = rate − (mi + marginal_kl); ``h_marginal`` = :math:`H(q(c))`. Default prior: uniform.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or not np.allclose(p.sum(1), 1.0):
        raise ValueError("probs must be (N, K) with rows summing to one")
    prior = np.full(p.shape[1], 1.0 / p.shape[1]) if prior is None else np.asarray(prior, np.float64)
    marg = p.mean(0)
    rate = rel_entr(p, prior[None, :]).sum(1).mean()  # rel_entr(a, b) = a log(a/b), with 0 log 0 = 0
    mi = rel_entr(p, marg[None, :]).sum(1).mean()
    marginal_kl = rel_entr(marg, prior).sum()
    h_marg = entr(marg).sum()
    return {"rate": float(rate), "mi": float(mi), "marginal_kl": float(marginal_kl),
            "residual": float(rate - (mi + marginal_kl)), "h_marginal": float(h_marg)}
