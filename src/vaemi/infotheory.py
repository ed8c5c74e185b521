r"""Exact information theory of the VIMAE paper's identities, on models small enough to enumerate.

Notation (that of the paper): data :math:`p(x)`, encoder :math:`q(z\mid x)`, prior :math:`p(z)`, decoder
:math:`p_\theta(x\mid z)`, and the two joints

.. math:: q(x,z) = q(z\mid x)\,p(x), \qquad p_\theta(x,z) = p_\theta(x\mid z)\,p(z),

with their marginals and conditionals :math:`q(z)=\sum_x q(x,z)`, :math:`q(x\mid z)=q(x,z)/q(z)`,
:math:`p_\theta(x)=\sum_z p_\theta(x,z)`, :math:`p_\theta(z\mid x)=p_\theta(x,z)/p_\theta(x)`. The three
informations of the paper's appendix are

.. math:: I_q = \mathrm{KL}\big(q(x,z)\,\|\,p(x)q(z)\big), \qquad
          I_\theta = \mathrm{KL}\big(p_\theta(x,z)\,\|\,p_\theta(x)p(z)\big), \qquad
          I_{\theta\phi} = h(X) - \mathbb E_{q(x,z)}[-\log p_\theta(x\mid z)],

and the training objective (eq. 7 with :math:`D=\mathrm{KL}`) is
:math:`\mathrm{VIM}_{\theta\phi}=\mathbb E_{q(x,z)}[\log p_\theta(x\mid z)]-\lambda\,\mathrm{KL}(q(z)\|p(z))`.

For finite :math:`x` and :math:`z` every term is a finite sum, so :func:`information_terms` computes each one
exactly from its own definition (``scipy.special.rel_entr``/``entr``/``xlogy``, :math:`0\log0=0`, nats) and
returns the residual of every identity the paper states — the ones that hold in general (to rounding) and the
ones that need an assumption (:math:`q(z)=p(z)`, :math:`p_\theta(x)=p(x)`), with the general form that
replaces them. :func:`random_model` draws Dirichlet instances, optionally satisfying those assumptions.

For continuous codes: :func:`kl_additive_check` (eq. 3, the KL of factorized laws is the sum of the
per-dimension KLs), :func:`mixture_entropy_bounds` (bounds on :math:`h(q(z))` for a Gaussian aggregate posterior,
Kolchinsky & Tracey 2017), :func:`mixture_entropy_mc` and :func:`knn_entropy` (Kozachenko–Leonenko).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma, entr, gammaln, logsumexp, rel_entr, xlogy
from torch import distributions as D

from .metrics import categorical_kl_decomposition
from .priors import make_prior

__all__ = ["DiscreteModel", "information_terms", "random_model", "chain_check", "DECODERS",
           "kl_additive_check", "mixture_entropy_bounds", "mixture_entropy_mc", "knn_entropy"]

#: Decoders :func:`random_model` can build.
DECODERS: tuple[str, ...] = ("random", "posterior", "marginal")

_ATOL = 1e-9  # tolerance on "sums to one"


def _prob_array(a, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative")
    sums = arr.sum(-1)
    if not np.allclose(sums, 1.0, rtol=0.0, atol=_ATOL):
        what = "sum to one" if ndim == 1 else "have rows summing to one"
        raise ValueError(f"{name} must {what} (worst sum {sums.flat[np.argmax(np.abs(sums - 1.0))]!r})")
    return arr


@dataclass(frozen=True)
class DiscreteModel:
    r"""A VAE on finite :math:`\mathcal X=\{0..n_x-1\}` and :math:`\mathcal Z=\{0..n_z-1\}`, validated.

    Parameters
    ----------
    p_x : ndarray (n_x,)
        Data distribution :math:`p(x)`.
    q_z_given_x : ndarray (n_x, n_z)
        Encoder, row :math:`x` is :math:`q(\cdot\mid x)`.
    p_z : ndarray (n_z,)
        Prior :math:`p(z)`.
    p_x_given_z : ndarray (n_z, n_x)
        Decoder, row :math:`z` is :math:`p_\theta(\cdot\mid z)`.

    Raises
    ------
    ValueError
        Naming the argument, if an array has the wrong number of dimensions, inconsistent shape, a negative or
        non-finite entry, or a row not summing to one (absolute tolerance :math:`10^{-9}`).
    """

    p_x: np.ndarray
    q_z_given_x: np.ndarray
    p_z: np.ndarray
    p_x_given_z: np.ndarray

    def __post_init__(self) -> None:
        p_x = _prob_array(self.p_x, "p_x", 1)
        q = _prob_array(self.q_z_given_x, "q_z_given_x", 2)
        p_z = _prob_array(self.p_z, "p_z", 1)
        dec = _prob_array(self.p_x_given_z, "p_x_given_z", 2)
        n_x, n_z = p_x.size, p_z.size
        if q.shape != (n_x, n_z):
            raise ValueError(f"q_z_given_x must have shape (n_x, n_z) = {(n_x, n_z)}, got {q.shape}")
        if dec.shape != (n_z, n_x):
            raise ValueError(f"p_x_given_z must have shape (n_z, n_x) = {(n_z, n_x)}, got {dec.shape}")
        for name, arr in (("p_x", p_x), ("q_z_given_x", q), ("p_z", p_z), ("p_x_given_z", dec)):
            object.__setattr__(self, name, arr)

    @property
    def n_x(self) -> int:
        """Number of data values."""
        return self.p_x.size

    @property
    def n_z(self) -> int:
        """Number of code values."""
        return self.p_z.size

    def terms(self, lam: float = 1.0) -> dict[str, float]:
        """:func:`information_terms` of this model."""
        return information_terms(self.p_x, self.q_z_given_x, self.p_z, self.p_x_given_z, lam=lam)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is 0 (such entries carry zero weight in every sum below)."""
    return np.divide(num, den, out=np.zeros(np.broadcast_shapes(num.shape, den.shape)), where=den > 0)


def information_terms(p_x, q_z_given_x, p_z, p_x_given_z, *, lam: float = 1.0) -> dict[str, float]:
    r"""Every information term of the paper, exactly, and the residual of every identity it states.

    Each term is computed from its own definition (none through an identity below), with :math:`0\log0=0`, nats:

    * ``rate`` :math:`=\mathbb E_{p(x)}\mathrm{KL}(q(z\mid x)\|p(z))`, ``I_q``, ``marginal_kl``
      :math:`=\mathrm{KL}(q(z)\|p(z))`, ``I_theta``, ``h_x`` :math:`=h(X)=H(p(x))`, ``h_theta_x``
      :math:`=h_\theta(X)=H(p_\theta(x))`, ``h_theta_x_given_z`` :math:`=h_\theta(X\mid Z)=
      \mathbb E_{p_\theta(x,z)}[-\log p_\theta(x\mid z)]`, ``h_q_x_given_z`` :math:`=h_q(X\mid Z)=
      \mathbb E_{q(x,z)}[-\log q(x\mid z)]`;
    * ``cross_rec`` :math:`=\mathbb E_{q(x,z)}[-\log p_\theta(x\mid z)]` (the reconstruction loss) and
      ``I_theta_phi`` :math:`=I_{\theta\phi}=h(X)-` ``cross_rec``;
    * ``decoder_gap`` :math:`=\mathbb E_{q(z)}\mathrm{KL}(q(x\mid z)\|p_\theta(x\mid z))`, ``posterior_gap``
      :math:`=\mathbb E_{p(x)}\mathrm{KL}(q(z\mid x)\|p_\theta(z\mid x))`, ``data_kl``
      :math:`=\mathrm{KL}(p(x)\|p_\theta(x))`;
    * ``vim`` :math:`=\mathrm{VIM}_{\theta\phi}=-` ``cross_rec`` :math:`-\lambda` ``marginal_kl`` (eq. 7),
      ``elbo`` :math:`=\mathbb E_{p(x)}\mathrm{ELBO}(x)=-` ``cross_rec`` :math:`-` ``rate`` (eq. 2),
      ``loglik`` :math:`=\mathbb E_{p(x)}\log p_\theta(x)`, ``lam`` :math:`=\lambda`;
    * ``I_theta_seed`` :math:`=\mathrm{KL}(p_\theta(x,z)\|p(x)p(z))`, the paper's §3.1 definition of
      :math:`I_\theta`, which is the mutual information only on its constraint set :math:`p_\theta(x)=p(x)`.

    **Identities that hold for every model** (residual = left side − right side, zero up to rounding):

    ``res_rate_split`` (§2.3; from :func:`vaemi.metrics.categorical_kl_decomposition` with
    ``weights`` :math:`=p(x)`), and ``res_iq_forms`` (its ``mi`` against ``I_q`` computed as a joint KL):

    .. math:: \mathbb E_{p(x)}\mathrm{KL}(q(z\mid x)\|p(z)) = I_q + \mathrm{KL}(q(z)\|p(z))

    ``res_iq_entropy`` (appendix, first line): :math:`I_q = h(X) - h_q(X\mid Z)`.

    ``res_eq5`` (eq. 5): :math:`I_\theta = h_\theta(X) - h_\theta(X\mid Z)`.

    ``res_eq14`` (eq. 14):

    .. math:: \mathbb E_{q(x,z)}[-\log p_\theta(x\mid z)]
              = h_q(X\mid Z) + \mathbb E_{q(z)}\mathrm{KL}(q(x\mid z)\|p_\theta(x\mid z)),

    hence ``res_chain``: :math:`I_q - I_{\theta\phi} = \mathbb E_{q(z)}\mathrm{KL}(q(x\mid z)\|p_\theta(x\mid z))
    \ge 0`, so :math:`I_q\ge I_{\theta\phi}` always.

    ``res_bayes_gaps`` (Bayes' rule, :math:`\frac{q(x\mid z)}{p_\theta(x\mid z)}=\frac{p(x)}{p_\theta(x)}
    \frac{q(z\mid x)}{p_\theta(z\mid x)}\frac{p(z)}{q(z)}`, averaged under :math:`q(x,z)`):

    .. math:: \mathbb E_{q(z)}\mathrm{KL}(q(x\mid z)\|p_\theta(x\mid z))
              = \mathbb E_{p(x)}\mathrm{KL}(q(z\mid x)\|p_\theta(z\mid x))
              + \mathrm{KL}(p(x)\|p_\theta(x)) - \mathrm{KL}(q(z)\|p(z)).

    ``res_eq15_general`` (eq. 14 and the line above; the general form of eq. 15):

    .. math:: I_{\theta\phi} = I_q - \mathbb E_{p(x)}\mathrm{KL}(q(z\mid x)\|p_\theta(z\mid x))
              - \mathrm{KL}(p(x)\|p_\theta(x)) + \mathrm{KL}(q(z)\|p(z)).

    ``res_loglik``: :math:`\mathbb E_{p(x)}\log p_\theta(x) = -h(X) - \mathrm{KL}(p(x)\|p_\theta(x))`;
    ``res_elbo``: :math:`\mathbb E_{p(x)}\mathrm{ELBO}(x) = \mathbb E_{p(x)}\log p_\theta(x)
    - \mathbb E_{p(x)}\mathrm{KL}(q(z\mid x)\|p_\theta(z\mid x))`.

    ``res_eq8_general`` (eq. 8 with its missing terms; the bracket is what eq. 15 drops, and the whole
    right side simplifies to :math:`I_{\theta\phi}-h(X)-\lambda\,\mathrm{KL}(q(z)\|p(z))`):

    .. math:: \mathrm{VIM}_{\theta\phi} = -h(X) - \mathrm{KL}(p(x)\|p_\theta(x))
              - (\lambda-1)\,\mathrm{KL}(q(z)\|p(z)) + I_{\theta\phi}
              + \big[\mathrm{KL}(p(x)\|p_\theta(x)) - \mathrm{KL}(q(z)\|p(z))\big].

    ``res_eq8_appendix_general`` (the appendix's decomposition after Zhao et al., with the :math:`-h(X)` it
    omits):

    .. math:: \mathrm{VIM}_{\theta\phi} = -h(X) - \mathrm{KL}(p(x)\|p_\theta(x))
              - \mathbb E_{p(x)}\mathrm{KL}(q(z\mid x)\|p_\theta(z\mid x))
              - (\lambda-1)\,\mathrm{KL}(q(z)\|p(z)) + I_q.

    ``res_itheta_seed``: :math:`\mathrm{KL}(p_\theta(x,z)\|p(x)p(z)) = I_\theta + \mathrm{KL}(p_\theta(x)\|p(x))`.

    **Identities as printed, which need an assumption** (residual in closed form):

    ``res_eq15_printed`` :math:`= I_{\theta\phi} - \big(I_q - \mathbb E_{p(x)}\mathrm{KL}(q(z\mid x)\|
    p_\theta(z\mid x))\big) = \mathrm{KL}(q(z)\|p(z)) - \mathrm{KL}(p(x)\|p_\theta(x))`: eq. 15 holds iff the two
    marginal KLs are equal, in particular when :math:`q(z)=p(z)` **and** :math:`p_\theta(x)=p(x)` (both
    constraints of §3.1); either one alone is not enough. The appendix's derivation multiplies the ratio
    :math:`q(x\mid z)/p_\theta(x\mid z)` by :math:`q(z)/p(z)`, which needs the first, and cancels
    :math:`p(x)/p_\theta(x)`, which needs the second.

    ``res_eq8_printed`` :math:`=\mathrm{VIM}_{\theta\phi} - \big(-\mathrm{KL}(p(x)\|p_\theta(x)) -(\lambda-1)
    \mathrm{KL}(q(z)\|p(z)) + I_{\theta\phi}\big) = \mathrm{KL}(p(x)\|p_\theta(x)) - \mathrm{KL}(q(z)\|p(z))
    - h(X)`: eq. 8 is off by the constant :math:`-h(X)` (harmless for optimisation) plus the eq. 15 defect; it
    holds up to that constant under the eq. 15 assumption. Note that :math:`\mathrm{VIM}` does not depend on
    :math:`\mathrm{KL}(p(x)\|p_\theta(x))` at all beyond :math:`I_{\theta\phi}`.

    ``res_eq8_appendix_printed`` :math:`= -h(X)` (the appendix's Zhao et al. form without :math:`-h(X)`).

    ``res_appendix_itheta`` :math:`= I_\theta - (h(X) - h_\theta(X\mid Z)) = h_\theta(X) - h(X)`: the
    appendix's :math:`I_\theta = h(X) - h_\theta(X\mid Z)` needs :math:`H(p_\theta(x)) = H(p(x))`, e.g.
    :math:`p_\theta(x)=p(x)`.

    Parameters
    ----------
    p_x, q_z_given_x, p_z, p_x_given_z : array_like
        As in :class:`DiscreteModel` (validated there).
    lam : float
        :math:`\lambda` of eq. 7, finite.

    Returns
    -------
    dict of str to float

    Raises
    ------
    ValueError
        From :class:`DiscreteModel`, naming the bad argument; or if ``lam`` is not finite.

    Notes
    -----
    A zero of :math:`p_\theta(x\mid z)` where :math:`q(x,z)>0` makes ``cross_rec``/``decoder_gap``
    infinite (and residuals ``nan``); :func:`random_model` instances are strictly positive.
    """
    m = DiscreteModel(p_x, q_z_given_x, p_z, p_x_given_z)
    lam = float(lam)
    if not math.isfinite(lam):
        raise ValueError(f"lam must be finite, got {lam!r}")
    px, pz = m.p_x, m.p_z
    q_xz = px[:, None] * m.q_z_given_x                       # q(x, z), (n_x, n_z)
    q_z = q_xz.sum(0)
    q_x_given_z = _safe_div(q_xz, q_z[None, :])               # q(x|z), column z
    dec = m.p_x_given_z.T                                     # p_theta(x|z), column z, (n_x, n_z)
    pt_xz = dec * pz[None, :]                                 # p_theta(x, z)
    pt_x = pt_xz.sum(1)
    pt_z_given_x = _safe_div(pt_xz, pt_x[:, None])            # p_theta(z|x), row x

    dec_kl = categorical_kl_decomposition(m.q_z_given_x, pz, weights=px)
    rate, mi, marginal_kl = dec_kl["rate"], dec_kl["mi"], dec_kl["marginal_kl"]
    i_q = rel_entr(q_xz, px[:, None] * q_z[None, :]).sum()
    i_theta = rel_entr(pt_xz, pt_x[:, None] * pz[None, :]).sum()
    i_theta_seed = rel_entr(pt_xz, px[:, None] * pz[None, :]).sum()
    h_x = entr(px).sum()
    h_theta_x = entr(pt_x).sum()
    h_theta_x_given_z = -xlogy(pt_xz, dec).sum()
    h_q_x_given_z = -xlogy(q_xz, q_x_given_z).sum()
    cross_rec = -xlogy(q_xz, dec).sum()
    i_theta_phi = h_x - cross_rec
    decoder_gap = rel_entr(q_xz, q_z[None, :] * dec).sum()    # sum_z q(z) KL(q(.|z) || p_theta(.|z))
    posterior_gap = rel_entr(q_xz, px[:, None] * pt_z_given_x).sum()
    data_kl = rel_entr(px, pt_x).sum()
    data_kl_reverse = rel_entr(pt_x, px).sum()
    vim = -cross_rec - lam * marginal_kl
    elbo = -cross_rec - rate
    loglik = xlogy(px, pt_x).sum()

    t = {"rate": rate, "I_q": i_q, "marginal_kl": marginal_kl, "I_theta": i_theta, "I_theta_seed": i_theta_seed,
         "h_x": h_x, "h_theta_x": h_theta_x, "h_theta_x_given_z": h_theta_x_given_z,
         "h_q_x_given_z": h_q_x_given_z, "cross_rec": cross_rec, "I_theta_phi": i_theta_phi,
         "decoder_gap": decoder_gap, "posterior_gap": posterior_gap, "data_kl": data_kl, "vim": vim,
         "elbo": elbo, "loglik": loglik, "lam": lam}
    with np.errstate(invalid="ignore"):  # inf - inf = nan when p_theta(x|z) = 0 where q(x, z) > 0
        t["res_rate_split"] = dec_kl["residual"]
        t["res_iq_forms"] = i_q - mi
        t["res_iq_entropy"] = i_q - (h_x - h_q_x_given_z)
        t["res_eq5"] = i_theta - (h_theta_x - h_theta_x_given_z)
        t["res_eq14"] = cross_rec - (h_q_x_given_z + decoder_gap)
        t["res_chain"] = (i_q - i_theta_phi) - decoder_gap
        t["res_bayes_gaps"] = decoder_gap - (posterior_gap + data_kl - marginal_kl)
        t["res_eq15_general"] = i_theta_phi - (i_q - posterior_gap - data_kl + marginal_kl)
        t["res_eq15_printed"] = i_theta_phi - (i_q - posterior_gap)
        t["res_loglik"] = loglik - (-h_x - data_kl)
        t["res_elbo"] = elbo - (loglik - posterior_gap)
        t["res_eq8_printed"] = vim - (-data_kl - (lam - 1.0) * marginal_kl + i_theta_phi)
        t["res_eq8_general"] = vim - (-h_x - data_kl - (lam - 1.0) * marginal_kl + i_theta_phi
                                      + (data_kl - marginal_kl))
        t["res_eq8_appendix_printed"] = vim - (-data_kl - posterior_gap - (lam - 1.0) * marginal_kl + i_q)
        t["res_eq8_appendix_general"] = vim - (-h_x - data_kl - posterior_gap - (lam - 1.0) * marginal_kl + i_q)
        t["res_itheta_seed"] = i_theta_seed - (i_theta + data_kl_reverse)
        t["res_appendix_itheta"] = i_theta - (h_x - h_theta_x_given_z)
    return {k: float(v) for k, v in t.items()}


def _sinkhorn_coupling(a: np.ndarray, b: np.ndarray, kernel: np.ndarray, tol: float = 1e-13,
                       max_iter: int = 10_000) -> np.ndarray:
    """A joint with column sums ``b`` and row sums ``a`` (to ``tol``), by Sinkhorn scaling of a positive
    ``kernel`` (linear convergence; a few dozen iterations for the sizes used here)."""
    v = np.ones(b.size)
    for _ in range(max_iter):
        u = a / (kernel @ v)
        v = b / (kernel.T @ u)
        pi = u[:, None] * kernel * v[None, :]
        if np.max(np.abs(pi.sum(1) - a)) < tol:
            break
    return pi


def random_model(n_x: int, n_z: int, rng: np.random.Generator | int | None = None, *, matched: bool = False,
                 concentration: float = 1.0, decoder: str = "random") -> DiscreteModel:
    r"""A random :class:`DiscreteModel`: :math:`p(x)`, each row of :math:`q(z\mid x)` and :math:`p(z)` drawn from a
    symmetric Dirichlet (all entries positive almost surely).

    Parameters
    ----------
    n_x, n_z : int
        Sizes of :math:`\mathcal X` and :math:`\mathcal Z`, at least 1.
    rng : numpy Generator or int or None
        Random source (an int seeds ``numpy.random.default_rng``).
    matched : bool
        If true, set :math:`p(z) := q(z)`, so that :math:`\mathrm{KL}(q(z)\|p(z))=0` exactly (the constraint of
        eq. 6).
    concentration : float
        Dirichlet concentration, > 0 (small: near-deterministic rows; large: near-uniform).
    decoder : {"random", "posterior", "marginal"}
        ``"random"``: Dirichlet rows :math:`p_\theta(x\mid z)`. ``"posterior"``: :math:`p_\theta(x\mid z) :=
        q(x\mid z)`; with ``matched`` this is the appendix's optimum :math:`p_\theta(x,z)=q(x,z)`, where
        :math:`I_\theta=I_q=I_{\theta\phi}`. ``"marginal"``: a random decoder whose generative marginal is the
        data, :math:`\sum_z p(z)p_\theta(x\mid z)=p(x)` (a Sinkhorn-scaled random coupling of :math:`p(x)` and
        :math:`p(z)`, i.e. :math:`p_\theta\in\mathcal P_\theta` of §3.1, to :math:`10^{-13}`).

    Returns
    -------
    DiscreteModel

    Raises
    ------
    ValueError
        If ``n_x``, ``n_z``, ``concentration`` or ``decoder`` is invalid (the message names it).
    """
    for name, n in (("n_x", n_x), ("n_z", n_z)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{name} must be a positive integer, got {n!r}")
    concentration = float(concentration)
    if not (math.isfinite(concentration) and concentration > 0):
        raise ValueError(f"concentration must be a positive number, got {concentration!r}")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {list(DECODERS)}, got {decoder!r}")
    rng = np.random.default_rng(rng)
    alpha_x, alpha_z = np.full(n_x, concentration), np.full(n_z, concentration)
    p_x = rng.dirichlet(alpha_x)
    q = rng.dirichlet(alpha_z, size=n_x)
    q_z = p_x @ q
    p_z = q_z.copy() if matched else rng.dirichlet(alpha_z)
    if decoder == "random":
        dec = rng.dirichlet(alpha_x, size=n_z)
    elif decoder == "posterior":
        dec = _safe_div(p_x[:, None] * q, q_z[None, :]).T
    else:
        pi = _sinkhorn_coupling(p_x, p_z, rng.dirichlet(np.ones(n_x * n_z)).reshape(n_x, n_z))
        dec = _safe_div(pi, pi.sum(0)[None, :]).T
    empty = dec.sum(1) <= 0                   # a code of zero mass (possible only for tiny concentrations)
    dec[empty] = p_x
    dec = dec / dec.sum(1, keepdims=True)
    return DiscreteModel(p_x, q, p_z, dec)


def chain_check(model: DiscreteModel) -> dict[str, float | bool]:
    r"""The appendix's chain :math:`I_{\theta^*}\ge I_q\ge I_{\theta\phi}` on one model.

    :math:`I_q\ge I_{\theta\phi}` holds for every model (their difference is the decoder gap, eq. 14).
    :math:`I_\theta\ge I_q` does **not** hold for a given decoder: :math:`I_\theta` depends only on
    :math:`(p(z), p_\theta(x\mid z))` and :math:`I_q` only on :math:`(p(x), q(z\mid x))`. The appendix's claim is
    about the best decoder :math:`\theta^*`, and needs :math:`q(z)=p(z)`: then :math:`p_\theta(x\mid z)=q(x\mid z)`
    is admissible and attains :math:`I_q`. Without it the claim can fail for every decoder, because
    :math:`I_\theta\le H(p(z))` (finite :math:`\mathcal Z`) while :math:`I_q` may exceed :math:`H(p(z))`.

    Parameters
    ----------
    model : DiscreteModel

    Returns
    -------
    dict
        ``I_theta``, ``I_q``, ``I_theta_phi``, ``h_prior`` :math:`=H(p(z))` (an upper bound on :math:`I_\theta` for
        every decoder), ``iq_ge_itheta_phi``, ``itheta_ge_iq`` and ``no_decoder_reaches_iq``
        (:math:`H(p(z)) < I_q`).
    """
    if not isinstance(model, DiscreteModel):
        raise ValueError(f"model must be a DiscreteModel, got {type(model).__name__}")
    t = model.terms()
    h_prior = float(entr(model.p_z).sum())
    return {"I_theta": t["I_theta"], "I_q": t["I_q"], "I_theta_phi": t["I_theta_phi"], "h_prior": h_prior,
            "iq_ge_itheta_phi": t["I_q"] >= t["I_theta_phi"] - 1e-12,
            "itheta_ge_iq": t["I_theta"] >= t["I_q"] - 1e-12,
            "no_decoder_reaches_iq": h_prior < t["I_q"]}


# --------------------------------------------------------------------------------------------- continuous codes

def _vector(a, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a, dtype=np.float64))
    if t.ndim != 1 or t.numel() == 0 or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be a non-empty finite 1-d array, got shape {tuple(t.shape)}")
    return t


@torch.no_grad()
def kl_additive_check(mu, sigma, *, prior: str = "normal", n_samples: int = 200_000, seed: int = 0,
                      n_nodes: int = 101) -> dict[str, float | np.ndarray]:
    r"""Eq. 3 on one posterior: for :math:`q(z\mid x)=\prod_i\mathcal N(\mu_i,\sigma_i^2)` and a factorized prior
    :math:`p(z)=\prod_i p(z_i)` (:func:`vaemi.priors.make_prior`),

    .. math:: \mathrm{KL}(q(z\mid x)\|p(z)) = \sum_{i=1}^d \mathrm{KL}(q(z_i\mid x)\|p(z_i)).

    The per-dimension KLs are computed by Gauss–Hermite quadrature,
    :math:`\mathrm{KL}_i=-\tfrac12\log(2\pi e\sigma_i^2)-\mathbb E_{\mathcal N(\mu_i,\sigma_i^2)}[\log p(z_i)]`
    (and, for the normal prior, in closed form by ``torch.distributions.kl_divergence`` on ``Normal``); the joint
    KL in closed form (normal prior: ``kl_divergence`` of the two ``Independent`` laws) and by Monte Carlo
    :math:`\frac1n\sum_k\log q(z_k\mid x)-\log p(z_k)`, :math:`z_k\sim q(z\mid x)`; and the sum of per-dimension
    Monte-Carlo KLs from a second, independent set of draws.

    Parameters
    ----------
    mu, sigma : array_like (d,)
        Posterior means and standard deviations (``sigma`` > 0).
    prior : {"normal", "logistic"}
        The prior (:data:`vaemi.priors.PRIORS`), built in float64.
    n_samples : int
        Monte-Carlo draws, >= 2.
    seed : int
        Seed of a private ``torch.Generator``.
    n_nodes : int
        Gauss–Hermite nodes.

    Returns
    -------
    dict
        ``per_dim`` (ndarray (d,), quadrature), ``sum_per_dim``, ``per_dim_closed_form`` and
        ``sum_per_dim_closed_form`` (normal prior; ``nan`` otherwise), ``joint_closed_form`` (normal prior; ``nan``
        otherwise), ``joint_mc`` and ``joint_mc_se``, ``sum_per_dim_mc`` and ``sum_per_dim_mc_se``, in nats.

    Raises
    ------
    ValueError
        If ``mu``/``sigma`` are not matching finite vectors, ``sigma`` is not positive, ``prior`` is unknown or
        ``n_samples`` < 2.
    """
    mu, sigma = _vector(mu, "mu"), _vector(sigma, "sigma")
    if sigma.shape != mu.shape:
        raise ValueError(f"sigma must have the shape of mu {tuple(mu.shape)}, got {tuple(sigma.shape)}")
    if bool((sigma <= 0).any()):
        raise ValueError("sigma must be positive")
    n_samples = int(n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    d = mu.numel()
    p = make_prior(prior, d, dtype=torch.float64)
    q = D.Independent(D.Normal(mu, sigma), 1)

    nodes, wts = np.polynomial.hermite_e.hermegauss(int(n_nodes))  # weight exp(-t^2/2)
    wts = torch.as_tensor(wts / math.sqrt(2.0 * math.pi))
    z_nodes = mu[None, :] + sigma[None, :] * torch.as_tensor(nodes)[:, None]
    e_logp = (wts[:, None] * p.base_dist.log_prob(z_nodes)).sum(0)
    per_dim = (-0.5 * torch.log(2.0 * math.pi * math.e * sigma ** 2) - e_logp).numpy()

    nan = float("nan")
    per_dim_cf, joint_cf = np.full(d, nan), nan
    if prior == "normal":
        per_dim_cf = D.kl_divergence(q.base_dist, p.base_dist).numpy()
        joint_cf = float(D.kl_divergence(q, p))

    g = torch.Generator().manual_seed(int(seed))
    z = mu + sigma * torch.randn((n_samples, d), generator=g, dtype=torch.float64)
    diff = q.log_prob(z) - p.log_prob(z)
    z2 = mu + sigma * torch.randn((n_samples, d), generator=g, dtype=torch.float64)
    diff2 = q.base_dist.log_prob(z2) - p.base_dist.log_prob(z2)  # (n, d), independent of the draws above
    return {"per_dim": per_dim, "sum_per_dim": float(per_dim.sum()),
            "per_dim_closed_form": per_dim_cf, "sum_per_dim_closed_form": float(per_dim_cf.sum()),
            "joint_closed_form": joint_cf,
            "joint_mc": float(diff.mean()), "joint_mc_se": float(diff.std() / math.sqrt(n_samples)),
            "sum_per_dim_mc": float(diff2.mean(0).sum()),
            "sum_per_dim_mc_se": float(math.sqrt(float(diff2.var(0).sum()) / n_samples))}


def _mixture_args(mu, var, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    if mu.ndim != 2 or mu.shape[0] == 0 or mu.shape[1] == 0:
        raise ValueError(f"mu must be a non-empty (N, d) array, got shape {mu.shape}")
    if var.shape != mu.shape:
        raise ValueError(f"var must have the shape of mu {mu.shape}, got {var.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(var))):
        raise ValueError("mu and var must be finite")
    if np.any(var <= 0):
        raise ValueError("var must be positive")
    if weights is None:
        w = np.full(mu.shape[0], 1.0 / mu.shape[0])
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (mu.shape[0],) or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.isclose(w.sum(), 1):
            raise ValueError(f"weights must be a probability vector of length N={mu.shape[0]}")
    return mu, var, w


def mixture_entropy_bounds(mu, var, weights=None, *, chunk_elems: int = 2 ** 22) -> tuple[float, float]:
    r"""Lower and upper bounds on the entropy of a mixture of diagonal Gaussians (Kolchinsky & Tracey 2017,
    "Estimating mixture entropy with pairwise distances", Entropy 19:361), e.g. the aggregate posterior
    :math:`q(z)=\frac1N\sum_n\mathcal N(\mu_n,\mathrm{diag}\,\sigma_n^2)`.

    With component entropies :math:`h(p_i)=\tfrac12\sum_k\log(2\pi e\,\sigma_{ik}^2)`, the pairwise-distance
    estimator

    .. math:: \hat h_D = \sum_i w_i h(p_i) - \sum_i w_i \log\sum_j w_j\, e^{-D(p_i\|p_j)}

    is an upper bound with :math:`D=\mathrm{KL}` and a lower bound with the Bhattacharyya distance (the Chernoff
    :math:`\alpha`-divergence at :math:`\alpha=\tfrac12`). For diagonal Gaussians

    .. math:: \mathrm{KL}(p_i\|p_j) = \tfrac12\sum_k\Big[\log\frac{\sigma_{jk}^2}{\sigma_{ik}^2}
              + \frac{\sigma_{ik}^2 + (\mu_{ik}-\mu_{jk})^2}{\sigma_{jk}^2} - 1\Big],\qquad
              \mathrm{BD}(p_i,p_j) = \sum_k\Big[\frac{(\mu_{ik}-\mu_{jk})^2}{8\,\bar\sigma_{k}^2}
              + \tfrac12\log\frac{\bar\sigma_{k}^2}{\sigma_{ik}\sigma_{jk}}\Big],

    :math:`\bar\sigma_k^2=\tfrac12(\sigma_{ik}^2+\sigma_{jk}^2)`. Both bounds equal :math:`h(p_1)` for one
    component (or identical ones) and :math:`\sum_i w_ih(p_i)+H(w)` for components infinitely far apart.

    Parameters
    ----------
    mu, var : array_like (N, d)
        Component means and variances (> 0).
    weights : array_like (N,), optional
        Mixture weights (default :math:`1/N`).
    chunk_elems : int
        Rows of the :math:`N\times N` distance matrices are processed in blocks of about this many
        :math:`(i,j)` pairs (memory :math:`\approx 8\times` that in bytes per temporary, a handful of them).
        The KL matrix comes from matrix products (expanding :math:`(\mu_{ik}-\mu_{jk})^2`), the
        Bhattacharyya matrix from a loop over the :math:`d` dimensions.

    Returns
    -------
    (float, float)
        ``(lower, upper)`` in nats.

    Raises
    ------
    ValueError
        If ``mu``/``var``/``weights`` are malformed (the message names the argument).
    """
    mu, var, w = _mixture_args(mu, var, weights)
    n, d = mu.shape
    log_var = np.log(var)
    sum_log_var = log_var.sum(1)
    h_comp = 0.5 * (d * math.log(2.0 * math.pi * math.e) + sum_log_var)
    inv_var = 1.0 / var
    # KL by matrix products: sum_k (mu_ik - mu_jk)^2 / v_jk expanded in mu_i and mu_j
    scale = np.exp(np.median(log_var, axis=0))   # per-dimension scale, keeps the products below in range
    v_s, mu_s = var / scale, mu / np.sqrt(scale)
    # S_i = sum_j w_j exp(-D_ij) accumulated directly: every term is <= w_j <= 1 and the diagonal one is w_i,
    # so no shift is needed (the log-sum-exp of the formula is log S_i).
    s_kl, s_bd = np.zeros(n), np.zeros(n)
    sq_norm = (mu ** 2 * inv_var).sum(1)
    mu_iv = mu * inv_var
    log_const = 0.5 * (np.log(scale).sum() - d * math.log(2.0))
    step = max(1, int(chunk_elems) // n)
    for s in range(0, n, step):
        e = min(n, s + step)
        rows = np.arange(e - s)
        kl = (var[s:e] + mu[s:e] ** 2) @ inv_var.T - 2.0 * mu[s:e] @ mu_iv.T
        kl += sq_norm[None, :] + sum_log_var[None, :] - sum_log_var[s:e, None] - d
        kl *= -0.5
        kl[rows, rows + s] = 0.0  # exact zeros on the diagonal (rounding otherwise leaves ~1e-16)
        s_kl[s:e] = np.exp(kl, out=kl) @ w
        # Bhattacharyya is symmetric: only columns j >= s, each off-diagonal block counted for rows and columns
        shape = (e - s, n - s)
        quad = np.zeros(shape)                     # sum_k (mu_ik - mu_jk)^2 / (v_ik + v_jk)
        log_sum = np.zeros(shape)                  # sum_k log((v_ik + v_jk) / scale_k), 4 factors per log
        prod, vs, dm = np.ones(shape), np.empty(shape), np.empty(shape)
        for k in range(d):
            np.add(v_s[s:e, k, None], v_s[None, s:, k], out=vs)
            np.subtract(mu_s[s:e, k, None], mu_s[None, s:, k], out=dm)
            np.multiply(dm, dm, out=dm)
            np.divide(dm, vs, out=dm)
            quad += dm
            prod *= vs
            if k % 4 == 3 or k == d - 1:
                log_sum += np.log(prod, out=prod)
                prod.fill(1.0)
        bd = -0.25 * quad - 0.5 * log_sum
        bd += 0.25 * (sum_log_var[s:e, None] + sum_log_var[None, s:]) - log_const
        bd[rows, rows] = 0.0
        np.exp(bd, out=bd)
        s_bd[s:e] += bd @ w[s:]
        s_bd[e:] += w[s:e] @ bd[:, e - s:]
    h_cond = float(w @ h_comp)
    pos = w > 0
    return h_cond - float(w[pos] @ np.log(s_bd[pos])), h_cond - float(w[pos] @ np.log(s_kl[pos]))


def mixture_entropy_mc(mu, var, weights=None, *, n_samples: int = 100_000,
                       rng: np.random.Generator | int | None = None) -> tuple[float, float]:
    r"""Monte-Carlo entropy :math:`-\frac1n\sum_k\log q(z_k)`, :math:`z_k\sim q`, of the mixture of
    :func:`mixture_entropy_bounds`, with its standard error.

    Parameters
    ----------
    mu, var : array_like (N, d)
    weights : array_like (N,), optional
    n_samples : int
        Draws, >= 2 (memory :math:`\propto` ``n_samples`` :math:`\times N`; keep :math:`N` small).
    rng : numpy Generator or int or None

    Returns
    -------
    (float, float)
        Estimate and standard error, in nats.
    """
    mu, var, w = _mixture_args(mu, var, weights)
    n_samples = int(n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    rng = np.random.default_rng(rng)
    comp = rng.choice(mu.shape[0], size=n_samples, p=w)
    z = mu[comp] + np.sqrt(var[comp]) * rng.standard_normal((n_samples, mu.shape[1]))
    log_comp = -0.5 * (np.log(2.0 * math.pi * var)[None] + (z[:, None, :] - mu[None]) ** 2 / var[None]).sum(-1)
    with np.errstate(divide="ignore"):
        nll = -logsumexp(np.log(w)[None, :] + log_comp, axis=1)
    return float(nll.mean()), float(nll.std(ddof=1) / math.sqrt(n_samples))


def knn_entropy(z, k: int = 3) -> float:
    r"""Kozachenko–Leonenko :math:`k`-nearest-neighbour estimate of the differential entropy of samples ``z``,

    .. math:: \hat h = \psi(N) - \psi(k) + \log V_d + \frac dN\sum_{n=1}^N \log r_{n,k},
              \qquad V_d = \frac{\pi^{d/2}}{\Gamma(d/2+1)},

    :math:`r_{n,k}` the Euclidean distance from :math:`z_n` to its :math:`k`-th nearest other sample
    (``scipy.spatial.cKDTree``). Meant for deterministic codes :math:`z_n=f(x_n)`, whose aggregate posterior is
    a set of points.

    Parameters
    ----------
    z : array_like (N, d)
        Samples (N > k), pairwise distinct enough that every :math:`r_{n,k}>0`.
    k : int
        Neighbour order, >= 1.

    Returns
    -------
    float
        Estimate in nats.

    Raises
    ------
    ValueError
        If ``z`` is not a finite (N, d) array with N > ``k``, if ``k`` < 1, or if some point has ``k``
        duplicates (zero distance).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] == 0 or z.shape[0] <= k or not np.all(np.isfinite(z)):
        raise ValueError(f"z must be a finite (N, d) array with N > k={k}, got shape {z.shape}")
    n, d = z.shape
    dist, _ = cKDTree(z).query(z, k=k + 1)
    r = dist[:, -1]
    if np.any(r <= 0):
        raise ValueError(f"z has {int(np.sum(r <= 0))} points with a zero distance to their k-th neighbour "
                         "(duplicates); add jitter or deduplicate")
    log_vd = 0.5 * d * math.log(math.pi) - gammaln(0.5 * d + 1.0)
    return float(digamma(n) - digamma(k) + log_vd + d * np.mean(np.log(r)))
