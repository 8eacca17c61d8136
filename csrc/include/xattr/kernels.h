// Entry points of the kernel library, one CPU and one CUDA driver per kernel
// of the list in kernel_list.h.
// The CUDA drivers exist only when the library is built with CUDA
// (XATTR_WITH_CUDA); `stream` is a cudaStream_t passed as void*.
#pragma once

#include <vector>

#include "xattr/kernel_list.h"
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

XATTR_KERNELS(XATTR_DECLARE_KERNEL)

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
