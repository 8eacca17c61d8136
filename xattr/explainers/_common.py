"""What every explainer shares: Captum-style input, baseline and target
formatting, forward calls in large batches under the memory budget, and the
checks on what the model returns."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Union

import torch
from torch import Tensor

from xattr._budget import get_memory_budget, parse_bytes

TensorOrTuple = Union[Tensor, tuple[Tensor, ...]]
BaselineType = Union[None, int, float, Tensor, tuple[Union[int, float, Tensor], ...]]
TargetType = Union[None, int, tuple, list, Tensor, str]

# Activations of a forward pass cost a multiple of the input's bytes; batches are
# sized so that inputs * this factor fit in the budget.
ACTIVATION_FACTOR = 16
# Target size of one CPU batch's activations, and the most input bytes of one CPU
# batch (see rows_per_batch).
CPU_BATCH_BYTES = 2 * 2**20
CPU_INPUT_BYTES = 2 * 2**20


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
            out.append(torch.full((1, *feat), b, dtype=x.dtype, device=x.device))
            continue
        if not isinstance(b, Tensor):
            raise TypeError(
                f"baselines[{i}]: expected a number or a tensor, got {type(b).__name__}"
            )
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


def positive_int(name: str, value: Any) -> int:
    """An int argument >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return value


def flag(name: str, value: Any) -> bool:
    """A bool argument (ints refused: 0/1 for a flag is usually a mistake)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return value


def check_forward_func(forward_func: Any) -> None:
    """Every explainer's constructor: the model must be callable."""
    if not callable(forward_func):
        raise TypeError(f"forward_func: expected a callable, got {type(forward_func).__name__}")


class Attribution:
    """Base of every explainer (Captum's ``Attribution``): holds the model.

    Args:
        forward_func: the model, any callable from input tensors to outputs.
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        check_forward_func(forward_func)
        self.forward_func = forward_func

    @property
    def multiplies_by_inputs(self) -> bool:
        """Whether attributions include the factor (inputs - baselines) (Captum's flag)."""
        return False

    def has_convergence_delta(self) -> bool:
        """Whether ``attribute`` can return a convergence delta."""
        return False


class PerturbationAttribution(Attribution):
    """Base of the perturbation explainers: their attributions are differences of model
    outputs, so they count as multiplied by the inputs (as in Captum)."""

    @property
    def multiplies_by_inputs(self) -> bool:
        return True


def warn_if_training(forward_func: Callable) -> None:
    """Dropout and batch-norm statistics in training mode break exactness and determinism."""
    module = (
        forward_func
        if isinstance(forward_func, torch.nn.Module)
        else getattr(forward_func, "__self__", None)
    )
    if isinstance(module, torch.nn.Module) and module.training:
        warnings.warn(
            "the model is in training mode: dropout and batch-norm make attributions inexact "
            "and non-deterministic; call model.eval() first",
            UserWarning,
            stacklevel=4,
        )


def expand_additional_args(args: Any, batch: int, repeats: int) -> tuple:
    """Repeats every tensor argument with the batch as first dimension, example-major
    (row b * repeats + s), to match the perturbed rows; other arguments pass as they are."""
    if args is None:
        return ()
    if not isinstance(args, tuple):
        args = (args,)
    out = []
    for a in args:
        if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch and repeats != 1:
            out.append(a.repeat_interleave(repeats, dim=0))
        else:
            out.append(a)
    return tuple(out)


def repeat_per_example(value: Any, batch: int, k: int, ndim: int | None = None) -> Any:
    """A tensor with one row per example (batch > 1; ``ndim`` dimensions when given)
    repeated ``k`` times example-major (row b * k + j), as perturbed copies are; anything
    else unchanged."""
    if (
        isinstance(value, Tensor)
        and value.dim() > 0
        and value.shape[0] == batch
        and batch > 1
        and (ndim is None or value.dim() == ndim)
    ):
        return value.repeat_interleave(k, dim=0)
    return value


def slice_additional_args(args: tuple, batch: int, start: int, stop: int) -> tuple:
    """Rows start..stop of the expanded tensor arguments (others unchanged)."""
    return tuple(
        a[start:stop] if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch else a
        for a in args
    )


def rows_per_batch(
    inputs: tuple[Tensor, ...],
    requested: int | None,
    memory_budget: int | str | None,
    name: str = "perturbations_per_eval",
    per_row_copies: int = 1,
) -> int | None:
    """Rows per forward call: the user's number, else as many as fit the budget.

    ``requested`` counts rows in the units the caller uses (e.g. perturbations per
    example); None means "choose".
    """
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"{name}: expected a positive int, got {requested!r}")
        return requested
    budget = get_memory_budget() if memory_budget is None else parse_bytes(memory_budget)
    row_bytes = max(1, example_bytes(inputs) * per_row_copies)
    rows = max(1, budget // (row_bytes * ACTIVATION_FACTOR))
    if inputs[0].device.type == "cpu":
        # On a CPU, batches whose activations outgrow the caches (or the allocator's
        # reuse of freed blocks) are slower per row, not faster: a CNN ran 8,224 rows
        # in 205 ms in one call and in 43 ms in calls of 256; small MLPs and CNNs were
        # fastest at 256-512 rows. Keep the estimated activations of one call near
        # CPU_BATCH_BYTES, within [256, 4096] rows, and the inputs of one call within
        # CPU_INPUT_BYTES: EfficientNet-Lite0 on 224 x 224 photos (602 KB rows) took
        # 26-27 ms per row in calls of 2-4 rows, 36 in calls of 16, 75-80 in 32-110.
        cap = min(4096, max(256, CPU_BATCH_BYTES // (row_bytes * ACTIVATION_FACTOR)))
        rows = max(1, min(rows, cap, CPU_INPUT_BYTES // row_bytes))
    return rows


# ------------------------------------------------------------------ targets
class Targets:
    """A normalised ``target``: selects T outputs per example from model outputs.

    Forms (Captum's, plus two of ours):
      None              the model returns one value per example
      int / tuple       the same output index for every example
      list / 1-D tensor of B ints (or B tuples): one index per example
      list of B lists of T ints: T targets per example (ours)
      "all"             every output (ours)
    ``multi`` says whether attributions get a target dimension (after the batch).
    """

    def __init__(self, target: TargetType, batch: int):
        self.batch = batch
        self.multi = False
        self.kind = "none"
        self.index: Tensor | None = None
        self.fixed: tuple | None = None
        if target is None:
            return
        if isinstance(target, str):
            if target != "all":
                raise ValueError(f"target: the only string accepted is 'all', got {target!r}")
            self.kind, self.multi = "all", True
            return
        if isinstance(target, Tensor):
            if target.numel() == 1:
                target = int(target.item())
            else:
                if target.dim() != 1 or target.shape[0] != batch:
                    raise ValueError(
                        f"target: a tensor target needs {batch} entries (one per example), "
                        f"got shape {tuple(target.shape)}"
                    )
                target = target.tolist()
        if isinstance(target, bool):
            raise TypeError("target: expected an int, tuple, list, tensor or 'all', got bool")
        if isinstance(target, int):
            self.kind, self.fixed = "fixed", (target,)
            return
        if isinstance(target, tuple):
            self.kind, self.fixed = "fixed", tuple(int(t) for t in target)
            return
        if isinstance(target, list):
            if len(target) != batch:
                raise ValueError(
                    f"target: a list target needs {batch} entries (one per example), "
                    f"got {len(target)}"
                )
            if all(isinstance(t, int) and not isinstance(t, bool) for t in target):
                self.kind = "per_example"
                self._set_index(torch.tensor(target, dtype=torch.long).view(batch, 1))
                return
            if all(isinstance(t, tuple) for t in target):
                self.kind = "per_example_tuple"
                self.fixed = tuple(tuple(int(v) for v in t) for t in target)
                return
            if all(isinstance(t, list) for t in target):
                lens = {len(t) for t in target}
                if len(lens) != 1 or 0 in lens:
                    raise ValueError(
                        "target: a list of lists needs the same, "
                        "non-zero number of targets per example"
                    )
                self.kind, self.multi = "per_example", True
                self._set_index(torch.tensor(target, dtype=torch.long))
                return
        raise TypeError(f"target: unsupported target {target!r}")

    def select(self, out: Tensor, rows_per_example: int, first_example: int = 0) -> Tensor:
        """Model outputs for rows ordered example-major -> [rows, T] (also for 0 rows)."""
        n = out.shape[0]
        if self.kind == "none":
            if n_elements(out) != 1:
                raise ValueError(
                    f"target: the model returns {tuple(out.shape[1:])} values per example; "
                    "give target= to choose one (or target='all')"
                )
            return out.reshape(n, 1)
        if self.kind == "all":
            return out.reshape(n, n_elements(out))
        if self.kind == "fixed":
            if out.dim() - 1 < len(self.fixed):
                raise ValueError(
                    f"target: index {self.fixed} needs {len(self.fixed)} output dimensions, "
                    f"the model returns {tuple(out.shape[1:])}"
                )
            self._check_range(out, self.fixed)
            sel = out[(slice(None), *self.fixed)]
            return sel.reshape(n, n_elements(sel))
        if self.kind == "per_example_tuple":
            ex = torch.arange(n) // rows_per_example + first_example
            sel = [out[(r, *self.fixed[int(e)])] for r, e in enumerate(ex.tolist())]
            return torch.stack(sel).reshape(n, -1) if sel else out.new_empty((0, 1))
        if out.dim() != 2:
            raise ValueError(
                "target: per-example indices need outputs [batch, classes], "
                f"the model returns {tuple(out.shape)}"
            )
        C = out.shape[1]
        if self.top >= C or self.bottom < -C:
            raise ValueError(f"target: index out of range for {C} outputs")
        idx = self._wrapped(C, out.device)  # [B, T] in [0, C)
        if n % rows_per_example == 0:  # whole examples: one gather, no row index
            nb, T = n // rows_per_example, idx.shape[1]
            idx = idx[first_example : first_example + nb].unsqueeze(1)
            out3 = out.view(nb, rows_per_example, C)
            return torch.gather(out3, 2, idx.expand(nb, rows_per_example, T)).view(n, T)
        ex = torch.arange(n, device=out.device) // rows_per_example + first_example
        return torch.gather(out, 1, idx[ex])

    def take(self, start: int, stop: int, repeat: int = 1) -> Targets:
        """The targets of examples start..stop, for a batch in which each of them is
        repeated ``repeat`` times example-major (row b * repeat + j copies example b)."""
        out = copy.copy(self)
        out.batch = (stop - start) * repeat
        if self.kind == "per_example_tuple":
            out.fixed = tuple(t for t in self.fixed[start:stop] for _ in range(repeat))
        elif self.index is not None:
            out._set_index(self.index[start:stop].repeat_interleave(repeat, dim=0))
        return out

    def _set_index(self, index: Tensor) -> None:
        """Per-example indices [B, T] and their range (checked against the outputs)."""
        self.index = index
        empty = index.numel() == 0  # an empty batch: nothing to check
        self.bottom, self.top = (0, -1) if empty else (int(index.min()), int(index.max()))
        self._cache: tuple = (None, None, None)

    def _wrapped(self, C: int, device: torch.device) -> Tensor:
        """The indices taken modulo C on ``device`` (kept for the next chunk)."""
        if self._cache[:2] != (C, device):
            self._cache = (C, device, self.index.to(device) % C)
        return self._cache[2]

    @staticmethod
    def _check_range(out: Tensor, fixed: tuple) -> None:
        for dim, (i, size) in enumerate(zip(fixed, out.shape[1:])):
            if not -size <= i < size:
                raise ValueError(
                    f"target: index {i} out of range for output dimension {dim + 1} of size {size}"
                )


def check_model_output(out: Any, rows: int, finite: bool = True) -> Tensor:
    """The model must return a tensor with one row per input row, all finite.

    ``finite=False`` leaves the finiteness check to the caller (the game checks
    only the outputs it selects, once per chunk).
    """
    aggregate = (
        "; a model that returns one value for the whole batch (Captum's aggregate mode, "
        "e.g. a batch loss) is not supported: return one value per example"
    )
    if not isinstance(out, Tensor):
        hint = aggregate if isinstance(out, (int, float)) else ""
        raise TypeError(
            f"forward_func: expected it to return a tensor, got {type(out).__name__}{hint}"
        )
    if out.dim() == 0:
        out = out.reshape(1)
    if out.shape[0] != rows:
        raise ValueError(
            f"forward_func: returned {out.shape[0]} rows for a batch of {rows}; "
            "the model must return one output row per input row"
            + (aggregate if out.shape[0] == 1 else "")
        )
    if finite:
        check_finite(out)
    return out


def attribution_dtype(x: Tensor, output_dtype: torch.dtype) -> torch.dtype:
    """Attributions take the input's dtype; integer inputs (token ids) take the model
    output's floating dtype, as in Captum."""
    if x.is_floating_point():
        return x.dtype
    return output_dtype if output_dtype.is_floating_point else torch.get_default_dtype()


def check_finite(out: Tensor) -> None:
    """Model outputs must be finite (NaN or inf would poison every estimator)."""
    if out.is_floating_point() and not bool(torch.isfinite(out).all()):
        raise ValueError("forward_func: returned non-finite values (NaN or inf)")


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


_NO_PROGRESS = _NoProgress()


def progress(total: int, enabled: bool, desc: str):
    """A tqdm progress bar when asked for and tqdm is installed, else a no-op."""
    if enabled:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, desc=desc)
        except ImportError:  # pragma: no cover
            pass
    return _NO_PROGRESS


def n_elements(t: Tensor) -> int:
    """Elements of one example of a batched tensor (also for an empty batch)."""
    return math.prod(t.shape[1:])


def example_bytes(inputs: Sequence[Tensor]) -> int:
    """Bytes of one example across the inputs (also for an empty batch)."""
    return sum(n_elements(t) * t.element_size() for t in inputs)


def seq(x: Any) -> Sequence:
    return x if isinstance(x, (tuple, list)) else (x,)
