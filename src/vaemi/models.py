"""Encoders, decoders, latent spaces, likelihoods and the :class:`VAE` that ties them together.

Design (after YannDubs/disentangling-vae): networks know nothing about probability; a
:class:`LatentSpace` turns the encoder's flat output into posterior distributions, made of
*parts* (a Gaussian block, a categorical block, ...) so that a chapter can put an MI term on one
part only; a :class:`Likelihood` turns the decoder's output into :math:`\\log p(x\\mid z)`.
Nothing here checks devices: the trainer moves model and data once; evaluation code asks
:func:`model_device` (or :attr:`VAE.device`) where the model lives.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import distributions as D

from .distributions import gaussian_log_prob, kl_categorical_uniform, kl_normal_std_normal

__all__ = [
    "GaussianPart", "CategoricalPart", "LatentSpace", "BernoulliLikelihood", "GaussianLikelihood",
    "MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder", "ResidualBlock", "VAE", "VAEOutput", "build_vae", "model_device",
    "part_names", "DeterministicPart", "DCGANEncoder", "DCGANDecoder", "dcgan_decoder_channels",
]

#: Floor of the running-minimum decoder variance (a batch reconstructed exactly must not give log 0).
_MIN_VARIANCE = 1e-6

_ACTIVATIONS = {"softplus": nn.Softplus, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {list(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def model_device(module: nn.Module) -> torch.device:
    """The device a module lives on.

    Parameters
    ----------
    module : nn.Module
        A model (e.g. a :class:`VAE` or an auxiliary network).

    Returns
    -------
    torch.device
        The device of its first parameter (or buffer); the CPU for a module that holds no tensors.
    """
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


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
    unit variance per dimension, :mod:`vaemi.priors`)."""

    prior = "normal"

    def _set_prior(self, prior: str) -> None:
        from .priors import PRIORS

        if prior not in PRIORS:
            raise ValueError(f"latent part {self.name!r}: unknown prior {prior!r}; choose one of {list(PRIORS)}")
        self.prior = prior

    def sample_prior(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws from the prior (from ``generator`` when given)."""
        if self.prior == "normal":
            return torch.randn(n, self.size, device=device, generator=generator)
        from .priors import logistic_from_uniform

        return logistic_from_uniform(torch.rand(n, self.size, device=device, generator=generator))

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(z)` per dimension, shape of ``z``."""
        if self.prior == "normal":
            return -0.5 * (z.pow(2) + math.log(2 * math.pi))
        from .priors import LOGISTIC_UNIT_SCALE as s

        t = z / s
        return -t - math.log(s) - 2 * F.softplus(-t)

    def prior_entropy(self) -> float:
        """Differential entropy of the prior (nats), :func:`vaemi.priors.prior_entropy`."""
        from .priors import prior_entropy

        return prior_entropy(self.prior, self.size)


#: Gauss-Hermite nodes and weights (64 points) for :math:`\mathbb E_{\mathcal N(\mu,\sigma^2)}[f(z)]`.
_GH_NODES, _GH_WEIGHTS = (torch.from_numpy(a) for a in np.polynomial.hermite.hermgauss(64))


class GaussianPart(_ContinuousPrior):
    r"""A block of ``size`` Gaussian latents, :math:`q(z\mid x)=\mathcal N(\mu, \mathrm{diag}\,\sigma^2)`,
    prior ``prior`` (:math:`\mathcal N(0, I)` by default; ``"logistic"``: the unit-variance Logistic of
    :mod:`vaemi.priors`, KL by 64-point Gauss-Hermite quadrature per dimension). Encoder parameters:
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
    chapter measures a rate through input noise instead (:func:`vaemi.vimae.noise_channel_rate`)."""

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
                         "without one, e.g. 'vimae', and vaemi.vimae.noise_channel_rate for a rate)")


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


# ----------------------------------------------------------------------------------- likelihoods
class BernoulliLikelihood(nn.Module):
    """:math:`p(x\\mid z)=\\prod_i \\mathrm{Bern}(x_i\\mid \\sigma(\\ell_i))`; the decoder outputs logits ``ℓ``.

    Targets may be grey levels in [0, 1] (the usual 'continuous Bernoulli-free' practice for MNIST).
    """

    name = "bernoulli"

    def log_prob(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Per-example log-likelihood, summed over pixels."""
        return -F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)

    def sample(self, out: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(torch.sigmoid(out))


class GaussianLikelihood(nn.Module):
    r""":math:`p(x\mid z)=\mathcal N(x\mid f(z), s^2 I)` (eq. 26 of the basics chapter).

    Parameters
    ----------
    variance : float
        :math:`s^2`; fixed unless ``learn_variance``.
    learn_variance : bool
        Learn one scalar :math:`\log s^2` (as in the two-stage VAE's :math:`\gamma`).
    mean_activation : {"sigmoid", "identity"}
        Squash :math:`f(z)` into [0, 1] for images, or leave it free.
    running_min : bool
        Asperti & Trentin's rule for :math:`\gamma=s^2`: at every training step (module in training mode,
        gradients on) set :math:`s^2 \leftarrow \min(s^2, \mathrm{MSE}_\text{batch})`, the per-element mean
        squared error of the batch (not a gradient step; ``variance`` is the starting value).
    """

    name = "gaussian"

    def __init__(self, variance: float = 1.0, learn_variance: bool = False, mean_activation: str = "sigmoid",
                 running_min: bool = False):
        super().__init__()
        if not variance > 0:
            raise ValueError(f"decoder variance s^2 must be > 0, got {variance}")
        if mean_activation not in ("sigmoid", "identity"):
            raise ValueError(f"mean_activation must be 'sigmoid' or 'identity', got {mean_activation!r}")
        if learn_variance and running_min:
            raise ValueError("choose one rule for the decoder variance: learn_variance (a trained parameter, "
                             "Dai & Wipf) or running_min (the running minimum of the batch MSE, Asperti & Trentin)")
        logvar = torch.tensor(math.log(variance))
        if learn_variance:
            self.logvar = nn.Parameter(logvar)
        else:
            self.register_buffer("logvar", logvar)
        self.mean_activation = mean_activation
        self.running_min = bool(running_min)

    @property
    def variance(self) -> torch.Tensor:
        return self.logvar.exp()

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out) if self.mean_activation == "sigmoid" else out

    def log_prob(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        mean = self.mean(out)
        if self.running_min and self.training and torch.is_grad_enabled():
            with torch.no_grad():
                self.logvar.copy_(torch.minimum(self.logvar, (x - mean).pow(2).mean().clamp_min(_MIN_VARIANCE).log()))
        return gaussian_log_prob(x, mean, self.variance).flatten(1).sum(1)

    def sample(self, out: torch.Tensor) -> torch.Tensor:
        m = self.mean(out)
        return m + self.variance.sqrt() * torch.randn_like(m)


# -------------------------------------------------------------------------------------- networks
def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_activation(activation))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """Flatten, then ``in -> hidden... -> out`` with ``activation`` between layers (784-500-500 in seed 000)."""

    def __init__(self, in_shape: Sequence[int], out_dim: int, hidden: Sequence[int] = (500, 500),
                 activation: str = "softplus"):
        super().__init__()
        self.net = _mlp([math.prod(in_shape), *hidden, out_dim], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """``z -> hidden... -> prod(out_shape)``, reshaped to images."""

    def __init__(self, z_dim: int, out_shape: Sequence[int], hidden: Sequence[int] = (500, 500),
                 activation: str = "softplus"):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.net = _mlp([z_dim, *hidden, math.prod(out_shape)], activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.out_shape)


class ResidualBlock(nn.Module):
    r""":math:`x + \mathrm{conv}_{3\times3}(a(\mathrm{conv}_{3\times3}(a(x))))`, shape-preserving (He et al. 2016)."""

    def __init__(self, channels: int, activation: str = "relu"):
        super().__init__()
        self.body = nn.Sequential(_activation(activation), nn.Conv2d(channels, channels, 3, padding=1),
                                  _activation(activation), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ConvEncoder(nn.Module):
    """Small conv encoder for 28x28 or 32x32 images: strided 4x4 convs, then a linear head.

    ``residual=True`` follows each strided conv with a :class:`ResidualBlock` (the "ResNet-like" nets of the
    variance-loss chapter)."""

    def __init__(self, in_shape: Sequence[int], out_dim: int, channels: Sequence[int] = (32, 64),
                 hidden: int = 256, activation: str = "relu", residual: bool = False):
        super().__init__()
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 4, stride=2, padding=1), _activation(activation)]
            if residual:
                layers.append(ResidualBlock(ch, activation))
            c, h, w = ch, h // 2, w // 2
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), _activation(activation),
                                  nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder` with transposed convolutions (``residual``: a :class:`ResidualBlock`
    before each of them)."""

    def __init__(self, z_dim: int, out_shape: Sequence[int], channels: Sequence[int] = (64, 32),
                 hidden: int = 256, activation: str = "relu", residual: bool = False):
        super().__init__()
        c_out, h, w = out_shape
        n_up = len(channels)
        if h % (2 ** n_up) or w % (2 ** n_up):
            raise ValueError(f"image size {h}x{w} must be divisible by 2**{n_up}")
        self.start = (channels[0], h // 2 ** n_up, w // 2 ** n_up)
        self.head = nn.Sequential(nn.Linear(z_dim, hidden), _activation(activation),
                                  nn.Linear(hidden, math.prod(self.start)), _activation(activation))
        layers: list[nn.Module] = []
        chans = [*channels, c_out]
        for i, (a, b) in enumerate(zip(chans, chans[1:])):
            if residual:
                layers.append(ResidualBlock(a, activation))
            layers.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
            if i < len(chans) - 2:
                layers.append(_activation(activation))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.head(z).view(-1, *self.start))


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding (before, after) of one axis: output ``ceil(size / stride)``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class DCGANEncoder(nn.Module):
    """The WAE / VIMAE encoder (Tolstikhin et al. 2017, appendix of the VIMAE paper): stride-2 ``kernel``x``kernel``
    convolutions with "SAME" padding, each followed by batch norm and ReLU, then a linear map to the code
    parameters. The paper's MNIST net has ``channels=(128, 256, 512, 1024)`` and 4x4 kernels (28 -> 14 -> 7 -> 4 -> 2);
    scale ``channels`` down for a CPU."""

    def __init__(self, in_shape: Sequence[int], out_dim: int, channels: Sequence[int] = (128, 256, 512, 1024),
                 kernel: int = 4):
        super().__init__()
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for ch in channels:
            (t, b), (l, r) = _same_pad(h, kernel, 2), _same_pad(w, kernel, 2)
            layers += [nn.ZeroPad2d((l, r, t, b)), nn.Conv2d(c, ch, kernel, stride=2, bias=False),
                       nn.BatchNorm2d(ch), nn.ReLU()]
            c, h, w = ch, -(-h // 2), -(-w // 2)
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


class DCGANDecoder(nn.Module):
    """The WAE / VIMAE decoder: a linear map to a ``s x s x channels[0]`` map, fractionally strided (transposed,
    stride 2) ``kernel``x``kernel`` convolutions with batch norm and ReLU through ``channels[1:]``, and a last
    stride-1 convolution to the image channels. ``s`` = image side / 2**(len(channels) - 1): the paper's MNIST
    decoder ``channels=(1024, 512, 256)`` starts at 7x7, its CelebA one ``(1024, 512, 256, 128)`` at 8x8."""

    def __init__(self, z_dim: int, out_shape: Sequence[int], channels: Sequence[int] = (1024, 512, 256),
                 kernel: int = 4):
        super().__init__()
        c_out, h, w = out_shape
        n_up = len(channels) - 1
        if h % 2 ** n_up or w % 2 ** n_up:
            raise ValueError(f"image size {h}x{w} must be divisible by 2**{n_up} (decoder channels {tuple(channels)})")
        self.start = (channels[0], h // 2 ** n_up, w // 2 ** n_up)
        self.head = nn.Sequential(nn.Linear(z_dim, math.prod(self.start)), nn.ReLU())
        layers: list[nn.Module] = []
        for a, b in zip(channels, channels[1:]):
            layers += [nn.ConvTranspose2d(a, b, kernel, stride=2, padding=(kernel - 2) // 2, bias=False),
                       nn.BatchNorm2d(b), nn.ReLU()]
        before, after = _same_pad(h, kernel, 1)
        layers += [nn.ZeroPad2d((before, after, before, after)), nn.Conv2d(channels[-1], c_out, kernel)]
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.head(z).view(-1, *self.start))


def dcgan_decoder_channels(channels: Sequence[int], side: int) -> tuple[int, ...]:
    """The decoder channels that mirror encoder ``channels`` for images of ``side`` pixels: the encoder's in
    reverse, one per resolution from the largest side <= 8 reached by halving (28: 7, 32: 8, 64: 8) up to
    ``side``; e.g. ``(128, 256, 512, 1024)`` gives ``(1024, 512, 256)`` at 28 and ``(1024, 512, 256, 128)`` at 64."""
    n_up = 0
    while side % 2 == 0 and side > 8:
        side //= 2
        n_up += 1
    if n_up + 1 > len(channels):
        raise ValueError(f"channels {tuple(channels)}: {n_up + 1} decoder stages are needed for this image size")
    return tuple(channels[::-1][:n_up + 1])


# ------------------------------------------------------------------------------------------- VAE
@dataclass
class VAEOutput:
    """What one forward pass produces."""

    params: dict[str, torch.Tensor]  #: posterior parameters per latent part
    z: torch.Tensor                  #: the (reparameterized) code, all parts concatenated
    out: torch.Tensor                #: decoder output (logits or means, per the likelihood)


class VAE(nn.Module):
    """Encoder + latent space + decoder + likelihood."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent: LatentSpace, likelihood: nn.Module):
        super().__init__()
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.latent = latent

    @property
    def device(self) -> torch.device:
        """The device the model's weights live on (see :func:`model_device`)."""
        return model_device(self)

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.latent.split_params(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor, sample: bool = True) -> VAEOutput:
        params = self.encode(x)
        z = self.latent.rsample(params) if sample else self.latent.mode(params)
        return VAEOutput(params, z, self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the posterior mode, on the device of ``x`` (the model runs on its own)."""
        return self.likelihood.mean(self.forward(x.to(self.device), sample=False).out).to(x.device)

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means at ``n`` codes drawn from the prior.

        Parameters
        ----------
        n : int
            Number of images.
        generator : torch.Generator, optional
            Source of the prior draws (on any device: see :meth:`LatentSpace.sample_prior`); default the global RNG.

        Returns
        -------
        tensor (n, C, H, W)
            On the model's device.
        """
        z = self.latent.sample_prior(n, device=self.device, generator=generator)
        return self.likelihood.mean(self.decode(z))


def build_vae(image_shape: Sequence[int], latent: LatentSpace | int, *, arch: str = "mlp",
              hidden: Sequence[int] = (500, 500), activation: str = "softplus",
              likelihood: str = "bernoulli", variance: float = 1.0, learn_variance: bool = False,
              mean_activation: str = "sigmoid", running_min: bool = False,
              channels: Sequence[int] | None = None) -> VAE:
    """Build a VAE from a few choices.

    Parameters
    ----------
    image_shape : (C, H, W)
    latent : LatentSpace or int
        An int ``d`` means one Gaussian part ``z`` of size ``d``.
    arch : {"mlp", "conv", "resnet", "dcgan"}
        ``"resnet"``: the conv nets with a residual block at every resolution; ``"dcgan"``: the WAE / VIMAE nets
        (:class:`DCGANEncoder`, :class:`DCGANDecoder`; ``channels`` default (128, 256, 512, 1024)).
    hidden : sizes of the MLP's hidden layers (``arch="mlp"``)
    activation : name of the nonlinearity
    likelihood : {"bernoulli", "gaussian"}
    variance, learn_variance : Gaussian decoder's :math:`s^2` and whether it is a trained parameter
    running_min : Gaussian decoder's :math:`s^2` set to the running minimum of the batch MSE
        (see :class:`GaussianLikelihood`)
    channels : conv channels of the encoder, coarsest last (the decoder mirrors them); default (32, 64)
    mean_activation : {"sigmoid", "identity"}
        Gaussian decoder's mean: squashed into [0, 1] (images) or free (e.g. a second-stage VAE on codes).
    """
    if isinstance(latent, int):
        latent = LatentSpace([GaussianPart(latent)])
    if arch == "mlp":
        enc = MLPEncoder(image_shape, latent.n_params, hidden, activation)
        dec = MLPDecoder(latent.size, image_shape, hidden, activation)
    elif arch == "dcgan":
        chans = tuple(channels) if channels is not None else (128, 256, 512, 1024)
        if not chans or min(chans) < 1:
            raise ValueError(f"channels must be a non-empty list of positive ints, got {channels}")
        enc = DCGANEncoder(image_shape, latent.n_params, chans)
        dec = DCGANDecoder(latent.size, image_shape, dcgan_decoder_channels(chans, image_shape[1]))
    elif arch in ("conv", "resnet"):
        chans = tuple(channels) if channels is not None else (32, 64)
        if not chans or min(chans) < 1:
            raise ValueError(f"channels must be a non-empty list of positive ints, got {channels}")
        enc = ConvEncoder(image_shape, latent.n_params, chans, activation=activation, residual=arch == "resnet")
        dec = ConvDecoder(latent.size, image_shape, chans[::-1], activation=activation, residual=arch == "resnet")
    else:
        raise ValueError(f"unknown arch {arch!r}; choose 'mlp', 'conv', 'resnet' or 'dcgan'")
    if likelihood == "bernoulli":
        lik: nn.Module = BernoulliLikelihood()
    elif likelihood == "gaussian":
        lik = GaussianLikelihood(variance, learn_variance, mean_activation, running_min)
    else:
        raise ValueError(f"unknown likelihood {likelihood!r}; choose 'bernoulli' or 'gaussian'")
    return VAE(enc, dec, latent, lik)
