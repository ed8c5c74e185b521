"""Latent spaces made of parts: a Gaussian block, a deterministic block (VIMAE) and a categorical block
(Gumbel-softmax), each with its posterior, its reparameterized sample, its KL to the prior and its prior (standard
normal, or the unit-variance logistic of :mod:`vaemi.maths.priors`); :class:`LatentSpace` joins them."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import distributions as D

from vaemi.maths.distributions import gaussian_log_prob, kl_categorical_uniform, kl_normal_std_normal
from vaemi.maths.priors import LOGISTIC_UNIT_SCALE as s
from vaemi.maths.priors import PRIORS, logistic_from_uniform, prior_entropy

__all__ = ["part_names", "GaussianPart", "DeterministicPart", "CategoricalPart", "LatentSpace"]


def part_names(part: str | Sequence[str]) -> list[str]:
    """One latent part's name, or several, as a list.

    Parameters
    ----------
    part : str or sequence of str
        A part name (``"c"``) or names (``["z", "c"]``).

    Returns
    -------
    list of str
    """
    return [part] if isinstance(part, str) else list(part)


# --------------------------------------------------------------------------------------- latents
class _ContinuousPrior:
    r"""The prior of a continuous latent part: ``"normal"`` :math:`\mathcal N(0, I)` or ``"logistic"`` (mean 0,
    unit variance per dimension, :mod:`vaemi.maths.priors`)."""

    prior = "normal"

    def _set_prior(self, prior: str) -> None:

        if prior not in PRIORS:
            raise ValueError(f"latent part {self.name!r}: unknown prior {prior!r}; choose one of {list(PRIORS)}")
        self.prior = prior

    def sample_prior(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws from the prior (from ``generator`` when given)."""
        if self.prior == "normal":
            return torch.randn(n, self.size, device=device, generator=generator)

        return logistic_from_uniform(torch.rand(n, self.size, device=device, generator=generator))

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(z)` per dimension, shape of ``z``."""
        if self.prior == "normal":
            return -0.5 * (z.pow(2) + math.log(2 * math.pi))

        t = z / s
        return -t - math.log(s) - 2 * F.softplus(-t)

    def prior_entropy(self) -> float:
        """Differential entropy of the prior (nats), :func:`vaemi.maths.priors.prior_entropy`."""

        return prior_entropy(self.prior, self.size)


#: Gauss-Hermite nodes and weights (64 points) for :math:`\mathbb E_{\mathcal N(\mu,\sigma^2)}[f(z)]`.
_GH_NODES, _GH_WEIGHTS = (torch.from_numpy(a) for a in np.polynomial.hermite.hermgauss(64))


class GaussianPart(_ContinuousPrior):
    r"""A block of ``size`` Gaussian latents, :math:`q(z\mid x)=\mathcal N(\mu, \mathrm{diag}\,\sigma^2)`,
    prior ``prior`` (:math:`\mathcal N(0, I)` by default; ``"logistic"``: the unit-variance Logistic of
    :mod:`vaemi.maths.priors`, KL by 64-point Gauss-Hermite quadrature per dimension). Encoder parameters:
    ``[mu, logvar]`` (``2 * size`` numbers)."""

    kind = "gaussian"

    def __init__(self, size: int, name: str = "z", prior: str = "normal"):
        if size < 1:
            raise ValueError(f"latent part {name!r} needs size >= 1, got {size}")
        self.size, self.name = int(size), name
        self.n_params = 2 * self.size
        self._set_prior(prior)

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = params.chunk(2, dim=-1)
        return mu, logvar

    def posterior(self, params: torch.Tensor) -> D.Normal:
        mu, logvar = self.split(params)
        return D.Normal(mu, (0.5 * logvar).exp())

    def rsample(self, params: torch.Tensor) -> torch.Tensor:
        """Reparameterized sample :math:`z = \\mu + \\sigma\\odot\\epsilon` (eq. 25 of the basics chapter)."""
        mu, logvar = self.split(params)
        return mu + (0.5 * logvar).exp() * torch.randn_like(mu)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Exact sample from :math:`q(z\mid x)` drawn from ``generator`` (for seeded evaluation)."""
        mu, logvar = self.split(params)
        return mu + (0.5 * logvar).exp() * torch.randn(mu.shape, device=mu.device, generator=generator)

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        return self.split(params)[0]

    def set_step(self, step: int) -> None:
        """Gaussian parts have no schedule."""

    def kl(self, params: torch.Tensor) -> torch.Tensor:
        """Per-dimension KL to the prior, shape ``(batch, size)``: closed form for the Normal prior;
        :math:`-h(\\mathcal N(\\mu,\\sigma^2)) - \\mathbb E_{\\mathcal N(\\mu,\\sigma^2)}\\log p(z)` by Gauss-Hermite
        quadrature for the Logistic."""
        mu, logvar = self.split(params)
        if self.prior == "normal":
            return kl_normal_std_normal(mu, logvar)
        nodes, weights = (a.to(mu) for a in (_GH_NODES, _GH_WEIGHTS))
        z = mu.unsqueeze(-1) + math.sqrt(2.0) * (0.5 * logvar).exp().unsqueeze(-1) * nodes
        cross = -(self.prior_log_prob(z) * weights).sum(-1) / math.sqrt(math.pi)
        return cross - 0.5 * (math.log(2 * math.pi * math.e) + logvar)

    def log_prob(self, params: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """:math:`\\log q(z\\mid x)` summed over the part's dimensions."""
        mu, logvar = self.split(params)
        return gaussian_log_prob(z, mu, logvar.exp()).sum(-1)


class DeterministicPart(_ContinuousPrior):
    r"""A deterministic code of ``size`` numbers, :math:`z=f(x)` (the encoders of WAE and VIMAE), with a prior
    for generation and for the MMD penalty. Encoder parameters: the code itself (``size`` numbers).

    Such a code has no density given :math:`x`, so it has no KL to the prior: :meth:`kl` raises; the VIMAE
    chapter measures a rate through input noise instead (:func:`vaemi.chapters.vimae.noise_channel_rate`)."""

    kind = "deterministic"

    def __init__(self, size: int, name: str = "z", prior: str = "normal"):
        if size < 1:
            raise ValueError(f"latent part {name!r} needs size >= 1, got {size}")
        self.size, self.name, self.n_params = int(size), name, int(size)
        self._set_prior(prior)

    def rsample(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return params

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def set_step(self, step: int) -> None:
        """No schedule."""

    def kl(self, params: torch.Tensor) -> torch.Tensor:
        raise ValueError(f"latent part {self.name!r} is deterministic: it has no KL to the prior (use an objective "
                         "without one, e.g. 'vimae', and vaemi.chapters.vimae.noise_channel_rate for a rate)")


class CategoricalPart:
    r"""One categorical latent with ``k`` classes, uniform prior, represented one-hot.

    During training the sample is relaxed with the Gumbel-softmax / Concrete distribution
    (``torch.distributions.RelaxedOneHotCategorical``) at ``temperature``; ``hard=True`` (or :meth:`sample`)
    gives the exact one-hot sample. Encoder parameters: ``k`` logits.

    Parameters
    ----------
    k : number of categories
    temperature : :math:`\tau` of the relaxation (eq. 4.20 of the thesis)
    temperature_min, anneal_rate : optional annealing (Jang et al. 2017),
        :math:`\tau_t=\max(\tau_{\min},\,\tau\,e^{-rt})` at training step :math:`t`; ``anneal_rate=0`` keeps
        :math:`\tau` fixed.
    """

    kind = "categorical"

    def __init__(self, k: int, temperature: float = 0.67, name: str = "c", temperature_min: float | None = None,
                 anneal_rate: float = 0.0):
        if k < 2:
            raise ValueError(f"categorical part {name!r} needs k >= 2, got {k}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if anneal_rate < 0:
            raise ValueError(f"anneal_rate must be >= 0, got {anneal_rate}")
        if temperature_min is not None and not 0 < temperature_min <= temperature:
            raise ValueError(f"temperature_min must be in (0, temperature], got {temperature_min}")
        self.k, self.size, self.n_params, self.name = int(k), int(k), int(k), name
        self.temperature = self.temperature0 = float(temperature)
        self.temperature_min = float(temperature if temperature_min is None else temperature_min)
        self.anneal_rate = float(anneal_rate)

    def set_step(self, step: int) -> None:
        """Set the temperature for training step ``step`` (the annealing schedule)."""
        self.temperature = max(self.temperature_min, self.temperature0 * math.exp(-self.anneal_rate * step))

    def split(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def posterior(self, params: torch.Tensor) -> D.OneHotCategorical:
        return D.OneHotCategorical(logits=params)

    def rsample(self, params: torch.Tensor, hard: bool = False) -> torch.Tensor:
        if hard:
            return D.OneHotCategorical(logits=params).sample()
        t = torch.tensor(self.temperature, device=params.device, dtype=params.dtype)
        return D.RelaxedOneHotCategorical(t, logits=params).rsample()

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Exact one-hot sample from :math:`q(c\mid x)` drawn from ``generator``."""
        idx = torch.multinomial(torch.softmax(params, -1), 1, generator=generator).squeeze(-1)
        return F.one_hot(idx, self.k).to(params.dtype)

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        return F.one_hot(params.argmax(-1), self.k).to(params.dtype)

    def kl(self, params: torch.Tensor) -> torch.Tensor:
        """KL to the uniform prior, shape ``(batch, 1)``."""
        return kl_categorical_uniform(params).unsqueeze(-1)

    def sample_prior(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        idx = torch.randint(self.k, (n,), device=device, generator=generator)
        return F.one_hot(idx, self.k).float()

    def log_prob(self, params: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """:math:`\\log q(c\\mid x)` for one-hot (or relaxed) ``c``: :math:`\\sum_k c_k\\log\\pi_k`."""
        return (c * torch.log_softmax(params, -1)).sum(-1)

    def prior_entropy(self) -> float:
        return math.log(self.k)


class LatentSpace:
    """An ordered collection of latent parts; the code is the concatenation of their samples."""

    def __init__(self, parts: Sequence[GaussianPart | CategoricalPart | DeterministicPart]):
        names = [p.name for p in parts]
        if len(set(names)) != len(names):
            raise ValueError(f"latent part names must be unique, got {names}")
        if not parts:
            raise ValueError("a latent space needs at least one part")
        self.parts = list(parts)
        self.n_params = sum(p.n_params for p in parts)
        self.size = sum(p.size for p in parts)

    def __getitem__(self, name: str):
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(f"no latent part {name!r}; parts are {[p.name for p in self.parts]}")

    def split_params(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        chunks = params.split([p.n_params for p in self.parts], dim=-1)
        return {p.name: c for p, c in zip(self.parts, chunks)}

    def split_code(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        chunks = z.split([p.size for p in self.parts], dim=-1)
        return {p.name: c for p, c in zip(self.parts, chunks)}

    def join(self, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([codes[p.name] for p in self.parts], dim=-1)

    def rsample(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.join({p.name: p.rsample(params[p.name]) for p in self.parts})

    def mode(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.join({p.name: p.mode(params[p.name]) for p in self.parts})

    def sample(self, params: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact (not relaxed) sample of the whole code from ``generator``."""
        return self.join({p.name: p.sample(params[p.name], generator) for p in self.parts})

    def set_step(self, step: int) -> None:
        """Advance every part's schedule (e.g. the Gumbel-softmax temperature) to training step ``step``."""
        for p in self.parts:
            p.set_step(step)

    def kl(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-part, per-dimension KL to the prior."""
        return {p.name: p.kl(params[p.name]) for p in self.parts}

    def sample_prior(self, n: int, device=None, generator=None) -> torch.Tensor:
        """``n`` prior codes on ``device``. With a ``generator`` they are drawn on the generator's device and moved:
        a seeded CPU generator gives the same codes whether the model runs on the CPU or a GPU."""
        where = generator.device if generator is not None else device
        z = self.join({p.name: p.sample_prior(n, where, generator) for p in self.parts})
        return z if device is None else z.to(device)
