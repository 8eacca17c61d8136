"""Fixtures shared by the test files.

The plain helpers behind them (seeded generators and inputs, the small MLP and CNN,
the tolerances) are in ``tests/_helpers.py``, so that module-level test data can use
them too; the root ``conftest.py`` seeds torch before every test and names the
doctests' globals.
"""

from __future__ import annotations

import pytest
import torch

from tests._helpers import F32, F64, TOL


@pytest.fixture(params=[F32, F64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    """Each floating dtype that explainers and metrics compute in."""
    return request.param


@pytest.fixture
def tol(dtype: torch.dtype) -> float:
    """The absolute tolerance (rtol 0) of results exact in exact arithmetic, in ``dtype``."""
    return TOL[dtype]
