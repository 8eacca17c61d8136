// Built instead of csrc/cuda when CUDA is off: the CUDA drivers exist so the
// bindings link, and say clearly that this build has none.
#include <stdexcept>

#include "xattr/kernels.h"

namespace xattr {

bool built_with_cuda() { return false; }
int cuda_device_count() { return 0; }

#define XATTR_NO_CUDA(name, Params)                                         \
  void name##_cuda(const Params&, const CudaOptions&) {                     \
    throw std::runtime_error("xattr was built without CUDA: " #name         \
                             " needs a "                                    \
                             "CUDA build (XATTR_CUDA=ON) for GPU tensors"); \
  }

XATTR_NO_CUDA(sample, SampleParams)
XATTR_NO_CUDA(mask_apply, MaskApplyParams)
XATTR_NO_CUDA(wls, WlsParams)
XATTR_NO_CUDA(linear_fit, LinearFitParams)
XATTR_NO_CUDA(perm_accum, PermAccumParams)
XATTR_NO_CUDA(banzhaf, BanzhafParams)
XATTR_NO_CUDA(exact, ExactParams)
XATTR_NO_CUDA(pack, PackParams)
XATTR_NO_CUDA(unpack, PackParams)
XATTR_NO_CUDA(path_points, PathPointsParams)
XATTR_NO_CUDA(path_integrate, PathIntegrateParams)

#undef XATTR_NO_CUDA

}  // namespace xattr
