"""Shared pytest setup: names for the docstring examples, and seeding."""

import pytest
import torch

import xattr
import xattr.ops


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace["torch"] = torch
    doctest_namespace["xattr"] = xattr
    for name in xattr.ops.__all__:
        doctest_namespace[name] = getattr(xattr.ops, name)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
