// CUDA drivers of path integration.
#include "cuda_launch.cuh"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

void path_points_cuda(const PathPointsParams& p, const CudaOptions& o) {
  DeviceGuard g(o.device);
  run_path_points(p, CudaLaunch{static_cast<cudaStream_t>(o.stream)});
}

void path_integrate_cuda(const PathIntegrateParams& p, const CudaOptions& o) {
  DeviceGuard g(o.device);
  run_path_integrate(p, CudaLaunch{static_cast<cudaStream_t>(o.stream)});
}

}  // namespace xattr
