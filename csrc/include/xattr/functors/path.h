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

  // CPU: one row with its pointers and alpha hoisted.
  void span(int64_t row, int64_t e0, int64_t e1) const {
    const int64_t j = row % p.J;
    const int64_t k = (row / p.J) % p.K;
    const int64_t b = row / (p.J * p.K);
    const T* x = static_cast<const T*>(p.x) + b * p.E;
    const T* base = static_cast<const T*>(p.base) + b * p.base_bstride + k * p.E;
    const T alpha = static_cast<const T*>(p.alphas)[j];
    T* out = static_cast<T*>(p.out) + row * p.E;
    for (int64_t e = e0; e < e1; ++e) out[e] = base[e] + alpha * (x[e] - base[e]);
  }
};

// Element (row, col = e) with row = b (mean / sum over baselines) or
// row = b * K + k (no reduction):
//   attr = (x - base_k) * sum_j w_j grads[b, k, j, e]   (* pw[b, k, e] if given)
// accumulated in double. Linear in the weights, so a long path can be
// integrated in chunks of steps (or of baselines, with kSum) and added up.
template <typename T>
struct PathIntegrateOp {
  static constexpr bool kHeavy = true;  // each element sums K * J gradients
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
    if (p.path_weights != nullptr) {
      acc *= static_cast<double>(
          static_cast<const T*>(p.path_weights)[b * p.pw_bstride + k * p.E + e]);
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

  // CPU: the same sums, accumulated a tile of elements at a time so that the
  // gradients are read contiguously (step by step) rather than with stride E.
  // Each element's additions happen in the same order as in operator().
  void span(int64_t row, int64_t e0, int64_t e1) const {
    constexpr int64_t kTile = 256;
    const bool none = p.reduction == Reduction::kNone;
    const int64_t b = none ? row / p.K : row;
    const int64_t k0 = none ? row % p.K : 0;
    const int64_t k1 = none ? k0 + 1 : p.K;
    const T* w = static_cast<const T*>(p.weights);
    const T* x = static_cast<const T*>(p.x) + b * p.E;
    T* out = static_cast<T*>(p.out) + row * p.E;
    double acc[kTile], one[kTile];
    for (int64_t t0 = e0; t0 < e1; t0 += kTile) {
      const int64_t n = (e1 - t0) < kTile ? (e1 - t0) : kTile;
      for (int64_t i = 0; i < n; ++i) acc[i] = 0.0;
      for (int64_t k = k0; k < k1; ++k) {
        const T* g = static_cast<const T*>(p.grads) + ((b * p.K + k) * p.J) * p.E + t0;
        const T* base = static_cast<const T*>(p.base) + b * p.base_bstride + k * p.E + t0;
        const T* pw = p.path_weights == nullptr
                          ? nullptr
                          : static_cast<const T*>(p.path_weights) + b * p.pw_bstride + k * p.E + t0;
        // one = sum_j w_j g_j (the first step assigns: 0 + y == y), then one fused pass
        // for the factors and the sum over baselines, in operator()'s order.
        const double w0 = p.J > 0 ? static_cast<double>(w[0]) : 0.0;
        for (int64_t i = 0; i < n; ++i) one[i] = p.J > 0 ? w0 * g[i] : 0.0;
        for (int64_t j = 1; j < p.J; ++j) {
          const double wj = static_cast<double>(w[j]);
          const T* gj = g + j * p.E;
          for (int64_t i = 0; i < n; ++i) one[i] += wj * gj[i];
        }
        if (p.multiply_by_inputs && pw != nullptr) {
          for (int64_t i = 0; i < n; ++i) {
            const double d = static_cast<double>(x[t0 + i]) - static_cast<double>(base[i]);
            acc[i] += one[i] * d * static_cast<double>(pw[i]);
          }
        } else if (p.multiply_by_inputs) {
          for (int64_t i = 0; i < n; ++i) {
            acc[i] += one[i] * (static_cast<double>(x[t0 + i]) - static_cast<double>(base[i]));
          }
        } else if (pw != nullptr) {
          for (int64_t i = 0; i < n; ++i) acc[i] += one[i] * static_cast<double>(pw[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) acc[i] += one[i];
        }
      }
      for (int64_t i = 0; i < n; ++i) {
        double v = acc[i];
        if (p.reduction == Reduction::kMean) v /= static_cast<double>(p.K);
        out[t0 + i] = static_cast<T>(v);
      }
    }
  }
};

}  // namespace xattr
