// CPU drivers of the coalition solvers and of bit packing.
#include "cpu_launch.h"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

void wls_cpu(const WlsParams& p, const CpuOptions& o) { run_wls(p, CpuLaunch{o}); }
void linear_fit_cpu(const LinearFitParams& p, const CpuOptions& o) {
  run_linear_fit(p, CpuLaunch{o});
}
void perm_accum_cpu(const PermAccumParams& p, const CpuOptions& o) {
  run_perm_accum(p, CpuLaunch{o});
}
void banzhaf_cpu(const BanzhafParams& p, const CpuOptions& o) { run_banzhaf(p, CpuLaunch{o}); }
void exact_cpu(const ExactParams& p, const CpuOptions& o) { run_exact(p, CpuLaunch{o}); }
void pack_cpu(const PackParams& p, const CpuOptions& o) { run_pack(p, CpuLaunch{o}); }
void unpack_cpu(const PackParams& p, const CpuOptions& o) { run_unpack(p, CpuLaunch{o}); }

}  // namespace xattr
