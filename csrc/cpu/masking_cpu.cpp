// CPU driver of masking / multiplicative smoothing.
#include "cpu_launch.h"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

XATTR_MASKING_KERNELS(XATTR_CPU_DRIVER)

}  // namespace xattr
