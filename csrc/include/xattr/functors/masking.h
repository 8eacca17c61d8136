// Masking / multiplicative smoothing, element (row = b * S + s, col = e):
//   out[b, s, e] = bit ? x[b, e] : base[b, e],  bit = mask(b, s, group[b, e])
// A select rather than base + m * (x - base): for binary m the two are equal
// in exact arithmetic, and the select is also exact in floating point (a kept
// element is x itself, not base + (x - base) rounded). Token ids (int64) are
// masked by replacement with the same formula.
#pragma once

#include <vector>

#include "xattr/functors/sampling.h"
#include "xattr/params.h"

namespace xattr {

template <typename T>
struct MaskApplyOp {
  MaskApplyParams p;

  // Everything about output row (b, s) that does not depend on the element.
  struct Row {
    const T* x;
    const T* base;
    const int64_t* group;
    const uint8_t* masks;  // the row's d mask bytes, or null when sampling
    T* out;
    int64_t b, s;
  };

  XATTR_HD Row row_at(int64_t row) const {
    const int64_t b = row / p.S;
    const int64_t s = row - b * p.S;
    return Row{static_cast<const T*>(p.x) + b * p.E,
               static_cast<const T*>(p.base) + b * p.base_bstride,
               p.group + b * p.group_bstride,
               p.masks == nullptr ? nullptr : p.masks + b * p.mask_bstride + s * p.d,
               static_cast<T*>(p.out) + row * p.E,
               b,
               s};
  }

  // The mask bit of feature g in row (b, s) from the fused sampler.
  XATTR_HD uint8_t sampled_bit(int64_t b, int64_t s, int64_t g) const {
    if (p.sampler == Sampler::kMus) return mus_bit(p.seed, p.q, p.L, s + p.row_offset, g);
    const int64_t r = s + p.row_offset + (p.per_example ? b * p.S : 0);
    return bernoulli_bit(p.seed, p.bern_threshold, static_cast<uint64_t>(r), g);
  }

  // bits: the row's d mask bytes. An id out of [0, d) reads nothing and
  // keeps the base (the ops reject such ids before calling).
  XATTR_HD static void apply(const Row& r, const uint8_t* bits, int64_t d, int64_t e) {
    const int64_t g = r.group[e];
    const uint8_t bit = (g >= 0 && g < d) ? bits[g] : 0;
    r.out[e] = bit ? r.x[e] : r.base[e];
  }

  // GPU path: one element per thread; a fused sampler draws the bit here.
  XATTR_HD void operator()(int64_t row, int64_t e) const {
    const Row r = row_at(row);
    if (r.masks != nullptr) {
      apply(r, r.masks, p.d, e);
      return;
    }
    const int64_t g = r.group[e];
    const uint8_t bit = (g >= 0 && g < p.d) ? sampled_bit(r.b, r.s, g) : 0;
    r.out[e] = bit ? r.x[e] : r.base[e];
  }

  // CPU path: a span of one row. A fused sampler draws the row's d bits once
  // into a small buffer (never the whole mask tensor), then applies them.
  void span(int64_t row, int64_t e0, int64_t e1) const {
    const Row r = row_at(row);
    const uint8_t* bits = r.masks;
    uint8_t local[1024];
    std::vector<uint8_t> heap;
    if (bits == nullptr) {
      uint8_t* buf = local;
      if (p.d > 1024) {
        heap.resize(static_cast<size_t>(p.d));
        buf = heap.data();
      }
      for (int64_t g = 0; g < p.d; ++g) buf[g] = sampled_bit(r.b, r.s, g);
      bits = buf;
    }
    for (int64_t e = e0; e < e1; ++e) apply(r, bits, p.d, e);
  }
};

// Mask rows shared by the batch (shared masks, or fused sampling other than
// per-example Bernoulli): the grid is (s, b * E + e), so that the CPU fetches
// or draws each mask row once for all B inputs instead of once per input.
// Same outputs as MaskApplyOp.
template <typename T>
struct MaskApplySharedRowOp {
  MaskApplyOp<T> op;

  XATTR_HD void operator()(int64_t s, int64_t c) const {
    const int64_t b = c / op.p.E;
    op(b * op.p.S + s, c - b * op.p.E);
  }

  void span(int64_t s, int64_t c0, int64_t c1) const {
    const MaskApplyParams& p = op.p;
    uint8_t local[1024];
    std::vector<uint8_t> heap;
    const uint8_t* bits = p.masks == nullptr ? nullptr : p.masks + s * p.d;
    if (bits == nullptr) {
      uint8_t* buf = local;
      if (p.d > 1024) {
        heap.resize(static_cast<size_t>(p.d));
        buf = heap.data();
      }
      for (int64_t g = 0; g < p.d; ++g) buf[g] = op.sampled_bit(0, s, g);
      bits = buf;
    }
    for (int64_t b = c0 / p.E; b * p.E < c1; ++b) {
      const typename MaskApplyOp<T>::Row r = op.row_at(b * p.S + s);
      const int64_t e0 = c0 > b * p.E ? c0 - b * p.E : 0;
      const int64_t e1 = c1 < (b + 1) * p.E ? c1 - b * p.E : p.E;
      for (int64_t e = e0; e < e1; ++e) MaskApplyOp<T>::apply(r, bits, p.d, e);
    }
  }
};

}  // namespace xattr
