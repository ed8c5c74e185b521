"""A cache of trained models, keyed by everything that determines their weights.

Re-executing a chapter whose training inputs did not change (after editing prose, a plot, or an
evaluation-only parameter) loads the weights instead of training; a chapter killed during training
resumes at its last finished epoch; a corrupt, truncated or mismatched entry is detected, removed and
retrained, never used.

The key (:func:`training_key`) hashes

* the model: class, every submodule's public settings, and its *initial* weights (so the
  architecture, the latent specification and the initialization all count);
* the loss: class and settings, including any auxiliary network and its initial weights;
* the data: the bytes, shape and dtype of the training images;
* the training settings: seed, epochs, learning rate, batch size, auxiliary learning rate, device type;
* the code that runs while a model trains (the files of :data:`KEY_FOLDERS`) and the torch version.

An entry stores the final weights, the auxiliary network, the history and the global random states
*after* training, which :func:`load` restores, so code that runs after a loaded model draws the same
random numbers as after a fresh training: a cached rebuild never changes a published number.

Where: ``$VAEMI_CACHE`` (``off`` disables caching), else ``~/.cache/vaemi/models``. Clear it with
``python -m vaemi.train.cache clear`` (or delete the folder).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import tempfile
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

__all__ = ["cache_root", "training_key", "fingerprint", "ENTRY_FORMAT", "CacheEntryError", "store", "load",
           "partial_path", "entry_path"]

#: Bumped when the layout of an entry changes (old entries then miss and are retrained).
ENTRY_FORMAT = 1
#: The wings of the package whose code runs while a model trains (the loss, the model, the loop and the maths they
#: use); their files are part of the key. The data are in the key by their bytes; what is measured after training,
#: the chapters, the book tooling and the sweeps are not.
KEY_FOLDERS = ("maths", "models", "losses", "train")
_PKG = Path(__file__).resolve().parents[1]  # the vaemi package
_MAX_DEPTH = 6


class CacheEntryError(RuntimeError):
    """A cache entry is unreadable, truncated, or belongs to another key."""


def cache_root() -> Path | None:
    """The cache folder, or ``None`` when caching is off (``VAEMI_CACHE=off``)."""
    env = os.environ.get("VAEMI_CACHE", "")
    if env.lower() in ("off", "0", "false", "none"):
        return None
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vaemi" / "models"


def _tensor_digest(t: torch.Tensor) -> str:
    t = t.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        flat = t.reshape(-1)  # a 0-d tensor (e.g. a fixed decoder log-variance) cannot be viewed as bytes
        h.update(flat.view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool else flat.numpy().tobytes())
    return h.hexdigest()


def fingerprint(obj: Any, depth: int = 0, with_state: bool = True) -> Any:
    """A JSON-able description of ``obj`` that changes when anything affecting training changes.

    Tensors by content hash; modules by class, public settings, children and (once, at the outermost
    module) every weight and buffer; plain objects by class and public attributes; containers
    recursively.
    """
    if depth > _MAX_DEPTH:
        return type(obj).__name__
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return repr(obj)
    if isinstance(obj, torch.Tensor):
        return {"tensor": _tensor_digest(obj)}
    if isinstance(obj, np.ndarray):
        return {"array": _tensor_digest(torch.from_numpy(np.ascontiguousarray(obj)))}
    if isinstance(obj, (torch.device, torch.dtype)):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [fingerprint(v, depth + 1, with_state) for v in obj]
    if isinstance(obj, dict):
        return {str(k): fingerprint(v, depth + 1, with_state) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, nn.Module):
        out = {"module": type(obj).__qualname__,
               "settings": {k: fingerprint(v, depth + 1, with_state) for k, v in sorted(vars(obj).items())
                            if not k.startswith("_") and k != "training"},
               "children": {k: fingerprint(c, depth + 1, with_state=False) for k, c in obj.named_children()}}
        if with_state:  # the outermost module's state covers its children's
            out["state"] = {k: _tensor_digest(v) for k, v in obj.state_dict().items()}
        return out
    if isinstance(obj, (types.FunctionType, types.MethodType, types.BuiltinFunctionType, type)):
        return f"{getattr(obj, '__module__', '')}.{obj.__qualname__}"
    if hasattr(obj, "__dict__"):
        return {"object": type(obj).__qualname__,
                "attrs": {k: fingerprint(v, depth + 1, with_state) for k, v in sorted(vars(obj).items())
                          if not k.startswith("_")}}
    return getattr(obj, "__qualname__", None) or repr(type(obj))


def _sources_digest() -> str:
    h = hashlib.sha256()
    for f in sorted(f for folder in KEY_FOLDERS for f in (_PKG / folder).rglob("*.py")):
        h.update(f.relative_to(_PKG).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def training_key(model: nn.Module, loss: Any, x: torch.Tensor, **settings: Any) -> str:
    """Hex key of one training run: the model (with its initial weights), the loss, the data and the
    settings (``epochs``, ``batch_size``, ``lr``, ``seed``, ... passed as keywords)."""
    payload = {
        "format": ENTRY_FORMAT,
        "model": fingerprint(model),
        "loss": {"class": type(loss).__qualname__, "settings": fingerprint(loss)},
        "data": _tensor_digest(x),
        "settings": fingerprint(settings),
        "sources": _sources_digest(),
        "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def entry_path(root: Path, key: str) -> Path:
    return root / f"{key}.pt"


def partial_path(root: Path, key: str) -> Path:
    """The per-epoch checkpoint of an unfinished training (resumed on the next run)."""
    return root / f"{key}.partial.pt"


def _global_rng() -> dict[str, Any]:
    """Python, NumPy and torch random states, as tensors and plain lists (``weights_only``-safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next}}
    if torch.cuda.is_available():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_global_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _digest_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def store(root: Path, key: str, model: nn.Module, aux: nn.Module | None, history: list[dict[str, Any]],
          steps: int) -> Path:
    """Write the entry of a finished training atomically, with a checksum beside it."""
    root.mkdir(parents=True, exist_ok=True)
    path = entry_path(root, key)
    state = {"format": ENTRY_FORMAT, "key": key, "model": model.state_dict(),
             "aux": aux.state_dict() if aux is not None else None, "history": history, "steps": int(steps),
             "rng": _global_rng()}
    fd, tmp = tempfile.mkstemp(dir=root, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        digest = _digest_file(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    path.with_suffix(".sha256").write_text(digest + "\n")
    return path


def load(root: Path, key: str, model: nn.Module, aux: nn.Module | None, device: torch.device) -> dict[str, Any]:
    """Load an entry into ``model`` (and ``aux``), restore the random states; return the entry.

    Raises
    ------
    FileNotFoundError
        No entry for ``key``.
    CacheEntryError
        The entry is corrupt, truncated, of another key or does not fit the model; it is removed.
    """
    path = entry_path(root, key)
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        sums = path.with_suffix(".sha256")
        if not sums.exists() or sums.read_text().strip() != _digest_file(path):
            raise CacheEntryError("checksum mismatch (truncated or modified file)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != ENTRY_FORMAT or state.get("key") != key:
            raise CacheEntryError("entry belongs to another key or format")
        model.load_state_dict(state["model"])
        if aux is not None:
            if state.get("aux") is None:
                raise CacheEntryError("entry has no auxiliary network")
            aux.load_state_dict(state["aux"])
    except Exception as e:  # any failure to read means: do not use it
        discard(root, key)
        raise CacheEntryError(f"cache entry {path.name} is unusable ({e}); it was removed") from e
    model.to(device)
    if aux is not None:
        aux.to(device)
    _set_global_rng(state["rng"])
    return state


def discard(root: Path, key: str) -> None:
    for p in (entry_path(root, key), entry_path(root, key).with_suffix(".sha256")):
        p.unlink(missing_ok=True)


def check_partial(root: Path, key: str) -> Path | None:
    """The partial checkpoint of ``key`` if it is readable; an unreadable one is removed (warned)."""
    p = partial_path(root, key)
    if not p.exists():
        return None
    try:
        torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        warnings.warn(f"partial checkpoint {p.name} is unreadable ({e}); training starts over", stacklevel=2)
        p.unlink(missing_ok=True)
        return None
    return p


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vaemi.train.cache", description="The trained-model cache.")
    ap.add_argument("command", choices=["where", "clear", "size"])
    a = ap.parse_args(argv)
    root = cache_root()
    if root is None:
        print("caching is off (VAEMI_CACHE=off)")
        return
    if a.command == "where":
        print(root)
    elif a.command == "size":
        files = list(root.glob("*.pt")) if root.exists() else []
        print(f"{len(files)} entries, {sum(f.stat().st_size for f in files) / 1e6:.1f} MB in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
        print(f"cleared {root}")


if __name__ == "__main__":
    main()
