"""Figures shared by the chapters (seaborn/matplotlib; image grids via torchvision's make_grid)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from torchvision.utils import make_grid

from .models import VAE, model_device

__all__ = ["set_style", "show_images", "plot_history", "plot_sweep", "influence_bars", "category_sweep_figure",
           "latent_traversal_grid", "latent_manifold", "code_sweep", "ablation_bars", "pca_figure", "signal_figure",
           "mse_vs_variance_loss", "code_scatter", "image_rows", "code_panels"]


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
    """Grouped bars of a per-dimension quantity (e.g. :func:`vaemi.metrics.traversal_sensitivity`), one
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


def category_sweep_figure(models: dict[str, VAE], accuracies: dict[str, dict], x: torch.Tensor, k: int,
                          title: str, part: str = "c") -> plt.Figure:
    """The thesis's Figs. 4.5/4.6: per model, the images ``x`` (first column) and their decodings with the
    categorical part set to each category (:func:`code_sweep`), categories in the order of the labels
    they were matched to (``accuracies[name]``: a :func:`vaemi.metrics.cluster_accuracy` result).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per model.
    """
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.6), squeeze=False)
    n = len(x)
    for ax, (name, m) in zip(axes[0], models.items()):
        acc = accuracies[name]
        order = np.argsort([acc["mapping"].get(j, j) for j in range(k)])  # categories in label order when mapped
        imgs = code_sweep(m, x, part).view(n, k + 1, *x.shape[1:])
        imgs = torch.cat([imgs[:, :1], imgs[:, 1:][:, torch.as_tensor(order)]], 1).flatten(0, 1)
        show_images(imgs, nrow=k + 1, ax=ax, title=f"{name}: acc {acc['hungarian']:.0%}")
    fig.suptitle(title)
    return fig


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
    """One horizontal bar per setting of an ablation (:func:`vaemi.sweep.ablation_table`): the mean of
    ``number`` with ± one standard deviation over seeds, and each seed as a dot.

    Parameters
    ----------
    table : DataFrame
        From :func:`vaemi.sweep.ablation_table` (columns ``setting``, ``<number>_mean``, ``_std``, ``_values``).
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


# ------------------------------------------------------------------------------- variance-loss chapter
def pca_figure(cloud: np.ndarray, cloud_hat: np.ndarray, table, ae: dict | None = None) -> plt.Figure:
    """Left: 2-D points, their first principal component and projections (Asperti's Fig. 2); right: MSE and
    variance loss of PCA against the number of components (``table`` from :func:`vaemi.variance.pca_table`),
    with ``ae`` = ``{"k", "mse"}`` of a linear autoencoder."""
    from .variance import mse, variance_loss

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    direction = cloud_hat[-1] - cloud_hat[0]
    direction = direction / np.linalg.norm(direction)
    line = cloud.mean(0) + np.outer([-5, 5], direction)
    ax.plot(*line.T, color="C2", lw=2, label="first principal component")
    ax.plot(*np.stack([cloud, cloud_hat], 1).transpose(2, 1, 0), color="0.6", lw=0.8)
    ax.scatter(*cloud.T, color="C3", s=18, zorder=3, label="data")
    ax.scatter(*cloud_hat.T, color="C0", s=12, zorder=3, label="projections")
    ax.set(aspect="equal", title=f"VL = {variance_loss(cloud, cloud_hat):.3f},  MSE = {mse(cloud, cloud_hat):.3f}")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(table.k, table.mse, "o-", label="MSE")
    ax.plot(table.k, table.variance_loss, "x--", ms=9, label="variance loss")
    if ae is not None:
        ax.plot([ae["k"]], [ae["mse"]], "s", color="C3", label=f"linear AE (k={ae['k']}), MSE")
    ax.set(xscale="log", xlabel="principal components kept", ylabel="per-pixel value")
    ax.legend(fontsize=8)
    return fig


def signal_figure(signal: np.ndarray, smooth: np.ndarray, label: str, title: str) -> plt.Figure:
    """A 1-D signal, its smoothed version and their common mean (Asperti's Fig. 3)."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(signal, color="C0", lw=1, label="signal")
    ax.plot(smooth, color="C2", lw=2, label=label)
    ax.axhline(signal.mean(), color="k", lw=0.6, ls=":")
    ax.set(xlabel="t", title=title)
    ax.legend(fontsize=8)
    return fig


#: Asperti's Fig. 4 colours: blue dense, red ResNet-like, green conv (orange: the overfitting dense net).
ARCH_COLORS = {"mlp": "C0", "resnet": "C3", "conv": "C2", "mlp (overfit)": "C1"}


def mse_vs_variance_loss(table, first_dataset: str) -> plt.Figure:
    """MSE of reconstructions against the variance loss of reconstructions and of generated images, one point
    per model of ``table`` (columns ``dataset``, ``arch``, ``mse``, ``vl_rec``, ``vl_gen``), the diagonal dotted."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, key, title in zip(axes, ["vl_rec", "vl_gen"], ["reconstructions", "generated images"]):
        for (arch, ds), g in table.groupby(["arch", "dataset"]):
            ax.scatter(g.mse, g[key], color=ARCH_COLORS.get(arch, "C7"), marker="o" if ds == first_dataset else "s",
                       s=45, label=f"{arch}, {ds}")
        lim = [0, 1.1 * float(max(table.mse.max(), table[key].max()))]
        ax.plot(lim, lim, "k:", lw=0.8)
        ax.set(xlim=lim, ylim=lim, xlabel="MSE of reconstructions", ylabel="variance loss", title=title, aspect="equal")
    axes[1].legend(fontsize=7, loc="lower right")
    return fig


def code_scatter(z_q: torch.Tensor, z_p: torch.Tensor, dims: Sequence[int], lim: float = 4.0) -> plt.Figure:
    """Two dimensions of codes from the aggregate posterior beside the same of prior draws."""
    i, j = dims
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharex=True, sharey=True)
    axes[0].scatter(z_q[:, i], z_q[:, j], s=3, alpha=0.5, color="C0")
    axes[0].set(title=f"Q(z): dims {i}, {j} (most active)")
    axes[1].scatter(z_p[:, i], z_p[:, j], s=3, alpha=0.5, color="C7")
    axes[1].set(title="P(z) = N(0, I)")
    for ax in axes:
        ax.set(aspect="equal", xlim=(-lim, lim), ylim=(-lim, lim))
    return fig


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


# ------------------------------------------------------------------------------------- VIMAE chapter
def code_panels(codes: dict, prior_draws: dict, *, labels=None, titles: dict | None = None, lim: float = 4.0) -> plt.Figure:
    """One panel per model: 2-D codes of test images (coloured by ``labels``) over draws of the model's prior
    (grey), as the VIMAE paper's Fig. 1."""
    fig, axes = plt.subplots(1, len(codes), figsize=(3.1 * len(codes), 3.4), sharex=True, sharey=True, squeeze=False)
    for ax, (name, z) in zip(axes[0], codes.items()):
        zp = prior_draws[name]
        ax.scatter(zp[:, 0], zp[:, 1], s=2, color="0.75", alpha=0.5, rasterized=True)
        ax.scatter(z[:, 0], z[:, 1], s=2, c=None if labels is None else labels, cmap="tab10", alpha=0.6, rasterized=True)
        ax.set(title=(titles or {}).get(name, name), aspect="equal", xlim=(-lim, lim), ylim=(-lim, lim))
        ax.title.set_fontsize(9)
    fig.tight_layout()
    return fig
