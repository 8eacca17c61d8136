// CUDA driver of the mask samplers (same functors as csrc/cpu/sampling_cpu.cpp).
#include "cuda_launch.cuh"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

void sample_cuda(const SampleParams& p, const CudaOptions& o) {
  DeviceGuard g(o.device);
  run_sample(p, CudaLaunch{static_cast<cudaStream_t>(o.stream)});
}

}  // namespace xattr
