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

  // The mask bit (0 or 1) of feature g in row r: the row's mask byte, or the
  // fused sampler's draw. An id out of [0, d) reads nothing and keeps the base
  // (the ops reject such ids before calling).
  XATTR_HD uint8_t bit(const Row& r, int64_t g) const {
    if (g < 0 || g >= p.d) return 0;
    return r.masks != nullptr ? mask_bit(r.masks[g]) : sampled_bit(r.b, r.s, g);
  }

  // m ? x : base, as a bitwise blend of the two values' bytes (exact, and
  // compilers vectorise a loop of it).
  XATTR_HD static T blend(uint8_t m, const T& x, const T& base) {
    using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    U xv, bv;
    memcpy(&xv, &x, sizeof(T));
    memcpy(&bv, &base, sizeof(T));
    const U keep = U{0} - static_cast<U>(m);
    const U v = bv ^ ((xv ^ bv) & keep);
    T out;
    memcpy(&out, &v, sizeof(T));
    return out;
  }

  // The one element formula. The GPU (and the CPU's element launch) calls it
  // per element; span() calls it over a row.
  XATTR_HD void element(const Row& r, int64_t e) const {
    r.out[e] = blend(bit(r, r.group[e]), r.x[e], r.base[e]);
  }

  XATTR_HD void operator()(int64_t row, int64_t e) const { element(row_at(row), e); }

  // A fused sampler's row: its d bits drawn once into `buf` (never the whole
  // mask tensor), after which bit() reads them as a mask row.
  struct Bits {
    uint8_t local[1024];
    std::vector<uint8_t> heap;
  };
  void draw(Row& r, Bits& buf) const {
    if (r.masks != nullptr) return;
    uint8_t* bits = buf.local;
    if (p.d > 1024) {
      buf.heap.resize(static_cast<size_t>(p.d));
      bits = buf.heap.data();
    }
    for (int64_t g = 0; g < p.d; ++g) bits[g] = bit(r, g);
    r.masks = bits;
  }

  // out[e] = blend(m[e], x[e], base[e]) over [e0, e1): element() once the bits
  // are looked up, in a loop that compilers vectorise.
  static void select(const uint8_t* __restrict m, const T* __restrict x, const T* __restrict base,
                     T* __restrict out, int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) out[e] = blend(m[e], x[e], base[e]);
  }

  // CPU: element() over a span of one row, in blocks: the bits first (a lookup
  // each), then the vectorised select.
  void span(int64_t row, int64_t e0, int64_t e1) const {
    Row r = row_at(row);
    Bits buf;
    draw(r, buf);
    uint8_t ebits[1024];
    for (int64_t a = e0; a < e1; a += 1024) {
      const int64_t z = a + 1024 < e1 ? a + 1024 : e1;
      for (int64_t e = a; e < z; ++e) ebits[e - a] = bit(r, r.group[e]);
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

  // CPU: element() over the span, the row's bits drawn once for the batch.
  void span(int64_t s, int64_t c0, int64_t c1) const {
    const MaskApplyParams& p = op.p;
    typename MaskApplyOp<T>::Row r0 = op.row_at(s);  // example 0 of mask row s
    typename MaskApplyOp<T>::Bits buf;
    op.draw(r0, buf);
    // Groups shared by the batch and a span of at least one whole example: look
    // the element bits up once, then every example is a plain (vectorised) select.
    std::vector<uint8_t> ebits;
    if (p.group_bstride == 0 && c1 - c0 >= p.E) {
      ebits.resize(static_cast<size_t>(p.E));
      for (int64_t e = 0; e < p.E; ++e) ebits[static_cast<size_t>(e)] = op.bit(r0, p.group[e]);
    }
    for (int64_t b = c0 / p.E; b * p.E < c1; ++b) {
      typename MaskApplyOp<T>::Row r = op.row_at(b * p.S + s);
      r.masks = r0.masks;  // the same mask row (shared), or its drawn bits
      const int64_t e0 = c0 > b * p.E ? c0 - b * p.E : 0;
      const int64_t e1 = c1 < (b + 1) * p.E ? c1 - b * p.E : p.E;
      if (!ebits.empty()) {
        MaskApplyOp<T>::select(ebits.data(), r.x, r.base, r.out, e0, e1);
      } else {
        for (int64_t e = e0; e < e1; ++e) op.element(r, e);
      }
    }
  }
};

}  // namespace xattr
