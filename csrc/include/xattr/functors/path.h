// Path integration for Integrated Gradients with K baselines per input.
#pragma once

#include "xattr/params.h"

namespace xattr {

// Element (row = (b * K + k) * J + j, col = e):
//   out = base + alpha_j * (x - base)     (Captum's order of operations)
template <typename T>
struct PathPointsOp {
  PathPointsParams p;

  XATTR_HD void operator()(int64_t row, int64_t e) const {
    const int64_t j = row % p.J;
    const int64_t bk = row / p.J;
    const int64_t k = bk % p.K;
    const int64_t b = bk / p.K;
    const T* x = static_cast<const T*>(p.x);
    const T* base = static_cast<const T*>(p.base);
    const T alpha = static_cast<const T*>(p.alphas)[j];
    const T bv = base[b * p.base_bstride + k * p.E + e];
    static_cast<T*>(p.out)[row * p.E + e] = bv + alpha * (x[b * p.E + e] - bv);
  }
};

// Element (row, col = e) with row = b (mean / sum over baselines) or
// row = b * K + k (no reduction):
//   attr = (x - base_k) * sum_j w_j grads[b, k, j, e]
// accumulated in double. Linear in the weights, so a long path can be
// integrated in chunks of steps (or of baselines, with kSum) and added up.
template <typename T>
struct PathIntegrateOp {
  PathIntegrateParams p;

  XATTR_HD double one_baseline(int64_t b, int64_t k, int64_t e) const {
    const T* g = static_cast<const T*>(p.grads) + ((b * p.K + k) * p.J) * p.E + e;
    const T* w = static_cast<const T*>(p.weights);
    double acc = 0.0;
    for (int64_t j = 0; j < p.J; ++j) acc += static_cast<double>(w[j]) * g[j * p.E];
    if (p.multiply_by_inputs) {
      const double xv = static_cast<const T*>(p.x)[b * p.E + e];
      const double bv = static_cast<const T*>(p.base)[b * p.base_bstride + k * p.E + e];
      acc *= xv - bv;
    }
    return acc;
  }

  XATTR_HD void operator()(int64_t row, int64_t e) const {
    T* out = static_cast<T*>(p.out);
    if (p.reduction == Reduction::kNone) {
      out[row * p.E + e] = static_cast<T>(one_baseline(row / p.K, row % p.K, e));
      return;
    }
    double acc = 0.0;
    for (int64_t k = 0; k < p.K; ++k) acc += one_baseline(row, k, e);
    if (p.reduction == Reduction::kMean) acc /= static_cast<double>(p.K);
    out[row * p.E + e] = static_cast<T>(acc);
  }
};

}  // namespace xattr
