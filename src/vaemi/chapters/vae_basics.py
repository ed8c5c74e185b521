"""The chapter on the "Basics VAE" derivation notes (seed 001): its parameter schema."""
from __future__ import annotations

from vaemi.book.params import Bool, Choice, Float, Int, ListOf, require
from vaemi.chapters.common import PROFILE, Chapter

# ------------------------------------------------------------------------------------------- parameters
SCHEMA = {
    "profile": PROFILE,
    "seed": Int(0),
    "strict_claims": Bool(), "allow_fallback": Bool(),
    "mc_samples": Int(1000),
    "kl_dims": ListOf(Int(1, 10_000), min_len=2, increasing=True),
    "marginal_dims": ListOf(Int(1, 1000), min_len=2, increasing=True),
    "marginal_samples": Int(10),
    "marginal_repeats": Int(2),
    "dataset": Choice(["mnist", "fashion_mnist"]),
    "n_train": Int(100, 60000),
    "n_test": Int(100, 10000),
    "hidden": ListOf(Int(1, 10_000)),
    "latent_dim": Int(2, 1000),
    "decoder_variance": Float(0, open_low=True),
    "epochs": Int(1),
    "batch_size": Int(1),
    "lr": Float(0, 1, open_low=True),
    "sweep_variances": ListOf(Float(0, open_low=True), min_len=2, increasing=True),
    "sweep_latent_dim": Int(1, 1000),
    "sweep_epochs": Int(1),
    "iwae_samples": Int(2),
}


def _check(p: dict) -> None:
    """Cross-parameter rules of the chapter."""
    require(
        p["batch_size"] <= p["n_train"],
        f"parameter 'batch_size' ({p['batch_size']}) must not exceed 'n_train' ({p['n_train']})",
    )
    require(
        0.5 in p["sweep_variances"] and p["sweep_variances"][0] < 0.5 < p["sweep_variances"][-1],
        f"parameter 'sweep_variances' must contain 0.5 (the notes' implicit s^2) and values on both sides of it, "
        f"got {p['sweep_variances']}",
    )


chapter = Chapter("vae_basics", "VAE basics", SCHEMA, (_check,))



