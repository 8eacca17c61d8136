"""Pure-torch reference implementations of every xattr kernel.

These are the references the C++/CUDA kernels in ``csrc/`` are tested and benchmarked
against, and the fallback used where the compiled kernels are unavailable. Each function is
the same mathematics as its kernel, written as vectorised torch on any device, in float32
or float64:

* The samplers reproduce the kernels' bits exactly: the same Philox4x32-10 counters and
  stream tags (``csrc/include/xattr/philox.h``) and the same integer-only mapping of random
  words to masks (``csrc/include/xattr/functors/sampling.h``).
* The solvers work in float64 whatever the input dtype, as the kernels do, and agree with
  them to rounding (the order of floating-point sums differs).

Torch has no usable unsigned 32/64-bit arithmetic, so a 32-bit word is an int64 tensor
holding a value in [0, 2^32): a 32x32-bit product then fits in the 64 bits of an int64
(wrapping past 2^63), and its high and low halves are recovered with a shift and a mask.
A 64-bit random word is a pair (hi, lo) of such words.

Python loops run over rows, samples or batch items nowhere. They remain where the
algorithm is sequential (Philox rounds; features in selection sampling and Fisher-Yates;
columns of the pivot-dropping Cholesky, used only for rank-deficient systems; sweeps and
coordinates of the lasso's coordinate descent) and where a short loop beats one big op
(features in exact_values, integration steps in path_integrate, cache-sized chunks of
Philox on the CPU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from xattr._ext import MAX_ENUMERATION_FEATURES
from xattr.ops._thresholds import (  # noqa: F401  (the kernels' inputs, re-exported)
    _shapley_thresholds_exact,
    bernoulli_threshold,
    shapley_size_thresholds,
)

Tensor = torch.Tensor

SAMPLERS = ("bernoulli", "exact_k", "shapley", "permutation", "mus", "stratified", "enumerate")
QUADRATURE_METHODS = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)
REDUCTIONS = ("mean", "sum", "none")

_MASK32 = 0xFFFFFFFF
_TWO32 = 1 << 32
_TWO63 = 1 << 63
_UINT64_MAX = (1 << 64) - 1

# Philox4x32 multipliers and Weyl key increments (philox.h).
_PHILOX_M0 = 0xD2511F53
_PHILOX_M1 = 0xCD9E8D57
_PHILOX_W0 = 0x9E3779B9
_PHILOX_W1 = 0xBB67AE85

# Stream tags (philox.h, StreamTag): each sampler reads its own stream of a shared seed.
_TAG_BERNOULLI = 1
_TAG_SUBSET = 2
_TAG_SHAPLEY_SIZE = 3
_TAG_PERMUTATION = 4
_TAG_MUS = 5
_TAG_STRATIFIED = 6
_TAG_SHAPLEY_SUBSET = 7

# Cholesky pivots at or below this fraction of the largest diagonal entry are dropped
# (cholesky_drop in coalition.h).
_PIVOT_RTOL = 1e-11

# Elements per Philox chunk on the CPU (see _philox_blocks).
_CPU_CHUNK = 1 << 15


# --------------------------------------------------------------------------- random words
def philox4x32_10(
    c0: Tensor, c1: Tensor, c2: Tensor, c3: Tensor, k0: int, k1: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Philox4x32-10 of the counter (c0, c1, c2, c3) under the key (k0, k1).

    The counter words are int64 tensors with values in [0, 2^32) and broadcastable shapes;
    the four output words have the broadcast shape and values in [0, 2^32). The inputs are
    not modified.
    """
    k0 &= _MASK32
    k1 &= _MASK32
    # Private, full-size buffers so that every round runs in place (no allocation).
    c0, c1, c2, c3 = (t.to(torch.int64).clone() for t in torch.broadcast_tensors(c0, c1, c2, c3))
    tmp = torch.empty_like(c0)
    for _ in range(10):
        # The 32x32-bit products exceed 2^63 and wrap in int64: their 64 bits are exact.
        p0 = c0.mul_(_PHILOX_M0)
        p1 = c2.mul_(_PHILOX_M1)
        # n0 = hi(p1) ^ c1 ^ k0 and n2 = hi(p0) ^ c3 ^ k1, built in c1's and c3's buffers.
        # The low words n1 = lo(p1), n3 = lo(p0) stay unmasked: their garbage high bits
        # only ever meet an XOR followed by this mask, never a multiplication.
        n0 = c1.bitwise_xor_(k0).bitwise_xor_(torch.bitwise_right_shift(p1, 32, out=tmp))
        n0.bitwise_and_(_MASK32)
        n2 = c3.bitwise_xor_(k1).bitwise_xor_(torch.bitwise_right_shift(p0, 32, out=tmp))
        n2.bitwise_and_(_MASK32)
        c0, c1, c2, c3 = n0, p1, n2, p0
        k0 = (k0 + _PHILOX_W0) & _MASK32
        k1 = (k1 + _PHILOX_W1) & _MASK32
    return c0, c1.bitwise_and_(_MASK32), c2, c3.bitwise_and_(_MASK32)


def _philox_blocks(seed: int, tag: int, rows: Tensor, nblocks: int) -> tuple[Tensor, ...]:
    """Blocks 0..nblocks-1 of each row's stream (philox_block): four words of [n, nblocks]."""
    n = rows.shape[0]
    blocks = torch.arange(nblocks, dtype=torch.int64, device=rows.device)
    c0 = (blocks & _MASK32).unsqueeze(0)
    c3 = (tag ^ (((blocks >> 32) << 8) & _MASK32)).unsqueeze(0)
    key = (seed & _MASK32, seed >> 32)

    def run(r: Tensor) -> tuple[Tensor, ...]:
        c1 = (r & _MASK32).unsqueeze(1)
        c2 = ((r >> 32) & _MASK32).unsqueeze(1)
        return philox4x32_10(c0, c1, c2, c3, *key)

    if rows.device.type != "cpu" or n * nblocks <= _CPU_CHUNK:
        return run(rows)
    # On the CPU the ten rounds are ~100 elementwise passes over the words: in chunks
    # that stay in cache they run ~1.6x faster than over whole tensors. (GPUs prefer
    # one launch per pass.)
    out = torch.empty((4, n, nblocks), dtype=torch.int64)
    step = max(1, _CPU_CHUNK // nblocks)
    for start in range(0, n, step):
        for dst, word in zip(out, run(rows[start : start + step])):
            dst[start : start + step] = word
    return tuple(out)


def _philox_u64(seed: int, tag: int, rows: Tensor, nwords: int) -> tuple[Tensor, Tensor]:
    """64-bit words 0..nwords-1 of each row's stream (philox_u64), as (hi, lo) [n, nwords].

    Word i is (v[2h], v[2h+1]) of block i // 2 with h = i % 2.
    """
    n, nblocks = rows.shape[0], (nwords + 1) // 2
    r0, r1, r2, r3 = _philox_blocks(seed, tag, rows, nblocks)
    hi = torch.stack((r0, r2), dim=-1).reshape(n, 2 * nblocks)[:, :nwords]
    lo = torch.stack((r1, r3), dim=-1).reshape(n, 2 * nblocks)[:, :nwords]
    return hi, lo


def _mulhi64(hi: Tensor, lo: Tensor, bound: Tensor | int) -> Tensor:
    """floor(((hi << 32) | lo) * bound / 2^64) (mulhi64): the word mapped to [0, bound).

    Exact for 0 <= bound < 2^31: hi * bound < 2^63 and the low product only carries into
    the high half through its top 32 bits.
    """
    return (hi * bound + ((lo * bound) >> 32)) >> 32


def _check_seed(seed: int) -> int:
    """The seed as the kernels' uint64 key: (seed mod 2^32, seed >> 32)."""
    seed = int(seed)
    if not 0 <= seed <= _UINT64_MAX:
        raise ValueError(f"seed must be in [0, 2^64), got {seed}")
    return seed


# ----------------------------------------------------------------------------- samplers
def _subset_rows(seed: int, tag: int, rows: Tensor, d: int, k: Tensor | int) -> Tensor:
    """Knuth's selection sampling (subset_row): a uniform k-subset of d features per row.

    Feature i is kept iff mulhi64(word_i, d - i) < need, need = features still to choose;
    `need` makes the scan sequential in i, so the loop runs over features, vectorised
    over rows.
    """
    n = rows.shape[0]
    hi, lo = _philox_u64(seed, tag, rows, d)
    left = torch.arange(d, 0, -1, dtype=torch.int64, device=rows.device)
    u = _mulhi64(hi, lo, left).t().contiguous()  # [d, n]: contiguous per-feature slices
    need = torch.as_tensor(k, dtype=torch.int64, device=rows.device).expand(n).clone()
    out = torch.empty((d, n), dtype=torch.bool, device=rows.device)
    for i in range(d):
        keep = torch.lt(u[i], need, out=out[i])
        need -= keep.to(torch.int64)
    return out.t().contiguous()


def _shapley_rows(
    seed: int, rows: Tensor, d: int, paired: bool, thresholds: Sequence[int] | None
) -> Tensor:
    draw = rows >> 1 if paired else rows
    if thresholds is None:
        thresholds = _shapley_thresholds_exact(d)
    if len(thresholds) != d - 1:
        raise ValueError(f"thresholds: expected {d - 1} entries, got {len(thresholds)}")
    # Unsigned 64-bit comparisons as signed ones: subtracting 2^63 from both sides keeps
    # the order and brings the values into int64's range.
    table = torch.tensor(
        [(int(t) & _UINT64_MAX) - _TWO63 for t in thresholds],
        dtype=torch.int64,
        device=rows.device,
    )
    hi, lo = _philox_u64(seed, _TAG_SHAPLEY_SIZE, draw, 1)
    r = (hi[:, 0] - (1 << 31)) * _TWO32 + lo[:, 0]  # the word minus 2^63, without overflow
    # shapley_size's binary search: the first s with r < T[s], capped at d - 2.
    size = torch.searchsorted(table, r, right=True).clamp_(max=d - 2) + 1
    out = _subset_rows(seed, _TAG_SHAPLEY_SUBSET, draw, d, size)
    if paired:  # row 2t + 1 is the complement of row 2t
        out ^= (rows & 1).bool().unsqueeze(1)
    return out


def _permutation_rows(seed: int, rows: Tensor, d: int, paired: bool) -> Tensor:
    """Fisher-Yates (permutation_row): step i = d-1..1 swaps i with mulhi64(w_{d-1-i}, i+1)."""
    n = rows.shape[0]
    device = rows.device
    draw = rows >> 1 if paired else rows
    # Kept transposed, [d, n], so that each step reads and writes contiguous slices.
    perm = torch.arange(d, dtype=torch.int32, device=device).unsqueeze(1).repeat(1, n)
    if d > 1:
        hi, lo = _philox_u64(seed, _TAG_PERMUTATION, draw, d - 1)
        bound = torch.arange(d, 1, -1, dtype=torch.int64, device=device)  # i + 1 at word d-1-i
        col = torch.arange(n, dtype=torch.int64, device=device)
        flat_idx = (_mulhi64(hi, lo, bound) * n + col.unsqueeze(1)).t().contiguous()
        flat = perm.view(-1)
        for t in range(d - 1):
            i = d - 1 - t
            idx = flat_idx[t]  # position (j, row) in the flattened [d, n] layout
            vi = perm[i].clone()
            perm[i] = flat[idx]
            flat[idx] = vi
    perm = perm.t()
    if paired:  # row 2t + 1 is row 2t reversed (antithetic)
        perm = torch.where((rows & 1).bool().unsqueeze(1), perm.flip(1), perm)
    return perm.contiguous()


def _mus_rows(seed: int, rows: Tensor, d: int, q: int, L: int) -> Tensor:
    """MuS noise (mus_bit): s[j, i] = ((2 c_i + 2 j + 1) mod 2q) < 2L, c_i uniform in [0, q)."""
    hi, lo = _philox_u64(seed, _TAG_MUS, rows.new_zeros(1), d)
    c = _mulhi64(hi[0], lo[0], q)
    return torch.remainder(2 * c + (2 * rows + 1).unsqueeze(1), 2 * q) < 2 * L


def sample(
    sampler: str,
    n: int,
    d: int,
    *,
    seed: int,
    row_offset: int = 0,
    p: float = 0.5,
    k: int = 0,
    paired: bool = False,
    q: int = 0,
    L: int = 0,
    m: int = 0,
    device: torch.device | str = "cpu",
    thresholds: Sequence[int] | None = None,
) -> Tensor:
    """Rows row_offset .. row_offset + n - 1 of a sampler's global stream (SampleRowOp).

    Returns bool [n, d] (int32 [n, d] for "permutation"), bit for bit what the kernel
    writes. `thresholds` (Shapley only) overrides the exact size table of
    :func:`shapley_size_thresholds`, e.g. to use the very table a kernel was given.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}")
    seed = _check_seed(seed)
    n, d, row_offset = int(n), int(d), int(row_offset)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    if row_offset < 0:
        raise ValueError(f"row_offset must be >= 0, got {row_offset}")
    if d >= 1 << 31:
        raise ValueError(f"d must be < 2^31, got {d}")
    rows = torch.arange(row_offset, row_offset + n, dtype=torch.int64, device=device)

    if sampler == "bernoulli":
        thr = bernoulli_threshold(p)
        nblocks = (d + 3) // 4  # feature i is word i % 4 of block i // 4
        words = _philox_blocks(seed, _TAG_BERNOULLI, rows, nblocks)
        bits = torch.stack([w < thr for w in words], dim=-1).reshape(n, 4 * nblocks)
        return bits[:, :d].contiguous()
    if sampler == "exact_k":
        if not 0 <= k <= d:
            raise ValueError(f"k must be in [0, d], got {k}")
        return _subset_rows(seed, _TAG_SUBSET, rows, d, int(k))
    if sampler == "shapley":
        if d < 2:
            raise ValueError(f"Shapley-kernel coalitions need d >= 2, got {d}")
        return _shapley_rows(seed, rows, d, bool(paired), thresholds)
    if sampler == "permutation":
        return _permutation_rows(seed, rows, d, bool(paired))
    if sampler == "mus":
        if not 1 <= q < 1 << 31:
            raise ValueError(f"q must be in [1, 2^31), got {q}")
        if not 0 <= L <= q:
            raise ValueError(f"L must be in [0, q], got {L}")
        if row_offset + n > q:
            raise ValueError("MuS noise has q rows; rows past q requested")
        return _mus_rows(seed, rows, d, int(q), int(L))
    if sampler == "stratified":
        if m < 1:
            raise ValueError(f"m must be >= 1, got {m}")
        if row_offset + n > m * d:
            raise ValueError("stratified sampler has m * d rows; rows past that requested")
        return _subset_rows(seed, _TAG_STRATIFIED, rows, d, rows // int(m))
    # enumerate
    if d > MAX_ENUMERATION_FEATURES:
        raise ValueError(f"enumeration supports d <= {MAX_ENUMERATION_FEATURES}, got {d}")
    if row_offset + n > 1 << d:
        raise ValueError("enumeration has 2^d rows; rows past that requested")
    bits = torch.arange(d, dtype=torch.int64, device=device)
    return ((rows.unsqueeze(1) >> bits) & 1).bool()


# ------------------------------------------------------------------------------ masking
def mask_apply(x: Tensor, base: Tensor, group: Tensor, masks: Tensor) -> Tensor:
    """out[b, s, e] = x[b, e] if masks[b, s, group[b, e]] else base[b, e] (MaskApplyOp).

    x [B, E]; base [Bb, E]; group int64 [Bg, E] with ids in [0, d); masks bool [Bm, S, d];
    batch sizes of 1 are shared. Returns [B, S, E]. A select, not base + m * (x - base):
    a kept element is x itself, exactly.
    """
    B, E = x.shape
    S = masks.shape[1]
    if masks.shape[0] == 1 and group.shape[0] == 1:
        bits = masks[0].index_select(1, group[0]).unsqueeze(0)  # [1, S, E], shared by all b
    else:
        index = group.expand(B, E).unsqueeze(1).expand(B, S, E)
        bits = masks.expand(B, S, masks.shape[2]).gather(2, index)
    return torch.where(bits, x.unsqueeze(1), base.unsqueeze(1))


def mask_apply_sampled(
    x: Tensor,
    base: Tensor,
    group: Tensor,
    d: int,
    S: int,
    sampler: str,
    seed: int,
    p: float = 0.5,
    q: int = 0,
    L: int = 0,
    row_offset: int = 0,
    per_example: bool = False,
) -> Tensor:
    """Fused sample-and-apply: :func:`mask_apply` with masks drawn by `sampler`.

    Bernoulli mask rows are s + row_offset, plus b * S when per_example (each input its own
    masks); MuS rows are s + row_offset of the shared q x d noise. Returns [B, S, E].
    """
    B = x.shape[0]
    if sampler == "bernoulli":
        rows = B * S if per_example else S
        masks = sample("bernoulli", rows, d, seed=seed, row_offset=row_offset, p=p, device=x.device)
    elif sampler == "mus":
        if per_example:
            raise ValueError("MuS noise is shared across the batch; per_example must be False")
        masks = sample("mus", S, d, seed=seed, row_offset=row_offset, q=q, L=L, device=x.device)
    else:
        raise ValueError(f"fused masking supports 'bernoulli' and 'mus' only, got {sampler!r}")
    return mask_apply(x, base, group, masks.view(B if per_example else 1, S, d))


# --------------------------------------------------------------------- linear algebra
def _psd_pinv(M: Tensor) -> Tensor:
    """Pseudo-inverse of symmetric PSD matrices M [g, m, m] (float64) by eigendecomposition:
    eigenvalues at or below _PIVOT_RTOL * max(diag M) count as 0, the threshold at which the
    kernels' cholesky_drop treats a vector as dependent on the others."""
    if M.shape[-1] == 0:
        return M.clone()
    lam, V = torch.linalg.eigh(M)
    top = M.diagonal(dim1=-2, dim2=-1).amax(-1, keepdim=True).clamp(min=0.0)
    keep = lam > _PIVOT_RTOL * top
    inv = torch.where(keep, 1.0 / torch.where(keep, lam, 1.0), 0.0)
    return (V * inv.unsqueeze(-2)) @ V.mT


def _min_norm(A: Tensor, b: Tensor, alpha: float | Tensor = 0.0) -> Tensor:
    """x = [A; alpha^(1/2) I]^+ [b; 0]: the ridge solution (A'A + alpha I)^{-1} A'b, and for
    alpha = 0 the minimum-norm least-squares solution A^+ b (minnorm_* in coalition.h).

    A [g, n, m] (g = 1 or B), b [B, n, T] -> [B, m, T]; alpha a number or one per group
    ([g, 1, 1]), through the smaller Gram matrix:
    A'A + alpha I (primal, n >= m) or AA' + alpha I with x = A' (AA' + alpha I)^+ b (dual).
    """
    n, m = A.shape[-2:]
    if n < m:
        K = A @ A.mT + alpha * torch.eye(n, dtype=A.dtype, device=A.device)
        return A.mT @ (_psd_pinv(K) @ b)
    G = A.mT @ A + alpha * torch.eye(m, dtype=A.dtype, device=A.device)
    return _psd_pinv(G) @ (A.mT @ b)


# ---------------------------------------------------------------------- coalition solvers
def kernel_shap_solve(
    masks: Tensor,
    weights: Tensor,
    values: Tensor,
    v_empty: Tensor,
    v_full: Tensor,
    rho: float = 0.0,
) -> Tensor:
    """KernelSHAP's constrained weighted least squares (KernelShapSolveGramOp, KernelShapSolveOp).

    Among the minimisers of sum_r w_r (values_r - v_empty - z_r . phi)^2 subject to
    sum(phi) = delta = v_full - v_empty, the one of least norm: phi = delta / d + psi with
    psi = A^+ b, A = W^{1/2} Z (I - 11'/d), b_r = w_r^{1/2} (values_r - v_empty - |z_r| delta
    / d). With rho > 0 the ridge rho * scale * ||phi||^2 joins the loss, scale =
    ||A||_F^2 / (d - 1) per design: psi = (A'A + rho scale I)^{-1} A'b.
    masks bool [Bm, n, d]; weights [Bw, n]; values [B, n, T]; v_empty, v_full [B, T].
    Returns [B, T, d] in values' dtype.
    """
    d = masks.shape[-1]
    f64 = torch.float64
    v0 = v_empty.to(f64)
    delta = v_full.to(f64) - v0
    if d == 1:
        return delta.unsqueeze(-1).to(values.dtype)
    z = masks.to(f64)
    k = z.sum(-1, keepdim=True)  # [Bm, n, 1]
    sw = weights.to(f64).sqrt().unsqueeze(-1)  # [Bw, n, 1]
    A = sw * (z - k / d)  # [Bg, n, d]: one factorisation per distinct (masks, weights)
    y = values.to(f64) - v0.unsqueeze(1) - k * delta.unsqueeze(1) / d  # [B, n, T]
    alpha = rho * (A * A).sum((-2, -1), keepdim=True) / (d - 1) if rho > 0 else 0.0
    psi = _min_norm(A, sw * y, alpha)  # [B, d, T]
    psi = psi - psi.mean(1, keepdim=True)
    return (delta.unsqueeze(-1) / d + psi.mT).to(values.dtype)


def _column_varies(gjj: Tensor, xbar_j: Tensor) -> Tensor:
    """Whether a 0/1 column varies over the weighted samples (coalition.h column_varies):
    its normalised Gram diagonal above rounding of xbar_j."""
    return gjj > 1e-12 * xbar_j


def _lasso_cd(
    G: Tensor, c: Tensor, alpha: float, max_iter: int, tol: float, xbar: Tensor
) -> Tensor:
    """Cyclic coordinate descent on 1/2 b'Gb - c'b + alpha |b|_1 from b = 0 (LinearSolveOp,
    primal), with G @ b kept up to date as b changes.

    G [g, d, d] (normalised centred Gram), c [B, d, T], xbar [g, d] (the weighted column
    means: a column that does not vary is skipped). Every (b, t) problem stops on its
    own, as its kernel thread does, when the largest step of a sweep is <= tol times the
    largest coefficient (or 0); stopped problems are frozen while the others go on.
    """
    B, d, T = c.shape
    beta = torch.zeros_like(c)
    q = torch.zeros_like(c)  # G @ beta, updated a column at a time
    active = torch.ones((B, T), dtype=torch.bool, device=c.device)
    gdiag = G.diagonal(dim1=-2, dim2=-1).unsqueeze(-1)  # [g, d, 1]
    for _ in range(max_iter):
        max_step = torch.zeros((B, T), dtype=c.dtype, device=c.device)
        max_beta = torch.zeros_like(max_step)
        for j in range(d):
            gjj = gdiag[:, j]  # [g, 1]
            old = beta[:, j]
            rho = c[:, j] - (q[:, j] - gjj * old)
            shrunk = torch.where(
                rho > alpha, rho - alpha, torch.where(rho < -alpha, rho + alpha, 0.0)
            )
            update = active & _column_varies(gjj, xbar[:, j : j + 1])
            new = torch.where(update, shrunk / torch.where(gjj > 0.0, gjj, 1.0), old)
            step = new - old
            max_step = torch.maximum(max_step, step.abs())
            max_beta = torch.maximum(max_beta, torch.where(update, new.abs(), 0.0))
            beta[:, j] = new
            q += G[:, :, j : j + 1] * step[:, None, :]
        active &= ~((max_step <= tol * max_beta) | (max_step == 0.0))
        if not bool(active.any()):
            break
    return beta


def _lasso_cd_data(
    z: Tensor, w: Tensor, xbar: Tensor, yc: Tensor, alpha: float, max_iter: int, tol: float
) -> Tensor:
    """The same coordinate descent on the data (LinearSolveOp, dual: no d x d matrix), with the
    residual u = yc - Xc b kept up to date; for 0/1 columns the normalised Gram diagonal is
    xbar_j (1 - xbar_j). z [g, n, d], w [g, n] normalised to sum 1, xbar [g, d],
    yc [B, n, T] -> [B, d, T]."""
    B, n, T = yc.shape
    d = z.shape[-1]
    beta = torch.zeros((B, d, T), dtype=yc.dtype, device=yc.device)
    u = yc.clone()
    active = torch.ones((B, T), dtype=torch.bool, device=yc.device)
    gdiag = xbar * (1.0 - xbar)  # [g, d]
    for _ in range(max_iter):
        max_step = torch.zeros((B, T), dtype=yc.dtype, device=yc.device)
        max_beta = torch.zeros_like(max_step)
        for j in range(d):
            x = z[:, :, j] - xbar[:, j : j + 1]  # [g, n]
            gjj = gdiag[:, j : j + 1]  # [g, 1]
            old = beta[:, j]
            rho = ((w * x).unsqueeze(-1) * u).sum(1) + gjj * old
            shrunk = torch.where(
                rho > alpha, rho - alpha, torch.where(rho < -alpha, rho + alpha, 0.0)
            )
            update = active & _column_varies(gjj, xbar[:, j : j + 1])
            new = torch.where(update, shrunk / torch.where(gjj > 0.0, gjj, 1.0), old)
            step = new - old
            max_step = torch.maximum(max_step, step.abs())
            max_beta = torch.maximum(max_beta, torch.where(update, new.abs(), 0.0))
            beta[:, j] = new
            u -= x.unsqueeze(-1) * step.unsqueeze(1)
        active &= ~((max_step <= tol * max_beta) | (max_step == 0.0))
        if not bool(active.any()):
            break
    return beta


def linear_fit(
    masks: Tensor,
    weights: Tensor,
    values: Tensor,
    alpha: float,
    lasso: bool,
    max_iter: int = 1000,
    tol: float = 1e-7,
) -> tuple[Tensor, Tensor]:
    """LIME's weighted linear fits with an unpenalised intercept (LinearFit{Gram,Solve}Op).

    Ridge: scikit-learn's Ridge(alpha) with sample_weight, (Xc' W Xc + alpha I) b = Xc' W yc,
    and for alpha = 0 the minimum-norm least-squares fit (LinearRegression's lstsq).
    Lasso: scikit-learn's Lasso(alpha) with sample_weight, i.e. weights normalised to sum
    to 1, min 1/2 sum_r (w_r / sw) (yc_r - Xc_r b)^2 + alpha |b|_1, by cyclic coordinate
    descent from 0: on the centred Gram form when n >= d, on the data when n < d.
    masks bool [Bm, n, d]; weights [Bw, n]; values [B, n, T]. Returns (coef [B, T, d],
    intercept [B, T]) in values' dtype.
    """
    f64 = torch.float64
    z = masks.to(f64)
    w = weights.to(f64)
    v = values.to(f64)
    n, d = z.shape[-2:]
    sw = w.sum(-1)  # [Bw]
    pos = sw > 0.0
    inv = torch.where(pos, 1.0 / torch.where(pos, sw, 1.0), 0.0)
    zw_t = (z * w.unsqueeze(-1)).mT  # [Bg, d, n]
    xbar = zw_t.sum(-1) * inv.unsqueeze(-1)  # [Bg, d]
    ybar = (w.unsqueeze(-1) * v).sum(1) * inv.unsqueeze(-1)  # [B, T]
    yc = v - ybar.unsqueeze(1)
    if not lasso:
        sq = w.sqrt().unsqueeze(-1)
        beta = _min_norm(sq * (z - xbar.unsqueeze(1)), sq * yc, float(alpha))
    elif n < d:
        beta = _lasso_cd_data(
            z, w * inv.unsqueeze(-1), xbar, yc, float(alpha), int(max_iter), float(tol)
        )
    else:
        G = zw_t @ z - sw.view(-1, 1, 1) * xbar.unsqueeze(2) * xbar.unsqueeze(1)  # centred Gram
        c = zw_t @ yc  # [B, d, T]
        iv = inv.view(-1, 1, 1)
        beta = _lasso_cd(G * iv, c * iv, float(alpha), int(max_iter), float(tol), xbar)
    intercept = ybar - (xbar.unsqueeze(-1) * beta).sum(1)
    return beta.mT.to(values.dtype), intercept.to(values.dtype)


def permutation_accumulate(perms: Tensor, values: Tensor, unit: int) -> tuple[Tensor, Tensor]:
    """Shapley sampling: marginal contributions along permutations (PermutationAccumulateOp).

    values[b, p, j] = v(first j features of perm p), j = 0..d; the step j -> j + 1 is
    credited to feature perms[p, j]. Each unit of `unit` consecutive permutations (2: an
    antithetic pair) is averaged first; mean and standard error of the mean (ddof 1) are
    over units, the error NaN with fewer than 2 units. perms int32 [Bp, P, d] holding
    permutations of 0..d-1; values [B, P, d + 1, T]. Returns (mean, stderr), each [B, T, d].
    """
    B, P, d1, T = values.shape
    d = d1 - 1
    unit = int(unit)
    if unit < 1 or P < 1 or P % unit != 0:
        raise ValueError(f"the number of permutations ({P}) must be a positive multiple of unit")
    v = values.to(torch.float64)
    steps = v[:, :, 1:] - v[:, :, :-1]  # [B, P, d, T]
    index = perms.to(torch.int64).unsqueeze(-1).expand(B, P, d, T)
    contrib = torch.zeros_like(steps).scatter_add_(2, index, steps)
    U = P // unit
    units = contrib.view(B, U, unit, d, T).sum(2) / unit
    mean = units.mean(1)  # [B, d, T]
    if U > 1:
        m2 = (units - mean.unsqueeze(1)).square().sum(1)
        se = (m2 / (U * (U - 1.0))).sqrt()
    else:
        se = torch.full_like(mean, float("nan"))
    return mean.mT.to(values.dtype), se.mT.to(values.dtype)


def banzhaf_msr(masks: Tensor, counts: Tensor | None, values: Tensor) -> Tensor:
    """Maximum-sample-reuse Banzhaf values (BanzhafMsrOp).

    beta_i = mean{v(S) : i in S} - mean{v(S) : i not in S} over the sampled coalitions,
    each weighted by its count. masks bool [Bm, n, d]; counts [Bc, n] or None (all ones);
    values [B, n, T]. Returns [B, T, d].
    """
    f64 = torch.float64
    z = masks.to(f64)
    v = values.to(f64)
    cnt = torch.ones((1, z.shape[1]), dtype=f64, device=v.device) if counts is None else counts
    cnt = cnt.to(f64)
    cv = cnt.unsqueeze(-1) * v  # [B, n, T]
    z_in, z_out = z.mT, (1.0 - z).mT  # [Bm, d, n]
    c = cnt.unsqueeze(-1)
    out = (z_in @ cv) / (z_in @ c) - (z_out @ cv) / (z_out @ c)  # [B, d, T]
    return out.mT.to(values.dtype)


def exact_values(values: Tensor, banzhaf: bool) -> Tensor:
    """Exact Shapley (or Banzhaf) values from all 2^d coalition values (ExactValuesOp).

    phi_i = sum_{S without i} w_|S| (v(S + i) - v(S)), w_k = k! (d - 1 - k)! / d!
    (Shapley) or 2^-(d-1) (Banzhaf). Row r of values [B, 2^d, T] is the coalition with
    feature i present iff bit i of r is set. Returns [B, T, d].
    """
    B, R, T = values.shape
    d = R.bit_length() - 1
    if R != 1 << d or not 1 <= d <= MAX_ENUMERATION_FEATURES:
        raise ValueError(
            f"values: expected 2^d rows with 1 <= d <= {MAX_ENUMERATION_FEATURES}, got {R}"
        )
    v = values.to(torch.float64)
    half = R >> 1
    r = torch.arange(R, device=v.device)
    size = ((r.unsqueeze(1) >> torch.arange(d, device=v.device)) & 1).sum(1)  # popcount
    weight = torch.tensor(
        [1.0 / (d * math.comb(d - 1, k)) for k in range(d)], dtype=torch.float64, device=v.device
    )
    out = torch.empty((B, T, d), dtype=torch.float64, device=v.device)
    for i in range(d):
        # Rows (a, 0, c) and (a, 1, c) of this view are the coalitions without and with i.
        vi = v.view(B, R >> (i + 1), 2, 1 << i, T)
        diff = vi[:, :, 1] - vi[:, :, 0]  # [B, a, c, T]
        if banzhaf:
            out[:, :, i] = diff.sum((1, 2)) / half
        else:
            w = weight[size.view(R >> (i + 1), 2, 1 << i)[:, 0]]  # weight of each S without i
            out[:, :, i] = torch.einsum("bact,ac->bt", diff, w)
    return out.to(values.dtype)


def pack_masks(masks: Tensor) -> Tensor:
    """Bit-packs masks bool [n, d] into int64 keys [n, ceil(d / 64)] (PackMasksOp).

    Feature i is bit i % 64 of word i // 64; a word is the int64 with the uint64's bits.
    """
    n, d = masks.shape
    W = (d + 63) // 64
    bits = torch.zeros((n, W * 64), dtype=torch.int64, device=masks.device)
    bits[:, :d] = masks
    # Distinct powers of two never overflow a sum: bit 63 enters as -2^63.
    powers = torch.tensor(
        [1 << j for j in range(63)] + [-_TWO63], dtype=torch.int64, device=masks.device
    )
    return (bits.view(n, W, 64) * powers).sum(-1)


def unpack_masks(keys: Tensor, d: int) -> Tensor:
    """Inverse of :func:`pack_masks`: keys int64 [n, W] -> masks bool [n, d] (UnpackMasksOp)."""
    n, W = keys.shape
    shifts = torch.arange(64, dtype=torch.int64, device=keys.device)
    bits = (keys.unsqueeze(-1) >> shifts) & 1  # arithmetic shift: bit 63 still lands in bit 0
    return bits.view(n, W * 64)[:, :d].bool()


# ------------------------------------------------------------------------- path integrals
def path_points(x: Tensor, base: Tensor, alphas: Tensor) -> Tensor:
    """Integrated-gradients path points base + alpha * (x - base) (PathPointsOp).

    x [B, E]; base [Bb, K, E]; alphas [J] (taken in x's dtype, as the kernel reads them).
    Returns [B, K, J, E], with Captum's order of operations, so the same rounding.
    """
    bv = base.unsqueeze(2)  # [Bb, K, 1, E]
    a = alphas.to(x.dtype).view(1, 1, alphas.shape[0], 1)
    out = a * (x.view(x.shape[0], 1, 1, x.shape[1]) - bv)
    return out.add_(bv)  # in place: the same two roundings, one [B, K, J, E] buffer


def path_integrate(
    grads: Tensor,
    x: Tensor,
    base: Tensor,
    weights: Tensor,
    reduction: str,
    multiply_by_inputs: bool,
    path_weights: Tensor | None = None,
) -> Tensor:
    """attr = (x - base_k) * sum_j w_j grads[b, k, j], reduced over k (PathIntegrateOp).

    grads [B, K, J, E]; x [B, E]; base [Bb, K, E]; weights [J]. Accumulated in float64 and
    cast back. reduction "mean" / "sum" gives [B, E], "none" [B, K, E]; without
    multiply_by_inputs the (x - base) factor is left out; ``path_weights`` [Bw, K, E]
    multiplies every path's values before the reduction.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    f64 = torch.float64
    dtype = grads.dtype
    B, K, J, E = grads.shape
    # One in-place pass per step, in the kernel's order (acc += w_j * g_j, in float64):
    # no float64 copy of the grads, and ~20x faster than an einsum on one.
    acc = torch.zeros((B, K, E), dtype=f64, device=grads.device)
    for j, w in enumerate(weights.to(dtype).tolist()):  # read in the grads' dtype, as the kernel
        acc.add_(grads[:, :, j], alpha=w)
    if multiply_by_inputs:
        acc = acc * (x.to(dtype).to(f64).unsqueeze(1) - base.to(dtype).to(f64))
    if path_weights is not None:
        acc = acc * path_weights.to(dtype).to(f64)
    if reduction == "none":
        return acc.to(dtype)
    acc = acc.sum(1)
    if reduction == "mean":
        acc = acc / K
    return acc.to(dtype)


# gauss_legendre in csrc/cpu/path_cpu.cpp: up to this n, numpy's leggauss (O(n^3), the
# rule by definition); above it the O(n) construction below.
GAUSS_RECURRENCE_MAX_N = 100
_GAUSS_BOUNDARY_NODES = 16
_GAUSS_MAX_TERMS = 30


def _gauss_boundary_nodes(n: int, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """legendre_boundary_node: the nodes nearest x = 1 as cos(theta), by Newton on theta
    with P_n, P_{n-1} from the recurrence in y = 1 - x (D_k = P_k - P_{k-1}), which keeps
    full relative accuracy where 1 - x is tiny. Returns (x, weights)."""
    theta = np.pi * (4 * i + 3) / (4 * n + 2)
    dpdt = np.ones_like(theta)
    active = np.ones(theta.shape, dtype=bool)  # not yet converged
    done = np.zeros(theta.shape, dtype=bool)  # converged: one last evaluation for dpdt
    for _ in range(50):
        y = 2.0 * np.sin(0.5 * theta) ** 2
        x = 1.0 - y
        p0, p1, dk = np.ones_like(x), x.copy(), -y
        for k in range(2, n + 1):
            dk = ((k - 1.0) * dk - (2.0 * k - 1.0) * y * p1) / k
            p0, p1 = p1, p1 + dk
        new = -n * (p0 - x * p1) / np.sin(theta)
        dpdt = np.where(active | done, new, dpdt)
        done[:] = False
        if not active.any():
            break
        step = np.where(active, p1 / new, 0.0)
        theta = theta - step
        done = active & ((n + 0.5) * np.abs(step) <= 1e-9)
        active &= ~done
    return np.cos(theta), 2.0 / dpdt**2


def _gauss_interior_nodes(n: int, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """legendre_asymptotic_node: Newton on delta = theta - theta0 with Szego's expansion
    P_n(cos theta) = +-C_n sum_m h_m sin(beta_m) / (2 sin theta)^(m + 1/2). Returns (x,
    2 / g'^2), the weights times C_n^2."""
    nh = n + 0.5
    theta0 = np.pi * (4 * i + 3) / (4 * n + 2)
    phi0 = np.pi * (n - 2 * i - 1) / (2 * n + 1)
    delta = np.zeros_like(theta0)
    dg = np.ones_like(theta0)
    active = np.ones(theta0.shape, dtype=bool)
    done = np.zeros(theta0.shape, dtype=bool)
    for _ in range(20):
        theta = theta0 + delta
        s, c2 = 2.0 * np.sin(theta), 2.0 * np.cos(theta)
        tilt = delta - phi0
        h = np.ones_like(s)
        sm = np.sqrt(s)
        g, dgn = np.zeros_like(s), np.zeros_like(s)
        size = np.ones_like(s)
        terms = np.ones(s.shape, dtype=bool)  # the kernel's per-node stopping rule
        for m in range(_GAUSS_MAX_TERMS):
            mh = m + 0.5
            beta = nh * delta + m * tilt
            sb, cb = np.sin(beta), np.cos(beta)
            g += np.where(terms, h * sb / sm, 0.0)
            dgn += np.where(terms, h * ((nh + m) * cb / sm - mh * sb * c2 / (sm * s)), 0.0)
            h = h * (mh * mh) / ((m + 1.0) * (nh + m + 1.0))
            sm = sm * s
            nxt = h * np.sqrt(s) / sm
            terms &= ~((nxt < 1e-18) | (nxt > size))
            size = np.where(terms, nxt, size)
            if not terms.any():
                break
        dg = np.where(active | done, dgn, dg)
        done[:] = False
        if not active.any():
            break
        step = np.where(active, g / dgn, 0.0)
        delta = delta - step
        done = active & (nh * np.abs(step) <= 1e-9)
        active &= ~done
    x = np.sin(phi0) * np.cos(delta) - np.cos(phi0) * np.sin(delta)
    return x, 2.0 / dg**2


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes (ascending) and weights on [-1, 1] (gauss_legendre).

    n <= 100: numpy.polynomial.legendre.leggauss. Above, in O(n): the 16 nodes nearest
    each end by Newton on theta with the recurrence, the others by Newton on Szego's
    asymptotic expansion (Hale & Townsend, 2013), whose weights are scaled so that all
    weights sum to 2 (they integrate 1 exactly). The same construction as the kernel.
    """
    if n <= GAUSS_RECURRENCE_MAX_N:
        return np.polynomial.legendre.leggauss(n)
    half = (n + 1) // 2
    i = np.arange(half, dtype=np.float64)
    nb = min(half, _GAUSS_BOUNDARY_NODES)
    xb, wb = _gauss_boundary_nodes(n, i[:nb])
    xi, ui = _gauss_interior_nodes(n, i[nb:])
    mult = np.full(half, 2.0)
    if n % 2:
        mult[-1] = 1.0  # the middle node is its own mirror image
    known = float(np.sum(mult[:nb] * wb))
    scale = (2.0 - known) / math.fsum(mult[nb:] * ui)
    z = np.concatenate((xb, xi))
    w = np.concatenate((wb, ui * scale))
    x = np.concatenate((-z, z[: n - half][::-1]))
    if n % 2:
        x[half - 1] = 0.0
    return x, np.concatenate((w, w[: n - half][::-1]))


def quadrature(method: str, n: int) -> tuple[list[float], list[float]]:
    """Captum's integration rules on [0, 1]: (alphas, weights), n nodes.

    Riemann rules (n >= 2): equal steps 1 / n (trapezoid: the end steps halved), nodes
    from numpy.linspace; "gausslegendre" (n >= 1): :func:`gauss_legendre` (numpy's
    leggauss for n <= 100) mapped from [-1, 1].
    """
    if method not in QUADRATURE_METHODS:
        raise ValueError(f"method: expected one of {', '.join(QUADRATURE_METHODS)}, got {method!r}")
    n = int(n)
    if method == "gausslegendre":
        if n < 1:
            raise ValueError(f"n_steps: must be >= 1 for gausslegendre, got {n}")
        nodes, w = gauss_legendre(n)
        return [float(a) for a in 0.5 * (1 + nodes)], [float(v) for v in 0.5 * w]
    if n < 2:
        raise ValueError(f"n_steps: must be >= 2 for Riemann rules, got {n}")
    weights = [1 / n] * n
    if method == "riemann_trapezoid":
        weights[0] /= 2
        weights[-1] /= 2
        alphas = np.linspace(0, 1, n)
    elif method == "riemann_left":
        alphas = np.linspace(0, 1 - 1 / n, n)
    elif method == "riemann_middle":
        alphas = np.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)
    else:
        alphas = np.linspace(1 / n, 1, n)
    return [float(a) for a in alphas], weights


# ------------------------------------------------------------------------- rules
RESCALE_KINDS = ("relu", "sigmoid", "tanh", "given")


def rescale_multiplier(
    x: Tensor, y: Tensor, ref_rows: int, kind: str, eps: float, deriv: Tensor | None = None
) -> Tensor:
    """DeepLift's rescale multiplier of y = g(x) over [inputs (n rows); references
    (ref_rows rows)], input row i paired with reference row i mod ref_rows:
    (y - y_ref) / (x - x_ref), or g'(x) where |x - x_ref| < eps. -> [n, *rest]."""
    n = x.shape[0] - ref_rows
    rest = x.shape[1:]
    ax = x[:n].reshape(n // ref_rows, ref_rows, *rest)
    yx = y[:n].reshape(n // ref_rows, ref_rows, *rest)
    dx = ax - x[n:]
    slope = (yx - y[n:]) / dx
    if kind == "relu":
        derivative = (ax > 0).to(x.dtype)
    elif kind == "sigmoid":
        derivative = yx * (1 - yx)
    elif kind == "tanh":
        derivative = 1 - yx * yx
    else:
        assert deriv is not None
        derivative = deriv.reshape(ax.shape)
    return torch.where(dx.abs() < eps, derivative, slope).reshape(n, *rest)
