"""Captum-style inputs and baselines: the tuple form every layer works on, the
checks on their values, and the sizes of one example."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar, Union

import torch
from torch import Tensor

from xattr._core.validation import ArgumentError, all_finite

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
    """One baseline tensor per input, shaped [B, *F] or [1, *F] (shared), in the dtype of
    the input's perturbed copies (:func:`perturbed_dtype`).

    Accepts Captum's forms: None (zeros; False for bool inputs), a number (a bool for
    bool inputs), a tensor shaped like the inputs, like one example, or with a leading 1,
    or a tuple of these.
    """
    if baselines is None:
        baselines = (0,) * len(inputs)
    elif not isinstance(baselines, (tuple, list)):
        baselines = (baselines,)
    if len(baselines) != len(inputs):
        raise ValueError(
            f"baselines: expected {len(inputs)} baseline(s), one per input, got {len(baselines)}"
        )
    out = []
    for i, (b, x) in enumerate(zip(baselines, inputs)):
        feat = tuple(x.shape[1:])
        if isinstance(b, (int, float)):  # bool included, as Captum takes True / False
            value = torch.tensor(b, dtype=_number_dtype(b))
            check_finite(value, f"baselines[{i}]")
            dtype = perturbed_dtype(x, value, python_number=True)
            out.append(torch.full((1, *feat), b, dtype=dtype, device=x.device))
            continue
        if not isinstance(b, Tensor):
            raise TypeError(
                f"baselines[{i}]: expected a number or a tensor, got {type(b).__name__}"
            )
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
            raise ArgumentError(
                f"baselines[{i}]: shape {tuple(b.shape)} fits neither the inputs {tuple(x.shape)} "
                f"nor one example {feat}"
            )
        out.append(t.to(device=x.device, dtype=perturbed_dtype(x, b)))
    return tuple(out)


def _number_dtype(b: int | float) -> torch.dtype:
    if isinstance(b, bool):
        return torch.bool
    if isinstance(b, int) and -(2**63) <= b < 2**63:
        return torch.int64
    return torch.float64


def perturbed_dtype(x: Tensor, b: Tensor, python_number: bool = False) -> torch.dtype:
    """The dtype of the copies of ``x`` whose features take the baseline ``b``.

    Captum builds them as ``x * (1 - m) + b * m``, so torch's type promotion decides:
    float inputs keep their dtype (xattr casts the baseline to it); a bool or integer
    input keeps its dtype when every baseline value is one of its values (0 / 1 for
    bool, an integer in range), so token ids stay ids; otherwise (a fraction, an integer
    out of range, a number for a bool input) the copies take the promoted dtype, e.g.
    int64 ids with a baseline 0.5 become float32 copies, as in Captum.
    ``python_number``: ``b`` holds a Python number (promoted as one: float -> torch's
    default dtype).

    Example:
        >>> ids = torch.tensor([[3, 4]])
        >>> perturbed_dtype(ids, torch.tensor(0.0)), perturbed_dtype(ids, torch.tensor(0.5))
        (torch.int64, torch.float32)
        >>> perturbed_dtype(torch.tensor([[True]]), torch.tensor(False))
        torch.bool
    """
    if x.is_floating_point() or x.is_complex():
        return x.dtype
    if not b.numel() or b.dtype == x.dtype:
        return x.dtype
    if b.is_complex():
        return torch.result_type(x, b)
    bf = b.detach().to(torch.float64)
    if x.dtype == torch.bool:
        keeps = bool(((bf == 0) | (bf == 1)).all())
    else:
        keeps = bool((bf == bf.round()).all()) and _fits(bf, x.dtype)
    if keeps:
        return x.dtype
    if python_number:  # a Python int out of int64's range promotes as a float does
        return torch.result_type(x, b.item() if b.dtype != torch.float64 else float(b))
    return torch.result_type(x, b)


# The dtypes the masking kernel selects in; others are carried in one that holds every
# value exactly (the copies are cast back).
MASKABLE = (torch.float32, torch.float64, torch.int64)


def masking_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a perturbed copy of ``dtype`` is built in: itself when the masking kernel
    takes it, float32 for half / bfloat16, int64 for bool and the other integers."""
    if dtype in MASKABLE:
        return dtype
    return torch.float32 if dtype.is_floating_point else torch.int64


def promotion_note(inputs: Sequence[Tensor], baselines: Sequence[Tensor]) -> str | None:
    """Says which integer or bool inputs get copies of another dtype (their baselines are
    not values of their dtype; see :func:`perturbed_dtype`), for the error of a model
    that fails on them (an embedding takes ids, not floats); None when none do."""
    for i, (x, b) in enumerate(zip(inputs, baselines)):
        if not x.is_floating_point() and b.dtype != x.dtype:
            return (
                f"baselines[{i}]: inputs[{i}] are {x.dtype} but the baseline holds values "
                f"that are not (fractions, out of range), so the perturbed copies are "
                f"{b.dtype}, as in Captum; for token ids pass integers (a pad or mask id)"
            )
    return None


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
