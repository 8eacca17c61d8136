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

from xattr._core import validation
from xattr._core.batching import as_args, expand_additional_args, rows_per_batch
from xattr._core.features import check_layout, feature_ranks, feature_scores
from xattr._core.game import Setup
from xattr._core.inputs import TensorOrTuple, check_finite, format_inputs
from xattr._core.model import outputs_at
from xattr._core.progress import expect_rows, with_row_progress
from xattr._core.targets import Targets, TargetType
from xattr._core.validation import positive_int
from xattr.baselines import resolve
from xattr.metrics.summary import summarize

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

    def summary(self) -> dict:
        """The AUC over examples (:func:`~xattr.metrics.summarize`) and the mean curve."""
        return {"auc": summarize(self.auc), "mean_curve": self.values.mean(0).tolist()}


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

    def summary(self) -> dict:
        """The margin's AUC over examples and the flipped fraction at each step."""
        return {"auc": summarize(self.auc), "flipped": self.flipped.float().mean(0).tolist()}


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
    pos = feature_ranks(scores, descending=order == ORDERS[0])  # place of feature j
    n = counts.view(1, -1, 1).to(pos.device)
    # present: among the first n_k (insertion), or not among them (deletion)
    return pos.unsqueeze(1) < n if insertion else pos.unsqueeze(1) >= n


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
    show_progress: bool | None,
    layout: str,
) -> tuple[Setup, Tensor, Tensor]:
    """(setup, fractions [K + 1], values [B, K + 1, T])."""
    check_layout(layout)
    setup = Setup(
        forward_func,
        inputs,
        baselines=resolve(baselines, inputs, blur_sigma),
        target=target,
        additional_forward_args=additional_forward_args,
        feature_mask=feature_mask,
        memory_budget=memory_budget,
        show_progress=show_progress,
        desc="insertion" if insertion else "deletion",
    )
    counts = step_counts(setup.d, n_steps)
    scores = feature_scores(attributions, setup.inputs, setup.groups, setup.d, layout)
    masks = _order_masks(scores, counts, order, insertion)
    values = setup.game(masks)  # [B, K + 1, T]
    return setup, counts.to(torch.float64) / setup.d, values


def _finish(setup: Setup, fractions: Tensor, values: Tensor) -> Curve:
    v = values.transpose(1, 2)  # [B, T, K + 1]
    auc = torch.trapezoid(v, fractions.to(v.device), dim=-1)
    if not setup.targets.multi:
        v, auc = v[:, 0], auc[:, 0]
    return Curve(fractions, v, auc)


@with_row_progress()
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
    show_progress: bool | None = None,
    layout: str = "auto",
) -> Curve:
    """The model's target output as features are removed in the attributions' order.

    Features are the groups of ``feature_mask`` (default: every input element); a
    feature's relevance is its value in the attributions (``layout``: the value its
    elements all carry in a perturbation explainer's output, the sum of its elements'
    attributions in a gradient explainer's). At step k the first n_k
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
        show_progress: None (default): a progress bar counting model rows appears once the
            call is projected to take more than about 2 s; True: from the start; False:
            never. One bar per call: calls made inside it count in it.
        layout: "auto" (default), "group" or "element": how the attributions spread a
            feature's value over its elements (:func:`feature_scores`). "auto" reads
            an explainer's own output with the same ``feature_mask`` right: the
            group layout (every element carries the feature's value, as perturbation
            explainers return) when every feature's elements carry one value, else
            per-element shares that are summed. Pass "element" for a per-element map
            that happens to be constant within every feature.

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
        layout,
    )
    return _finish(setup, fractions, values)


@with_row_progress()
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
    show_progress: bool | None = None,
    layout: str = "auto",
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
        layout,
    )
    return _finish(setup, fractions, values)


@with_row_progress()
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
    show_progress: bool | None = None,
    layout: str = "auto",
) -> TargetClassCurve:
    """How fast the prediction moves from class y (``target``) toward class c
    (``toward``) as the most relevant features take the baseline's values (GANMEX's
    perturbation metric: with a counterfactual of class c as the baseline, a good
    explanation for "why y and not c" flips the prediction after few features).

    Args:
        forward_func, inputs, attributions, additional_forward_args, feature_mask,
            n_steps, blur_sigma, memory_budget, show_progress, layout: as
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
        layout,
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


# ---------------------------------------------------------------------- ROAD
# Noisy linear imputation (Rong et al., "A Consistent and Efficient Evaluation Strategy
# for Attribution Methods", ICML 2022): a removed pixel takes the weighted mean of its
# 8 neighbours (weight 1/6 on the sides, 1/12 on the diagonals), removed neighbours
# included, so the removed pixels solve one sparse linear system per image and channel.
class RoadCurve(NamedTuple):
    """ROAD: the model on images whose top pixels were imputed, per removed fraction.

    Attributes:
        fractions: [K] fraction of the pixels removed and imputed.
        values: [B, K] the model's target output on the imputed images.
        correct: [B, K] bool, whether the target is still the model's top class.
        auc: [B] area under ``values`` over ``fractions`` (trapezoid rule).
    """

    fractions: Tensor
    values: Tensor
    correct: Tensor
    auc: Tensor

    def summary(self) -> dict:
        """The AUC over examples and the accuracy at each removed fraction."""
        return {"auc": summarize(self.auc), "accuracy": self.correct.float().mean(0).tolist()}


def _stencil(v: Tensor) -> Tensor:
    """sum_j w_ij v_j over the 8 in-image neighbours j of every pixel i of [N, H, W]
    (1/6 on the sides, 1/12 on the diagonals; zero padding drops the outside)."""
    p = torch.nn.functional.pad(v, (1, 1, 1, 1))
    diagonal = p[:, :-2, :-2] + p[:, :-2, 2:] + p[:, 2:, :-2] + p[:, 2:, 2:]
    side = p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]
    return diagonal / 12 + side / 6


def linear_imputation(
    images: Tensor, removed: Tensor, tol: float = 1e-10, max_iter: int | None = None
) -> Tensor:
    """ROAD's linear imputation (without noise), every image and channel at once.

    Each removed pixel i gets v_i with ``D_i v_i - sum_{j removed} w_ij v_j =
    sum_{j kept} w_ij x_j`` (j over its in-image neighbours, D_i their total weight):
    a symmetric positive definite system per image and channel, solved for all of
    them together by conjugate gradients in float64 to ``tol`` (relative residual).
    Pixels in a hole that touches no kept pixel get 0.

    Args:
        images: [N, C, H, W] float.
        removed: bool [N, H, W] (or [N, 1, H, W]), the pixels to impute (all channels).
        tol: relative residual at which every system stops (default 1e-10).
        max_iter: default 4 * H * W (CG is exact after as many steps as unknowns).

    Returns:
        [N, C, H, W]: the images with the removed pixels imputed, in their dtype.

    Example:
        >>> import torch
        >>> x = torch.ones(1, 1, 3, 3); hole = torch.zeros(1, 3, 3, dtype=torch.bool)
        >>> hole[0, 1, 1] = True
        >>> x[0, 0, 1, 1] = 9.0
        >>> linear_imputation(x, hole)[0, 0].tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images: expected float [N, C, H, W], got {tuple(images.shape)}")
    N, C, H, W = images.shape
    m = removed.reshape(N, H, W) if removed.dim() == 4 else removed
    if tuple(m.shape) != (N, H, W) or m.dtype != torch.bool:
        raise ValueError(f"removed: expected bool [N, H, W] = {(N, H, W)}, got {tuple(m.shape)}")
    x = images.to(torch.float64).reshape(N * C, H, W)
    r = m.repeat_interleave(C, 0).to(torch.float64)  # [NC, H, W], 1 on unknowns
    D = _stencil(torch.ones_like(r))  # total weight of in-image neighbours
    b = r * _stencil(x * (1 - r))
    solution = torch.zeros_like(b)
    # The working set: systems not yet converged (small holes converge in a few
    # steps, large ones take tens); it shrinks as systems finish.
    idx = torch.arange(N * C, device=b.device)
    rw, Dw, v, res, p = r, D, torch.zeros_like(b), b.clone(), b.clone()
    rr = (res * res).sum((1, 2))
    stop = (tol * tol) * rr.clamp_min(1e-300)
    for _ in range(max_iter or 4 * H * W):
        active = rr > stop
        n_active = int(active.sum())
        if n_active == 0:
            break
        if n_active < 0.75 * idx.numel():
            solution[idx[~active]] = v[~active]
            idx, rw, Dw, v, res, p, rr, stop = (
                t[active] for t in (idx, rw, Dw, v, res, p, rr, stop)
            )
        Ap = rw * (Dw * p - _stencil(p))
        pAp = (p * Ap).sum((1, 2))
        alpha = torch.where(pAp > 0, rr / pAp.clamp_min(1e-300), 0.0).view(-1, 1, 1)
        v = v + alpha * p
        res = res - alpha * Ap
        rr_new = (res * res).sum((1, 2))
        p = res + (rr_new / rr.clamp_min(1e-300)).view(-1, 1, 1) * p
        rr = rr_new
    solution[idx] = v
    v = solution
    out = x * (1 - r) + v * r
    return out.view(N, C, H, W).to(images.dtype)


@with_row_progress()
def road(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    order: str = "most_relevant_first",
    noise: float = 0.01,
    additional_forward_args: Any = None,
    *,
    seed: int | None = None,
    memory_budget: int | str | None = None,
    show_progress: bool | None = None,
) -> RoadCurve:
    """ROAD (RemOve And Debias): remove a fraction of the pixels in the attributions'
    order, impute them by noisy linear imputation (:func:`linear_imputation` plus
    Gaussian noise of std ``noise``), and evaluate the model; imputation instead of a
    constant baseline keeps the removed shape from leaking the class.

    Pixel relevance is the attributions summed over channels; at fraction p the first
    ``int(p * H * W)`` pixels of the order are removed (as Quantus's ROAD). With
    ``most_relevant_first`` a faithful explanation makes the output (and accuracy)
    fall fast.

    Args:
        forward_func: the model.
        inputs: [B, C, H, W] images (one tensor).
        attributions: [B, C, H, W] or [B, 1, H, W] (or [B, H, W]).
        target: Captum's forms, one class per example (int, list or tensor).
        fractions: the removed fractions (default 0.1, ..., 0.9).
        order: "most_relevant_first" (default) or "least_relevant_first".
        noise: standard deviation of the noise added to imputed pixels (default 0.01,
            ROAD's).
        additional_forward_args: extra model arguments.
        seed: seed of the noise (None draws it from torch's global generator).
        memory_budget: as :func:`deletion_curve`.
        show_progress: None (default): a progress bar counting model rows appears once the
            call is projected to take more than about 2 s; True: from the start; False:
            never. One bar per call: calls made inside it count in it.

    Returns:
        :class:`RoadCurve`: fractions [K], values [B, K], correct [B, K], auc [B].

    Example:
        >>> import torch
        >>> f = lambda x: torch.stack([x.sum((1, 2, 3)), -x.sum((1, 2, 3))], 1)
        >>> x = torch.rand(2, 1, 6, 6)
        >>> r = road(f, x, x, target=0, fractions=(0.25, 0.5), noise=0.0)
        >>> r.values.shape, r.correct.dtype
        (torch.Size([2, 2]), torch.bool)
    """
    if not isinstance(inputs, Tensor) or inputs.dim() != 4 or not inputs.is_floating_point():
        raise ValueError("inputs: expected one float tensor of images [B, C, H, W]")
    B, C, H, W = inputs.shape
    if not isinstance(attributions, Tensor) or not attributions.is_floating_point():
        raise TypeError("attributions: expected a float tensor")
    a = attributions.reshape(B, -1, H, W) if attributions.numel() % (B * H * W) == 0 else None
    if a is None or attributions.shape[0] != B or attributions.shape[-2:] != (H, W):
        raise ValueError(
            f"attributions: expected [B, C, H, W], [B, 1, H, W] or [B, H, W] for inputs "
            f"{tuple(inputs.shape)}, got {tuple(attributions.shape)}"
        )
    if not validation.all_finite(a):
        raise ValueError("attributions: contain NaN or inf")
    if order not in ORDERS:
        raise ValueError(f"order: expected one of {ORDERS}, got {order!r}")
    fr = torch.as_tensor(fractions, dtype=torch.float64)
    if fr.dim() != 1 or fr.numel() == 0 or not bool(((fr >= 0) & (fr <= 1)).all()):
        raise ValueError(f"fractions: expected values in [0, 1], got {fractions!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
        raise ValueError(f"noise: expected a number >= 0, got {noise!r}")
    K = fr.numel()
    scores = a.to(torch.float64).sum(1).reshape(B, H * W)
    pos = feature_ranks(scores, descending=order == ORDERS[0])
    counts = (fr * (H * W)).floor().long()  # int(p * H * W)
    removed = pos.unsqueeze(1) < counts.view(1, K, 1)  # [B, K, HW]
    imputed = linear_imputation(
        inputs.repeat_interleave(K, 0), removed.reshape(B * K, H, W).to(inputs.device)
    )
    if noise > 0:
        gen = torch.Generator().manual_seed(validation.seed(seed) % 2**63)
        eps = torch.randn(imputed.shape, generator=gen, dtype=torch.float64) * noise
        hole = removed.reshape(B * K, 1, H, W).to(imputed.device)
        imputed = imputed + (eps.to(imputed.device) * hole).to(imputed.dtype)
    classes = _per_example_class("target", target, B)
    # every imputed image through the model in batches; all outputs (for the argmax)
    expect_rows(B * K)
    out = outputs_at(
        forward_func,
        (imputed,),
        as_args(expand_additional_args(additional_forward_args, B, K)),
        Targets("all", B * K),
        rows_per_batch((imputed,), None, memory_budget),
    )  # [B*K, classes]
    check_finite(out)
    n_out = out.shape[1]
    if not all(-n_out <= c < n_out for c in classes):
        raise ValueError(f"target: class index out of range for {n_out} outputs")
    t = torch.tensor(classes, device=out.device).repeat_interleave(K).view(-1, 1) % n_out
    values = out.gather(1, t)[:, 0].view(B, K)
    correct = out.argmax(1).view(B, K) == t.view(B, K)
    auc = torch.trapezoid(values, fr.to(values.device), dim=-1)
    return RoadCurve(fr, values, correct, auc)
