"""Models in which everything is exact, used to check the derivations numerically.

:class:`LinearGaussian` is probabilistic PCA (Tipping & Bishop 1999): :math:`z\\sim\\mathcal N(0,I_d)`,
:math:`x\\mid z\\sim\\mathcal N(Wz+b,\\sigma^2 I_D)`. Its marginal :math:`p(x)` and posterior
:math:`p(z\\mid x)` are Gaussian in closed form, so the ELBO identity, the Jensen gap and Monte
Carlo estimators of :math:`\\log p(x)` can be compared with the truth. Computations in float64.

:func:`lemma1_sides` evaluates both sides of Lemma 1 of InfoGAN exactly on finite spaces;
:func:`lemma1_trials` checks it, and the variational MI lower bound, on random discrete joints.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import distributions as D

from vaemi.maths.distributions import log_mean_exp

__all__ = ["LinearGaussian", "lemma1_sides", "lemma1_trials"]


@dataclass
class LinearGaussian:
    """Probabilistic PCA, :math:`z\\sim\\mathcal N(0,I_d)`, :math:`x\\mid z\\sim\\mathcal N(Wz+b,\\sigma^2 I_D)`.

    Parameters
    ----------
    W : tensor (D, d)
        Loading matrix.
    b : tensor (D,)
        Offset.
    sigma2 : float
        Observation noise variance :math:`\\sigma^2`.
    """

    W: torch.Tensor  #: (D, d) loading matrix
    b: torch.Tensor  #: (D,) offset
    sigma2: float    #: observation noise variance

    @classmethod
    def random(cls, d: int, D_: int, sigma: float = 0.5, scale: float = 1.0, seed: int = 0) -> "LinearGaussian":
        g = torch.Generator().manual_seed(seed)
        W = scale * torch.randn(D_, d, generator=g, dtype=torch.float64) / math.sqrt(d)
        b = torch.randn(D_, generator=g, dtype=torch.float64)
        return cls(W, b, float(sigma) ** 2)

    @property
    def d(self) -> int:
        return self.W.shape[1]

    @property
    def D(self) -> int:
        return self.W.shape[0]

    def prior(self) -> D.MultivariateNormal:
        return D.MultivariateNormal(torch.zeros(self.d, dtype=torch.float64),
                                    torch.eye(self.d, dtype=torch.float64))

    def likelihood(self, z: torch.Tensor) -> D.Independent:
        """:math:`p(x\\mid z)` for a batch of codes ``z`` (..., d)."""
        return D.Independent(D.Normal(z @ self.W.T + self.b, math.sqrt(self.sigma2)), 1)

    def marginal(self) -> D.MultivariateNormal:
        """:math:`p(x)=\\mathcal N(b, WW^\\top+\\sigma^2 I)`."""
        cov = self.W @ self.W.T + self.sigma2 * torch.eye(self.D, dtype=torch.float64)
        return D.MultivariateNormal(self.b, cov)

    def posterior(self, x: torch.Tensor) -> D.MultivariateNormal:
        """:math:`p(z\\mid x)=\\mathcal N(M^{-1}W^\\top(x-b),\\ \\sigma^2M^{-1})`, :math:`M=W^\\top W+\\sigma^2I`
        (Bishop 2006, eq. 12.42)."""
        M = self.W.T @ self.W + self.sigma2 * torch.eye(self.d, dtype=torch.float64)
        Minv = torch.linalg.inv(M)
        mean = (x - self.b) @ self.W @ Minv.T
        return D.MultivariateNormal(mean, self.sigma2 * Minv)

    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.d, generator=g, dtype=torch.float64)
        x = z @ self.W.T + self.b + math.sqrt(self.sigma2) * torch.randn(n, self.D, generator=g, dtype=torch.float64)
        return x, z

    def expected_loglik(self, x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathbb E_{z\sim\mathcal N(m,S)}\log p(x\mid z)
        = -\tfrac D2\log 2\pi\sigma^2 - \frac{\lVert x-b-Wm\rVert^2 + \mathrm{tr}(WSW^\top)}{2\sigma^2}`."""
        r = x - self.b - mean @ self.W.T
        tr = torch.einsum("ij,...jk,ik->...", self.W, cov, self.W)
        return -0.5 * self.D * math.log(2 * math.pi * self.sigma2) - (r.pow(2).sum(-1) + tr) / (2 * self.sigma2)

    def elbo(self, x: torch.Tensor, q: D.MultivariateNormal) -> torch.Tensor:
        """:math:`\\mathcal L(q)=\\mathbb E_q\\log p(x|z)-\\mathrm{KL}(q\\,\\|\\,p(z))`, in closed form."""
        return self.expected_loglik(x, q.mean, q.covariance_matrix) - D.kl_divergence(q, self.prior())

    def mc_log_marginal(self, x: torch.Tensor, m: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Eq. (1) of the basics notes: :math:`\log\frac1m\sum_i p(x\mid z_i)`, :math:`z_i\sim p(z)`.

        Parameters
        ----------
        x : tensor (D,)
            One observation.
        m : int
            Number of prior samples.
        seed : int

        Returns
        -------
        estimate : tensor
            The Monte Carlo estimate of :math:`\log p(x)`.
        ess : tensor
            The effective sample size :math:`(\sum w)^2/\sum w^2` of the weights :math:`w_i=p(x\mid z_i)`.
        """
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(m, self.d, generator=g, dtype=torch.float64)
        logw = self.likelihood(z).log_prob(x)
        est = log_mean_exp(logw, 0)
        ess = torch.exp(2 * torch.logsumexp(logw, 0) - torch.logsumexp(2 * logw, 0))
        return est, ess


def lemma1_sides(p_z: np.ndarray, p_x_given_z: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    r"""Both sides of Lemma 1 (InfoGAN), computed exactly on finite spaces:
    :math:`\mathbb E_{z, x\mid z}[f(x,z)]` and :math:`\mathbb E_{z, x\mid z, z'\sim p(z\mid x)}[f(x,z')]`.

    Parameters
    ----------
    p_z : array (Z,)
        The prior.
    p_x_given_z : array (Z, X)
        The conditional, rows summing to one.
    f : array (X, Z)
        Any function of (x, z).

    Returns
    -------
    lhs, rhs : float
        The two sides (equal, by the lemma).
    """
    p_z, pxz, f = np.asarray(p_z, float), np.asarray(p_x_given_z, float), np.asarray(f, float)
    joint = p_z[:, None] * pxz                     # p(z, x), shape (Z, X)
    lhs = float((joint * f.T).sum())
    p_x = joint.sum(0)                             # (X,)
    post = joint / p_x                             # p(z | x), columns sum to one, shape (Z, X)
    inner = (post * f.T).sum(0)                    # E_{z' ~ p(z'|x)} f(x, z'), shape (X,)
    rhs = float((p_x * inner).sum())
    return lhs, rhs


def lemma1_trials(rng: np.random.Generator, trials: int = 20, n_z: int = 4, n_x: int = 6) -> pd.DataFrame:
    r"""Lemma 1 and the variational MI lower bound on ``trials`` random discrete joints, exactly.

    Per trial: a prior :math:`p(z)` and a conditional :math:`p(x\mid z)` (flat Dirichlet draws), a
    function :math:`f(x,z)` (standard normal) for the two sides of :func:`lemma1_sides`, and an
    arbitrary :math:`q(z\mid x)` for the bound :math:`I(z,x)\ge\mathbb E\log q(z\mid x)+H(z)`.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of every draw (in this order per trial: prior, conditional, ``f``, ``q``).
    trials, n_z, n_x : int
        Number of joints and the sizes of the two spaces.

    Returns
    -------
    pandas.DataFrame
        One row per trial: ``lemma_err`` (:math:`|\text{lhs}-\text{rhs}|` of Lemma 1), ``I`` (the exact
        :math:`I(z,x)`), ``bound_any_q`` (the bound with the arbitrary ``q``) and ``bound_true_posterior``
        (with :math:`q=p(z\mid x)`, equal to ``I``).
    """
    rows = []
    for _ in range(trials):
        p_z = rng.dirichlet(np.ones(n_z))
        p_x_z = rng.dirichlet(np.ones(n_x), size=n_z)
        lhs, rhs = lemma1_sides(p_z, p_x_z, rng.normal(size=(n_x, n_z)))
        joint = p_z[:, None] * p_x_z
        p_x = joint.sum(0)
        mi = float((joint * np.log(joint / (p_z[:, None] * p_x))).sum())
        h_z = float(-(p_z * np.log(p_z)).sum())
        q = rng.dirichlet(np.ones(n_z), size=n_x).T                 # an arbitrary q(z|x), shape (Z, X)
        rows.append(dict(lemma_err=abs(lhs - rhs), I=mi, bound_any_q=float((joint * np.log(q)).sum()) + h_z,
                         bound_true_posterior=float((joint * np.log(joint / p_x)).sum()) + h_z))
    return pd.DataFrame(rows)
