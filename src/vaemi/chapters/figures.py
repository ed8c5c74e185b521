"""Figures shared by the chapters (seaborn/matplotlib; image grids via torchvision's make_grid): the book's style,
image grids, training histories, sweeps, influence bars, latent traversals, ablation bars, and the figure that
stands in for one whose data is missing."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from torchvision.utils import make_grid

from vaemi.models import VAE, model_device

__all__ = ["set_style", "show_images", "plot_history", "plot_sweep", "influence_bars", "latent_traversal_grid", "latent_manifold", "code_sweep", "ablation_bars", "image_rows", "note_figure"]


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


def plot_history(histories: dict[str, "object"], keys: Sequence[str | Sequence[str]], titles: Sequence[str] | None = None,
                 *, ylabel: str | None = None, xlabel: str = "epoch", styles: Sequence[str] | None = None,
                 hline: float | None = None, figsize: tuple[float, float] | None = None) -> plt.Figure:
    """One panel per key, one line per named history (``{label: History}``).

    Parameters
    ----------
    histories : dict
        ``label -> History`` (anything with ``h["epoch"]`` and ``h[key]``).
    keys : sequence
        Per panel a key, or a sequence of keys: the first drawn solid (labelled), the others dotted in
        the same colour.
    titles : sequence of str, optional
        Panel titles (default the keys).
    ylabel, xlabel : str
    styles : sequence of str, optional
        Matplotlib format strings, one per history (default ``"o-"``).
    hline : float, optional
        A dashed grey reference line in every panel.

    Returns
    -------
    matplotlib.figure.Figure
        With ``len(keys)`` axes; the legend is on the first.
    """
    fig, axes = plt.subplots(1, len(keys), figsize=figsize or (4.3 * len(keys), 3.4), squeeze=False)
    axes = axes[0]
    for ax, key, title in zip(axes, keys, titles or [k if isinstance(k, str) else k[0] for k in keys]):
        panel = [key] if isinstance(key, str) else list(key)
        for i, (label, h) in enumerate(histories.items()):
            line, = ax.plot(h["epoch"], h[panel[0]], (styles or ["o-"] * len(histories))[i], ms=3, label=label)
            for extra in panel[1:]:
                ax.plot(h["epoch"], h[extra], marker="x", ls=":", color=line.get_color())
        if hline is not None:
            ax.axhline(hline, color="gray", ls="--")
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes[0].legend(fontsize=8)
    return fig


def plot_sweep(table, x: str, keys: Sequence[str], titles: Sequence[str] | None = None, *,
               xlabel: str | None = None, logx: bool = True) -> plt.Figure:
    """One panel per column ``keys`` of ``table`` against its column ``x`` (a hyperparameter sweep).

    With ``logx``, a zero ``x`` (e.g. the plain model at weight 0) is drawn a third of the way below the
    smallest positive value, so that it stays on the log axis; say so in ``xlabel``.

    Returns
    -------
    matplotlib.figure.Figure
        With ``len(keys)`` axes, one line each.
    """
    xs = table[x]
    if logx:
        xs = xs.replace(0, xs[xs > 0].min() / 3)
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.3), squeeze=False)
    for ax, key, title in zip(axes[0], keys, titles or keys):
        ax.plot(xs, table[key], "o-")
        ax.set(xscale="log" if logx else "linear", xlabel=xlabel or x, title=title)
    return fig


def influence_bars(values: dict[str, np.ndarray], tick_labels: Sequence[str] | None = None, *,
                   ax: plt.Axes | None = None, boundary: float | None = None, marks: Sequence[int] = (),
                   tick_step: int = 1, ylabel: str = "mean |Δpixel| per unit of code",
                   title: str | None = None) -> plt.Figure:
    """Grouped bars of a per-dimension quantity (e.g. :func:`vaemi.measures.metrics.traversal_sensitivity`), one
    group per code dimension and one bar per model (``{label: values}``).

    Parameters
    ----------
    tick_labels : sequence of str, optional
        One per dimension (default ``z1, z2, ...``); every ``tick_step``-th is shown.
    ax : Axes, optional
        Where to draw (default a new figure).
    boundary : float, optional
        A dotted vertical line (e.g. between the parts of the code).
    marks : sequence of int
        Dimensions annotated "MI" at the top.

    Returns
    -------
    matplotlib.figure.Figure
        The figure of ``ax``.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.2))
    n = len(next(iter(values.values())))
    idx, width = np.arange(n), 0.8 / len(values)
    for i, (label, v) in enumerate(values.items()):
        ax.bar(idx + (i - (len(values) - 1) / 2) * width, v, width, label=label)
    if boundary is not None:
        ax.axvline(boundary, color="k", ls=":", lw=1)
    for d in marks:
        ax.annotate("MI", (d, 0), xytext=(d, ax.get_ylim()[1] * 0.9), ha="center", color="C3")
    tick_labels = list(tick_labels or [f"z{j + 1}" for j in range(n)])
    ax.set_xticks(idx[::tick_step], tick_labels[::tick_step], rotation=90 if tick_step == 1 else 0,
                  fontsize=None if tick_step == 1 else 8)
    ax.set(ylabel=ylabel, title=title)
    ax.legend()
    return ax.figure


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


def ablation_bars(table, number: str, *, ax: plt.Axes | None = None, xlabel: str | None = None,
                  reference: dict[str, float] | None = None, percent: bool = False) -> plt.Figure:
    """One horizontal bar per setting of an ablation (:func:`vaemi.book.records.ablation_table`): the mean of
    ``number`` with ± one standard deviation over seeds, and each seed as a dot.

    Parameters
    ----------
    table : DataFrame
        From :func:`vaemi.book.records.ablation_table` (columns ``setting``, ``<number>_mean``, ``_std``, ``_values``).
    number : str
        The number to show.
    reference : dict, optional
        Label -> value of vertical reference lines (e.g. the paper's result).
    percent : bool
        Show the axis in percent.
    """
    import textwrap

    labels = [textwrap.fill(f"{s}: {w}", 34) for s, w in zip(table.sweep, table.setting)]
    if ax is None:
        lines = sum(label.count("\n") + 1 for label in labels)
        _, ax = plt.subplots(figsize=(10, 0.3 * lines + 0.25 * len(labels) + 1.5))
    y = np.arange(len(table))[::-1]
    mean, std = table[f"{number}_mean"].to_numpy(float), np.nan_to_num(table[f"{number}_std"].to_numpy(float))
    ax.barh(y, mean, xerr=std, color="C0", alpha=0.45, capsize=3, label="mean ± std over seeds")
    for yi, vals in zip(y, table[f"{number}_values"]):
        ax.plot(vals, np.full(len(vals), yi), "k.", ms=5, label="one seed" if yi == y[0] else None)
    for i, (name, v) in enumerate((reference or {}).items()):
        ax.axvline(v, color=f"C{i + 1}", ls="--", label=name)
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel or number)
    if percent:
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 if len(labels) > 6 else -0.25), ncol=2, fontsize=8,
              frameon=False)
    ax.figure.tight_layout()
    return ax.figure


def image_rows(rows: Sequence[torch.Tensor], titles: Sequence[str], height: float = 1.2) -> plt.Figure:
    """One row of images per tensor of ``rows``, titled."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, height * len(rows)), squeeze=False)
    for ax, imgs, title in zip(axes[:, 0], rows, titles):
        show_images(imgs, nrow=len(imgs), ax=ax, title=title)
    return fig


def note_figure(text: str, size: tuple[float, float] = (8.0, 1.2)) -> plt.Figure:
    """A figure that only says ``text``: what a chapter shows in place of a figure whose data is missing, so that
    the page still builds and says why."""
    fig, ax = plt.subplots(figsize=size)
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10)
    return fig
