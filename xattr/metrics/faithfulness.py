"""Faithfulness: how the model's output moves as the features an explanation ranks
highest (or lowest) are removed from, or inserted into, the input.

Every curve of every example is evaluated in one batched game (the masking kernel
builds the perturbed inputs; the model sees them in large batches), so a curve of K
steps for B examples costs B * (K + 1) model rows and no Python loop per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from xattr.baselines import blur, channel_mean
from xattr.explainers._common import TargetType, TensorOrTuple, format_inputs, positive_int
from xattr.explainers._game import Setup

ORDERS = ("most_relevant_first", "least_relevant_first")


class Curve(NamedTuple):
    """A deletion or insertion curve per example.

    Attributes:
        fractions: [K + 1] fraction of the features removed (deletion) or inserted
            (insertion) at each step, from 0 to 1.
        values: [B, K + 1] the model's target output at each step ([B, T, K + 1]
            for several targets).
        auc: [B] (or [B, T]) area under ``values`` over ``fractions`` (trapezoid
            rule): the mean height of the curve, in the output's units.
    """

    fractions: Tensor
    values: Tensor
    auc: Tensor


class TargetClassCurve(NamedTuple):
    """How fast the prediction moves from class y toward class c.

    Attributes:
        fractions: [K + 1] fraction of the features given the baseline's values.
        margin: [B, K + 1] f_c - f_y at each step (positive once c wins over y).
        flipped: [B, K + 1] bool, whether c is the model's top class.
        auc: [B] area under ``margin`` over ``fractions``.
    """

    fractions: Tensor
    margin: Tensor
    flipped: Tensor
    auc: Tensor


def _baselines(baselines: Any, inputs: TensorOrTuple, blur_sigma: float) -> Any:
    """Captum's baseline forms, plus "blur" and "mean" (per input)."""
    if isinstance(baselines, str) or (
        isinstance(baselines, tuple) and any(isinstance(b, str) for b in baselines)
    ):
        xs, is_tuple = format_inputs(inputs)
        names = baselines if isinstance(baselines, tuple) else (baselines,) * len(xs)
        if len(names) != len(xs):
            raise ValueError(
                f"baselines: expected {len(xs)} baseline(s), one per input, got {len(names)}"
            )
        out = []
        for b, x in zip(names, xs):
            if b == "blur":
                out.append(blur(x, sigma=blur_sigma))
            elif b == "mean":
                out.append(channel_mean(x))
            elif isinstance(b, str):
                raise ValueError(
                    f"baselines: expected a number, a tensor, 'blur' or 'mean', got {b!r}"
                )
            else:
                out.append(b)
        return tuple(out) if is_tuple else out[0]
    return baselines


def feature_scores(setup: Setup, attributions: TensorOrTuple) -> Tensor:
    """Attributions summed within each feature group: [B, d] (float64)."""
    attrs, _ = format_inputs(attributions, "attributions")
    if len(attrs) != len(setup.inputs):
        raise ValueError(
            f"attributions: expected {len(setup.inputs)} tensor(s), one per input, got {len(attrs)}"
        )
    B = setup.B
    scores = torch.zeros((B, setup.d), dtype=torch.float64, device=setup.inputs[0].device)
    for i, (a, x, g) in enumerate(zip(attrs, setup.inputs, setup.groups)):
        if tuple(a.shape) != tuple(x.shape):
            raise ValueError(
                f"attributions: tensor {i} has shape {tuple(a.shape)}, the inputs {tuple(x.shape)}"
            )
        if not a.is_floating_point():
            raise TypeError(f"attributions: expected float tensors, got {a.dtype}")
        if not bool(torch.isfinite(a).all()):
            raise ValueError("attributions: contain NaN or inf")
        flat = a.reshape(B, -1).to(device=scores.device, dtype=torch.float64)
        scores.scatter_add_(1, g.reshape(g.shape[0], -1).expand(B, -1), flat)
    return scores


def step_counts(d: int, n_steps: int | None) -> Tensor:
    """Features removed / inserted at each step: 0 = n_0 < ... < n_K = d (int64 [K + 1]);
    K = min(n_steps, d), steps as equal as rounding allows (every feature one at a time
    when n_steps is None)."""
    K = d if n_steps is None else min(positive_int("n_steps", n_steps), d)
    n = torch.div(torch.arange(K + 1) * d + K // 2, K, rounding_mode="floor")
    return n


def _order_masks(scores: Tensor, counts: Tensor, order: str, insertion: bool) -> Tensor:
    """bool masks [B, K + 1, d]: which features are present at each step."""
    if order not in ORDERS:
        raise ValueError(f"order: expected one of {ORDERS}, got {order!r}")
    ranked = torch.argsort(scores, dim=1, descending=order == ORDERS[0], stable=True)
    pos = torch.empty_like(ranked)  # pos[b, j]: place of feature j in the order
    pos.scatter_(1, ranked, torch.arange(scores.shape[1]).expand_as(ranked).contiguous())
    first = pos.unsqueeze(1) < counts.view(1, -1, 1).to(pos.device)  # among the first n_k
    return first if insertion else ~first


def _curve(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    target: TargetType,
    baselines: Any,
    additional_forward_args: Any,
    feature_mask: Any,
    n_steps: int | None,
    order: str,
    insertion: bool,
    blur_sigma: float,
    memory_budget: int | str | None,
    show_progress: bool,
) -> tuple[Setup, Tensor, Tensor]:
    """(setup, fractions [K + 1], values [B, K + 1, T])."""
    setup = Setup(
        forward_func,
        inputs,
        _baselines(baselines, inputs, blur_sigma),
        target,
        additional_forward_args,
        feature_mask,
        None,
        None,
        memory_budget,
        show_progress,
        "insertion" if insertion else "deletion",
    )
    counts = step_counts(setup.d, n_steps)
    masks = _order_masks(feature_scores(setup, attributions), counts, order, insertion)
    values = setup.game(masks)  # [B, K + 1, T]
    return setup, counts.to(torch.float64) / setup.d, values


def _finish(setup: Setup, fractions: Tensor, values: Tensor) -> Curve:
    v = values.transpose(1, 2)  # [B, T, K + 1]
    auc = torch.trapezoid(v, fractions.to(v.device), dim=-1)
    if not setup.targets.multi:
        v, auc = v[:, 0], auc[:, 0]
    return Curve(fractions, v, auc)


def deletion_curve(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    target: TargetType = None,
    baselines: Any = None,
    additional_forward_args: Any = None,
    feature_mask: Tensor | tuple[Tensor, ...] | None = None,
    n_steps: int | None = 20,
    order: str = "most_relevant_first",
    *,
    blur_sigma: float = 5.0,
    memory_budget: int | str | None = None,
    show_progress: bool = False,
) -> Curve:
    """The model's target output as features are removed in the attributions' order.

    Features are the groups of ``feature_mask`` (default: every input element); a
    feature's relevance is the sum of its attributions. At step k the first n_k
    features of the order take the baseline's values (n_0 = 0, n_K = d). With
    ``most_relevant_first`` (MoRF) a faithful explanation makes the curve fall fast
    (small AUC); with ``least_relevant_first`` (LeRF) it should stay high. Ties keep
    the features' index order.

    Args:
        forward_func: the model (any callable returning [B, ...] outputs).
        inputs: [B, *F] tensor or a tuple of them.
        attributions: shaped like ``inputs`` (e.g. any xattr / Captum explainer's).
        target: Captum's forms (int, list or tensor of B indices, None for one
            output), a list of B lists or "all" for several.
        baselines: what removed features become: None (zeros, the default), a
            number, a tensor in Captum's forms (one example, [1 or B, *F], e.g. a
            counterfactual per example), ``"blur"`` (each image Gaussian-blurred, ``blur_sigma``) or
            ``"mean"`` (each example's per-channel mean); a tuple for tuple inputs.
        additional_forward_args: extra model arguments (tensors with B rows follow
            the batching).
        feature_mask: integer feature ids per element ([*F] or [1 or B, *F]).
        n_steps: K, the number of steps (default 20; at most d; None: one feature
            per step).
        order: "most_relevant_first" (default) or "least_relevant_first".
        blur_sigma: sigma of the "blur" baseline in pixels (default 5).
        memory_budget: bytes (or "512MB") per batch of model rows.
        show_progress: a tqdm bar over the perturbed rows.

    Returns:
        :class:`Curve` (fractions [K + 1], values [B, K + 1], auc [B]).

    Example:
        >>> import torch
        >>> w = torch.tensor([3.0, -1.0, 2.0])
        >>> f = lambda x: (x @ w)[:, None]
        >>> x = torch.ones(1, 3)
        >>> c = deletion_curve(f, x, x * w, target=0, n_steps=3)
        >>> c.values.tolist(), round(float(c.auc), 4)
        ([[4.0, 1.0, -1.0, 0.0]], 0.6667)
    """
    setup, fractions, values = _curve(
        forward_func,
        inputs,
        attributions,
        target,
        baselines,
        additional_forward_args,
        feature_mask,
        n_steps,
        order,
        False,
        blur_sigma,
        memory_budget,
        show_progress,
    )
    return _finish(setup, fractions, values)


def insertion_curve(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    target: TargetType = None,
    baselines: Any = None,
    additional_forward_args: Any = None,
    feature_mask: Tensor | tuple[Tensor, ...] | None = None,
    n_steps: int | None = 20,
    order: str = "most_relevant_first",
    *,
    blur_sigma: float = 5.0,
    memory_budget: int | str | None = None,
    show_progress: bool = False,
) -> Curve:
    """The model's target output as features are inserted into the baseline in the
    attributions' order: at step k the first n_k features take the input's values,
    the rest the baseline's (so step 0 is the baseline, step K the input). With
    ``most_relevant_first`` a faithful explanation makes the curve rise fast (large
    AUC). Arguments and result as :func:`deletion_curve`.

    Example:
        >>> import torch
        >>> w = torch.tensor([3.0, -1.0, 2.0])
        >>> f = lambda x: (x @ w)[:, None]
        >>> c = insertion_curve(f, torch.ones(1, 3), w[None], target=0, n_steps=3)
        >>> c.values.tolist()
        [[0.0, 3.0, 5.0, 4.0]]
    """
    setup, fractions, values = _curve(
        forward_func,
        inputs,
        attributions,
        target,
        baselines,
        additional_forward_args,
        feature_mask,
        n_steps,
        order,
        True,
        blur_sigma,
        memory_budget,
        show_progress,
    )
    return _finish(setup, fractions, values)


def target_class_curve(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    target: TargetType,
    toward: TargetType,
    baselines: Any,
    additional_forward_args: Any = None,
    feature_mask: Tensor | tuple[Tensor, ...] | None = None,
    n_steps: int | None = 20,
    *,
    blur_sigma: float = 5.0,
    memory_budget: int | str | None = None,
    show_progress: bool = False,
) -> TargetClassCurve:
    """How fast the prediction moves from class y (``target``) toward class c
    (``toward``) as the most relevant features take the baseline's values (GANMEX's
    perturbation metric: with a counterfactual of class c as the baseline, a good
    explanation for "why y and not c" flips the prediction after few features).

    Args:
        forward_func, inputs, attributions, additional_forward_args, feature_mask,
            n_steps, blur_sigma, memory_budget, show_progress: as
            :func:`deletion_curve`.
        target: y, the class explained: an int or B ints (list or tensor).
        toward: c, the class moved toward: an int or B ints.
        baselines: the features' replacement values, typically a counterfactual of
            class c per example ([B, *F]); any form :func:`deletion_curve` takes.

    Returns:
        :class:`TargetClassCurve`: fractions [K + 1], margin f_c - f_y [B, K + 1],
        flipped (argmax == c) [B, K + 1], auc of the margin [B].

    Example:
        >>> import torch
        >>> W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]])
        >>> f = lambda x: x @ W  # two classes
        >>> x = torch.tensor([[1.0, 0.0, 1.0]]); cf = torch.tensor([[0.0, 1.0, 0.0]])
        >>> c = target_class_curve(f, x, x * (W[:, 0] - W[:, 1]), 0, 1, cf, n_steps=3)
        >>> c.margin.tolist(), c.flipped.tolist()
        ([[-4.0, -1.0, 0.0, 1.0]], [[False, False, False, True]])
    """
    xs, _ = format_inputs(inputs)
    B = xs[0].shape[0]
    ys, cs = _per_example_class("target", target, B), _per_example_class("toward", toward, B)
    # every output at every step, in one pass: the margin and the argmax need them
    _, fractions, values = _curve(
        forward_func,
        inputs,
        attributions,
        "all",
        baselines,
        additional_forward_args,
        feature_mask,
        n_steps,
        "most_relevant_first",
        False,
        blur_sigma,
        memory_budget,
        show_progress,
    )  # [B, K + 1, C]
    C = values.shape[-1]
    for name, cls in (("target", ys), ("toward", cs)):
        if not all(-C <= v < C for v in cls):
            raise ValueError(f"{name}: class index out of range for {C} outputs")
    y = torch.tensor(ys, device=values.device).view(B, 1, 1) % C
    c = torch.tensor(cs, device=values.device).view(B, 1, 1) % C
    steps = values.shape[1]
    f_y = values.gather(2, y.expand(B, steps, 1))[..., 0]
    f_c = values.gather(2, c.expand(B, steps, 1))[..., 0]
    margin = f_c - f_y  # [B, K + 1]
    flipped = values.argmax(-1) == c[..., 0]
    auc = torch.trapezoid(margin, fractions.to(margin.device), dim=-1)
    return TargetClassCurve(fractions, margin, flipped, auc)


def _per_example_class(name: str, value: Any, B: int) -> list[int]:
    if isinstance(value, Tensor):
        value = value.tolist() if value.numel() != 1 else int(value.item())
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an int or {B} ints, got bool")
    if isinstance(value, int):
        return [value] * B
    if (
        isinstance(value, (list, tuple))
        and len(value) == B
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return list(value)
    raise ValueError(f"{name}: expected an int or {B} ints (one class per example), got {value!r}")
