"""Seeded random inputs shared by the test files (each draw has its own generator,
so a test's data do not depend on what ran before it), and the explainers by kind."""

from __future__ import annotations

import torch

from xattr.explainers import explainer_names

F64 = torch.float64

# The explainers that take the model alone (no layer, no wrapped explainer), by kind,
# from the registry (xattr.EXPLAINERS).
PERTURBATION_EXPLAINERS = explainer_names("perturbation", standalone=True)
GRADIENT_EXPLAINERS = explainer_names("gradient", standalone=True)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, dtype=F64, seed=0) -> torch.Tensor:
    return torch.randn(shape, generator=gen(seed), dtype=F64).to(dtype)


def rand_masks(*shape, seed=0) -> torch.Tensor:
    return torch.rand(shape, generator=gen(seed)) < 0.5
