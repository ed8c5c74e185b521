"""Evaluation of trained models: ELBO terms on a dataset, importance-weighted estimates (the IWAE
log-likelihood and the reconstruction probability, both from one importance sampler,
:func:`importance_log_weights`), per-dimension KL and active units, and how a categorical code clusters the
data. Bounds on mutual information are in :mod:`vaemi.measures.mi`."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.special import entr, rel_entr

from vaemi.data import ImageData, data_tensor
from vaemi.losses.base import elbo_terms
from vaemi.maths.distributions import LOG_2PI, categorical_marginal_entropy, log_mean_exp
from vaemi.models import VAE, model_device

__all__ = ["evaluate_elbo", "importance_log_weights", "iwae_log_likelihood", "reconstruction_probability",
           "active_units", "traversal_sensitivity", "category_probs", "cluster_accuracy",
           "categorical_kl_decomposition"]


@torch.no_grad()
def evaluate_elbo(model: VAE, data: ImageData | torch.Tensor, batch_size: int = 1000, seed: int = 0
                  ) -> dict[str, float]:
    """ELBO terms of ``model`` averaged over ``data``, with one seeded posterior sample per image.

    Parameters
    ----------
    model : VAE
    data : ImageData or tensor
    batch_size : int
    seed : int
        Seed of the posterior samples (the caller's random state is left untouched).

    Returns
    -------
    dict
        ``rec`` (:math:`-\\log p(x|z)`), ``kl``, ``elbo`` and the KL of each latent dimension
        (``kl/<part>_<j>``), in nats per image.
    """
    model.eval()
    device = model_device(model)
    x = data_tensor(data, device)
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
def importance_log_weights(model: VAE, data: ImageData | torch.Tensor, k: int, *, batch_size: int | None = None,
                           seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    r"""Importance samples :math:`z_1..z_K\sim q(z\mid x)` for every image of ``data``, batch by batch.

    The one importance sampler behind every IWAE-type estimate (:func:`iwae_log_likelihood`,
    :func:`reconstruction_probability`): for each batch and each latent part in order, :math:`K` standard
    normal draws ``(K, batch, size)`` from one generator seeded with ``seed``, so the same seed and batching give
    the same samples.
    Evaluation only: no gradients are tracked.

    Parameters
    ----------
    model : VAE
        A model whose latent parts are all Gaussian (prior :math:`\mathcal N(0, I)`).
    data : ImageData or tensor
    k : int
        Samples per image.
    batch_size : int, optional
        Images per batch (``None``: all at once).
    seed : int
        Seed of a generator on the model's device.

    Yields
    ------
    loglik : tensor (k, batch)
        :math:`\log p(x\mid z_k)`.
    log_ratio : tensor (k, batch)
        :math:`\log p(z_k) - \log q(z_k\mid x)`, so that :math:`\log w_k` = ``loglik + log_ratio``.

    Raises
    ------
    ValueError
        If a latent part is not Gaussian.
    """
    if any(p.kind != "gaussian" for p in model.latent.parts):
        raise ValueError("importance sampling from q(z|x) supports Gaussian latent parts only")
    model.eval()
    device = model_device(model)
    x = data_tensor(data, device)
    g = torch.Generator(device=device).manual_seed(seed)
    step = x.shape[0] if batch_size is None else batch_size
    for start in range(0, x.shape[0], step):
        xb = x[start:start + step]
        params = model.encode(xb)
        log_ratio, codes = 0.0, {}
        for p in model.latent.parts:
            mu, logvar = p.split(params[p.name])
            eps = torch.randn((k, *mu.shape), generator=g, device=device)
            z = mu + (0.5 * logvar).exp() * eps
            codes[p.name] = z
            logq = (-0.5 * (LOG_2PI + logvar + eps.pow(2))).sum(-1)
            logp = (-0.5 * (LOG_2PI + z.pow(2))).sum(-1)
            log_ratio = log_ratio + logp - logq
        z = model.latent.join(codes)  # (k, b, d)
        xr = xb.unsqueeze(0).expand(k, *xb.shape).flatten(0, 1)
        loglik = model.likelihood.log_prob(xr, model.decode(z.flatten(0, 1))).view(k, -1)
        yield loglik, log_ratio


@torch.no_grad()
def iwae_log_likelihood(model: VAE, data: ImageData | torch.Tensor, k: int = 100, batch_size: int = 100,
                        seed: int = 0) -> float:
    r"""Average importance-weighted estimate of :math:`\log p(x)` (Burda et al. 2016):

    .. math:: \log \frac1K\sum_{k} \frac{p(x\mid z_k)\,p(z_k)}{q(z_k\mid x)},\quad z_k\sim q(z\mid x)

    A lower bound that tightens as ``k`` grows.

    Parameters
    ----------
    model : VAE
        Gaussian latent parts only.
    data : ImageData or tensor
    k : int
        Importance samples per image.
    batch_size : int
        Images per batch (with ``seed``, it fixes the random draws; see :func:`importance_log_weights`).
    seed : int

    Returns
    -------
    float
        Nats per image.
    """
    total, n = 0.0, 0
    for loglik, log_ratio in importance_log_weights(model, data, k, batch_size=batch_size, seed=seed):
        total += float(log_mean_exp(loglik + log_ratio, 0).sum())
        n += loglik.shape[1]
    return total / n


@torch.no_grad()
def reconstruction_probability(model: VAE, x: ImageData | torch.Tensor, k: int = 100, seed: int = 0,
                               batch_size: int | None = None) -> dict[str, float]:
    r"""Section 4 of Ducau & Trénous on a trained model, by importance sampling with :math:`q(z\mid x)`.

    Parameters
    ----------
    model : VAE
        Gaussian latent parts only.
    x : ImageData or tensor
        The images.
    k : int
        Importance samples per image.
    seed : int
    batch_size : int, optional
        Images per batch (``None``: all at once; the random draws depend on it, see
        :func:`importance_log_weights`).

    Returns
    -------
    dict
        Per-image averages (nats) of

        * ``log_px``: :math:`\log p(x)` (the IWAE estimate with ``k`` samples),
        * ``elbo``: :math:`\mathbb E_q\log\frac{p(x,z)}{q(z|x)}`,
        * ``rec_term``: :math:`\mathbb E_q\log p(x\mid z)`,
        * ``log_rec_prob``: :math:`\log\mathbb E_{p(z\mid x)}p(x\mid z)
          =\log\frac{\mathbb E_q[p(x|z)^2p(z)/q(z|x)]}{p(x)}`,
          the log-probability of reconstructing :math:`x` when :math:`z` is drawn from the true posterior,
        * ``rec_prob_bound``: the seed's lower bound :math:`-\mathrm{KL}(q\,\|\,p(z\mid x))+\mathbb E_q\log p(x\mid z)`
          :math:`=\text{elbo}-\log p(x)+\text{rec\_term}`.

        Ratios of estimates are biased for small ``k``; the values are estimates.
    """
    loglik, log_ratio = (torch.cat(t, 1) for t in
                         zip(*importance_log_weights(model, x, k, batch_size=batch_size, seed=seed)))
    logw = loglik + log_ratio
    log_px = log_mean_exp(logw, 0)
    elbo, rec_term = logw.mean(0), loglik.mean(0)
    log_rec_prob = log_mean_exp(logw + loglik, 0) - log_px
    out = {"log_px": log_px, "elbo": elbo, "rec_term": rec_term, "log_rec_prob": log_rec_prob,
           "rec_prob_bound": elbo - log_px + rec_term}
    return {key: float(v.mean()) for key, v in out.items()}


@torch.no_grad()
def active_units(model: VAE, data: ImageData | torch.Tensor, threshold: float = 1e-2, part: str | None = None
                 ) -> torch.Tensor:
    r"""Activity :math:`A_j=\mathrm{Var}_x\,\mathbb E_{q}[z_j]` (Burda et al.) per Gaussian dimension.

    Parameters
    ----------
    model : VAE
    data : ImageData or tensor
    threshold : float
        A dimension is active when :math:`A_j` exceeds it.
    part : str, optional
        The Gaussian part (default: the first one).

    Returns
    -------
    tensor of bool (size of the part,)
        The mask :math:`A_j > \text{threshold}`.
    """
    model.eval()
    x = data_tensor(data, model_device(model))
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

    Parameters
    ----------
    model : VAE
    values : (float, float)
        Start and end of the move.
    n_steps : int
        Codes along the move.
    base : tensor (d,) or (n, d), optional
        Where the other dimensions stay (default: the origin).

    Returns
    -------
    tensor (latent.size,)
        On the CPU.
    """
    model.eval()
    device = model_device(model)
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
    r"""The encoder's category probabilities :math:`q(c\mid x)` on ``data``.

    Parameters
    ----------
    model : VAE
    data : ImageData or tensor
    part : str
        A categorical latent part.
    batch_size : int

    Returns
    -------
    ndarray (N, K)
        float64, rows summing to one.

    Raises
    ------
    ValueError
        If ``part`` is not categorical.
    """
    model.eval()
    x = data_tensor(data, model_device(model))
    if model.latent[part].kind != "categorical":
        raise ValueError(f"part {part!r} is not categorical")
    out = [torch.softmax(model.encode(x[s:s + batch_size])[part].double(), -1).cpu() for s in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()


def cluster_accuracy(pred: np.ndarray, labels: np.ndarray, k: int | None = None) -> dict:
    """Accuracy of cluster indices ``pred`` as a classifier of ``labels``.

    Parameters
    ----------
    pred : ndarray of int (N,)
        Cluster of each example.
    labels : ndarray of int (N,)
        Its true label.
    k : int, optional
        Number of clusters (default ``pred.max() + 1``).

    Returns
    -------
    dict
        * ``hungarian``: the best one-to-one map of clusters to labels
          (``scipy.optimize.linear_sum_assignment`` on the count matrix);
        * ``majority``: every cluster mapped to its most frequent label (many-to-one; never below ``hungarian``);
        * ``counts``: the label × cluster count matrix; ``mapping``: cluster -> label of the one-to-one map.

    Raises
    ------
    ValueError
        If ``pred`` and ``labels`` are not non-empty 1-D arrays of one length.
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


def categorical_kl_decomposition(probs: np.ndarray, prior: np.ndarray | None = None, *,
                                 weights: np.ndarray | None = None) -> dict[str, float]:
    r"""The rate of a categorical code split as in eq. 4.23 of the thesis, computed exactly from
    :math:`q(c\mid x_n)` (rows of ``probs``) with :math:`p_\text{data}` uniform on the :math:`N` rows:

    .. math:: \underbrace{\tfrac1N\textstyle\sum_n \mathrm{KL}(q(c\mid x_n)\,\|\,p(c))}_{\texttt{rate}}
              = \underbrace{I_q(c;x)}_{\texttt{mi}} + \underbrace{\mathrm{KL}(q(c)\,\|\,p(c))}_{\texttt{marginal\_kl}},
              \qquad q(c)=\tfrac1N\textstyle\sum_n q(c\mid x_n),

    with :math:`I_q(c;x)=\frac1N\sum_n\mathrm{KL}(q(c\mid x_n)\,\|\,q(c))`, each side computed separately.

    Parameters
    ----------
    probs : ndarray (N, K)
        Rows :math:`q(c\mid x_n)`, each summing to one.
    prior : ndarray (K,), optional
        :math:`p(c)` (default uniform).
    weights : ndarray (N,), optional
        :math:`p_\text{data}(x_n)`, non-negative and summing to one (default uniform, :math:`1/N`): the
        averages over :math:`n` above, and :math:`q(c)`, become :math:`\sum_n p_\text{data}(x_n)\,\cdot`
        (used by :func:`vaemi.measures.information.information_terms`).

    Returns
    -------
    dict
        ``rate``, ``mi``, ``marginal_kl``, ``residual`` = rate − (mi + marginal_kl), and ``h_marginal`` =
        :math:`H(q(c))` (:func:`vaemi.maths.distributions.categorical_marginal_entropy`; with ``weights``, the entropy
        of the weighted marginal), in nats.

    Raises
    ------
    ValueError
        If ``probs`` is not a matrix of probability rows, or ``weights`` is not a probability vector of
        length :math:`N`.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or not np.allclose(p.sum(1), 1.0):
        raise ValueError("probs must be (N, K) with rows summing to one")
    prior = np.full(p.shape[1], 1.0 / p.shape[1]) if prior is None else np.asarray(prior, np.float64)
    if weights is None:
        marg = p.mean(0)
        rate = rel_entr(p, prior[None, :]).sum(1).mean()  # rel_entr(a, b) = a log(a/b), with 0 log 0 = 0
        mi = rel_entr(p, marg[None, :]).sum(1).mean()
        h_marg = categorical_marginal_entropy(torch.from_numpy(p))
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (p.shape[0],) or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
            raise ValueError(f"weights must be a probability vector of length N={p.shape[0]} (non-negative, "
                             f"summing to one), got shape {w.shape}")
        marg = w @ p
        pos = w > 0  # rows of zero weight contribute nothing, even where their KL is infinite
        rate = w[pos] @ rel_entr(p[pos], prior[None, :]).sum(1)
        mi = w[pos] @ rel_entr(p[pos], marg[None, :]).sum(1)
        h_marg = entr(marg).sum()
    marginal_kl = rel_entr(marg, prior).sum()
    return {"rate": float(rate), "mi": float(mi), "marginal_kl": float(marginal_kl),
            "residual": float(rate - (mi + marginal_kl)), "h_marginal": float(h_marg)}
