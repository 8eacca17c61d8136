// CPU drivers of path integration, and the quadrature rules.
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu_launch.h"
#include "xattr/dispatch.h"
#include "xattr/kernels.h"

namespace xattr {

void path_points_cpu(const PathPointsParams& p, const CpuOptions& o) {
  run_path_points(p, CpuLaunch{o.threads});
}
void path_integrate_cpu(const PathIntegrateParams& p, const CpuOptions& o) {
  run_path_integrate(p, CpuLaunch{o.threads});
}

namespace {

// numpy.linspace(start, stop, n): start + i * step, the last node exactly stop.
std::vector<double> linspace(double start, double stop, int64_t n) {
  std::vector<double> v(static_cast<size_t>(n));
  const double step = (stop - start) / static_cast<double>(n - 1);
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<double>(i) * step + start;
  v.back() = stop;
  return v;
}

// Gauss-Legendre nodes and weights on [-1, 1] by Newton's method on P_n,
// ascending as numpy.polynomial.legendre.leggauss returns them.
void gauss_legendre(int64_t n, std::vector<double>* x, std::vector<double>* w) {
  x->assign(static_cast<size_t>(n), 0.0);
  w->assign(static_cast<size_t>(n), 0.0);
  const double pi = 3.14159265358979323846;
  for (int64_t i = 0; i < (n + 1) / 2; ++i) {
    double z = std::cos(pi * (static_cast<double>(i) + 0.75) / (static_cast<double>(n) + 0.5));
    double dp = 0.0;
    for (int it = 0; it < 100; ++it) {
      // Three-term recurrence for P_n(z) and its derivative.
      double p0 = 1.0, p1 = z;
      for (int64_t k = 2; k <= n; ++k) {
        const double pk = ((2.0 * k - 1.0) * z * p1 - (k - 1.0) * p0) / static_cast<double>(k);
        p0 = p1;
        p1 = pk;
      }
      dp = static_cast<double>(n) * (z * p1 - p0) / (z * z - 1.0);
      const double dz = p1 / dp;
      z -= dz;
      if (std::fabs(dz) < 1e-16) break;
    }
    const double wi = 2.0 / ((1.0 - z * z) * dp * dp);
    (*x)[static_cast<size_t>(i)] = -z;
    (*x)[static_cast<size_t>(n - 1 - i)] = z;
    (*w)[static_cast<size_t>(i)] = wi;
    (*w)[static_cast<size_t>(n - 1 - i)] = wi;
  }
  if (n % 2 == 1) (*x)[static_cast<size_t>(n / 2)] = 0.0;
}

}  // namespace

void quadrature(const char* method, int64_t n, std::vector<double>* alphas,
                std::vector<double>* weights) {
  const std::string m(method);
  if (m == "gausslegendre") {
    if (n < 1)
      throw std::invalid_argument("n_steps must be >= 1 for gausslegendre, got " +
                                  std::to_string(n));
    gauss_legendre(n, alphas, weights);
    for (auto& a : *alphas) a = 0.5 * (1.0 + a);
    for (auto& w : *weights) w = 0.5 * w;
    return;
  }
  if (m != "riemann_left" && m != "riemann_right" && m != "riemann_middle" &&
      m != "riemann_trapezoid") {
    throw std::invalid_argument(
        "method must be one of riemann_left, riemann_right, riemann_middle, "
        "riemann_trapezoid, gausslegendre; got '" +
        m + "'");
  }
  if (n < 2)
    throw std::invalid_argument("n_steps must be >= 2 for Riemann rules, got " + std::to_string(n));
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
