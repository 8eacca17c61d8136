"""Feature groups: ``feature_mask`` ids remapped to 0..d-1, which features each
example has, per-feature values spread back to the inputs' shapes, and a group's
score and rank from attributions in either layout (group or per-element)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from xattr._core import validation
from xattr._core.inputs import TensorOrTuple, attribution_dtype, format_inputs, n_elements


def format_feature_mask(
    feature_mask: Tensor | tuple[Tensor, ...] | None, inputs: tuple[Tensor, ...]
) -> tuple[tuple[Tensor, ...], Tensor]:
    """Feature groups as int64 [1 or B, *F] per input, ids remapped to 0..d-1.

    None makes every scalar of every input its own feature (Captum's default). Integer
    ids, or floats holding integral values (as Captum accepts them).
    Returns (groups, ids) with ``ids[j]`` the user's id of feature j.
    """
    B = inputs[0].shape[0]
    if feature_mask is None:
        groups, start = [], 0
        for x in inputs:
            n = n_elements(x)
            groups.append(torch.arange(start, start + n, device=x.device).view(1, *x.shape[1:]))
            start += n
        return tuple(groups), torch.arange(max(start, 1))
    masks = feature_mask if isinstance(feature_mask, (tuple, list)) else (feature_mask,)
    if len(masks) != len(inputs):
        raise ValueError(
            f"feature_mask: expected {len(inputs)} mask(s), one per input, got {len(masks)}"
        )
    groups = []
    for i, (m, x) in enumerate(zip(masks, inputs)):
        if not isinstance(m, Tensor):
            raise TypeError(f"feature_mask[{i}]: expected a tensor, got {type(m).__name__}")
        if m.dtype == torch.bool or m.is_complex():
            raise TypeError(f"feature_mask[{i}]: expected an integer dtype, got {m.dtype}")
        if m.is_floating_point():  # Captum compares ids with ==: integral floats are ids
            mf = m.detach().to(torch.float64)
            if not (bool(torch.isfinite(mf).all()) and bool((mf == mf.round()).all())):
                raise ValueError(
                    f"feature_mask[{i}]: a {m.dtype} mask must hold integral feature ids, "
                    "got fractions or non-finite values"
                )
            m = mf.to(torch.int64)
        feat = tuple(x.shape[1:])
        try:
            if m.dim() == x.dim() and m.shape[0] in (1, B):
                g = m.broadcast_to((m.shape[0], *feat))
            else:
                g = m.broadcast_to(feat).unsqueeze(0)
        except RuntimeError:
            raise ValueError(
                f"feature_mask[{i}]: shape {tuple(m.shape)} fits neither the inputs "
                f"{tuple(x.shape)} nor one example {feat}"
            ) from None
        groups.append(g.to(device=x.device, dtype=torch.int64))
    ids = torch.unique(torch.cat([g.reshape(-1).cpu() for g in groups]))
    if ids.numel() == 0:
        # no element at all (an empty batch with per-example masks, or inputs with no
        # elements): one feature that owns nothing, whose value is exactly 0
        ids = torch.zeros(1, dtype=torch.int64)
    remapped = tuple(
        torch.searchsorted(ids.to(g.device), g.reshape(-1)).view(g.shape).contiguous()
        for g in groups
    )
    return remapped, ids


def feature_sets(groups: tuple[Tensor, ...], B: int, d: int) -> Tensor | None:
    """Which of the d features each example has: bool [B, d], or None when every example
    has all of them (always so when the feature masks are shared by the batch).

    With per-example feature masks the ids may differ between examples (superpixels of
    different images): d is the union of the ids, and a feature an example does not
    have is no player of that example's game.
    """
    if all(g.shape[0] == 1 for g in groups):
        return None
    has = torch.zeros((B, d), dtype=torch.bool)
    for g in groups:
        has.scatter_(1, g.reshape(g.shape[0], n_elements(g)).cpu().expand(B, -1), True)
    return None if bool(has.all()) else has


def spread(
    phi: Tensor,
    groups: tuple[Tensor, ...],
    inputs: tuple[Tensor, ...],
    multi: bool,
    output_dtype: torch.dtype,
) -> tuple[Tensor, ...]:
    """Per-feature values [B, T, d] -> per-element attributions shaped like each input:
    [B, *F] for one target, [B, T, *F] for several (``multi``); dtype of the input
    (of the model's output for integer inputs)."""
    B, T, _ = phi.shape
    out = []
    for x, g in zip(inputs, groups):
        flat = g.reshape(g.shape[0], 1, n_elements(g)).expand(B, T, n_elements(g))
        a = torch.gather(phi, 2, flat).reshape(B, T, *x.shape[1:])
        a = a.to(attribution_dtype(x, output_dtype))
        out.append(a if multi else a[:, 0])
    return tuple(out)


def interpretable(phi: Tensor, ids: Tensor) -> Tensor:
    """Per-feature values [..., d] of the features with (sorted, distinct) ``ids`` ->
    Captum's interpretable space [..., D]: column k is the feature with id
    ``ids[0] + k`` and D = ids[-1] - ids[0] + 1, zeros for the ids no element has.

    Example:
        >>> interpretable(torch.tensor([[1.0, 2.0]]), torch.tensor([3, 5])).tolist()
        [[1.0, 0.0, 2.0]]
    """
    d = ids.numel()
    cols = ids - ids[0] if d else ids
    top = int(cols[-1]) + 1 if d else 0
    if top == d:
        return phi
    full = phi.new_zeros((*phi.shape[:-1], top))
    full[..., cols.to(phi.device)] = phi
    return full


# Gradient explainers' attributions carry each element's own share of a feature's value
# (their sum is the feature's value), unlike Captum's layout of the perturbation
# explainers, where every element of a feature carries the feature's whole value. The
# tensors they return say so in this attribute (a tensor made from them, e.g. by
# .clone() or arithmetic, does not), which the metrics read to score feature groups
# (xattr.metrics.faithfulness.feature_scores).
LAYOUT_ATTRIBUTE = "xattr_layout"


def mark_per_element(values: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The tensors, marked as per-element attributions (``t.xattr_layout == "element"``)."""
    for v in values:
        setattr(v, LAYOUT_ATTRIBUTE, "element")
    return values


LAYOUTS = ("auto", "group", "element")


def check_layout(layout: Any) -> str:
    """``layout`` checked: one of :data:`LAYOUTS`."""
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    return layout


def _marked(attrs: tuple[Tensor, ...], layout: str) -> str:
    """ "element" for "auto" when every tensor is marked per-element by a gradient explainer."""
    if layout == "auto" and all(getattr(a, LAYOUT_ATTRIBUTE, None) == "element" for a in attrs):
        return "element"
    return layout


def group_scores(
    attrs: tuple[Tensor, ...], groups: tuple[Tensor, ...], d: int, layout: str = "auto"
) -> Tensor:
    """The score of every feature, [B, d] float64, from attributions [B, *F] per input
    and feature ids in 0..d-1 per input ([1 or B, *F]); ``layout`` as in
    :func:`feature_scores`. A feature absent from an example scores 0.

    Example:
        >>> import torch
        >>> ids = (torch.tensor([[0, 1, 1, 1, 1]]),)
        >>> group_scores((torch.tensor([[3.0, 2, 2, 2, 2]]),), ids, 2).tolist()  # group
        [[3.0, 2.0]]
        >>> group_scores((torch.tensor([[3.0, 1, 0, 0, 1]]),), ids, 2).tolist()  # element
        [[3.0, 2.0]]
    """
    layout = _marked(attrs, check_layout(layout))
    B = attrs[0].shape[0]
    device = attrs[0].device
    f64 = torch.float64
    flat = [a.reshape(B, -1).to(f64) for a in attrs]
    ids = [g.reshape(g.shape[0], -1).to(device).expand(B, -1) for g in groups]
    sums = torch.zeros((B, d), dtype=f64, device=device)
    for a, g in zip(flat, ids):
        sums.scatter_add_(1, g, a)
    if layout == "element":
        return sums
    hi = torch.full((B, d), -math.inf, dtype=f64, device=device)
    lo = torch.full((B, d), math.inf, dtype=f64, device=device)
    for a, g in zip(flat, ids):
        hi.scatter_reduce_(1, g, a, "amax")
        lo.scatter_reduce_(1, g, a, "amin")
    present = hi > -math.inf
    varies = present & (hi != lo)
    if layout == "group" and bool(varies.any()):
        b, j = varies.nonzero()[0].tolist()
        raise ValueError(
            "layout: 'group' needs every element of a feature to carry the feature's value, "
            f"but feature {j} of example {b} has values from {lo[b, j].item():.6g} to "
            f"{hi[b, j].item():.6g}; use layout='element' (sums) for a per-element map"
        )
    if layout == "auto" and bool(varies.any()):
        return sums
    return torch.where(present, hi, torch.zeros_like(hi))


def feature_scores(
    attributions: TensorOrTuple,
    inputs: tuple[Tensor, ...],
    groups: tuple[Tensor, ...],
    d: int,
    layout: str = "auto",
) -> Tensor:
    """The score of every feature group: [B, d] (float64).

    Args:
        attributions: shaped like ``inputs`` (a tensor or a tuple).
        inputs: the inputs, one [B, *F] tensor per input.
        groups: int64 feature ids in 0..d-1 per input, [1 or B, *F] (as
            ``format_feature_mask`` returns them).
        d: the number of features.
        layout: how the attributions spread a feature's value over its elements.
            ``"element"``: each element carries its share (the gradient explainers:
            IntegratedGradients, ShapleyIntegratedGradients, Saliency, ...), and a
            feature scores the sum of its elements. ``"group"``: every element carries
            the feature's whole value (Captum's layout, which the perturbation
            explainers return with a ``feature_mask``: KernelShap, Lime,
            FeatureAblation, ShapleyValueSampling, ...), and a feature scores that
            value. ``"auto"`` (default): ``"element"`` for the tensors xattr's
            gradient explainers return (they are marked: ``a.xattr_layout ==
            "element"``); otherwise ``"group"`` when every element of every feature,
            in every example, carries the same value as the rest of its feature, else
            ``"element"``. So an explainer's own output with the same feature mask is
            scored right without this argument. "auto" can misread one kind of map:
            a per-element map that is no longer the explainer's marked tensor (a
            copy, a result of arithmetic, another library's) and happens to be
            constant within every feature of every example (e.g. a linear model with
            equal weights within a feature) while the features differ in size; pass
            ``layout="element"`` for it.

    Example:
        >>> import torch
        >>> x = torch.ones(1, 5)
        >>> ids = (torch.tensor([[0, 1, 1, 1, 1]]),)
        >>> feature_scores(torch.tensor([[3.0, 2, 2, 2, 2]]), (x,), ids, 2).tolist()
        [[3.0, 2.0]]
        >>> feature_scores(torch.tensor([[3.0, 2, 2, 2, 2]]), (x,), ids, 2, "element").tolist()
        [[3.0, 8.0]]
    """
    check_layout(layout)
    attrs, _ = format_inputs(attributions, "attributions")
    if len(attrs) != len(inputs):
        raise ValueError(
            f"attributions: expected {len(inputs)} tensor(s), one per input, got {len(attrs)}"
        )
    for i, (a, x) in enumerate(zip(attrs, inputs)):
        if tuple(a.shape) != tuple(x.shape):
            raise ValueError(
                f"attributions: tensor {i} has shape {tuple(a.shape)}, the inputs {tuple(x.shape)}"
            )
        if not a.is_floating_point():
            raise TypeError(f"attributions: expected float tensors, got {a.dtype}")
        if not validation.all_finite(a):
            raise ValueError("attributions: contain NaN or inf")
    layout = _marked(attrs, layout)
    device = inputs[0].device
    return group_scores(tuple(a.to(device) for a in attrs), groups, d, layout)


def feature_ranks(scores: Tensor, descending: bool = True) -> Tensor:
    """The place of every feature in the order of its score: [B, d] int64, 0 = first
    (highest when ``descending``); equal scores keep the lower feature index first."""
    order = torch.argsort(scores, dim=1, descending=descending, stable=True)
    pos = torch.empty_like(order)
    pos.scatter_(1, order, torch.arange(scores.shape[1], device=order.device).expand_as(order))
    return pos
