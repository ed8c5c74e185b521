"""The chapter on Ducau & Trénous, "Mutual Information in Variational Autoencoders" (seed 000): its parameter
schema (and that of its experiment-2 ablation)."""
from __future__ import annotations

from vaemi.book.params import Bool, Choice, Float, Int, ListOf, require
from vaemi.chapters.common import PROFILE, Chapter

# ------------------------------------------------------------------------------------------- parameters
SCHEMA = {
    "profile": PROFILE, "seed": Int(0), "strict_claims": Bool(), "allow_fallback": Bool(),
    "dataset": Choice(["mnist", "fashion_mnist"]), "n_train": Int(100, 60000), "n_test": Int(100, 10000),
    "hidden": ListOf(Int(1, 10_000)), "batch_size": Int(1), "lr": Float(0, 1, open_low=True),
    "lam": Float(0, open_low=True), "x_tilde": Choice(["mean", "relaxed"]),
    "latent_dim": Int(2, 1000), "mi_dim": Int(1, 999), "epochs": Int(1),
    "latent_dim_big": Int(2, 1000), "mi_dim_big": Int(1, 999), "epochs_big": Int(1),
    "sweep_lams": ListOf(Float(0), min_len=2, increasing=True), "sweep_epochs": Int(1), "sweep_n_train": Int(100, 60000),
    "mi_samples": Int(100), "mi_samples_epoch": Int(100), "iwae_samples": Int(2),
}


def _check(p: dict) -> None:
    """Cross-parameter rules of the chapter."""
    require(
        p["mi_dim"] < p["latent_dim"],
        f"parameter 'mi_dim' ({p['mi_dim']}) must be smaller than 'latent_dim' ({p['latent_dim']})",
    )
    require(
        p["mi_dim_big"] < p["latent_dim_big"],
        f"parameter 'mi_dim_big' ({p['mi_dim_big']}) must be smaller than 'latent_dim_big' ({p['latent_dim_big']})",
    )
    require(
        p["batch_size"] <= min(p["n_train"], p["sweep_n_train"]),
        f"parameter 'batch_size' ({p['batch_size']}) must not exceed 'n_train' ({p['n_train']}) or 'sweep_n_train' ({p['sweep_n_train']})",
    )
    require(p["sweep_lams"][0] == 0.0, f"parameter 'sweep_lams' must start at 0 (the plain VAE), got {p['sweep_lams']}")


chapter = Chapter("infovae", "infoVAE: MI on part of the code", SCHEMA, (_check,))


SCHEMA_EXP2 = {
    "profile": PROFILE, "seed": Int(0), "allow_fallback": Bool(),
    "n_train": Int(100, 60000), "n_test": Int(100, 10000), "hidden": ListOf(Int(1, 10_000)),
    "latent_dim": Int(2, 1000), "mi_dim": Int(1, 999), "lam": Float(0), "x_tilde": Choice(["mean", "relaxed", "straight_through"]),
    "epochs": Int(1), "batch_size": Int(1), "lr": Float(0, 1, open_low=True), "mi_samples": Int(100),
}


def _check_exp2(p: dict) -> None:
    """Cross-parameter rules of the chapter."""
    require(
        p["mi_dim"] < p["latent_dim"],
        f"parameter 'mi_dim' ({p['mi_dim']}) must be smaller than 'latent_dim' ({p['latent_dim']})",
    )
    require(
        p["batch_size"] <= p["n_train"],
        f"parameter 'batch_size' ({p['batch_size']}) must not exceed 'n_train' ({p['n_train']})",
    )


exp2 = Chapter("infovae_exp2", "Ablation: infoVAE experiment 2", SCHEMA_EXP2, (_check_exp2,))



