"""Seeded random inputs shared by the test files (each draw has its own generator,
so a test's data do not depend on what ran before it), and the explainers by kind."""

from __future__ import annotations

import torch
from torch import nn

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


# ------------------------------------------------------------------ shared by the test files
F32 = torch.float32
# Absolute tolerances (rtol 0) for results that are exact in exact arithmetic: what
# rounding leaves over the small models and inputs of the tests, per dtype.
TOL = {F32: 1e-5, F64: 1e-12}
EXACT = {"rtol": 0.0, "atol": TOL[F64]}  # float64, for torch.testing.assert_close(..., **EXACT)


def mlp(
    d_in: int, hidden: int, d_out: int, *, dtype=F64, seed: int = 0, flatten: bool = False
) -> nn.Module:
    """Linear -> Tanh -> Linear in eval mode (after a Flatten with ``flatten``), weights
    drawn after ``torch.manual_seed(seed)``: smooth, so gradients and paths converge."""
    torch.manual_seed(seed)
    layers = [nn.Flatten()] if flatten else []
    layers += [nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out)]
    return nn.Sequential(*layers).to(dtype).eval()


def cnn(
    c_in: int,
    channels: int,
    size: int,
    d_out: int,
    *,
    activation: type[nn.Module] = nn.ReLU,
    padding: int = 0,
    pool: int = 1,
    dtype=F32,
    seed: int = 0,
) -> nn.Module:
    """Conv2d(3 x 3) -> activation [-> MaxPool2d(pool)] -> Flatten -> Linear on
    [B, c_in, size, size] images, eval mode, weights after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    side = (size + 2 * padding - 2) // pool
    layers = [nn.Conv2d(c_in, channels, 3, padding=padding), activation()]
    layers += [nn.MaxPool2d(pool)] if pool > 1 else []
    layers += [nn.Flatten(), nn.Linear(channels * side * side, d_out)]
    return nn.Sequential(*layers).to(dtype).eval()
