r"""Mutual information between a part of the code and the data, estimated on a *trained* model: the
variational lower bound of Agakov & Barber (the InfoGAN bound) on generated data (:func:`mi_lower_bound`) or
on posterior codes of real data (:func:`posterior_mi_lower_bound`, eq. 4.8 of the thesis), and an upper
bound by the rate (:func:`mi_upper_bound`). The training objectives built on the same bound are in
:mod:`vaemi.losses.mi`.

For a latent part :math:`c` with prior :math:`p(c)` and any conditional :math:`q(c\mid x)`,

.. math::
    I(c; x) = H(c) - H(c\mid x) \;\ge\; \mathbb E_{c\sim p(c),\,x\sim p(x\mid c)}\big[\log q(c\mid x)\big] + H(c),

with equality iff :math:`q(c\mid x)` is the true posterior (the gap is
:math:`\mathbb E_x\mathrm{KL}(p(c\mid x)\,\|\,q(c\mid x))`).

For the encoder's own joint :math:`q(c\mid x)p_\text{data}(x)`, the rate is an upper bound:
:math:`I_q(c;x) = \mathbb E_x\mathrm{KL}(q(c\mid x)\,\|\,p(c)) - \mathrm{KL}(q(c)\,\|\,p(c)) \le
\mathbb E_x\mathrm{KL}(q(c\mid x)\,\|\,p(c))`.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from vaemi.data import ImageData, data_tensor
from vaemi.losses.mi import AuxiliaryQ, generate_and_reencode, make_x_tilde
from vaemi.maths.distributions import categorical_marginal_entropy
from vaemi.models import VAE, CategoricalPart, GaussianPart, model_device, part_names

__all__ = ["mi_lower_bound", "mi_upper_bound", "posterior_mi_lower_bound", "encoder_mi_bounds"]


def _mean_and_se(v: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of the mean of a 1-D sample."""
    return float(v.mean()), float(v.std() / math.sqrt(len(v)))


def mi_lower_bound(model: VAE, part: str | list[str], n: int = 10_000, *, x_tilde: str = "mean", batch_size: int = 1000,
                   q: Callable[[torch.Tensor], torch.Tensor] | None = None, seed: int = 0) -> tuple[float, float]:
    r"""Monte Carlo estimate of :math:`\mathbb E[\log q(c\mid x)] + H(c)` on generated data (nats).

    Codes are drawn from the prior, decoded into :math:`\tilde x` and re-encoded
    (:func:`vaemi.losses.mi.generate_and_reencode`).

    Parameters
    ----------
    model : VAE
    part : str or list of str
        The latent part(s) :math:`c`; for several, their joint information.
    n : int
        Number of prior draws.
    x_tilde : {"mean", "relaxed", "sample"}
        How generated images are made (see :func:`vaemi.losses.mi.make_x_tilde`).
    batch_size : int
        Draws per batch (the order of the random draws, hence the estimate, depends on it).
    q : callable, optional
        Maps images to the parameters of :math:`q(c\mid x)` (default: the encoder).
    seed : int
        Seed of the draws (a generator on the model's device).

    Returns
    -------
    bound : float
        The lower bound.
    se : float
        Its Monte Carlo standard error.
    """
    model.eval()
    g = torch.Generator(device=model_device(model)).manual_seed(seed)
    vals = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            vals.append(generate_and_reencode(model, min(batch_size, n - start), part, x_tilde=x_tilde, q=q,
                                              generator=g).double().cpu())
    mean, se = _mean_and_se(torch.cat(vals))
    return mean + sum(model.latent[p].prior_entropy() for p in part_names(part)), se


def mi_upper_bound(model: VAE, data: ImageData | torch.Tensor, part: str | list[str], batch_size: int = 1000) -> float:
    r""":math:`\mathbb E_x\,\mathrm{KL}(q(c\mid x)\,\|\,p(c))`, the rate of the part (nats).

    Parameters
    ----------
    model : VAE
    data : ImageData or tensor
        The images :math:`x`.
    part : str or list of str
        The latent part(s); for several, the sum of their rates.
    batch_size : int

    Returns
    -------
    float
    """
    model.eval()
    x = data_tensor(data, model_device(model))
    total = 0.0
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            params = model.encode(x[start:start + batch_size])
            total += sum(float(model.latent[p].kl(params[p]).sum()) for p in part_names(part))
    return total / x.shape[0]


@torch.no_grad()
def posterior_mi_lower_bound(model: VAE, q: AuxiliaryQ, data: ImageData | torch.Tensor, *, seed: int = 0,
                             batch_size: int = 1000, repeats: int = 1) -> dict[str, float]:
    r"""Eq. 4.8 for a fixed VAE: :math:`\hat z` drawn exactly from :math:`q_\phi(\hat z\mid x)` on ``data``,
    :math:`\tilde x` an exact (seeded) sample of :math:`p_\theta(x\mid z)`, scored by :math:`Q`.

    Parameters
    ----------
    model : VAE
    q : AuxiliaryQ
        The auxiliary network; its ``target`` is the code :math:`\hat z`.
    data : ImageData or tensor
        The images :math:`x`.
    seed : int
        Seed of the posterior and likelihood samples (a generator on the model's device).
    batch_size : int
    repeats : int
        Passes over ``data`` (more samples of the same images).

    Returns
    -------
    dict
        In nats:

        * ``mi_lb``: :math:`\mathbb E\log Q(\hat z\mid\tilde x)+H_{p}(\hat z)` with the prior's entropy, as the
          thesis reports it, and its standard error ``se``;
        * ``mean_log_q``, ``h_prior``;
        * for a categorical target also ``h_marginal``, the entropy of the code's actual marginal
          :math:`q(c)=\frac1N\sum_n q(c\mid x_n)`, and ``mi_lb_marginal`` :math:`=\mathbb E\log Q+H(q(c))`, the
          bound that is valid for the joint :math:`q(c)\,p_\theta(\tilde x\mid c,\dots)` actually sampled. The
          two agree only when :math:`q(c)` is uniform.
    """
    model.eval()
    q.eval()
    device = model_device(model)
    x = data_tensor(data, device)
    g = torch.Generator(device=device).manual_seed(seed)
    vals, probs = [], []
    target = q.target
    for _ in range(repeats):
        for start in range(0, x.shape[0], batch_size):
            params = model.encode(x[start:start + batch_size])
            code = model.latent.sample(params, generator=g)
            xt = make_x_tilde(model, model.decode(code), "sample", generator=g)
            vals.append(q.log_prob(xt, target.select(code)).double().cpu())
            if target.kind == "categorical":
                probs.append(torch.softmax(target.select_params(params).double(), -1).cpu())
    mean_log_q, se = _mean_and_se(torch.cat(vals))
    h = target.prior_entropy()
    res = {"mi_lb": mean_log_q + h, "se": se, "mean_log_q": mean_log_q, "h_prior": h}
    if probs:
        h_marg = float(categorical_marginal_entropy(torch.cat(probs)))
        res.update(h_marginal=h_marg, mi_lb_marginal=mean_log_q + h_marg)
    return res


@torch.no_grad()
def encoder_mi_bounds(model: VAE, data: ImageData | torch.Tensor, part: str, *, seed: int = 0, repeats: int = 1,
                      batch_size: int = 250) -> dict[str, float]:
    r"""A lower and an upper bound on :math:`I_q(c;x)`, the information the *encoder* puts in the part :math:`c`,
    both for the one joint :math:`q(c\mid x)\,p_\text{data}(x)`.

    With the :math:`N` images of ``data`` drawn from :math:`p_\text{data}`:

    * **lower**, InfoNCE with the :math:`N` images as the contrast set (Oord et al. 2018; Poole et al. 2019),

      .. math::
          I_q(c;x) \;\ge\; \mathbb E\Big[\frac1N\sum_{i}\log\frac{q(c_i\mid x_i)}{\frac1N\sum_{j}q(c_i\mid x_j)}\Big],
          \qquad c_i\sim q(c\mid x_i),

      which can never exceed :math:`\log N`. For a categorical part the expectation over :math:`c_i` is a sum
      (exact); it is then the plug-in :math:`H(\bar q) - \mathbb E_x H(q(c\mid x))` of the test set.
    * **upper**: for a Gaussian part the rate :math:`\mathbb E_x\mathrm{KL}(q(c\mid x)\,\|\,p(c))
      = I_q + \mathrm{KL}(q(c)\,\|\,p(c))`. For a categorical part, whose rate is at most :math:`\ln K` and so
      says nothing when the code is unused, the held-out bound :math:`\mathbb E_{x\in B}\mathrm{KL}(q(c\mid x)\,\|\,
      \bar q_A) = I_q + \mathrm{KL}(q(c)\,\|\,\bar q_A)`, with :math:`\bar q_A` the aggregate posterior of the other
      half :math:`A` of the images (independent of :math:`B`), averaged over the two halves.

    Parameters
    ----------
    model : VAE
    data : ImageData or tensor
        The images (the test set: the more, the higher the ceiling :math:`\log N` of the lower bound).
    part : str
        One latent part.
    seed : int
        Seed of the codes :math:`c_i` (Gaussian parts).
    repeats : int
        Codes per image (Gaussian parts).
    batch_size : int
        Rows of the :math:`N\times N` matrix of :math:`\log q(c_i\mid x_j)` held at once.

    Returns
    -------
    dict
        ``lower``, ``se_lower``, ``upper``, ``se_upper`` (nats; standard errors over images) and ``log_n``, the
        ceiling of the lower bound.
    """
    model.eval()
    device = model_device(model)
    x = data_tensor(data, device)
    lat = model.latent[part]
    params = torch.cat([model.encode(x[s:s + 1000])[part] for s in range(0, x.shape[0], 1000)]).double()
    n = params.shape[0]
    if n < 4:
        raise ValueError(f"encoder_mi_bounds needs at least 4 images, got {n}")
    log_n = math.log(n)
    if isinstance(lat, CategoricalPart):
        logp = torch.log_softmax(params, -1)
        p = logp.exp()
        log_bar = torch.log(p.mean(0).clamp_min(1e-300))
        lower = (p * (logp - log_bar)).sum(-1)
        half = n // 2
        a, b = torch.arange(half), torch.arange(half, n)
        uppers = []
        for fit, use in ((a, b), (b, a)):
            log_ref = torch.log(p[fit].mean(0).clamp_min(1e-300))
            uppers.append((p[use] * (logp[use] - log_ref)).sum(-1))
        upper = torch.cat(uppers)
    elif isinstance(lat, GaussianPart):
        post = lat.posterior(params)
        g = torch.Generator(device=params.device).manual_seed(seed)
        rows = []
        for _ in range(repeats):
            z = post.mean + post.stddev * torch.randn(post.mean.shape, generator=g, device=params.device,
                                                      dtype=params.dtype)
            for s in range(0, n, batch_size):
                zi = z[s:s + batch_size]
                logq = _pairwise_normal_log_prob(post.mean, post.stddev, zi)  # (b, N): log q(z_i | x_j)
                pos = logq[torch.arange(zi.shape[0]), torch.arange(s, s + zi.shape[0])]
                rows.append(pos - (torch.logsumexp(logq, 1) - log_n))
        lower = torch.cat(rows)
        upper = lat.kl(params).sum(-1)
    else:
        raise TypeError(f"encoder_mi_bounds: part {part!r} is neither Gaussian nor categorical")
    lo, se_lo = _mean_and_se(lower.cpu())
    up, se_up = _mean_and_se(upper.cpu())
    return {"lower": lo, "se_lower": se_lo, "upper": up, "se_upper": se_up, "log_n": log_n}


def _pairwise_normal_log_prob(mean: torch.Tensor, std: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``log N(z_i; mean_j, diag std_j^2)`` for every pair: ``z`` (b, d), ``mean``/``std`` (N, d) -> (b, N)."""
    # the quadratic form expanded into matrix products: O(b N d) time without a (b, N, d) tensor
    prec = std.pow(-2)
    quad = z.pow(2) @ prec.T - 2 * z @ (mean * prec).T + (mean.pow(2) * prec).sum(-1)[None]
    return -0.5 * quad - std.log().sum(-1)[None] - 0.5 * mean.shape[-1] * math.log(2 * math.pi)
