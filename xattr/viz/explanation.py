"""Attributions as a ``shap.Explanation``, so shap's plots draw xattr / Captum results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from xattr._core.features import feature_scores, format_feature_mask
from xattr._core.inputs import format_inputs

__all__ = ["to_explanation"]

TensorOrTuple = Union[Tensor, tuple[Tensor, ...]]


def _shap() -> Any:
    try:
        import shap
    except ImportError as exc:  # pragma: no cover - shap ships with the test extras
        raise ImportError("to_explanation builds a shap.Explanation: pip install shap") from exc
    return shap


def _tensors(x: Any, name: str) -> tuple[Tensor, ...]:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    elif isinstance(x, (tuple, list)):
        x = tuple(torch.from_numpy(t) if isinstance(t, np.ndarray) else t for t in x)
    return format_inputs(x, name)[0]


def _base_values(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    baselines: Any,
    target: Any,
    multi: bool,
    T: int,
) -> np.ndarray:
    """f(baselines) at the targets: [B] (single target) or [B, T]."""
    B = inputs[0].shape[0]
    if baselines is None:
        bases = tuple(torch.zeros_like(x) for x in inputs)
    else:
        bs = baselines if isinstance(baselines, (tuple, list)) else (baselines,)
        if len(bs) != len(inputs):
            raise ValueError(f"baselines: expected {len(inputs)} (one per input), got {len(bs)}")
        expanded = []
        for i, (b, x) in enumerate(zip(bs, inputs)):
            b = torch.as_tensor(b, dtype=x.dtype, device=x.device)
            try:
                expanded.append(b.expand_as(x))
            except RuntimeError as exc:
                raise ValueError(
                    f"baselines: input {i} needs a number or a tensor broadcastable to "
                    f"{tuple(x.shape)} ([1 or B, *F]), got {tuple(b.shape)}"
                ) from exc
        bases = tuple(expanded)
    with torch.no_grad():
        out = forward_func(*bases)
    out = torch.as_tensor(out).detach().to(torch.float64).cpu()
    out = out.reshape(B, -1)
    C = out.shape[1]
    if multi:
        if isinstance(target, str) and target == "all":
            idx = torch.arange(C).expand(B, C)
        elif (
            isinstance(target, (list, tuple, Tensor))
            and len(target) == B
            and all(isinstance(t, (list, tuple, Tensor)) for t in target)
        ):
            idx = torch.as_tensor([list(map(int, t)) for t in target])
        else:
            raise ValueError(
                'target: for several targets expected "all" or B lists of class indices, '
                f"got {target!r}"
            )
        if idx.shape != (B, T):
            raise ValueError(f"target: expected {T} classes per example, got {tuple(idx.shape)}")
    else:
        if target is None:
            if C != 1:
                raise ValueError(f"target: the model has {C} outputs; give the class explained")
            idx = torch.zeros(B, 1, dtype=torch.int64)
        elif isinstance(target, int):
            idx = torch.full((B, 1), target, dtype=torch.int64)
        else:
            idx = torch.as_tensor(target, dtype=torch.int64).reshape(-1, 1)
            if idx.shape[0] != B:
                raise ValueError(f"target: expected an int or {B} ints, got {target!r}")
    if ((idx < -C) | (idx >= C)).any():
        raise ValueError(f"target: class index out of range for {C} outputs")
    v = out.gather(1, idx % C).numpy()
    return v if multi else v[:, 0]


def to_explanation(
    attributions: Any,
    inputs: Any | None = None,
    base_values: Any | None = None,
    feature_names: Sequence[str] | None = None,
    *,
    output_names: Sequence[str] | None = None,
    feature_mask: TensorOrTuple | None = None,
    multi_target: bool | None = None,
    image: bool = False,
    forward_func: Callable[..., Any] | None = None,
    baselines: Any = None,
    target: Any = None,
    layout: str = "auto",
) -> Any:
    """Any attribution result as a ``shap.Explanation`` (values, base_values, data,
    feature_names), so that shap's plots (``shap.plots.waterfall``, ``bar``,
    ``beeswarm``, ``shap.image_plot``) draw it.

    Layouts: the features of every input are flattened and concatenated into d
    columns (values [B, d]; for several targets [B, d, T], shap's multi-output
    layout); with ``feature_mask`` a column per feature group (its score: the value
    each element carries in a perturbation explainer's output, the sum of a gradient
    explainer's elements, see ``layout``; data = the group's mean input); with
    ``image=True`` an image batch [B, C, H, W] is kept as [B, H, W, C], the layout
    ``shap.image_plot`` takes.

    For efficient explainers (KernelShap, ShapleyValueSampling, exact Shapley) give
    the model and the baselines: base_values = f(baselines) at the target, so that
    base_values + sum(values) = f(x) and shap's waterfall shows the right f(x).

    Args:
        attributions: [B, *F] or a tuple of them (xattr / Captum form); several
            targets [B, T, *F].
        inputs: the inputs explained, shaped [B, *F] (a tuple for tuple
            attributions), kept as ``data``; needed with ``feature_mask`` and to
            tell several targets apart.
        base_values: the model's output with every feature removed: a number, [B]
            or [B, T]; default computed from ``forward_func`` when given, else 0.
        feature_names: d names (default shap's "Feature i"; "input{i}[j]" for tuple
            inputs; "group {id}" with a feature mask, whose columns are its ids in
            increasing order).
        output_names: T names of the targets (several targets).
        feature_mask: Captum's feature mask (a tensor or tuple, [*F] / [1 or B, *F]).
        multi_target: whether the attributions carry a target dimension [B, T, *F];
            default: when they have one more dimension than ``inputs``.
        image: keep one image input [B, C, H, W] as [B, H, W, C] (no flattening).
        forward_func, baselines, target: the model, the baselines (None: zeros, as
            Captum) and the target(s) explained (an int, B ints; "all" or B lists for
            several), to compute ``base_values``.
        layout: with ``feature_mask``: "auto" (default), "group" or "element" (see
            :func:`xattr.metrics.deletion_curve`).

    Returns:
        ``shap.Explanation``.

    Example:
        >>> import torch
        >>> from xattr import KernelShap
        >>> from xattr.viz import to_explanation
        >>> model = torch.nn.Linear(4, 2).double()
        >>> x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> phi = KernelShap(model).attribute(x, target=1, n_samples=64, seed=0)
        >>> e = to_explanation(phi, x, feature_names=list("abcd"),
        ...                    forward_func=model, target=1)
        >>> e.values.shape, e.base_values.shape
        ((3, 4), (3,))
        >>> fx = model(x)[:, 1].detach().numpy()
        >>> bool(abs(e.base_values + e.values.sum(1) - fx).max() < 1e-9)
        True
    """
    shap = _shap()
    attrs = _tensors(attributions, "attributions")
    B = attrs[0].shape[0]
    xs = None if inputs is None else _tensors(inputs, "inputs")
    if xs is not None:
        if len(xs) != len(attrs):
            raise ValueError(
                f"inputs: expected {len(attrs)} tensor(s), as the attributions, got {len(xs)}"
            )
        if xs[0].shape[0] != B:
            raise ValueError(
                f"inputs: expected {B} examples, as the attributions, got {xs[0].shape[0]}"
            )
    if multi_target is None:
        multi_target = xs is not None and all(a.dim() == x.dim() + 1 for a, x in zip(attrs, xs))
    T = attrs[0].shape[1] if multi_target else 1
    if multi_target and any(a.dim() < 3 or a.shape[1] != T for a in attrs):
        raise ValueError(
            "attributions: several targets need [B, T, *F] tensors with one T, got "
            f"{[tuple(a.shape) for a in attrs]}"
        )
    # [B, T, *F] per input from here on
    per_target = [a if multi_target else a.unsqueeze(1) for a in attrs]
    if xs is not None:
        for i, (a, x) in enumerate(zip(per_target, xs)):
            if a.shape[2:] != x.shape[1:]:
                raise ValueError(
                    f"attributions: tensor {i} has features {tuple(a.shape[2:])}, its input "
                    f"{tuple(x.shape[1:])}"
                )
    if output_names is not None and (not multi_target or len(output_names) != T):
        raise ValueError(
            f"output_names: expected {T} names for {T} targets, got {len(output_names)}"
        )

    data: np.ndarray | None
    if image:
        if len(attrs) != 1 or per_target[0].dim() != 5:
            raise ValueError("image: expects one image input, attributions [B, C, H, W]")
        if feature_mask is not None:
            raise ValueError("image: cannot be combined with feature_mask")
        values = per_target[0].detach().to(torch.float64).cpu().permute(0, 3, 4, 2, 1).numpy()
        data = None if xs is None else xs[0].detach().cpu().permute(0, 2, 3, 1).numpy()
    elif feature_mask is not None:
        if xs is None:
            raise ValueError("feature_mask: needs the inputs")
        groups, ids = format_feature_mask(feature_mask, xs)
        d = int(max(int(g.max()) for g in groups)) + 1
        cols = [
            feature_scores(tuple(a[:, t] for a in per_target), xs, groups, d, layout)
            for t in range(T)
        ]
        values = torch.stack(cols, -1).cpu().numpy()  # [B, d, T]
        sums = torch.zeros(B, d, dtype=torch.float64)
        counts = torch.zeros(B, d, dtype=torch.float64)
        for x, g in zip(xs, groups):
            gg = g.expand_as(x).reshape(B, -1).cpu()
            sums.scatter_add_(1, gg, x.detach().reshape(B, -1).to(torch.float64).cpu())
            counts.scatter_add_(1, gg, torch.ones_like(gg, dtype=torch.float64))
        data = (sums / counts.clamp_min(1)).numpy()
    else:
        flat = [a.detach().to(torch.float64).cpu().reshape(B, T, -1) for a in per_target]
        values = torch.cat(flat, -1).permute(0, 2, 1).numpy()  # [B, d, T]
        data = (
            None
            if xs is None
            else torch.cat(
                [x.detach().cpu().reshape(B, -1).to(torch.float64) for x in xs], 1
            ).numpy()
        )
    if not multi_target:
        values = values[..., 0]
    d = values.shape[1] if not image else None
    if feature_names is not None:
        if image:
            raise ValueError("feature_names: not used with image=True")
        if isinstance(feature_names, str) or len(feature_names) != d:
            raise ValueError(
                f"feature_names: expected {d} names (one per column), got "
                f"{feature_names if isinstance(feature_names, str) else len(feature_names)}"
            )
        feature_names = [str(n) for n in feature_names]
    elif feature_mask is not None:
        feature_names = [f"group {int(i)}" for i in ids]
    elif len(attrs) > 1:
        feature_names = [
            f"input{i}[{j}]" for i, a in enumerate(per_target) for j in range(a[0, 0].numel())
        ]

    if base_values is None:
        if forward_func is not None:
            if xs is None:
                raise ValueError("forward_func: needs the inputs (for the baselines' shapes)")
            base = _base_values(forward_func, xs, baselines, target, multi_target, T)
        else:
            base = np.zeros((B, T) if multi_target else (B,))
    else:
        base = np.asarray(
            base_values.detach().cpu().double() if isinstance(base_values, Tensor) else base_values,
            dtype=np.float64,
        )
        want = (B, T) if multi_target else (B,)
        try:
            base = np.broadcast_to(base.reshape(want) if base.size == np.prod(want) else base, want)
        except ValueError as exc:
            raise ValueError(
                f"base_values: expected a number, [B] or [B, T] ({want}), got shape {base.shape}"
            ) from exc
        base = np.array(base)
    return shap.Explanation(
        values=values,
        base_values=base,
        data=data,
        feature_names=feature_names,
        output_names=list(output_names) if output_names is not None else None,
    )
