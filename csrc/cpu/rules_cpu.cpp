// CPU driver of DeepLift's rules.
#include "cpu_launch.h"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

XATTR_RULE_KERNELS(XATTR_CPU_DRIVER)

}  // namespace xattr
