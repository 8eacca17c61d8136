"""Robustness of explanations: Captum's ``infidelity`` and ``sensitivity_max``.

The same arguments, defaults and values as ``captum.metrics``, batched under
xattr's memory budget.

When the values equal Captum's (same random draws, seeded identically):
both functions call ``perturb_func`` exactly as Captum does, on the inputs
repeated ``k`` times per example (example-major), once per chunk of ``k``
samples, chunk after chunk (the last one smaller), so any ``perturb_func`` that
draws from torch's global generator consumes the same numbers in the same order.

* With an integer ``max_examples_per_batch``, ``k = max_examples_per_batch // B``
  (clamped to ``[1, n_perturb_samples]``) as in Captum: the values equal Captum's.
* With ``max_examples_per_batch=None`` Captum draws all ``B * n_perturb_samples``
  rows at once. So do we whenever they fit in the memory budget (perturbed rows
  times 4 for ``infidelity``; times ``ACTIVATION_FACTOR`` (16) for
  ``sensitivity_max``, whose ``explanation_func`` runs a model on them); the
  values then equal Captum's. Otherwise ``k`` is the most that fit, and the values
  equal Captum's with ``max_examples_per_batch = B * k`` (pass
  ``B * n_perturb_samples`` to force Captum's single draw).

How the work is batched does not depend on ``max_examples_per_batch``:
``infidelity`` gathers the perturbed rows of consecutive chunks (up to the
budget), sends them through the model once, in calls sized by the budget, and
runs the unperturbed inputs once (Captum runs them again for every chunk).
``sensitivity_max`` calls ``explanation_func`` once per chunk, as Captum does, so
explainers that draw random numbers themselves draw them in Captum's order too.
Models are assumed deterministic (``eval()`` mode).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from inspect import signature
from typing import Any, cast

import torch
from torch import Tensor

from xattr._core.batching import (
    ACTIVATION_FACTOR,
    expand_additional_args,
    repeat_per_example,
    rows_per_batch,
    slice_additional_args,
)
from xattr._core.budget import get_memory_budget, parse_bytes
from xattr._core.inputs import (
    BaselineType,
    TensorOrTuple,
    example_bytes,
    format_baselines,
    format_inputs,
)
from xattr._core.model import run_model, warn_if_training
from xattr._core.progress import expect_rows, warn_level, with_row_progress
from xattr._core.targets import Targets, TargetType
from xattr._core.validation import check_forward_func, flag, positive_int

__all__ = [
    "default_perturb_func",
    "infidelity",
    "infidelity_perturb_func_decorator",
    "sensitivity_max",
]

PerturbFunc = Callable[..., Any]
# Copies of the perturbed rows held at once by infidelity: the repeated inputs, the
# perturbations, the perturbed inputs and attributions * perturbations.
_INFIDELITY_COPIES = 4


# ------------------------------------------------------------------ helpers
def _callable(name: str, value: Any) -> None:
    if not callable(value):
        raise TypeError(f"{name}: expected a callable, got {type(value).__name__}")


def _tensors(value: Any, name: str, shapes: Sequence[tuple[int, ...]]) -> tuple[Tensor, ...]:
    """``value`` (a tensor or a tuple of tensors) as a tuple, checked against ``shapes``."""
    ts = (value,) if isinstance(value, Tensor) else value
    if not (isinstance(ts, (tuple, list)) and all(isinstance(t, Tensor) for t in ts)):
        raise TypeError(
            f"{name}: expected a tensor or a tuple of tensors, got {type(value).__name__}"
        )
    if len(ts) != len(shapes):
        raise ValueError(f"{name}: expected {len(shapes)} tensor(s), one per input, got {len(ts)}")
    for i, (t, shape) in enumerate(zip(ts, shapes)):
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"{name}[{i}]: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    return tuple(ts)


def _safe_div(num: Tensor, denom: Tensor) -> Tensor:
    """``num / denom``, dividing by 1 where ``denom`` is 0 (Captum's ``safe_div``)."""
    one = torch.tensor(1.0, dtype=denom.dtype, device=denom.device)
    return num / torch.where(denom != 0, denom, one)


def _raw_baselines(baselines: BaselineType, xs: tuple[Tensor, ...]) -> tuple | None:
    """The user's baselines as a tuple, as Captum hands them to ``perturb_func`` (numbers
    stay numbers); checked with ``format_baselines``."""
    if baselines is None:
        return None
    format_baselines(baselines, xs)
    return tuple(baselines) if isinstance(baselines, (tuple, list)) else (baselines,)


def _samples_per_call(
    xs: tuple[Tensor, ...],
    n: int,
    max_examples_per_batch: int | None,
    memory_budget: int | str | None,
    copies: int,
) -> tuple[int, int]:
    """(Captum's samples per example per ``perturb_func`` call, the most the budget holds)."""
    B = xs[0].shape[0]
    budget = get_memory_budget() if memory_budget is None else parse_bytes(memory_budget)
    row_bytes = max(1, example_bytes(xs) * copies)
    fit = max(1, min(n, budget // (row_bytes * B)))
    if max_examples_per_batch is None:
        return fit, fit
    positive_int("max_examples_per_batch", max_examples_per_batch)
    if max_examples_per_batch < B:
        warnings.warn(
            f"max_examples_per_batch: {max_examples_per_batch} is below the batch size {B}; "
            f"each call perturbs one sample of every example ({B} rows), as in Captum",
            UserWarning,
            stacklevel=warn_level(3),
        )
    return min(max(max_examples_per_batch // B, 1), n), fit


def _chunk_sizes(n: int, k: int) -> list[int]:
    """Captum's samples per call: k, k, ..., then the rest."""
    return [k] * (n // k) + ([n % k] if n % k else [])


def _example_major(parts: list[tuple[Tensor, ...]], B: int) -> tuple[Tensor, ...]:
    """Chunks of rows [B * m_c, *F] (example-major each) -> [B * sum(m_c), *F], example-major."""
    if len(parts) == 1:
        return parts[0]
    return tuple(
        torch.cat([t.reshape(B, -1, *t.shape[1:]) for t in ts], dim=1).reshape(-1, *ts[0].shape[1:])
        for ts in zip(*parts)
    )


def _row_blocks(B: int, per_example: int, rows: int):
    """Forward calls over ``B * per_example`` rows ordered example-major:
    (start, stop, rows per example, first example), whole examples when one fits in
    ``rows``, else slices of one example."""
    if per_example <= rows:
        step = rows // per_example
        for e in range(0, B, step):
            f = min(B, e + step)
            yield e * per_example, f * per_example, per_example, e
    else:
        for e in range(B):
            for s in range(0, per_example, rows):
                t = min(per_example, s + rows)
                yield e * per_example + s, e * per_example + t, t - s, e


def _selected_outputs(
    forward_func: Callable,
    xs: tuple[Tensor, ...],
    args: Any,
    targets: Targets,
    per_example: int,
    rows: int,
) -> Tensor:
    """The target output of every row of ``xs`` ([B * per_example] rows, example-major)
    -> [B * per_example], in forward calls of at most ``rows`` rows."""
    n = xs[0].shape[0]
    B = n // per_example
    args = expand_additional_args(args, B, per_example)
    parts = []
    for start, stop, rows_per_example, first in _row_blocks(B, per_example, rows):
        part = tuple(x[start:stop] for x in xs)
        extra = slice_additional_args(args, n, start, stop)
        out = run_model(forward_func, part, extra, stop - start)
        sel = targets.select(out, rows_per_example, first)
        if sel.shape[1] != 1:
            raise ValueError(
                f"target: selects {sel.shape[1]} outputs per example from outputs shaped "
                f"{tuple(out.shape)}; infidelity needs one"
            )
        parts.append(sel.reshape(-1))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


# ------------------------------------------------------------------ infidelity
def infidelity_perturb_func_decorator(
    multiply_by_inputs: bool = True,
) -> Callable[[PerturbFunc], PerturbFunc]:
    """Turns a ``perturb_func`` that returns only perturbed inputs into one that returns
    ``(perturbations, perturbed_inputs)``, as ``infidelity`` expects (Captum's decorator).

    The perturbations are ``(x - x_perturbed) / (x - baseline)`` (dividing by 1 where
    ``x == baseline``; baseline 0 when none is given) for global attributions
    (``multiply_by_inputs=True``, e.g. ``IntegratedGradients``, ``InputXGradient``,
    Shapley values), and ``x - x_perturbed`` for local ones (``False``, e.g.
    ``Saliency``).

    Args:
        multiply_by_inputs: whether the attributions include the factor
            ``(x - baseline)``. Default True.

    Returns:
        A decorator. The decorated function takes ``(inputs, baselines=None)`` (inputs: a
        [N, *F] tensor or a tuple of them) and returns a pair of tuples of [N, *F] tensors:
        ``(perturbations, perturbed_inputs)``.

    Example:
        >>> import torch
        >>> from xattr.metrics.robustness import infidelity_perturb_func_decorator
        >>> @infidelity_perturb_func_decorator(True)
        ... def drop_first(x):
        ...     return x * torch.tensor([0.0, 1.0])
        >>> pert, perturbed = drop_first(torch.tensor([[2.0, 3.0]]))
        >>> pert[0].tolist(), perturbed[0].tolist()
        ([[1.0, 0.0]], [[0.0, 3.0]])
    """
    flag("multiply_by_inputs", multiply_by_inputs)

    def decorator(perturb_func: PerturbFunc) -> PerturbFunc:
        _callable("perturb_func", perturb_func)

        def perturb_and_difference(
            inputs: TensorOrTuple, baselines: BaselineType = None
        ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
            perturbed = (
                perturb_func(inputs, baselines) if baselines is not None else perturb_func(inputs)
            )
            xs, _ = format_inputs(inputs)
            xps = _tensors(perturbed, "perturb_func", [x.shape for x in xs])
            if baselines is None:
                bases: tuple = (0,) * len(xs)
            else:
                bases = tuple(baselines) if isinstance(baselines, (tuple, list)) else (baselines,)
            perturbations = tuple(
                _safe_div(x - xp, x - b) if multiply_by_inputs else x - xp
                for x, xp, b in zip(xs, xps, bases)
            )
            return perturbations, xps

        return perturb_and_difference

    return decorator


def _perturb_for_infidelity(
    perturb_func: PerturbFunc, xs: tuple[Tensor, ...], baselines: tuple | None, m: int
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Captum's call: ``perturb_func`` on the inputs (and baselines with B rows) repeated
    ``m`` times per example -> (perturbations, perturbed inputs), [B * m, *F] each."""
    B = xs[0].shape[0]
    expanded = tuple(x.repeat_interleave(m, dim=0) for x in xs)
    arg = expanded[0] if len(xs) == 1 else expanded
    if baselines is None:
        out = perturb_func(arg)
    else:
        bases = tuple(repeat_per_example(b, B, m) for b in baselines)
        out = perturb_func(arg, bases[0] if len(xs) == 1 else bases)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(
            "perturb_func: expected it to return (perturbations, perturbed_inputs), got "
            f"{type(out).__name__}; decorate a function that returns only perturbed inputs "
            "with @infidelity_perturb_func_decorator(multiply_by_inputs)"
        )
    shapes = [x.shape for x in expanded]
    perturbations = _tensors(out[0], "perturb_func (perturbations)", shapes)
    perturbed = _tensors(out[1], "perturb_func (perturbed inputs)", shapes)
    return perturbations, perturbed


@with_row_progress()
def infidelity(
    forward_func: Callable[..., Tensor],
    perturb_func: PerturbFunc,
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    baselines: BaselineType = None,
    additional_forward_args: Any = None,
    target: TargetType = None,
    n_perturb_samples: int = 10,
    max_examples_per_batch: int | None = None,
    normalize: bool = False,
    *,
    memory_budget: int | str | None = None,
    show_progress: bool | None = None,
) -> Tensor:
    """Explanation infidelity (Yeh et al., 2019), Captum's ``infidelity``.

    ``INFD(a, f, x) = E_I[(I . a - (f(x) - f(x - I)))^2]``, estimated with
    ``n_perturb_samples`` draws of ``(I, x - I) = perturb_func(x[, baselines])``
    per example. With ``normalize=True`` the attributions are first scaled by the
    ``beta`` that minimises the estimate (invariant to scaling the attributions).

    Args:
        forward_func: the model: ``forward_func(*inputs, *additional_forward_args)``
            returns [N, ...] outputs.
        perturb_func: called as ``perturb_func(inputs)``, or ``perturb_func(inputs,
            baselines)`` when baselines are given, on the inputs repeated k times per
            example ([B * k, *F], example-major; a tensor for one input, else a tuple;
            baselines with B rows repeated likewise); returns ``(perturbations,
            perturbed_inputs)``, each shaped like what it got (tensors or tuples). See
            :func:`infidelity_perturb_func_decorator` for functions that return only
            perturbed inputs.
        inputs: [B, *F] tensor or a tuple of them.
        attributions: the explanation, shaped like ``inputs``.
        baselines: Captum's forms (number, tensor, tuple); only passed to ``perturb_func``.
            Default None.
        additional_forward_args: extra model arguments after the inputs (tensors with B
            rows are repeated with the perturbed rows). Default None.
        target: Captum's forms: None (one output per example), int, tuple, or a list /
            tensor of B indices. Default None.
        n_perturb_samples: perturbations per example. Default 10.
        max_examples_per_batch: Captum's rows per ``perturb_func`` call (``// B`` samples
            per example); fixes the random draws, not the model's batch size (see the
            module docstring). Default None: as many as the memory budget holds.
        normalize: scale the attributions optimally first. Default False.
        memory_budget: bytes (or "512MB") that size the batches; default the global budget.
        show_progress: None (default): a progress bar counting model rows appears once the
            call is projected to take more than about 2 s; True: from the start; False:
            never. One bar per call: calls made inside it count in it.

    Returns:
        [B] infidelity per example (dtype of the model outputs / attributions).

    Example:
        >>> import torch
        >>> from xattr.metrics.robustness import infidelity
        >>> w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
        >>> def model(x):
        ...     return x @ w
        >>> def perturb(x):
        ...     noise = torch.randn_like(x)
        ...     return noise, x - noise
        >>> x = torch.randn(4, 3, dtype=torch.float64)
        >>> gradient = w.expand(4, 3)  # exact for a linear model: infidelity 0
        >>> infidelity(model, perturb, x, gradient).abs().max().item() < 1e-20
        True
        >>> infidelity(model, perturb, x, 2 * gradient).shape
        torch.Size([4])
    """
    check_forward_func(forward_func)
    _callable("perturb_func", perturb_func)
    xs, _ = format_inputs(inputs)
    attrs = _tensors(attributions, "attributions", [x.shape for x in xs])
    B = xs[0].shape[0]
    bases = _raw_baselines(baselines, xs)
    targets = Targets(target, B)
    if targets.multi:
        raise ValueError(
            "target: infidelity needs one output per example; "
            "give one index per example (or one for all), not several"
        )
    n = positive_int("n_perturb_samples", n_perturb_samples)
    flag("normalize", normalize)
    warn_if_training(forward_func)
    k, fit = _samples_per_call(xs, n, max_examples_per_batch, memory_budget, _INFIDELITY_COPIES)
    rows = rows_per_batch(xs, None, memory_budget)
    # Consecutive chunks whose rows fit the budget together go through the model at once.
    groups: list[list[int]] = []
    for m in _chunk_sizes(n, k):
        if groups and sum(groups[-1]) + m <= max(k, fit):
            groups[-1].append(m)
        else:
            groups.append([m])

    expect_rows(B + B * n)  # f(x), then n perturbed rows per example
    sums: tuple[Tensor, ...] | None = None
    with torch.no_grad():
        f_x = _selected_outputs(forward_func, xs, additional_forward_args, targets, 1, rows)
        for group in groups:
            draws = [_perturb_for_infidelity(perturb_func, xs, bases, m) for m in group]
            M = sum(group)
            pert = _example_major([d[0] for d in draws], B)
            perturbed = _example_major([d[1] for d in draws], B)
            f_xp = _selected_outputs(
                forward_func, perturbed, additional_forward_args, targets, M, rows
            ).view(B, M)
            # I . a per perturbed row, and f(x) - f(x - I): [B, M]
            a_dot_i = cast(
                Tensor,
                sum(
                    (p.reshape(B, M, -1) * a.reshape(B, 1, -1)).sum(-1) for p, a in zip(pert, attrs)
                ),
            )
            diff = f_x.view(B, 1) - f_xp
            start = 0
            for m in group:  # Captum's per-chunk sums, added chunk after chunk
                u, v = a_dot_i[:, start : start + m], diff[:, start : start + m]
                start += m
                terms: tuple[Tensor, ...]
                if normalize:
                    terms = ((u * u).sum(-1), (u * v).sum(-1), (v * v).sum(-1))
                else:
                    terms = ((u - v).pow(2).sum(-1),)
                sums = terms if sums is None else tuple(s + t for s, t in zip(sums, terms))
    assert sums is not None
    got = cast("tuple[Tensor, ...]", sums)  # three sums when normalize, else one
    if normalize:
        beta = _safe_div(got[1], got[0])
        values = beta * beta * got[0] - 2 * beta * got[1] + got[2]
    else:
        values = got[0]
    return values / n


# ------------------------------------------------------------------ sensitivity
def default_perturb_func(inputs: TensorOrTuple, perturb_radius: float = 0.02) -> tuple[Tensor, ...]:
    """Captum's default perturbation for ``sensitivity_max``: uniform noise in
    ``[-perturb_radius, perturb_radius]`` added to every element.

    The noise is drawn as Captum draws it (float32, on the CPU from torch's global
    generator, then moved to the inputs' device), so the same seed gives the same
    perturbations on every device.

    Args:
        inputs: [N, *F] tensor or a tuple of them.
        perturb_radius: the L-infinity radius. Default 0.02.

    Returns:
        A tuple of perturbed inputs, one [N, *F] tensor per input (always a tuple, as
        in Captum).

    Example:
        >>> import torch
        >>> from xattr.metrics.robustness import default_perturb_func
        >>> x = torch.zeros(2, 3)
        >>> (perturbed,) = default_perturb_func(x, 0.1)
        >>> bool(perturbed.abs().max() <= 0.1), perturbed.shape
        (True, torch.Size([2, 3]))
    """
    xs, _ = format_inputs(inputs)
    return tuple(
        x
        + torch.empty(x.shape, dtype=torch.float32)
        .uniform_(-perturb_radius, perturb_radius)
        .to(x.device)
        for x in xs
    )


def _expand_kwargs(kwargs: dict, xs: tuple[Tensor, ...], k: int) -> dict:
    """``explanation_func``'s keyword arguments for inputs repeated ``k`` times per example:
    Captum's expansion of ``additional_forward_args``, ``target`` and ``baselines`` (tensors
    shaped like the inputs), and also of per-example ``feature_mask`` tensors."""
    B = xs[0].shape[0]
    out = dict(kwargs)
    if out.get("additional_forward_args") is not None:
        out["additional_forward_args"] = expand_additional_args(
            out["additional_forward_args"], B, k
        )
    target = out.get("target")
    if isinstance(target, list):
        out["target"] = [t for t in target for _ in range(k)]
    elif isinstance(target, Tensor) and target.numel() > 1:
        out["target"] = target.repeat_interleave(k, dim=0)
    for name in ("baselines", "feature_mask"):
        value = out.get(name)
        if isinstance(value, (tuple, list)):
            out[name] = tuple(repeat_per_example(v, B, k, x.dim()) for v, x in zip(value, xs))
        elif value is not None:
            out[name] = repeat_per_example(value, B, k, xs[0].dim())
    return out


def _explanations(value: Any, rows: int, like: tuple[Tensor, ...] | None = None):
    """``explanation_func``'s output as a tuple of detached tensors with ``rows`` rows
    (shaped like ``like`` apart from the rows, when given)."""
    name = "explanation_func"
    if like is not None:
        shapes = [(rows, *t.shape[1:]) for t in like]
        return tuple(t.detach() for t in _tensors(value, f"{name} (perturbed inputs)", shapes))
    ts = (value,) if isinstance(value, Tensor) else value
    if not (isinstance(ts, (tuple, list)) and ts and all(isinstance(t, Tensor) for t in ts)):
        raise TypeError(
            f"{name}: expected it to return a tensor or a tuple of tensors, "
            f"got {type(value).__name__}"
        )
    for i, t in enumerate(ts):
        if t.dim() == 0 or t.shape[0] != rows:
            raise ValueError(
                f"{name}: output {i} has shape {tuple(t.shape)}; expected one row per "
                f"example ({rows} rows)"
            )
    return tuple(t.detach() for t in ts)


@with_row_progress()
def sensitivity_max(
    explanation_func: Callable[..., TensorOrTuple],
    inputs: TensorOrTuple,
    perturb_func: PerturbFunc = default_perturb_func,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    norm_ord: str | float = "fro",
    max_examples_per_batch: int | None = None,
    *,
    memory_budget: int | str | None = None,
    show_progress: bool | None = None,
    **kwargs: Any,
) -> Tensor:
    """Max-sensitivity of an explanation (Yeh et al., 2019), Captum's ``sensitivity_max``.

    ``SENS_MAX(x) = max_j ||e(x_j) - e(x)|| / ||e(x)||`` over ``n_perturb_samples``
    perturbed inputs ``x_j`` per example (an explanation of norm 0 counts as norm 1).

    Args:
        explanation_func: e.g. an explainer's ``attribute``; called as
            ``explanation_func(inputs, **kwargs)``, then on the perturbed inputs
            ([B * k, *F], in the same form as ``inputs``: a tensor or a tuple) with the
            per-example keyword arguments repeated (``additional_forward_args``,
            ``target``, ``baselines`` and ``feature_mask`` with B rows). Returns a tensor
            or a tuple of tensors with one row per example.
        inputs: [B, *F] tensor or a tuple of them.
        perturb_func: called on the inputs repeated k times per example (a tensor for one
            input, else a tuple), with ``perturb_radius`` as second argument when it takes
            more than one parameter; returns the perturbed inputs, shaped alike. Default
            :func:`default_perturb_func` (uniform noise in ``[-radius, radius]``).
        perturb_radius: passed to ``perturb_func``. Default 0.02.
        n_perturb_samples: perturbations per example. Default 10.
        norm_ord: ``"fro"`` (2-norm) or a number (``torch.norm``'s ``p``, e.g. 1 or
            ``float("inf")``) for the norm over all explanation elements of an example.
            Default "fro".
        max_examples_per_batch: Captum's rows per ``perturb_func`` / ``explanation_func``
            call (``// B`` samples per example). Default None: as many as the memory
            budget holds (see the module docstring).
        memory_budget: bytes (or "512MB") that size the calls; default the global budget.
        show_progress: None (default): a progress bar counting model rows appears once the
            call is projected to take more than about 2 s; True: from the start; False:
            never. One bar per call: calls made inside it count in it.
        **kwargs: passed to ``explanation_func`` (``target``, ``baselines``, ...).

    Returns:
        [B] max-sensitivity per example.

    Example:
        >>> import torch
        >>> from xattr import Saliency
        >>> from xattr.metrics.robustness import sensitivity_max
        >>> model = torch.nn.Linear(3, 2).eval()
        >>> x = torch.randn(4, 3)
        >>> # The gradient of a linear model does not move: sensitivity 0.
        >>> sensitivity_max(Saliency(model).attribute, x, target=1)
        tensor([0., 0., 0., 0.])
    """
    _callable("explanation_func", explanation_func)
    xs, is_tuple = format_inputs(inputs)
    _callable("perturb_func", perturb_func)
    if (
        isinstance(perturb_radius, bool)
        or not isinstance(perturb_radius, (int, float))
        or not 0 <= perturb_radius < math.inf
    ):
        raise ValueError(f"perturb_radius: expected a finite number >= 0, got {perturb_radius!r}")
    n = positive_int("n_perturb_samples", n_perturb_samples)
    if isinstance(norm_ord, str):
        if norm_ord != "fro":
            raise ValueError(
                f"norm_ord: expected 'fro' or a number, got {norm_ord!r} (the norm is taken "
                "over each example's explanation as one vector; 'nuc' is a matrix norm)"
            )
    elif (
        isinstance(norm_ord, bool) or not isinstance(norm_ord, (int, float)) or norm_ord != norm_ord
    ):
        raise TypeError(f"norm_ord: expected 'fro' or a number, got {norm_ord!r}")
    B = xs[0].shape[0]
    k, _ = _samples_per_call(xs, n, max_examples_per_batch, memory_budget, ACTIVATION_FACTOR)
    pass_radius = len(signature(perturb_func).parameters) > 1

    def user_form(ts: tuple[Tensor, ...]) -> TensorOrTuple:
        return ts if is_tuple else ts[0]

    def norms(rows: Tensor) -> Tensor:
        return torch.norm(rows, p=norm_ord, dim=1, keepdim=True)

    expl = _explanations(explanation_func(user_form(xs), **kwargs), B)
    with torch.no_grad():
        expl_norm = norms(torch.cat([e.reshape(B, -1) for e in expl], dim=1))
        expl_norm = torch.where(expl_norm == 0, torch.ones_like(expl_norm), expl_norm)
    best: Tensor | None = None
    expanded_kwargs: tuple[int, dict] | None = None
    for m in _chunk_sizes(n, k):
        with torch.no_grad():
            expanded = tuple(x.repeat_interleave(m, dim=0) for x in xs)
            arg = user_form(expanded)
            out = perturb_func(arg, perturb_radius) if pass_radius else perturb_func(arg)
            perturbed = _tensors(out, "perturb_func", [x.shape for x in expanded])
        if expanded_kwargs is None or expanded_kwargs[0] != m:
            expanded_kwargs = (m, _expand_kwargs(kwargs, xs, m))
        expl_p = _explanations(
            explanation_func(user_form(perturbed), **expanded_kwargs[1]), B * m, expl
        )
        with torch.no_grad():
            change = torch.cat(
                [
                    (e.repeat_interleave(m, dim=0) - p).reshape(B * m, -1)
                    for e, p in zip(expl, expl_p)
                ],
                dim=1,
            )
            sens = norms(change) / expl_norm.repeat_interleave(m, dim=0)
            sens = sens.view(B, m).max(dim=1).values
        best = sens if best is None else torch.max(best, sens)
    assert best is not None
    return best
