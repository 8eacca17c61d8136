// pybind11 bindings: the only file that knows Python. Each function takes
// buffers as (data_ptr, numel, dtype code) tuples made by xattr/ops, checks
// every size against the params it builds (so no kernel can be pointed past
// the end of a buffer), releases the GIL and runs the CPU or CUDA driver.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace py = pybind11;
using namespace xattr;

namespace {

// (data_ptr, numel, dtype code) of one contiguous tensor.
using Buf = std::tuple<uint64_t, int64_t, int>;
using OptBuf = std::optional<Buf>;

// Where to run: device < 0 is the CPU with `threads` threads.
struct Where {
  int device;
  uint64_t stream;
  int threads;
};

// How CPU grids run (csrc/cpu/cpu_launch.h): false = the fast path (span()
// where an op has one), true = one op(row, col) call per element, as on the
// GPU. Set from Python (xattr._ext: XATTR_CPU_LAUNCH, cpu_launch()).
std::atomic<bool> g_element_launch{false};

[[noreturn]] void bad(const std::string& msg) { throw std::invalid_argument(msg); }

template <typename P>
P* check(const Buf& b, const char* name, int64_t numel, Dtype dtype) {
  const auto [ptr, n, code] = b;
  if (code != static_cast<int>(dtype)) {
    bad(std::string(name) + ": expected dtype " + dtype_name(dtype) + ", got " +
        dtype_name(static_cast<Dtype>(code)));
  }
  if (n != numel) {
    bad(std::string(name) + ": expected " + std::to_string(numel) + " elements, got " +
        std::to_string(n));
  }
  if (numel > 0 && ptr == 0) bad(std::string(name) + ": null data pointer");
  return reinterpret_cast<P*>(static_cast<uintptr_t>(ptr));
}

Dtype float_dtype(const Buf& b, const char* name) {
  const Dtype t = static_cast<Dtype>(std::get<2>(b));
  if (t != Dtype::kFloat32 && t != Dtype::kFloat64) {
    bad(std::string(name) + ": expected float32 or float64, got " + dtype_name(t));
  }
  return t;
}

void check_bstride(int64_t stride, int64_t per_item, const char* name) {
  if (stride != 0 && stride != per_item) {
    bad(std::string(name) + ": batch stride must be 0 (shared) or " + std::to_string(per_item) +
        ", got " + std::to_string(stride));
  }
}

// A size and the name of the argument it came from, for the messages.
struct Dim {
  const char* name;
  int64_t value;
};

// Every size a binding multiplies (element counts, launch grids, workspaces)
// is a product of some of `dims`; refusing products past 2^62 here means no
// later product can wrap around and let an empty buffer pass its check. A zero
// size counts as 1 here: empty tensors are valid and every product with them is 0.
void check_dims(std::initializer_list<Dim> dims) {
  int64_t total = 1;
  std::string names;
  for (const Dim& d : dims) {
    if (d.value < 0) bad(std::string(d.name) + ": must be >= 0, got " + std::to_string(d.value));
    names += names.empty() ? d.name : std::string(" * ") + d.name;
    if (__builtin_mul_overflow(total, d.value > 0 ? d.value : 1, &total) ||
        total > (int64_t(1) << 62)) {
      bad(names + ": sizes too large, their product exceeds 2^62 elements");
    }
  }
}

void check_positive(int64_t v, const char* name) {
  if (v < 1) bad(std::string(name) + ": must be >= 1, got " + std::to_string(v));
}

void check_threshold(uint64_t t) {
  if (t > (uint64_t(1) << 32)) {
    bad("bern_threshold: the Bernoulli threshold must be <= 2^32, got " + std::to_string(t));
  }
}

void check_nonneg(int64_t v, const char* name) {
  if (v < 0) bad(std::string(name) + ": must be >= 0, got " + std::to_string(v));
}

template <typename Params, typename CpuFn, typename CudaFn>
void run(const Params& p, const Where& w, CpuFn cpu, CudaFn cuda) {
  py::gil_scoped_release nogil;
  if (w.device < 0) {
    cpu(p, CpuOptions{w.threads, g_element_launch.load()});
  } else {
    cuda(p, CudaOptions{w.device, reinterpret_cast<void*>(static_cast<uintptr_t>(w.stream))});
  }
}

#define WHERE_ARGS py::arg("device"), py::arg("stream"), py::arg("threads")

void sample(int sampler, const Buf& out, int64_t n, int64_t d, int64_t row_offset, uint64_t seed,
            uint64_t bern_threshold, int64_t k, const OptBuf& thresholds, bool paired, int64_t q,
            int64_t L, int64_t m, const OptBuf& work, int device, uint64_t stream, int threads) {
  SampleParams p;
  if (sampler < 0 || sampler > static_cast<int>(Sampler::kEnumerate)) {
    bad("sampler: unknown sampler code " + std::to_string(sampler) + ", expected 0.." +
        std::to_string(static_cast<int>(Sampler::kEnumerate)));
  }
  p.sampler = static_cast<Sampler>(sampler);
  check_nonneg(n, "n");
  check_nonneg(row_offset, "row_offset");
  check_positive(d, "d");
  check_dims({{"n", n}, {"d", d}, {"m", m}});
  if (row_offset > INT64_MAX - n) {
    bad("row_offset: row_offset + n must be <= 2^63 - 1, got " + std::to_string(row_offset) +
        " + " + std::to_string(n));
  }
  p.n = n, p.d = d, p.row_offset = row_offset, p.seed = seed, p.paired = paired;
  if (p.sampler == Sampler::kPermutation) {
    if (d > (int64_t(1) << 31) - 1) {
      bad("d: int32 permutations need d < 2^31, got " + std::to_string(d));
    }
    p.perms = check<int32_t>(out, "out", n * d, Dtype::kInt32);
  } else {
    p.masks = check<uint8_t>(out, "out", n * d, Dtype::kUInt8);
  }
  switch (p.sampler) {
    case Sampler::kBernoulli:
      check_threshold(bern_threshold);
      p.bern_threshold = bern_threshold;
      break;
    case Sampler::kExactK:
      if (k < 0 || k > d) {
        bad("k: must be in [0, d = " + std::to_string(d) + "], got " + std::to_string(k));
      }
      p.k = k;
      break;
    case Sampler::kShapley:
      if (d < 2) bad("d: Shapley-kernel coalitions need d >= 2, got " + std::to_string(d));
      if (!thresholds) bad("thresholds: required for the Shapley sampler (int64 [d - 1])");
      p.size_thresholds = check<uint64_t>(*thresholds, "thresholds", d - 1, Dtype::kInt64);
      break;
    case Sampler::kMus:
      check_positive(q, "q");
      if (L < 0 || L > q) {
        bad("L: must be in [0, q = " + std::to_string(q) + "], got " + std::to_string(L));
      }
      if (row_offset + n > q) {
        bad("n: MuS noise has q rows (q = " + std::to_string(q) + "), asked for rows up to " +
            std::to_string(row_offset + n));
      }
      if (!work) bad("work: required for MuS noise (int64 [d])");
      p.q = q, p.L = L;
      p.mus_offsets = check<uint64_t>(*work, "work", d, Dtype::kInt64);
      break;
    case Sampler::kStratified:
      check_positive(m, "m");
      if (row_offset + n > m * d) {
        bad("n: the stratified sampler has m * d = " + std::to_string(m * d) +
            " rows, asked for rows up to " + std::to_string(row_offset + n));
      }
      p.m = m;
      break;
    case Sampler::kEnumerate:
      if (d > kMaxEnumerationFeatures) {
        bad("d: enumeration supports d <= " + std::to_string(kMaxEnumerationFeatures) + ", got " +
            std::to_string(d));
      }
      if (row_offset + n > (int64_t(1) << d)) {
        bad("n: enumeration has 2^d rows (" + std::to_string(int64_t(1) << d) +
            "), asked for rows up to " + std::to_string(row_offset + n));
      }
      break;
    default:
      break;
  }
  run(p, Where{device, stream, threads}, sample_cpu, sample_cuda);
}

void mask_apply(const Buf& x, const Buf& base, const Buf& group, const OptBuf& masks,
                const Buf& out, int64_t B, int64_t S, int64_t E, int64_t d, int64_t base_bstride,
                int64_t group_bstride, int64_t mask_bstride, int sampler, uint64_t seed,
                uint64_t bern_threshold, int64_t q, int64_t L, int64_t row_offset, bool per_example,
                int device, uint64_t stream, int threads) {
  MaskApplyParams p;
  check_nonneg(B, "B"), check_nonneg(S, "S"), check_nonneg(E, "E");
  check_positive(d, "d");
  p.dtype = static_cast<Dtype>(std::get<2>(x));
  if (p.dtype != Dtype::kFloat32 && p.dtype != Dtype::kFloat64 && p.dtype != Dtype::kInt64) {
    bad(std::string("x: expected float32, float64 or int64, got ") + dtype_name(p.dtype));
  }
  check_dims({{"B", B}, {"S", S}, {"E", E}, {"d", d}});
  check_bstride(base_bstride, E, "base");
  check_bstride(group_bstride, E, "group");
  check_bstride(mask_bstride, S * d, "masks");
  p.B = B, p.S = S, p.E = E, p.d = d;
  p.base_bstride = base_bstride, p.group_bstride = group_bstride, p.mask_bstride = mask_bstride;
  p.x = check<void>(x, "x", B * E, p.dtype);
  p.base = check<void>(base, "base", (base_bstride ? B : 1) * E, p.dtype);
  p.group = check<int64_t>(group, "group", (group_bstride ? B : 1) * E, Dtype::kInt64);
  p.out = check<void>(out, "out", B * S * E, p.dtype);
  if (masks) {
    p.masks = check<uint8_t>(*masks, "masks", (mask_bstride ? B : 1) * S * d, Dtype::kUInt8);
  } else {
    p.sampler = static_cast<Sampler>(sampler);
    p.seed = seed, p.row_offset = row_offset, p.per_example = per_example;
    check_nonneg(row_offset, "row_offset");
    if (p.sampler == Sampler::kMus) {
      check_positive(q, "q");
      if (L < 0 || L > q) {
        bad("L: must be in [0, q = " + std::to_string(q) + "], got " + std::to_string(L));
      }
      if (row_offset > q - S) {
        bad("S: MuS noise has q rows (q = " + std::to_string(q) + "), S + row_offset = " +
            std::to_string(S) + " + " + std::to_string(row_offset) + " exceeds q");
      }
      if (per_example) bad("per_example: MuS noise is shared across the batch");
      p.q = q, p.L = L;
    } else if (p.sampler == Sampler::kBernoulli) {
      check_threshold(bern_threshold);
      p.bern_threshold = bern_threshold;
      // Mask rows row_offset .. row_offset + rows - 1, with rows = B * S per example
      // (check_dims bounds B * S by 2^62): every row index must fit an int64.
      const int64_t rows = per_example ? B * S : S;
      if (row_offset > INT64_MAX - rows) {
        bad("row_offset: row_offset + " + std::string(per_example ? "B * S" : "S") +
            " must be <= 2^63 - 1, got " + std::to_string(row_offset) + " + " +
            std::to_string(rows));
      }
    } else {
      bad("sampler: fused masking supports the bernoulli (0) and mus (4) samplers only, got " +
          std::to_string(sampler));
    }
  }
  if (device < 0) {  // ids are checked here too: the kernel must not read past masks
    for (int64_t i = 0; i < (group_bstride ? B : 1) * E; ++i) {
      if (p.group[i] < 0 || p.group[i] >= d) {
        bad("group: ids must be in [0, " + std::to_string(d) + "), found " +
            std::to_string(p.group[i]));
      }
    }
  }
  run(p, Where{device, stream, threads}, mask_apply_cpu, mask_apply_cuda);
}

std::tuple<int64_t, int64_t> wls_workspace(int64_t B, int64_t n, int64_t d, int64_t T,
                                           int64_t mask_bstride, int64_t weight_bstride) {
  WlsParams p;
  // workspaces: min(n, d)^2 <= n d doubles per group, a few more per (b, t)
  check_dims({{"B", B}, {"n", n}, {"d", d}, {"T", T}, {"4 (workspace factor)", 4}});
  p.B = B, p.n = n, p.d = d, p.T = T, p.mask_bstride = mask_bstride,
  p.weight_bstride = weight_bstride;
  return {wls_workspace_doubles(p), wls_scratch_ints(p)};
}

void wls(const Buf& masks, const Buf& weights, const Buf& values, const Buf& v_empty,
         const Buf& v_full, const Buf& out, const Buf& work, const Buf& scratch, int64_t B,
         int64_t n, int64_t d, int64_t T, int64_t mask_bstride, int64_t weight_bstride, int device,
         uint64_t stream, int threads) {
  WlsParams p;
  check_nonneg(B, "B"), check_nonneg(n, "n"), check_nonneg(T, "T");
  check_positive(d, "d");
  // workspaces: min(n, d)^2 <= n d doubles per group, a few more per (b, t)
  check_dims({{"B", B}, {"n", n}, {"d", d}, {"T", T}, {"4 (workspace factor)", 4}});
  check_bstride(mask_bstride, n * d, "masks");
  check_bstride(weight_bstride, n, "weights");
  p.B = B, p.n = n, p.d = d, p.T = T, p.mask_bstride = mask_bstride,
  p.weight_bstride = weight_bstride;
  p.dtype = float_dtype(values, "values");
  p.masks = check<uint8_t>(masks, "masks", (mask_bstride ? B : 1) * n * d, Dtype::kUInt8);
  p.weights = check<void>(weights, "weights", (weight_bstride ? B : 1) * n, p.dtype);
  p.values = check<void>(values, "values", B * n * T, p.dtype);
  p.v_empty = check<void>(v_empty, "v_empty", B * T, p.dtype);
  p.v_full = check<void>(v_full, "v_full", B * T, p.dtype);
  p.out = check<void>(out, "out", B * T * d, p.dtype);
  p.work = check<double>(work, "work", wls_workspace_doubles(p), Dtype::kFloat64);
  p.scratch = check<int32_t>(scratch, "scratch", wls_scratch_ints(p), Dtype::kInt32);
  run(p, Where{device, stream, threads}, wls_cpu, wls_cuda);
}

std::tuple<int64_t, int64_t> linear_fit_workspace(int64_t B, int64_t n, int64_t d, int64_t T,
                                                  int64_t mask_bstride, int64_t weight_bstride) {
  LinearFitParams p;
  // workspaces: min(n, d)^2 <= n d doubles per group, a few more per (b, t)
  check_dims({{"B", B}, {"n", n}, {"d", d}, {"T", T}, {"4 (workspace factor)", 4}});
  p.B = B, p.n = n, p.d = d, p.T = T, p.mask_bstride = mask_bstride,
  p.weight_bstride = weight_bstride;
  return {linear_fit_workspace_doubles(p), linear_fit_scratch_ints(p)};
}

void linear_fit(const Buf& masks, const Buf& weights, const Buf& values, const Buf& coef,
                const Buf& intercept, const Buf& work, const Buf& scratch, int64_t B, int64_t n,
                int64_t d, int64_t T, int64_t mask_bstride, int64_t weight_bstride, double alpha,
                bool lasso, int64_t max_iter, double tol, int device, uint64_t stream,
                int threads) {
  LinearFitParams p;
  check_nonneg(B, "B"), check_nonneg(n, "n"), check_nonneg(T, "T");
  check_positive(d, "d");
  if (!(alpha >= 0.0)) bad("alpha: must be a number >= 0, got " + std::to_string(alpha));
  check_positive(max_iter, "max_iter");
  if (!(tol >= 0.0)) bad("tol: must be a number >= 0, got " + std::to_string(tol));
  // workspaces: min(n, d)^2 <= n d doubles per group, a few more per (b, t)
  check_dims({{"B", B}, {"n", n}, {"d", d}, {"T", T}, {"4 (workspace factor)", 4}});
  check_bstride(mask_bstride, n * d, "masks");
  check_bstride(weight_bstride, n, "weights");
  p.B = B, p.n = n, p.d = d, p.T = T, p.mask_bstride = mask_bstride,
  p.weight_bstride = weight_bstride;
  p.alpha = alpha, p.lasso = lasso, p.max_iter = max_iter, p.tol = tol;
  p.dtype = float_dtype(values, "values");
  p.masks = check<uint8_t>(masks, "masks", (mask_bstride ? B : 1) * n * d, Dtype::kUInt8);
  p.weights = check<void>(weights, "weights", (weight_bstride ? B : 1) * n, p.dtype);
  p.values = check<void>(values, "values", B * n * T, p.dtype);
  p.coef = check<void>(coef, "coef", B * T * d, p.dtype);
  p.intercept = check<void>(intercept, "intercept", B * T, p.dtype);
  p.work = check<double>(work, "work", linear_fit_workspace_doubles(p), Dtype::kFloat64);
  p.scratch = check<int32_t>(scratch, "scratch", linear_fit_scratch_ints(p), Dtype::kInt32);
  run(p, Where{device, stream, threads}, linear_fit_cpu, linear_fit_cuda);
}

void perm_accum(const Buf& perms, const Buf& values, const Buf& mean, const OptBuf& stderr_out,
                const Buf& work, int64_t B, int64_t P, int64_t d, int64_t T, int64_t perm_bstride,
                int64_t unit, int device, uint64_t stream, int threads) {
  PermAccumParams p;
  check_nonneg(B, "B"), check_nonneg(T, "T");
  check_positive(d, "d");
  if (unit != 1 && unit != 2) bad("unit: must be 1 or 2, got " + std::to_string(unit));
  if (P < 1 || P % unit != 0) {
    bad("P: the number of permutations must be a positive multiple of unit = " +
        std::to_string(unit) + ", got " + std::to_string(P));
  }
  check_dims({{"B", B}, {"P", P}, {"d + 1", d + 1}, {"T", T}, {"3", 3}});
  check_bstride(perm_bstride, P * d, "perms");
  p.B = B, p.P = P, p.d = d, p.T = T, p.perm_bstride = perm_bstride, p.unit = unit;
  p.dtype = float_dtype(values, "values");
  p.perms = check<int32_t>(perms, "perms", (perm_bstride ? B : 1) * P * d, Dtype::kInt32);
  p.values = check<void>(values, "values", B * P * (d + 1) * T, p.dtype);
  p.mean = check<void>(mean, "mean", B * T * d, p.dtype);
  if (stderr_out) p.stderr_out = check<void>(*stderr_out, "stderr", B * T * d, p.dtype);
  p.work = check<double>(work, "work", perm_accum_workspace_doubles(p), Dtype::kFloat64);
  if (device < 0) {  // every row must be a permutation of 0..d-1
    std::vector<int64_t> seen(static_cast<size_t>(d), -1);
    const int64_t rows = (perm_bstride ? B : 1) * P;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < d; ++j) {
        const int32_t f = p.perms[r * d + j];
        if (f < 0 || f >= d || seen[static_cast<size_t>(f)] == r) {
          bad("perms: every row must be a permutation of 0.." + std::to_string(d - 1) + "; row " +
              std::to_string(r) + " is not");
        }
        seen[static_cast<size_t>(f)] = r;
      }
    }
  }
  run(p, Where{device, stream, threads}, perm_accum_cpu, perm_accum_cuda);
}

void banzhaf(const Buf& masks, const OptBuf& counts, const Buf& values, const Buf& out, int64_t B,
             int64_t n, int64_t d, int64_t T, int64_t mask_bstride, int64_t count_bstride,
             int device, uint64_t stream, int threads) {
  BanzhafParams p;
  check_nonneg(B, "B"), check_nonneg(n, "n"), check_nonneg(T, "T");
  check_positive(d, "d");
  check_dims({{"B", B}, {"n", n}, {"d", d}, {"T", T}});
  check_bstride(mask_bstride, n * d, "masks");
  check_bstride(count_bstride, n, "counts");
  p.B = B, p.n = n, p.d = d, p.T = T, p.mask_bstride = mask_bstride,
  p.count_bstride = count_bstride;
  p.dtype = float_dtype(values, "values");
  p.masks = check<uint8_t>(masks, "masks", (mask_bstride ? B : 1) * n * d, Dtype::kUInt8);
  if (counts) p.counts = check<void>(*counts, "counts", (count_bstride ? B : 1) * n, p.dtype);
  p.values = check<void>(values, "values", B * n * T, p.dtype);
  p.out = check<void>(out, "out", B * T * d, p.dtype);
  run(p, Where{device, stream, threads}, banzhaf_cpu, banzhaf_cuda);
}

void exact(const Buf& values, const Buf& out, int64_t B, int64_t d, int64_t T, bool banzhaf_mode,
           int device, uint64_t stream, int threads) {
  ExactParams p;
  check_nonneg(B, "B"), check_nonneg(T, "T");
  if (d < 1 || d > kMaxEnumerationFeatures) {
    bad("d: exact enumeration needs 1 <= d <= " + std::to_string(kMaxEnumerationFeatures) +
        ", got " + std::to_string(d));
  }
  check_dims({{"B", B}, {"2^d", int64_t(1) << d}, {"T", T}, {"d", d}});
  p.B = B, p.d = d, p.T = T, p.banzhaf = banzhaf_mode;
  p.dtype = float_dtype(values, "values");
  p.values = check<void>(values, "values", B * (int64_t(1) << d) * T, p.dtype);
  p.out = check<void>(out, "out", B * T * d, p.dtype);
  run(p, Where{device, stream, threads}, exact_cpu, exact_cuda);
}

void pack(const Buf& masks, const Buf& keys, int64_t n, int64_t d, bool unpack_mode, int device,
          uint64_t stream, int threads) {
  PackParams p;
  check_nonneg(n, "n");
  check_positive(d, "d");
  check_dims({{"n", n}, {"d", d}});
  p.n = n, p.d = d;
  p.masks = check<uint8_t>(masks, "masks", n * d, Dtype::kUInt8);
  p.keys = check<int64_t>(keys, "keys", n * ((d + 63) / 64), Dtype::kInt64);
  if (unpack_mode) {
    run(p, Where{device, stream, threads}, unpack_cpu, unpack_cuda);
  } else {
    run(p, Where{device, stream, threads}, pack_cpu, pack_cuda);
  }
}

void path_points(const Buf& x, const Buf& base, const Buf& alphas, const Buf& out, int64_t B,
                 int64_t K, int64_t J, int64_t E, int64_t base_bstride, int device, uint64_t stream,
                 int threads) {
  PathPointsParams p;
  check_nonneg(B, "B"), check_nonneg(K, "K"), check_nonneg(J, "J"), check_nonneg(E, "E");
  check_dims({{"B", B}, {"K", K}, {"J", J}, {"E", E}});
  check_bstride(base_bstride, K * E, "baselines");
  p.B = B, p.K = K, p.J = J, p.E = E, p.base_bstride = base_bstride;
  p.dtype = float_dtype(x, "x");
  p.x = check<void>(x, "x", B * E, p.dtype);
  p.base = check<void>(base, "baselines", (base_bstride ? B : 1) * K * E, p.dtype);
  p.alphas = check<void>(alphas, "alphas", J, p.dtype);
  p.out = check<void>(out, "out", B * K * J * E, p.dtype);
  run(p, Where{device, stream, threads}, path_points_cpu, path_points_cuda);
}

void path_integrate(const Buf& grads, const Buf& x, const Buf& base, const Buf& weights,
                    const Buf& out, int64_t B, int64_t K, int64_t J, int64_t E,
                    int64_t base_bstride, int reduction, bool multiply_by_inputs,
                    const OptBuf& path_weights, int64_t pw_bstride, int device, uint64_t stream,
                    int threads) {
  PathIntegrateParams p;
  check_nonneg(B, "B"), check_nonneg(K, "K"), check_nonneg(J, "J"), check_nonneg(E, "E");
  if (reduction < 0 || reduction > 2) {
    bad("reduction: must be 0 (mean), 1 (sum) or 2 (none), got " + std::to_string(reduction));
  }
  // The mean over no baselines is 0 / 0; their sum (or no per-path rows) is fine.
  if (K < 1 && reduction == 0) bad("K: the mean over baselines needs K >= 1, got 0");
  check_dims({{"B", B}, {"K", K}, {"J", J}, {"E", E}});
  check_bstride(base_bstride, K * E, "baselines");
  p.B = B, p.K = K, p.J = J, p.E = E, p.base_bstride = base_bstride;
  p.reduction = static_cast<Reduction>(reduction), p.multiply_by_inputs = multiply_by_inputs;
  p.dtype = float_dtype(grads, "grads");
  p.grads = check<void>(grads, "grads", B * K * J * E, p.dtype);
  p.x = check<void>(x, "x", B * E, p.dtype);
  p.base = check<void>(base, "baselines", (base_bstride ? B : 1) * K * E, p.dtype);
  p.weights = check<void>(weights, "weights", J, p.dtype);
  if (path_weights) {
    check_bstride(pw_bstride, K * E, "path_weights");
    p.pw_bstride = pw_bstride;
    p.path_weights =
        check<void>(*path_weights, "path_weights", (pw_bstride ? B : 1) * K * E, p.dtype);
  }
  p.out = check<void>(out, "out", (p.reduction == Reduction::kNone ? B * K : B) * E, p.dtype);
  run(p, Where{device, stream, threads}, path_integrate_cpu, path_integrate_cuda);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "xattr kernels (torch-free C++/CUDA); use xattr.ops, not this module";
  m.def("built_with_cuda", &built_with_cuda);
  m.def("cuda_device_count", &cuda_device_count);
  m.def(
      "set_element_launch", [](bool on) { g_element_launch.store(on); }, py::arg("on"),
      "CPU grids: one op(row, col) call per element as on the GPU (True), or the fast "
      "path (False); use xattr._ext.cpu_launch");
  m.def("element_launch", [] { return g_element_launch.load(); });
  m.def(
      "philox4x32_10",
      [](std::tuple<uint32_t, uint32_t, uint32_t, uint32_t> c, uint32_t k0, uint32_t k1) {
        const U32x4 r = philox4x32_10(
            U32x4{{std::get<0>(c), std::get<1>(c), std::get<2>(c), std::get<3>(c)}}, k0, k1);
        return std::make_tuple(r.v[0], r.v[1], r.v[2], r.v[3]);
      },
      py::arg("counter"), py::arg("k0"), py::arg("k1"),
      "The generator itself (csrc/include/xattr/philox.h) on one counter, for the "
      "known-answer tests");
  m.def("max_enumeration_features", [] { return kMaxEnumerationFeatures; });
  m.def("quadrature", [](const std::string& method, int64_t n) {
    std::vector<double> a, w;
    quadrature(method.c_str(), n, &a, &w);
    return std::make_tuple(a, w);
  });
  m.def("sample", &sample, py::arg("sampler"), py::arg("out"), py::arg("n"), py::arg("d"),
        py::arg("row_offset"), py::arg("seed"), py::arg("bern_threshold"), py::arg("k"),
        py::arg("thresholds"), py::arg("paired"), py::arg("q"), py::arg("L"), py::arg("m"),
        py::arg("work") = py::none(), WHERE_ARGS);
  m.def("mask_apply", &mask_apply, py::arg("x"), py::arg("base"), py::arg("group"),
        py::arg("masks"), py::arg("out"), py::arg("B"), py::arg("S"), py::arg("E"), py::arg("d"),
        py::arg("base_bstride"), py::arg("group_bstride"), py::arg("mask_bstride"),
        py::arg("sampler"), py::arg("seed"), py::arg("bern_threshold"), py::arg("q"), py::arg("L"),
        py::arg("row_offset"), py::arg("per_example"), WHERE_ARGS);
  m.def("wls_workspace", &wls_workspace);
  m.def("wls", &wls, py::arg("masks"), py::arg("weights"), py::arg("values"), py::arg("v_empty"),
        py::arg("v_full"), py::arg("out"), py::arg("work"), py::arg("scratch"), py::arg("B"),
        py::arg("n"), py::arg("d"), py::arg("T"), py::arg("mask_bstride"),
        py::arg("weight_bstride"), WHERE_ARGS);
  m.def("linear_fit_workspace", &linear_fit_workspace);
  m.def("linear_fit", &linear_fit, py::arg("masks"), py::arg("weights"), py::arg("values"),
        py::arg("coef"), py::arg("intercept"), py::arg("work"), py::arg("scratch"), py::arg("B"),
        py::arg("n"), py::arg("d"), py::arg("T"), py::arg("mask_bstride"),
        py::arg("weight_bstride"), py::arg("alpha"), py::arg("lasso"), py::arg("max_iter"),
        py::arg("tol"), WHERE_ARGS);
  m.def("perm_accum", &perm_accum, py::arg("perms"), py::arg("values"), py::arg("mean"),
        py::arg("stderr"), py::arg("work"), py::arg("B"), py::arg("P"), py::arg("d"), py::arg("T"),
        py::arg("perm_bstride"), py::arg("unit"), WHERE_ARGS);
  m.def("banzhaf", &banzhaf, py::arg("masks"), py::arg("counts"), py::arg("values"), py::arg("out"),
        py::arg("B"), py::arg("n"), py::arg("d"), py::arg("T"), py::arg("mask_bstride"),
        py::arg("count_bstride"), WHERE_ARGS);
  m.def("exact", &exact, py::arg("values"), py::arg("out"), py::arg("B"), py::arg("d"),
        py::arg("T"), py::arg("banzhaf"), WHERE_ARGS);
  m.def("pack", &pack, py::arg("masks"), py::arg("keys"), py::arg("n"), py::arg("d"),
        py::arg("unpack"), WHERE_ARGS);
  m.def("path_points", &path_points, py::arg("x"), py::arg("base"), py::arg("alphas"),
        py::arg("out"), py::arg("B"), py::arg("K"), py::arg("J"), py::arg("E"),
        py::arg("base_bstride"), WHERE_ARGS);
  m.def("path_integrate", &path_integrate, py::arg("grads"), py::arg("x"), py::arg("base"),
        py::arg("weights"), py::arg("out"), py::arg("B"), py::arg("K"), py::arg("J"), py::arg("E"),
        py::arg("base_bstride"), py::arg("reduction"), py::arg("multiply_by_inputs"),
        py::arg("path_weights") = py::none(), py::arg("pw_bstride") = 0, WHERE_ARGS);
}
