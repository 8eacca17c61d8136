"""The memory budget that sizes every batch of model evaluations."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 2**10,
    "MB": 2**20,
    "GB": 2**30,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
}
_budget: int = 2**30  # 1 GiB


def parse_bytes(value: int | str) -> int:
    """Bytes from an int or a string such as "512MB" or "1.5 GiB"."""
    if isinstance(value, bool):
        raise TypeError("memory_budget: expected bytes (int) or a string like '512MB', got bool")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"memory_budget: must be > 0 bytes, got {value}")
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMG]?I?B?)\s*", value.upper())
        if m and m.group(2) in _UNITS:
            n = int(float(m.group(1)) * _UNITS[m.group(2)])
            if n > 0:
                return n
        raise ValueError(f"memory_budget: cannot read {value!r}; use e.g. '512MB' or '2GB'")
    raise TypeError(f"memory_budget: expected bytes (int) or a string, got {type(value).__name__}")


def set_memory_budget(value: int | str) -> None:
    """Sets the default memory budget for one batch of model evaluations.

    Explainers size their forward (and backward) batches so that the perturbed
    inputs of one batch, times a safety factor for activations, fit in it.
    Default: 1 GiB. A ``memory_budget=`` argument overrides it per call.

    Example:
        >>> import xattr
        >>> xattr.set_memory_budget("256MB")
        >>> xattr.get_memory_budget()
        268435456
        >>> xattr.set_memory_budget("1GiB")
    """
    global _budget
    _budget = parse_bytes(value)


def get_memory_budget() -> int:
    """The current default memory budget in bytes."""
    return _budget
