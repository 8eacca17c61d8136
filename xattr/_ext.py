"""Loading of the compiled kernel library ``xattr._C`` and the choice, per
device, between it and the pure-torch references.

The kernels are optional at run time: when ``_C`` cannot be imported, or a
tensor lives on a GPU that this build cannot drive, the ops in ``xattr.ops``
run their references in ``xattr.ops._reference`` instead and say so once.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any

import torch

try:  # torch is imported first so _C shares torch's OpenMP runtime
    from xattr import _C  # pyright: ignore[reportAttributeAccessIssue]  (built by CMake)
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    _C = None
    _LOAD_ERROR: Exception | None = exc
else:
    _LOAD_ERROR = None

_warned: set[str] = set()

# Limits the kernels define (csrc/include/xattr/common.h), read from _C. A build without
# _C runs the references, which keep the kernels' limits: the number after `else` is
# that fallback (tests/test_opcheck.py holds it to _C's).
MAX_ENUMERATION_FEATURES: int = _C.max_enumeration_features() if _C is not None else 20

DTYPE_CODES = {
    torch.float32: 0,
    torch.float64: 1,
    torch.uint8: 2,
    torch.bool: 2,
    torch.int32: 3,
    torch.int64: 4,
}


def kernels_available() -> bool:
    """True when the compiled kernel library ``xattr._C`` is loaded."""
    return _C is not None


def cuda_available() -> bool:
    """True when xattr's CUDA kernels can run here.

    That needs a build with CUDA (``XATTR_CUDA=AUTO`` with nvcc found, or
    ``ON``), a GPU, and a driver new enough for the statically linked CUDA
    runtime. Importing xattr never needs any of these.

    Example:
        >>> import xattr
        >>> xattr.cuda_available() in (True, False)
        True
    """
    return _C is not None and bool(_C.built_with_cuda()) and _C.cuda_device_count() > 0


CPU_LAUNCHES = ("fast", "element")


def _check_launch(mode: str, name: str) -> bool:
    if mode not in CPU_LAUNCHES:
        raise ValueError(f"{name}: expected one of {CPU_LAUNCHES}, got {mode!r}")
    return mode == "element"


def get_cpu_launch() -> str:
    """How the CPU kernels run their grids: ``"fast"`` (the default: an op's loop over a
    row, ``span()``, where it has one) or ``"element"`` (one per-element call, exactly as
    the CUDA launcher makes them, so the CPU runs the code the GPU runs)."""
    return "element" if _C is not None and _C.element_launch() else "fast"


def set_cpu_launch(mode: str) -> None:
    """Set how the CPU kernels run their grids (see :func:`get_cpu_launch`).

    The environment variable ``XATTR_CPU_LAUNCH`` (``fast`` or ``element``) sets it when
    xattr is imported. Both give the same bits; ``"element"`` is slower and is meant
    for tests.

    Example:
        >>> from xattr import _ext
        >>> _ext.set_cpu_launch("element"); _ext.get_cpu_launch()
        'element'
        >>> _ext.set_cpu_launch("fast")
    """
    element = _check_launch(mode, "mode")
    if _C is not None:
        _C.set_element_launch(element)


@contextlib.contextmanager
def cpu_launch(mode: str) -> Iterator[None]:
    """Run the CPU kernels with ``mode`` (``"fast"`` or ``"element"``) inside the block.

    Example:
        >>> import torch
        >>> from xattr import _ext, ops
        >>> with _ext.cpu_launch("element"):
        ...     a = ops.bernoulli_masks(4, 5, seed=0)
        >>> torch.equal(a, ops.bernoulli_masks(4, 5, seed=0))
        True
    """
    _check_launch(mode, "mode")
    before = get_cpu_launch()
    set_cpu_launch(mode)
    try:
        yield
    finally:
        set_cpu_launch(before)


_ENV_LAUNCH = os.environ.get("XATTR_CPU_LAUNCH", "") or "fast"
_check_launch(_ENV_LAUNCH, "XATTR_CPU_LAUNCH")
set_cpu_launch(_ENV_LAUNCH)


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def use_kernels(device: torch.device) -> bool:
    """Whether ops on ``device`` run the compiled kernels (else the references)."""
    if _C is None:
        _warn_once(
            "load",
            f"xattr._C could not be loaded ({_LOAD_ERROR}); using the slower "
            "pure-torch reference implementations",
        )
        return False
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        if cuda_available():
            return True
        why = (
            "this build has no CUDA kernels"
            if not _C.built_with_cuda()
            else ("the CUDA runtime found no usable GPU (missing or too old driver)")
        )
        _warn_once("cuda", f"xattr: {why}; CUDA tensors use the pure-torch references")
        return False
    _warn_once(
        f"dev-{device.type}",
        f"xattr has no kernels for device '{device.type}'; using the pure-torch references",
    )
    return False


def buf(t: torch.Tensor) -> tuple[int, int, int]:
    """(data_ptr, numel, dtype code) of a contiguous tensor, as ``_C`` takes it."""
    assert t.is_contiguous(), "kernels take contiguous tensors"
    return (t.data_ptr(), t.numel(), DTYPE_CODES[t.dtype])


def batch_stride(t: torch.Tensor, per_item: int) -> int:
    """The kernels' batch stride of a [1 or B, ...] tensor: 0 when it is shared by the
    batch (a leading 1), else ``per_item``, also for the per-example tensors of an empty
    batch (a leading 0), whose buffers the kernels then check to be empty."""
    return 0 if t.shape[0] == 1 else per_item


def where(t: torch.Tensor) -> dict[str, Any]:
    """Device, stream and thread arguments for a kernel call on ``t``'s device.

    CPU kernels use ``torch.get_num_threads()`` threads; CUDA kernels run on
    torch's current stream of ``t``'s device.
    """
    if t.device.type == "cuda":
        index = t.device.index if t.device.index is not None else torch.cuda.current_device()
        stream = torch.cuda.current_stream(index).cuda_stream
        return {"device": index, "stream": stream, "threads": 1}
    return {"device": -1, "stream": 0, "threads": torch.get_num_threads()}


def lib() -> Any:
    """The loaded ``_C`` module (call only after ``use_kernels`` said True)."""
    return _C
