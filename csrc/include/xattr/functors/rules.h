// DeepLift's rescale rule, element e of the inputs' rows (row = e / R, col = e % R):
//   m[e] = (y[e] - y[ref]) / (x[e] - x[ref]), ref = H + (e mod P),
// or g'(x[e]) where |x[e] - x[ref]| < eps (the secant's limit; also where the two
// are equal, so no 0 / 0 is ever computed). One pass over the batch instead of the
// seven tensor operations (two differences, a division, an absolute value, a
// comparison, the derivative, a select) of the pure-torch reference, with the same
// arithmetic in the same order, so the two agree bit for bit.
#pragma once

#include "xattr/params.h"

namespace xattr {

// K is a template argument so that the CPU's span loop has no branch on it.
template <typename T, Nonlinearity K>
struct RescaleOp {
  RescaleParams p;

  // g'(x) from x, y = g(x) and, for kGiven, the caller's derivative d.
  XATTR_HD static T derivative(T xv, T yv, T d) {
    if (K == Nonlinearity::kRelu) return xv > T(0) ? T(1) : T(0);
    if (K == Nonlinearity::kSigmoid) return yv * (T(1) - yv);
    if (K == Nonlinearity::kTanh) return T(1) - yv * yv;
    return d;
  }

  // The one element formula: (x, y) of an input element and of its reference.
  XATTR_HD static T multiplier(T xv, T yv, T xr, T yr, T d, T eps) {
    const T dx = xv - xr;
    const bool near = (dx < T(0) ? -dx : dx) < eps;
    const T slope = (yv - yr) / (near ? T(1) : dx);
    return near ? derivative(xv, yv, d) : slope;
  }

  XATTR_HD T deriv_at(int64_t e) const {
    return K == Nonlinearity::kGiven ? static_cast<const T*>(p.deriv)[e] : T(0);
  }

  XATTR_HD void operator()(int64_t row, int64_t col) const {
    const T* x = static_cast<const T*>(p.x);
    const T* y = static_cast<const T*>(p.y);
    const int64_t e = row * p.R + col;
    const int64_t ref = p.rows * p.R + (e % p.P);
    static_cast<T*>(p.m)[e] =
        multiplier(x[e], y[e], x[ref], y[ref], deriv_at(e), static_cast<T>(p.eps));
  }

  // CPU: a row's span, its reference offset computed once (P is a multiple of R).
  void span(int64_t row, int64_t c0, int64_t c1) const {
    const int64_t e0 = row * p.R;
    const int64_t r0 = p.rows * p.R + (e0 % p.P);
    const T* __restrict x = static_cast<const T*>(p.x) + e0;
    const T* __restrict y = static_cast<const T*>(p.y) + e0;
    const T* __restrict xr = static_cast<const T*>(p.x) + r0;
    const T* __restrict yr = static_cast<const T*>(p.y) + r0;
    T* __restrict m = static_cast<T*>(p.m) + e0;
    const T eps = static_cast<T>(p.eps);
    if constexpr (K == Nonlinearity::kGiven) {
      const T* __restrict d = static_cast<const T*>(p.deriv) + e0;
      for (int64_t c = c0; c < c1; ++c) m[c] = multiplier(x[c], y[c], xr[c], yr[c], d[c], eps);
    } else {
      for (int64_t c = c0; c < c1; ++c) m[c] = multiplier(x[c], y[c], xr[c], yr[c], T(0), eps);
    }
  }
};

}  // namespace xattr
