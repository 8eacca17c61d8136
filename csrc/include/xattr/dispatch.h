// One place that maps each kernel's params to its functors, for any launcher.
// A launcher is a callable `launch(rows, cols, op)` that runs op(row, col)
// for every row < rows and col < cols: CpuLaunch (OpenMP, csrc/cpu) and
// CudaLaunch (grid-stride kernel, csrc/cuda) are the two. The CPU and CUDA
// drivers of every kernel are therefore this file instantiated twice.
#pragma once

#include <stdexcept>
#include <string>

#include "xattr/functors/coalition.h"
#include "xattr/functors/masking.h"
#include "xattr/functors/path.h"
#include "xattr/functors/rules.h"
#include "xattr/functors/sampling.h"

namespace xattr {

[[noreturn]] inline void fail_dtype(const char* kernel, Dtype t) {
  throw std::invalid_argument(std::string(kernel) + ": unsupported dtype " + dtype_name(t));
}

// Calls f(T{}) with T the C++ type of a floating dtype.
template <typename F>
void dispatch_float(const char* kernel, Dtype t, F&& f) {
  switch (t) {
    case Dtype::kFloat32:
      f(float{});
      return;
    case Dtype::kFloat64:
      f(double{});
      return;
    default:
      fail_dtype(kernel, t);
  }
}

// ------------------------------------------------------------- workspaces
// KernelSHAP and LIME work on a Gram matrix of q = min-side vectors (see
// coalition.h): q * q per group, so the memory follows min(n, d)^2, not d^2.
inline int64_t kernel_shap_solve_workspace_doubles(const KernelShapSolveParams& p) {
  const int64_t q = kernel_shap_solve_size(p);
  return kernel_shap_solve_groups(p) * (q * q + q) + p.B * p.T * 2 * q;
}
inline int64_t kernel_shap_solve_scratch_ints(const KernelShapSolveParams& p) {
  return kernel_shap_solve_groups(p) * (2 * kernel_shap_solve_size(p) + 1);
}
inline int64_t linear_fit_workspace_doubles(const LinearFitParams& p) {
  const int64_t per = linear_fit_dual(p) ? p.d + 2 * p.n : 3 * p.d;
  return linear_fit_groups(p) * linear_fit_block(p) + p.B * p.T * per;
}
inline int64_t linear_fit_scratch_ints(const LinearFitParams& p) {
  return linear_fit_groups(p) * (2 * linear_fit_size(p) + 1);
}
inline int64_t permutation_accumulate_workspace_doubles(const PermutationAccumulateParams& p) {
  return p.B * p.T * 3 * p.d;
}

// ---------------------------------------------------------------- kernels
template <typename Launch>
void run_sample(const SampleParams& p, const Launch& launch) {
  if (p.sampler == Sampler::kMus) launch(p.d, 1, MusOffsetsOp{p});
  launch(p.n, 1, SampleRowOp{p});
}

template <typename Launch>
void run_mask_apply(const MaskApplyParams& p, const Launch& launch) {
  auto go = [&](auto tag) {
    using T = decltype(tag);
    const bool shared = p.masks == nullptr ? !p.per_example : p.mask_bstride == 0;
    if (shared) {
      launch(p.S, p.B * p.E, MaskApplySharedRowOp<T>{MaskApplyOp<T>{p}});
    } else {
      launch(p.B * p.S, p.E, MaskApplyOp<T>{p});
    }
  };
  switch (p.dtype) {
    case Dtype::kFloat32:
      return go(float{});
    case Dtype::kFloat64:
      return go(double{});
    case Dtype::kInt64:
      return go(int64_t{});
    default:
      fail_dtype("mask_apply", p.dtype);
  }
}

template <typename Launch>
void run_kernel_shap_solve(const KernelShapSolveParams& p, const Launch& launch) {
  dispatch_float("kernel_shap_solve", p.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch(kernel_shap_solve_groups(p), 1, KernelShapSolveGramOp<T>{p});
    launch(p.B * p.T, 1, KernelShapSolveOp<T>{p});
  });
}

template <typename Launch>
void run_linear_fit(const LinearFitParams& p, const Launch& launch) {
  dispatch_float("linear_fit", p.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch(linear_fit_groups(p), 1, LinearFitGramOp<T>{p});
    launch(p.B * p.T, 1, LinearFitSolveOp<T>{p});
  });
}

template <typename Launch>
void run_permutation_accumulate(const PermutationAccumulateParams& p, const Launch& launch) {
  dispatch_float("permutation_accumulate", p.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch(p.B * p.T, 1, PermutationAccumulateOp<T>{p});
  });
}

template <typename Launch>
void run_banzhaf_msr(const BanzhafMsrParams& p, const Launch& launch) {
  dispatch_float("banzhaf_msr", p.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch(p.B * p.T, p.d, BanzhafMsrOp<T>{p});
  });
}

template <typename Launch>
void run_exact_values(const ExactValuesParams& p, const Launch& launch) {
  dispatch_float("exact_values", p.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch(p.B * p.T, p.d, ExactValuesOp<T>{p});
  });
}

template <typename Launch>
void run_pack_masks(const PackMasksParams& p, const Launch& launch) {
  launch(p.n, (p.d + 63) / 64, PackMasksOp{p});
}

template <typename Launch>
void run_unpack_masks(const PackMasksParams& p, const Launch& launch) {
  launch(p.n, p.d, UnpackMasksOp{p});
}

template <typename Launch>
void run_path_points(const PathPointsParams& p, const Launch& launch) {
  dispatch_float("path_points", p.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch(p.B * p.K * p.J, p.E, PathPointsOp<T>{p});
  });
}

template <typename Launch>
void run_path_integrate(const PathIntegrateParams& p, const Launch& launch) {
  dispatch_float("path_integrate", p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = p.reduction == Reduction::kNone ? p.B * p.K : p.B;
    launch(rows, p.E, PathIntegrateOp<T>{p});
  });
}

template <typename Launch>
void run_rescale_multiplier(const RescaleParams& p, const Launch& launch) {
  dispatch_float("rescale_multiplier", p.dtype, [&](auto tag) {
    using T = decltype(tag);
    switch (p.kind) {
      case Nonlinearity::kRelu:
        return launch(p.rows, p.R, RescaleOp<T, Nonlinearity::kRelu>{p});
      case Nonlinearity::kSigmoid:
        return launch(p.rows, p.R, RescaleOp<T, Nonlinearity::kSigmoid>{p});
      case Nonlinearity::kTanh:
        return launch(p.rows, p.R, RescaleOp<T, Nonlinearity::kTanh>{p});
      default:
        return launch(p.rows, p.R, RescaleOp<T, Nonlinearity::kGiven>{p});
    }
  });
}

}  // namespace xattr
