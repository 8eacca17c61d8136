// CUDA driver of the mask samplers (same functors as csrc/cpu/sampling_cpu.cpp).
#include "cuda_launch.cuh"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

XATTR_SAMPLING_KERNELS(XATTR_CUDA_DRIVER)

}  // namespace xattr
