"""The devices that the op tests run on, as pytorch_scatter's ``devices`` list:

- ``"cpu"``: the CPU kernels' fast path (an op's ``span()`` where it has one);
- ``"cpu-element"``: the CPU kernels run by the element launcher, one per-element
  call exactly as the CUDA launcher makes them (``XATTR_CPU_LAUNCH=element``), so
  that the code the GPU runs is tested on every machine;
- ``"cuda"``: the CUDA kernels, when xattr was built with CUDA and a GPU is present.

A test takes ``device`` from ``@pytest.mark.parametrize("device", DEVICES)`` and runs
the op inside ``with on(device) as dev:``, with its tensors on ``dev``.

An op test module that imports ``cpu_launch`` and ``pytest_generate_tests`` from here
runs every other test (CPU tensors) once per CPU launcher: the fast path and the
element launch, so that both are held to the same references.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch

import xattr
from xattr import _ext

HAVE_CUDA = xattr.cuda_available() and torch.cuda.is_available()
DEVICES = ["cpu", "cpu-element"] + (
    [pytest.param("cuda", marks=pytest.mark.cuda)] if HAVE_CUDA else []
)
CPU_LAUNCHES = list(_ext.CPU_LAUNCHES)


@pytest.fixture(autouse=True)
def cpu_launch(request: pytest.FixtureRequest) -> Iterator[str]:
    """The CPU launcher of the test (its parameter; the fast path when unparametrised)."""
    mode = getattr(request, "param", "fast")
    with _ext.cpu_launch(mode):
        yield mode


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests without a ``device`` parameter run under each CPU launcher."""
    if "cpu_launch" in metafunc.fixturenames and "device" not in metafunc.fixturenames:
        metafunc.parametrize("cpu_launch", CPU_LAUNCHES, indirect=True)


@contextlib.contextmanager
def on(device: str) -> Iterator[str]:
    """Yields the torch device of ``device`` ("cpu" or "cuda"), with the CPU kernels set
    to the element launcher for ``"cpu-element"`` (and to the fast path otherwise)."""
    with _ext.cpu_launch("element" if device == "cpu-element" else "fast"):
        yield "cuda" if device == "cuda" else "cpu"


def to(dev: str, *ts):
    """The tensors (or non-tensors, unchanged) on ``dev``."""
    return tuple(t.to(dev) if torch.is_tensor(t) else t for t in ts)


def bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bits as integers (floats viewed as same-size ints), on the CPU: equal
    bits means equal values, NaN payloads and the sign of zero included."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.float64:
        return t.view(torch.int64)
    if t.dtype == torch.float32:
        return t.view(torch.int32)
    return t


def assert_same_bits(got, want) -> None:
    """``got`` (a tensor or a tuple of tensors, any device) has ``want``'s bits."""
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same_bits(g, w)
        return
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape)
    assert torch.equal(bits(got), bits(want))


def assert_close(got, want, rtol: float = 1e-10, atol: float = 1e-10) -> None:
    """``got`` (a tensor or a tuple of tensors, any device) equals ``want`` to rounding."""
    if isinstance(want, (tuple, list)):
        for g, w in zip(got, want):
            assert_close(g, w, rtol, atol)
        return
    torch.testing.assert_close(got.detach().cpu(), want.detach().cpu(), rtol=rtol, atol=atol)


def held_to_cpu(device: str, got, want, rtol: float = 1e-10, atol: float = 1e-10) -> None:
    """A result on ``device`` against the CPU fast path's: the element launcher runs the
    same arithmetic in the same order, so its bits are the CPU's; the GPU's are too for
    integer work and selects (callers use :func:`assert_same_bits` for those), and are
    equal to rounding for the float reductions and solvers (``rtol`` / ``atol``)."""
    if device == "cuda":
        assert_close(got, want, rtol, atol)
    else:
        assert_same_bits(got, want)
