"""The :class:`VAE` that ties an encoder, a latent space, a decoder and a likelihood together, :func:`build_vae`
that assembles one for an image shape and an architecture name, and :func:`model_device`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn

from vaemi.models.latents import GaussianPart, LatentSpace
from vaemi.models.likelihoods import BernoulliLikelihood, GaussianLikelihood
from vaemi.models.networks import (
    ConvDecoder,
    ConvEncoder,
    DCGANDecoder,
    DCGANEncoder,
    MLPDecoder,
    MLPEncoder,
    dcgan_decoder_channels,
)

__all__ = ["model_device", "VAEOutput", "VAE", "build_vae"]


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
