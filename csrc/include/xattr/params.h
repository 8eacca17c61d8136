// Plain parameter structs, one per kernel: pointers, sizes and strides, no
// torch types (the FlashAttention pattern). Mask bytes are read by mask_bit
// (common.h): nonzero is present, as torch reads a bool; the solvers use the
// 0/1 it returns as a number, without branches. Shapes are written as comments in
// the order the memory is laid out; every tensor is contiguous, and a batch
// stride of 0 means "shared across the batch".
#pragma once

#include "xattr/common.h"

namespace xattr {

// ---------------------------------------------------------------- sampling
enum class Sampler : int32_t {
  kBernoulli = 0,    // each bit 1 with probability p
  kExactK = 1,       // uniform among the subsets of size k
  kShapley = 2,      // size from the Shapley kernel, then a uniform subset
  kPermutation = 3,  // uniform permutation of 0..d-1 (int32 output)
  kMus = 4,          // MuS structured noise: q rows, column sums exactly L
  kStratified = 5,   // m uniform subsets of each size k = 0..d-1
  kEnumerate = 6,    // row r = the bits of r (all 2^d coalitions)
};

struct SampleParams {
  Sampler sampler = Sampler::kBernoulli;
  uint8_t* masks = nullptr;  // [n, d] (every sampler but kPermutation)
  int32_t* perms = nullptr;  // [n, d] (kPermutation)
  int64_t n = 0;             // rows produced by this call
  int64_t d = 0;             // features
  int64_t row_offset = 0;    // global index of the first row (chunking)
  uint64_t seed = 0;
  uint64_t bern_threshold = 0;  // kBernoulli: round(p * 2^32), in [0, 2^32]
  int64_t k = 0;                // kExactK
  // kShapley: cumulative size thresholds [d - 1] as 64-bit words, computed
  // exactly in integers by xattr.ops._thresholds.shapley_size_thresholds
  // (floor(P(size <= s + 1) * 2^64), the last 2^64 - 1); size s + 1 is drawn
  // when T[s-1] <= r < T[s]. Exact integers, so no platform's rounding leaks in.
  const uint64_t* size_thresholds = nullptr;
  bool paired = false;              // kShapley: complement pairs; kPermutation: antithetic
  int64_t q = 0, L = 0;             // kMus: q rows, L = lambda * q ones per column
  uint64_t* mus_offsets = nullptr;  // kMus: workspace [d], the seed vector times q
  int64_t m = 0;                    // kStratified: subsets per size
};

// --------------------------------------------------------------- masking
// out[b, s, e] = mask(b, s, group[b, e]) ? x[b, e] : base[b, e]
// which equals base + m * (x - base) for binary m, exactly.
struct MaskApplyParams {
  Dtype dtype = Dtype::kFloat32;   // of x, base and out (float32/float64/int64)
  const void* x = nullptr;         // [B, E]
  const void* base = nullptr;      // [Bb, E], Bb in {1, B}
  const int64_t* group = nullptr;  // [Bg, E], Bg in {1, B}; ids in [0, d)
  const uint8_t* masks = nullptr;  // [Bm, S, d], Bm in {1, B}; null: fused sampler
  void* out = nullptr;             // [B, S, E]
  int64_t B = 0, S = 0, E = 0, d = 0;
  int64_t base_bstride = 0, group_bstride = 0, mask_bstride = 0;
  // Fused "sample and apply": the bit of (row, feature) is the bit the
  // kBernoulli / kMus sampler writes at that place, so results equal
  // sample-then-apply bit for bit. Row = s + row_offset, plus b * S when
  // per_example (Bernoulli only).
  Sampler sampler = Sampler::kBernoulli;
  uint64_t seed = 0;
  uint64_t bern_threshold = 0;
  int64_t q = 0, L = 0;
  int64_t row_offset = 0;
  bool per_example = false;
};

// ------------------------------------------------------- coalition solvers
// The weighted coalition design the KernelSHAP and LIME solvers share: binary
// masks, sample weights, the game's values on them, and the solvers' workspaces.
struct CoalitionDesign {
  Dtype dtype = Dtype::kFloat32;   // of weights, values and the results
  const uint8_t* masks = nullptr;  // [Bm, n, d]
  const void* weights = nullptr;   // [Bw, n]
  const void* values = nullptr;    // [B, n, T]
  double* work = nullptr;          // [<kernel>_workspace_doubles()]
  int32_t* scratch = nullptr;      // [NG, 2d] 0/1 activity and index lists
  int64_t B = 0, n = 0, d = 0, T = 0;
  int64_t mask_bstride = 0, weight_bstride = 0;
};

// KernelSHAP: weighted least squares with sum(phi) = v_full - v_empty exact.
// rho >= 0 adds the ridge rho * scale * ||phi||^2 (scale: the mean eigenvalue of
// the weighted Gram on the efficiency plane, trace(P Z'WZ P) / (d - 1)).
struct KernelShapSolveParams : CoalitionDesign {
  const void* v_empty = nullptr;  // [B, T]
  const void* v_full = nullptr;   // [B, T]
  void* out = nullptr;            // [B, T, d]
  double rho = 0.0;
};

// LIME: weighted ridge (closed form) or weighted lasso (coordinate descent),
// both with an unpenalised intercept, as scikit-learn's Ridge / Lasso with
// sample_weight.
struct LinearFitParams : CoalitionDesign {
  void* coef = nullptr;       // [B, T, d]
  void* intercept = nullptr;  // [B, T]
  double alpha = 0.0;
  bool lasso = false;
  int64_t max_iter = 0;
  double tol = 0.0;
};

// Shapley sampling: marginal contributions along permutations.
// values[b, p, j] = v(first j features of perm p), j = 0..d.
struct PermutationAccumulateParams {
  Dtype dtype = Dtype::kFloat32;
  const int32_t* perms = nullptr;  // [Bp, P, d]
  const void* values = nullptr;    // [B, P, d + 1, T]
  void* mean = nullptr;            // [B, T, d]
  void* stderr_out = nullptr;      // [B, T, d] or null
  double* work = nullptr;          // [B * T, 3 * d]
  int64_t B = 0, P = 0, d = 0, T = 0;
  int64_t perm_bstride = 0;
  int64_t unit = 1;  // 2: antithetic pairs are averaged before the variance
};

// Maximum-sample-reuse Banzhaf over sampled coalitions (with counts).
struct BanzhafMsrParams {
  Dtype dtype = Dtype::kFloat32;
  const uint8_t* masks = nullptr;  // [Bm, n, d]
  const void* counts = nullptr;    // [Bc, n] or null (all ones)
  const void* values = nullptr;    // [B, n, T]
  void* out = nullptr;             // [B, T, d]
  int64_t B = 0, n = 0, d = 0, T = 0;
  int64_t mask_bstride = 0, count_bstride = 0;
};

// Exact Shapley / Banzhaf from all 2^d coalition values; row r of values is
// the coalition whose feature i is present iff bit i of r is set.
struct ExactValuesParams {
  Dtype dtype = Dtype::kFloat32;
  const void* values = nullptr;  // [B, 2^d, T]
  void* out = nullptr;           // [B, T, d]
  int64_t B = 0, d = 0, T = 0;
  bool banzhaf = false;
};

// Bit packing for de-duplication: key[r, w] holds features 64w..64w+63.
struct PackMasksParams {
  uint8_t* masks = nullptr;  // [n, d]
  int64_t* keys = nullptr;   // [n, W], W = ceil(d / 64)
  int64_t n = 0, d = 0;
};

// ------------------------------------------------------- path integration
// The paths both path kernels walk: B inputs, K baselines each, J steps.
struct PathGrid {
  Dtype dtype = Dtype::kFloat32;
  const void* x = nullptr;     // [B, E]
  const void* base = nullptr;  // [Bb, K, E]
  int64_t B = 0, K = 0, J = 0, E = 0;
  int64_t base_bstride = 0;
};

// out[b, k, j, e] = base[b, k, e] + alpha[j] * (x[b, e] - base[b, k, e])
struct PathPointsParams : PathGrid {
  const void* alphas = nullptr;  // [J]
  void* out = nullptr;           // [B, K, J, E]
};

// attr[b, (k,) e] = reduce_k (x - base_k)[e] * sum_j w[j] grads[b, k, j, e]
enum class Reduction : int32_t { kMean = 0, kSum = 1, kNone = 2 };

struct PathIntegrateParams : PathGrid {
  const void* grads = nullptr;    // [B, K, J, E]
  const void* weights = nullptr;  // [J]
  void* out = nullptr;            // [B, E] (mean, sum) or [B, K, E] (none)
  // Optional [Bw, K, E] weight of every path's every element (Shapley Integrated
  // Gradients' combinations), applied before the reduction; pw_bstride 0 or K * E.
  const void* path_weights = nullptr;
  int64_t pw_bstride = 0;
  Reduction reduction = Reduction::kMean;
  bool multiply_by_inputs = true;
};

// ------------------------------------------------------------ DeepLift's rules
// The rescale rule's multiplier of an elementwise nonlinearity y = g(x) run on one
// batch [inputs; references] (xattr._core.overrides.Pairing): input element e < H
// (H = rows * R) is paired with reference element H + (e mod P), and
//   m[e] = (y[e] - y[ref]) / (x[e] - x[ref])   where |x[e] - x[ref]| >= eps,
//   m[e] = g'(x[e])                              where it is smaller.
enum class Nonlinearity : int32_t {
  kRelu = 0,     // g'(x) = x > 0
  kSigmoid = 1,  // g'(x) = y (1 - y)
  kTanh = 2,     // g'(x) = 1 - y^2
  kGiven = 3,    // g'(x) = deriv[e]
};

struct RescaleParams {
  Dtype dtype = Dtype::kFloat32;
  const void* x = nullptr;      // [H + P]: the inputs' rows, then the references'
  const void* y = nullptr;      // [H + P]: g(x)
  const void* deriv = nullptr;  // [H] (kGiven only)
  void* m = nullptr;            // [H]
  int64_t rows = 0, R = 0;      // H = rows * R; a row is R elements
  int64_t P = 0;                // the references' elements, dividing H
  Nonlinearity kind = Nonlinearity::kRelu;
  double eps = 0.0;
};

}  // namespace xattr
