// The CPU launcher: runs op(row, col) over a rows x cols grid on OpenMP
// threads. Every output element is written by exactly one call, so results
// do not depend on the thread count or the partition.
//
// Two ways to run a grid (CpuOptions::element, chosen at run time by
// XATTR_CPU_LAUNCH or xattr._ext.cpu_launch): the fast path calls an op's
// span() where it has one; the element path calls op(row, col) once per
// element and never span(), exactly as CudaLaunch does, so the CPU runs the
// code the GPU runs. span() shares the per-element body (it only changes the
// loop order and hoists row invariants), and the tests hold both paths to the
// same bits.
#pragma once

#include <algorithm>
#include <type_traits>
#include <utility>

#include "xattr/common.h"
#include "xattr/kernels.h"

namespace xattr {

// An op may offer span(row, c0, c1), a loop over columns of one row with the
// row's invariants (indices, pointers, sampled bits) computed once; the fast
// CPU path prefers it. The GPU and the element path call op(row, col).
template <typename Op, typename = void>
struct HasSpan : std::false_type {};
template <typename Op>
struct HasSpan<
    Op, std::void_t<decltype(std::declval<const Op&>().span(int64_t{}, int64_t{}, int64_t{}))>>
    : std::true_type {};

// Ops whose elements each carry a long loop declare kHeavy = true: their
// grids go parallel however few elements they have.
template <typename Op, typename = void>
struct IsHeavy : std::false_type {};
template <typename Op>
struct IsHeavy<Op, std::void_t<decltype(Op::kHeavy)>> : std::integral_constant<bool, Op::kHeavy> {};

template <typename Op>
inline void run_span(const Op& op, int64_t r, int64_t c0, int64_t c1, bool element) {
  if constexpr (HasSpan<Op>::value) {
    if (!element) {
      op.span(r, c0, c1);
      return;
    }
  }
  for (int64_t c = c0; c < c1; ++c) op(r, c);
}

struct CpuLaunch {
  int threads = 1;
  bool element = false;  // one op(row, col) call per element, as on the GPU

  explicit CpuLaunch(const CpuOptions& o) : threads(o.threads), element(o.element) {}

  template <typename Op>
  void operator()(int64_t rows, int64_t cols, const Op& op) const {
    if (rows <= 0 || cols <= 0) return;
    const int nt = std::max(threads, 1);
    // Elementwise grids below this size run serially: a parallel region
    // costs more than it saves. Grids of whole problems (cols == 1) always
    // go parallel when there are several.
    constexpr int64_t kSerialElements = 1 << 14;
    const bool small = cols > 1 && rows * cols < kSerialElements && !IsHeavy<Op>::value;
    if (nt == 1 || small || (cols == 1 && rows == 1)) {
      for (int64_t r = 0; r < rows; ++r) run_span(op, r, 0, cols, element);
      return;
    }
    // Few long rows: split columns into blocks so every thread gets work.
    int64_t block = cols;
    if (rows < 4 * nt && cols > 1) {
      const int64_t per_row = (4 * nt + rows - 1) / rows;
      block = std::max<int64_t>(256, (cols + per_row - 1) / per_row);
    }
    const int64_t nb = (cols + block - 1) / block;
    const int64_t tasks = rows * nb;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t r = task / nb;
      const int64_t c0 = (task % nb) * block;
      run_span(op, r, c0, std::min(cols, c0 + block), element);
    }
  }
};

// The CPU driver of kernel `name` (kernel_list.h): its launch recipe in
// dispatch.h run by CpuLaunch.
#define XATTR_CPU_DRIVER(name, Params) \
  void name##_cpu(const Params& p, const CpuOptions& o) { run_##name(p, CpuLaunch{o}); }

}  // namespace xattr
