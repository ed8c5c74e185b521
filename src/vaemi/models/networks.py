"""Encoders and decoders that know nothing about probability: MLPs, strided convolutions (optionally residual)
and the WAE/DCGAN nets of the VIMAE paper (SAME padding, batch norm)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

__all__ = ["MLPEncoder", "MLPDecoder", "ResidualBlock", "ConvEncoder", "ConvDecoder", "DCGANEncoder", "DCGANDecoder", "dcgan_decoder_channels"]


_ACTIVATIONS = {"softplus": nn.Softplus, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {list(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


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
