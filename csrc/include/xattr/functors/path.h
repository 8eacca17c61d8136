// Path integration for Integrated Gradients with K baselines per input.
#pragma once

#include "xattr/params.h"

namespace xattr {

// Element (row = (b * K + k) * J + j, col = e):
//   out = base + alpha_j * (x - base)     (Captum's order of operations)
template <typename T>
struct PathPointsOp {
  PathPointsParams p;

  // Everything about output row (b, k, j) that does not depend on the element.
  struct Row {
    const T* x;
    const T* base;
    T alpha;
    T* out;
  };

  XATTR_HD Row row_at(int64_t row) const {
    const int64_t j = row % p.J;
    const int64_t bk = row / p.J;
    const int64_t k = bk % p.K;
    const int64_t b = bk / p.K;
    return Row{static_cast<const T*>(p.x) + b * p.E,
               static_cast<const T*>(p.base) + b * p.base_bstride + k * p.E,
               static_cast<const T*>(p.alphas)[j], static_cast<T*>(p.out) + row * p.E};
  }

  // The one element formula (GPU, and the CPU's element launch).
  XATTR_HD static void element(const Row& r, int64_t e) {
    r.out[e] = r.base[e] + r.alpha * (r.x[e] - r.base[e]);
  }

  XATTR_HD void operator()(int64_t row, int64_t e) const { element(row_at(row), e); }

  // CPU: element() over one row, its pointers and alpha hoisted.
  void span(int64_t row, int64_t e0, int64_t e1) const {
    const Row r = row_at(row);
    for (int64_t e = e0; e < e1; ++e) element(r, e);
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

  // Output row -> example b and its baselines k0 .. k1 - 1.
  XATTR_HD void baselines(int64_t row, int64_t* b, int64_t* k0, int64_t* k1) const {
    const bool none = p.reduction == Reduction::kNone;
    *b = none ? row / p.K : row;
    *k0 = none ? row % p.K : 0;
    *k1 = none ? *k0 + 1 : p.K;
  }

  // Pointers of baseline k of example b, at element 0.
  XATTR_HD const T* grads_at(int64_t b, int64_t k) const {
    return static_cast<const T*>(p.grads) + ((b * p.K + k) * p.J) * p.E;
  }
  XATTR_HD const T* base_at(int64_t b, int64_t k) const {
    return static_cast<const T*>(p.base) + b * p.base_bstride + k * p.E;
  }
  XATTR_HD const T* pw_at(int64_t b, int64_t k) const {
    return p.path_weights == nullptr
               ? nullptr
               : static_cast<const T*>(p.path_weights) + b * p.pw_bstride + k * p.E;
  }

  // Step j's term of element e's weighted sum: acc + w_j g_j.
  XATTR_HD double step(double acc, int64_t j, const T* g, int64_t e) const {
    return acc + static_cast<double>(static_cast<const T*>(p.weights)[j]) * g[j * p.E + e];
  }

  // One baseline's weighted sum `one` times its factors: (x - base) (with
  // multiply_by_inputs) and the path weight (when given).
  XATTR_HD double scaled(double one, const T* x, const T* base, const T* pw, int64_t e) const {
    if (p.multiply_by_inputs) one *= static_cast<double>(x[e]) - static_cast<double>(base[e]);
    if (pw != nullptr) one *= static_cast<double>(pw[e]);
    return one;
  }

  XATTR_HD T finish(double acc) const {
    if (p.reduction == Reduction::kMean) acc /= static_cast<double>(p.K);
    return static_cast<T>(acc);
  }

  // The one element formula (GPU, and the CPU's element launch):
  //   acc = sum_k scaled(sum_j w_j g[k, j, e]), each sum from 0.0 in order.
  XATTR_HD void operator()(int64_t row, int64_t e) const {
    int64_t b, k0, k1;
    baselines(row, &b, &k0, &k1);
    const T* x = static_cast<const T*>(p.x) + b * p.E;
    double acc = 0.0;
    for (int64_t k = k0; k < k1; ++k) {
      const T* g = grads_at(b, k);
      double one = 0.0;
      for (int64_t j = 0; j < p.J; ++j) one = step(one, j, g, e);
      acc += scaled(one, x, base_at(b, k), pw_at(b, k), e);
    }
    static_cast<T*>(p.out)[row * p.E + e] = finish(acc);
  }

  // CPU: operator()'s sums in the same order for every element, a tile of
  // elements at a time, so that the gradients are read contiguously (step by
  // step) rather than with stride E.
  void span(int64_t row, int64_t e0, int64_t e1) const {
    constexpr int64_t kTile = 256;
    int64_t b, k0, k1;
    baselines(row, &b, &k0, &k1);
    const T* x = static_cast<const T*>(p.x) + b * p.E;
    T* out = static_cast<T*>(p.out) + row * p.E;
    double acc[kTile], one[kTile];
    for (int64_t t0 = e0; t0 < e1; t0 += kTile) {
      const int64_t n = (e1 - t0) < kTile ? (e1 - t0) : kTile;
      for (int64_t i = 0; i < n; ++i) acc[i] = 0.0;
      for (int64_t k = k0; k < k1; ++k) {
        const T* g = grads_at(b, k) + t0;
        const T* base = base_at(b, k) + t0;
        const T* pw = pw_at(b, k);
        if (pw != nullptr) pw += t0;
        for (int64_t i = 0; i < n; ++i) one[i] = 0.0;
        for (int64_t j = 0; j < p.J; ++j) {
          for (int64_t i = 0; i < n; ++i) one[i] = step(one[i], j, g, i);
        }
        for (int64_t i = 0; i < n; ++i) acc[i] += scaled(one[i], x + t0, base, pw, i);
      }
      for (int64_t i = 0; i < n; ++i) out[t0 + i] = finish(acc[i]);
    }
  }
};

}  // namespace xattr
