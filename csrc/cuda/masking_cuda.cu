// CUDA driver of masking / multiplicative smoothing.
#include "cuda_launch.cuh"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

XATTR_MASKING_KERNELS(XATTR_CUDA_DRIVER)

}  // namespace xattr
