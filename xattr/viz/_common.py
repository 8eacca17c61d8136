"""What the picture modules share: matplotlib on demand, array conversion, colours."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

INSTALL_HINT = 'pip install "torch-xattr[demo]"'

# Diverging colours (positive red, negative blue, as shap draws them), white at zero.
POSITIVE_RGB = (0.80, 0.10, 0.15)
NEGATIVE_RGB = (0.13, 0.40, 0.75)
SIGNS = ("all", "positive", "negative", "absolute_value")


def matplotlib() -> Any:
    """matplotlib, imported on first use (an optional extra of the package)."""
    try:
        return importlib.import_module("matplotlib")
    except ImportError as exc:  # pragma: no cover - matplotlib ships with the test extras
        raise ImportError(
            f"xattr.viz draws with matplotlib, which is not installed: {INSTALL_HINT}"
        ) from exc


def new_figure(fig_size: tuple[float, float], layout: Any = None) -> Any:
    """A matplotlib Figure outside pyplot (nothing is shown or kept open), on an Agg
    canvas (``fig.canvas.buffer_rgba()`` after ``fig.canvas.draw()``)."""
    matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=fig_size, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def to_numpy(x: Any, name: str) -> np.ndarray:
    """A tensor (detached, on the CPU) or array-like as a float64 numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a tensor or array of numbers, got {type(x)}") from exc
    return a


def check_sign(sign: Any) -> str:
    if sign not in SIGNS:
        raise ValueError(f"sign: expected one of {SIGNS}, got {sign!r}")
    return sign


def signed(a: np.ndarray, sign: str) -> np.ndarray:
    """The part of ``a`` a sign option shows (negative values stay negative)."""
    if sign == "positive":
        return np.maximum(a, 0)
    if sign == "negative":
        return np.minimum(a, 0)
    if sign == "absolute_value":
        return np.abs(a)
    return a


def robust_max(values: list[np.ndarray], outlier_perc: float) -> float:
    """The (100 - outlier_perc)-th percentile of |values| over all arrays: one colour
    scale for every map, not set by a few extreme pixels (1.0 when all are zero)."""
    if not 0 <= outlier_perc < 100:
        raise ValueError(f"outlier_perc: expected a percentage in [0, 100), got {outlier_perc}")
    flat = np.concatenate([np.abs(v).ravel() for v in values])
    flat = flat[np.isfinite(flat)]
    m = float(np.percentile(flat, 100 - outlier_perc)) if flat.size else 0.0
    if m <= 0:
        m = float(flat.max()) if flat.size else 0.0
    return m if m > 0 else 1.0


def diverging_cmap() -> Any:
    """Blue (negative) - white (0) - red (positive)."""
    matplotlib()
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "xattr_diverging", [NEGATIVE_RGB, (1.0, 1.0, 1.0), POSITIVE_RGB]
    )


def sequential_cmap(sign: str) -> Any:
    """White to red (positive, absolute value) or white to blue (negative)."""
    matplotlib()
    from matplotlib.colors import LinearSegmentedColormap

    end = NEGATIVE_RGB if sign == "negative" else POSITIVE_RGB
    return LinearSegmentedColormap.from_list(f"xattr_{sign}", [(1.0, 1.0, 1.0), end])
