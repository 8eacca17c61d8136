// CUDA drivers of the coalition solvers and of bit packing. Solvers run one
// problem per GPU thread; their workspaces come from torch's allocator.
#include "cuda_launch.cuh"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

XATTR_COALITION_KERNELS(XATTR_CUDA_DRIVER)

}  // namespace xattr
