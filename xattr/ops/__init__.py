"""Torch-facing ops over xattr's C++/CUDA kernels.

Every op is a ``torch.library`` custom op (``torch.ops.xattr.*``) with CPU
and CUDA implementations that call the kernels, a fake implementation for
``torch.compile``, autograd where the op is differentiable, and a pure-torch
reference in :mod:`xattr.ops._reference` that the tests compare against.
"""

from xattr.ops.coalition import (
    banzhaf_msr,
    exact_banzhaf,
    exact_shapley,
    kernel_shap_solve,
    linear_fit,
    pack_masks,
    permutation_accumulate,
    unique_coalitions,
    unpack_masks,
)
from xattr.ops.masking import mask_apply, mask_apply_sampled
from xattr.ops.path import path_integrate, path_points, quadrature
from xattr.ops.rules import rescale_multiplier
from xattr.ops.sampling import (
    bernoulli_masks,
    enumerate_coalitions,
    mus_noise,
    permutations,
    shapley_kernel_masks,
    stratified_masks,
    subset_masks,
)

__all__ = [
    "banzhaf_msr",
    "bernoulli_masks",
    "enumerate_coalitions",
    "exact_banzhaf",
    "exact_shapley",
    "kernel_shap_solve",
    "linear_fit",
    "mask_apply",
    "mask_apply_sampled",
    "mus_noise",
    "pack_masks",
    "path_integrate",
    "path_points",
    "permutation_accumulate",
    "permutations",
    "quadrature",
    "rescale_multiplier",
    "shapley_kernel_masks",
    "stratified_masks",
    "subset_masks",
    "unique_coalitions",
    "unpack_masks",
]
