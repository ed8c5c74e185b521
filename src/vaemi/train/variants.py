"""Experiment scaffolding shared by the chapters: cached training and variants from one initialization.

* :func:`fit` trains one model through the model cache (:mod:`vaemi.train.cache`): it loads a finished
  training with the same inputs, resumes an interrupted one, or trains and stores.
* :func:`train_variants` trains several variants (losses, or model tweaks) from **one
  initialization on the same batches**, the comparison every chapter makes ("the VAE and the
  infoVAE start from the same initialization and see the same batches").
"""
from __future__ import annotations

import copy
import inspect
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from vaemi.data import ImageData
from vaemi.losses import BaseLoss
from vaemi.models import VAE
from vaemi.train import cache
from vaemi.train.loop import History, NonFiniteLossError, progress_note, resolve_device, train

__all__ = ["Trained", "fit", "fit_counts", "train_variants", "FITS"]


@dataclass
class Trained:
    """A trained model with its loss (and auxiliary network), history and provenance.

    Attributes
    ----------
    status : str
        ``"trained"`` (from scratch), ``"resumed"`` (continued from an interrupted run), ``"loaded"`` (from the
        model cache) or ``"diverged"`` (its loss became non-finite and ``fit`` was told to stop there: the model
        holds the last finite weights, ``extra`` says where, and it is not cached).
    """

    model: VAE
    loss: BaseLoss
    history: History
    status: str
    key: str | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def aux(self) -> torch.nn.Module | None:
        return self.loss.auxiliary()

    def __iter__(self):  # ``model, history = fit(...)``
        return iter((self.model, self.history))


#: The status of every :func:`fit` of this process ("trained", "resumed" or "loaded"), in order: a chapter's kernel
#: is its own process, so this is what the chapter trained and what it took from the model cache.
FITS: list[str] = []


def fit_counts() -> dict[str, int]:
    """How many models this process trained, resumed from a checkpoint, and loaded from the cache (:data:`FITS`)."""
    return {s: FITS.count(s) for s in ("trained", "resumed", "loaded")}


def _images(data: ImageData | torch.Tensor) -> torch.Tensor:
    return data.x if isinstance(data, ImageData) else data


def fit(model: VAE, loss: BaseLoss, data: ImageData | torch.Tensor, *, epochs: int, batch_size: int = 100,
        lr: float = 1e-3, seed: int = 0, device: str | torch.device | None = None,
        eval_fn: Callable[[VAE, int], dict[str, float]] | None = None, aux_lr: float | None = None,
        use_cache: bool = True, desc: str = "train", progress: bool = True,
        betas: tuple[float, float] = (0.9, 0.999), on_nonfinite: str = "raise") -> Trained:
    """Train ``model`` with ``loss`` through the model cache; see :func:`vaemi.train.loop.train`.

    ``on_nonfinite`` says what a non-finite loss does: ``"raise"`` (:class:`~vaemi.train.loop.NonFiniteLossError`)
    or ``"stop"``: training ends there and the model keeps its last finite weights, with status ``"diverged"``
    (for an objective that is known to be unbounded, whose divergence is a result, not a fault).

    The key covers the model (architecture, settings and its weights *now*, i.e. the
    initialization), the loss, the data and the settings; ``eval_fn`` is not part of it, so a change
    of an evaluation leaves the cache warm. On a hit, ``eval_fn``'s per-epoch values come from the
    stored history (the same numbers it gave when the model was trained).

    Returns
    -------
    Trained
        With ``status`` "trained", "resumed" or "loaded".
    """
    if on_nonfinite not in ("raise", "stop"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'stop', not {on_nonfinite!r}")
    device = resolve_device(device)
    root = cache.cache_root() if use_cache else None
    aux = loss.auxiliary()
    t0 = time.perf_counter()

    def diverged(e: NonFiniteLossError) -> Trained:
        if progress:
            progress_note(f"{desc}: stopped, {str(e).split('; ')[0]}")
        FITS.append("trained")
        return Trained(model, loss, History(e.history), "diverged", None, time.perf_counter() - t0,
                       extra={"diverged_at_step": e.step, "diverged": str(e).split("; ")[0]})

    if root is None:
        try:
            h = train(model, loss, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                      eval_fn=eval_fn, aux_lr=aux_lr, desc=desc, progress=progress, betas=betas)
        except NonFiniteLossError as e:
            if on_nonfinite == "raise":
                raise
            return diverged(e)
        FITS.append("trained")
        return Trained(model, loss, h, "trained", None, time.perf_counter() - t0)
    x = _images(data)
    key = cache.training_key(model, loss, x, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                             aux_lr=aux_lr, device=device.type,
                             **({} if tuple(betas) == (0.9, 0.999) else {"betas": list(betas)}))  # old keys stay valid
    try:
        state = cache.load(root, key, model, aux, device)
    except FileNotFoundError:
        pass
    except cache.CacheEntryError as e:
        warnings.warn(f"{e}; retraining", stacklevel=2)
    else:
        model.eval()
        model.latent.set_step(max(state["steps"] - 1, 0))  # schedules (e.g. the Gumbel temperature) as trained
        if progress:
            progress_note(f"{desc}: loaded from the model cache ({key[:12]})")
        FITS.append("loaded")
        return Trained(model, loss, History(state["history"]), "loaded", key, time.perf_counter() - t0)
    partial = cache.check_partial(root, key)
    try:
        h = train(model, loss, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                  eval_fn=eval_fn, aux_lr=aux_lr, desc=desc, progress=progress, betas=betas,
                  checkpoint=cache.partial_path(root, key), resume=partial is not None)
    except NonFiniteLossError as e:
        if on_nonfinite == "raise":
            raise
        cache.partial_path(root, key).unlink(missing_ok=True)  # a diverged training is not resumed: it is a result
        return diverged(e)
    steps = epochs * ((x.shape[0] + batch_size - 1) // batch_size)
    cache.store(root, key, model, aux, h.records, steps)
    cache.partial_path(root, key).unlink(missing_ok=True)
    FITS.append("resumed" if partial is not None else "trained")
    return Trained(model, loss, h, FITS[-1], key, time.perf_counter() - t0)


Variant = BaseLoss | Callable[[VAE], "BaseLoss | tuple[VAE, BaseLoss]"]


def train_variants(init: VAE, variants: Mapping[Any, Variant], data: ImageData | torch.Tensor, *, epochs: int,
                   batch_size: int = 100, lr: float = 1e-3, seed: int = 0,
                   eval_fn: Callable[..., dict[str, float]] | None = None, results: Any = None,
                   desc: str = "", **fit_kw: Any) -> dict[Any, Trained]:
    """Train every variant from a copy of ``init`` on the same batches (same ``seed``).

    Parameters
    ----------
    init : VAE
        The shared initialization; it is never modified.
    variants : mapping
        ``name -> loss`` (deep-copied, so an auxiliary network inside starts from the same weights
        for every variant that shares it) or ``name -> f(model_copy)`` returning a loss or a
        ``(model, loss)`` pair (for variants that change the model, e.g. a decoder variance).
    eval_fn : callable, optional
        ``eval_fn(model, epoch)`` per epoch; if it takes a ``loss`` argument, the variant's loss is
        passed too (e.g. to evaluate an auxiliary network).
    results : vaemi.book.results.Results, optional
        Where to record each variant's provenance ("trained", "resumed" or "loaded") under the
        meta key ``models``.

    Returns
    -------
    dict
        ``name -> Trained``, in the order of ``variants``.
    """
    takes_loss = eval_fn is not None and "loss" in inspect.signature(eval_fn).parameters
    out = {}
    for name, variant in variants.items():
        model = copy.deepcopy(init)
        if isinstance(variant, BaseLoss):
            loss = copy.deepcopy(variant)
        else:
            made = variant(model)
            model, loss = made if isinstance(made, tuple) else (model, made)
        ev = (lambda m, e, _l=loss: eval_fn(m, e, loss=_l)) if takes_loss else eval_fn
        label = f"{desc} {name}".strip()
        out[name] = fit(model, loss, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, eval_fn=ev,
                        desc=label, **fit_kw)
        if results is not None:  # metadata only (not glued: a glue key may appear once per page)
            results.meta.setdefault("models", {})[label] = out[name].status
    return out
