// CUDA drivers of the coalition solvers and of bit packing. Solvers run one
// problem per GPU thread; their workspaces come from torch's allocator.
#include "cuda_launch.cuh"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

#define XATTR_CUDA_DRIVER(name, Params, runner)                 \
  void name##_cuda(const Params& p, const CudaOptions& o) {     \
    DeviceGuard g(o.device);                                    \
    runner(p, CudaLaunch{static_cast<cudaStream_t>(o.stream)}); \
  }

XATTR_CUDA_DRIVER(wls, WlsParams, run_wls)
XATTR_CUDA_DRIVER(linear_fit, LinearFitParams, run_linear_fit)
XATTR_CUDA_DRIVER(perm_accum, PermAccumParams, run_perm_accum)
XATTR_CUDA_DRIVER(banzhaf, BanzhafParams, run_banzhaf)
XATTR_CUDA_DRIVER(exact, ExactParams, run_exact)
XATTR_CUDA_DRIVER(pack, PackParams, run_pack)
XATTR_CUDA_DRIVER(unpack, PackParams, run_unpack)

#undef XATTR_CUDA_DRIVER

}  // namespace xattr
