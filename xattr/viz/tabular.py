"""Bar charts of tabular attributions, one panel per method on a shared axis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from xattr.viz._common import NEGATIVE_RGB, POSITIVE_RGB, new_figure, to_numpy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["feature_bars"]


def _vector(name: str, a: Any, d: int) -> np.ndarray:
    x = to_numpy(a, name)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1 or x.shape[0] != d:
        hint = " (pick one example, e.g. attributions[0])" if x.ndim == 2 else ""
        raise ValueError(
            f"{name}: expected [d] or [1, d] values with d = {d} feature names, "
            f"got shape {x.shape}{hint}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return x


def feature_bars(
    attributions: Any,
    feature_names: Sequence[str],
    *,
    top_k: int | None = 10,
    title: str | None = None,
    xlabel: str = "attribution",
    precision: int = 3,
) -> Figure:
    """Horizontal bars of one example's feature attributions, the largest |value| on
    top; red for positive, blue for negative, each bar labelled with its value.

    Several methods (a dict) are drawn side by side, sharing the feature order (by the
    mean |value| over the methods) and one value axis, so their bars compare directly.

    Args:
        attributions: [d] (or [1, d]) values, or {method name: [d] values}.
        feature_names: the d feature names.
        top_k: how many features to show (default 10; None for all); the rest are
            summed into one "other (n)" bar per method when there are any.
        title: the figure's title.
        xlabel: the value axis label (default "attribution").
        precision: significant digits of the value labels.

    Returns:
        a matplotlib ``Figure``.

    Example:
        >>> import torch
        >>> from xattr.viz import feature_bars
        >>> names = ["age", "income", "debt", "tenure"]
        >>> fig = feature_bars({"KernelShap": torch.tensor([0.5, -1.0, 0.2, 0.0]),
        ...                     "Lime": torch.tensor([0.4, -0.8, 0.3, 0.1])}, names, top_k=3)
        >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
        ['income', 'age', 'debt', 'other (1)']
    """
    if isinstance(feature_names, str) or not isinstance(feature_names, Sequence):
        raise TypeError(
            f"feature_names: expected a list of strings, got {type(feature_names).__name__}"
        )
    names = [str(n) for n in feature_names]
    d = len(names)
    if d == 0:
        raise ValueError("feature_names: expected at least one feature")
    if isinstance(attributions, Mapping):
        if not attributions:
            raise ValueError("attributions: expected at least one method")
        values = {str(k): _vector(f"attributions[{k!r}]", v, d) for k, v in attributions.items()}
    else:
        values = {"": _vector("attributions", attributions, d)}
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k: expected a positive int or None, got {top_k!r}")
    k = d if top_k is None else min(top_k, d)

    importance = np.mean([np.abs(v) for v in values.values()], axis=0)
    order = np.argsort(-importance, kind="stable")[:k]
    rest = np.setdiff1d(np.arange(d), order)
    labels = [names[i] for i in order] + ([f"other ({rest.size})"] if rest.size else [])

    n = len(values)
    rows = len(labels)
    fig = new_figure((2.4 + 3.6 * n, 0.9 + 0.34 * rows))
    axes = fig.subplots(1, n, sharex=True, sharey=True, squeeze=False)[0]
    y = np.arange(rows)
    shown = {
        m: np.concatenate([v[order], [v[rest].sum()] if rest.size else []])
        for m, v in values.items()
    }
    lim = max(float(np.abs(s).max()) for s in shown.values()) or 1.0
    for ax, (method, s) in zip(axes, shown.items()):
        colors = [POSITIVE_RGB if x >= 0 else NEGATIVE_RGB for x in s]
        bars = ax.barh(y, s, color=colors, height=0.7)
        if rest.size:
            bars[-1].set_alpha(0.45)
        for yi, x in zip(y, s):
            ax.text(
                x + (0.02 * lim if x >= 0 else -0.02 * lim),
                yi,
                f"{x:.{precision}g}",
                va="center",
                ha="left" if x >= 0 else "right",
                fontsize=8,
                color="#333",
            )
        ax.axvline(0, color="#555", linewidth=0.8)
        ax.set_title(method, fontsize=11)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", color="#ddd", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[0].set_yticks(y, labels)
    axes[0].invert_yaxis()
    lo = min(0.0, min(float(v.min()) for v in shown.values()))
    hi = max(0.0, max(float(v.max()) for v in shown.values()))
    pad = 0.3 * (hi - lo or 1.0)  # room for the value labels
    axes[0].set_xlim(lo - (pad if lo < 0 else 0), hi + (pad if hi > 0 else 0))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
