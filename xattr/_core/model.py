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
from xattr._core.targets import Targets

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
    bar: Any = None,
) -> Tensor:
    """Selected outputs [B, T] at one point per example, in batches of ``rows``
    (``bar``: a progress bar advanced by the rows done)."""
    B = points[0].shape[0]
    parts = []
    with torch.no_grad():
        for s in range(0, max(B, 1), rows):  # an empty batch: one empty call (the shapes)
            e = min(B, s + rows)
            pts = tuple(p[s:e] for p in points)
            parts.append(selected(forward_func, pts, chunk_args(args, B, s, e, 1), targets, 1, s))
            if bar is not None:
                bar.update(e - s)
    return parts[0] if len(parts) == 1 else torch.cat(parts, 0)
