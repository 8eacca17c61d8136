"""KernelSHAP: Shapley values as the solution of a weighted least-squares problem.

The game is v(S) = f(x with the features off S removed) (see
:mod:`xattr.explainers.removal`; by default features off S take the
``baselines``). KernelSHAP (Lundberg & Lee, 2017) finds the additive model
``v(S) ~ v(empty) + sum_{i in S} phi_i`` that is closest in the Shapley-kernel
weighted norm, with ``sum(phi) = v(N) - v(empty)`` held exactly; with every
coalition enumerated its solution is the exact Shapley value.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, cast, overload

import numpy as np
import torch
from torch import Tensor

from xattr import ops
from xattr._core import validation
from xattr._core.attribution import PerturbationAttribution
from xattr._core.game import Setup
from xattr._core.inputs import BaselineType, TensorOrTupleGeneric
from xattr._core.progress import with_row_progress
from xattr._core.removal import Removal
from xattr._core.targets import TargetType
from xattr._core.validation import flag, positive_int
from xattr.explainers.registry import register

# ----------------------------------------------------------------- design
# Prime for the exact rank bookkeeping of _Span (rank over the integers mod p; r * p^2
# stays below 2^63 for r < 9e6 basis rows).
_RANK_PRIME = 1_000_003


class _Span:
    """The span of the all-ones vector and the 0/1 coalition vectors accepted so far,
    tracked exactly in reduced row echelon form over the integers modulo a prime.

    A coalition S adds a direction to KernelSHAP's efficiency-constrained design (its
    row projected off the all-ones vector) iff z_S is outside this span. Integer work
    only, so the decisions are the same on every machine; a vector independent mod p
    is independent over the rationals, so ``full`` (rank d) never claims too much.
    """

    def __init__(self, d: int):
        self.d = d
        self.basis = np.zeros((d, d), dtype=np.int64)  # rows 0..r-1 in use
        self.pivots: list[int] = []
        self.add(np.ones(d, dtype=bool))

    @property
    def full(self) -> bool:
        return len(self.pivots) == self.d

    def add(self, z: np.ndarray) -> bool:
        """Adds the 0/1 vector z [d] if it is outside the span; returns whether it was.
        (numpy: about d of these run one at a time, where torch's per-call cost on such
        small vectors was a third of a KernelShap call.)"""
        p, r = _RANK_PRIME, len(self.pivots)
        v = z.astype(np.int64)
        if r:
            v = (v - v[self.pivots] @ self.basis[:r]) % p
        nz = np.flatnonzero(v)
        if nz.size == 0:
            return False
        c = int(nz[0])
        v = v * pow(int(v[c]), p - 2, p) % p
        if r:
            self.basis[:r] = (self.basis[:r] - self.basis[:r, c : c + 1] * v) % p
        self.basis[r] = v
        self.pivots.append(c)
        return True


def _pair_keys(first: Tensor, second: Tensor) -> Tensor:
    """One key per complementary pair: the packed bits of the member without feature 0."""
    return ops.pack_masks(torch.where(first[:, :1], second, first))


def _distinct_pairs(
    d: int, sizes: list[int], count: int, seed: int, span: _Span
) -> tuple[Tensor, Tensor]:
    """``count`` distinct rows from the Shapley-kernel stream restricted to ``sizes``: pairs
    (S, complement of S) in stream order, a pair already taken skipped, and the first row
    of one more pair when ``count`` is odd.

    While the design (with the rows already in ``span``) does not yet determine every
    direction, a pair that adds no direction is skipped too (at most 10 d + 1000 of them),
    so that a budget of 2 (d - 1) rows or more gives a full-rank design: the estimate is
    then exact for games of order <= 2, where a rank-deficient design is not. The stream
    depends only on (d, sizes, seed), so the design does not depend on the batch.

    Returns (rows bool [count, d], pair id int64 [count]).
    """
    rows: list[Tensor] = []
    taken: set[bytes] = set()
    keys: list[Tensor] = []
    off, skips, need = 0, 0, count

    def draw(pairs: int) -> tuple[Tensor, Tensor, Tensor]:
        nonlocal off
        m = ops.shapley_kernel_masks(
            2 * pairs, d, seed=seed, paired=True, sizes=sizes, row_offset=off
        )
        off += 2 * pairs
        return m[0::2], m[1::2], _pair_keys(m[0::2], m[1::2])

    # Rank phase, one pair at a time: only until the span is full (<= d - 1 pairs kept).
    while need > 0 and not span.full and skips < 10 * d + 1000:
        first, second, key = draw(64)
        kept = []
        for t, (z, kb) in enumerate(zip(first.numpy(), key.numpy())):
            kb = kb.tobytes()
            if kb in taken:
                continue
            if not span.full and skips < 10 * d + 1000 and not span.add(z):
                skips += 1
                continue
            taken.add(kb)
            kept.append(t)
            need -= 2
            if need <= 0 or span.full or skips >= 10 * d + 1000:
                break
        idx = torch.tensor(kept, dtype=torch.int64)
        keys.append(key[idx])
        rows.append(torch.stack([first[idx], second[idx]], 1).reshape(-1, d))
    if need < 0:  # an odd count: the last pair's first row only
        rows[-1] = rows[-1][:-1]
    # The rest in bulk: the new pairs of each chunk, in order.
    known = torch.cat(keys) if keys else torch.zeros((0, (d + 63) // 64), dtype=torch.int64)
    while need > 0:
        want = (need + 1) // 2
        first, second, key = draw(min(want + want // 4 + 64, 1 << 19))
        allk = torch.cat([known, key])
        if allk.shape[1] == 1:  # one word per key: a flat unique (much faster)
            _, inv = torch.unique(allk[:, 0], return_inverse=True)
        else:
            _, inv = torch.unique(allk, dim=0, return_inverse=True)
        pos = torch.arange(allk.shape[0])
        first_pos = torch.full((int(inv.max()) + 1,), allk.shape[0], dtype=torch.int64)
        first_pos.scatter_reduce_(0, inv, pos, "amin")
        new = torch.nonzero(first_pos[inv[known.shape[0] :]] == pos[known.shape[0] :])[:, 0]
        new = new[:want]
        pairs = torch.stack([first[new], second[new]], 1).reshape(-1, d)
        rows.append(pairs[: min(pairs.shape[0], need)])
        need -= pairs.shape[0]
        known = torch.cat([known, key[new]])
    out = torch.cat(rows) if rows else torch.zeros((0, d), dtype=torch.bool)
    return out, torch.arange(out.shape[0], dtype=torch.int64) // 2


def kernel_design(d: int, n_samples: int, seed: int) -> tuple[Tensor, Tensor, Tensor, bool]:
    """KernelSHAP coalitions and weights for ``d`` features and ``n_samples`` rows.

    The design depends on (d, n_samples, seed) alone, so the last 16 designs (of up to
    2^22 mask entries) are kept and callers get copies: repeated calls with a fixed
    seed (a service explaining request after request) skip its cost, about 3 ms at
    d = 64, n_samples = 512.

    Sizes are allocated as in the ``shap`` package: size pairs (k, d-k) are taken
    in order of decreasing kernel weight, and a pair whose subsets all fit the
    remaining budget in expectation (``budget * share >= count``) is enumerated with
    its exact Shapley-kernel weight; the rest of the budget is sampled from the
    kernel distribution restricted to the remaining sizes, as distinct complementary
    pairs (see :func:`_distinct_pairs`: every one of the ``n_samples`` rows is a
    different coalition, and the design reaches full rank as soon as the budget
    allows), each row weighing an equal share of the remaining kernel mass. With
    ``2^d - 2 <= n_samples`` every coalition is enumerated (exact result).

    Returns:
        (masks bool [m, d] with distinct rows, m = min(n_samples, 2^d - 2),
        weights float64 [m] summing to 1, pair int64 [m] (the sampled pair of each
        row, -1 for enumerated rows), exact).

    Example:
        >>> m, w, pair, exact = kernel_design(10, 25, seed=0)
        >>> m.shape, exact, len({tuple(r) for r in m.tolist()})
        (torch.Size([25, 10]), False, 25)
    """
    if d < 2:
        raise ValueError(f"d: KernelSHAP designs need d >= 2, got {d}")
    key = (d, n_samples, seed)
    if key not in _DESIGNS:
        design = _design(d, n_samples, seed)
        if design[0].numel() > _DESIGN_CACHE_ELEMENTS:  # large designs are not kept
            return design
        _DESIGNS[key] = design
        while len(_DESIGNS) > _DESIGN_CACHE_SIZE:
            _DESIGNS.pop(next(iter(_DESIGNS)))
    masks, weights, pair, exact = _DESIGNS[key]
    return masks.clone(), weights.clone(), pair.clone(), exact


# The last designs kept by kernel_design: at most 16, of at most 2^22 mask entries each.
_DESIGNS: dict[tuple[int, int, int], tuple[Tensor, Tensor, Tensor, bool]] = {}
_DESIGN_CACHE_SIZE = 16
_DESIGN_CACHE_ELEMENTS = 2**22


def _design(d: int, n_samples: int, seed: int) -> tuple[Tensor, Tensor, Tensor, bool]:
    """:func:`kernel_design`'s work."""
    if d <= 62 and 2**d - 2 <= n_samples:
        m = ops.enumerate_coalitions(d)[1:-1]
        k = m.sum(1).to(torch.float64)
        binom = torch.tensor([math.comb(d, int(j)) for j in k.tolist()], dtype=torch.float64)
        w = (d - 1) / (binom * k * (d - k))
        return m, w / w.sum(), torch.full((m.shape[0],), -1, dtype=torch.int64), True
    n_sizes = (d - 1 + 1) // 2  # ceil((d-1)/2) representatives k = 1..n_sizes
    n_paired = (d - 1) // 2
    share = [(d - 1) / (k * (d - k)) * (2 if k <= n_paired else 1) for k in range(1, n_sizes + 1)]
    total = sum(share)
    share = [s / total for s in share]
    left, remaining = n_samples, list(share)
    masks, weights = [], []
    enumerated = 0
    for k in range(1, n_sizes + 1):
        paired = k <= n_paired
        count = math.comb(d, k) * (2 if paired else 1)
        if left * remaining[k - 1] / count < 1.0 - 1e-8:
            break
        enumerated = k
        left -= count
        if remaining[k - 1] < 1.0:
            rest = 1.0 - remaining[k - 1]
            remaining = [r / rest for r in remaining]
        combos = torch.combinations(torch.arange(d), k) if k > 1 else torch.arange(d)[:, None]
        m = torch.zeros((combos.shape[0], d), dtype=torch.bool)
        m.scatter_(1, combos, True)
        if paired:
            m = torch.cat([m, ~m])
        masks.append(m)
        weights.append(torch.full((m.shape[0],), share[k - 1] / count, dtype=torch.float64))
    rest_sizes = list(range(enumerated + 1, n_sizes + 1))
    pair_ids = [torch.full((sum(x.shape[0] for x in masks),), -1, dtype=torch.int64)]
    if rest_sizes and left > 0:
        # One stream for all remaining sizes: the kernel renormalised over the sizes not
        # enumerated (k and d - k alike), complementary pairs.
        mass = sum(share[k - 1] for k in rest_sizes)
        allowed = sorted(set(rest_sizes) | {d - k for k in rest_sizes})
        span = _Span(d)
        if enumerated >= 1:  # the d singletons alone span every direction
            span.pivots = list(range(d))
        for row in torch.cat(masks).numpy() if masks else []:
            if span.full:
                break
            span.add(row)
        # the coalitions of the allowed sizes: all but the enumerated ones (and the
        # shap allocation enumerates every size once the budget covers them all)
        space = 2**d - 2 - sum(x.shape[0] for x in masks) if d <= 62 else left
        rows, pair = _distinct_pairs(d, allowed, min(left, space), seed, span)
        masks.append(rows)
        pair_ids.append(pair)
        weights.append(torch.full((rows.shape[0],), mass / rows.shape[0], dtype=torch.float64))
    m = torch.cat(masks)
    w = torch.cat(weights)
    return m, w / w.sum(), torch.cat(pair_ids), False


# Bytes of the per-chunk work of the standard error (rows x inputs x outputs x features):
# the sandwich streams over the pairs, as the model evaluations do.
STD_CHUNK_BYTES = 32 * 2**20


def _sandwich_std(
    masks: Tensor,
    weights: Tensor,
    pair: Tensor,
    values: Tensor,
    v_empty: Tensor,
    phi: Tensor,
    budget: int,
) -> Tensor:
    """Standard error of the constrained WLS solution over the sampled pairs.

    Linearising the solution (the minimum-norm minimiser with sum(phi) = c) around
    itself gives phi - E[phi] ~ M sum_p g_p with M = (P A P)^+ (A = Z'WZ, P = I - 11'/d)
    and g_p = sum_{r in pair p} w_r z_r e_r (e the residuals). The sampled pairs are
    i.i.d., so Var(phi) ~ P/(P-1) sum_p (M g_p - mean)^2 (the sandwich / delta-method
    estimate), inflated by the HC1 factor P / (P - d + 1) for the d - 1 fitted
    parameters (plain sandwich estimates under-cover with few pairs); enumerated rows
    carry no sampling variance. With no more pairs than d - 1 the design does not
    determine phi and the estimate is undefined (NaN).

    Streams over the rows in chunks of at most ``budget`` (and STD_CHUNK_BYTES) bytes of
    work (the sampled rows are the last ones of the design, pair after pair), so memory
    does not grow with n_samples.

    masks [m, d], weights [m], pair [m], values [B, m, T], v_empty [B, T],
    phi [B, T, d] -> std [B, T, d].
    """
    B, T, d = phi.shape
    sampled = torch.nonzero(pair >= 0)[:, 0]
    P = int(pair.max()) + 1 if sampled.numel() else 0
    if P == 0:
        return torch.zeros_like(phi)
    if P < 2 or P <= d - 1:
        return torch.full_like(phi, float("nan"))
    step = max(2, min(budget, STD_CHUNK_BYTES) // (8 * 4 * (B * T * (d + 1) + d)))  # rows
    A = torch.zeros((d, d), dtype=torch.float64)
    for r0 in range(0, masks.shape[0], step):
        z = masks[r0 : r0 + step].to(torch.float64)
        A += z.T @ (weights[r0 : r0 + step, None] * z)
    proj = torch.eye(d, dtype=torch.float64) - 1.0 / d
    M = torch.linalg.pinv(proj @ A @ proj, hermitian=True, rtol=1e-11)
    # Chan's merge of per-chunk means and sums of squares over the pairs.
    count, mean, m2 = 0, torch.zeros_like(phi), torch.zeros_like(phi)
    s0, m = int(sampled[0]), masks.shape[0]
    step += step % 2  # whole pairs per chunk
    for r0 in range(s0, m, step):
        r1 = min(m, r0 + step)
        zs = masks[r0:r1].to(torch.float64)
        ws, ps = weights[r0:r1], pair[r0:r1] - pair[r0]
        c = int(ps[-1]) + 1
        y = values[:, r0:r1].permute(0, 2, 1) - v_empty[:, :, None]  # [B, T, r]
        e = y - phi @ zs.T
        g = torch.zeros((B, T, c, d), dtype=torch.float64)
        g.index_add_(2, ps, (ws * e)[..., None] * zs)
        psi = g @ M
        cmean = psi.mean(2)
        cm2 = (psi - cmean[:, :, None]).square().sum(2)
        delta = cmean - mean
        total = count + c
        mean = mean + delta * (c / total)
        m2 = m2 + cm2 + delta.square() * (count * c / total)
        count = total
    # HC1-style small-sample correction: d - 1 free parameters (efficiency fixes one).
    var = m2 / P * P * P / max(P - (d - 1), 1)
    return var.clamp_min(0).sqrt()


def _design_rows(d: int, n_samples: int) -> int:
    """Rows of kernel_design(d, n_samples): n_samples distinct coalitions, at most all
    2^d - 2 of them."""
    return min(n_samples, 2**d - 2) if d <= 62 else n_samples


def _kernel_shap_bytes(
    sets: list[tuple[Tensor, Tensor]], n: int, B: int, T: int, d: int, std: bool
) -> int:
    """Peak bytes of KernelShap's designs, model values and solves (the model's own
    batches are sized by the budget separately)."""
    rows = max((_design_rows(f.numel(), n) for _, f in sets if f.numel() >= 2), default=0)
    total = (B if len(sets) > 1 else 1) * rows * d + 8 * B * rows * T + 2 * 8 * B * T * d
    for ex, feats in sets:
        dg = feats.numel()
        if dg < 2:
            continue
        m = _design_rows(dg, n)
        q = min(m, dg)
        total += m * dg + 8 * m + 8 * (q * q + q + ex.numel() * T * 2 * q) + 4 * (2 * q + 1)
        if std and m // 2 > dg - 1:  # the sandwich's d x d matrices
            total += 8 * 4 * dg * dg
    return total


def _shrunk_solve(
    m: Tensor,
    w: Tensor,
    vals: Tensor,
    v_empty: Tensor,
    v_full: Tensor,
    prior: Tensor | None,
    rhos: Tensor,
    ex: Tensor,
    feats: Tensor,
) -> Tensor:
    """One example set's solve toward ``prior`` (rows ``ex``, columns ``feats``) with
    the examples' ridge strengths ``rhos`` [b]: one ``kernel_shap_solve`` per distinct
    strength (rho is one number per call, so that one factorisation serves the call)."""
    f64 = torch.float64
    p0 = None if prior is None else prior.cpu().to(f64)[ex][:, :, feats]
    ph = torch.empty((ex.numel(), vals.shape[2], feats.numel()), dtype=f64)
    for r in torch.unique(rhos).tolist():
        k = rhos == r
        ph[k] = ops.kernel_shap_solve(
            m,
            w.to(f64),
            vals[k].to(f64),
            v_empty[k].to(f64),
            v_full[k].to(f64),
            prior=None if p0 is None else p0[k],
            rho=r,
        )
    return ph


class SampledGame(NamedTuple):
    """KernelShap's game on its coalitions (``KernelShap._sample_game``): the checked
    ``Setup``, the example sets (example ids, feature ids) with one design each
    (``kernel_design``'s (masks, weights, pair ids, exact), None for a set of one
    feature), the game's values [B, rows, T] on the designs' rows (CPU), and
    v(empty), v(N) [B, T] (CPU)."""

    setup: Setup
    sets: list[tuple[Tensor, Tensor]]
    designs: list[tuple[Tensor, Tensor, Tensor, bool] | None]
    values: Tensor
    v_empty: Tensor
    v_full: Tensor


# ---------------------------------------------------------------- explainer
@register(captum=True)
class KernelShap(PerturbationAttribution):
    """KernelSHAP (Captum-compatible), with shap's size allocation and exact efficiency.

    The game is v(S) = f(x_S, removed_{not S}) (``removal=``, default: features off
    S take ``baselines``). Coalitions are drawn as in :func:`kernel_design`
    (enumerated sizes with their exact kernel weight, the rest sampled as distinct
    complementary pairs, full rank as soon as the budget allows), and the weighted
    least squares is solved with ``sum(phi) = v(N) - v(empty)`` held exactly; where
    the coalitions do not determine every direction, the solution of least norm is
    taken (:func:`xattr.ops.kernel_shap_solve`), so features the design cannot tell
    apart get equal shares whatever their order.

    The coalitions are shared by every input of the batch (one Gram factorisation).
    The design does not depend on the inputs, so each input's estimate has exactly
    the distribution it would have if that input were explained alone: sharing adds
    no bias (KernelSHAP's own O(1/n) regression bias aside, the estimate is unbiased
    to first order); only the errors of different inputs are correlated. With
    per-example feature masks whose ids differ (superpixels of different images),
    each example is solved over the features it has, with the design it would get
    alone; the features it does not have get 0.

    ``return_std`` gives a sandwich (delta-method) standard error over the sampled
    complementary pairs (see ``_sandwich_std``); it needs clearly more sampled pairs
    than features to be reliable (tested: ~92% coverage of +-1.96 std at d = 8,
    n_samples = 100; NaN with no more pairs than d - 1), and forms d x d matrices, so
    keep d moderate (use a ``feature_mask``).

    Memory: the solve takes min(n_samples, d)^2 doubles per distinct design (its
    dual form when n_samples < d), checked against ``memory_budget`` before
    anything is allocated.

    Args:
        forward_func: the model; returns [B] or [B, ...] outputs for [B, ...] inputs.

    A model that returns one value (or one row) for the whole batch, Captum's "aggregate
    mode" (e.g. a batch loss), is explained as Captum does: every example is perturbed alike
    and the attributions are the batch's, [1, *F] per input for one value. That cannot be
    batched: each coalition costs one model call of the B rows (instead of sharing calls of
    many rows), plus the first call, which reveals the mode; the examples must share one
    feature mask, and perturbations_per_eval must be 1.

    Example:
        >>> import torch
        >>> f = lambda x: x.sum(1)
        >>> KernelShap(f).attribute(torch.ones(1, 3), n_samples=6, seed=0).tolist()
        [[1.0, 1.0, 1.0]]
    """

    @property
    def multiplies_by_inputs(self) -> bool:
        """False, as in Captum: the attributions are a surrogate's coefficients."""
        return False

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        return_input_shape: Literal[True] = True,
        show_progress: bool | None = None,
        *,
        seed: int | None = None,
        return_std: Literal[False] = False,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
    ) -> TensorOrTupleGeneric: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        return_input_shape: Literal[True] = True,
        show_progress: bool | None = None,
        *,
        seed: int | None = None,
        return_std: Literal[True],
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
    ) -> tuple[TensorOrTupleGeneric, TensorOrTupleGeneric]: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        return_input_shape: bool = True,
        show_progress: bool | None = None,
        *,
        seed: int | None = None,
        return_std: bool = False,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
    ) -> (
        TensorOrTupleGeneric
        | tuple[TensorOrTupleGeneric, TensorOrTupleGeneric]
        | Tensor
        | tuple[Tensor, Tensor]
    ): ...

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        return_input_shape: bool = True,
        show_progress: bool | None = None,
        *,
        seed: int | None = None,
        return_std: bool = False,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
    ) -> (
        TensorOrTupleGeneric
        | tuple[TensorOrTupleGeneric, TensorOrTupleGeneric]
        | Tensor
        | tuple[Tensor, Tensor]
    ):
        """KernelSHAP attributions.

        Args:
            inputs: [B, *F] tensor or tuple of them.
            baselines: Captum's forms (None = zeros, number, tensor [1 or B, *F] or
                [*F], tuple of these): what replaces removed features.
            target: output(s) to explain: None, int, tuple, list of B ints, list of B
                lists of T ints or "all" (several targets share one set of model
                evaluations and one factorisation).
            additional_forward_args: extra arguments for the model.
            feature_mask: int tensor(s) grouping elements into d features
                (default: every scalar is a feature).
            n_samples: coalitions per input (default 25), the model rows spent
                besides v(empty) and v(N): n_samples distinct coalitions (sampled ones
                in complementary pairs, one unpaired when the count is odd). With
                ``2^d - 2 <= n_samples`` all coalitions are used and the result is
                exact.
            perturbations_per_eval: Captum's batching argument (default 1): each
                forward call holds at least this many perturbations of the whole batch,
                more where xattr's own choice is larger, never more than
                ``memory_budget`` allows (README, "Batching"). Results do not depend on it.
            return_input_shape: True: attributions shaped like the inputs; False:
                per-feature values [B, D] ([B, T, D] for several targets) in Captum's
                interpretable space: column k for feature id min_id + k,
                D = max_id - min_id + 1.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.
            seed: 64-bit seed (None draws one from torch's global generator).
            return_std: also return the standard error of each attribution
                (sandwich estimate over the sampled pairs, see ``_sandwich_std``;
                0 where everything was enumerated), shaped like the attributions.
            removal: the game's removal (``BaselineRemoval`` by default).
            memory_budget: bytes (or "2GB") for one forward call; given (here or with
                ``xattr.set_memory_budget``) it sizes the calls; default 1 GiB, under
                which xattr picks the size it measured fastest.

        Returns:
            attributions (and standard errors with ``return_std``): like the inputs
            ([B, *F], [B, T, *F] for several targets) or per feature.
        """
        n_samples = positive_int("n_samples", n_samples)
        flag("return_input_shape", return_input_shape)
        flag("return_std", return_std)
        sampled = self._sample_game(
            inputs,
            baselines=baselines,
            target=target,
            additional_forward_args=additional_forward_args,
            feature_mask=feature_mask,
            n_samples=n_samples,
            perturbations_per_eval=perturbations_per_eval,
            show_progress=show_progress,
            seed=seed,
            return_std=return_std,
            removal=removal,
            memory_budget=memory_budget,
        )
        phi, std = self._solve(sampled, return_std=return_std)
        setup = sampled.setup
        return setup.result(phi, std if return_std else None, input_shape=return_input_shape)

    # The two halves of attribute: the game on the sampled coalitions, then the solve.
    # The selective explainer (xattr.amortized) evaluates the game once and solves it
    # again with a prior (the amortized explanation) at several ridge strengths.
    def _sample_game(
        self,
        inputs: Any,
        *,
        n_samples: int = 25,
        seed: int | None = None,
        return_std: bool = False,
        show_progress: bool | None = None,
        desc: str | None = None,
        **setup_kwargs: Any,
    ) -> SampledGame:
        """The coalitions attribute draws and the game's values on them (see
        :class:`SampledGame`); ``setup_kwargs`` are attribute's Setup arguments."""
        n_samples = positive_int("n_samples", n_samples)
        s = validation.seed(seed)
        setup = Setup(
            self.forward_func,
            inputs,
            show_progress=show_progress,
            desc=desc or f"{self.get_name()} attribution",
            aggregate_layout="flat",  # Captum: one value for the batch, [1, *F]
            **setup_kwargs,
        )
        game, d, B = setup.game, setup.d, setup.B
        dev = setup.inputs[0].device
        v_full, v_empty = (v.cpu() for v in game.full_and_empty())
        T = v_full.shape[1]
        sets = setup.example_sets()
        needed = _kernel_shap_bytes(sets, n_samples, B, T, d, return_std)
        setup.check_solver_memory("KernelShap", needed, n_samples)
        designs = [kernel_design(f.numel(), n_samples, s) if len(f) > 1 else None for _, f in sets]
        rows = max((x[0].shape[0] for x in designs if x is not None), default=0)
        values = torch.zeros((B, 0, T), dtype=v_full.dtype)
        if rows:
            if len(sets) == 1:  # every example has every feature: one shared design
                masks = cast(tuple, designs[0])[0]
            else:  # each example its own set's design (rows past it: unused, empty)
                masks = torch.zeros((B, rows, d), dtype=torch.bool)
                for (ex, feats), x in zip(sets, designs):
                    if x is not None:
                        block = torch.zeros((x[0].shape[0], d), dtype=torch.bool)
                        block[:, feats] = x[0]
                        masks[ex, : block.shape[0]] = block
            values = game(masks.to(dev)).cpu()
        return SampledGame(setup, sets, designs, values, v_empty, v_full)

    def _solve(
        self,
        sampled: SampledGame,
        *,
        return_std: bool = False,
        prior: Tensor | None = None,
        rho: float | Tensor = 0.0,
    ) -> tuple[Tensor, Tensor]:
        """(phi, std) float64 [B, T, d] on the inputs' device from a sampled game:
        each example set's constrained WLS (``ops.kernel_shap_solve``). With a
        ``prior`` ([B, T, d], the setup's feature order) or a ridge ``rho`` (a number,
        or one per example [B]: one solve per distinct value), the solve shrinks toward
        the prior, in float64 throughout (no standard error: ``return_std`` is for
        the plain solve)."""
        setup, values = sampled.setup, sampled.values
        rhos = None  # the plain solve: attribute's
        if prior is not None or isinstance(rho, Tensor) or rho != 0.0:
            rhos = torch.as_tensor(rho, dtype=torch.float64).cpu().expand(setup.B)
        v_empty, v_full = sampled.v_empty, sampled.v_full
        B, T, d = setup.B, v_full.shape[1], setup.d
        phi = torch.zeros((B, T, d), dtype=torch.float64)
        std = torch.zeros_like(phi)
        for (ex, feats), x in zip(sampled.sets, sampled.designs):
            out = torch.zeros((ex.numel(), T, d), dtype=torch.float64)
            out_std = torch.zeros_like(out)
            if x is None:  # one feature: it gets the whole difference
                out[:, :, feats] = (v_full - v_empty)[ex].unsqueeze(-1)
            else:
                m, w, pair, exact = x
                vals = values[ex, : m.shape[0]]
                if rhos is None:
                    ph = ops.kernel_shap_solve(m, w, vals, v_empty[ex], v_full[ex])
                else:
                    ph = _shrunk_solve(
                        m, w, vals, v_empty[ex], v_full[ex], prior, rhos[ex], ex, feats
                    )
                out[:, :, feats] = ph
                if return_std and rhos is None and not exact:
                    sd = _sandwich_std(m, w, pair, vals, v_empty[ex], ph, setup.budget)
                    out_std[:, :, feats] = sd
            phi[ex], std[ex] = out, out_std
        dev = setup.inputs[0].device
        return phi.to(dev), std.to(dev)
