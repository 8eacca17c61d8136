"""Every call of the model: output checks, the hints a failure gets when the inputs
explain it, the training-mode warning, and the selected outputs at a batch of points."""

from __future__ import annotations

import contextlib
import functools
import itertools
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from xattr._core.batching import chunk_args
from xattr._core.inputs import check_finite
from xattr._core.progress import model_rows, row_progress, warn_level
from xattr._core.targets import Targets
from xattr._core.validation import ArgumentError, ArgumentTypeError

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
            stacklevel=warn_level(4),
        )


class ModelOutputError(ArgumentError):
    """A model output xattr cannot use here. A ValueError, and an AssertionError too,
    because Captum asserts the same conditions (code written for Captum catches
    AssertionError)."""


class ModelOutputTypeError(ArgumentTypeError):
    """A model output of the wrong type (e.g. a Future from ``attribute``): a TypeError,
    and an AssertionError as Captum's."""


class AggregateOutput(ModelOutputError):
    """The model returned one value (or one row) for a whole batch of rows: Captum's
    aggregate mode. ``output`` is that output as a tensor. The game catches it on its
    first model call and evaluates the game in aggregate mode; anywhere else it is the
    error its message says."""

    def __init__(self, message: str, output: Tensor):
        super().__init__(message)
        self.output = output


def as_output_tensor(out: Any) -> Tensor:
    """A model output as a tensor: a Python int / float becomes a 0-d tensor of
    int64 / float64 (as Captum reads them); anything else but a tensor is a TypeError."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        return torch.tensor(out, dtype=torch.int64 if isinstance(out, int) else torch.float64)
    if isinstance(out, torch.futures.Future):
        raise ModelOutputTypeError(
            "forward_func: returned a torch.futures.Future; call attribute_future (where "
            "the explainer has it) for a model that returns futures"
        )
    raise TypeError(f"forward_func: expected it to return a tensor, got {type(out).__name__}")


def is_aggregate(out: Tensor, rows: int) -> bool:
    """Whether an output (from :func:`as_output_tensor`) for ``rows`` > 1 input rows is
    one value or one row for the whole batch (Captum's aggregate mode): a 0-d tensor, a
    single row, or a 1-D vector of another length than ``rows`` (several values of the
    batch). Several rows, but not ``rows`` of them, are a model error instead."""
    if out.dim() == 0:
        return True
    n = out.shape[0]
    return n != rows and (n == 1 or out.dim() == 1)


def check_model_output(out: Any, rows: int, finite: bool = True) -> Tensor:
    """The model must return a tensor with one row per input row, all finite.

    A Python number or a 0-d tensor counts as one value for the batch; one value or a
    row count other than ``rows`` raises :class:`AggregateOutput` (which the game turns
    into Captum's aggregate mode where it can). ``finite=False`` leaves the finiteness
    check to the caller (the game checks only the outputs it selects, once per chunk).
    """
    out = as_output_tensor(out)
    if rows == 1 and out.dim() == 0:
        out = out.reshape(1)
    got = "one value" if out.dim() == 0 else f"{out.shape[0]} rows"
    if out.dim() > 0 and out.shape[0] != rows and not is_aggregate(out, rows):
        raise ModelOutputError(
            f"forward_func: returned {got} for a batch of {rows}; the model must return "
            "one output row per input row"
        )
    if is_aggregate(out, rows):
        raise AggregateOutput(
            f"forward_func: returned {got} for a batch of {rows}; the model must return "
            "one output row per input row (a model that returns one value for the whole "
            "batch, Captum's aggregate mode, is supported by FeatureAblation, KernelShap, Lime, "
            "ShapleyValueSampling and ShapleyValues with baseline removal)",
            out,
        )
    if finite:
        check_finite(out)
    return out


def awaiting(forward_func: Callable) -> Callable:
    """``forward_func`` for a model that returns ``torch.futures.Future``: the wrapper
    waits for each future and returns its value; a model that does not return a Future
    is a :class:`ModelOutputTypeError` (an AssertionError too, as in Captum). Used by
    ``attribute_future``: every model call still carries a whole batch of rows."""

    @functools.wraps(forward_func)
    def wait(*args: Any, **kwargs: Any) -> Any:
        out = forward_func(*args, **kwargs)
        if not isinstance(out, torch.futures.Future):
            raise ModelOutputTypeError(
                "forward_func: attribute_future needs a model that returns a "
                f"torch.futures.Future, got {type(out).__name__}; call attribute instead"
            )
        return out.wait()

    return wait


def completed_future(value: Any) -> torch.Future:
    """A completed future holding ``value`` (what ``attribute_future`` returns: xattr
    waits for the model's futures batch by batch). Its type is ``torch.Future`` (the
    C++ future, as Captum's ``attribute_future`` returns and its tests check with
    ``type(f) is torch.Future``), not the Python subclass ``torch.futures.Future``."""
    fut: torch.futures.Future = torch.futures.Future()
    fut.set_result(value)
    return fut.then(lambda done: done.value())


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
    own error. The rows are counted for the open progress bar
    (:func:`~xattr._core.progress.model_rows`)."""
    try:
        with model_rows(inputs[0].shape[0] if len(inputs) else rows or 0):
            out = forward_func(*inputs, *extra)
        return out if rows is None else check_model_output(out, rows, finite)
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        hint = _input_hint(forward_func, inputs)
        if hint is None:
            raise
        if isinstance(e, AggregateOutput):
            raise AggregateOutput(f"{e}\n(xattr: {hint})", e.output) from e
        raise type(e)(f"{e}\n(xattr: {hint})") from e


@contextlib.contextmanager
def promotion_errors(note: str | None) -> Iterator[None]:
    """A model that fails on perturbed copies whose dtype the baselines promoted (see
    ``inputs.promotion_note``, e.g. float copies of token ids) fails with a ValueError
    that names the baseline; other failures pass unchanged."""
    try:
        yield
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        if note is None:
            raise
        raise ValueError(f"{note}; forward_func failed on them: {e}") from e


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


def selected(
    forward_func: Callable,
    points: tuple[Tensor, ...],
    args: tuple,
    targets: Targets,
    rows_per_example: int,
    first_example: int,
) -> Tensor:
    """Selected outputs [rows, T] of the model at ``points`` (checked)."""
    out = run_model(forward_func, points, args, points[0].shape[0], finite=False)
    return select_checked(out, points[0].shape[0], targets, rows_per_example, first_example)


def select_checked(
    out: Any, rows: int, targets: Targets, rows_per_example: int, first_example: int
) -> Tensor:
    """The selected outputs [rows, T]; the model's rows checked, and the selected
    outputs (only they reach the attributions) checked finite."""
    out = check_model_output(out, rows, finite=False)
    sel = targets.select(out, rows_per_example, first_example)
    if not targets.multi and sel.shape[1] != 1:
        raise ValueError(
            f"target: selects {sel.shape[1]} outputs per example; give one index per example "
            "(or a list of lists / target='all' for several targets)"
        )
    check_finite(sel)
    return sel


def outputs_at(
    forward_func: Callable,
    points: tuple[Tensor, ...],
    args: tuple,
    targets: Targets,
    rows: int,
) -> Tensor:
    """Selected outputs [B, T] at one point per example, in batches of ``rows``
    (B model rows for the open progress bar, see :mod:`xattr._core.progress`)."""
    B = points[0].shape[0]
    parts = []
    with torch.no_grad(), row_progress(B, None, "outputs"):
        for s in range(0, max(B, 1), rows):  # an empty batch: one empty call (the shapes)
            e = min(B, s + rows)
            pts = tuple(p[s:e] for p in points)
            parts.append(selected(forward_func, pts, chunk_args(args, B, s, e, 1), targets, 1, s))
    return parts[0] if len(parts) == 1 else torch.cat(parts, 0)
