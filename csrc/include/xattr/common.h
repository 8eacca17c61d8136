// Shared definitions for every xattr kernel: the host/device qualifier, the
// dtypes the kernels are instantiated for, and small integer helpers.
// This header (and every other header under csrc/include) is torch-free.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define XATTR_HD __host__ __device__ __forceinline__
#else
#define XATTR_HD inline
#endif

namespace xattr {

// Element types a kernel may see. Masks are uint8 (torch.bool is stored as one
// byte per element), permutations int32, token ids int64.
enum class Dtype : int32_t {
  kFloat32 = 0,
  kFloat64 = 1,
  kUInt8 = 2,
  kInt32 = 3,
  kInt64 = 4,
};

inline const char* dtype_name(Dtype t) {
  switch (t) {
    case Dtype::kFloat32:
      return "float32";
    case Dtype::kFloat64:
      return "float64";
    case Dtype::kUInt8:
      return "uint8";
    case Dtype::kInt32:
      return "int32";
    case Dtype::kInt64:
      return "int64";
  }
  return "unknown";
}

// The one reading of a mask byte, in every kernel: nonzero is present. torch.bool
// is one byte per element and torch itself treats any nonzero byte as True (a
// uint8 tensor viewed as bool can hold 2 or 255), so no kernel may assume 0/1
// bytes (`b & 1` would read 2 as absent). Returns 0 or 1, for use as a number.
XATTR_HD uint8_t mask_bit(uint8_t byte) { return byte != 0 ? 1 : 0; }

// Largest d for exact enumeration of all 2^d coalitions.
constexpr int64_t kMaxEnumerationFeatures = 20;

// Number of leading zeros-free popcount usable on host and device.
XATTR_HD int popcount64(uint64_t v) {
#if defined(__CUDA_ARCH__)
  return __popcll(v);
#else
  return __builtin_popcountll(v);
#endif
}

// High 64 bits of a 64x64-bit product: maps a uniform 64-bit word r to an
// integer in [0, n) with bias at most n / 2^64 (Lemire's multiply-shift).
XATTR_HD uint64_t mulhi64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
}

}  // namespace xattr
