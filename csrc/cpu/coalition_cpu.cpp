// CPU drivers of the coalition solvers and of bit packing.
#include "cpu_launch.h"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

XATTR_COALITION_KERNELS(XATTR_CPU_DRIVER)

}  // namespace xattr
