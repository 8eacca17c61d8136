"""xattr: fast, exact feature attribution for PyTorch on C++/CUDA kernels.

``from xattr import KernelShap`` replaces ``from captum.attr import KernelShap``
(the same names, arguments and answers); the kernels are reached through
:mod:`xattr.ops`. MuS smoothing, robustness bounds, counterfactual baselines and
amortized explanations build on both.
"""

import torch  # noqa: F401  (before _C: the kernels share torch's OpenMP runtime)

from xattr import baselines, explainers, metrics, ops, smoothing
from xattr._core.budget import get_memory_budget, set_memory_budget
from xattr._ext import cuda_available, kernels_available
from xattr.explainers import (
    Banzhaf,
    BaselineRemoval,
    ConditionalRemoval,
    ExactShapley,
    FeatureAblation,
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    KernelShap,
    LayerIntegratedGradients,
    Lime,
    LinearSurrogate,
    MarginalRemoval,
    NoiseTunnel,
    Occlusion,
    Saliency,
    ShapleyIntegratedGradients,
    ShapleyValues,
    ShapleyValueSampling,
)

__version__ = "0.1.0"

__all__ = [
    "Banzhaf",
    "BaselineRemoval",
    "ConditionalRemoval",
    "ExactShapley",
    "ShapleyValues",
    "FeatureAblation",
    "GradientShap",
    "InputXGradient",
    "IntegratedGradients",
    "KernelShap",
    "LayerIntegratedGradients",
    "Lime",
    "LinearSurrogate",
    "MarginalRemoval",
    "NoiseTunnel",
    "Occlusion",
    "Saliency",
    "ShapleyIntegratedGradients",
    "ShapleyValueSampling",
    "baselines",
    "explainers",
    "metrics",
    "ops",
    "smoothing",
    "cuda_available",
    "kernels_available",
    "get_memory_budget",
    "set_memory_budget",
    "__version__",
]
