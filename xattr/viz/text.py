"""Tokens coloured by their attributions, as a self-contained HTML snippet."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from xattr.viz._common import NEGATIVE_RGB, POSITIVE_RGB, to_numpy

__all__ = ["text_html"]


def _css_rgb(rgb: tuple[float, float, float], alpha: float) -> str:
    r, g, b = (round(255 * c) for c in rgb)
    return f"rgba({r}, {g}, {b}, {alpha:.3f})"


def _text_color(alpha: float) -> str:
    """Dark text on light backgrounds, white on strong ones."""
    return "#fff" if alpha > 0.6 else "#111"


def text_html(
    tokens: Sequence[str],
    attributions: Any,
    *,
    vmax: float | None = None,
    title: str | None = None,
    legend: bool = True,
    separator: str = " ",
    precision: int = 3,
) -> str:
    """Tokens highlighted by attribution: red for positive, blue for negative, the
    colour's strength proportional to |value| / ``vmax``.

    The result is an HTML ``<div>`` with inline styles only (no script, no external
    CSS), so it can be pasted into a report or shown in a notebook
    (``IPython.display.HTML(text_html(...))``). Token text is HTML-escaped; every token
    carries its value as a tooltip (``title``).

    Args:
        tokens: the T tokens (strings).
        attributions: [T] (or [1, T]) values, a tensor or array.
        vmax: the |value| that gets the full colour (default: the largest |value| of
            this snippet); give the same value to several snippets to compare them.
        title: a heading above the tokens (escaped), e.g. the method's name.
        legend: a colour scale below the tokens, -vmax .. 0 .. +vmax (default True).
        separator: what goes between tokens (default a space; "" for subword pieces
            that carry their own spaces).
        precision: significant digits of the values in tooltips and the legend.

    Returns:
        the HTML snippet (a string).

    Example:
        >>> import torch
        >>> from xattr.viz import text_html
        >>> s = text_html(["a", "<great>", "film"], torch.tensor([0.0, 2.0, -1.0]))
        >>> "&lt;great&gt;" in s, "<script" in s
        (True, False)
    """
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"tokens: expected a list of strings, got {type(tokens).__name__}")
    if not all(isinstance(t, str) for t in tokens):
        raise TypeError("tokens: expected a list of strings")
    a = to_numpy(attributions, "attributions")
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 1 or a.shape[0] != len(tokens):
        raise ValueError(
            f"attributions: expected [T] or [1, T] values with T = {len(tokens)} tokens, "
            f"got shape {a.shape}"
        )
    if not np.all(np.isfinite(a)):
        raise ValueError("attributions: contains NaN or Inf")
    if vmax is None:
        vmax = float(np.abs(a).max()) if a.size else 0.0
        vmax = vmax if vmax > 0 else 1.0
    elif not (np.isfinite(vmax) and vmax > 0):
        raise ValueError(f"vmax: expected a positive number, got {vmax}")

    def fmt(v: float) -> str:
        return f"{v:.{precision}g}"

    spans = []
    for tok, v in zip(tokens, a.tolist()):
        alpha = min(abs(v) / vmax, 1.0)
        color = POSITIVE_RGB if v >= 0 else NEGATIVE_RGB
        style = (
            f"background-color: {_css_rgb(color, alpha)}; color: {_text_color(alpha)}; "
            "padding: 1px 3px; margin: 1px 0; border-radius: 3px; line-height: 1.9; "
            "white-space: pre-wrap"
        )
        spans.append(
            f'<span style="{style}" title="{html.escape(fmt(v))}">{html.escape(tok)}</span>'
        )
    parts = [
        '<div style="font-family: system-ui, -apple-system, Segoe UI, sans-serif; '
        'font-size: 15px; max-width: 60em; margin: 0.5em 0">'
    ]
    if title is not None:
        parts.append(
            f'<div style="font-weight: 600; margin-bottom: 0.3em">{html.escape(title)}</div>'
        )
    parts.append(f"<div>{html.escape(separator).join(spans)}</div>")
    if legend:
        stops = ", ".join(
            [_css_rgb(NEGATIVE_RGB, 1.0), "rgba(255, 255, 255, 1.000)", _css_rgb(POSITIVE_RGB, 1.0)]
        )
        parts.append(
            '<div style="display: flex; align-items: center; gap: 0.5em; font-size: 12px; '
            'color: #444; margin-top: 0.5em">'
            f"<span>{html.escape(fmt(-vmax))}</span>"
            f'<span style="display: inline-block; width: 12em; height: 0.8em; '
            f'border: 1px solid #ccc; background: linear-gradient(to right, {stops})"></span>'
            f"<span>{html.escape(fmt(vmax))}</span>"
            "<span>(blue: against, red: for the output)</span></div>"
        )
    parts.append("</div>")
    return "".join(parts)
