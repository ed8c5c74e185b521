"""Validation of notebook parameters.

Every chapter's first code cell (tagged ``parameters``) is followed by a call to
:func:`validate` so that a bad value injected with ``papermill -p NAME VALUE`` fails in
seconds, *before* any data is loaded or any model is trained, with a message naming the
parameter, the value received and what was expected.
"""
from __future__ import annotations

import ast
import difflib
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["ParameterError", "Int", "Float", "Bool", "Choice", "Str", "ListOf", "validate", "require",
           "injected_names", "kind_differences", "POLICY_PARAMETERS"]

#: First line of the cell that papermill injects with ``-p NAME VALUE`` / ``-f FILE.yaml``.
PAPERMILL_HEADER = "# Parameters"


class ParameterError(ValueError):
    """A notebook parameter has a wrong type or value."""


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (either bound may be ``None``)."""

    low: int | None = None
    high: int | None = None

    def check(self, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"parameter {name!r} must be an integer, got {value!r} ({type(value).__name__})")
        _check_range(name, value, self.low, self.high)
        return value


@dataclass(frozen=True)
class Float:
    """A finite real number in ``[low, high]``; ``open_low`` / ``open_high`` exclude the lower / upper bound."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def check(self, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"parameter {name!r} must be a number, got {value!r} ({type(value).__name__})")
        if not math.isfinite(value):
            raise ParameterError(f"parameter {name!r} must be finite, got {value!r}")
        if self.open_low and self.low is not None and value <= self.low:
            raise ParameterError(f"parameter {name!r} must be > {self.low}, got {value!r}")
        if self.open_high and self.high is not None and value >= self.high:
            raise ParameterError(f"parameter {name!r} must be < {self.high}, got {value!r}")
        _check_range(name, value, self.low, self.high)
        return float(value)


@dataclass(frozen=True)
class Bool:
    """``True`` or ``False`` (papermill passes ``-p x True`` as a bool)."""

    def check(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ParameterError(f"parameter {name!r} must be True or False, got {value!r} ({type(value).__name__})")
        return value


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings (case sensitive)."""

    options: Sequence[str]

    def check(self, name: str, value: Any) -> str:
        if value not in self.options:
            raise ParameterError(f"parameter {name!r} must be one of {list(self.options)}, got {value!r}")
        return value


@dataclass(frozen=True)
class Str:
    """Any string; ``allow_none`` also admits ``None``."""

    allow_none: bool = False

    def check(self, name: str, value: Any) -> str | None:
        if value is None and self.allow_none:
            return None
        if not isinstance(value, str):
            raise ParameterError(f"parameter {name!r} must be a string, got {value!r} ({type(value).__name__})")
        return value


@dataclass(frozen=True)
class ListOf:
    """A list whose items are each checked by ``item`` (e.g. ``ListOf(Int(1))``); at least ``min_len``
    items; ``increasing`` demands strictly increasing values."""

    item: Any = Float()
    min_len: int = 1
    increasing: bool = False

    def check(self, name: str, value: Any) -> list:
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
            raise ParameterError(f"parameter {name!r} must be a list, got {value!r} ({type(value).__name__})")
        out = [self.item.check(f"{name}[{i}]", v) for i, v in enumerate(value)]
        if len(out) < self.min_len:
            raise ParameterError(f"parameter {name!r} needs at least {self.min_len} values, got {len(out)}")
        if self.increasing and any(b <= a for a, b in zip(out, out[1:])):
            raise ParameterError(f"parameter {name!r} must be strictly increasing, got {out}")
        return out


def _check_range(name: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise ParameterError(f"parameter {name!r} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ParameterError(f"parameter {name!r} must be <= {high}, got {value!r}")


def injected_names(history: Sequence[str] | None = None) -> list[str] | None:
    """Names assigned by the parameters that papermill injected into this kernel, if any.

    Papermill executes its injected cell (first line exactly ``# Parameters``) right after the
    notebook's ``parameters`` cell; IPython keeps every executed cell in ``In``. The most recent such
    cell is parsed, so a name passed with ``-p`` is found even when the chapter does not define it.

    Parameters
    ----------
    history : sequence of str, optional
        Executed cell sources, oldest first (default: IPython's ``In`` of the running kernel).

    Returns
    -------
    list of str or None
        The assigned names, or ``None`` outside IPython or when nothing was injected.
    """
    if history is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return None
        ip = get_ipython()
        if ip is None:
            return None
        history = ip.user_ns.get("In", [])
    for src in reversed(list(history)):
        lines = (src or "").lstrip().splitlines()
        if lines and lines[0].strip() == PAPERMILL_HEADER:
            names = []
            for node in ast.parse(src).body:
                targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
                names += [t.id for t in targets if isinstance(t, ast.Name)]
            return names
    return None


def validate(values: Mapping[str, Any], spec: Mapping[str, Any],
             injected: Sequence[str] | None = None) -> dict[str, Any]:
    """Check every parameter in ``spec`` against ``values`` (typically ``globals()``).

    Parameters
    ----------
    values : mapping
        Where the parameters live; a notebook passes ``globals()``.
    spec : mapping of str to checker
        ``{"epochs": Int(1), "lr": Float(0, open_low=True), ...}``.
    injected : sequence of str, optional
        Names given from outside (papermill ``-p``/``-f``); default: found with :func:`injected_names`.
        A name that ``spec`` does not define is an error (a typo such as ``-p epoch 3`` must not run
        the chapter with its defaults), naming the closest valid parameter.

    Returns
    -------
    dict
        The validated parameters, e.g. to be stored with the chapter's results.

    Raises
    ------
    ParameterError
        Naming the first offending parameter.
    """
    if injected is None:
        injected = injected_names() or []
    unknown = [k for k in injected if k not in spec]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, list(spec), n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ParameterError(f"unknown parameter {', '.join(hints)}: this chapter defines only "
                             f"{sorted(spec)}")
    missing = [k for k in spec if k not in values]
    if missing:
        raise ParameterError(f"parameters {missing} are not defined in the notebook")
    return {name: checker.check(name, values[name]) for name, checker in spec.items()}


def require(condition: bool, message: str) -> None:
    """Raise :class:`ParameterError` with ``message`` unless ``condition`` (for cross-parameter checks)."""
    if not condition:
        raise ParameterError(message)


#: Parameters that say how a run is judged or named, not which code it runs: a profile may set them freely.
POLICY_PARAMETERS = frozenset({"profile", "seed"})


def kind_differences(spec: Mapping[str, Any], reference: Mapping[str, Any], other: Mapping[str, Any],
                     exempt: Iterable[str] = POLICY_PARAMETERS) -> list[str]:
    """Where the parameter set ``other`` takes a different *path* through a chapter than ``reference``.

    A profile may shrink sizes (integers, reals, lists of numbers) but must walk the same code: every
    :class:`Choice` and :class:`Bool` parameter (a dataset, an architecture, a section switch, a feature
    extractor) must have the reference's value, and every list of choices (the datasets, the architectures) must
    contain each of the reference's entries. Used to hold the smoke profile, which the test suite runs, to the
    book profile, which ``make book`` runs.

    Parameters
    ----------
    spec : mapping of str to checker
        The chapter's schema (as given to :func:`validate`).
    reference, other : mapping
        Full parameter sets (defaults with the profile's values over them).
    exempt : iterable of str
        Names that may differ (:data:`POLICY_PARAMETERS`: the profile's name, the seed, the assertion policy).

    Returns
    -------
    list of str
        One message per difference, naming the parameter; empty when ``other`` covers ``reference``.
    """
    out = []
    skip = set(exempt)
    for name, checker in spec.items():
        if name in skip:
            continue
        ref, val = reference.get(name), other.get(name)
        if isinstance(checker, (Choice, Bool)) and ref != val:
            out.append(f"{name}: {val!r} where the reference has {ref!r} (another path through the chapter)")
        elif isinstance(checker, ListOf) and isinstance(checker.item, Choice):
            left_out = [v for v in ref or [] if v not in (val or [])]
            if left_out:
                out.append(f"{name}: leaves out {left_out} (the reference runs {list(ref)})")
    return out
