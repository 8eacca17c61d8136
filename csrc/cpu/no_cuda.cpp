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

XATTR_KERNELS(XATTR_NO_CUDA)

#undef XATTR_NO_CUDA

}  // namespace xattr
