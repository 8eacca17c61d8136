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
// A pivot at or below tol * max(diag) marks a vector that depends on the ones
// before it (A is a Gram matrix): its column is zeroed (so its diagonal is 0)
// and it takes no part in the factor. Row j left of the diagonal keeps
// l_j = L^{-1} A_{<j, j}, from which minnorm_factor reads the dependence.
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

// H = Z'WZ (lower triangle) for the 0/1 rows of masks [n, d] with weights w[wo + r].
template <typename T>
XATTR_HD void binary_gram(double* H, const uint8_t* masks, int64_t n, int64_t d, const void* w,
                          int64_t wo, int32_t* act, int32_t* idx) {
  for (int64_t i = 0; i < d * d; ++i) H[i] = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < d; ++i) act[i] = mask_bit(masks[r * d + i]);
    add_binary_outer(H, d, act, idx, ld<T>(w, wo + r));
  }
}

// |z_r and z_s|: how many features the 0/1 rows r and s of masks [n, d] share.
XATTR_HD int64_t shared_features(const uint8_t* masks, int64_t d, int64_t r, int64_t s) {
  int64_t both = 0;
  for (int64_t i = 0; i < d; ++i) both += mask_bit(masks[r * d + i]) & mask_bit(masks[s * d + i]);
  return both;
}

// Copies the lower triangle of the m x m matrix G to its upper triangle.
XATTR_HD void symmetrize(double* G, int64_t m) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < i; ++j) G[j * m + i] = G[i * m + j];
  }
}

// ---------------------------------------------- minimum-norm least squares
// Both solvers need x = A^+ b, the minimum-norm least-squares solution, for a
// design A (n x d) that may be rank deficient (complementary pairs, repeated
// rows, fewer rows than features): the minimum-norm solution is unique, so it
// does not depend on the order of the features (unlike setting the
// undetermined unknowns to 0). They work on a Gram matrix M of m vectors v_j:
// of A's columns (primal, m = d, used when n >= d) or of its rows (dual,
// m = n, used when n < d), so a problem takes min(n, d)^2 doubles.
//
// minnorm_factor: cholesky_drop keeps the v_j independent of the kept ones
// before them (set R) and drops the rest (set D, |D| = nd). A dropped v_j is a
// combination of kept v_k, k < j, with coefficients y_j = M_RR^{-1} M_Rj =
// L^{-T} l_j. With Y = [y_j] (|R| x |D|) and S = I + Y'Y (|D| x |D|, positive
// definite), the solves below are closed forms in L, Y and S. Storage, all in
// M: L in the lower triangle (kept columns), y_j in the upper triangle of
// column j (kept rows k < j), and the Cholesky factor of S in the slots no y
// uses: entry (a, b), b <= a, at M[D_b * m + D_a] (a dropped row, or a dropped
// diagonal). info: drop flags [m], the dropped indices D [m], nd [1].
XATTR_HD double* minnorm_s(double* M, int64_t m, const int32_t* D, int64_t a, int64_t b) {
  return M + static_cast<int64_t>(D[b]) * m + D[a];  // b <= a
}

XATTR_HD void minnorm_factor(double* M, int64_t m, int32_t* info) {
  cholesky_drop(M, m);
  int32_t* drop = info;
  int32_t* D = info + m;
  int64_t nd = 0;
  for (int64_t j = 0; j < m; ++j) {
    drop[j] = M[j * m + j] == 0.0 ? 1 : 0;
    if (drop[j]) D[nd++] = static_cast<int32_t>(j);
  }
  info[2 * m] = static_cast<int32_t>(nd);
  for (int64_t a = 0; a < nd; ++a) {  // y_j = L^{-T} l_j over the kept k < j
    const int64_t j = D[a];
    for (int64_t k = j - 1; k >= 0; --k) {
      if (drop[k]) continue;
      double t = M[j * m + k];
      for (int64_t i = k + 1; i < j; ++i) {
        if (!drop[i]) t -= M[i * m + k] * M[i * m + j];
      }
      M[k * m + j] = t / M[k * m + k];
    }
  }
  for (int64_t a = 0; a < nd; ++a) {  // S = I + Y'Y, then its Cholesky factor
    for (int64_t b = 0; b <= a; ++b) {
      double s = a == b ? 1.0 : 0.0;
      for (int64_t k = 0; k < D[b]; ++k) {
        if (!drop[k]) s += M[k * m + D[a]] * M[k * m + D[b]];
      }
      *minnorm_s(M, m, D, a, b) = s;
    }
  }
  for (int64_t a = 0; a < nd; ++a) {
    for (int64_t b = 0; b <= a; ++b) {
      double s = *minnorm_s(M, m, D, a, b);
      for (int64_t c = 0; c < b; ++c) s -= *minnorm_s(M, m, D, a, c) * *minnorm_s(M, m, D, b, c);
      *minnorm_s(M, m, D, a, b) = a == b ? sqrt(s) : s / *minnorm_s(M, m, D, b, b);
    }
  }
}

// c <- L^{-T} L^{-1} c over the kept unknowns; dropped unknowns get 0.
XATTR_HD void minnorm_kept_solve(const double* M, int64_t m, const int32_t* drop, double* c) {
  for (int64_t j = 0; j < m; ++j) {
    if (drop[j]) {
      c[j] = 0.0;
      continue;
    }
    double t = c[j];
    for (int64_t k = 0; k < j; ++k) t -= M[j * m + k] * c[k];  // dropped k: L_jk = 0
    c[j] = t / M[j * m + j];
  }
  for (int64_t j = m - 1; j >= 0; --j) {
    if (drop[j]) continue;
    double t = c[j];
    for (int64_t k = j + 1; k < m; ++k) {
      if (!drop[k]) t -= M[k * m + j] * c[k];
    }
    c[j] = t / M[j * m + j];
  }
}

// t <- S^{-1} t.
XATTR_HD void minnorm_s_solve(double* M, int64_t m, const int32_t* D, int64_t nd, double* t) {
  for (int64_t a = 0; a < nd; ++a) {
    double s = t[a];
    for (int64_t b = 0; b < a; ++b) s -= *minnorm_s(M, m, D, a, b) * t[b];
    t[a] = s / *minnorm_s(M, m, D, a, a);
  }
  for (int64_t a = nd - 1; a >= 0; --a) {
    double s = t[a];
    for (int64_t b = a + 1; b < nd; ++b) s -= *minnorm_s(M, m, D, b, a) * t[b];
    t[a] = s / *minnorm_s(M, m, D, a, a);
  }
}

// t_a = y_a . c over the kept k < D_a, for every dropped a.
XATTR_HD void minnorm_yt(const double* M, int64_t m, const int32_t* drop, const int32_t* D,
                         int64_t nd, const double* c, double* t) {
  for (int64_t a = 0; a < nd; ++a) {
    double s = 0.0;
    for (int64_t k = 0; k < D[a]; ++k) {
      if (!drop[k]) s += M[k * m + D[a]] * c[k];
    }
    t[a] = s;
  }
}

// c_k -= sum_a y_a[k] t_a over the kept k.
XATTR_HD void minnorm_sub_yt(const double* M, int64_t m, const int32_t* drop, const int32_t* D,
                             int64_t nd, const double* t, double* c) {
  for (int64_t a = 0; a < nd; ++a) {
    for (int64_t k = 0; k < D[a]; ++k) {
      if (!drop[k]) c[k] -= M[k * m + D[a]] * t[a];
    }
  }
}

// Primal: M = A'A (+ a positive definite part) and c = A'b in range(M); c
// becomes the minimum-norm solution of M x = c. With x_b the kept solve (0 on
// D), the null space of M is spanned by the columns of N = [-Y; I], and
// x = x_b - N (N'N)^{-1} N' x_b: x_R = x_b - Y z, x_D = z, z = S^{-1} Y' x_b.
// t: nd scratch doubles.
XATTR_HD void minnorm_primal(double* M, int64_t m, const int32_t* info, double* c, double* t) {
  const int32_t* drop = info;
  const int32_t* D = info + m;
  const int64_t nd = info[2 * m];
  minnorm_kept_solve(M, m, drop, c);
  if (nd == 0) return;
  minnorm_yt(M, m, drop, D, nd, c, t);
  minnorm_s_solve(M, m, D, nd, t);
  minnorm_sub_yt(M, m, drop, D, nd, t, c);
  for (int64_t a = 0; a < nd; ++a) c[D[a]] = t[a];
}

// Dual: M = AA' (+ a positive definite part), b in R^n; b becomes beta with
// A^+ b = A' beta (beta = 0 on D). The rows of A are A = E A_R with
// E = [I; Y'] (rows permuted), so A^+ = A_R^+ E^+ = A_R' M_RR^{-1}
// (I + YY')^{-1} [I, Y]: u = v - Y S^{-1} Y' v for v = b_R + Y b_D
// (Woodbury), then beta_R = M_RR^{-1} u. t: nd scratch doubles.
XATTR_HD void minnorm_dual(double* M, int64_t m, const int32_t* info, double* b, double* t) {
  const int32_t* drop = info;
  const int32_t* D = info + m;
  const int64_t nd = info[2 * m];
  if (nd > 0) {
    for (int64_t a = 0; a < nd; ++a) {
      const double bd = b[D[a]];
      for (int64_t k = 0; k < D[a]; ++k) {
        if (!drop[k]) b[k] += M[k * m + D[a]] * bd;
      }
    }
    minnorm_yt(M, m, drop, D, nd, b, t);
    minnorm_s_solve(M, m, D, nd, t);
    minnorm_sub_yt(M, m, drop, D, nd, t, b);
  }
  minnorm_kept_solve(M, m, drop, b);
}

// Feature tiles for the dual's output sums: out_i = sum_r g_r [z_ri]
// read a tile of features per row, contiguously (the rows are the long side).
constexpr int64_t kFeatureTile = 64;

// acc[i - i0] = sum_r g[r] * z_ri for i in [i0, i1), i1 - i0 <= kFeatureTile.
XATTR_HD void weighted_column_sums(const uint8_t* masks, int64_t n, int64_t d, const double* g,
                                   int64_t i0, int64_t i1, double* acc) {
  for (int64_t i = 0; i < i1 - i0; ++i) acc[i] = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* z = masks + r * d + i0;
    const double gr = g[r];
    for (int64_t i = 0; i < i1 - i0; ++i) acc[i] += gr * static_cast<double>(mask_bit(z[i]));
  }
}

// ------------------------------------------------------------- KernelSHAP
// Constrained WLS: among the minimisers of sum_r w_r (y_r - v0 - z_r . phi)^2
// subject to sum(phi) = delta = v(N) - v(empty), the one of least norm.
// Writing phi = delta/d 1 + psi with psi orthogonal to 1 (P = I - 11'/d):
// psi = A^+ b with A = W^{1/2} Z P and b_r = w_r^{1/2} (y_r - v0 - |z_r| delta/d).
// Primal Gram: PHP + s 11'/d with H = Z'WZ (the s term, s = the mean nonzero
// eigenvalue of PHP, makes the direction 1 positive definite without changing
// the solution, which is orthogonal to 1). Dual Gram: K_rs = (w_r w_s)^{1/2}
// (|z_r and z_s| - |z_r||z_s|/d). Gram matrices depend only on masks and
// weights, so when both are shared across the batch one factorisation serves
// every input. Group block: Gram [q * q] + aux [q] (primal: row sums of H;
// dual: |z_r|), q = d (primal) or n (dual).
// Ridge (rho > 0): min ... + rho * scale * ||psi||^2 with scale = trace(PHP) /
// (d - 1) = trace(K) / (d - 1), the mean eigenvalue of the Gram on the plane
// 1'psi = 0 (so rho is dimensionless and the same for both forms): psi =
// (A'A + rho scale I)^{-1} A'b = A'(AA' + rho scale I)^{-1} b, i.e. rho scale
// added to the diagonal of either Gram (the primal's commutes with 11', so its
// solution stays orthogonal to 1). rho is one scalar per call: one factorisation
// per distinct design still serves the batch. A prior phi0 is a substitution in
// Python (xattr/ops/coalition.py), not here.
XATTR_HD bool kernel_shap_solve_dual(const KernelShapSolveParams& p) { return p.n < p.d; }
XATTR_HD int64_t kernel_shap_solve_size(const KernelShapSolveParams& p) {
  return kernel_shap_solve_dual(p) ? p.n : p.d;
}
XATTR_HD int64_t kernel_shap_solve_groups(const KernelShapSolveParams& p) {
  return (p.mask_bstride == 0 && p.weight_bstride == 0) ? 1 : p.B;
}

template <typename T>
struct KernelShapSolveGramOp {  // row = group
  KernelShapSolveParams p;
  XATTR_HD void operator()(int64_t g, int64_t) const {
    const int64_t d = p.d, n = p.n, q = kernel_shap_solve_size(p);
    if (d < 2) return;  // phi = delta
    double* M = p.work + g * (q * q + q);
    double* aux = M + q * q;
    int32_t* info = p.scratch + g * (2 * q + 1);
    const uint8_t* masks = p.masks + g * p.mask_bstride;
    const void* w = p.weights;
    const int64_t wo = g * p.weight_bstride;
    if (kernel_shap_solve_dual(p)) {
      for (int64_t r = 0; r < n; ++r) {
        int64_t cnt = 0;
        for (int64_t i = 0; i < d; ++i) cnt += mask_bit(masks[r * d + i]);
        aux[r] = static_cast<double>(cnt);
      }
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t s = 0; s <= r; ++s) {
          const double both = static_cast<double>(shared_features(masks, d, r, s));
          const double ws = sqrt(ld<T>(w, wo + r) * ld<T>(w, wo + s));
          M[r * n + s] = ws * (both - aux[r] * aux[s] / static_cast<double>(d));
        }
      }
      symmetrize(M, n);
      if (p.rho > 0.0) {
        double trace = 0.0;
        for (int64_t r = 0; r < n; ++r) trace += M[r * n + r];
        const double ridge = p.rho * trace / static_cast<double>(d - 1);
        for (int64_t r = 0; r < n; ++r) M[r * n + r] += ridge;
      }
      minnorm_factor(M, n, info);
      return;
    }
    binary_gram<T>(M, masks, n, d, w, wo, info, info + d);
    symmetrize(M, d);
    double sigma = 0.0, trace = 0.0;
    for (int64_t i = 0; i < d; ++i) {
      double h = 0.0;
      for (int64_t j = 0; j < d; ++j) h += M[i * d + j];
      aux[i] = h;
      sigma += h;
      trace += M[i * d + i];
    }
    const double dd = static_cast<double>(d);
    const double s = fmax(trace - sigma / dd, 0.0) / (dd - 1.0);
    const double shift = (sigma / dd + s) / dd;
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = 0; j < d; ++j) M[i * d + j] += shift - (aux[i] + aux[j]) / dd;
    }
    if (p.rho > 0.0) {  // s = trace(PHP) / (d - 1), the ridge's scale
      for (int64_t i = 0; i < d; ++i) M[i * d + i] += p.rho * s;
    }
    minnorm_factor(M, d, info);
  }
};

template <typename T>
struct KernelShapSolveOp {  // row = b * T + t
  KernelShapSolveParams p;
  XATTR_HD void operator()(int64_t bt, int64_t) const {
    const int64_t b = bt / p.T, t = bt % p.T, d = p.d, n = p.n, q = kernel_shap_solve_size(p);
    const double v0 = ld<T>(p.v_empty, bt);
    const double delta = ld<T>(p.v_full, bt) - v0;
    T* out = static_cast<T*>(p.out) + bt * d;
    if (d < 2) {
      if (d == 1) out[0] = static_cast<T>(delta);
      return;
    }
    const int64_t g = kernel_shap_solve_groups(p) == 1 ? 0 : b;
    double* M = p.work + g * (q * q + q);
    const double* aux = M + q * q;
    const int32_t* info = p.scratch + g * (2 * q + 1);
    double* c = p.work + kernel_shap_solve_groups(p) * (q * q + q) + bt * 2 * q;
    double* tmp = c + q;
    const uint8_t* masks = p.masks + b * p.mask_bstride;
    const int64_t wo = b * p.weight_bstride;
    const double dd = static_cast<double>(d);
    if (kernel_shap_solve_dual(p)) {
      for (int64_t r = 0; r < n; ++r) {
        const double y = ld<T>(p.values, (b * n + r) * p.T + t) - v0 - aux[r] * delta / dd;
        c[r] = sqrt(ld<T>(p.weights, wo + r)) * y;
      }
      minnorm_dual(M, n, info, c, tmp);
      double total = 0.0;  // psi_i = sum_r g_r (z_ri - |z_r|/d), g_r = beta_r w_r^{1/2}
      for (int64_t r = 0; r < n; ++r) {
        c[r] *= sqrt(ld<T>(p.weights, wo + r));
        total += c[r] * aux[r];
      }
      double acc[kFeatureTile];
      for (int64_t i0 = 0; i0 < d; i0 += kFeatureTile) {
        const int64_t i1 = i0 + kFeatureTile < d ? i0 + kFeatureTile : d;
        weighted_column_sums(masks, n, d, c, i0, i1, acc);
        for (int64_t i = i0; i < i1; ++i) {
          out[i] = static_cast<T>(delta / dd + (acc[i - i0] - total / dd));
        }
      }
      return;
    }
    // c = P Z'W (y - v0 - |z| delta/d): Z'W|z| = H 1 is aux, so one pass over the
    // rows scatters w_r (y_r - v0) without branches (masks are random), and
    // 1'c = the sum of the entries before the projection P.
    for (int64_t i = 0; i < d; ++i) c[i] = 0.0;
    for (int64_t r = 0; r < n; ++r) {
      const uint8_t* z = masks + r * d;
      const double wy = ld<T>(p.weights, wo + r) * (ld<T>(p.values, (b * n + r) * p.T + t) - v0);
      for (int64_t i = 0; i < d; ++i) c[i] += wy * static_cast<double>(mask_bit(z[i]));
    }
    double total = 0.0;
    for (int64_t i = 0; i < d; ++i) {
      c[i] -= aux[i] * delta / dd;
      total += c[i];
    }
    for (int64_t i = 0; i < d; ++i) c[i] -= total / dd;
    minnorm_primal(M, d, info, c, tmp);
    double mean = 0.0;  // psi is orthogonal to 1 up to rounding; project it exactly
    for (int64_t i = 0; i < d; ++i) mean += c[i];
    mean /= dd;
    for (int64_t i = 0; i < d; ++i) out[i] = static_cast<T>(delta / dd + (c[i] - mean));
  }
};

// ------------------------------------------------------------ LIME fits
// With weights w, sw = sum(w), weighted means xbar, ybar and centred data
// Xc = Z - 1 xbar', yc = y - ybar:
//   ridge: beta = A^+ b for A = [W^{1/2} Xc; alpha^{1/2} I], b = [W^{1/2} yc; 0],
//          i.e. (Xc' W Xc + alpha I) beta = Xc' W yc (sklearn Ridge), and for
//          alpha = 0 the minimum-norm least-squares fit (sklearn
//          LinearRegression's lstsq): primal Gram Xc'WXc + alpha I, or dual
//          W^{1/2} Xc Xc' W^{1/2} + alpha I with beta = Xc' W^{1/2} u.
//   lasso: min 1/2 sum_r (w_r / sw) (yc_r - Xc_r beta)^2 + alpha |beta|_1
//          (sklearn Lasso: weights rescaled to sum to n, loss / (2 n)), by
//          cyclic coordinate descent on the Gram (primal) or on the data
//          with a residual (dual: no d x d matrix).
//   intercept = ybar - xbar . beta
// Group block: Gram [q * q] + aux [q] + xbar [d] + sw [1], q = d or n.
XATTR_HD bool linear_fit_dual(const LinearFitParams& p) { return p.n < p.d; }
XATTR_HD int64_t linear_fit_size(const LinearFitParams& p) {
  return linear_fit_dual(p) ? p.n : p.d;
}
XATTR_HD int64_t linear_fit_groups(const LinearFitParams& p) {
  return (p.mask_bstride == 0 && p.weight_bstride == 0) ? 1 : p.B;
}
XATTR_HD int64_t linear_fit_block(const LinearFitParams& p) {
  const int64_t q = linear_fit_size(p);
  return q * q + q + p.d + 1;
}

template <typename T>
struct LinearFitGramOp {  // row = group
  LinearFitParams p;
  XATTR_HD void operator()(int64_t g, int64_t) const {
    const int64_t d = p.d, n = p.n, q = linear_fit_size(p);
    double* M = p.work + g * linear_fit_block(p);
    double* aux = M + q * q;
    double* xbar = aux + q;
    int32_t* info = p.scratch + g * (2 * q + 1);
    const uint8_t* masks = p.masks + g * p.mask_bstride;
    const int64_t wo = g * p.weight_bstride;
    for (int64_t i = 0; i < d; ++i) xbar[i] = 0.0;
    double sw = 0.0;
    for (int64_t r = 0; r < n; ++r) {
      const double w = ld<T>(p.weights, wo + r);
      for (int64_t i = 0; i < d; ++i)
        xbar[i] += w * static_cast<double>(mask_bit(masks[r * d + i]));
      sw += w;
    }
    xbar[d] = sw;
    for (int64_t i = 0; i < d; ++i) xbar[i] = sw > 0.0 ? xbar[i] / sw : 0.0;
    if (linear_fit_dual(p)) {
      if (p.lasso) return;  // coordinate descent on the data needs xbar and sw only
      double xx = 0.0;
      for (int64_t i = 0; i < d; ++i) xx += xbar[i] * xbar[i];
      for (int64_t r = 0; r < n; ++r) {
        double zx = 0.0;
        for (int64_t i = 0; i < d; ++i)
          zx += static_cast<double>(mask_bit(masks[r * d + i])) * xbar[i];
        aux[r] = zx;
      }
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t s = 0; s <= r; ++s) {
          const double both = static_cast<double>(shared_features(masks, d, r, s));
          const double ws = sqrt(ld<T>(p.weights, wo + r) * ld<T>(p.weights, wo + s));
          M[r * n + s] = ws * (both - aux[r] - aux[s] + xx);
        }
        M[r * n + r] += p.alpha;
      }
      symmetrize(M, n);
      minnorm_factor(M, n, info);
      return;
    }
    binary_gram<T>(M, masks, n, d, p.weights, wo, info, info + d);
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = 0; j <= i; ++j) M[i * d + j] -= sw * xbar[i] * xbar[j];
    }
    symmetrize(M, d);
    if (!p.lasso) {
      for (int64_t i = 0; i < d; ++i) M[i * d + i] += p.alpha;
      minnorm_factor(M, d, info);
    }
  }
};

XATTR_HD double soft_threshold(double v, double a) {
  return v > a ? v - a : (v < -a ? v + a : 0.0);
}

// Whether a 0/1 column varies over the weighted samples: its normalised centred
// Gram diagonal gjj (exactly xbar_j (1 - xbar_j)) above rounding. A column present
// in every sample (or in none) has gjj = 0 in exact arithmetic but may keep a few
// ulps of xbar_j, and dividing by those would blow the coefficient up.
XATTR_HD bool column_varies(double gjj, double xbar_j) { return gjj > 1e-12 * xbar_j; }

// One coordinate-descent step of the lasso: beta_j <- soft(rho, alpha) / gjj; keeps
// the sweep's largest step (sweep[0]) and coefficient (sweep[1]); returns the step.
XATTR_HD double cd_step(double& beta_j, double rho, double gjj, double alpha, double* sweep) {
  const double nb = soft_threshold(rho, alpha) / gjj;
  const double step = nb - beta_j;
  sweep[0] = fmax(sweep[0], fabs(step));
  sweep[1] = fmax(sweep[1], fabs(nb));
  beta_j = nb;
  return step;
}

template <typename T>
struct LinearFitSolveOp {  // row = b * T + t
  LinearFitParams p;

  XATTR_HD double y(int64_t b, int64_t r, int64_t t) const {
    return ld<T>(p.values, (b * p.n + r) * p.T + t);
  }

  XATTR_HD void operator()(int64_t bt, int64_t) const {
    const int64_t b = bt / p.T, t = bt % p.T, d = p.d, n = p.n, q = linear_fit_size(p);
    const int64_t g = linear_fit_groups(p) == 1 ? 0 : b;
    double* M = p.work + g * linear_fit_block(p);
    const double* xbar = M + q * q + q;
    const double sw = xbar[d];
    const int32_t* info = p.scratch + g * (2 * q + 1);
    const int64_t per = linear_fit_dual(p) ? d + 2 * n : 3 * d;
    double* c = p.work + linear_fit_groups(p) * linear_fit_block(p) + bt * per;
    const uint8_t* masks = p.masks + b * p.mask_bstride;
    const int64_t wo = b * p.weight_bstride;
    double ybar = 0.0;
    for (int64_t r = 0; r < n; ++r) ybar += ld<T>(p.weights, wo + r) * y(b, r, t);
    ybar = sw > 0.0 ? ybar / sw : 0.0;
    double* beta = c;
    if (linear_fit_dual(p)) {
      double* u = c + d;
      double* tmp = u + n;
      if (!p.lasso) {
        for (int64_t r = 0; r < n; ++r) u[r] = sqrt(ld<T>(p.weights, wo + r)) * (y(b, r, t) - ybar);
        minnorm_dual(M, n, info, u, tmp);
        double total = 0.0;  // beta_i = sum_r g_r (z_ri - xbar_i), g_r = u_r w_r^{1/2}
        for (int64_t r = 0; r < n; ++r) {
          u[r] *= sqrt(ld<T>(p.weights, wo + r));
          total += u[r];
        }
        double acc[kFeatureTile];
        for (int64_t i0 = 0; i0 < d; i0 += kFeatureTile) {
          const int64_t i1 = i0 + kFeatureTile < d ? i0 + kFeatureTile : d;
          weighted_column_sums(masks, n, d, u, i0, i1, acc);
          for (int64_t i = i0; i < i1; ++i) beta[i] = acc[i - i0] - xbar[i] * total;
        }
      } else {
        // Cyclic coordinate descent on the data: u holds the residual yc - Xc beta.
        // For 0/1 columns the scaled Gram diagonal is xbar_j (1 - xbar_j).
        const double inv = sw > 0.0 ? 1.0 / sw : 0.0;
        for (int64_t i = 0; i < d; ++i) beta[i] = 0.0;
        for (int64_t r = 0; r < n; ++r) u[r] = y(b, r, t) - ybar;
        for (int64_t it = 0; it < p.max_iter; ++it) {
          double sweep[2] = {0.0, 0.0};  // the sweep's largest step and coefficient
          for (int64_t j = 0; j < d; ++j) {
            const double gjj = xbar[j] * (1.0 - xbar[j]);
            if (!column_varies(gjj, xbar[j])) continue;
            double dot = 0.0;
            for (int64_t r = 0; r < n; ++r) {
              const double x = static_cast<double>(mask_bit(masks[r * d + j])) - xbar[j];
              dot += ld<T>(p.weights, wo + r) * x * u[r];
            }
            const double step = cd_step(beta[j], dot * inv + gjj * beta[j], gjj, p.alpha, sweep);
            if (step != 0.0) {
              for (int64_t r = 0; r < n; ++r) {
                u[r] -= (static_cast<double>(mask_bit(masks[r * d + j])) - xbar[j]) * step;
              }
            }
          }
          if (sweep[0] <= p.tol * sweep[1] || sweep[0] == 0.0) break;
        }
      }
    } else {
      double* rhs = c + d;
      double* qv = rhs + d;
      for (int64_t i = 0; i < d; ++i) rhs[i] = 0.0;
      for (int64_t r = 0; r < n; ++r) {
        const uint8_t* z = masks + r * d;
        const double wy = ld<T>(p.weights, wo + r) * (y(b, r, t) - ybar);
        for (int64_t i = 0; i < d; ++i) rhs[i] += wy * static_cast<double>(mask_bit(z[i]));
      }
      if (!p.lasso) {
        for (int64_t i = 0; i < d; ++i) beta[i] = rhs[i];
        minnorm_primal(M, d, info, beta, qv);
      } else {
        // Cyclic coordinate descent on the Gram form, from beta = 0, keeping
        // q = (G / sw) beta up to date (a column update only when beta_j moves).
        const double inv = sw > 0.0 ? 1.0 / sw : 0.0;
        for (int64_t i = 0; i < d; ++i) beta[i] = qv[i] = 0.0;
        for (int64_t it = 0; it < p.max_iter; ++it) {
          double sweep[2] = {0.0, 0.0};  // the sweep's largest step and coefficient
          for (int64_t j = 0; j < d; ++j) {
            const double gjj = M[j * d + j] * inv;
            if (!column_varies(gjj, xbar[j])) continue;
            const double rho = rhs[j] * inv - (qv[j] - gjj * beta[j]);
            const double step = cd_step(beta[j], rho, gjj, p.alpha, sweep);
            if (step != 0.0) {
              for (int64_t k = 0; k < d; ++k) qv[k] += M[k * d + j] * inv * step;
            }
          }
          if (sweep[0] <= p.tol * sweep[1] || sweep[0] == 0.0) break;
        }
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
struct PermutationAccumulateOp {  // row = b * T + t
  PermutationAccumulateParams p;
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
// over the sampled coalitions, each counted with its multiplicity. The "out"
// sums are the totals minus the "in" sums, so that the totals are one sum per
// (b, t) (shared by a row's features on the CPU) and the loops multiply by
// 0/1 instead of branching on random mask bits.
template <typename T>
struct BanzhafMsrOp {                   // row = b * T + t, col = i
  static constexpr bool kHeavy = true;  // each element loops over n rows
  BanzhafMsrParams p;

  // Coalition r of (b, t): its count c and its count-weighted value c v(S_r).
  XATTR_HD void row(int64_t bt, int64_t r, double* c, double* v) const {
    const int64_t b = bt / p.T, t = bt % p.T;
    *c = p.counts == nullptr ? 1.0 : ld<T>(p.counts, b * p.count_bstride + r);
    *v = *c * ld<T>(p.values, (b * p.n + r) * p.T + t);
  }
  XATTR_HD const uint8_t* mask_row(int64_t bt, int64_t r) const {
    return p.masks + (bt / p.T) * p.mask_bstride + r * p.d;
  }
  XATTR_HD static T finish(double s1, double n1, double stot, double ntot) {
    return static_cast<T>(s1 / n1 - (stot - s1) / (ntot - n1));
  }

  // The one element formula (GPU, and the CPU's element launch).
  XATTR_HD void operator()(int64_t bt, int64_t i) const {
    double s1 = 0.0, n1 = 0.0, stot = 0.0, ntot = 0.0;
    for (int64_t r = 0; r < p.n; ++r) {
      double c, v;
      row(bt, r, &c, &v);
      stot += v;
      ntot += c;
      const double in = static_cast<double>(mask_bit(mask_row(bt, r)[i]));
      s1 += in * v;
      n1 += in * c;
    }
    static_cast<T*>(p.out)[bt * p.d + i] = finish(s1, n1, stot, ntot);
  }

  // CPU: the same sums, a tile of features per pass over the rows, read row by
  // row (per feature the masks would be walked with stride d); each row's
  // totals are added once for the tile.
  void span(int64_t bt, int64_t i0, int64_t i1) const {
    constexpr int64_t kTile = 256;
    T* out = static_cast<T*>(p.out) + bt * p.d;
    double s1[kTile], n1[kTile];
    for (int64_t t0 = i0; t0 < i1; t0 += kTile) {
      const int64_t nt = (i1 - t0) < kTile ? (i1 - t0) : kTile;
      double stot = 0.0, ntot = 0.0;
      for (int64_t i = 0; i < nt; ++i) s1[i] = n1[i] = 0.0;
      for (int64_t r = 0; r < p.n; ++r) {
        double c, v;
        row(bt, r, &c, &v);
        stot += v;
        ntot += c;
        const uint8_t* z = mask_row(bt, r) + t0;
        for (int64_t i = 0; i < nt; ++i) {
          const double in = static_cast<double>(mask_bit(z[i]));
          s1[i] += in * v;
          n1[i] += in * c;
        }
      }
      for (int64_t i = 0; i < nt; ++i) out[t0 + i] = finish(s1[i], n1[i], stot, ntot);
    }
  }
};

// ------------------------------------------------------ exact enumeration
// phi_i = sum_{S not containing i} w_|S| (v(S + i) - v(S)),
// w_k = k! (d - 1 - k)! / d!  (Shapley) or 2^-(d-1) (Banzhaf). Regrouped by
// coalition r (k = |r|): with u_r = v(r) (w_{k-1} + w_k) and b_r = v(r) w_k,
//   phi_i = sum_{r containing i} u_r - sum_r b_r,
// where the rows containing i are runs of 2^i consecutive rows: on the CPU,
// after one pass that forms u, every feature is a few contiguous sums.
template <typename T>
struct ExactValuesOp {                  // row = b * T + t, col = i
  static constexpr bool kHeavy = true;  // each element loops over 2^d coalitions
  ExactValuesParams p;

  // w[k + 1] = w_k for k < d; w[0] = w[d + 1] = 0.
  XATTR_HD void weights(double* w) const {
    const int64_t d = p.d;
    w[0] = w[d + 1] = 0.0;
    double wk = 1.0 / static_cast<double>(d);  // Shapley: w_0 = 0! (d-1)! / d!
    for (int64_t k = 0; k < d; ++k) {
      w[k + 1] = p.banzhaf ? 1.0 / static_cast<double>(int64_t(1) << (d - 1)) : wk;
      if (k + 1 < d) wk = wk * static_cast<double>(k + 1) / static_cast<double>(d - 1 - k);
    }
  }
  XATTR_HD double value(int64_t bt, int64_t r) const {
    const int64_t b = bt / p.T, t = bt % p.T;
    return ld<T>(p.values, (b * (int64_t(1) << p.d) + r) * p.T + t);
  }
  XATTR_HD static double u(double v, const double* w, int k) { return v * (w[k] + w[k + 1]); }
  XATTR_HD static double bterm(double v, const double* w, int k) { return v * w[k + 1]; }

  // The one element formula (GPU, and the CPU's element launch): b summed over
  // the rows in order, u over the rows containing i in order.
  XATTR_HD void operator()(int64_t bt, int64_t i) const {
    const int64_t rows = int64_t(1) << p.d;
    double w[kMaxEnumerationFeatures + 2];
    weights(w);
    double btot = 0.0, acc = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      const double v = value(bt, r);
      const int k = popcount64(static_cast<uint64_t>(r));
      btot += bterm(v, w, k);
      if ((r >> i) & 1) acc += u(v, w, k);
    }
    static_cast<T*>(p.out)[bt * p.d + i] = static_cast<T>(acc - btot);
  }

  // CPU: u and the total of b in one pass over the rows, then every feature's
  // sum over its runs of rows (contiguous, in the same order).
  void span(int64_t bt, int64_t i0, int64_t i1) const {
    const int64_t rows = int64_t(1) << p.d;
    double w[kMaxEnumerationFeatures + 2];
    weights(w);
    std::vector<double> us(static_cast<size_t>(rows));
    double btot = 0.0;
    for (int64_t hi = 0; hi < rows; hi += 64) {  // popcount = popcount(hi) + popcount(lo)
      const int khi = popcount64(static_cast<uint64_t>(hi));
      const int64_t n = rows - hi < 64 ? rows - hi : 64;
      for (int64_t lo = 0; lo < n; ++lo) {
        const int k = khi + popcount64(static_cast<uint64_t>(lo));
        const double v = value(bt, hi + lo);
        us[static_cast<size_t>(hi + lo)] = u(v, w, k);
        btot += bterm(v, w, k);
      }
    }
    T* out = static_cast<T*>(p.out) + bt * p.d;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t run = int64_t(1) << i;
      double acc = 0.0;
      for (int64_t start = run; start < rows; start += 2 * run) {
        for (int64_t r = start; r < start + run; ++r) acc += us[static_cast<size_t>(r)];
      }
      out[i] = static_cast<T>(acc - btot);
    }
  }
};

// --------------------------------------------------------- de-duplication
struct PackMasksOp {  // row = r, col = word
  PackMasksParams p;
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

struct UnpackMasksOp {  // row = r, col = i
  PackMasksParams p;
  XATTR_HD void operator()(int64_t r, int64_t i) const {
    const int64_t W = (p.d + 63) / 64;
    const uint64_t key = static_cast<uint64_t>(p.keys[r * W + i / 64]);
    p.masks[r * p.d + i] = static_cast<uint8_t>((key >> (i % 64)) & 1);
  }
};

}  // namespace xattr
