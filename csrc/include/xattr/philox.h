// Philox4x32-10 counter-based random numbers (Salmon et al., "Parallel random
// numbers: as easy as 1, 2, 3", SC 2011).
//
// A draw is a pure function of (key, counter): key = the user's 64-bit seed,
// counter = (draw index, row low, row high, stream tag). Any element of any
// stream can therefore be produced independently, in any order, by any
// thread, on the CPU or the GPU, with identical bits. There is no state.
#pragma once

#include "xattr/common.h"

namespace xattr {

struct U32x4 {
  uint32_t v[4];
};

namespace philox_detail {
constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;

XATTR_HD void mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
}
}  // namespace philox_detail

// Ten rounds of Philox4x32 on counter c with key (k0, k1).
XATTR_HD U32x4 philox4x32_10(U32x4 c, uint32_t k0, uint32_t k1) {
  using namespace philox_detail;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, c.v[0], &hi0, &lo0);
    mulhilo(kMul1, c.v[2], &hi1, &lo1);
    U32x4 n;
    n.v[0] = hi1 ^ c.v[1] ^ k0;
    n.v[1] = lo1;
    n.v[2] = hi0 ^ c.v[3] ^ k1;
    n.v[3] = lo0;
    c = n;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return c;
}

// Stream tags keep the samplers' streams apart when they share a seed.
enum StreamTag : uint32_t {
  kTagBernoulli = 1,
  kTagSubset = 2,
  kTagShapleySize = 3,
  kTagPermutation = 4,
  kTagMus = 5,
  kTagStratified = 6,
  kTagShapleySubset = 7,
};

// The random block number `block` of row `row` in stream `tag`.
XATTR_HD U32x4 philox_block(uint64_t seed, uint32_t tag, uint64_t row, uint64_t block) {
  U32x4 c;
  c.v[0] = static_cast<uint32_t>(block);
  c.v[1] = static_cast<uint32_t>(row);
  c.v[2] = static_cast<uint32_t>(row >> 32);
  c.v[3] = tag ^ (static_cast<uint32_t>(block >> 32) << 8);
  return philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// The 64-bit word number `i` of a row's stream (two per Philox block).
XATTR_HD uint64_t philox_u64(uint64_t seed, uint32_t tag, uint64_t row, uint64_t i) {
  const U32x4 r = philox_block(seed, tag, row, i >> 1);
  const int h = static_cast<int>(i & 1) * 2;
  return (static_cast<uint64_t>(r.v[h]) << 32) | r.v[h + 1];
}

}  // namespace xattr
