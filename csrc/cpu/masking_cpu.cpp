// CPU driver of masking / multiplicative smoothing.
#include "cpu_launch.h"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

void mask_apply_cpu(const MaskApplyParams& p, const CpuOptions& o) {
  run_mask_apply(p, CpuLaunch{o});
}

}  // namespace xattr
