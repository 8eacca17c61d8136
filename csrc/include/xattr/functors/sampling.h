// Mask-sampling functors. Each produces one row (or one element) from the
// seed and the row's global index alone, so the CPU driver (OpenMP over rows)
// and the CUDA driver (one thread per row) write identical bits, and any
// chunk of rows can be produced on its own.
//
// Integer work only: random words are compared with integer thresholds, never
// converted to floating point, so no rounding can differ between devices.
#pragma once

#include "xattr/params.h"
#include "xattr/philox.h"

namespace xattr {

// Bit of feature i in row `row` of a Bernoulli(p) mask: one 32-bit word per
// feature, four features per Philox block.
XATTR_HD uint8_t bernoulli_bit(uint64_t seed, uint64_t threshold, uint64_t row, int64_t i) {
  const U32x4 r = philox_block(seed, kTagBernoulli, row, static_cast<uint64_t>(i) >> 2);
  return static_cast<uint64_t>(r.v[i & 3]) < threshold ? 1 : 0;
}

// MuS structured noise, element (j, i): the seed vector entry v_i = c_i / q
// with c_i uniform in [0, q); s[j, i] = 1 iff ((v_i + (j + 1/2) / q) mod 1) < L / q.
// In integers (multiply by 2q): ((2 c_i + 2 j + 1) mod 2q) < 2L. As j runs
// over 0..q-1 the residue (c_i + j) mod q takes every value once, so every
// column has exactly L ones.
XATTR_HD uint8_t mus_bit(uint64_t seed, int64_t q, int64_t L, int64_t j, int64_t i) {
  const uint64_t c =
      mulhi64(philox_u64(seed, kTagMus, 0, static_cast<uint64_t>(i)), static_cast<uint64_t>(q));
  const uint64_t t = (2 * c + 2 * static_cast<uint64_t>(j) + 1) % (2 * static_cast<uint64_t>(q));
  return t < 2 * static_cast<uint64_t>(L) ? 1 : 0;
}

// A uniform subset of size k of {0..d-1} (Knuth's selection sampling,
// Algorithm S): feature i is kept with probability need / (d - i), where
// `need` counts the features still to choose. One 64-bit word per feature.
XATTR_HD void subset_row(uint64_t seed, uint32_t tag, uint64_t row, int64_t d, int64_t k,
                         uint8_t* out) {
  int64_t need = k;
  for (int64_t i = 0; i < d; i += 2) {
    const U32x4 r = philox_block(seed, tag, row, static_cast<uint64_t>(i) >> 1);
    for (int h = 0; h < 2 && i + h < d; ++h) {
      const uint64_t w = (static_cast<uint64_t>(r.v[2 * h]) << 32) | r.v[2 * h + 1];
      const uint64_t left = static_cast<uint64_t>(d - (i + h));
      const uint8_t keep = mulhi64(w, left) < static_cast<uint64_t>(need) ? 1 : 0;
      out[i + h] = keep;
      need -= keep;
    }
  }
}

// Size of a Shapley-kernel coalition: k in 1..d-1 with probability
// proportional to (d - 1) / (k (d - k)). thresholds[s] is the cumulative
// probability of sizes 1..s+1 times 2^64 (the last one saturates).
XATTR_HD int64_t shapley_size(uint64_t r, const uint64_t* thresholds, int64_t d) {
  int64_t lo = 0, hi = d - 2;  // first s with r < thresholds[s]
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (r < thresholds[mid]) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo + 1;
}

// Fisher-Yates shuffle of 0..d-1 from the row's stream.
XATTR_HD void permutation_row(uint64_t seed, uint64_t row, int64_t d, int32_t* out) {
  for (int64_t i = 0; i < d; ++i) out[i] = static_cast<int32_t>(i);
  for (int64_t i = d - 1; i > 0; --i) {
    const uint64_t w = philox_u64(seed, kTagPermutation, row, static_cast<uint64_t>(d - 1 - i));
    const int64_t j = static_cast<int64_t>(mulhi64(w, static_cast<uint64_t>(i + 1)));
    const int32_t t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
}

// One row of any sampler; `local` is the row within this call.
struct SampleRowOp {
  SampleParams p;

  XATTR_HD void operator()(int64_t local, int64_t /*col*/) const {
    const int64_t d = p.d;
    const uint64_t row = static_cast<uint64_t>(p.row_offset + local);
    switch (p.sampler) {
      case Sampler::kBernoulli: {
        uint8_t* out = p.masks + local * d;
        for (int64_t i = 0; i < d; i += 4) {
          const U32x4 r = philox_block(p.seed, kTagBernoulli, row, static_cast<uint64_t>(i) >> 2);
          for (int h = 0; h < 4 && i + h < d; ++h) {
            out[i + h] = static_cast<uint64_t>(r.v[h]) < p.bern_threshold ? 1 : 0;
          }
        }
        break;
      }
      case Sampler::kExactK:
        subset_row(p.seed, kTagSubset, row, d, p.k, p.masks + local * d);
        break;
      case Sampler::kShapley: {
        // Paired rows: row 2t is a draw, row 2t + 1 its complement.
        const uint64_t draw = p.paired ? row / 2 : row;
        const bool flip = p.paired && (row & 1);
        uint8_t* out = p.masks + local * d;
        const int64_t k =
            shapley_size(philox_u64(p.seed, kTagShapleySize, draw, 0), p.size_thresholds, d);
        subset_row(p.seed, kTagShapleySubset, draw, d, k, out);
        if (flip) {
          for (int64_t i = 0; i < d; ++i) out[i] = 1 - out[i];
        }
        break;
      }
      case Sampler::kPermutation: {
        // Antithetic rows: row 2t + 1 is row 2t reversed.
        const uint64_t draw = p.paired ? row / 2 : row;
        int32_t* out = p.perms + local * d;
        permutation_row(p.seed, draw, d, out);
        if (p.paired && (row & 1)) {
          for (int64_t i = 0, j = d - 1; i < j; ++i, --j) {
            const int32_t t = out[i];
            out[i] = out[j];
            out[j] = t;
          }
        }
        break;
      }
      case Sampler::kMus: {  // the formula of mus_bit, with c_i from MusOffsetsOp
        uint8_t* out = p.masks + local * d;
        const uint64_t q2 = 2 * static_cast<uint64_t>(p.q), lim = 2 * static_cast<uint64_t>(p.L);
        const uint64_t jj = 2 * (row % static_cast<uint64_t>(p.q)) + 1;
        for (int64_t i = 0; i < d; ++i) out[i] = (2 * p.mus_offsets[i] + jj) % q2 < lim ? 1 : 0;
        break;
      }
      case Sampler::kStratified: {
        const int64_t k = static_cast<int64_t>(row) / p.m;
        subset_row(p.seed, kTagStratified, row, d, k, p.masks + local * d);
        break;
      }
      case Sampler::kEnumerate: {
        uint8_t* out = p.masks + local * d;
        for (int64_t i = 0; i < d; ++i) out[i] = static_cast<uint8_t>((row >> i) & 1);
        break;
      }
    }
  }
};

// MuS seed vector: offsets[i] = c_i, drawn once per call so that every row
// reads it instead of drawing it again (row = feature i).
struct MusOffsetsOp {
  SampleParams p;

  XATTR_HD void operator()(int64_t i, int64_t /*col*/) const {
    const uint64_t w = philox_u64(p.seed, kTagMus, 0, static_cast<uint64_t>(i));
    p.mus_offsets[i] = mulhi64(w, static_cast<uint64_t>(p.q));
  }
};

}  // namespace xattr
