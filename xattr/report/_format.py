"""How the report writes values and text as HTML: numbers, plain text with a little
markup, anchors. Everything that comes from the caller is escaped here."""

from __future__ import annotations

import html
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

# Fixed notation between these magnitudes, scientific outside (0 is "0").
SMALL = 1e-3
LARGE = 1e6
# Significant digits of a float in fixed notation.
DIGITS = 4


def esc(text: Any) -> str:
    """str(text) with &, <, >, " and ' escaped."""
    return html.escape(str(text), quote=True)


def scalar(value: Any) -> Any:
    """A one-element tensor or numpy value as the Python number it holds; anything
    else unchanged."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes)):
        numel = getattr(value, "numel", None)
        size = numel() if callable(numel) else getattr(value, "size", 1)
        if size == 1:
            return item()
    return value


def is_number(value: Any) -> bool:
    """A real number that is not a bool (bools read as yes / no)."""
    value = scalar(value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _decimals(x: float) -> int:
    """Decimals that show x (finite, nonzero, below LARGE) to DIGITS significant digits."""
    exponent = math.floor(math.log10(abs(x)))
    decimals = max(0, DIGITS - 1 - exponent)
    # rounding can carry into one more digit (9.99996 -> 10.000): one decimal fewer
    if decimals and math.floor(math.log10(abs(round(x, decimals)))) > exponent:
        decimals -= 1
    return decimals


def format_number(value: float, decimals: int | None = None) -> str:
    """A number as a person reads it: integers with thousands separators, floats to 4
    significant digits in fixed notation between 1e-3 and 1e6, scientific outside; with
    ``decimals``, any finite number in fixed notation with that many decimals (a table
    column's, from :func:`column_decimals`).

    >>> [format_number(v) for v in (1234567, 0.000012345, 3.14159, 12345.678, 0.0, -2.5)]
    ['1,234,567', '1.234e-05', '3.142', '12,346', '0', '-2.500']
    >>> format_number(3.14159, decimals=2), format_number(2, decimals=2)
    ('3.14', '2.00')
    """
    value = scalar(value)
    if isinstance(value, numbers.Integral) and decimals is None:
        return f"{int(value):,}"
    x = float(value)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "\u221e" if x > 0 else "\u2212\u221e"
    if decimals is not None:
        return f"{x:,.{decimals}f}"
    if x == 0:
        return "0"
    if not SMALL <= abs(x) < LARGE:
        return f"{x:.{DIGITS - 1}e}"
    return f"{x:,.{_decimals(x)}f}"


def column_decimals(values: list) -> int | None:
    """The decimals that line up a column of numbers on the decimal point, or None
    (each number on its own, by :func:`format_number`).

    A column holding a float, whose largest magnitude is within 1e-3 .. 1e6 and whose
    smallest nonzero one is at least 1/100 of it, gets the decimals that show the
    largest to 4 significant digits (so every value keeps at least 2); integer columns
    and columns spanning wider ranges get None.

    >>> column_decimals([12.3456, 3.2, 15.0]), column_decimals([834.2, 4.9])
    (2, None)
    >>> column_decimals([1, 2000]), column_decimals([0.0052, 0.00052, 0.0])
    (None, 6)
    """
    numbers_ = [scalar(v) for v in values if is_number(v)]
    if all(isinstance(v, numbers.Integral) for v in numbers_):
        return None
    sizes = [abs(float(v)) for v in numbers_ if math.isfinite(float(v)) and v != 0]
    if not sizes:
        return None
    big, small = max(sizes), min(sizes)
    if not (SMALL <= big < LARGE and small >= big / 100):
        return None
    return _decimals(big)


def format_value(value: Any, decimals: int | None = None) -> str:
    """Any table or configuration value as plain text (not yet escaped): numbers by
    :func:`format_number` (with ``decimals``), bools as yes / no, None as an en dash,
    sequences joined by commas, mappings as ``key: value`` pairs."""
    value = scalar(value)
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if is_number(value):
        return format_number(value, decimals)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):  # a tensor or array of several values
        return format_value(tolist())
    return str(value)


_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
]


def inline(text: str) -> str:
    """One line of text, escaped, with ``code``, **bold** and *italic* marked up.

    >>> inline("a <b> is **bold**, `x < 1`")
    'a &lt;b&gt; is <strong>bold</strong>, <code>x &lt; 1</code>'
    """
    out = esc(text)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def paragraphs(text: str) -> str:
    """Plain text as HTML: blank lines separate paragraphs, lines that start with
    ``- `` or ``* `` make a bullet list, ``1. `` a numbered list, and :func:`inline`
    marks up each line. Nothing else is interpreted (no raw HTML, no links).

    >>> paragraphs("First line\\nsame paragraph.\\n\\n- one\\n- **two**")
    '<p>First line same paragraph.</p>\\n<ul><li>one</li><li><strong>two</strong></li></ul>'
    """
    blocks = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if all(re.match(r"[-*] ", line) for line in lines):
            items = "".join(f"<li>{inline(line[2:])}</li>" for line in lines)
            blocks.append(f"<ul>{items}</ul>")
        elif all(re.match(r"\d+[.)] ", line) for line in lines):
            items = "".join(f"<li>{inline(line.split(' ', 1)[1])}</li>" for line in lines)
            blocks.append(f"<ol>{items}</ol>")
        else:
            blocks.append(f"<p>{inline(' '.join(lines))}</p>")
    return "\n".join(blocks)


def slug(text: str, taken: set[str]) -> str:
    """An anchor id made of the title's letters and digits, unique among ``taken``
    (which it joins).

    >>> taken = set(); slug("Timing (ms)", taken), slug("Timing (ms)", taken)
    ('timing-ms', 'timing-ms-2')
    """
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "section"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name
