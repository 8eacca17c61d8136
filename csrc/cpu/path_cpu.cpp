// CPU drivers of path integration, and the quadrature rules.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu_launch.h"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

XATTR_PATH_KERNELS(XATTR_CPU_DRIVER)

namespace {

// numpy.linspace(start, stop, n): start + i * step, the last node exactly stop.
std::vector<double> linspace(double start, double stop, int64_t n) {
  std::vector<double> v(static_cast<size_t>(n));
  const double step = (stop - start) / static_cast<double>(n - 1);
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<double>(i) * step + start;
  v.back() = stop;
  return v;
}

// Newton's method on P_n from z, each step evaluating P_n and P_n' by the
// three-term recurrence (O(n)). Returns the root; *dp is P_n' at the last iterate.
double legendre_root(int64_t n, double z, double* dp) {
  for (int it = 0; it < 100; ++it) {
    double p0 = 1.0, p1 = z;
    for (int64_t k = 2; k <= n; ++k) {
      const double pk = ((2.0 * k - 1.0) * z * p1 - (k - 1.0) * p0) / static_cast<double>(k);
      p0 = p1;
      p1 = pk;
    }
    *dp = static_cast<double>(n) * (z * p1 - p0) / (z * z - 1.0);
    const double dz = p1 / *dp;
    z -= dz;
    if (std::fabs(dz) < 1e-16) break;
  }
  return z;
}

// Up to this n every node is found by legendre_root: O(n^2) work, negligible
// there, and the rule of earlier versions bit for bit.
constexpr int64_t kGaussRecurrenceMaxN = 100;
// Above it, the kGaussBoundaryNodes nodes nearest each end still are (O(n) each);
// the others come from Szego's asymptotic expansion, O(1) each (Hale & Townsend,
// SIAM J. Sci. Comput. 35(2), 2013), whose error there is below 1e-18.
constexpr int64_t kGaussBoundaryNodes = 16;
constexpr int kGaussMaxTerms = 30;

// Node i (counted from x = -1) for n > kGaussRecurrenceMaxN and i < kGaussBoundaryNodes,
// as x = cos(theta) near 1: Newton on theta (from Tricomi's theta0 below), with P_n
// and P_{n-1} from the recurrence rewritten in y = 1 - x = 2 sin^2(theta / 2)
// (D_k = P_k - P_{k-1} = ((k - 1) D_{k-1} - (2k - 1) y P_{k-1}) / k), which keeps
// full relative accuracy where 1 - x is tiny; so does the weight
// 2 / (dP_n / dtheta)^2, dP_n / dtheta = -n (P_{n-1} - x P_n) / sin(theta).
// (A weight from a rounded x loses about n^2 * 1e-16 of its relative accuracy.)
double legendre_boundary_node(int64_t n, int64_t i, double* w) {
  const double pi = 3.14159265358979323846;
  double theta = pi * static_cast<double>(4 * i + 3) / static_cast<double>(4 * n + 2);
  double dpdt = 1.0;
  bool done = false;
  for (int it = 0; it < 50; ++it) {
    const double sh = std::sin(0.5 * theta);
    const double y = 2.0 * sh * sh, x = 1.0 - y;
    double p0 = 1.0, p1 = x, dk = -y;
    for (int64_t k = 2; k <= n; ++k) {
      dk = ((k - 1.0) * dk - (2.0 * k - 1.0) * y * p1) / static_cast<double>(k);
      p0 = p1;
      p1 += dk;
    }
    dpdt = -static_cast<double>(n) * (p0 - x * p1) / std::sin(theta);
    if (done) break;  // the weight is taken at the converged theta
    const double step = p1 / dpdt;
    theta -= step;
    // Quadratic convergence in the phase (n + 1/2) theta: a step below 1e-9 leaves an
    // error near 1e-18 (the recurrence's rounding stops smaller steps from settling).
    done = (static_cast<double>(n) + 0.5) * std::fabs(step) <= 1e-9;
  }
  *w = 2.0 / (dpdt * dpdt);
  return std::cos(theta);
}

// Node i (counted from x = -1) for n > kGaussRecurrenceMaxN and i >= kGaussBoundaryNodes,
// as x = cos(theta) in (0, 1] with theta = theta0 + delta near
// theta0 = pi (4i + 3) / (4n + 2) (Tricomi). With h_0 = 1,
// h_m = h_{m-1} (m - 1/2)^2 / (m (n + m + 1/2)) and s = 2 sin(theta),
//   P_n(cos theta) = C_n sum_m h_m cos(alpha_m) / s^(m + 1/2),
//   alpha_m = (n + m + 1/2) theta - (m + 1/2) pi / 2
//           = pi (i + 1/2) + beta_m,  beta_m = (n + 1/2) delta + m (theta - pi / 2),
// so P_n = +-C_n g(delta), g = sum_m h_m sin(beta_m) / s^(m + 1/2): Newton on delta,
// whose phase (n + 1/2) delta stays small and exact (no cos of a large argument).
// x = cos(theta0) cos(delta) - sin(theta0) sin(delta) with cos(theta0) =
// sin(phi0), phi0 = pi (n - 2i - 1) / (2n + 1) = pi / 2 - theta0: full relative
// accuracy near x = 0 too. Returns x; *u = 2 / g'(delta)^2, the weight
// 2 / (dP_n / dtheta)^2 times C_n^2.
double legendre_asymptotic_node(int64_t n, int64_t i, double* u) {
  const double pi = 3.14159265358979323846;
  const double nh = static_cast<double>(n) + 0.5;
  const double theta0 = pi * static_cast<double>(4 * i + 3) / static_cast<double>(4 * n + 2);
  const double phi0 = pi * static_cast<double>(n - 2 * i - 1) / static_cast<double>(2 * n + 1);
  double delta = 0.0, dg = 1.0;
  bool done = false;
  for (int it = 0; it < 20; ++it) {
    const double theta = theta0 + delta;
    const double s = 2.0 * std::sin(theta), c2 = 2.0 * std::cos(theta);
    const double tilt = delta - phi0;  // theta - pi / 2
    double h = 1.0, sm = std::sqrt(s), g = 0.0, size = 1.0;
    dg = 0.0;
    for (int m = 0; m < kGaussMaxTerms; ++m) {
      const double mh = static_cast<double>(m) + 0.5;
      const double beta = nh * delta + static_cast<double>(m) * tilt;
      const double sb = std::sin(beta), cb = std::cos(beta);
      g += h * sb / sm;
      dg += h * ((nh + m) * cb / sm - mh * sb * c2 / (sm * s));
      h *= (mh * mh) / ((m + 1.0) * (nh + m + 1.0));
      sm *= s;
      // The next term relative to the first: stop once negligible, or (the series is
      // asymptotic) once the terms would grow again.
      const double next = h * std::sqrt(s) / sm;
      if (next < 1e-18 || next > size) break;
      size = next;
    }
    if (done) break;  // the weight is taken at the converged delta
    const double step = g / dg;
    delta -= step;
    done = nh * std::fabs(step) <= 1e-9;  // as in legendre_boundary_node
  }
  *u = 2.0 / (dg * dg);
  return std::sin(phi0) * std::cos(delta) - std::cos(phi0) * std::sin(delta);
}

// Gauss-Legendre nodes and weights on [-1, 1], ascending as
// numpy.polynomial.legendre.leggauss returns them, in O(n) time: Newton on the
// recurrence for n <= 100, on theta near the ends, the asymptotic expansion inside.
// The expansion's weights lack the factor 1 / C_n^2; it is set so that the
// weights sum to 2 exactly (they integrate 1), in a compensated sum.
void gauss_legendre(int64_t n, std::vector<double>* x, std::vector<double>* w) {
  x->assign(static_cast<size_t>(n), 0.0);
  w->assign(static_cast<size_t>(n), 0.0);
  const double pi = 3.14159265358979323846;
  const int64_t half = (n + 1) / 2;
  const int64_t direct = n <= kGaussRecurrenceMaxN ? half : std::min(half, kGaussBoundaryNodes);
  double known = 0.0, asym = 0.0, comp = 0.0;  // sums of weights over [-1, 1]
  for (int64_t i = 0; i < half; ++i) {
    double z, wi;
    const double mult = (n % 2 == 1 && i == half - 1) ? 1.0 : 2.0;  // the middle node once
    if (n <= kGaussRecurrenceMaxN) {
      double dp = 0.0;
      z = legendre_root(
          n, std::cos(pi * (static_cast<double>(i) + 0.75) / (static_cast<double>(n) + 0.5)), &dp);
      wi = 2.0 / ((1.0 - z * z) * dp * dp);
    } else if (i < direct) {
      z = legendre_boundary_node(n, i, &wi);
      known += mult * wi;
    } else {
      z = legendre_asymptotic_node(n, i, &wi);
      // Neumaier's compensated sum: the scale factor needs the total to rounding.
      const double v = mult * wi, t = asym + v;
      comp += std::fabs(asym) >= std::fabs(v) ? (asym - t) + v : (v - t) + asym;
      asym = t;
    }
    (*x)[static_cast<size_t>(i)] = -z;
    (*x)[static_cast<size_t>(n - 1 - i)] = z;
    (*w)[static_cast<size_t>(i)] = wi;
    (*w)[static_cast<size_t>(n - 1 - i)] = wi;
  }
  if (direct < half) {
    const double scale = (2.0 - known) / (asym + comp);
    for (int64_t i = direct; i < n - direct; ++i) (*w)[static_cast<size_t>(i)] *= scale;
  }
  if (n % 2 == 1) (*x)[static_cast<size_t>(n / 2)] = 0.0;
}

}  // namespace

void quadrature(const char* method, int64_t n, std::vector<double>* alphas,
                std::vector<double>* weights) {
  const std::string m(method);
  if (m == "gausslegendre") {
    if (n < 1)
      throw std::invalid_argument("n_steps: must be >= 1 for gausslegendre, got " +
                                  std::to_string(n));
    gauss_legendre(n, alphas, weights);
    for (auto& a : *alphas) a = 0.5 * (1.0 + a);
    for (auto& w : *weights) w = 0.5 * w;
    return;
  }
  if (m != "riemann_left" && m != "riemann_right" && m != "riemann_middle" &&
      m != "riemann_trapezoid") {
    throw std::invalid_argument(
        "method: expected one of riemann_left, riemann_right, riemann_middle, "
        "riemann_trapezoid, gausslegendre; got '" +
        m + "'");
  }
  if (n < 2)
    throw std::invalid_argument("n_steps: must be >= 2 for Riemann rules, got " +
                                std::to_string(n));
  const double dn = static_cast<double>(n);
  // Captum's rules: equal steps 1/n; the trapezoid halves both end steps.
  weights->assign(static_cast<size_t>(n), 1.0 / dn);
  if (m == "riemann_trapezoid") {
    weights->front() /= 2.0;
    weights->back() /= 2.0;
    *alphas = linspace(0.0, 1.0, n);
  } else if (m == "riemann_left") {
    *alphas = linspace(0.0, 1.0 - 1.0 / dn, n);
  } else if (m == "riemann_middle") {
    *alphas = linspace(1.0 / (2.0 * dn), 1.0 - 1.0 / (2.0 * dn), n);
  } else {
    *alphas = linspace(1.0 / dn, 1.0, n);
  }
}

}  // namespace xattr
