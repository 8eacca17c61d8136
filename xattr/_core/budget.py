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
DEFAULT_BUDGET = 2**30  # 1 GiB
_budget: int = DEFAULT_BUDGET
# Whether the user set the global budget (set_memory_budget): a budget the user gives
# sizes every call by itself; the default lets xattr pick the size it measured fastest.
_explicit: bool = False


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


def set_memory_budget(value: int | str | None) -> None:
    """Sets the memory budget of one model call for every explainer and metric.

    A budget you set (here, or per call with ``memory_budget=``) sizes every model
    call by itself: ``budget // (16 * bytes of one perturbed row)`` rows (16 is the
    allowance for activations), whatever the device. ``None`` restores the default:
    1 GiB as the limit, under which xattr picks the call size it measured fastest on
    the device (see :func:`xattr._core.batching.rows_per_batch`).

    Args:
        value: bytes (int > 0), a string such as "512MB" or "2GiB", or None (default).

    Example:
        >>> import xattr
        >>> xattr.set_memory_budget("256MB")
        >>> xattr.get_memory_budget()
        268435456
        >>> xattr.set_memory_budget(None)
        >>> xattr.get_memory_budget()
        1073741824
    """
    global _budget, _explicit
    if value is None:
        _budget, _explicit = DEFAULT_BUDGET, False
        return
    _budget, _explicit = parse_bytes(value), True


def get_memory_budget() -> int:
    """The current default memory budget in bytes."""
    return _budget


def resolve_budget(memory_budget: int | str | None) -> tuple[int, bool]:
    """(bytes, whether the user gave them): a call's ``memory_budget``, else the global
    budget (given when :func:`set_memory_budget` set it)."""
    if memory_budget is not None:
        return parse_bytes(memory_budget), True
    return _budget, _explicit
