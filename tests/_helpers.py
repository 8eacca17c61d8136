"""Seeded random inputs shared by the test files (each draw has its own generator,
so a test's data do not depend on what ran before it), and the explainers by kind."""

from __future__ import annotations

import torch

F64 = torch.float64

# The explainers that take the model alone (no layer, no wrapped explainer), by kind.
PERTURBATION_EXPLAINERS = [
    "FeatureAblation",
    "Occlusion",
    "KernelShap",
    "Lime",
    "ShapleyValueSampling",
    "ShapleyValues",
    "Banzhaf",
    "ExactShapley",
]
GRADIENT_EXPLAINERS = [
    "Saliency",
    "InputXGradient",
    "IntegratedGradients",
    "GradientShap",
    "ShapleyIntegratedGradients",
]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, dtype=F64, seed=0) -> torch.Tensor:
    return torch.randn(shape, generator=gen(seed), dtype=F64).to(dtype)


def rand_masks(*shape, seed=0) -> torch.Tensor:
    return torch.rand(shape, generator=gen(seed)) < 0.5
