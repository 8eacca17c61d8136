// Masking / multiplicative smoothing, element (row = b * S + s, col = e):
//   out[b, s, e] = bit ? x[b, e] : base[b, e],  bit = mask(b, s, group[b, e])
// A select rather than base + m * (x - base): for binary m the two are equal
// in exact arithmetic, and the select is also exact in floating point (a kept
// element is x itself, not base + (x - base) rounded). Token ids (int64) are
// masked by replacement with the same formula.
#pragma once

#include <cstring>
#include <type_traits>
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
    // In unsigned arithmetic: the binding bounds row_offset + B * S by 2^63 - 1,
    // and no intermediate sum may overflow a signed type (undefined behaviour).
    const uint64_t r = static_cast<uint64_t>(s) + static_cast<uint64_t>(p.row_offset) +
                       (p.per_example ? static_cast<uint64_t>(b) * static_cast<uint64_t>(p.S) : 0);
    return bernoulli_bit(p.seed, p.bern_threshold, r, g);
  }

  // bits: the row's d mask bytes. An id out of [0, d) reads nothing and
  // keeps the base (the ops reject such ids before calling).
  XATTR_HD static void apply(const Row& r, const uint8_t* bits, int64_t d, int64_t e) {
    const int64_t g = r.group[e];
    const uint8_t bit = (g >= 0 && g < d) ? mask_bit(bits[g]) : 0;
    r.out[e] = bit ? r.x[e] : r.base[e];
  }

  // The element bits of [e0, e1) (0 or 1) from the row's d feature bits; an
  // id out of [0, d) reads nothing and keeps the base (the ops reject such ids).
  static void expand(const uint8_t* bits, int64_t d, const int64_t* group, uint8_t* ebits,
                     int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t g = group[e];
      ebits[e] = (g >= 0 && g < d) ? mask_bit(bits[g]) : 0;
    }
  }

  // out[e] = m[e] ? x[e] : base[e] over [e0, e1), written so that compilers
  // vectorise it (a bitwise blend of the two values' bytes).
  static void select(const uint8_t* __restrict m, const T* __restrict x, const T* __restrict base,
                     T* __restrict out, int64_t e0, int64_t e1) {
    using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    for (int64_t e = e0; e < e1; ++e) {
      U xv, bv;
      std::memcpy(&xv, x + e, sizeof(T));
      std::memcpy(&bv, base + e, sizeof(T));
      const U keep = U{0} - static_cast<U>(m[e]);
      const U v = bv ^ ((xv ^ bv) & keep);
      std::memcpy(out + e, &v, sizeof(T));
    }
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
    // Element bits in blocks (a lookup each), then a vectorised select.
    uint8_t ebits[1024];
    for (int64_t a = e0; a < e1; a += 1024) {
      const int64_t z = a + 1024 < e1 ? a + 1024 : e1;
      expand(bits, p.d, r.group + a, ebits, 0, z - a);
      select(ebits, r.x + a, r.base + a, r.out + a, 0, z - a);
    }
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
    // Groups shared by the batch and a span of at least one whole example: look
    // the element bits up once, then every example is a plain (vectorised) select.
    std::vector<uint8_t> ebits;
    if (p.group_bstride == 0 && c1 - c0 >= p.E) {
      ebits.resize(static_cast<size_t>(p.E));
      MaskApplyOp<T>::expand(bits, p.d, p.group, ebits.data(), 0, p.E);
    }
    for (int64_t b = c0 / p.E; b * p.E < c1; ++b) {
      const typename MaskApplyOp<T>::Row r = op.row_at(b * p.S + s);
      const int64_t e0 = c0 > b * p.E ? c0 - b * p.E : 0;
      const int64_t e1 = c1 < (b + 1) * p.E ? c1 - b * p.E : p.E;
      if (!ebits.empty()) {
        MaskApplyOp<T>::select(ebits.data(), r.x, r.base, r.out, e0, e1);
      } else {
        for (int64_t e = e0; e < e1; ++e) MaskApplyOp<T>::apply(r, bits, p.d, e);
      }
    }
  }
};

}  // namespace xattr
