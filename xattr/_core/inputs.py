"""Captum-style inputs and baselines: the tuple form every layer works on, the
checks on their values, and the sizes of one example."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar, Union

import torch
from torch import Tensor

from xattr._core.validation import all_finite

TensorOrTuple = Union[Tensor, tuple[Tensor, ...]]

# The public ``attribute`` methods return what they were given: a tensor for a tensor, a
# tuple for a tuple (Captum's ``TensorOrTupleOfTensorsGeneric``). Constrained rather than
# bound, so that a subclass (an ``nn.Parameter`` input) still gives a plain ``Tensor`` back.
TensorOrTupleGeneric = TypeVar("TensorOrTupleGeneric", Tensor, tuple[Tensor, ...])


BaselineType = Union[None, int, float, Tensor, tuple[Union[int, float, Tensor], ...]]


def format_inputs(inputs: TensorOrTuple, name: str = "inputs") -> tuple[tuple[Tensor, ...], bool]:
    """(tuple of tensors, whether the caller passed a tuple); all share the batch size."""
    if isinstance(inputs, Tensor):
        out, is_tuple = (inputs,), False
    elif (
        isinstance(inputs, (tuple, list)) and inputs and all(isinstance(t, Tensor) for t in inputs)
    ):
        out, is_tuple = tuple(inputs), True
    else:
        raise TypeError(
            f"{name}: expected a tensor or a tuple of tensors, got {type(inputs).__name__}"
        )
    for i, t in enumerate(out):
        if t.dim() < 1:
            raise ValueError(f"{name}[{i}]: expected a batch dimension, got a scalar")
    sizes = {t.shape[0] for t in out}
    if len(sizes) != 1:
        raise ValueError(
            f"{name}: all tensors need the same batch size, got {[t.shape[0] for t in out]}"
        )
    for i, t in enumerate(out):
        check_finite(t, f"{name}[{i}]")
    return out, is_tuple


def format_output(values: tuple[Tensor, ...], is_tuple: bool) -> TensorOrTuple:
    return values if is_tuple else values[0]


def format_baselines(baselines: BaselineType, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """One baseline tensor per input, shaped [B, *F] or [1, *F] (shared), in the input's dtype.

    Accepts Captum's forms: None (zeros), a number, a tensor shaped like the
    inputs, like one example, or with a leading 1, or a tuple of these.
    """
    if baselines is None:
        baselines = (0.0,) * len(inputs)
    elif not isinstance(baselines, (tuple, list)):
        baselines = (baselines,)
    if len(baselines) != len(inputs):
        raise ValueError(
            f"baselines: expected {len(inputs)} baseline(s), one per input, got {len(baselines)}"
        )
    out = []
    for i, (b, x) in enumerate(zip(baselines, inputs)):
        feat = tuple(x.shape[1:])
        if isinstance(b, (int, float)) and not isinstance(b, bool):
            _integral_for(x, torch.tensor(b, dtype=torch.float64), i)
            out.append(torch.full((1, *feat), b, dtype=x.dtype, device=x.device))
            continue
        if not isinstance(b, Tensor):
            raise TypeError(
                f"baselines[{i}]: expected a number or a tensor, got {type(b).__name__}"
            )
        _integral_for(x, b, i)
        check_finite(b, f"baselines[{i}]")
        if b.dim() == x.dim() and b.shape[0] in (1, x.shape[0]):
            try:
                t = b.broadcast_to((b.shape[0], *feat))
            except RuntimeError:
                t = None
        else:
            try:
                t = b.broadcast_to(feat).unsqueeze(0)
            except RuntimeError:
                t = None
        if t is None:
            raise ValueError(
                f"baselines[{i}]: shape {tuple(b.shape)} fits neither the inputs {tuple(x.shape)} "
                f"nor one example {feat}"
            )
        out.append(t.to(device=x.device, dtype=x.dtype))
    return tuple(out)


def _integral_for(x: Tensor, b: Tensor, i: int) -> None:
    """Integer inputs (token ids) take their baselines as they are: a NaN, a fraction or
    a value out of the input dtype's range would be cast to a different id silently."""
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        return
    if not (b.is_floating_point() or b.is_complex()):
        bad = b.numel() and b.dtype != x.dtype and not _fits(b, x.dtype)
    else:
        bf = b.detach().to(torch.float64)
        bad = not bool(torch.isfinite(bf).all()) or bool((bf != bf.round()).any())
        bad = bad or not _fits(bf, x.dtype)
    if bad:
        raise ValueError(
            f"baselines[{i}]: inputs[{i}] are {x.dtype} (e.g. token ids), so the baseline "
            f"must hold integers in that dtype's range; got {b.dtype} values that are not "
            "(a NaN, a fraction or out of range): pass the id that replaces removed "
            "tokens, e.g. a pad or mask id"
        )


def _fits(b: Tensor, dtype: torch.dtype) -> bool:
    """Every value of ``b`` is in the range of integer ``dtype``."""
    if not b.numel():
        return True
    info = torch.iinfo(dtype)
    lo, hi = b.min().item(), b.max().item()
    return info.min <= lo and hi <= info.max


def check_finite(t: Tensor, name: str = "forward_func") -> None:
    """Inputs, baselines and model outputs must be finite: NaN or inf would poison
    every estimator (``name``: what is checked, "forward_func" for model outputs)."""
    if not all_finite(t):
        what = "returned" if name == "forward_func" else "contains"
        raise ValueError(f"{name}: {what} non-finite values (NaN or inf)")


def attribution_dtype(x: Tensor, output_dtype: torch.dtype) -> torch.dtype:
    """Attributions take the input's dtype; integer inputs (token ids) take the model
    output's floating dtype, as in Captum."""
    if x.is_floating_point():
        return x.dtype
    return output_dtype if output_dtype.is_floating_point else torch.get_default_dtype()


def n_elements(t: Tensor) -> int:
    """Elements of one example of a batched tensor (also for an empty batch)."""
    return math.prod(t.shape[1:])


def example_bytes(inputs: Sequence[Tensor]) -> int:
    """Bytes of one example across the inputs (also for an empty batch)."""
    return sum(n_elements(t) * t.element_size() for t in inputs)


def seq(x: Any) -> Sequence:
    return x if isinstance(x, (tuple, list)) else (x,)
