"""The HTML report: a static folder (index.html and its PNG figures) that opens offline.

:class:`Report` collects text, tables, figures, HTML snippets and MuS certificates in
the order they are added and :meth:`Report.write` writes them as one page with a table
of contents, the configuration used and the versions that made it. Everything taken
from the caller is escaped except :meth:`Report.add_html`'s snippet, which is checked
for references to the network instead. The page has no JavaScript and no files other
than its figures, linked by relative paths, so the folder can be zipped, mailed or
served as it is.
"""

from __future__ import annotations

import io
import os
import platform
import re
import struct
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, NamedTuple, Union

from xattr.report._format import (
    column_decimals,
    esc,
    format_value,
    inline,
    is_number,
    paragraphs,
    scalar,
    slug,
)
from xattr.report._style import CSS

__all__ = ["Report"]

PathLike = Union[str, "os.PathLike[str]"]
Format = Union[str, Callable[[Any], str]]

INDEX = "index.html"
FIGURES = "figures"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# the names write() gives figures: the only files it removes from FIGURES
FIGURE_NAME = re.compile(r"fig-\d{2,}-[a-z0-9-]+\.png")
DEFAULT_DPI = 150
# A snippet must not load anything: no absolute or protocol-relative URLs (data: URIs,
# which hold their content, are fine) in src / href / CSS url(), no <script src>, no
# <link>, no @import.
_URL = r"""["']?\s*(?:(?!data:)[a-z][a-z0-9+.-]*:|//)"""
_NETWORK = re.compile(
    rf"""\b(?:src|href|srcset|poster|data|action)\s*=\s*{_URL}|url\(\s*{_URL}"""
    r"""|<\s*script\b[^>]*\bsrc\s*=|<\s*link\b|@import""",
    re.IGNORECASE,
)


class _Block(NamedTuple):
    level: int  # 2: a section or an item outside sections, 3: an item inside a section
    title: str | None
    anchor: str | None
    body: str


def _title(title: Any, name: str = "title") -> str:
    if not isinstance(title, str):
        raise TypeError(f"{name}: expected a string, got {type(title).__name__}")
    if not title.strip():
        raise ValueError(f"{name}: expected a non-empty string")
    return title.strip()


def _optional_text(text: Any, name: str) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"{name}: expected a string or None, got {type(text).__name__}")
    return text


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _config_html(config: Mapping) -> str:
    items = []
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            shown = _config_html(value)
        else:
            shown = esc(format_value(value))
        items.append(f"<dt>{esc(key)}</dt><dd>{shown}</dd>")
    return f'<dl class="config">{"".join(items)}</dl>'


def _versions() -> str:
    import torch

    import xattr

    return (
        f"xattr {esc(xattr.__version__)} \u00b7 torch {esc(torch.__version__)} \u00b7 "
        f"Python {esc(platform.python_version())}"
    )


class Report:
    """An HTML report, built in the order things are added, written as a static folder.

    Args:
        title: the page's title (plain text, escaped).
        config: the configuration that produced the results (a mapping of names to
            values; nested mappings are shown nested), listed at the end of the page
            under "Configuration"; ``report.config`` can still be changed before
            :meth:`write`. Default none.

    Items added before the first :meth:`add_section` are top-level headings; after it,
    they are sub-headings of the latest section. Every heading is in the table of
    contents. Tables and figures are numbered in the order they are added.

    Example:
        >>> import tempfile
        >>> report = Report("KernelShap on MNIST", config={"method": "kernelshap", "seed": 0})
        >>> report.add_text("Attributions of **5** digits, *200* samples each.")
        >>> report.add_table("Timing", [{"method": "xattr", "ms": 12.5},
        ...                             {"method": "captum", "ms": 84.0}],
        ...                  highlight={"ms": "min"})
        >>> with tempfile.TemporaryDirectory() as out:
        ...     path = report.write(out)
        ...     print(path.name, "<td class=\\"num best\\">12.50</td>" in path.read_text())
        index.html True
    """

    def __init__(self, title: str, config: Mapping[str, Any] | None = None) -> None:
        self.title = _title(title)
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(
                f"config: expected a mapping (dict) or None, got {type(config).__name__}"
            )
        self.config: dict[str, Any] = dict(config or {})
        self._blocks: list[_Block] = []
        self._anchors: set[str] = {"contents", "configuration"}
        self._in_section = False
        self._figures: list[tuple[str, bytes]] = []
        self._tables = 0

    # ------------------------------------------------------------------ structure
    def _add(self, title: str | None, body: str, section: bool = False) -> str:
        anchor = slug(title, self._anchors) if title is not None else None
        level = 2 if section or not self._in_section else 3
        self._blocks.append(_Block(level, title, anchor, body))
        return anchor or ""

    def add_section(self, title: str, text: str | None = None) -> None:
        """Start a section: a top-level heading; what is added next goes under it.

        Args:
            title: the heading (plain text).
            text: an optional introduction, read as by :meth:`add_text`.
        """
        title = _title(title)
        text = _optional_text(text, "text")
        self._add(title, paragraphs(text) if text else "", section=True)
        self._in_section = True

    def add_text(self, text: str) -> None:
        """Add text, escaped: blank lines separate paragraphs; lines starting with ``- ``
        make a bullet list and ``1. `` a numbered one; ``**bold**``, ``*italic*`` and
        ```code``` are marked up. Nothing else is interpreted (no raw HTML, no links).

        Args:
            text: the text (plain or with the markup above).
        """
        if not isinstance(text, str):
            raise TypeError(f"text: expected a string, got {type(text).__name__}")
        self._add(None, paragraphs(text))

    # ------------------------------------------------------------------ tables
    def add_table(
        self,
        title: str,
        rows: Any,
        columns: Sequence[str] | None = None,
        caption: str | None = None,
        highlight: Mapping[str, str] | None = None,
        formats: Mapping[str, Format] | None = None,
    ) -> None:
        """Add a table.

        Numbers are right-aligned and written by
        :func:`~xattr.report.format_number` (thousands separators, 4 significant
        digits, scientific below 1e-3 and from 1e6); a column of floats of similar
        sizes shows them all with the same decimals, lined up on the point. Bools read
        yes / no, None a dash; one-element tensors and numpy values are numbers.

        Args:
            title: the heading above the table.
            rows: a list of mappings (column name -> value), one per row; or a list of
                sequences in the order of ``columns``; or anything with pandas'
                ``to_dict("records")``.
            columns: the columns, in order. Default: the keys of the first row, then
                any new keys of later rows in order. Every row must have every column
                (keys beyond ``columns`` are left out).
            caption: text under the table (as :meth:`add_text`'s inline markup).
            highlight: column -> ``"min"`` or ``"max"``: marks the best value of a
                numeric column (every row that reaches it), e.g. the fastest time.
            formats: column -> a format spec (``".2%"``) or a function of the value
                returning text, used instead of the default for that column.

        Raises:
            ValueError: a row lacks a column, a sequence row has the wrong length,
                duplicate or unknown columns in ``columns`` / ``highlight`` /
                ``formats``, or a highlighted column that is not numeric.
        """
        title = _title(title)
        caption = _optional_text(caption, "caption")
        cols, table = self._rows(rows, columns)
        highlight = dict(highlight or {})
        formats = dict(formats or {})
        for name, given in (("highlight", highlight), ("formats", formats)):
            unknown = [c for c in given if c not in cols]
            if unknown:
                raise ValueError(f"{name}: unknown column(s) {unknown}; the columns are {cols}")
        numeric = {
            c: any(v is not None for v in col) and all(v is None or is_number(v) for v in col)
            for c, col in ((c, [row[c] for row in table]) for c in cols)
        }
        best: dict[str, float] = {}
        for c, how in highlight.items():
            if how not in ("min", "max"):
                raise ValueError(f"highlight[{c!r}]: expected 'min' or 'max', got {how!r}")
            if not numeric[c]:
                raise ValueError(f"highlight[{c!r}]: column {c!r} is not numeric")
            finite = [_num(row[c]) for row in table if row[c] is not None]
            finite = [v for v in finite if v == v]  # NaN is never the best
            if finite:
                best[c] = min(finite) if how == "min" else max(finite)
        for c, fmt in formats.items():
            if not (isinstance(fmt, str) or callable(fmt)):
                raise TypeError(f"formats[{c!r}]: expected a format spec or a function")

        decimals = {c: column_decimals([row[c] for row in table]) for c in cols}

        def cell(c: str, value: Any) -> str:
            fmt = formats.get(c)
            if fmt is None or value is None:
                text = format_value(value, decimals[c])
            elif isinstance(fmt, str):
                text = format(_num(value) if is_number(value) else value, fmt)
            else:
                text = str(fmt(value))
            classes = ["num"] if numeric[c] else []
            if c in best and value is not None and _num(value) == best[c]:
                classes.append("best")
            cls = f' class="{" ".join(classes)}"' if classes else ""
            return f"<td{cls}>{esc(text)}</td>"

        head = "".join(
            f'<th scope="col"{" class=num" if numeric[c] else ""}>{esc(c)}</th>' for c in cols
        )
        body = "\n".join("<tr>" + "".join(cell(c, row[c]) for c in cols) + "</tr>" for row in table)
        if not table:
            body = f'<tr><td colspan="{len(cols)}">(no rows)</td></tr>'
        self._tables += 1
        html = (
            f'<div class="table-wrap"><table>\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody></table></div>"
        )
        if caption:
            html += f'\n<p class="caption"><b>Table {self._tables}.</b> {inline(caption)}</p>'
        self._add(title, html)

    @staticmethod
    def _rows(rows: Any, columns: Sequence[str] | None) -> tuple[list[str], list[dict]]:
        """(columns, rows as dicts holding exactly those columns)."""
        to_dict = getattr(rows, "to_dict", None)
        if callable(to_dict) and not isinstance(rows, Mapping):
            if columns is None:
                columns = [str(c) for c in getattr(rows, "columns", [])] or None
            rows = to_dict("records")
        if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
            raise TypeError(
                f"rows: expected a list of rows (dicts, or sequences with columns=), "
                f"got {type(rows).__name__}"
            )
        if columns is not None:
            if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
                raise TypeError("columns: expected a list of strings")
            cols = list(columns)
            if len(set(cols)) != len(cols):
                raise ValueError(f"columns: duplicate names in {cols}")
        else:
            cols = []
            for i, row in enumerate(rows):
                if not isinstance(row, Mapping):
                    raise TypeError(
                        f"rows[{i}]: expected a dict (column -> value), got "
                        f"{type(row).__name__}; give columns= for rows that are sequences"
                    )
                cols += [str(k) for k in row if str(k) not in cols]
            if not cols:
                raise ValueError("rows: no rows and no columns; give columns= for an empty table")
        out = []
        for i, row in enumerate(rows):
            if isinstance(row, Mapping):
                named = {str(k): v for k, v in row.items()}
                missing = [c for c in cols if c not in named]
                if missing:
                    raise ValueError(
                        f"rows[{i}]: missing column(s) {missing}; every row needs {cols}"
                    )
                out.append({c: named[c] for c in cols})
            elif isinstance(row, Sequence) and not isinstance(row, (str, bytes)):
                if len(row) != len(cols):
                    raise ValueError(f"rows[{i}]: {len(row)} values for {len(cols)} columns {cols}")
                out.append(dict(zip(cols, row)))
            else:
                raise TypeError(
                    f"rows[{i}]: expected a dict or a sequence, got {type(row).__name__}"
                )
        return cols, out

    # ------------------------------------------------------------------ figures
    def add_figure(
        self,
        title: str,
        figure: Any,
        caption: str | None = None,
        dpi: int = DEFAULT_DPI,
        alt: str | None = None,
    ) -> None:
        """Add a figure: a matplotlib Figure (saved now, as a PNG at ``dpi``, so the
        figure can be closed or changed afterwards) or the path of an existing PNG
        (read now, copied by :meth:`write`).

        Args:
            title: the heading above the figure.
            figure: a ``matplotlib.figure.Figure`` or a path to a ``.png`` file.
            caption: text under the figure (as :meth:`add_text`'s inline markup).
            dpi: resolution of a saved Figure (default 150); the page shows it at its
                size in inches, sharp on high-density screens. Ignored for a PNG file.
            alt: the image's alternative text; default the title.

        Raises:
            FileNotFoundError: the path does not exist or is not a file.
            ValueError: the file is not a PNG.
            TypeError: neither a Figure nor a path.
        """
        title = _title(title)
        caption = _optional_text(caption, "caption")
        alt = _optional_text(alt, "alt")
        if isinstance(figure, (str, os.PathLike)):
            path = Path(figure)
            if not path.is_file():
                raise FileNotFoundError(f"figure: {str(path)!r} does not exist or is not a file")
            data = path.read_bytes()
            if not data.startswith(PNG_SIGNATURE):
                raise ValueError(f"figure: {str(path)!r} is not a PNG file")
            width, height = _png_size(data)
        elif callable(getattr(figure, "savefig", None)):
            if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi <= 0:
                raise ValueError(f"dpi: expected a positive integer, got {dpi!r}")
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
            data = buffer.getvalue()
            # shown at its size in inches (96 CSS pixels an inch)
            width, height = (round(n * 96 / dpi) for n in _png_size(data))
        else:
            raise TypeError(
                f"figure: expected a matplotlib Figure or the path of a PNG file, got "
                f"{type(figure).__name__}"
            )
        n = len(self._figures) + 1
        name = f"{FIGURES}/fig-{n:02d}-{slug(title, set())[:40].strip('-') or 'figure'}.png"
        self._figures.append((name, data))
        html = (
            f'<figure><img src="{esc(name)}" alt="{esc(alt or title)}" width="{width}" '
            f'height="{height}" loading="lazy">'
        )
        if caption:
            html += f"<figcaption><b>Figure {n}.</b> {inline(caption)}</figcaption>"
        self._add(title, html + "</figure>")

    # ------------------------------------------------------------------ HTML and certificates
    def add_html(self, title: str, html_snippet: str, caption: str | None = None) -> None:
        """Add an HTML snippet made elsewhere (e.g. text coloured by attribution),
        inserted as it is. It must not load anything: absolute or protocol-relative
        URLs in ``src`` / ``href`` / ``url()`` (``data:`` URIs are fine), ``<script
        src>``, ``<link>`` and ``@import`` are refused, so that the page opens offline.

        Args:
            title: the heading above the snippet (plain text, escaped).
            html_snippet: the HTML.
            caption: text under it (as :meth:`add_text`'s inline markup).

        Raises:
            ValueError: the snippet refers to a URL or loads a script or stylesheet.
        """
        title = _title(title)
        caption = _optional_text(caption, "caption")
        if not isinstance(html_snippet, str):
            raise TypeError(f"html_snippet: expected a string, got {type(html_snippet).__name__}")
        found = _NETWORK.search(html_snippet)
        if found:
            raise ValueError(
                f"html_snippet: refers to something outside the report ({found.group(0)!r}); "
                "the report must open offline"
            )
        html = f'<div class="snippet">{html_snippet}</div>'
        if caption:
            html += f'\n<p class="caption">{inline(caption)}</p>'
        self._add(title, html)

    def add_certificates(
        self,
        title: str,
        certificates: Any,
        names: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        radius: int | None = None,
        caption: str | None = None,
    ) -> None:
        """Add a table of MuS certificates, one row per example.

        Args:
            title: the heading above the table.
            certificates: what :func:`xattr.smoothing.certify` (a ``Certificate``),
                :func:`~xattr.smoothing.explain_and_certify` (an
                ``ExplainedCertificate``: adds the number of features kept) or
                :func:`~xattr.smoothing.min_stable_fraction` (a ``MinStable``: adds k
                and k / d) returns, for B examples.
            names: B example names; default 0, 1, ...
            class_names: names of the classes, indexed by label; default the label.
            radius: with a radius r, a column says whether each explanation is stable
                at r (consistent and both certified radii >= r).
            caption: text under the table; default an explanation of the columns.

        The columns: the prediction g(x, 1); whether the explanation keeps it
        (consistent); the margins p_A - p_B with the explanation's features and with
        all of them; the certified numbers of features that can be added to the
        explanation and removed from the full input without changing the label.
        """
        cert = getattr(certificates, "certificate", certificates)
        fields = ("label", "full_label", "gap", "full_gap", "consistent")
        fields += ("incremental_int", "decremental_int")
        if not all(hasattr(cert, f) for f in fields):
            raise TypeError(
                "certificates: expected a Certificate, ExplainedCertificate or MinStable of "
                f"xattr.smoothing, got {type(certificates).__name__}"
            )
        values = {f: _listed(getattr(cert, f), f) for f in fields}
        b = len(values["label"])
        if any(len(v) != b for v in values.values()):
            raise ValueError("certificates: the fields have different numbers of examples")
        if names is not None and (isinstance(names, str) or len(names) != b):
            raise ValueError(f"names: expected {b} names (one per example)")
        if radius is not None and (isinstance(radius, bool) or not isinstance(radius, int)):
            raise TypeError(f"radius: expected an integer or None, got {type(radius).__name__}")

        def label(i: int) -> Any:
            if class_names is None:
                return int(i)
            if not 0 <= i < len(class_names):
                raise ValueError(f"class_names: no name for class {i} ({len(class_names)} given)")
            return class_names[i]

        extra: dict[str, list] = {}
        if hasattr(certificates, "k") and hasattr(certificates, "fraction"):
            extra["features kept (k)"] = _listed(certificates.k, "k")
            extra["k / d"] = _listed(certificates.fraction, "fraction")
        elif hasattr(certificates, "alpha"):
            alpha = certificates.alpha
            extra["features kept"] = _listed(alpha.sum(-1), "alpha")
        rows = []
        for i in range(b):
            row: dict[str, Any] = {"example": names[i] if names is not None else i}
            row["prediction"] = label(values["full_label"][i])
            row.update({k: v[i] for k, v in extra.items()})
            row["consistent"] = bool(values["consistent"][i])
            row["margin (explanation)"] = values["gap"][i]
            row["margin (full input)"] = values["full_gap"][i]
            row["certified additions"] = values["incremental_int"][i]
            row["certified removals"] = values["decremental_int"][i]
            if radius is not None:
                row[f"stable (r = {radius})"] = bool(
                    values["consistent"][i]
                    and values["incremental_int"][i] >= radius
                    and values["decremental_int"][i] >= radius
                )
            rows.append(row)
        if caption is None:
            caption = (
                "Margin: p_A - p_B of the smoothed model. *Consistent*: the explanation's "
                "features alone give the full input's prediction. *Certified additions / "
                "removals*: how many features can be added to the explanation, or removed "
                "from the full input, with the prediction certified not to change."
            )
        self.add_table(title, rows, caption=caption)

    # ------------------------------------------------------------------ writing
    def to_html(self) -> str:
        """The page as a string (the figures are referenced as ``figures/...png``, the
        files :meth:`write` writes next to it)."""
        toc: list[str] = []
        open_sub = False
        for block in self._blocks:
            if block.title is None:
                continue
            link = f'<a href="#{block.anchor}">{esc(block.title)}</a>'
            if block.level == 3:
                if not open_sub:
                    toc[-1] = toc[-1].removesuffix("</li>") + "<ol>"
                    open_sub = True
                toc.append(f"<li>{link}</li>")
            else:
                if open_sub:
                    toc.append("</ol></li>")
                    open_sub = False
                toc.append(f"<li>{link}</li>")
        if open_sub:
            toc.append("</ol></li>")
        parts = []
        for block in self._blocks:
            if block.title is not None:
                h = f"h{block.level}"
                parts.append(f'<{h} id="{block.anchor}">{esc(block.title)}</{h}>')
            if block.body:
                parts.append(block.body)
        if self.config:
            toc.append('<li><a href="#configuration">Configuration</a></li>')
            parts.append('<h2 id="configuration">Configuration</h2>')
            parts.append(_config_html(self.config))
        nav = ""
        if toc:
            # a long table of contents (the demo's) in two columns
            long = " long" if sum(b.title is not None for b in self._blocks) > 12 else ""
            nav = (
                f'<nav class="toc{long}" aria-labelledby="contents"><h2 id="contents">Contents</h2>'
                f"<ol>{''.join(toc)}</ol></nav>"
            )
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        content = "\n".join(parts)
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="xattr.report">
<title>{esc(self.title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header>
<h1>{esc(self.title)}</h1>
<p class="generated">Generated {now} by {_versions()}</p>
</header>
{nav}
{content}
</main>
</body>
</html>
"""

    def write(self, out_dir: PathLike) -> Path:
        """Write the report into the folder ``out_dir`` (created if missing) and return
        the path of its ``index.html``.

        Writes ``index.html`` and ``figures/fig-NN-<title>.png``. Writing again into the
        same folder replaces both: figure files of an earlier report that this one
        does not have are removed (only files named as this method names them; nothing
        else in the folder is touched).

        Raises:
            NotADirectoryError: ``out_dir`` (or a parent) is a file, or
                ``out_dir/figures`` is.
        """
        if not isinstance(out_dir, (str, os.PathLike)):
            raise TypeError(f"out_dir: expected a folder path, got {type(out_dir).__name__}")
        out = Path(out_dir)
        for parent in (out, *out.parents):
            if parent.exists() and not parent.is_dir():
                raise NotADirectoryError(
                    f"out_dir: {str(parent)!r} is a file; the report is written into a folder"
                )
        figures = out / FIGURES
        if figures.exists() and not figures.is_dir():
            raise NotADirectoryError(f"out_dir: {str(figures)!r} is a file, expected a folder")
        page = self.to_html()
        out.mkdir(parents=True, exist_ok=True)
        names = {Path(name).name for name, _ in self._figures}
        if figures.is_dir():
            for old in figures.iterdir():
                if FIGURE_NAME.fullmatch(old.name) and old.name not in names and old.is_file():
                    old.unlink()
        if self._figures:
            figures.mkdir(exist_ok=True)
        for name, data in self._figures:
            (out / name).write_bytes(data)
        if figures.is_dir() and not any(figures.iterdir()):
            figures.rmdir()
        index = out / INDEX
        partial = out / (INDEX + ".partial")
        partial.write_text(page, encoding="utf-8")
        os.replace(partial, index)
        return index.resolve()


def _num(value: Any) -> float:
    return float(scalar(value))


def _listed(value: Any, name: str) -> list:
    """A [B] tensor, array or sequence as a list."""
    tolist = getattr(value, "tolist", None)
    listed = tolist() if callable(tolist) else value
    if not isinstance(listed, list):
        raise TypeError(f"certificates: field {name!r} is not a [B] tensor or list")
    return listed
