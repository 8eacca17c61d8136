// Coalition evaluation: turn model outputs on coalitions into attributions.
// Every solver works in double whatever the input dtype. Each op handles one
// problem (or one output element) per call, so the CPU driver runs problems
// on OpenMP threads and the CUDA driver on GPU threads, with the same code.
#pragma once

#include <cmath>
#include <vector>

#include "xattr/params.h"

namespace xattr {

template <typename T>
XATTR_HD double ld(const void* p, int64_t i) {
  return static_cast<double>(static_cast<const T*>(p)[i]);
}

// ------------------------------------------------------------ dense algebra
// In-place Cholesky of the lower triangle of the m x m matrix A (row-major).
// A pivot at or below tol * max(diag) marks a direction the data do not
// determine: its column is zeroed and the solve sets that unknown to 0, which
// still yields a least-squares solution of a rank-deficient system.
XATTR_HD void cholesky_drop(double* A, int64_t m) {
  double maxdiag = 0.0;
  for (int64_t i = 0; i < m; ++i) maxdiag = fmax(maxdiag, A[i * m + i]);
  const double tol = 1e-11 * maxdiag;
  for (int64_t j = 0; j < m; ++j) {
    double s = A[j * m + j];
    for (int64_t k = 0; k < j; ++k) s -= A[j * m + k] * A[j * m + k];
    if (!(s > tol)) {
      for (int64_t i = j; i < m; ++i) A[i * m + j] = 0.0;
      continue;
    }
    const double ljj = sqrt(s);
    A[j * m + j] = ljj;
    for (int64_t i = j + 1; i < m; ++i) {
      double t = A[i * m + j];
      for (int64_t k = 0; k < j; ++k) t -= A[i * m + k] * A[j * m + k];
      A[i * m + j] = t / ljj;
    }
  }
}

// Solves L L^T x = c in place (c becomes x); dropped pivots give x_j = 0.
XATTR_HD void cholesky_solve(const double* L, int64_t m, double* c) {
  for (int64_t j = 0; j < m; ++j) {
    const double ljj = L[j * m + j];
    if (ljj == 0.0) {
      c[j] = 0.0;
      continue;
    }
    double t = c[j];
    for (int64_t k = 0; k < j; ++k) t -= L[j * m + k] * c[k];
    c[j] = t / ljj;
  }
  for (int64_t j = m - 1; j >= 0; --j) {
    const double ljj = L[j * m + j];
    if (ljj == 0.0) {
      c[j] = 0.0;
      continue;
    }
    double t = c[j];
    for (int64_t k = j + 1; k < m; ++k) t -= L[k * m + j] * c[k];
    c[j] = t / ljj;
  }
}

// Adds w * act act' to the lower triangle of the m x m matrix G, for a 0/1
// vector act. The active rows are listed first without branches (masks are
// random, so a branch per feature would be mispredicted half the time); each
// active row then gets a contiguous, vectorisable multiply-add.
XATTR_HD void add_binary_outer(double* G, int64_t m, const int32_t* act, int32_t* idx, double w) {
  int64_t cnt = 0;
  for (int64_t i = 0; i < m; ++i) {
    idx[cnt] = static_cast<int32_t>(i);
    cnt += act[i];
  }
  for (int64_t a = 0; a < cnt; ++a) {
    const int64_t i = idx[a];
    double* row = G + i * m;
    for (int64_t j = 0; j <= i; ++j) row[j] += w * static_cast<double>(act[j]);
  }
}

// ------------------------------------------------------------- KernelSHAP
// Constrained WLS: minimise sum_r w_r (y_r - v0 - z_r . phi)^2 subject to
// sum(phi) = delta = v(N) - v(empty). Eliminating the last feature,
// phi_{d-1} = delta - sum_{i<d-1} phi_i, leaves an unconstrained problem in
// m = d - 1 unknowns with regressors a_ri = z_ri - z_r,d-1 (in {-1, 0, 1}) and
// targets y_r - v0 - z_r,d-1 * delta; the constraint then holds exactly (up
// to the final rounding). Gram matrices depend only on masks and weights, so
// when both are shared across the batch one factorisation serves every input.
XATTR_HD int64_t wls_groups(const WlsParams& p) {
  return (p.mask_bstride == 0 && p.weight_bstride == 0) ? 1 : p.B;
}

template <typename T>
struct WlsGramOp {  // row = group
  WlsParams p;
  XATTR_HD void operator()(int64_t g, int64_t) const {
    const int64_t m = p.d - 1;
    double* G = p.work + g * m * m;
    int32_t* act = p.scratch + g * 2 * p.d;
    int32_t* idx = act + p.d;
    for (int64_t i = 0; i < m * m; ++i) G[i] = 0.0;
    for (int64_t r = 0; r < p.n; ++r) {
      const uint8_t* z = p.masks + g * p.mask_bstride + r * p.d;
      const int32_t zd = mask_bit(z[m]);
      for (int64_t i = 0; i < m; ++i) act[i] = mask_bit(z[i]) ^ zd;
      add_binary_outer(G, m, act, idx, ld<T>(p.weights, g * p.weight_bstride + r));
    }
    cholesky_drop(G, m);
  }
};

template <typename T>
struct WlsSolveOp {  // row = b * T + t
  WlsParams p;
  XATTR_HD void operator()(int64_t bt, int64_t) const {
    const int64_t b = bt / p.T, t = bt % p.T, m = p.d - 1;
    const int64_t ng = wls_groups(p);
    const double* L = p.work + (ng == 1 ? 0 : b) * m * m;
    double* c = p.work + ng * m * m + bt * m;
    const double v0 = ld<T>(p.v_empty, bt);
    const double delta = ld<T>(p.v_full, bt) - v0;
    for (int64_t i = 0; i < m; ++i) c[i] = 0.0;
    for (int64_t r = 0; r < p.n; ++r) {
      const uint8_t* z = p.masks + b * p.mask_bstride + r * p.d;
      const uint8_t zd = mask_bit(z[m]);
      const double y = ld<T>(p.values, (b * p.n + r) * p.T + t) - v0 - (zd ? delta : 0.0);
      const double wy = ld<T>(p.weights, b * p.weight_bstride + r) * (zd ? -y : y);
      const int zb = zd ? 1 : 0;  // no branches in the loop: masks are random
      for (int64_t i = 0; i < m; ++i) c[i] += wy * static_cast<double>(mask_bit(z[i]) ^ zb);
    }
    cholesky_solve(L, m, c);
    T* out = static_cast<T*>(p.out) + bt * p.d;
    double rest = delta;
    for (int64_t i = 0; i < m; ++i) {
      out[i] = static_cast<T>(c[i]);
      rest -= c[i];
    }
    out[m] = static_cast<T>(rest);
  }
};

// ------------------------------------------------------------ LIME fits
// With weights w, sw = sum(w), weighted means xbar, ybar and centred data:
//   ridge: (Xc' W Xc + alpha I) beta = Xc' W yc     (sklearn Ridge)
//   lasso: min 1/2 sum_r (w_r / sw) (yc_r - Xc_r beta)^2 + alpha |beta|_1
//          (sklearn Lasso: weights rescaled to sum to n, loss / (2 n))
//   intercept = ybar - xbar . beta
// Group block: [d * d] Gram (+ alpha I and factorised for ridge), [d] xbar, sw.
XATTR_HD int64_t linear_fit_groups(const LinearFitParams& p) {
  return (p.mask_bstride == 0 && p.weight_bstride == 0) ? 1 : p.B;
}

template <typename T>
struct LinearGramOp {  // row = group
  LinearFitParams p;
  XATTR_HD void operator()(int64_t g, int64_t) const {
    const int64_t d = p.d;
    double* G = p.work + g * (d * d + d + 1);
    double* xbar = G + d * d;
    int32_t* act = p.scratch + g * 2 * d;
    int32_t* idx = act + d;
    for (int64_t i = 0; i < d * d + d; ++i) G[i] = 0.0;
    double sw = 0.0;
    for (int64_t r = 0; r < p.n; ++r) {
      const uint8_t* z = p.masks + g * p.mask_bstride + r * d;
      const double w = ld<T>(p.weights, g * p.weight_bstride + r);
      for (int64_t i = 0; i < d; ++i) {
        act[i] = mask_bit(z[i]);
        xbar[i] += w * static_cast<double>(act[i]);
      }
      add_binary_outer(G, d, act, idx, w);
      sw += w;
    }
    xbar[d] = sw;
    for (int64_t i = 0; i < d; ++i) xbar[i] = sw > 0.0 ? xbar[i] / sw : 0.0;
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = 0; j <= i; ++j) {
        const double v = G[i * d + j] - sw * xbar[i] * xbar[j];
        G[i * d + j] = v;
        G[j * d + i] = v;
      }
    }
    if (!p.lasso) {
      for (int64_t i = 0; i < d; ++i) G[i * d + i] += p.alpha;
      cholesky_drop(G, d);
    }
  }
};

XATTR_HD double soft_threshold(double v, double a) {
  return v > a ? v - a : (v < -a ? v + a : 0.0);
}

template <typename T>
struct LinearSolveOp {  // row = b * T + t
  LinearFitParams p;
  XATTR_HD void operator()(int64_t bt, int64_t) const {
    const int64_t b = bt / p.T, t = bt % p.T, d = p.d;
    const int64_t ng = linear_fit_groups(p);
    const double* G = p.work + (ng == 1 ? 0 : b) * (d * d + d + 1);
    const double* xbar = G + d * d;
    const double sw = xbar[d];
    double* c = p.work + ng * (d * d + d + 1) + bt * 3 * d;
    double* beta = c + d;
    double ybar = 0.0;
    for (int64_t r = 0; r < p.n; ++r) {
      ybar += ld<T>(p.weights, b * p.weight_bstride + r) * ld<T>(p.values, (b * p.n + r) * p.T + t);
    }
    ybar = sw > 0.0 ? ybar / sw : 0.0;
    for (int64_t i = 0; i < d; ++i) c[i] = 0.0;
    for (int64_t r = 0; r < p.n; ++r) {
      const uint8_t* z = p.masks + b * p.mask_bstride + r * d;
      const double wy = ld<T>(p.weights, b * p.weight_bstride + r) *
                        (ld<T>(p.values, (b * p.n + r) * p.T + t) - ybar);
      for (int64_t i = 0; i < d; ++i) c[i] += wy * static_cast<double>(mask_bit(z[i]));
    }
    if (!p.lasso) {
      for (int64_t i = 0; i < d; ++i) beta[i] = c[i];
      cholesky_solve(G, d, beta);
    } else {
      // Cyclic coordinate descent on the Gram form, from beta = 0, keeping
      // q = (G / sw) beta up to date (a column update only when beta_j moves).
      const double inv = sw > 0.0 ? 1.0 / sw : 0.0;
      double* q = c + 2 * d;
      for (int64_t i = 0; i < d; ++i) beta[i] = q[i] = 0.0;
      for (int64_t it = 0; it < p.max_iter; ++it) {
        double max_step = 0.0, max_beta = 0.0;
        for (int64_t j = 0; j < d; ++j) {
          const double gjj = G[j * d + j] * inv;
          if (!(gjj > 0.0)) continue;
          const double rho = c[j] * inv - (q[j] - gjj * beta[j]);
          const double nb = soft_threshold(rho, p.alpha) / gjj;
          const double step = nb - beta[j];
          max_step = fmax(max_step, fabs(step));
          max_beta = fmax(max_beta, fabs(nb));
          beta[j] = nb;
          if (step != 0.0) {
            for (int64_t k = 0; k < d; ++k) q[k] += G[k * d + j] * inv * step;
          }
        }
        if (max_step <= p.tol * max_beta || max_step == 0.0) break;
      }
    }
    T* coef = static_cast<T*>(p.coef) + bt * d;
    double icpt = ybar;
    for (int64_t i = 0; i < d; ++i) {
      coef[i] = static_cast<T>(beta[i]);
      icpt -= xbar[i] * beta[i];
    }
    static_cast<T*>(p.intercept)[bt] = static_cast<T>(icpt);
  }
};

// ---------------------------------------------------- Shapley sampling
// Marginal contributions along permutations, averaged over "units" (one
// permutation, or an antithetic pair averaged first). Welford's update gives
// the mean and the standard error of the mean over units in one pass.
template <typename T>
struct PermAccumOp {  // row = b * T + t
  PermAccumParams p;
  XATTR_HD void operator()(int64_t bt, int64_t) const {
    const int64_t b = bt / p.T, t = bt % p.T, d = p.d;
    double* mean = p.work + bt * 3 * d;
    double* m2 = mean + d;
    double* unit = m2 + d;
    for (int64_t i = 0; i < 3 * d; ++i) mean[i] = 0.0;
    int64_t count = 0;
    for (int64_t q = 0; q < p.P; ++q) {
      const int32_t* perm = p.perms + b * p.perm_bstride + q * d;
      const int64_t v0 = ((b * p.P + q) * (d + 1)) * p.T + t;
      for (int64_t j = 0; j < d; ++j) {
        const int32_t f = perm[j];
        if (f >= 0 && f < d) {
          unit[f] += ld<T>(p.values, v0 + (j + 1) * p.T) - ld<T>(p.values, v0 + j * p.T);
        }
      }
      if ((q + 1) % p.unit != 0) continue;
      ++count;
      for (int64_t i = 0; i < d; ++i) {
        const double u = unit[i] / static_cast<double>(p.unit);
        const double delta = u - mean[i];
        mean[i] += delta / static_cast<double>(count);
        m2[i] += delta * (u - mean[i]);
        unit[i] = 0.0;
      }
    }
    T* out = static_cast<T*>(p.mean) + bt * d;
    T* se = p.stderr_out == nullptr ? nullptr : static_cast<T*>(p.stderr_out) + bt * d;
    for (int64_t i = 0; i < d; ++i) {
      out[i] = static_cast<T>(mean[i]);
      if (se != nullptr) {
        const double c = static_cast<double>(count);
        se[i] = static_cast<T>(count > 1 ? sqrt(fmax(m2[i], 0.0) / (c * (c - 1.0))) : NAN);
      }
    }
  }
};

// ---------------------------------------------------------------- Banzhaf
// Maximum sample reuse: beta_i = mean{v(S) : i in S} - mean{v(S) : i not in S}
// over the sampled coalitions, each counted with its multiplicity.
template <typename T>
struct BanzhafOp {                      // row = b * T + t, col = i
  static constexpr bool kHeavy = true;  // each element loops over n rows
  BanzhafParams p;
  XATTR_HD void operator()(int64_t bt, int64_t i) const {
    const int64_t b = bt / p.T, t = bt % p.T;
    double s1 = 0.0, n1 = 0.0, s0 = 0.0, n0 = 0.0;
    for (int64_t r = 0; r < p.n; ++r) {
      const double c = p.counts == nullptr ? 1.0 : ld<T>(p.counts, b * p.count_bstride + r);
      const double v = c * ld<T>(p.values, (b * p.n + r) * p.T + t);
      if (mask_bit(p.masks[b * p.mask_bstride + r * p.d + i])) {
        s1 += v;
        n1 += c;
      } else {
        s0 += v;
        n0 += c;
      }
    }
    static_cast<T*>(p.out)[bt * p.d + i] = static_cast<T>(s1 / n1 - s0 / n0);
  }

  // CPU: a tile of features per pass over the rows, read row by row (the
  // GPU's per-feature loop would walk the masks with stride d). The "out"
  // sums are totals minus "in" sums, so they may differ from the GPU's in
  // the last bits.
  void span(int64_t bt, int64_t i0, int64_t i1) const {
    constexpr int64_t kTile = 256;
    const int64_t b = bt / p.T, t = bt % p.T;
    T* out = static_cast<T*>(p.out) + bt * p.d;
    double s1[kTile], n1[kTile];
    for (int64_t t0 = i0; t0 < i1; t0 += kTile) {
      const int64_t nt = (i1 - t0) < kTile ? (i1 - t0) : kTile;
      double stot = 0.0, ntot = 0.0;
      for (int64_t i = 0; i < nt; ++i) s1[i] = n1[i] = 0.0;
      for (int64_t r = 0; r < p.n; ++r) {
        const double c = p.counts == nullptr ? 1.0 : ld<T>(p.counts, b * p.count_bstride + r);
        const double v = c * ld<T>(p.values, (b * p.n + r) * p.T + t);
        const uint8_t* z = p.masks + b * p.mask_bstride + r * p.d + t0;
        stot += v;
        ntot += c;
        for (int64_t i = 0; i < nt; ++i) {  // multiply by 0/1, no branch: masks are random
          const double in = static_cast<double>(mask_bit(z[i]));
          s1[i] += in * v;
          n1[i] += in * c;
        }
      }
      for (int64_t i = 0; i < nt; ++i) {
        out[t0 + i] = static_cast<T>(s1[i] / n1[i] - (stot - s1[i]) / (ntot - n1[i]));
      }
    }
  }
};

// ------------------------------------------------------ exact enumeration
// phi_i = sum_{S not containing i} w_|S| (v(S + i) - v(S)),
// w_k = k! (d - 1 - k)! / d!  (Shapley) or 2^-(d-1) (Banzhaf).
// Differences are summed per coalition size first, then weighted.
template <typename T>
struct ExactOp {                        // row = b * T + t, col = i
  static constexpr bool kHeavy = true;  // each element loops over 2^(d-1) coalitions
  ExactParams p;
  XATTR_HD void operator()(int64_t bt, int64_t i) const {
    const int64_t b = bt / p.T, t = bt % p.T, d = p.d;
    const int64_t half = int64_t(1) << (d - 1);
    const int64_t bit = int64_t(1) << i;
    const int64_t base = b * (int64_t(1) << d) * p.T + t;
    double acc[kMaxEnumerationFeatures + 1];
    for (int64_t k = 0; k <= d; ++k) acc[k] = 0.0;
    for (int64_t s = 0; s < half; ++s) {
      // Insert a zero at bit i: the s-th coalition without feature i.
      const int64_t r = ((s >> i) << (i + 1)) | (s & (bit - 1));
      const double diff = ld<T>(p.values, base + (r | bit) * p.T) - ld<T>(p.values, base + r * p.T);
      acc[popcount64(static_cast<uint64_t>(r))] += diff;
    }
    double phi = 0.0;
    if (p.banzhaf) {
      for (int64_t k = 0; k < d; ++k) phi += acc[k];
      phi /= static_cast<double>(half);
    } else {
      double w = 1.0 / static_cast<double>(d);  // w_0 = 0! (d-1)! / d!
      for (int64_t k = 0; k < d; ++k) {
        phi += w * acc[k];
        w = w * static_cast<double>(k + 1) / static_cast<double>(d - 1 - k);
      }
    }
    static_cast<T*>(p.out)[bt * d + i] = static_cast<T>(phi);
  }

  // CPU: with k = |r|, u_r = v(r) (w_{k-1} + w_k) and b_r = v(r) w_k,
  //   phi_i = sum_{r containing i} u_r - sum_r b_r,
  // and the rows containing i are runs of 2^i consecutive rows: after one pass
  // that forms u, every feature is a few contiguous (vectorisable) sums. The
  // same sum as operator() regrouped: equal to rounding, not bit for bit.
  void span(int64_t bt, int64_t i0, int64_t i1) const {
    const int64_t b = bt / p.T, t = bt % p.T, d = p.d;
    const int64_t rows = int64_t(1) << d;
    const int64_t base = b * rows * p.T + t;
    double w[kMaxEnumerationFeatures + 2];  // w[k + 1] = w_k; w[0] = w[d + 1] = 0
    w[0] = w[d + 1] = 0.0;
    double wk = 1.0 / static_cast<double>(d);  // Shapley: w_0 = 1/d, same recursion as above
    for (int64_t k = 0; k < d; ++k) {
      w[k + 1] = p.banzhaf ? 1.0 / static_cast<double>(rows / 2) : wk;
      if (k + 1 < d) wk = wk * static_cast<double>(k + 1) / static_cast<double>(d - 1 - k);
    }
    std::vector<double> u(static_cast<size_t>(rows));
    double btot = 0.0;
    for (int64_t hi = 0; hi < rows; hi += 64) {  // popcount = popcount(hi) + popcount(lo)
      const int khi = popcount64(static_cast<uint64_t>(hi));
      const int64_t n = rows - hi < 64 ? rows - hi : 64;
      for (int64_t lo = 0; lo < n; ++lo) {
        const int k = khi + popcount64(static_cast<uint64_t>(lo));
        const double v = ld<T>(p.values, base + (hi + lo) * p.T);
        u[static_cast<size_t>(hi + lo)] = v * (w[k] + w[k + 1]);
        btot += v * w[k + 1];
      }
    }
    T* out = static_cast<T*>(p.out) + bt * d;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t run = int64_t(1) << i;
      double acc = 0.0;
      for (int64_t start = run; start < rows; start += 2 * run) {
        for (int64_t r = start; r < start + run; ++r) acc += u[static_cast<size_t>(r)];
      }
      out[i] = static_cast<T>(acc - btot);
    }
  }
};

// --------------------------------------------------------- de-duplication
struct PackOp {  // row = r, col = word
  PackParams p;
  XATTR_HD void operator()(int64_t r, int64_t w) const {
    const int64_t W = (p.d + 63) / 64;
    uint64_t key = 0;
    const int64_t end = (w + 1) * 64 < p.d ? (w + 1) * 64 : p.d;
    for (int64_t i = w * 64; i < end; ++i) {
      key |= static_cast<uint64_t>(mask_bit(p.masks[r * p.d + i])) << (i - w * 64);
    }
    p.keys[r * W + w] = static_cast<int64_t>(key);
  }
};

struct UnpackOp {  // row = r, col = i
  PackParams p;
  XATTR_HD void operator()(int64_t r, int64_t i) const {
    const int64_t W = (p.d + 63) / 64;
    const uint64_t key = static_cast<uint64_t>(p.keys[r * W + i / 64]);
    p.masks[r * p.d + i] = static_cast<uint8_t>((key >> (i % 64)) & 1);
  }
};

}  // namespace xattr
