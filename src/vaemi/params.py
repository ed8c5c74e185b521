"""Validation of notebook parameters.

Every chapter's first code cell (tagged ``parameters``) is followed by a call to
:func:`validate` so that a bad value injected with ``papermill -p NAME VALUE`` fails in
seconds, *before* any data is loaded or any model is trained, with a message naming the
parameter, the value received and what was expected.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["ParameterError", "Int", "Float", "Bool", "Choice", "Str", "ListOf", "validate", "require"]


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
    """A finite real number in ``[low, high]``; ``open_low`` excludes the lower bound."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def check(self, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"parameter {name!r} must be a number, got {value!r} ({type(value).__name__})")
        if not math.isfinite(value):
            raise ParameterError(f"parameter {name!r} must be finite, got {value!r}")
        if self.open_low and self.low is not None and value <= self.low:
            raise ParameterError(f"parameter {name!r} must be > {self.low}, got {value!r}")
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


def validate(values: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """Check every parameter in ``spec`` against ``values`` (typically ``globals()``).

    Parameters
    ----------
    values : mapping
        Where the parameters live; a notebook passes ``globals()``.
    spec : mapping of str to checker
        ``{"epochs": Int(1), "lr": Float(0, open_low=True), ...}``.

    Returns
    -------
    dict
        The validated parameters, e.g. to be stored with the chapter's results.

    Raises
    ------
    ParameterError
        Naming the first offending parameter.
    """
    missing = [k for k in spec if k not in values]
    if missing:
        raise ParameterError(f"parameters {missing} are not defined in the notebook")
    return {name: checker.check(name, values[name]) for name, checker in spec.items()}


def require(condition: bool, message: str) -> None:
    """Raise :class:`ParameterError` with ``message`` unless ``condition`` (for cross-parameter checks)."""
    if not condition:
        raise ParameterError(message)
