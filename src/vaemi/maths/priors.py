r"""The two latent priors of the VIMAE paper: :math:`\mathcal N(0, I_d)` (VIMAE-n) and a Logistic with mean 0
and unit variance in each dimension (VIMAE-l), both i.i.d. over the :math:`d` latent dimensions.

The Logistic is chosen for having less entropy than the Gaussian of the same variance (the Gaussian is the
maximum-entropy law at fixed variance), which bounds the capacity :math:`C(X,Z)\propto h(Z)` of the model:

.. math:: h(\mathcal N(0,1)) = \tfrac12\log(2\pi e) \approx 1.4189, \qquad
          h(\mathrm{Logistic}(0, s)) = \log s + 2 \approx 1.4046 \quad\text{nats,}

with :math:`s = \sqrt3/\pi` so that the variance :math:`s^2\pi^2/3` is one.

Both priors are ``torch.distributions`` objects with event shape ``(d,)`` (``log_prob`` sums over the
dimensions). The Logistic is built as torch's documentation suggests, a uniform pushed through the logit
and scaled,

.. math:: U\sim\mathcal U(0,1),\qquad Z = s\,\log\frac{U}{1-U},

``TransformedDistribution(Uniform(0, 1), [SigmoidTransform().inv, AffineTransform(0, s)])``. Its
``log_prob`` is the exact logistic density :math:`\log p(z) = -t - \log s - 2\log(1+e^{-t})`, :math:`t=z/s`,
in the tails too: torch computes the Jacobian :math:`-\mathrm{softplus}(-t)-\mathrm{softplus}(t)` from
:math:`t` and clamps :math:`\sigma(t)` inside :math:`(0,1)` before scoring it under the uniform, so no
:math:`-\infty` appears (checked against ``scipy.stats.logistic`` in ``tests/test_priors.py``; the only
deviation is an absolute :math:`<e^{-20}\approx 2\times10^{-9}`, from ``F.softplus`` returning :math:`t`
itself for :math:`t>20`). Samples are the logit of a clamped float uniform, so they never exceed
:math:`s\,\mathrm{logit}(1-\varepsilon)` (8.8 in float32, 20 in float64) — a truncation of probability
:math:`\approx 2\varepsilon`, invisible at any Monte-Carlo size used here.
"""
from __future__ import annotations

import math
import operator

import torch
from torch import distributions as D

__all__ = ["LOGISTIC_UNIT_SCALE", "PRIORS", "standard_normal", "unit_logistic", "make_prior", "prior_entropy",
           "entropy_mc", "logistic_from_uniform"]

#: Scale :math:`s=\sqrt3/\pi` of the Logistic with unit variance (variance :math:`s^2\pi^2/3`).
LOGISTIC_UNIT_SCALE = math.sqrt(3.0) / math.pi

#: Names accepted by :func:`make_prior` and :func:`prior_entropy`.
PRIORS: tuple[str, ...] = ("normal", "logistic")


def _check_dim(d) -> int:
    try:
        if isinstance(d, bool):
            raise TypeError
        d = operator.index(d)
    except TypeError:
        raise ValueError(f"latent dimension d must be a positive integer, got {d!r}") from None
    if d < 1:
        raise ValueError(f"latent dimension d must be >= 1, got {d}")
    return d


def _check_name(name: str) -> str:
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of {list(PRIORS)}")
    return name


def standard_normal(d: int, dtype: torch.dtype = torch.float32, device=None) -> D.Independent:
    r""":math:`\mathcal N(0, I_d)` as ``Independent(Normal(0, 1), 1)``, event shape ``(d,)``."""
    d = _check_dim(d)
    zeros = torch.zeros(d, dtype=dtype, device=device)
    return D.Independent(D.Normal(zeros, torch.ones_like(zeros)), 1)


def unit_logistic(d: int, dtype: torch.dtype = torch.float32, device=None) -> D.Independent:
    r"""Logistic with mean 0 and variance 1 in each of ``d`` independent dimensions, event shape ``(d,)``.

    ``Independent(TransformedDistribution(Uniform(0, 1), [SigmoidTransform().inv, AffineTransform(0, s)]), 1)``
    with :math:`s` = :data:`LOGISTIC_UNIT_SCALE`; density
    :math:`p(z)=\prod_i \frac{e^{-z_i/s}}{s\,(1+e^{-z_i/s})^2}`.
    """
    d = _check_dim(d)
    zeros = torch.zeros(d, dtype=dtype, device=device)
    base = D.Uniform(zeros, torch.ones_like(zeros))
    transforms = [D.SigmoidTransform().inv, D.AffineTransform(loc=0.0, scale=LOGISTIC_UNIT_SCALE)]
    return D.Independent(D.TransformedDistribution(base, transforms), 1)


def logistic_from_uniform(u: torch.Tensor) -> torch.Tensor:
    r"""Unit-variance Logistic draws :math:`s\,\log\frac{u}{1-u}` from uniforms ``u`` (clamped inside (0, 1) as
    torch's ``SigmoidTransform`` does), so that a seeded ``torch.Generator`` can drive the prior."""
    eps = torch.finfo(u.dtype).eps
    u = u.clamp(eps, 1 - eps)
    return LOGISTIC_UNIT_SCALE * (u.log() - (-u).log1p())


def make_prior(name: str, d: int, dtype: torch.dtype = torch.float32, device=None) -> D.Distribution:
    """The prior called ``name`` (``"normal"`` or ``"logistic"``, see :data:`PRIORS`) in ``d`` dimensions."""
    name = _check_name(name)
    builder = standard_normal if name == "normal" else unit_logistic
    return builder(d, dtype=dtype, device=device)


def prior_entropy(name: str, d: int) -> float:
    r"""Differential entropy (nats) of the prior ``name`` in ``d`` dimensions, in closed form.

    * ``"normal"``: :math:`\tfrac d2\log(2\pi e)`;
    * ``"logistic"``: :math:`d\,(\log s + 2)`, :math:`s=\sqrt3/\pi` (a Logistic of scale :math:`s` has entropy
      :math:`\log s + 2`).

    The Logistic's is the smaller for every :math:`d`, by :math:`d\,(\tfrac12\log(2\pi e) - \log s - 2)
    \approx 0.0144\,d` nats.
    """
    name = _check_name(name)
    d = _check_dim(d)
    if name == "normal":
        return 0.5 * d * math.log(2.0 * math.pi * math.e)
    return d * (math.log(LOGISTIC_UNIT_SCALE) + 2.0)


@torch.no_grad()
def entropy_mc(dist: D.Distribution, n: int, seed: int = 0) -> tuple[float, float]:
    r"""Monte-Carlo entropy :math:`\hat h = \frac1n\sum_k -\log p(z_k)`, :math:`z_k\sim p`, and its standard error.

    Parameters
    ----------
    dist : torch.distributions.Distribution
        Anything with ``sample`` and ``log_prob`` (``log_prob`` should return one value per sample, i.e. the
        whole event, as the priors here do).
    n : int
        Number of samples, >= 2.
    seed : int
        Seeds the global torch generators (``torch.distributions`` samples from them); their state is
        restored afterwards (``torch.random.fork_rng``).

    Returns
    -------
    (float, float)
        Mean of :math:`-\log p` and its standard error :math:`\mathrm{sd}/\sqrt n`.
    """
    n = int(n)
    if n < 2:
        raise ValueError(f"entropy_mc needs n >= 2 samples for a standard error, got {n}")
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        z = dist.sample((n,))
    nll = -dist.log_prob(z).double().reshape(n, -1).sum(1)
    if not bool(torch.isfinite(nll).all()):
        raise ValueError("log_prob returned non-finite values on the distribution's own samples")
    return float(nll.mean()), float(nll.std() / math.sqrt(n))
