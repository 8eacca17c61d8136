// Masking / multiplicative smoothing, element (row = b * S + s, col = e):
//   out[b, s, e] = bit ? x[b, e] : base[b, e],  bit = mask(b, s, group[b, e])
// A select rather than base + m * (x - base): for binary m the two are equal
// in exact arithmetic, and the select is also exact in floating point (a kept
// element is x itself, not base + (x - base) rounded). Token ids (int64) are
// masked by replacement with the same formula.
#pragma once

#include "xattr/functors/sampling.h"
#include "xattr/params.h"

namespace xattr {

template <typename T>
struct MaskApplyOp {
  MaskApplyParams p;

  XATTR_HD void operator()(int64_t row, int64_t e) const {
    const int64_t b = row / p.S;
    const int64_t s = row - b * p.S;
    const int64_t g = p.group[b * p.group_bstride + e];
    uint8_t bit = 0;  // an id out of [0, d) reads nothing (the ops reject it)
    if (g >= 0 && g < p.d) {
      if (p.masks != nullptr) {
        bit = p.masks[b * p.mask_bstride + s * p.d + g];
      } else if (p.sampler == Sampler::kMus) {
        bit = mus_bit(p.seed, p.q, p.L, s + p.row_offset, g);
      } else {
        const int64_t r = s + p.row_offset + (p.per_example ? b * p.S : 0);
        bit = bernoulli_bit(p.seed, p.bern_threshold, static_cast<uint64_t>(r), g);
      }
    }
    const T* x = static_cast<const T*>(p.x);
    const T* base = static_cast<const T*>(p.base);
    static_cast<T*>(p.out)[row * p.E + e] = bit ? x[b * p.E + e] : base[b * p.base_bstride + e];
  }
};

}  // namespace xattr
