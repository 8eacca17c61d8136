// CPU driver of the mask samplers, and the Shapley-kernel size table.
#include <cmath>
#include <limits>
#include <stdexcept>

#include "cpu_launch.h"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

void sample_cpu(const SampleParams& p, const CpuOptions& o) { run_sample(p, CpuLaunch{o.threads}); }

std::vector<uint64_t> shapley_size_thresholds(int64_t d) {
  if (d < 2) throw std::invalid_argument("shapley_size_thresholds: d must be >= 2");
  // p(k) proportional to (d - 1) / (k (d - k)); the constant cancels.
  long double total = 0.0L;
  for (int64_t k = 1; k < d; ++k) total += 1.0L / (static_cast<long double>(k) * (d - k));
  std::vector<uint64_t> out(static_cast<size_t>(d - 1));
  const long double scale = std::ldexp(1.0L, 64);
  long double cum = 0.0L;
  for (int64_t k = 1; k < d; ++k) {
    cum += 1.0L / (static_cast<long double>(k) * (d - k)) / total;
    const long double t = std::floor(cum * scale);
    out[static_cast<size_t>(k - 1)] =
        t >= scale ? std::numeric_limits<uint64_t>::max() : static_cast<uint64_t>(t);
  }
  out.back() = std::numeric_limits<uint64_t>::max();
  return out;
}

}  // namespace xattr
