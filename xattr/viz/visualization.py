"""Captum's image plots, with Captum's arguments: ``captum.attr.visualization``.

``from xattr.viz import visualization as viz`` replaces
``from captum.attr import visualization as viz``: :func:`visualize_image_attr` and
:func:`visualize_image_attr_multiple` take the same arguments with the same defaults,
normalise the attributions the same way (the sign option, then a scale set by the
values that make up the top ``outlier_perc`` percent of the total) and draw the same
pixels (the tests compare the rendered canvases with Captum's). Beyond Captum:

- torch tensors are accepted as well as numpy arrays: a tensor is channels-first,
  [C, H, W] or [1, C, H, W] (what an explainer returns for one image), a numpy array
  channels-last [H, W, C] as in Captum; [H, W] in both;
- an all-zero map draws as zeros (with a warning) instead of failing an assertion;
- one-channel images work in every method;
- the errors for bad options are ``ValueError`` subclasses that are also Captum's
  exception types (``KeyError`` / ``AssertionError``), so code that catches either
  keeps working.

matplotlib is imported when a function is called (``pip install "torch-xattr[demo]"``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from xattr.viz._common import matplotlib

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

__all__ = [
    "ImageVisualizationMethod",
    "VisualizationError",
    "VisualizeSign",
    "visualize_image_attr",
    "visualize_image_attr_multiple",
]


class ImageVisualizationMethod(Enum):
    """The ``method`` options (Captum's enum)."""

    heat_map = 1
    blended_heat_map = 2
    original_image = 3
    masked_image = 4
    alpha_scaling = 5


class VisualizeSign(Enum):
    """The ``sign`` options (Captum's enum)."""

    positive = 1
    absolute_value = 2
    negative = 3
    all = 4


class VisualizationError(ValueError, KeyError, AssertionError):
    """A bad option: a ``ValueError`` that is also the ``KeyError`` / ``AssertionError``
    Captum raises for it."""

    __str__ = BaseException.__str__


def _check_options(method: Any, sign: Any) -> None:
    if method not in ImageVisualizationMethod.__members__:
        raise VisualizationError(
            f"method: expected one of {list(ImageVisualizationMethod.__members__)}, got {method!r}"
        )
    if sign not in VisualizeSign.__members__:
        raise VisualizationError(
            f"sign: expected one of {list(VisualizeSign.__members__)}, got {sign!r}"
        )
    if sign == "all" and method in ("masked_image", "alpha_scaling"):
        raise VisualizationError(
            f"Cannot display {method.replace('_', ' ')} with both positive and negative "
            "attributions (sign='all'): choose sign 'positive', 'negative' or 'absolute_value'."
        )


def _as_hwc(x: Any, name: str) -> np.ndarray:
    """numpy [H, W(, C)] as given; a tensor [(1,) C, H, W] or [H, W] moved channels-last."""
    if hasattr(x, "detach"):
        import torch

        t = x.detach().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() == 3:
            t = t.permute(1, 2, 0)
        if t.dim() not in (2, 3):
            raise ValueError(
                f"{name}: expected a tensor [C, H, W], [1, C, H, W] or [H, W], "
                f"got shape {tuple(x.shape)}"
            )
        if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
            t = t.float()  # half, bfloat16: numpy has no bfloat16
        a = t.numpy()
    else:
        a = np.asarray(x)
        if a.ndim not in (2, 3):
            raise ValueError(
                f"{name}: expected a numpy array [H, W, C] or [H, W], got shape {a.shape}"
            )
    if not np.issubdtype(a.dtype, np.number) and a.dtype != np.bool_:
        raise TypeError(f"{name}: expected numbers, got dtype {a.dtype}")
    return a


def _prepare_image(a: np.ndarray) -> np.ndarray:
    return np.clip(a.astype(int), 0, 255)


def _cumulative_sum_threshold(values: np.ndarray, percentile: float) -> Any:
    """The smallest value whose cumulative sum (ascending) reaches ``percentile`` percent
    of the total (values non-negative); a numpy scalar of the values' dtype (a float32
    map stays float32, as in Captum, so its colours round the same)."""
    sorted_vals = np.sort(values.flatten())
    cum_sums = np.cumsum(sorted_vals)
    threshold_id = np.where(cum_sums >= cum_sums[-1] * 0.01 * percentile)[0][0]
    return sorted_vals[threshold_id]


def _normalize_attr(attr: np.ndarray, sign: str, outlier_perc: float = 2) -> np.ndarray:
    """Captum's normalisation of an [H, W] map: the sign option, then division by the
    threshold above which the values make up ``outlier_perc`` percent of the total of
    |values|, clipped to [-1, 1]."""
    if not 0 <= outlier_perc <= 100:
        raise ValueError(f"outlier_perc: expected a percentage in [0, 100], got {outlier_perc}")
    if sign == "positive":
        attr = np.maximum(attr, 0)
    elif sign == "negative":
        attr = np.minimum(attr, 0)
    elif sign == "absolute_value":
        attr = np.abs(attr)
    threshold = _cumulative_sum_threshold(np.abs(attr), 100.0 - outlier_perc)
    if sign == "negative":
        threshold = -threshold
    if threshold == 0:
        warnings.warn(
            f"visualize_image_attr: no {sign.replace('_', ' ')} attribution to show (every "
            "value is 0 after the sign option); drawing zeros.",
            stacklevel=3,
        )
        return np.zeros_like(attr, dtype=np.float64)
    if abs(threshold) < 1e-5:
        warnings.warn(
            "Attempting to normalize by value approximately 0, visualized results may be "
            "misleading. This likely means that attribution values are all close to 0.",
            stacklevel=3,
        )
    return np.clip(attr / threshold, -1, 1)


def _default_cmap(sign: str) -> tuple[Any, float, float]:
    if sign == "all":
        from matplotlib.colors import LinearSegmentedColormap

        return LinearSegmentedColormap.from_list("RdWhGn", ["red", "white", "green"]), -1, 1
    return {"positive": "Greens", "negative": "Reds", "absolute_value": "Blues"}[sign], 0, 1


def _rgb(image: np.ndarray) -> np.ndarray:
    """A one-channel image [H, W] / [H, W, 1] as [H, W, 3] (other images unchanged)."""
    if image.ndim == 2:
        image = image[:, :, None]
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def visualize_image_attr(
    attr: Any,
    original_image: Any | None = None,
    method: str = "heat_map",
    sign: str = "absolute_value",
    plt_fig_axis: tuple[Figure, Axes] | None = None,
    outlier_perc: int | float = 2,
    cmap: str | Colormap | None = None,
    alpha_overlay: float = 0.5,
    show_colorbar: bool = False,
    title: str | None = None,
    fig_size: tuple[int, int] = (6, 6),
    use_pyplot: bool = True,
) -> tuple[Figure, Axes]:
    """Captum's ``visualize_image_attr``: one image's attributions in one axis.

    Args:
        attr: the attributions, numpy [H, W, C] or [H, W] (Captum's layout), or a
            tensor [C, H, W], [1, C, H, W] or [H, W]; channels are summed.
        original_image: the image, same layouts (H, W as ``attr``); values in [0, 1]
            (scaled to 0..255) or 0..255. Needed by every method but "heat_map".
        method: "heat_map" (default), "blended_heat_map" (the heat map with alpha
            ``alpha_overlay`` over the grey image), "original_image", "masked_image"
            (image times the normalised map), "alpha_scaling" (the map as the
            image's alpha channel).
        sign: "absolute_value" (default), "positive", "negative" or "all" (not with
            "masked_image" / "alpha_scaling").
        plt_fig_axis: (figure, axis) to draw in; default a new figure.
        outlier_perc: the top attributions making up this percentage of the total
            saturate the colour scale (default 2).
        cmap: colour map; default "Greens" / "Reds" / "Blues" for positive / negative
            / absolute value, red-white-green for "all".
        alpha_overlay: the heat map's alpha in "blended_heat_map" (default 0.5).
        show_colorbar: a horizontal colour bar below the axis (default False).
        title: the axis title. fig_size: the new figure's size (default (6, 6)).
        use_pyplot: create the figure with pyplot and call ``plt.show()`` (default
            True, as Captum); False builds a bare ``Figure`` and shows nothing.

    Returns:
        (figure, axis).

    Raises:
        ValueError: no ``original_image`` for a method that needs one; shapes that
            disagree. :class:`VisualizationError` (a ``ValueError`` that is also
            Captum's ``KeyError`` / ``AssertionError``): an unknown method or sign, or
            sign "all" with "masked_image" / "alpha_scaling".

    Example:
        >>> import torch
        >>> from xattr.viz import visualize_image_attr
        >>> attr = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> fig, ax = visualize_image_attr(attr, torch.rand(3, 8, 8), "blended_heat_map",
        ...                                "all", use_pyplot=False, show_colorbar=True)
        >>> ax.images[-1].get_array().shape
        (8, 8)
    """
    _check_options(method, sign)
    matplotlib()
    a = _as_hwc(attr, "attr")  # its own dtype: float32 maps colour as Captum's do
    if original_image is not None:
        original_image = _as_hwc(original_image, "original_image")
        if original_image.shape[:2] != a.shape[:2]:
            raise ValueError(
                f"original_image: its height and width {original_image.shape[:2]} differ "
                f"from attr's {a.shape[:2]} (numpy arrays are channels-last [H, W, C], "
                "Captum's layout; tensors channels-first [C, H, W])"
            )
        if np.max(original_image) <= 1.0:
            original_image = _prepare_image(original_image * 255)
    elif method != "heat_map":
        raise ValueError(
            "Original Image must be provided for any visualization other than heatmap."
        )

    if plt_fig_axis is not None:
        fig, axis = plt_fig_axis
    elif use_pyplot:
        from matplotlib import pyplot as plt

        fig, axis = plt.subplots(figsize=fig_size)
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=fig_size)
        axis = fig.subplots()
    if isinstance(axis, list):
        axis = axis[0]

    if axis.xaxis is not None:
        axis.xaxis.set_ticks_position("none")
    if axis.yaxis is not None:
        axis.yaxis.set_ticks_position("none")
    axis.set_yticklabels([])
    axis.set_xticklabels([])
    axis.grid(visible=False)

    if a.ndim == 3:
        a = np.sum(a, axis=2)
    norm_attr = _normalize_attr(a, sign, outlier_perc)
    default_cmap, vmin, vmax = _default_cmap(sign)
    cmap = cmap if cmap is not None else default_cmap

    heat_map = None
    if method == "heat_map":
        heat_map = axis.imshow(norm_attr, cmap=cmap, vmin=vmin, vmax=vmax)
    elif method == "blended_heat_map":
        assert original_image is not None
        grey = original_image if original_image.ndim == 2 else np.mean(original_image, axis=2)
        axis.imshow(grey, cmap="gray")
        heat_map = axis.imshow(norm_attr, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha_overlay)
    elif method == "original_image":
        assert original_image is not None
        shown = original_image
        if shown.ndim == 3 and shown.shape[2] == 1:
            shown = np.squeeze(shown, axis=2)
        axis.imshow(shown)
    elif method == "masked_image":
        assert original_image is not None
        axis.imshow(_prepare_image(_rgb(original_image) * np.expand_dims(norm_attr, 2)))
    else:  # alpha_scaling
        assert original_image is not None
        alpha = _prepare_image(np.expand_dims(norm_attr, 2) * 255)
        axis.imshow(np.concatenate([_rgb(original_image), alpha], axis=2))

    if show_colorbar:
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        colorbar_axis = make_axes_locatable(axis).append_axes("bottom", size="5%", pad=0.1)
        if heat_map:
            fig.colorbar(heat_map, orientation="horizontal", cax=colorbar_axis)
        else:
            colorbar_axis.axis("off")
    if title:
        axis.set_title(title)
    if use_pyplot:
        from matplotlib import pyplot as plt

        plt.show()
    return fig, axis


def visualize_image_attr_multiple(
    attr: Any,
    original_image: Any | None,
    methods: Sequence[str],
    signs: Sequence[str],
    titles: Sequence[str] | None = None,
    fig_size: tuple[int, int] = (8, 6),
    use_pyplot: bool = True,
    **kwargs: Any,
) -> tuple[Figure, Axes | list[Axes]]:
    """Captum's ``visualize_image_attr_multiple``: k views of one attribution side by
    side (1 x k axes), view i drawn by :func:`visualize_image_attr` with
    ``methods[i]`` and ``signs[i]``.

    Args:
        attr, original_image: as :func:`visualize_image_attr`.
        methods: k method names. signs: k sign options.
        titles: k axis titles (default none).
        fig_size: the figure's size (default (8, 6)).
        use_pyplot: as :func:`visualize_image_attr` (default True).
        **kwargs: passed to every view (``show_colorbar``, ``alpha_overlay``,
            ``cmap``, ``outlier_perc``, ...).

    Returns:
        (figure, axis) for one view, (figure, list of k axes) for several.

    Raises:
        VisualizationError: ``methods``, ``signs`` (and ``titles``) of different
            lengths, or a bad option (see :func:`visualize_image_attr`).

    Example:
        >>> import numpy as np
        >>> from xattr.viz import visualize_image_attr_multiple
        >>> rng = np.random.default_rng(0)
        >>> fig, axes = visualize_image_attr_multiple(
        ...     rng.normal(size=(8, 8, 3)), rng.random((8, 8, 3)),
        ...     ["original_image", "heat_map"], ["all", "positive"], use_pyplot=False)
        >>> len(axes)
        2
    """
    if len(methods) != len(signs):
        raise VisualizationError(
            f"Methods and signs array lengths must match: {len(methods)} methods, "
            f"{len(signs)} signs."
        )
    if titles is not None and len(titles) != len(methods):
        raise VisualizationError(
            f"If titles list is given, length must match that of methods list: "
            f"{len(titles)} titles, {len(methods)} methods."
        )
    if not methods:
        raise ValueError("methods: expected at least one method")
    for m, s in zip(methods, signs):
        _check_options(m, s)
    matplotlib()
    if use_pyplot:
        from matplotlib import pyplot as plt

        fig = plt.figure(figsize=fig_size)
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=fig_size)
    axes_np = fig.subplots(1, len(methods), squeeze=True)
    axes: Axes | list[Axes]
    if len(methods) == 1:
        axes = axes_np
        axes_list = [axes_np]
    else:
        axes = list(axes_np.tolist())
        axes_list = axes
    for i in range(len(methods)):
        visualize_image_attr(
            attr,
            original_image=original_image,
            method=methods[i],
            sign=signs[i],
            plt_fig_axis=(fig, axes_list[i]),
            use_pyplot=False,
            title=titles[i] if titles else None,
            **kwargs,
        )
    fig.tight_layout()
    if use_pyplot:
        from matplotlib import pyplot as plt

        plt.show()
    return fig, axes
