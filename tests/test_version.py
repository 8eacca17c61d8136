"""The version is written once, in pyproject.toml; the package reads it from the
installed metadata (importlib.metadata), so the two cannot disagree."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import xattr

ROOT = Path(__file__).resolve().parents[1]


def pyproject_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    project = text[text.index("[project]") :]
    return re.search(r'^version = "([^"]+)"', project, re.M).group(1)


def test_version_comes_from_the_metadata() -> None:
    assert xattr.__version__ == importlib.metadata.version("torch-xattr") == pyproject_version()


def test_no_version_literal_in_the_package() -> None:
    assigned = re.compile(r"""^__version__\s*=\s*["']""", re.M)
    sources = Path(xattr.__file__).parent.rglob("*.py")
    assert [str(p) for p in sources if assigned.search(p.read_text())] == []
