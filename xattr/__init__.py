"""xattr: fast, exact feature attribution for PyTorch on C++/CUDA kernels.

The kernel library is reached through :mod:`xattr.ops`; explainers, MuS
smoothing, robustness bounds, counterfactual baselines and amortized
explanations build on it.
"""

import torch  # noqa: F401  (before _C: the kernels share torch's OpenMP runtime)

from xattr import ops
from xattr._budget import get_memory_budget, set_memory_budget
from xattr._ext import cuda_available, kernels_available

__version__ = "0.1.0"

__all__ = [
    "ops",
    "cuda_available",
    "kernels_available",
    "get_memory_budget",
    "set_memory_budget",
    "__version__",
]
