"""Figures shared by the chapters (seaborn/matplotlib; image grids via torchvision's make_grid)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from torchvision.utils import make_grid

from .models import VAE, model_device

__all__ = ["set_style", "show_images", "plot_history", "latent_traversal_grid", "latent_manifold", "code_sweep"]


def set_style() -> None:
    """The book's plotting style."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 100, "savefig.bbox": "tight", "image.cmap": "gray"})


def show_images(images: torch.Tensor, nrow: int = 10, ax: plt.Axes | None = None, title: str | None = None,
                pad: int = 2) -> plt.Axes:
    """Draw a batch ``(N, C, H, W)`` as one grid image."""
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=pad, pad_value=1.0)
    ax = ax or plt.gca()
    img = grid.permute(1, 2, 0).numpy()
    ax.imshow(img[..., 0] if img.shape[-1] == 1 or (img[..., 0] == img[..., 1]).all() else img,
              cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_history(histories: dict[str, "object"], keys: Sequence[str], axes=None, titles=None, xlabel="epoch"):
    """One panel per key, one line per named history (``{label: History}``)."""
    if axes is None:
        _, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.3), squeeze=False)
        axes = axes[0]
    for ax, key, title in zip(axes, keys, titles or keys):
        for label, h in histories.items():
            ax.plot(h["epoch"], h[key], marker="o", ms=3, label=label)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
    axes[0].legend()
    return axes


@torch.no_grad()
def latent_traversal_grid(model: VAE, dim_x: int, dim_y: int, base: torch.Tensor | None = None,
                          values: Sequence[float] | np.ndarray = np.linspace(-2.5, 2.5, 8)) -> torch.Tensor:
    """Decoder means on a grid of codes: ``dim_x`` varies along columns, ``dim_y`` along rows.

    Parameters
    ----------
    model : VAE
    dim_x, dim_y : int
        The code dimensions that vary (the top row holds the largest value of ``dim_y``).
    base : tensor (latent.size,), optional
        The other dimensions (default zeros).
    values : sequence of float
        The values each varying dimension takes.

    Returns
    -------
    tensor (len(values)**2, C, H, W)
        Images in row-major order.
    """
    device = model_device(model)
    base = torch.zeros(model.latent.size, device=device) if base is None else base.to(device)
    vals = torch.as_tensor(np.asarray(values), dtype=torch.float32, device=device)
    zs = base.repeat(len(vals) ** 2, 1)
    zs[:, dim_x] = vals.repeat(len(vals))
    zs[:, dim_y] = vals.flip(0).repeat_interleave(len(vals))  # top row = largest value
    return model.likelihood.mean(model.decode(zs))


@torch.no_grad()
def latent_manifold(model: VAE, n: int = 15, bound: float = 0.95) -> torch.Tensor:
    """For a 2-D Gaussian latent: decode a grid of prior quantiles in ``[1-bound, bound]`` per axis
    (Kingma & Welling 2014, Fig. 4). Returns ``(n*n, C, H, W)``."""
    from scipy.stats import norm

    if model.latent.size != 2:
        raise ValueError(f"latent_manifold needs a 2-D latent, this model has {model.latent.size}")
    q = norm.ppf(np.linspace(1 - bound, bound, n))
    return latent_traversal_grid(model, 0, 1, values=q)


@torch.no_grad()
def code_sweep(model: VAE, x: torch.Tensor, part: str, dim: int | None = None,
               values: Sequence[float] | np.ndarray | None = None) -> torch.Tensor:
    """One row per image of ``x``: the image itself, then its decoding with one code component swept and the
    rest of the code fixed at the posterior mode (Gaussian means, most probable category).

    Parameters
    ----------
    model : VAE
    x : tensor (n, C, H, W)
        The images.
    part : str
        The latent part swept. For a categorical part the sweep runs through its ``k`` one-hot values (the
        thesis's Figs. 4.5-4.6); for a Gaussian part, dimension ``dim`` takes ``values`` (Fig. 4.4).
    dim : int, optional
        The dimension of a Gaussian part.
    values : sequence of float, optional
        Its values.

    Returns
    -------
    tensor (n * (1 + n_values), C, H, W)
        Images in row-major order.

    Raises
    ------
    ValueError
        For a Gaussian part without ``dim`` and ``values``.
    """
    model.eval()
    device = model_device(model)
    x = x.to(device)
    params = model.encode(x)
    codes = model.latent.split_code(model.latent.mode(params))
    p = model.latent[part]
    if p.kind == "categorical":
        settings = list(torch.eye(p.k, device=device))
    else:
        if dim is None or values is None:
            raise ValueError("a Gaussian part needs `dim` and `values`")
        settings = [float(v) for v in values]
    rows = [x]
    for v in settings:
        c = {k: t.clone() for k, t in codes.items()}
        if p.kind == "categorical":
            c[part] = v.expand_as(c[part])
        else:
            c[part][:, dim] = v
        rows.append(model.likelihood.mean(model.decode(model.latent.join(c))).view_as(x))
    return torch.stack(rows, 1).flatten(0, 1)
