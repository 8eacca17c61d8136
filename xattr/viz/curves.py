"""Deletion / insertion curves (xattr.metrics) and MuS certificates (xattr.smoothing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from xattr.metrics.faithfulness import Curve, RoadCurve, TargetClassCurve
from xattr.smoothing.certify import Certificate
from xattr.smoothing.explain import ExplainedCertificate, MinStable
from xattr.viz._common import matplotlib, new_figure, to_numpy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["certified_radii", "curves"]

CurveLike = Union[Curve, RoadCurve, TargetClassCurve]
CertificateLike = Union[Certificate, ExplainedCertificate, MinStable]
RADII = ("both", "incremental", "decremental")


def _palette(names: list[str]) -> dict[str, Any]:
    """One colour per name, stable across panels."""
    matplotlib()  # the install hint when it is missing
    from matplotlib import colormaps

    tab = colormaps["tab10"]
    return {n: tab(i % 10) for i, n in enumerate(names)}


def _curve_arrays(name: str, c: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fractions [K + 1], values [B, K + 1], auc [B]) of one curve result."""
    if not isinstance(c, (Curve, RoadCurve, TargetClassCurve)):
        raise TypeError(
            f"{name}: expected a Curve, RoadCurve or TargetClassCurve from xattr.metrics, "
            f"got {type(c).__name__}"
        )
    values = c.margin if isinstance(c, TargetClassCurve) else c.values
    f, v, auc = to_numpy(c.fractions, name), to_numpy(values, name), to_numpy(c.auc, name)
    if v.ndim == 3:
        raise ValueError(
            f"{name}: a curve of several targets (values [B, T, K + 1]); plot one target: "
            "Curve(c.fractions, c.values[:, t], c.auc[:, t])"
        )
    if v.ndim != 2 or f.ndim != 1 or v.shape[1] != f.shape[0]:
        raise ValueError(
            f"{name}: expected fractions [K + 1] and values [B, K + 1], got {f.shape} and {v.shape}"
        )
    return f, v, auc


def curves(
    results: Mapping[str, Any],
    *,
    title: str | None = None,
    ylabel: str | None = None,
    xlabel: str = "fraction of features",
    band: bool = True,
) -> Figure:
    """Deletion / insertion (or ROAD, target-class) curves of several methods: the
    mean curve over the examples, a band of +- one standard error, and each method's
    mean AUC (+- its standard error) in the legend.

    Args:
        results: {method name: curve} for one panel, or {panel title: {method name:
            curve}} for several side by side (e.g. "Deletion" and "Insertion"); a
            curve is what :func:`xattr.metrics.deletion_curve`,
            :func:`~xattr.metrics.insertion_curve`, :func:`~xattr.metrics.road` or
            :func:`~xattr.metrics.target_class_curve` returns (one target).
        title: the figure's title.
        ylabel: the y axis label (default "model output", or "margin f_c - f_y" for
            target-class curves).
        xlabel: the x axis label (default "fraction of features").
        band: draw the standard-error band (default True; needs B > 1).

    Returns:
        a matplotlib ``Figure``, one axis per panel; a method keeps its colour in
        every panel.

    Example:
        >>> import torch
        >>> from xattr.metrics import deletion_curve
        >>> from xattr.viz import curves
        >>> w = torch.tensor([3.0, -1.0, 2.0, 0.5])
        >>> f = lambda x: (x @ w)[:, None]
        >>> x = torch.ones(1, 4)
        >>> good = deletion_curve(f, x, x * w, target=0)
        >>> bad = deletion_curve(f, x, -x * w, target=0)
        >>> fig = curves({"Deletion": {"exact": good, "reversed": bad}})
        >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        ['exact (AUC 0.562)', 'reversed (AUC 3.938)']
    """
    if not isinstance(results, Mapping) or not results:
        raise TypeError(
            "results: expected a non-empty dict {method name: curve} or "
            f"{{panel title: {{method name: curve}}}}, got {type(results).__name__}"
        )
    nested = all(isinstance(v, Mapping) for v in results.values())
    if not nested and any(isinstance(v, Mapping) for v in results.values()):
        raise TypeError("results: mix of curves and dicts; give one level or two")
    panels: dict[str, Mapping[str, Any]] = (
        {str(k): v for k, v in results.items()} if nested else {"": results}
    )
    data = {}
    for p, methods in panels.items():
        if not methods:
            raise ValueError(f"results[{p!r}]: expected at least one method")
        data[p] = {
            str(m): (_curve_arrays(f"results[{p!r}][{m!r}]" if p else f"results[{m!r}]", c), c)
            for m, c in methods.items()
        }
    names = list(dict.fromkeys(m for ms in data.values() for m in ms))
    colors = _palette(names)
    fig = new_figure((0.6 + 4.6 * len(data), 3.8))
    axes = fig.subplots(1, len(data), squeeze=False)[0]
    for ax, (p, methods) in zip(axes, data.items()):
        target_class = False
        for m, ((f, v, auc), c) in methods.items():
            target_class |= isinstance(c, TargetClassCurve)
            mean = v.mean(0)
            B = v.shape[0]
            auc_se = auc.std(ddof=1) / np.sqrt(B) if B > 1 else 0.0
            label = f"{m} (AUC {auc.mean():.3f}" + (f" ± {auc_se:.3f})" if B > 1 else ")")
            ax.plot(f, mean, color=colors[m], linewidth=1.8, label=label)
            if band and B > 1:
                se = v.std(0, ddof=1) / np.sqrt(B)
                ax.fill_between(f, mean - se, mean + se, color=colors[m], alpha=0.15, lw=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel or ("margin f_c - f_y" if target_class else "model output"))
        ax.set_xlim(0, 1)
        if p:
            ax.set_title(p)
        ax.grid(color="#e4e4e4", linewidth=0.6)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.legend(frameon=False, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _radius(name: str, c: Any, radius: str) -> np.ndarray:
    """Per-example certified radius (int, -1 = not certified) of a certificate result."""
    if isinstance(c, (ExplainedCertificate, MinStable)):
        c = c.certificate
    if not isinstance(c, Certificate):
        raise TypeError(
            f"{name}: expected a Certificate (xattr.smoothing.certify), an "
            f"ExplainedCertificate or a MinStable, got {type(c).__name__}"
        )
    consistent = to_numpy(c.consistent, name).astype(bool)
    inc = to_numpy(c.incremental_int, name).astype(np.int64)
    dec = to_numpy(c.decremental_int, name).astype(np.int64)
    if radius == "incremental":
        r = np.where(consistent, inc, -1)
    elif radius == "decremental":
        r = dec
    else:
        r = np.where(consistent, np.minimum(inc, dec), -1)
    return np.maximum(r, -1)


def certified_radii(
    certificates: CertificateLike | Mapping[str, CertificateLike],
    *,
    radius: str = "both",
    title: str | None = None,
) -> Figure:
    """MuS certificates as two panels: the certified radius of every example (left)
    and the fraction of examples certified at each radius r (right).

    An example is certified at r when (``radius``) "both" (default): the explanation
    is consistent and both its incremental and decremental integer radii are at least
    r (``Certificate.stable(r)``); "incremental": consistent and the incremental
    radius at least r; "decremental": the decremental radius at least r. A radius of
    -1 (a cross at "none") certifies nothing, not even the explanation itself.

    Args:
        certificates: what :func:`xattr.smoothing.certify`,
            :func:`~xattr.smoothing.explain_and_certify` or
            :func:`~xattr.smoothing.min_stable_fraction` return, or {name: one of
            those} to compare (e.g. several lambdas or methods; same examples).
        radius: "both" (default), "incremental" or "decremental".
        title: the figure's title.

    Returns:
        a matplotlib ``Figure`` with two axes.

    Example:
        >>> import torch
        >>> from xattr.smoothing import MuS, certify
        >>> from xattr.viz import certified_radii
        >>> h = lambda t: torch.stack([t.sum(1), torch.full_like(t[:, 0], 1.0)], 1)
        >>> g = MuS(h, 1 / 4, q=16, output="logits")
        >>> c = certify(g, torch.ones(3, 8))
        >>> c.decremental_int.tolist()
        [1, 1, 1]
        >>> fig = certified_radii(c)
        >>> fig.axes[1].get_lines()[0].get_ydata().tolist()
        [1.0, 1.0, 0.0]
    """
    if radius not in RADII:
        raise ValueError(f"radius: expected one of {RADII}, got {radius!r}")
    items = (
        {str(k): v for k, v in certificates.items()}
        if isinstance(certificates, Mapping)
        else {"": certificates}
    )
    if not items:
        raise ValueError("certificates: expected at least one certificate")
    radii = {
        k: _radius(f"certificates[{k!r}]" if k else "certificates", v, radius)
        for k, v in items.items()
    }
    sizes = {k: r.shape for k, r in radii.items()}
    if len(set(sizes.values())) != 1 or next(iter(radii.values())).ndim != 1:
        raise ValueError(f"certificates: expected the same examples [B] in each, got {sizes}")
    B = next(iter(radii.values())).shape[0]
    colors = _palette(list(radii))
    r_max = max(int(r.max()) if r.size else -1 for r in radii.values())

    fig = new_figure((10.0, 3.8))
    from matplotlib.ticker import MaxNLocator

    ax_ex, ax_frac = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    n = len(radii)
    x = np.arange(B)
    grid = np.arange(0, max(r_max, 0) + 2)  # r = 0 .. r_max + 1
    for i, (k, r) in enumerate(radii.items()):
        xs = x + (i - (n - 1) / 2) * min(0.8 / n, 0.25)
        ok = r >= 0
        ax_ex.vlines(xs[ok], 0, r[ok], color=colors[k], linewidth=1.2, alpha=0.6)
        ax_ex.plot(xs[ok], r[ok], "o", color=colors[k], ms=5, label=k or "certified")
        if (~ok).any():
            ax_ex.plot(xs[~ok], np.full((~ok).sum(), -1), "x", color=colors[k], ms=6)
        frac = (r[None, :] >= grid[:, None]).mean(1)
        ax_frac.plot(
            grid,
            frac,
            drawstyle="steps-post",
            marker="o",
            ms=4,
            color=colors[k],
            linewidth=1.8,
            label=k or None,
        )
    ax_ex.set_xlabel("example")
    ax_ex.set_ylabel("certified radius (features)")
    ax_ex.set_title(f"certified radius per example ({radius})", fontsize=11)
    if B <= 30:
        ax_ex.set_xticks(x)
    ax_ex.set_ylim(-1.5, max(r_max, 1) + 0.5)
    ax_ex.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_ex.axhline(-0.5, color="#bbb", linewidth=0.8, linestyle="--")
    ticks = [t for t in ax_ex.get_yticks() if -1 <= t <= max(r_max, 1)]
    ax_ex.set_yticks(ticks, ["none" if t == -1 else f"{int(t)}" for t in ticks])
    ax_frac.set_xlabel("radius r (features)")
    ax_frac.set_ylabel("fraction certified")
    ax_frac.set_ylim(-0.03, 1.03)
    ax_frac.set_xlim(-0.3, grid[-1] + 0.3)
    ax_frac.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_frac.set_title(f"fraction of the {B} examples certified at r", fontsize=11)
    for ax in (ax_ex, ax_frac):
        ax.grid(axis="y", color="#e4e4e4", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    if n > 1:
        ax_frac.legend(frameon=False, fontsize=9, loc="lower left")
        ax_ex.legend(frameon=False, fontsize=8, loc="lower right", ncol=min(n, 3))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
