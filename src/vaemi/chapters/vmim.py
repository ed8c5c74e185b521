"""The chapter on the thesis "Variational Mutual Information Maximization Framework for VAE" (seed 003): its
parameter schema (and that of its clustering ablation) and its figures."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from vaemi.book.params import Bool, Choice, Float, Int, ListOf, require
from vaemi.chapters.common import PROFILE, Chapter
from vaemi.chapters.figures import code_sweep, show_images
from vaemi.models import VAE

__all__ = ["category_sweep_figure"]


# ------------------------------------------------------------------------------------------- parameters
SCHEMA = {
    "profile": PROFILE, "seed": Int(0), "strict_claims": Bool(), "allow_fallback": Bool(),
    "datasets": ListOf(Choice(["mnist", "fashion_mnist"]), min_len=1), "n_train": Int(100, 60000), "fashion_n_train": Int(100, 60000),
    "n_test": Int(100, 10000), "hidden": ListOf(Int(1, 10_000)), "q_hidden": ListOf(Int(1, 10_000)),
    "batch_size": Int(1), "lr": Float(0, 1, open_low=True), "x_tilde": Choice(["mean", "relaxed"]),
    "gauss_dim": Int(2, 1000), "gauss_mi_dims": Int(1, 999), "gauss_n_train": Int(100, 60000), "gauss_epochs": Int(1),
    "gauss_lams": ListOf(Float(0), min_len=2, increasing=True), "gauss_lam": Float(0, open_low=True),
    "z_dim": Int(1, 1000), "k": Int(2, 1000), "temperature": Float(0, 100, open_low=True),
    "temperature_min": Float(0, 100, open_low=True), "anneal_rate": Float(0), "cat_lam": Float(0, open_low=True),
    "cat_epochs": Int(1), "eval_n": Int(100, 10000), "related_n_train": Int(100, 60000), "related_epochs": Int(1),
    "beta": Float(0), "capacity": Float(0), "capacity_gamma": Float(0, open_low=True),
}


def _check(p: dict) -> None:
    """Cross-parameter rules of the chapter."""
    require(
        p["gauss_mi_dims"] < p["gauss_dim"],
        f"parameter 'gauss_mi_dims' ({p['gauss_mi_dims']}) must be smaller than 'gauss_dim' ({p['gauss_dim']})",
    )
    require(
        p["gauss_lams"][0] == 0.0, f"parameter 'gauss_lams' must start at 0 (the ELBO model), got {p['gauss_lams']}"
    )
    require(
        p["gauss_lam"] in p["gauss_lams"],
        f"parameter 'gauss_lam' ({p['gauss_lam']}) must be one of 'gauss_lams' ({p['gauss_lams']})",
    )
    require(
        p["temperature_min"] <= p["temperature"],
        f"parameter 'temperature_min' ({p['temperature_min']}) must not exceed 'temperature' ({p['temperature']})",
    )
    require(
        len(set(p["datasets"])) == len(p["datasets"]), f"parameter 'datasets' lists a dataset twice: {p['datasets']}"
    )
    require(p["eval_n"] <= p["n_test"], f"parameter 'eval_n' ({p['eval_n']}) must not exceed 'n_test' ({p['n_test']})")
    require(
        p["batch_size"] <= min(p["n_train"], p["fashion_n_train"], p["gauss_n_train"], p["related_n_train"]),
        f"parameter 'batch_size' ({p['batch_size']}) must not exceed 'n_train', 'fashion_n_train', 'gauss_n_train' or 'related_n_train'",
    )


chapter = Chapter("vmim", "Variational MI maximization (thesis)", SCHEMA, (_check,))


SCHEMA_CLUSTERING = {
    "profile": PROFILE, "seed": Int(0), "allow_fallback": Bool(),
    "n_train": Int(100, 60000), "n_test": Int(100, 10000), "arch": Choice(["mlp", "conv"]),
    "hidden": ListOf(Int(1, 10_000)), "q_hidden": ListOf(Int(1, 10_000)), "z_dim": Int(1, 1000), "k": Int(2, 1000),
    "lam": Float(0), "code_source": Choice(["posterior", "prior"]), "entropy": Choice(["marginal", "prior"]),
    "temperature": Float(0, 100, open_low=True), "temperature_min": Float(0, 100, open_low=True), "anneal_rate": Float(0),
    "epochs": Int(1), "batch_size": Int(1), "lr": Float(0, 1, open_low=True),
    "x_tilde": Choice(["mean", "relaxed", "straight_through"]),
}


def _check_clustering(p: dict) -> None:
    """Cross-parameter rules of the chapter."""
    require(
        p["temperature_min"] <= p["temperature"],
        f"parameter 'temperature_min' ({p['temperature_min']}) must not exceed 'temperature' ({p['temperature']})",
    )
    require(
        p["batch_size"] <= p["n_train"],
        f"parameter 'batch_size' ({p['batch_size']}) must not exceed 'n_train' ({p['n_train']})",
    )


clustering = Chapter("vmim_clustering", "Ablation: clustering with the categorical code", SCHEMA_CLUSTERING, (_check_clustering,))




def category_sweep_figure(models: dict[str, VAE], accuracies: dict[str, dict], x: torch.Tensor, k: int,
                          title: str, part: str = "c") -> plt.Figure:
    """The thesis's Figs. 4.5/4.6: per model, the images ``x`` (first column) and their decodings with the
    categorical part set to each category (:func:`code_sweep`), categories in the order of the labels
    they were matched to (``accuracies[name]``: a :func:`vaemi.measures.metrics.cluster_accuracy` result).

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
