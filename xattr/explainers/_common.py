"""What every explainer shares: Captum-style input, baseline and target
formatting, forward calls in large batches under the memory budget, and the
checks on what the model returns."""

from __future__ import annotations

import copy
import functools
import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Union

import torch
from torch import Tensor

from xattr._budget import get_memory_budget, parse_bytes
from xattr.ops import _checks

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


# Modules whose forward differs between training and evaluation mode.
_TRAINING_MODULES = (
    torch.nn.modules.dropout._DropoutNd,
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
)


def _modules_behind(forward_func: Any, depth: int = 3) -> list[torch.nn.Module]:
    """The nn.Modules a callable runs: itself, the module of a bound method, and the
    modules a lambda / closure / functools.partial holds (a few levels deep)."""
    found: list[torch.nn.Module] = []
    seen: set[int] = set()

    def visit(obj: Any, level: int) -> None:
        if id(obj) in seen or level > depth:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.nn.Module):
            found.append(obj)
            return
        inner: list[Any] = []
        if hasattr(obj, "__self__"):  # a bound method
            inner.append(obj.__self__)
        if isinstance(obj, functools.partial):
            inner += [obj.func, *obj.args, *obj.keywords.values()]
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                inner.append(cell.cell_contents)
            except ValueError:  # an empty cell
                pass
        code = getattr(obj, "__code__", None)
        glob = getattr(obj, "__globals__", None)
        if code is not None and glob is not None:  # modules a lambda reads from globals
            inner += [glob[n] for n in code.co_names if isinstance(glob.get(n), torch.nn.Module)]
        for o in inner:
            visit(o, level + 1)

    visit(forward_func, 0)
    return found


def warn_if_training(forward_func: Callable) -> None:
    """Warns when a module the model runs behaves differently in training mode (dropout,
    batch / instance norm with running statistics) and is in training mode: that makes
    attributions inexact and non-deterministic. Modules found through a lambda, a
    closure or a bound method count; a training-mode wrapper with nothing of that kind
    inside does not."""
    active = []
    for module in _modules_behind(forward_func):
        for name, sub in module.named_modules():
            if not sub.training or not isinstance(sub, _TRAINING_MODULES):
                continue
            if isinstance(sub, torch.nn.modules.instancenorm._InstanceNorm) and not (
                sub.track_running_stats
            ):
                continue  # the same computation in both modes
            active.append(type(sub).__name__ + (f" '{name}'" if name else ""))
    if active:
        shown = ", ".join(active[:3]) + (f" and {len(active) - 3} more" if len(active) > 3 else "")
        warnings.warn(
            f"the model has {shown} in training mode: dropout and batch-norm make "
            "attributions inexact and non-deterministic; call model.eval() first",
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


# A call that leaves fewer rows than this per forward call, for more calls than
# TINY_BATCH_CALLS, is slowed down by the per-call cost of the model: warn.
TINY_BATCH_ROWS = 16
TINY_BATCH_CALLS = 10_000


def warn_tiny_batches(rows: int, total: int) -> None:
    """Warns when ``total`` model rows go through the model ``rows`` at a time in so many
    calls that the per-call cost dominates (a memory budget too small for the job)."""
    calls = -(-total // max(1, rows))
    if rows < TINY_BATCH_ROWS and calls > TINY_BATCH_CALLS:
        warnings.warn(
            f"memory_budget: it leaves {rows} model row(s) per forward call, so the "
            f"{total:,} rows of this call take {calls:,} forward calls, each paying the "
            "model's fixed cost; raise memory_budget (or xattr.set_memory_budget), or "
            "explain fewer features (a coarser feature_mask)",
            UserWarning,
            stacklevel=4,
        )


# ------------------------------------------------------------------ targets
def _indices(values: Sequence[Any]) -> tuple[int, ...]:
    """Output indices: Python ints (or integer scalar tensors); a float is refused rather
    than truncated to another output."""
    out = []
    for v in values:
        if isinstance(v, Tensor) and v.numel() == 1 and not v.is_floating_point():
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(
                f"target: expected integer output indices, got {v!r} ({type(v).__name__})"
            )
        out.append(v)
    return tuple(out)


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
            if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
                raise TypeError(
                    f"target: expected integer output indices, got a {target.dtype} tensor"
                )
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
            self.kind, self.fixed = "fixed", _indices(target)
            return
        if isinstance(target, list):
            target = [
                t.item()
                if isinstance(t, Tensor) and t.numel() == 1 and not t.is_floating_point()
                else t
                for t in target
            ]
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
                self.fixed = tuple(_indices(t) for t in target)
                return
            if all(isinstance(t, list) for t in target):
                lens = {len(t) for t in target}
                if len(lens) != 1 or 0 in lens:
                    raise ValueError(
                        "target: a list of lists needs the same, "
                        "non-zero number of targets per example"
                    )
                for t in target:
                    _indices(t)
                self.kind, self.multi = "per_example", True
                self._set_index(torch.tensor(target, dtype=torch.long))
                return
        if isinstance(target, (int, float)):
            _indices((target,))  # a float: refused with the index message
        if isinstance(target, list) and not any(isinstance(t, (tuple, list)) for t in target):
            _indices(target)
        raise TypeError(
            "target: expected None, an int, a tuple, a list of ints (or of tuples, or of "
            f"lists), a tensor of ints or 'all', got {target!r}"
        )

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


def run_model(
    forward_func: Callable,
    inputs: Sequence[Tensor],
    extra: Sequence[Any] = (),
    rows: int | None = None,
    finite: bool = True,
) -> Any:
    """``forward_func(*inputs, *extra)``, checked with :func:`check_model_output` when
    ``rows`` is given. A failure that the inputs explain (their float dtype is not the
    model's; 1-D inputs read as one scalar per example) says so next to the model's
    own error."""
    try:
        out = forward_func(*inputs, *extra)
        return out if rows is None else check_model_output(out, rows, finite)
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        hint = _input_hint(forward_func, inputs)
        if hint is None:
            raise
        raise type(e)(f"{e}\n(xattr: {hint})") from e


def _input_hint(forward_func: Callable, inputs: Sequence[Tensor]) -> str | None:
    """What about the inputs would make a model fail, if anything."""
    params = {
        p.dtype
        for m in _modules_behind(forward_func)
        for p in itertools.chain(m.parameters(), m.buffers())
        if p.is_floating_point()
    }
    given = {t.dtype for t in inputs if t.is_floating_point()}
    if len(params) == 1 and given and given != params:
        (want,) = params
        have = ", ".join(sorted(str(d) for d in given))
        return (
            f"the inputs are {have} but the model's parameters are {want}: pass inputs of "
            f"the model's dtype (e.g. x.to({want})) or convert the model (e.g. model.to("
            f"{next(iter(given))}))"
        )
    if all(t.dim() == 1 for t in inputs):
        return (
            "the inputs are 1-D, which xattr (as Captum) reads as a batch of examples of "
            "one scalar each; to explain one example with several features, pass "
            "x.unsqueeze(0)"
        )
    return None


def attribution_dtype(x: Tensor, output_dtype: torch.dtype) -> torch.dtype:
    """Attributions take the input's dtype; integer inputs (token ids) take the model
    output's floating dtype, as in Captum."""
    if x.is_floating_point():
        return x.dtype
    return output_dtype if output_dtype.is_floating_point else torch.get_default_dtype()


def check_finite(t: Tensor, name: str = "forward_func") -> None:
    """Inputs, baselines and model outputs must be finite: NaN or inf would poison
    every estimator (``name``: what is checked, "forward_func" for model outputs)."""
    if not _checks.all_finite(t):
        what = "returned" if name == "forward_func" else "contains"
        raise ValueError(f"{name}: {what} non-finite values (NaN or inf)")


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
