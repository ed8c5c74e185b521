"""Models: latent spaces made of parts (:mod:`~vaemi.models.latents`), likelihoods of the decoder's output
(:mod:`~vaemi.models.likelihoods`), encoders and decoders (:mod:`~vaemi.models.networks`), the :class:`VAE` that
ties them together (:mod:`~vaemi.models.vae`), and the two-stage VAE's stages (:mod:`~vaemi.models.twostage`).

Design (after YannDubs/disentangling-vae): networks know nothing about probability; a :class:`LatentSpace` turns
the encoder's flat output into posterior distributions, made of *parts* (a Gaussian block, a categorical
block, ...) so that a chapter can put an MI term on one part only; a likelihood turns the decoder's output into
:math:`\\log p(x\\mid z)`. Nothing here checks devices: the trainer moves model and data once; evaluation code asks
:func:`model_device` (or :attr:`VAE.device`) where the model lives.
"""
from vaemi.models.latents import CategoricalPart, DeterministicPart, GaussianPart, LatentSpace, part_names
from vaemi.models.likelihoods import BernoulliLikelihood, GaussianLikelihood
from vaemi.models.networks import (ConvDecoder, ConvEncoder, DCGANDecoder, DCGANEncoder, MLPDecoder, MLPEncoder,
                                   ResidualBlock, dcgan_decoder_channels)
from vaemi.models.vae import VAE, VAEOutput, build_vae, model_device

__all__ = [
    "GaussianPart", "CategoricalPart", "LatentSpace", "BernoulliLikelihood", "GaussianLikelihood",
    "MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder", "ResidualBlock", "VAE", "VAEOutput", "build_vae", "model_device",
    "part_names", "DeterministicPart", "DCGANEncoder", "DCGANDecoder", "dcgan_decoder_channels",
]
