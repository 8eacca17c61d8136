// pybind11 bindings: the only file that knows Python. Each function takes
// buffers as (data_ptr, numel, dtype code) tuples made by xattr/ops, checks
// every size against the params it builds (so no kernel can be pointed past
// the end of a buffer), releases the GIL and runs the CPU or CUDA driver.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <set>
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

// The named arguments of one kernel call, as Python passes them (keyword arguments
// only): each binding reads its params struct's fields by name in one place, and a
// name it does not read (misspelt, or meant for another kernel) is an error too.
class Args {
 public:
  Args(const char* kernel, const py::kwargs& kw) : kernel_(kernel), kw_(kw) {}

  template <typename V>
  V get(const char* name) {
    return cast<V>(name, take(name, true));
  }
  // An argument that may be left out: `fallback` when absent.
  template <typename V>
  V get(const char* name, V fallback) {
    py::handle h = take(name, false);
    return h ? cast<V>(name, h) : fallback;
  }
  OptBuf opt_buf(const char* name) {
    py::handle h = take(name, false);
    if (!h || h.is_none()) return std::nullopt;
    return cast<Buf>(name, h);
  }
  Where where() { return Where{get<int>("device"), get<uint64_t>("stream"), get<int>("threads")}; }
  // Every argument given must have been read.
  void done() const {
    for (auto item : kw_) {
      const std::string name = py::str(item.first);
      if (!read_.count(name)) {
        throw py::type_error(std::string(kernel_) + ": unexpected argument '" + name + "'");
      }
    }
  }

 private:
  py::handle take(const char* name, bool required) {
    read_.insert(name);
    if (kw_.contains(name)) return kw_[name];
    if (required) {
      throw py::type_error(std::string(kernel_) + ": missing argument '" + name + "'");
    }
    return py::handle();
  }
  template <typename V>
  V cast(const char* name, py::handle h) const {
    try {
      return h.cast<V>();
    } catch (const py::cast_error&) {
      throw py::type_error(std::string(name) + ": " + kernel_ + " cannot take " +
                           std::string(py::str(py::repr(h))));
    }
  }
  const char* kernel_;
  const py::kwargs& kw_;
  std::set<std::string> read_;
};

template <typename Params, typename CpuFn, typename CudaFn>
void run(const Params& p, const Where& w, CpuFn cpu, CudaFn cuda) {
  py::gil_scoped_release nogil;
  if (w.device < 0) {
    cpu(p, CpuOptions{w.threads, g_element_launch.load()});
  } else {
    cuda(p, CudaOptions{w.device, reinterpret_cast<void*>(static_cast<uintptr_t>(w.stream))});
  }
}

void sample(const py::kwargs& kw) {
  Args a("sample", kw);
  const int sampler = a.get<int>("sampler");
  const Buf out = a.get<Buf>("out");
  const int64_t n = a.get<int64_t>("n"), d = a.get<int64_t>("d");
  const int64_t row_offset = a.get<int64_t>("row_offset");
  const uint64_t seed = a.get<uint64_t>("seed"), bern_threshold = a.get<uint64_t>("bern_threshold");
  const int64_t k = a.get<int64_t>("k");
  const OptBuf thresholds = a.opt_buf("thresholds");
  const bool paired = a.get<bool>("paired");
  const int64_t q = a.get<int64_t>("q"), L = a.get<int64_t>("L"), m = a.get<int64_t>("m");
  const OptBuf work = a.opt_buf("work");
  const Where w = a.where();
  a.done();
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
  run(p, w, sample_cpu, sample_cuda);
}

// mask_apply takes masks (mask_bstride) or, without them, the fused sampler's
// fields (sampler, seed, bern_threshold or q and L, row_offset, per_example).
void mask_apply(const py::kwargs& kw) {
  Args a("mask_apply", kw);
  const Buf x = a.get<Buf>("x"), base = a.get<Buf>("base"), group = a.get<Buf>("group");
  const OptBuf masks = a.opt_buf("masks");
  const Buf out = a.get<Buf>("out");
  const int64_t B = a.get<int64_t>("B"), S = a.get<int64_t>("S"), E = a.get<int64_t>("E");
  const int64_t d = a.get<int64_t>("d");
  const int64_t base_bstride = a.get<int64_t>("base_bstride");
  const int64_t group_bstride = a.get<int64_t>("group_bstride");
  const int64_t mask_bstride = a.get<int64_t>("mask_bstride", 0);
  const int sampler = a.get<int>("sampler", 0);
  const uint64_t seed = a.get<uint64_t>("seed", 0);
  const uint64_t bern_threshold = a.get<uint64_t>("bern_threshold", 0);
  const int64_t q = a.get<int64_t>("q", 0), L = a.get<int64_t>("L", 0);
  const int64_t row_offset = a.get<int64_t>("row_offset", 0);
  const bool per_example = a.get<bool>("per_example", false);
  const Where w = a.where();
  const int device = w.device;
  a.done();
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
  run(p, w, mask_apply_cpu, mask_apply_cuda);
}

// rescale_multiplier: DeepLift's multiplier of an elementwise nonlinearity over a batch
// of `rows` input rows of R elements followed by the references' P elements.
void rescale_multiplier(const py::kwargs& kw) {
  Args a("rescale_multiplier", kw);
  const Buf x = a.get<Buf>("x"), y = a.get<Buf>("y"), m = a.get<Buf>("m");
  const OptBuf deriv = a.opt_buf("deriv");
  const int64_t rows = a.get<int64_t>("rows"), R = a.get<int64_t>("R"), P = a.get<int64_t>("P");
  const int kind = a.get<int>("kind");
  const double eps = a.get<double>("eps");
  const Where w = a.where();
  a.done();
  RescaleParams p;
  p.dtype = float_dtype(x, "x");
  check_nonneg(rows, "rows"), check_nonneg(R, "R");
  check_dims({{"rows", rows}, {"R", R}, {"P", P}});
  const int64_t H = rows * R;
  // P = (reference rows) * R, and the inputs' rows are whole repetitions of them
  if (R > 0 ? (P < R || P % R != 0 || H % P != 0) : P != 0) {
    bad("P: the references' elements must be a positive multiple of R = " + std::to_string(R) +
        " dividing rows * R = " + std::to_string(H) + ", got " + std::to_string(P));
  }
  if (kind < 0 || kind > static_cast<int>(Nonlinearity::kGiven)) {
    bad("kind: unknown nonlinearity code " + std::to_string(kind) + ", expected 0.." +
        std::to_string(static_cast<int>(Nonlinearity::kGiven)));
  }
  if (!(eps >= 0)) bad("eps: must be >= 0, got " + std::to_string(eps));
  p.kind = static_cast<Nonlinearity>(kind);
  p.rows = rows, p.R = R, p.P = P, p.eps = eps;
  p.x = check<void>(x, "x", H + P, p.dtype);
  p.y = check<void>(y, "y", H + P, p.dtype);
  p.m = check<void>(m, "m", H, p.dtype);
  if (p.kind == Nonlinearity::kGiven) {
    if (!deriv) bad("deriv: required for kind 3 (the derivative given)");
    p.deriv = check<void>(*deriv, "deriv", H, p.dtype);
  } else if (deriv) {
    bad("deriv: given only with kind 3");
  }
  run(p, w, rescale_multiplier_cpu, rescale_multiplier_cuda);
}

// The sizes of a coalition design (the two solvers and their workspace queries).
// Workspaces hold min(n, d)^2 <= n d doubles per group and a few more per (b, t).
void read_design_sizes(Args& a, CoalitionDesign* p) {
  p->B = a.get<int64_t>("B"), p->n = a.get<int64_t>("n"), p->d = a.get<int64_t>("d");
  p->T = a.get<int64_t>("T");
  p->mask_bstride = a.get<int64_t>("mask_bstride");
  p->weight_bstride = a.get<int64_t>("weight_bstride");
  check_dims({{"B", p->B}, {"n", p->n}, {"d", p->d}, {"T", p->T}, {"4 (workspace factor)", 4}});
}

// A solver's design: its sizes, then masks, weights and values (the workspaces,
// whose sizes depend on the solver, are read by the solver).
void read_design(Args& a, CoalitionDesign* p) {
  read_design_sizes(a, p);
  check_nonneg(p->B, "B"), check_nonneg(p->n, "n"), check_nonneg(p->T, "T");
  check_positive(p->d, "d");
  check_bstride(p->mask_bstride, p->n * p->d, "masks");
  check_bstride(p->weight_bstride, p->n, "weights");
  const Buf values = a.get<Buf>("values");
  p->dtype = float_dtype(values, "values");
  p->masks = check<uint8_t>(a.get<Buf>("masks"), "masks",
                            (p->mask_bstride ? p->B : 1) * p->n * p->d, Dtype::kUInt8);
  p->weights = check<void>(a.get<Buf>("weights"), "weights", (p->weight_bstride ? p->B : 1) * p->n,
                           p->dtype);
  p->values = check<void>(values, "values", p->B * p->n * p->T, p->dtype);
}

std::tuple<int64_t, int64_t> kernel_shap_solve_workspace(const py::kwargs& kw) {
  Args a("kernel_shap_solve_workspace", kw);
  KernelShapSolveParams p;
  read_design_sizes(a, &p);
  a.done();
  return {kernel_shap_solve_workspace_doubles(p), kernel_shap_solve_scratch_ints(p)};
}

void kernel_shap_solve(const py::kwargs& kw) {
  Args a("kernel_shap_solve", kw);
  KernelShapSolveParams p;
  p.rho = a.get<double>("rho", 0.0);
  if (!(p.rho >= 0.0 && std::isfinite(p.rho))) {
    bad("rho: must be a finite number >= 0, got " + std::to_string(p.rho));
  }
  read_design(a, &p);
  const int64_t B = p.B, d = p.d, T = p.T;
  p.v_empty = check<void>(a.get<Buf>("v_empty"), "v_empty", B * T, p.dtype);
  p.v_full = check<void>(a.get<Buf>("v_full"), "v_full", B * T, p.dtype);
  p.out = check<void>(a.get<Buf>("out"), "out", B * T * d, p.dtype);
  p.work = check<double>(a.get<Buf>("work"), "work", kernel_shap_solve_workspace_doubles(p),
                         Dtype::kFloat64);
  p.scratch = check<int32_t>(a.get<Buf>("scratch"), "scratch", kernel_shap_solve_scratch_ints(p),
                             Dtype::kInt32);
  const Where w = a.where();
  a.done();
  run(p, w, kernel_shap_solve_cpu, kernel_shap_solve_cuda);
}

std::tuple<int64_t, int64_t> linear_fit_workspace(const py::kwargs& kw) {
  Args a("linear_fit_workspace", kw);
  LinearFitParams p;
  read_design_sizes(a, &p);
  a.done();
  return {linear_fit_workspace_doubles(p), linear_fit_scratch_ints(p)};
}

void linear_fit(const py::kwargs& kw) {
  Args a("linear_fit", kw);
  LinearFitParams p;
  p.alpha = a.get<double>("alpha"), p.lasso = a.get<bool>("lasso");
  p.max_iter = a.get<int64_t>("max_iter"), p.tol = a.get<double>("tol");
  if (!(p.alpha >= 0.0)) bad("alpha: must be a number >= 0, got " + std::to_string(p.alpha));
  check_positive(p.max_iter, "max_iter");
  if (!(p.tol >= 0.0)) bad("tol: must be a number >= 0, got " + std::to_string(p.tol));
  read_design(a, &p);
  const int64_t B = p.B, d = p.d, T = p.T;
  p.coef = check<void>(a.get<Buf>("coef"), "coef", B * T * d, p.dtype);
  p.intercept = check<void>(a.get<Buf>("intercept"), "intercept", B * T, p.dtype);
  p.work =
      check<double>(a.get<Buf>("work"), "work", linear_fit_workspace_doubles(p), Dtype::kFloat64);
  p.scratch =
      check<int32_t>(a.get<Buf>("scratch"), "scratch", linear_fit_scratch_ints(p), Dtype::kInt32);
  const Where w = a.where();
  a.done();
  run(p, w, linear_fit_cpu, linear_fit_cuda);
}

void permutation_accumulate(const py::kwargs& kw) {
  Args a("permutation_accumulate", kw);
  const Buf perms = a.get<Buf>("perms"), values = a.get<Buf>("values"), mean = a.get<Buf>("mean");
  const OptBuf stderr_out = a.opt_buf("stderr");
  const Buf work = a.get<Buf>("work");
  const int64_t B = a.get<int64_t>("B"), P = a.get<int64_t>("P"), d = a.get<int64_t>("d");
  const int64_t T = a.get<int64_t>("T"), perm_bstride = a.get<int64_t>("perm_bstride");
  const int64_t unit = a.get<int64_t>("unit");
  const Where w = a.where();
  const int device = w.device;
  a.done();
  PermutationAccumulateParams p;
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
  p.work =
      check<double>(work, "work", permutation_accumulate_workspace_doubles(p), Dtype::kFloat64);
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
  run(p, w, permutation_accumulate_cpu, permutation_accumulate_cuda);
}

void banzhaf_msr(const py::kwargs& kw) {
  Args a("banzhaf_msr", kw);
  const Buf masks = a.get<Buf>("masks");
  const OptBuf counts = a.opt_buf("counts");
  const Buf values = a.get<Buf>("values"), out = a.get<Buf>("out");
  const int64_t B = a.get<int64_t>("B"), n = a.get<int64_t>("n"), d = a.get<int64_t>("d");
  const int64_t T = a.get<int64_t>("T"), mask_bstride = a.get<int64_t>("mask_bstride");
  const int64_t count_bstride = a.get<int64_t>("count_bstride");
  const Where w = a.where();
  a.done();
  BanzhafMsrParams p;
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
  run(p, w, banzhaf_msr_cpu, banzhaf_msr_cuda);
}

void exact_values(const py::kwargs& kw) {
  Args a("exact_values", kw);
  const Buf values = a.get<Buf>("values"), out = a.get<Buf>("out");
  const int64_t B = a.get<int64_t>("B"), d = a.get<int64_t>("d"), T = a.get<int64_t>("T");
  const bool banzhaf_mode = a.get<bool>("banzhaf");
  const Where w = a.where();
  a.done();
  ExactValuesParams p;
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
  run(p, w, exact_values_cpu, exact_values_cuda);
}

// pack_masks and unpack_masks share their sizes and checks.
PackMasksParams pack_params(Args& a) {
  const Buf masks = a.get<Buf>("masks"), keys = a.get<Buf>("keys");
  const int64_t n = a.get<int64_t>("n"), d = a.get<int64_t>("d");
  PackMasksParams p;
  check_nonneg(n, "n");
  check_positive(d, "d");
  check_dims({{"n", n}, {"d", d}});
  p.n = n, p.d = d;
  p.masks = check<uint8_t>(masks, "masks", n * d, Dtype::kUInt8);
  p.keys = check<int64_t>(keys, "keys", n * ((d + 63) / 64), Dtype::kInt64);
  return p;
}

void pack_masks(const py::kwargs& kw) {
  Args a("pack_masks", kw);
  const PackMasksParams p = pack_params(a);
  const Where w = a.where();
  a.done();
  run(p, w, pack_masks_cpu, pack_masks_cuda);
}

void unpack_masks(const py::kwargs& kw) {
  Args a("unpack_masks", kw);
  const PackMasksParams p = pack_params(a);
  const Where w = a.where();
  a.done();
  run(p, w, unpack_masks_cpu, unpack_masks_cuda);
}

// The paths of both path kernels: sizes, x and the baselines (of x's dtype, or of
// `dtype_of`'s when given: path_integrate's gradients).
void read_path_grid(Args& a, PathGrid* p, const Buf* dtype_of, const char* dtype_name) {
  p->B = a.get<int64_t>("B"), p->K = a.get<int64_t>("K"), p->J = a.get<int64_t>("J");
  p->E = a.get<int64_t>("E"), p->base_bstride = a.get<int64_t>("base_bstride");
  const int64_t B = p->B, K = p->K, J = p->J, E = p->E;
  check_nonneg(B, "B"), check_nonneg(K, "K"), check_nonneg(J, "J"), check_nonneg(E, "E");
  check_dims({{"B", B}, {"K", K}, {"J", J}, {"E", E}});
  check_bstride(p->base_bstride, K * E, "baselines");
  const Buf x = a.get<Buf>("x");
  p->dtype = float_dtype(dtype_of ? *dtype_of : x, dtype_name);
  p->x = check<void>(x, "x", B * E, p->dtype);
  p->base =
      check<void>(a.get<Buf>("base"), "baselines", (p->base_bstride ? B : 1) * K * E, p->dtype);
}

void path_points(const py::kwargs& kw) {
  Args a("path_points", kw);
  PathPointsParams p;
  read_path_grid(a, &p, nullptr, "x");
  p.alphas = check<void>(a.get<Buf>("alphas"), "alphas", p.J, p.dtype);
  p.out = check<void>(a.get<Buf>("out"), "out", p.B * p.K * p.J * p.E, p.dtype);
  const Where w = a.where();
  a.done();
  run(p, w, path_points_cpu, path_points_cuda);
}

void path_integrate(const py::kwargs& kw) {
  Args a("path_integrate", kw);
  PathIntegrateParams p;
  const int reduction = a.get<int>("reduction");
  if (reduction < 0 || reduction > 2) {
    bad("reduction: must be 0 (mean), 1 (sum) or 2 (none), got " + std::to_string(reduction));
  }
  p.reduction = static_cast<Reduction>(reduction);
  p.multiply_by_inputs = a.get<bool>("multiply_by_inputs");
  const Buf grads = a.get<Buf>("grads");
  read_path_grid(a, &p, &grads, "grads");
  const int64_t B = p.B, K = p.K, J = p.J, E = p.E;
  // The mean over no baselines is 0 / 0; their sum (or no per-path rows) is fine.
  if (K < 1 && reduction == 0) bad("K: the mean over baselines needs K >= 1, got 0");
  p.grads = check<void>(grads, "grads", B * K * J * E, p.dtype);
  p.weights = check<void>(a.get<Buf>("weights"), "weights", J, p.dtype);
  const OptBuf path_weights = a.opt_buf("path_weights");
  const int64_t pw_bstride = a.get<int64_t>("pw_bstride", 0);
  if (path_weights) {
    check_bstride(pw_bstride, K * E, "path_weights");
    p.pw_bstride = pw_bstride;
    p.path_weights =
        check<void>(*path_weights, "path_weights", (pw_bstride ? B : 1) * K * E, p.dtype);
  }
  p.out = check<void>(a.get<Buf>("out"), "out", (p.reduction == Reduction::kNone ? B * K : B) * E,
                      p.dtype);
  const Where w = a.where();
  a.done();
  run(p, w, path_integrate_cpu, path_integrate_cuda);
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
  m.def("kernel_names", [] {
#define XATTR_KERNEL_NAME(name, Params) #name,
    return std::vector<std::string>{XATTR_KERNELS(XATTR_KERNEL_NAME)};
#undef XATTR_KERNEL_NAME
  });
  m.def("max_enumeration_features", [] { return kMaxEnumerationFeatures; });
  m.def("quadrature", [](const std::string& method, int64_t n) {
    std::vector<double> a, w;
    quadrature(method.c_str(), n, &a, &w);
    return std::make_tuple(a, w);
  });
  // The kernels take keyword arguments only, named as their params structs' fields
  // (csrc/include/xattr/params.h), plus device, stream and threads (xattr._ext.where).
  m.def("sample", &sample);
  m.def("mask_apply", &mask_apply);
  m.def("kernel_shap_solve_workspace", &kernel_shap_solve_workspace);
  m.def("kernel_shap_solve", &kernel_shap_solve);
  m.def("linear_fit_workspace", &linear_fit_workspace);
  m.def("linear_fit", &linear_fit);
  m.def("permutation_accumulate", &permutation_accumulate);
  m.def("banzhaf_msr", &banzhaf_msr);
  m.def("exact_values", &exact_values);
  m.def("pack_masks", &pack_masks);
  m.def("unpack_masks", &unpack_masks);
  m.def("path_points", &path_points);
  m.def("path_integrate", &path_integrate);
  m.def("rescale_multiplier", &rescale_multiplier);
}
