// CUDA driver of masking / multiplicative smoothing.
#include "cuda_launch.cuh"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

void mask_apply_cuda(const MaskApplyParams& p, const CudaOptions& o) {
  DeviceGuard g(o.device);
  run_mask_apply(p, CudaLaunch{static_cast<cudaStream_t>(o.stream)});
}

}  // namespace xattr
