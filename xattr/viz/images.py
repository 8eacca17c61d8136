"""Image attributions of several methods side by side, on one colour scale."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from xattr.viz._common import (
    NEGATIVE_RGB,
    POSITIVE_RGB,
    check_sign,
    diverging_cmap,
    new_figure,
    robust_max,
    sequential_cmap,
    signed,
    to_numpy,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["image_attributions"]


def _maps(name: str, a: Any) -> np.ndarray:
    """Attributions [B, C, H, W], [C, H, W] or [H, W] as channel-summed maps [B, H, W]."""
    x = to_numpy(a, f"attributions[{name!r}]")
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(
            f"attributions[{name!r}]: expected [B, C, H, W], [C, H, W] or [H, W], "
            f"got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"attributions[{name!r}]: contains NaN or Inf")
    return x.sum(1)


def _images(image: Any, B: int, H: int, W: int) -> np.ndarray:
    """The images [B, C, H, W] / [C, H, W] / [H, W] as displayable [B, H, W, 3] in [0, 1]."""
    x = to_numpy(image, "image")
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"image: expected [B, C, H, W], [C, H, W] or [H, W] with C = 1 or 3, "
            f"got shape {x.shape}"
        )
    if x.shape[0] != B or x.shape[2:] != (H, W):
        raise ValueError(
            f"image: expected {B} image(s) of {H} x {W} (as the attributions), got shape {x.shape}"
        )
    x = np.repeat(x, 3, axis=1) if x.shape[1] == 1 else x
    x = x.transpose(0, 2, 3, 1)
    out = np.empty_like(x)
    for b in range(B):  # per image: [0, 1] as given, else min-max scaled
        lo, hi = float(x[b].min()), float(x[b].max())
        out[b] = x[b] if lo >= 0 and hi <= 1 else (x[b] - lo) / max(hi - lo, 1e-12)
    return out


def _segments(segments: Any, B: int, H: int, W: int) -> np.ndarray:
    """A segment map [H, W], [B, H, W], [1, H, W] or [B, 1, H, W] as int [B, H, W]."""
    s = to_numpy(segments, "segments")
    if s.ndim == 4 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim == 2:
        s = s[None]
    if s.ndim != 3 or s.shape[1:] != (H, W) or s.shape[0] not in (1, B):
        raise ValueError(
            f"segments: expected an integer map [H, W] or [B, H, W] with H, W = {H}, {W} "
            f"and B = 1 or {B}, got shape {s.shape}"
        )
    if not np.all(s == np.round(s)):
        raise ValueError("segments: expected integer segment ids")
    return np.broadcast_to(s.astype(np.int64), (B, H, W))


def _outline(ax: Any, seg: np.ndarray, color: str) -> None:
    """Lines along the pixel edges where the segment id changes: ``color`` over a
    wider white line, visible on dark and light pixels alike."""
    from matplotlib.collections import LineCollection

    lines = []
    ys, xs = np.nonzero(seg[:, 1:] != seg[:, :-1])  # between columns x and x + 1
    lines += [[(x + 0.5, y - 0.5), (x + 0.5, y + 0.5)] for y, x in zip(ys, xs)]
    ys, xs = np.nonzero(seg[1:, :] != seg[:-1, :])  # between rows y and y + 1
    lines += [[(x - 0.5, y + 0.5), (x + 0.5, y + 0.5)] for y, x in zip(ys, xs)]
    if lines:
        ax.add_collection(LineCollection(lines, colors="white", linewidths=1.8, alpha=0.7))
        ax.add_collection(LineCollection(lines, colors=color, linewidths=0.7))


def image_attributions(
    attributions: Mapping[str, Any],
    image: Any | None = None,
    sign: str = "all",
    segments: Any | None = None,
    *,
    overlay: bool | None = None,
    outlier_perc: float = 0.5,
    scale: str = "shared",
    titles: list[str] | None = None,
    segment_color: str = "black",
    cell_size: float = 2.2,
) -> Figure:
    """A grid of image attributions: one row per image, one column per method (after
    the image itself, when given), all on one colour scale with one colour bar.

    Channels are summed. The scale is shared by every map of every method: the
    (100 - ``outlier_perc``)-th percentile of |values| over all of them saturates the
    colours, so methods on the same output scale (e.g. Shapley values) compare by
    eye. ``sign="all"`` draws signed values in a diverging map centred at 0 (red
    positive, blue negative); the others draw one side from white.

    Args:
        attributions: {method name: attributions}, each [B, C, H, W], [C, H, W] or
            [H, W] (a tensor or array; every method the same shape).
        image: the images [B, C, H, W], [C, H, W] or [H, W] (C = 1 or 3; values in
            [0, 1], else min-max scaled per image), or None.
        sign: "all" (default, signed), "absolute_value", "positive" or "negative".
        segments: superpixels / feature groups to outline, an integer map [H, W] or
            [B, H, W] (a feature mask [1, H, W] or [B, 1, H, W] too), or None.
        overlay: draw the maps over a light grey copy of the image, a colour's
            opacity growing with |value| (default: True when ``image`` is given and
            at least 32 x 32 pixels; smaller images read better beside the maps).
        outlier_perc: the percentage of the largest |values| that saturate (0.5).
        scale: "shared" (default): one scale for all methods; "per_method": each
            method's maps divided by its own scale (the bar then reads relative
            values). Use it for methods on different scales, e.g. a perturbation
            explainer with a feature mask (every pixel carries its group's whole
            value) next to a gradient explainer (per-pixel shares).
        titles: row labels, one per image (default none).
        segment_color: the outline colour (default "black").
        cell_size: inches per image cell (default 2.2).

    Returns:
        a matplotlib ``Figure`` (not shown; ``fig.savefig(...)`` or display it).

    Example:
        >>> import torch
        >>> from xattr.viz import image_attributions
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(2, 3, 16, 16, generator=g)
        >>> attr = {"IG": torch.randn(2, 3, 16, 16, generator=g), "KernelShap": x - 0.5}
        >>> segs = torch.arange(16).repeat_interleave(4).view(8, 8)
        >>> segs = segs.repeat_interleave(2, 0).repeat_interleave(2, 1)
        >>> fig = image_attributions(attr, x, segments=segs)
        >>> [ax.get_title() for ax in fig.axes[:3]]
        ['image', 'IG', 'KernelShap']
    """
    check_sign(sign)
    if not isinstance(attributions, Mapping) or not attributions:
        raise TypeError(
            "attributions: expected a non-empty dict {method name: attributions}, "
            f"got {type(attributions).__name__}"
        )
    maps = {str(k): _maps(str(k), v) for k, v in attributions.items()}
    shapes = {k: m.shape for k, m in maps.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"attributions: every method must have the same shape, got {shapes}")
    B, H, W = next(iter(maps.values())).shape
    images = None if image is None else _images(image, B, H, W)
    segs = None if segments is None else _segments(segments, B, H, W)
    if titles is not None and len(titles) != B:
        raise ValueError(f"titles: expected {B} row labels (one per image), got {len(titles)}")
    if overlay is None:  # small images read better beside the image than under colour
        overlay = images is not None and min(H, W) >= 32
    overlay = bool(overlay)
    if overlay and images is None:
        raise ValueError("overlay: True needs the image")

    if scale not in ("shared", "per_method"):
        raise ValueError(f"scale: expected 'shared' or 'per_method', got {scale!r}")
    shown = {k: signed(m, sign) for k, m in maps.items()}
    if scale == "per_method":
        shown = {k: m / robust_max([m], outlier_perc) for k, m in shown.items()}
    vmax = robust_max(list(shown.values()), outlier_perc)
    if sign == "all":
        cmap, vmin = diverging_cmap(), -vmax
    elif sign == "negative":
        cmap, vmin, vmax = sequential_cmap(sign).reversed(), -vmax, 0.0
    else:
        cmap, vmin = sequential_cmap(sign), 0.0

    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    norm = Normalize(vmin=vmin, vmax=vmax, clip=True)
    mappable = ScalarMappable(norm=norm, cmap=cmap)
    full = max(abs(vmin), abs(vmax))
    n_cols = len(maps) + (images is not None)
    fig = new_figure((cell_size * n_cols + 1.2, cell_size * B + 0.5), layout="constrained")
    axes = fig.subplots(B, n_cols, squeeze=False)
    for b in range(B):
        col = 0
        if images is not None:
            axes[b, 0].imshow(images[b], interpolation="nearest")
            col = 1
        for m in shown.values():
            ax = axes[b, col]
            if overlay:
                assert images is not None
                # the grey image, light, under the colours; a colour's opacity grows
                # with |value| (so 0 shows the image, as white shows it in the bar)
                grey = 0.62 + 0.38 * images[b].mean(-1)
                ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                strength = np.clip(np.abs(m[b]) / full, 0, 1)
                rgba = np.zeros(m[b].shape + (4,))
                rgba[..., :3] = np.where(
                    (m[b] < 0 if sign != "negative" else m[b] <= 0)[..., None],
                    NEGATIVE_RGB,
                    POSITIVE_RGB,
                )
                rgba[..., 3] = strength**0.7
            else:
                rgba = mappable.to_rgba(m[b])
            ax.imshow(rgba, interpolation="nearest")
            col += 1
    if segs is not None:
        for b in range(B):
            for ax in axes[b]:
                _outline(ax, segs[b], segment_color)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():  # a light frame: white maps end somewhere
            spine.set_color("#c8c8c8")
            spine.set_linewidth(0.6)
    names = (["image"] if images is not None else []) + list(maps)
    for ax, name in zip(axes[0], names):
        ax.set_title(name, fontsize=11)
    if titles is not None:
        for ax, t in zip(axes[:, 0], titles):
            ax.set_ylabel(t, fontsize=10)
    bar = fig.colorbar(mappable, ax=axes, shrink=min(0.9, 0.45 + 0.2 * B), aspect=25, pad=0.02)
    label = "|attribution|" if sign == "absolute_value" else "attribution"
    bar.set_label(label + (" / method's scale" if scale == "per_method" else ""))
    bar.outline.set_visible(False)
    return fig
