"""Agreement of attributions with a reference explanation, batched over examples.

Every function compares attributions ``a`` with a reference ``ref`` of the same
shape, [B, *F] (or tuples of such tensors, read as one concatenated feature
vector per example), and returns one value per example, [B], in the floating
dtype of the pair. With ``feature_mask`` (Captum's form: integer ids per
element, [*F] or [1 or B, *F] per input) each group (feature) is scored first and
the groups are compared, in increasing id order: by the value all its elements
carry in a perturbation explainer's output (Captum's layout), by the sum of its
elements in a per-element map such as a gradient explainer's (``layout``, read from
each map by default, see :func:`xattr.metrics.faithfulness.feature_scores`).

- :func:`relative_l2`: ||a - ref|| / ||ref|| (0 when both are 0, inf when only ref is).
- :func:`mse`: mean squared difference.
- :func:`spearman`: rank correlation with average ranks for ties (scipy's ``spearmanr``).
- :func:`kendall`: tau-b with ties (scipy's ``kendalltau`` default), O(d log^2 d).
- :func:`top_k_intersection`: overlap of the k largest features (by |value| by default).
- :func:`sign_agreement`: fraction of features of the same sign (0 is a sign of its own).

The rank correlations are NaN where they are undefined (fewer than 2 features,
or a constant map), as scipy's.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor

from xattr._core import validation
from xattr._core.features import check_layout, format_feature_mask, group_scores
from xattr._core.inputs import TensorOrTuple, format_inputs
from xattr._core.validation import flag, positive_int

MaskType = Optional[Union[Tensor, tuple[Tensor, ...]]]
LayoutType = Union[str, tuple[str, str]]


__all__ = [
    "kendall",
    "mse",
    "relative_l2",
    "sign_agreement",
    "spearman",
    "top_k_intersection",
]


# ------------------------------------------------------------------ inputs
def _layouts(layout: LayoutType) -> tuple[str, str]:
    pair = tuple(layout) if isinstance(layout, (tuple, list)) else (layout, layout)
    if len(pair) != 2:
        raise ValueError(f"layout: expected one value or a pair (for a, for ref), got {layout!r}")
    return check_layout(pair[0]), check_layout(pair[1])


def _pair(
    a: TensorOrTuple, ref: TensorOrTuple, feature_mask: MaskType, layout: LayoutType = "auto"
) -> tuple[Tensor, Tensor]:
    """Both maps as [B, d] in their common floating dtype (group scores with a mask)."""
    layouts = _layouts(layout)
    xs, _ = format_inputs(a, "a")
    ys, _ = format_inputs(ref, "ref")
    if len(xs) != len(ys):
        raise ValueError(f"ref: expected {len(xs)} tensor(s), as a, got {len(ys)}")
    for name, ts in (("a", xs), ("ref", ys)):
        for i, t in enumerate(ts):
            if not t.is_floating_point():
                raise TypeError(f"{name}[{i}]: expected a floating-point tensor, got {t.dtype}")
            if not validation.all_finite(t):
                raise ValueError(f"{name}[{i}]: contains non-finite values (NaN or inf)")
    for i, (x, y) in enumerate(zip(xs, ys)):
        if x.shape != y.shape:
            raise ValueError(
                f"ref[{i}]: shape {tuple(y.shape)} differs from a[{i}]'s {tuple(x.shape)}"
            )
        if x.device != y.device:
            raise ValueError(f"ref[{i}]: on {y.device}, a[{i}] on {x.device}")
    dtype = xs[0].dtype
    for t in xs + ys:
        dtype = torch.promote_types(dtype, t.dtype)
    B = xs[0].shape[0]
    x = torch.cat([t.reshape(B, -1) for t in xs], dim=1).to(dtype)
    y = torch.cat([t.reshape(B, -1) for t in ys], dim=1).to(dtype)
    if feature_mask is not None:
        groups, ids = format_feature_mask(feature_mask, xs)
        d = int(ids.numel())
        x = group_scores(xs, groups, d, layouts[0]).to(dtype)
        y = group_scores(ys, groups, d, layouts[1]).to(dtype)
    if x.shape[1] == 0:
        raise ValueError("a: no features to compare (the attributions are empty)")
    return x, y


# ------------------------------------------------------------------ ranks
def _sort_groups(v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Rows of v sorted, with the sorting indices and, at each sorted position, the
    position where its group of equal values starts."""
    s, idx = torch.sort(v, dim=1)
    pos = torch.arange(v.shape[1], device=v.device).expand_as(s)
    new = torch.ones_like(s, dtype=torch.bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    start = torch.where(new, pos, torch.zeros_like(pos)).cummax(dim=1).values
    return s, idx, start


def _average_ranks(v: Tensor) -> Tensor:
    """Ranks 1..d per row, ties given the mean of their ranks (float64)."""
    s, idx, start = _sort_groups(v)
    d = v.shape[1]
    pos = torch.arange(d, device=v.device).expand_as(s)
    last = torch.ones_like(s, dtype=torch.bool)
    last[:, :-1] = s[:, 1:] != s[:, :-1]
    # End of each group: the first group end at or after the position.
    end = torch.where(last, pos, torch.full_like(pos, d - 1))
    end = end.flip(1).cummin(dim=1).values.flip(1)
    ranks = (start + end).to(torch.float64) / 2 + 1
    return torch.empty_like(ranks).scatter_(1, idx, ranks)


def _dense_ranks(v: Tensor) -> tuple[Tensor, Tensor]:
    """(ranks 0..(distinct - 1) per row, int64; number of tied pairs per row)."""
    s, idx, start = _sort_groups(v)
    pos = torch.arange(v.shape[1], device=v.device).expand_as(s)
    dense = (start == pos).to(torch.int64).cumsum(dim=1) - 1
    return torch.empty_like(dense).scatter_(1, idx, dense), (pos - start).sum(dim=1)


def _tied_pairs(v: Tensor) -> Tensor:
    """Number of pairs of equal values per row."""
    s, _, start = _sort_groups(v)
    return (torch.arange(v.shape[1], device=v.device) - start).sum(dim=1)


def _inversions(v: Tensor) -> Tensor:
    """Pairs i < j with v[i] > v[j] per row of an int64 [B, d], by a bottom-up merge
    sort: at each level, sorted blocks are merged pairwise with batched searchsorted
    (log d levels of O(d log d) work; memory O(B d))."""
    B, d = v.shape
    size = 1 << max(0, (d - 1).bit_length())
    top = torch.iinfo(torch.int64).max
    cur = torch.full((B, size), top, dtype=torch.int64, device=v.device)
    cur[:, :d] = v  # padding after the end, above every value: no extra inversions
    count = torch.zeros(B, dtype=torch.int64, device=v.device)
    block = 1
    while block < size:
        pairs = cur.view(B, size // (2 * block), 2, block)
        left, right = pairs[:, :, 0].contiguous(), pairs[:, :, 1].contiguous()
        left_le = torch.searchsorted(left, right, right=True)  # left values <= each right
        count += (block - left_le).sum(dim=(1, 2))
        # Stable merge: each value's place is its index plus the values of the other
        # block that precede it.
        i = torch.arange(block, device=v.device)
        pos = torch.cat([i + torch.searchsorted(right, left), i + left_le], dim=2)
        merged = torch.empty_like(pos).scatter_(2, pos, torch.cat([left, right], dim=2))
        cur = merged.view(B, size)
        block *= 2
    return count


def _nan_where(mask: Tensor, value: Tensor) -> Tensor:
    return torch.where(mask, torch.full_like(value, math.nan), value)


# ------------------------------------------------------------------ metrics
def relative_l2(
    a: TensorOrTuple,
    ref: TensorOrTuple,
    *,
    feature_mask: MaskType = None,
    layout: LayoutType = "auto",
) -> Tensor:
    """Relative l2 error ||a - ref|| / ||ref|| per example.

    Where ref is all zeros the ratio is 0 if a is all zeros too (identical maps)
    and inf otherwise.

    Args:
        a: attributions, [B, *F] float tensor or a tuple of them.
        ref: reference attributions, shaped like ``a``.
        feature_mask: optional integer group ids, [*F] or [1 or B, *F] per input
            (Captum's form); each group is scored first (its value, or the sum of
            its elements, see ``layout``). Default: every element is a feature.
        layout: with ``feature_mask``, how each map spreads a group's value over its
            elements: "auto" (default, read from each map), "group" or "element"
            (:func:`~xattr.metrics.faithfulness.feature_scores`), or a pair (a, ref).

    Returns:
        [B], in the floating dtype of the pair.

    Example:
        >>> import torch
        >>> from xattr.metrics.agreement import relative_l2
        >>> a = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
        >>> ref = torch.tensor([[3.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
        >>> relative_l2(a, ref)
        tensor([1.3333, 0.0000,    inf])
    """
    x, y = _pair(a, ref, feature_mask, layout)
    # Both norms scaled by max |ref| so that tiny or huge maps neither underflow nor overflow.
    scale = y.abs().amax(dim=1, keepdim=True)
    zero_ref = scale[:, 0] == 0
    scale = torch.where(zero_ref[:, None], torch.ones_like(scale), scale)
    ratio = torch.linalg.vector_norm((x - y) / scale, dim=1) / torch.linalg.vector_norm(
        y / scale, dim=1
    )
    identical = (x == y).all(dim=1)
    when_zero = torch.where(identical, torch.zeros_like(ratio), torch.full_like(ratio, math.inf))
    return torch.where(zero_ref, when_zero, ratio)


def mse(
    a: TensorOrTuple,
    ref: TensorOrTuple,
    *,
    feature_mask: MaskType = None,
    layout: LayoutType = "auto",
) -> Tensor:
    """Mean squared difference between ``a`` and ``ref`` over the features, per example.

    Args:
        a: attributions, [B, *F] float tensor or a tuple of them.
        ref: reference attributions, shaped like ``a``.
        feature_mask: optional integer group ids, [*F] or [1 or B, *F] per input;
            groups are scored first and the mean is over groups.
        layout: with ``feature_mask``, how each map spreads a group's value over its
            elements: "auto" (default, read from each map), "group" or "element"
            (:func:`~xattr.metrics.faithfulness.feature_scores`), or a pair (a, ref).

    Returns:
        [B], in the floating dtype of the pair.

    Example:
        >>> import torch
        >>> from xattr.metrics.agreement import mse
        >>> mse(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 0.0, 0.0]]))
        tensor([4.3333])
    """
    x, y = _pair(a, ref, feature_mask, layout)
    return (x - y).square().mean(dim=1)


def spearman(
    a: TensorOrTuple,
    ref: TensorOrTuple,
    *,
    feature_mask: MaskType = None,
    layout: LayoutType = "auto",
) -> Tensor:
    """Spearman rank correlation between ``a`` and ``ref`` per example.

    The Pearson correlation of the ranks, ties given the average of their ranks
    (as ``scipy.stats.spearmanr``); O(d log d) per example. NaN where it is
    undefined: fewer than 2 features, or either map constant.

    Args:
        a: attributions, [B, *F] float tensor or a tuple of them.
        ref: reference attributions, shaped like ``a``.
        feature_mask: optional integer group ids, [*F] or [1 or B, *F] per input;
            the group scores are ranked.
        layout: with ``feature_mask``, how each map spreads a group's value over its
            elements: "auto" (default, read from each map), "group" or "element"
            (:func:`~xattr.metrics.faithfulness.feature_scores`), or a pair (a, ref).

    Returns:
        [B] in [-1, 1], in the floating dtype of the pair.

    Example:
        >>> import torch
        >>> from xattr.metrics.agreement import spearman
        >>> spearman(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([[1.0, 3.0, 2.0, 4.0]]))
        tensor([0.8000])
    """
    x, y = _pair(a, ref, feature_mask, layout)
    d = x.shape[1]
    rx = _average_ranks(x) - (d + 1) / 2  # the mean rank is (d + 1) / 2, ties or not
    ry = _average_ranks(y) - (d + 1) / 2
    den = torch.sqrt((rx * rx).sum(dim=1) * (ry * ry).sum(dim=1))
    rho = (rx * ry).sum(dim=1) / torch.where(den > 0, den, 1)
    return _nan_where(den == 0, rho.clamp(-1, 1)).to(x.dtype)


def kendall(
    a: TensorOrTuple,
    ref: TensorOrTuple,
    *,
    feature_mask: MaskType = None,
    layout: LayoutType = "auto",
) -> Tensor:
    """Kendall's tau-b between ``a`` and ``ref`` per example (ties accounted for).

    tau_b = (concordant - discordant) / sqrt((n0 - n1) (n0 - n2)) with n0 = d (d - 1) / 2
    pairs and n1, n2 the pairs tied in ``a`` and in ``ref``, as ``scipy.stats.kendalltau``
    (its default ``variant='b'``). Discordant pairs are counted as inversions by a
    batched merge sort: O(d log^2 d) time and O(B d) memory, so maps of any size
    work. NaN where it is undefined: fewer than 2 features, or either map constant.

    Args:
        a: attributions, [B, *F] float tensor or a tuple of them.
        ref: reference attributions, shaped like ``a``.
        feature_mask: optional integer group ids, [*F] or [1 or B, *F] per input;
            the group scores are compared.
        layout: with ``feature_mask``, how each map spreads a group's value over its
            elements: "auto" (default, read from each map), "group" or "element"
            (:func:`~xattr.metrics.faithfulness.feature_scores`), or a pair (a, ref).

    Returns:
        [B] in [-1, 1], in the floating dtype of the pair.

    Example:
        >>> import torch
        >>> from xattr.metrics.agreement import kendall
        >>> kendall(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([[1.0, 3.0, 2.0, 4.0]]))
        tensor([0.6667])
    """
    x, y = _pair(a, ref, feature_mask, layout)
    d = x.shape[1]
    rx, x_ties = _dense_ranks(x)
    ry, y_ties = _dense_ranks(y)
    # Sort by (x, y): then every inversion of y is a discordant pair.
    order = torch.argsort(rx * d + ry, dim=1)
    both_ties = _tied_pairs(torch.gather(rx * d + ry, 1, order))
    discordant = _inversions(torch.gather(ry, 1, order))
    pairs = d * (d - 1) // 2
    num = (pairs - x_ties - y_ties + both_ties - 2 * discordant).to(torch.float64)
    den = torch.sqrt((pairs - x_ties).to(torch.float64) * (pairs - y_ties).to(torch.float64))
    tau = num / torch.where(den > 0, den, 1)
    return _nan_where(den == 0, tau.clamp(-1, 1)).to(x.dtype)


def top_k_intersection(
    a: TensorOrTuple,
    ref: TensorOrTuple,
    k: int,
    *,
    absolute: bool = True,
    feature_mask: MaskType = None,
    layout: LayoutType = "auto",
) -> Tensor:
    """Fraction of the k top features of ``ref`` that are among the k top features of ``a``.

    Features are ranked by absolute value (``absolute=True``, the default: large
    negative attributions matter as much as large positive ones) or by signed
    value, largest first. Ties at the k-th place go to the lower feature index
    (a stable sort), so the result is deterministic.

    Args:
        a: attributions, [B, *F] float tensor or a tuple of them.
        ref: reference attributions, shaped like ``a``.
        k: how many top features to compare, 1 <= k <= d (the number of features,
            or of groups with ``feature_mask``).
        absolute: rank by |value| (default True) rather than by value.
        feature_mask: optional integer group ids, [*F] or [1 or B, *F] per input;
            the group scores are ranked.
        layout: with ``feature_mask``, how each map spreads a group's value over its
            elements: "auto" (default, read from each map), "group" or "element"
            (:func:`~xattr.metrics.faithfulness.feature_scores`), or a pair (a, ref).

    Returns:
        [B] in {0, 1/k, ..., 1}, in the floating dtype of the pair.

    Example:
        >>> import torch
        >>> from xattr.metrics.agreement import top_k_intersection
        >>> a, ref = torch.tensor([[4.0, -3.0, 2.0, 1.0]]), torch.tensor([[1.0, 2.0, -3.0, 4.0]])
        >>> top_k_intersection(a, ref, k=3)
        tensor([0.6667])
    """
    positive_int("k", k)
    flag("absolute", absolute)
    x, y = _pair(a, ref, feature_mask, layout)
    B, d = x.shape
    if k > d:
        raise ValueError(f"k: expected at most the number of features ({d}), got {k}")

    def top(v: Tensor) -> Tensor:
        score = v.abs() if absolute else v
        idx = torch.sort(score, dim=1, descending=True, stable=True).indices[:, :k]
        return torch.zeros(B, d, dtype=torch.bool, device=v.device).scatter_(1, idx, True)

    return (top(x) & top(y)).sum(dim=1).to(x.dtype) / k


def sign_agreement(
    a: TensorOrTuple,
    ref: TensorOrTuple,
    *,
    feature_mask: MaskType = None,
    layout: LayoutType = "auto",
) -> Tensor:
    """Fraction of features on which ``a`` and ``ref`` have the same sign, per example.

    Signs are -1, 0 and +1 (``torch.sign``): a zero agrees only with a zero, so a
    feature that one map ignores and the other does not counts as a disagreement.

    Args:
        a: attributions, [B, *F] float tensor or a tuple of them.
        ref: reference attributions, shaped like ``a``.
        feature_mask: optional integer group ids, [*F] or [1 or B, *F] per input;
            the signs of the group scores are compared.
        layout: with ``feature_mask``, how each map spreads a group's value over its
            elements: "auto" (default, read from each map), "group" or "element"
            (:func:`~xattr.metrics.faithfulness.feature_scores`), or a pair (a, ref).

    Returns:
        [B] in [0, 1], in the floating dtype of the pair.

    Example:
        >>> import torch
        >>> from xattr.metrics.agreement import sign_agreement
        >>> a, ref = torch.tensor([[1.0, -1.0, 0.0, 2.0]]), torch.tensor([[2.0, 1.0, 0.0, -1.0]])
        >>> sign_agreement(a, ref)
        tensor([0.5000])
    """
    x, y = _pair(a, ref, feature_mask, layout)
    return (torch.sign(x) == torch.sign(y)).to(x.dtype).mean(dim=1)
