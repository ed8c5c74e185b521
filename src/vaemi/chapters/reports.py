"""Report helpers: one function per kind of model summary, used both per epoch (as a training
``eval_fn``) and at the end of training, so that the two never compute the same quantity twice in two
ways.

* :func:`mi_report`: the information each Gaussian part carries (a lower bound on generated data, the
  rate as an upper bound) and the ELBO terms — the infoVAE chapter.
* :func:`categorical_report`: how a categorical code clusters the data (accuracy, the decomposition of
  its KL, the eq. 4.8 bound) — the thesis chapter.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vaemi.losses.mi import AuxiliaryQ
from vaemi.measures.metrics import categorical_kl_decomposition, category_probs, cluster_accuracy, evaluate_elbo
from vaemi.measures.mi import encoder_mi_bounds, mi_lower_bound, mi_upper_bound, posterior_mi_lower_bound
from vaemi.models import VAE

__all__ = ["mi_report", "categorical_report"]


def mi_report(model: VAE, x: torch.Tensor, parts: Sequence[str] = ("c", "z"), *, n: int, seed: int,
              total: bool = False, x_tilde: str = "sample", elbo_prefix: str = "",
              encoder: bool = False) -> dict[str, float]:
    r"""Information of each latent part and the ELBO terms of ``model`` (nats).

    Parameters
    ----------
    x : tensor
        Images for the rates (upper bounds, :math:`\mathbb E_x\mathrm{KL}(q(c\mid x)\|p(c))`) and the ELBO.
    parts : sequence of str
        Names of the latent parts.
    n : int
        Prior samples of the lower bounds (:func:`vaemi.measures.mi.mi_lower_bound`).
    seed : int
        Their seed.
    total : bool
        Also the bound on the information of all ``parts`` together (``I_total``).
    x_tilde : str
        How generated images are made for the lower bounds (``"sample"``: exact Bernoulli samples).
    elbo_prefix : str
        Prefix of the keys of the ELBO terms, e.g. ``"test_"`` when the report is a training ``eval_fn``
        (so that they do not overwrite the training loss's own ``rec``, ``kl`` and ``elbo``).
    encoder : bool
        Also both bounds on the *encoder's* information :math:`I_q(\cdot;x)` of every part, on ``x``
        (:func:`vaemi.measures.mi.encoder_mi_bounds`): ``Iq_<part>`` (InfoNCE lower bound, at most
        ``log_n``), ``se_Iq_<part>`` and ``se_rate_<part>``; the rate is the upper bound. A claim that a part
        carries *little* information is judged on the rate, one that it carries *much* on ``Iq``.

    Returns
    -------
    dict
        ``I_<part>``, ``se_<part>`` (lower bound and its standard error), ``rate_<part>`` (upper bound),
        with ``total``: ``I_total``, ``se_total``; and ``rec``, ``kl``, ``elbo`` on ``x`` (after ``elbo_prefix``).
    """
    out: dict[str, float] = {}
    for p in parts:
        out[f"I_{p}"], out[f"se_{p}"] = mi_lower_bound(model, p, n=n, seed=seed, x_tilde=x_tilde)
    if total:
        out["I_total"], out["se_total"] = mi_lower_bound(model, list(parts)[::-1], n=n, seed=seed, x_tilde=x_tilde)
    for p in parts:
        out[f"rate_{p}"] = mi_upper_bound(model, x, p)
        if encoder:
            b = encoder_mi_bounds(model, x, p, seed=seed)
            out.update({f"Iq_{p}": b["lower"], f"se_Iq_{p}": b["se_lower"], f"se_rate_{p}": b["se_upper"], "log_n": b["log_n"]})
    ev = evaluate_elbo(model, x)
    out.update({f"{elbo_prefix}{k}": ev[k] for k in ("rec", "kl", "elbo")})
    return out


def categorical_report(model: VAE, q: AuxiliaryQ, x: torch.Tensor, y: np.ndarray, k: int, *, seed: int,
                       part: str = "c", elbo: bool = True, details: bool = True, prefix: str = "") -> dict:
    r"""How the categorical part ``part`` of ``model`` clusters ``x`` (labels ``y``, ``k`` categories).

    Parameters
    ----------
    model : VAE
    q : AuxiliaryQ
        The auxiliary network of the eq. 4.8 bound (:func:`vaemi.measures.mi.posterior_mi_lower_bound`).
    x : tensor
        The images.
    y : ndarray of int
        Their labels.
    k : int
        Number of categories.
    seed : int
        Seed of the eq. 4.8 bound.
    part : str
        The categorical part.
    elbo : bool
        Also the ELBO terms on ``x``.
    details : bool
        Also the arrays under ``"details"`` (leave them out for a training ``eval_fn``, whose values must
        be numbers).
    prefix : str
        Prefix of every key but ``details``, e.g. ``"test_"`` for an ``eval_fn`` (so that ``kl_c`` does not
        overwrite the training loss's own ``kl_c``).

    Returns
    -------
    dict
        ``acc_hungarian``, ``acc_majority`` (:func:`vaemi.measures.metrics.cluster_accuracy`); ``kl_c`` (the rate),
        ``I_q`` (its information part: the plug-in value on ``x``, a lower bound in expectation), ``I_q_upper``
        (an upper bound: :func:`vaemi.measures.mi.encoder_mi_bounds`), ``kl_marginal``, ``residual``, ``H_marginal`` (eq. 4.23,
        :func:`vaemi.measures.metrics.categorical_kl_decomposition`); ``mi_lb_thesis`` and ``mi_lb_corrected`` (eq. 4.8
        with the prior's and with the marginal's entropy) and their ``se``; ``used_categories``; with
        ``elbo``: ``elbo`` and ``rec``; every key after ``prefix``. With ``details``, the arrays ``probs``
        and the full ``acc`` and ``dec`` results are under ``"details"``.
    """
    probs = category_probs(model, x, part=part)
    acc = cluster_accuracy(probs.argmax(1), y, k)
    dec = categorical_kl_decomposition(probs)
    b = posterior_mi_lower_bound(model, q, x, seed=seed)
    upper = encoder_mi_bounds(model, x, part)["upper"]  # held-out: KL to the other half's aggregate posterior
    out = dict(acc_hungarian=acc["hungarian"], acc_majority=acc["majority"], kl_c=dec["rate"], I_q=dec["mi"], I_q_upper=upper,
               kl_marginal=dec["marginal_kl"], residual=dec["residual"], mi_lb_thesis=b["mi_lb"],
               mi_lb_corrected=b["mi_lb_marginal"], se=b["se"], H_marginal=dec["h_marginal"],
               used_categories=int((np.bincount(probs.argmax(1), minlength=k) > 0).sum()))
    if elbo:
        ev = evaluate_elbo(model, x)
        out.update(elbo=ev["elbo"], rec=ev["rec"])
    out = {f"{prefix}{key}": v for key, v in out.items()}
    if details:
        out["details"] = dict(probs=probs, acc=acc, dec=dec)
    return out
