// CPU driver of the mask samplers.
#include "cpu_launch.h"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

void sample_cpu(const SampleParams& p, const CpuOptions& o) { run_sample(p, CpuLaunch{o}); }

}  // namespace xattr
