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
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import entr, rel_entr, xlogy

from vaemi.measures.metrics import categorical_kl_decomposition

__all__ = ["DECODERS", "DiscreteModel", "information_terms", "random_model", "chain_check"]


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

    ``res_rate_split`` (§2.3; from :func:`vaemi.measures.metrics.categorical_kl_decomposition` with
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
