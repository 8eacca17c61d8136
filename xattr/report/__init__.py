"""The HTML report that ``xattr demo`` and the command line write.

:class:`Report` builds one static page (``index.html`` with inline CSS, its figures as
PNG files beside it, no JavaScript, relative links only) from text, tables, figures,
HTML snippets and MuS certificates; :func:`format_number` is how its tables write
numbers. matplotlib is not imported here: :meth:`Report.add_figure` takes figures made
elsewhere (e.g. by :mod:`xattr.viz`) or PNG files.

Example:
    >>> import tempfile
    >>> from xattr.report import Report
    >>> report = Report("Demo", config={"seed": 0})
    >>> report.add_section("Results", "Five digits, **six** methods.")
    >>> report.add_table("Timing", [{"method": "KernelShap", "time (ms)": 41.27}])
    >>> with tempfile.TemporaryDirectory() as out:
    ...     report.write(out).name
    'index.html'
"""

from __future__ import annotations

from xattr.report._format import format_number
from xattr.report.builder import Report

__all__ = ["Report", "format_number"]
