// The CUDA launcher: a grid-stride loop over a rows x cols grid on the
// caller's stream (torch's current stream, passed from Python).
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "xattr/common.h"

namespace xattr {

inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("xattr CUDA error in ") + what + ": " +
                             cudaGetErrorString(err));
  }
}

template <typename Op>
__global__ void grid_stride_kernel(int64_t rows, int64_t cols, Op op) {
  const int64_t total = rows * cols;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += step) {
    op(i / cols, i % cols);
  }
}

struct CudaLaunch {
  cudaStream_t stream = nullptr;

  template <typename Op>
  void operator()(int64_t rows, int64_t cols, const Op& op) const {
    const int64_t total = rows * cols;
    if (total <= 0) return;
    // Whole problems (cols == 1) get small blocks so that more SMs share them.
    const int threads = cols == 1 ? 64 : 256;
    const int64_t want = (total + threads - 1) / threads;
    const unsigned blocks = static_cast<unsigned>(want < (1 << 20) ? want : (1 << 20));
    grid_stride_kernel<<<blocks, threads, 0, stream>>>(rows, cols, op);
    cuda_check(cudaGetLastError(), "kernel launch");
  }
};

// The CUDA driver of kernel `name` (kernel_list.h): its launch recipe in
// dispatch.h run by CudaLaunch on the caller's device and stream.
#define XATTR_CUDA_DRIVER(name, Params)                             \
  void name##_cuda(const Params& p, const CudaOptions& o) {         \
    DeviceGuard g(o.device);                                        \
    run_##name(p, CudaLaunch{static_cast<cudaStream_t>(o.stream)}); \
  }

// Makes `device` current for the calling thread while in scope.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    cuda_check(cudaGetDevice(&prev_), "cudaGetDevice");
    if (prev_ != device) cuda_check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(prev_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
};

}  // namespace xattr
