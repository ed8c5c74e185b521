"""Training: the book's one training loop (:mod:`~vaemi.train.loop`), one way to train a model or several
variants of one initialization (:mod:`~vaemi.train.variants`), and the cache of trained models
(:mod:`~vaemi.train.cache`, keyed by everything that determines the weights)."""
from vaemi.train.loop import History, NonFiniteLossError, resolve_device, seed_everything, train

__all__ = ["History", "NonFiniteLossError", "resolve_device", "seed_everything", "train"]
