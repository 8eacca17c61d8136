"""The integer thresholds the samplers compare random words with: the inputs that the
kernels (``csrc/include/xattr/functors/sampling.h``) and the references
(:mod:`xattr.ops._reference`) are both given, so that both compare the same integers.
Exact integer arithmetic, so no platform's floating-point rounding is involved."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

_TWO32 = 1 << 32
_UINT64_MAX = (1 << 64) - 1


def bernoulli_threshold(p: float) -> int:
    """The integer threshold of a Bernoulli(p) bit: a 32-bit word w gives 1 iff w < threshold.

    round(p * 2^32) clamped to [0, 2^32], so p = 0 never and p = 1 always gives 1. Kernels
    and references both take the threshold from here, so they compare the same integers.
    """
    if math.isnan(p):
        raise ValueError("bernoulli_threshold: p must be a number in [0, 1], got nan")
    p = min(max(float(p), 0.0), 1.0)
    return min(max(int(round(p * _TWO32)), 0), _TWO32)


@functools.lru_cache(maxsize=256)
def _shapley_thresholds_exact(d: int, sizes: tuple[int, ...] = ()) -> tuple[int, ...]:
    # With 1/(k(d-k)) = (1/k + 1/(d-k)) / d, a size's mass times D = lcm(1..d-1) is the
    # integer D/k + D/(d-k) (the common factor 1/d cancels), so the cumulative mass of
    # the allowed sizes and floor(cum / total * 2^64) are computed exactly.
    den = math.lcm(*range(1, d))
    allowed = set(range(1, d)) if not sizes else set(sizes)
    mass = [den // k + den // (d - k) if k in allowed else 0 for k in range(1, d)]
    total = sum(mass)
    out, cum = [], 0
    for m in mass:
        cum += m
        out.append(min((cum << 64) // total, _UINT64_MAX))
    # Every word must select an allowed size: from the last allowed size on, saturate.
    last = max(allowed) - 1
    for s in range(last, d - 1):
        out[s] = _UINT64_MAX
    return tuple(out)


def shapley_size_thresholds(d: int, sizes: Sequence[int] = ()) -> list[int]:
    """Cumulative Shapley-kernel size thresholds for the Shapley sampler (unsigned ints).

    Size k in 1..d-1 (or in ``sizes`` only, when given) has probability proportional to
    (d - 1) / (k (d - k)); entry s is floor(P(size <= s + 1) * 2^64), computed exactly in
    integers, saturating at 2^64 - 1 from the last allowed size on.
    """
    if int(d) < 2:
        raise ValueError(f"shapley_size_thresholds: d must be >= 2, got {d}")
    sizes = tuple(sorted({int(k) for k in sizes}))
    if sizes and (sizes[0] < 1 or sizes[-1] > d - 1):
        raise ValueError(f"sizes: coalition sizes must be in [1, {d - 1}], got {list(sizes)}")
    return list(_shapley_thresholds_exact(int(d), sizes))
