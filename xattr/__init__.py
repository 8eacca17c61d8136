"""xattr: fast, exact feature attribution for PyTorch on C++/CUDA kernels.

``from xattr import KernelShap`` replaces ``from captum.attr import KernelShap``
(the same names, arguments and answers); the kernels are reached through
:mod:`xattr.ops`. MuS smoothing, robustness bounds, counterfactual baselines and
amortized explanations build on both.
"""

import torch  # noqa: F401  (before _C: the kernels share torch's OpenMP runtime)

from xattr import amortized, baselines, explainers, metrics, ops, smoothing
from xattr._core.attribution import LayerAttribution
from xattr._core.budget import get_memory_budget, set_memory_budget
from xattr._ext import cuda_available, kernels_available
from xattr.explainers import *  # noqa: F403  (every explainer, the removals, the registry)


def _installed_version() -> str:
    """The version, written once in pyproject.toml, as the installed metadata holds it."""
    from importlib import metadata

    try:
        return metadata.version("torch-xattr")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__ = _installed_version()

__all__ = [
    "amortized",
    "baselines",
    "explainers",
    "metrics",
    "ops",
    "smoothing",
    "cuda_available",
    "kernels_available",
    "get_memory_budget",
    "set_memory_budget",
    "LayerAttribution",
    "__version__",
]
__all__ += explainers.__all__
