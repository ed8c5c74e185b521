"""The one training loop of the book.

:func:`train` seeds everything, picks the device (CUDA when present), moves model and data there
once, draws minibatches from in-memory tensors, shows a tqdm bar, stops with a clear
:class:`NonFiniteLossError` as soon as the loss is NaN/inf, optionally writes an atomic
checkpoint every epoch, and returns a :class:`History` (one row per epoch) for plots and results.
"""
from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from vaemi.data import ImageData
from vaemi.losses import BaseLoss
from vaemi.models import VAE

__all__ = [
    "seed_everything", "resolve_device", "NonFiniteLossError", "History", "train",
    "save_checkpoint", "load_checkpoint", "read_resume_state", "FINITE_CHECK_EVERY_CUDA",
]

#: On CUDA, reading the "was any loss non-finite?" flag costs a host-device sync, so it is read
#: only every this many steps (and at the end of every epoch); on the CPU it is read every step.
FINITE_CHECK_EVERY_CUDA = 50



def to_terminal() -> bool:
    """True while the book is being built (``VAEMI_PROGRESS=terminal``, set by ``vaemi.book.build``):
    progress then goes to the build's terminal, never into the page."""
    return os.environ.get("VAEMI_PROGRESS", "") == "terminal"


def progress_bar(iterable, **kw):
    """A tqdm bar: in a notebook as usual, or, while the book builds, on the kernel's original stderr,
    which is the terminal of ``make book`` (see :func:`to_terminal`)."""
    if to_terminal():
        from tqdm import tqdm as plain

        return plain(iterable, file=sys.__stderr__, **kw)
    return tqdm(iterable, **kw)


def progress_note(message: str) -> None:
    """A one-line progress message, on the same stream as :func:`progress_bar`."""
    print(message, file=sys.__stderr__ if to_terminal() else sys.stdout, flush=True)

def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a CPU generator seeded alike."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"`` -> CUDA when available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite during training.

    Attributes
    ----------
    step : int or None
        The first non-finite training step (counted from the start of training), or ``None`` for a non-finite
        evaluation metric.
    history : list of dict
        The rows of the epochs that finished before it.
    """

    def __init__(self, message: str, step: int | None = None, history: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.step, self.history = step, list(history or [])


class History:
    """Per-epoch metrics: a list of dicts, viewable as a DataFrame (``.df``)."""

    def __init__(self, records: list[dict[str, Any]] | None = None):
        self.records = list(records or [])

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    @property
    def df(self) -> pd.DataFrame:
        return pd.DataFrame(self.records)

    def __getitem__(self, key: str) -> np.ndarray:
        return np.array([r.get(key, np.nan) for r in self.records], dtype=float)

    def last(self, key: str) -> float:
        return float(self.records[-1][key])

    def __len__(self) -> int:
        return len(self.records)


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    **extra: Any) -> Path:
    """Write ``{"model", "optimizer", **extra}`` atomically (temp file + rename).

    ``extra`` must hold only tensors and plain Python containers/numbers/strings so that
    :func:`load_checkpoint` can read it with ``weights_only=True``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None, **extra}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, model: nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, map_location="cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; load states into the given objects."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if model is not None:
        model.load_state_dict(state["model"])
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    return state


def read_resume_state(path: str | Path, device: str | torch.device | None = None) -> dict[str, Any]:
    """Read a training checkpoint for resuming, keeping every tensor on the CPU.

    The checkpoint is always loaded with ``map_location="cpu"`` whatever ``device`` is: the random
    number generator states in it must stay CPU ``uint8`` tensors (``torch.set_rng_state`` and
    ``torch.cuda.set_rng_state_all`` reject anything else), while ``load_state_dict`` copies the
    weights and optimizer states onto the device of the parameters they are loaded into.

    Parameters
    ----------
    path : path
        A checkpoint written by :func:`train`.
    device : str or torch.device, optional
        The device training resumes on; only informative (nothing is moved there here).

    Returns
    -------
    dict
        The checkpoint, all tensors on the CPU.
    """
    del device  # deliberately unused: see above
    return torch.load(path, map_location="cpu", weights_only=True)


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    """Every random state training depends on, as tensors (loadable with ``weights_only=True``)."""
    state = {"batches": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(gen: torch.Generator, state: dict[str, Any]) -> None:
    gen.set_state(state["batches"].cpu())
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


_ADVICE = "Lower the learning rate, check the data range, or the decoder variance."


def _snapshot(objs: dict[str, Any]) -> dict[str, Any]:
    """Deep copies (on their own device) of the state dicts of models and optimizers."""
    import copy

    return {k: copy.deepcopy(o.state_dict()) for k, o in objs.items() if o is not None}


def _restore(objs: dict[str, Any], snap: dict[str, Any]) -> None:
    for k, o in objs.items():
        if o is not None and k in snap:
            o.load_state_dict(snap[k])


def _check_eval(metrics: dict[str, Any], epoch: int) -> dict[str, float]:
    """``eval_fn``'s values as floats; a NaN/inf one raises :class:`NonFiniteLossError` naming it."""
    row = {k: float(v) for k, v in metrics.items()}
    bad = {k: v for k, v in row.items() if not np.isfinite(v)}
    if bad:
        raise NonFiniteLossError(
            f"evaluation metric(s) {', '.join(f'{k}={v}' for k, v in bad.items())} non-finite after epoch {epoch}. "
            + _ADVICE
        )
    return row


def train(model: VAE, loss: BaseLoss, data: ImageData | torch.Tensor, *, epochs: int, batch_size: int = 100,
          lr: float = 1e-3, seed: int = 0, device: str | torch.device | None = None,
          eval_fn: Callable[[VAE, int], dict[str, float]] | None = None, aux_lr: float | None = None,
          checkpoint: str | Path | None = None, resume: bool = False, progress: bool = True,
          desc: str = "train", check_every: int | None = None, betas: tuple[float, float] = (0.9, 0.999)) -> History:
    """Train ``model`` on ``data`` by minimizing ``loss`` with Adam.

    Parameters
    ----------
    model : VAE
        Trained in place (and left on ``device``).
    loss : BaseLoss
        Objective; if it has an :meth:`~BaseLoss.auxiliary` module, that module gets its own Adam
        optimizer (learning rate ``aux_lr`` or ``lr``) and is stepped first in every minibatch.
    data : ImageData or tensor
        Training images ``(N, C, H, W)``, kept in memory (moved to ``device`` once).
    epochs, batch_size, lr : int, int, float
    betas : (float, float)
        Adam's decay rates (the VIMAE paper trains with beta_1 = 0.5).
    seed : int
        Seeds batch order and every random draw (initialization happens before: seed it yourself
        with :func:`seed_everything` or copy a model to share an initialization).
    device : str, optional
        ``None``/``"auto"`` picks CUDA when available.
    eval_fn : callable, optional
        ``eval_fn(model, epoch) -> dict`` run (in eval mode, no grad) after each epoch; its values
        join the epoch's row in the history.
    checkpoint : path, optional
        Write an atomic checkpoint there after every epoch; with ``resume=True`` continue from it.
    check_every : int, optional
        Read the non-finite-loss flag every this many steps (and at the end of every epoch).
        Default: 1 on the CPU, :data:`FINITE_CHECK_EVERY_CUDA` on CUDA (reading it syncs).
        Whatever the cadence, the error names the *first* non-finite step.

    Returns
    -------
    History
        One row per epoch: ``epoch``, ``seconds``, the epoch means of the loss's logs, and
        ``eval_fn``'s values.

    Raises
    ------
    NonFiniteLossError
        When a minibatch loss (or the auxiliary loss) is NaN or infinite, naming the first such
        epoch and step; ``model`` (and the optimizers) are then put back to the last state known
        to be finite, and no checkpoint is written from non-finite weights. Also when a value
        returned by ``eval_fn`` is NaN or infinite, naming it.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if check_every is not None and check_every < 1:
        raise ValueError(f"check_every must be >= 1, got {check_every}")
    device = resolve_device(device)
    x = data.x if isinstance(data, ImageData) else data
    if x.numel() == 0:
        raise ValueError("training data is empty")
    x = x.to(device)
    model.to(device)
    aux = loss.auxiliary()
    if aux is not None:
        aux.to(device)
    gen = seed_everything(seed)
    # the fused kernel (CPU and CUDA) is ~3x faster than the default foreach Adam for these small models
    fused = device.type in ("cpu", "cuda")
    if not all(0 <= b < 1 for b in betas) or len(betas) != 2:
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas}")
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=tuple(betas), fused=fused)
    aux_opt = torch.optim.Adam(aux.parameters(), lr=aux_lr or lr, fused=fused) if aux is not None else None

    history, start_epoch = History(), 0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state = read_resume_state(checkpoint, device)  # on the CPU: the RNG states must stay there
        model.load_state_dict(state["model"])
        if state.get("optimizer") is not None:
            opt.load_state_dict(state["optimizer"])
        if aux is not None and state.get("aux") is not None:
            aux.load_state_dict(state["aux"])
        if aux_opt is not None and state.get("aux_optimizer") is not None:
            aux_opt.load_state_dict(state["aux_optimizer"])
        history = History(state.get("history", []))
        start_epoch = len(history)
        _set_rng_state(gen, state["rng"])  # continue exactly where the interrupted run stopped

    # Reading a finiteness flag costs a host-device sync on CUDA, so there it is read only every
    # `check_every` steps; meanwhile the first non-finite step is recorded on the device, and the
    # states at the last passed check are kept so that the error path can put them back.
    if check_every is None:
        check_every = FINITE_CHECK_EVERY_CUDA if device.type == "cuda" else 1
    no_step = torch.tensor(-1, dtype=torch.long, device=device)
    first_bad = {"loss": no_step.clone(), "auxiliary loss": no_step.clone()}
    states = {"model": model, "optimizer": opt, "aux": aux, "aux_optimizer": aux_opt}
    good = _snapshot(states) if check_every > 1 else {}
    last_logs: dict[str, torch.Tensor] = {}

    def note(what: str, value: torch.Tensor, step: int) -> None:
        bad = ~torch.isfinite(value.detach()) & (first_bad[what] < 0)
        first_bad[what] = torch.where(bad, torch.full_like(first_bad[what], step), first_bad[what])

    def check() -> None:
        nonlocal good
        found = {w: int(s) for w, s in first_bad.items() if int(s) >= 0}
        if not found:
            if check_every > 1:
                good = _snapshot(states)
            return
        what, s = min(found.items(), key=lambda kv: kv[1])
        _restore(states, good)  # with check_every == 1 the bad update was never applied
        shown = {k: round(float(v), 4) for k, v in last_logs.items() if v.ndim == 0}
        raise NonFiniteLossError(
            f"{what} became non-finite at epoch {s // steps_per_epoch}, step {s} (values at the check: "
            f"{shown}); the model holds the last finite weights. " + _ADVICE, step=s, history=history.records
        )

    n = x.shape[0]
    steps_per_epoch = (n + batch_size - 1) // batch_size
    step = start_epoch * steps_per_epoch
    bar = progress_bar(range(start_epoch, epochs), desc=desc, disable=not progress, unit="epoch", mininterval=2.0)
    for epoch in bar:
        model.train()
        t0 = time.perf_counter()
        sums: dict[str, torch.Tensor] = {}
        perm = torch.randperm(n, generator=gen).to(device)
        for b in range(steps_per_epoch):
            xb = x[perm[b * batch_size:(b + 1) * batch_size]]
            model.latent.set_step(step)  # schedules, e.g. the annealed Gumbel-softmax temperature
            if aux_opt is not None:
                aux_loss = loss.auxiliary_loss(model, xb, step)
                note("auxiliary loss", aux_loss, step)
                if check_every == 1:
                    check()
                aux_opt.zero_grad(set_to_none=True)
                aux_loss.backward()
                aux_opt.step()
            value, logs = loss(model, xb, step)
            note("loss", value, step)
            last_logs = logs
            if check_every == 1:
                check()  # before the update: a non-finite loss is never applied
            opt.zero_grad(set_to_none=True)
            if aux is not None:
                aux.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v * xb.shape[0]
            step += 1
            if check_every > 1 and (step % check_every == 0 or b == steps_per_epoch - 1):
                check()
        row: dict[str, Any] = {"epoch": epoch + 1, "seconds": time.perf_counter() - t0}
        for k, v in sums.items():
            v = v / n
            if v.ndim:  # per-dimension vectors, e.g. kl/z -> kl/z_0, kl/z_1, ...
                row.update({f"{k}_{j}": float(vj) for j, vj in enumerate(v)})
            else:
                row[k] = float(v)
        if eval_fn is not None:
            model.eval()
            with torch.no_grad():
                row.update(_check_eval(eval_fn(model, epoch + 1), epoch + 1))
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.2f}")
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, opt, history=history.records, rng=_rng_state(gen),
                            aux=aux.state_dict() if aux is not None else None,
                            aux_optimizer=aux_opt.state_dict() if aux_opt is not None else None)
    model.eval()
    return history
