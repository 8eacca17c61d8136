// Entry points of the kernel library, one CPU and one CUDA driver per kernel.
// The CUDA drivers exist only when the library is built with CUDA
// (XATTR_WITH_CUDA); `stream` is a cudaStream_t passed as void*.
#pragma once

#include <vector>

#include "xattr/params.h"

namespace xattr {

struct CpuOptions {
  int threads = 1;
  // The element launch: op(row, col) per element, never span() (the GPU's
  // code path on the CPU; see csrc/cpu/cpu_launch.h).
  bool element = false;
};

struct CudaOptions {
  int device = 0;
  void* stream = nullptr;
};

#define XATTR_DECLARE_KERNEL(name, Params)               \
  void name##_cpu(const Params& p, const CpuOptions& o); \
  void name##_cuda(const Params& p, const CudaOptions& o);

XATTR_DECLARE_KERNEL(sample, SampleParams)
XATTR_DECLARE_KERNEL(mask_apply, MaskApplyParams)
XATTR_DECLARE_KERNEL(wls, WlsParams)
XATTR_DECLARE_KERNEL(linear_fit, LinearFitParams)
XATTR_DECLARE_KERNEL(perm_accum, PermAccumParams)
XATTR_DECLARE_KERNEL(banzhaf, BanzhafParams)
XATTR_DECLARE_KERNEL(exact, ExactParams)
XATTR_DECLARE_KERNEL(pack, PackParams)
XATTR_DECLARE_KERNEL(unpack, PackParams)
XATTR_DECLARE_KERNEL(path_points, PathPointsParams)
XATTR_DECLARE_KERNEL(path_integrate, PathIntegrateParams)

#undef XATTR_DECLARE_KERNEL

// Host-side tables.
// Quadrature nodes (alphas) and weights on [0, 1] with Captum's rules:
// riemann_left / right / middle / trapezoid and gausslegendre.
void quadrature(const char* method, int64_t n, std::vector<double>* alphas,
                std::vector<double>* weights);

// Number of CUDA devices usable by this build (0 without CUDA, without a
// driver, or with a driver too old for the static runtime).
int cuda_device_count();
bool built_with_cuda();

}  // namespace xattr
