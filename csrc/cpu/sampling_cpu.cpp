// CPU driver of the mask samplers.
#include "cpu_launch.h"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

XATTR_SAMPLING_KERNELS(XATTR_CPU_DRIVER)

}  // namespace xattr
