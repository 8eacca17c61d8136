"""Argument checks shared by every layer (each message starts with the argument's
name). The ops' own checks (``xattr.ops._checks``) reach the layers above through
this module, so that no layer imports another package's private module."""

from __future__ import annotations

from typing import Any

from xattr.ops._checks import FLOATS, all_finite, finite, int_arg, mus_level, seed

__all__ = [
    "FLOATS",
    "ArgumentError",
    "ArgumentTypeError",
    "all_finite",
    "check_forward_func",
    "finite",
    "flag",
    "int_arg",
    "mus_level",
    "per_eval",
    "positive_int",
    "seed",
]


class ArgumentError(ValueError, AssertionError):
    """A bad argument where Captum asserts: a ValueError (xattr's clear message naming the
    argument) that is an AssertionError too, so code written against Captum's
    ``assert`` checks (and Captum's own tests) catch it as before."""


class ArgumentTypeError(TypeError, AssertionError):
    """A bad argument type where Captum asserts: a TypeError that is an AssertionError
    too (see :class:`ArgumentError`)."""


def positive_int(name: str, value: Any) -> int:
    """An int argument >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return value


def per_eval(value: Any, name: str = "perturbations_per_eval") -> int | None:
    """Captum's perturbations_per_eval / internal_batch_size: None (the memory budget
    decides) or a positive int, the same in every explainer."""
    return None if value is None else positive_int(name, value)


def flag(name: str, value: Any) -> bool:
    """A bool argument (ints refused: 0/1 for a flag is usually a mistake)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return value


def check_forward_func(forward_func: Any) -> None:
    """Every explainer's constructor: the model must be callable."""
    if not callable(forward_func):
        raise TypeError(f"forward_func: expected a callable, got {type(forward_func).__name__}")
