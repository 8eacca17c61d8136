// The kernel list, written once. X(name, Params) per kernel entry point, by
// family; the name is the op's (xattr.ops) at every layer: the C++ drivers
// `<name>_cpu` / `<name>_cuda` (kernels.h), the launch recipe `run_<name>`
// (dispatch.h), the binding `_C.<name>` (bindings.cpp). The declarations, the
// CPU and CUDA drivers and the no-CUDA stubs are generated from these lists.
#pragma once

#define XATTR_SAMPLING_KERNELS(X) X(sample, SampleParams)

#define XATTR_MASKING_KERNELS(X) X(mask_apply, MaskApplyParams)

#define XATTR_COALITION_KERNELS(X)                       \
  X(kernel_shap_solve, KernelShapSolveParams)            \
  X(linear_fit, LinearFitParams)                         \
  X(permutation_accumulate, PermutationAccumulateParams) \
  X(banzhaf_msr, BanzhafMsrParams)                       \
  X(exact_values, ExactValuesParams)                     \
  X(pack_masks, PackMasksParams)                         \
  X(unpack_masks, PackMasksParams)

#define XATTR_PATH_KERNELS(X)      \
  X(path_points, PathPointsParams) \
  X(path_integrate, PathIntegrateParams)

#define XATTR_RULE_KERNELS(X) X(rescale_multiplier, RescaleParams)

#define XATTR_KERNELS(X)     \
  XATTR_SAMPLING_KERNELS(X)  \
  XATTR_MASKING_KERNELS(X)   \
  XATTR_COALITION_KERNELS(X) \
  XATTR_PATH_KERNELS(X)      \
  XATTR_RULE_KERNELS(X)
