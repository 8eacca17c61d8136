// CUDA driver of DeepLift's rules.
#include "cuda_launch.cuh"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

XATTR_RULE_KERNELS(XATTR_CUDA_DRIVER)

}  // namespace xattr
