// CUDA drivers of path integration.
#include "cuda_launch.cuh"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

XATTR_PATH_KERNELS(XATTR_CUDA_DRIVER)

}  // namespace xattr
