"""Bad inputs: every public op raises ValueError / TypeError naming the argument, and the
C++ layer (xattr._C) checks every size and dtype it is handed on its own, so that no
kernel can be pointed past the end of a buffer whatever Python passes."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch
from _helpers import F64, gen, rand_masks, randn  # noqa: F401

from xattr import _ext, ops
from xattr.ops import _reference

NAN, INF = math.nan, math.inf


def poisoned(t: torch.Tensor, value: float) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[t.numel() // 2] = value
    return t


# Every case: (exception, regex naming the argument, call). Names are matched at a word
# boundary so that e.g. "values" does not match "v_empty".
def arg(name: str) -> str:
    return rf"(?<![\w]){name}(?![\w])"


CASES: dict[str, tuple[type, str, object]] = {}


def case(cid: str, exc: type, name: str, fn) -> None:
    assert cid not in CASES, cid
    CASES[cid] = (exc, arg(name), fn)


# ------------------------------------------------------------------- kernel_shap_solve
B, N, D, T = 3, 12, 5, 2
MASKS = rand_masks(N, D, seed=1)
W = torch.rand(N, generator=gen(2), dtype=F64) + 0.1
V = randn(B, N, seed=3)
VE = randn(B, seed=4)
VF = randn(B, seed=5)
V3 = randn(B, N, T, seed=6)
VE2 = randn(B, T, seed=7)


def ks(masks=MASKS, weights=W, values=V, v_empty=VE, v_full=VF):
    return lambda: ops.kernel_shap_solve(masks, weights, values, v_empty, v_full)


case("ks-masks-list", TypeError, "masks", ks(masks=MASKS.tolist()))
case("ks-masks-float", TypeError, "masks", ks(masks=MASKS.double()))
case("ks-masks-uint8", TypeError, "masks", ks(masks=MASKS.to(torch.uint8)))
case("ks-masks-1d", ValueError, "masks", ks(masks=MASKS[0]))
case("ks-masks-4d", ValueError, "masks", ks(masks=MASKS[None, None]))
case("ks-masks-rows", ValueError, "masks", ks(masks=MASKS[:-1]))
case("ks-masks-batch", ValueError, "masks", ks(masks=MASKS.expand(2, N, D)))
case("ks-masks-no-features", ValueError, "masks", ks(masks=MASKS[:, :0]))
case("ks-weights-short", ValueError, "weights", ks(weights=W[:-1]))
case("ks-weights-batch", ValueError, "weights", ks(weights=W.expand(2, N)))
case("ks-weights-3d", ValueError, "weights", ks(weights=W.expand(B, 1, N)))
case("ks-weights-bool", TypeError, "weights", ks(weights=W > 0.5))
case("ks-weights-nan", ValueError, "weights", ks(weights=poisoned(W, NAN)))
case("ks-weights-inf", ValueError, "weights", ks(weights=poisoned(W, INF)))
case("ks-weights-negative", ValueError, "weights", ks(weights=poisoned(W, -0.5)))
case("ks-weights-array", TypeError, "weights", ks(weights=W.numpy()))
case("ks-values-int", TypeError, "values", ks(values=V.long()))
case("ks-values-half", TypeError, "values", ks(values=V.half()))
case("ks-values-1d", ValueError, "values", ks(values=V[0]))
case("ks-values-4d", ValueError, "values", ks(values=V3[..., None]))
case("ks-values-nan", ValueError, "values", ks(values=poisoned(V, NAN)))
case("ks-values-inf", ValueError, "values", ks(values=poisoned(V, -INF)))
case("ks-v_empty-nan", ValueError, "v_empty", ks(v_empty=poisoned(VE, NAN)))
case("ks-v_empty-inf", ValueError, "v_empty", ks(v_empty=poisoned(VE, INF)))
case("ks-v_empty-shape", ValueError, "v_empty", ks(v_empty=VE[:-1]))
case("ks-v_empty-2d", ValueError, "v_empty", ks(v_empty=VE[:, None]))
case("ks-v_empty-int", TypeError, "v_empty", ks(v_empty=VE.long()))
case("ks-v_empty-scalar", TypeError, "v_empty", ks(v_empty=0.0))
case("ks-v_full-nan", ValueError, "v_full", ks(v_full=poisoned(VF, NAN)))
case("ks-v_full-inf", ValueError, "v_full", ks(v_full=poisoned(VF, -INF)))
case("ks-v_full-shape", ValueError, "v_full", ks(v_full=VF[:1]))
case("ks-T-v_empty-squeezed", ValueError, "v_empty", ks(values=V3, v_empty=VE, v_full=VE2))
case("ks-T-v_full-wrong-T", ValueError, "v_full", ks(values=V3, v_empty=VE2, v_full=VE2[:, :1]))


# ------------------------------------------------------------------------------ linear_fit
def lf(masks=MASKS, weights=W, values=V, **kw):
    return lambda: ops.linear_fit(masks, weights, values, **kw)


case("lf-method", ValueError, "method", lf(method="elasticnet"))
case("lf-alpha-negative", ValueError, "alpha", lf(alpha=-0.01))
case("lf-alpha-negative-ridge", ValueError, "alpha", lf(alpha=-1.0, method="ridge"))
case("lf-alpha-nan", ValueError, "alpha", lf(alpha=NAN))
case("lf-alpha-str", ValueError, "alpha", lf(alpha="0.1"))
case("lf-max_iter-zero", ValueError, "max_iter", lf(max_iter=0))
case("lf-max_iter-negative", ValueError, "max_iter", lf(max_iter=-5))
case("lf-max_iter-float", TypeError, "max_iter", lf(max_iter=10.0))
case("lf-tol-negative", ValueError, "tol", lf(tol=-1e-3))
case("lf-tol-nan", ValueError, "tol", lf(tol=NAN))
case("lf-masks-rows", ValueError, "masks", lf(masks=MASKS[1:]))
case("lf-masks-batch", ValueError, "masks", lf(masks=MASKS.expand(B + 1, N, D)))
case("lf-masks-int", TypeError, "masks", lf(masks=MASKS.long()))
case("lf-weights-negative", ValueError, "weights", lf(weights=-W))
case("lf-weights-nan", ValueError, "weights", lf(weights=poisoned(W, NAN)))
case("lf-weights-shape", ValueError, "weights", lf(weights=W[None, :-1]))
case("lf-values-nan", ValueError, "values", lf(values=poisoned(V, NAN)))
case("lf-values-int", TypeError, "values", lf(values=V.int()))


# ------------------------------------------------------------------ permutation_accumulate
P = 4
PERMS = ops.permutations(P, D, seed=8)
PV = randn(B, P, D + 1, seed=9)


def pa(perms=PERMS, values=PV, **kw):
    return lambda: ops.permutation_accumulate(perms, values, **kw)


case("pa-perms-float", TypeError, "perms", pa(perms=PERMS.double()))
case("pa-perms-bool", TypeError, "perms", pa(perms=PERMS > 0))
case("pa-perms-1d", ValueError, "perms", pa(perms=PERMS[0]))
case("pa-perms-P", ValueError, "perms", pa(perms=PERMS[:-1]))
case("pa-perms-d", ValueError, "perms", pa(perms=PERMS[:, :-1]))
case("pa-perms-batch", ValueError, "perms", pa(perms=PERMS.expand(B + 1, P, D)))
case("pa-perms-too-big", ValueError, "perms", pa(perms=poisoned(PERMS, D)))
case("pa-perms-negative", ValueError, "perms", pa(perms=poisoned(PERMS, -1)))
case("pa-perms-int64-big", ValueError, "perms", pa(perms=poisoned(PERMS.long(), 2**40)))
case(
    "pa-antithetic-odd",
    ValueError,
    "perms",
    pa(perms=PERMS[:3], values=PV[:, :3], antithetic=True),
)
case("pa-no-perms", ValueError, "perms", pa(perms=PERMS[:0], values=PV[:, :0]))
case("pa-values-nan", ValueError, "values", pa(values=poisoned(PV, NAN)))
case("pa-values-inf", ValueError, "values", pa(values=poisoned(PV, INF)))
case("pa-values-int", TypeError, "values", pa(values=PV.long()))
case("pa-values-2d", ValueError, "values", pa(values=PV[0]))
case("pa-values-5d", ValueError, "values", pa(values=PV[..., None, None]))


# ------------------------------------------------------------------------------ banzhaf
BM = torch.tensor([[(r >> i) & 1 for i in range(D)] for r in range(N)], dtype=torch.bool)
BM[-1] = True  # every feature in and out of some row
COUNTS = torch.randint(1, 4, (N,), generator=gen(10))


def bz(masks=BM, values=V, counts=COUNTS):
    return lambda: ops.banzhaf_msr(masks, values, counts)


case("bz-masks-rows", ValueError, "masks", bz(masks=BM[:-1]))
case("bz-masks-batch", ValueError, "masks", bz(masks=BM.expand(B - 1, N, D)))
case("bz-masks-float", TypeError, "masks", bz(masks=BM.float()))
case("bz-masks-all-rows", ValueError, "masks", bz(masks=BM | torch.tensor([True] + [False] * 4)))
case("bz-masks-no-rows", ValueError, "masks", bz(masks=BM & torch.tensor([True] * 4 + [False])))
case("bz-counts-negative", ValueError, "counts", bz(counts=poisoned(COUNTS, -1)))
case("bz-counts-nan", ValueError, "counts", bz(counts=poisoned(COUNTS.double(), NAN)))
case("bz-counts-inf", ValueError, "counts", bz(counts=poisoned(COUNTS.double(), INF)))
case("bz-counts-shape", ValueError, "counts", bz(counts=COUNTS[:-1]))
case("bz-counts-batch", ValueError, "counts", bz(counts=COUNTS.expand(B + 1, N)))
case("bz-counts-bool", TypeError, "counts", bz(counts=COUNTS > 1))
case("bz-values-nan", ValueError, "values", bz(values=poisoned(V, NAN)))
case("bz-values-int", TypeError, "values", bz(values=V.long()))


# -------------------------------------------------------------------------------- exact
TABLE = randn(2, 2**4, seed=11)
for fname in ("exact_shapley", "exact_banzhaf"):
    fn = getattr(ops, fname)
    case(
        f"{fname}-too-many-features", ValueError, "values", lambda fn=fn: fn(torch.zeros(1, 2**21))
    )
    case(f"{fname}-rows-6", ValueError, "values", lambda fn=fn: fn(TABLE[:, :6]))
    case(f"{fname}-rows-1", ValueError, "values", lambda fn=fn: fn(TABLE[:, :1]))
    case(f"{fname}-rows-0", ValueError, "values", lambda fn=fn: fn(TABLE[:, :0]))
    case(f"{fname}-nan", ValueError, "values", lambda fn=fn: fn(poisoned(TABLE, NAN)))
    case(f"{fname}-inf", ValueError, "values", lambda fn=fn: fn(poisoned(TABLE, INF)))
    case(f"{fname}-int", TypeError, "values", lambda fn=fn: fn(TABLE.long()))
    case(f"{fname}-1d", ValueError, "values", lambda fn=fn: fn(TABLE[0]))


# ------------------------------------------------------------------------- pack / unique
case("pack-float", TypeError, "masks", lambda: ops.pack_masks(MASKS.float()))
case("pack-3d", ValueError, "masks", lambda: ops.pack_masks(MASKS[None]))
case("pack-no-features", ValueError, "masks", lambda: ops.pack_masks(MASKS[:, :0]))
case("unique-int", TypeError, "masks", lambda: ops.unique_coalitions(MASKS.int()))
KEYS = ops.pack_masks(MASKS)
case("unpack-int32", TypeError, "keys", lambda: ops.unpack_masks(KEYS.int(), D))
case("unpack-1d", ValueError, "keys", lambda: ops.unpack_masks(KEYS[:, 0], D))
case("unpack-words", ValueError, "keys", lambda: ops.unpack_masks(KEYS, 65))
case("unpack-d-zero", ValueError, "d", lambda: ops.unpack_masks(KEYS, 0))
case("unpack-d-float", TypeError, "d", lambda: ops.unpack_masks(KEYS, 5.0))


# ------------------------------------------------------------------------------ samplers
case("enumerate-d-21", ValueError, "d", lambda: ops.enumerate_coalitions(21))
case("enumerate-d-0", ValueError, "d", lambda: ops.enumerate_coalitions(0))
case("bernoulli-p", ValueError, "p", lambda: ops.bernoulli_masks(4, 3, 1.5))
case("bernoulli-p-str", TypeError, "p", lambda: ops.bernoulli_masks(4, 3, "0.5"))
case("bernoulli-n", ValueError, "n", lambda: ops.bernoulli_masks(-1, 3))
case("bernoulli-seed", ValueError, "seed", lambda: ops.bernoulli_masks(4, 3, seed=-1))
case("bernoulli-seed-big", ValueError, "seed", lambda: ops.bernoulli_masks(4, 3, seed=2**64))
case("bernoulli-seed-float", TypeError, "seed", lambda: ops.bernoulli_masks(4, 3, seed=1.0))
case(
    "bernoulli-row_offset",
    ValueError,
    "row_offset",
    lambda: ops.bernoulli_masks(4, 3, row_offset=-1),
)
case("subset-k", ValueError, "k", lambda: ops.subset_masks(4, 3, 4))
case("shapley-d", ValueError, "d", lambda: ops.shapley_kernel_masks(4, 1))
case("permutations-d", ValueError, "d", lambda: ops.permutations(4, 0))
case("mus-lambda", ValueError, "lambda_", lambda: ops.mus_noise(8, 3, 0.3))
case("mus-q", ValueError, "q", lambda: ops.mus_noise(0, 3, 0.5))
case("stratified-m", ValueError, "m", lambda: ops.stratified_masks(0, 3))


# ------------------------------------------------------------------------------- masking
X = randn(2, 6, seed=12)
FM = torch.tensor([0, 0, 1, 1, 2, 2])
MM = rand_masks(4, 3, seed=13)


def ma(inputs=X, masks=MM, feature_mask=FM, **kw):
    return lambda: ops.mask_apply(inputs, masks, feature_mask, **kw)


def mas(inputs=X, feature_mask=FM, n_samples=4, **kw):
    return lambda: ops.mask_apply_sampled(inputs, feature_mask, n_samples, **kw)


case("ma-inputs-half", TypeError, "inputs", ma(inputs=X.half()))
case("ma-inputs-1d", ValueError, "inputs", ma(inputs=X[0]))
case("ma-inputs-nan", ValueError, "inputs", ma(inputs=poisoned(X, NAN)))
case("ma-inputs-inf", ValueError, "inputs", ma(inputs=poisoned(X, INF)))
case("ma-feature_mask-float", TypeError, "feature_mask", ma(feature_mask=FM.double()))
case("ma-feature_mask-bool", TypeError, "feature_mask", ma(feature_mask=FM > 0))
case("ma-feature_mask-negative", ValueError, "feature_mask", ma(feature_mask=poisoned(FM, -1)))
case("ma-feature_mask-too-big", ValueError, "feature_mask", ma(feature_mask=poisoned(FM, 3)))
case("ma-feature_mask-shape", ValueError, "feature_mask", ma(feature_mask=FM[:5]))
case("ma-masks-int", TypeError, "masks", ma(masks=MM.int()))
case("ma-masks-1d", ValueError, "masks", ma(masks=MM[0]))
case("ma-masks-batch", ValueError, "masks", ma(masks=MM.expand(3, 4, 3)))
case("ma-baselines-nan", ValueError, "baselines", ma(baselines=NAN))
case("ma-baselines-tensor-inf", ValueError, "baselines", ma(baselines=poisoned(X, INF)))
case("ma-baselines-shape", ValueError, "baselines", ma(baselines=torch.zeros(5)))
case("ma-baselines-str", TypeError, "baselines", ma(baselines="zero"))
case("ma-baselines-tokens", TypeError, "baselines", ma(inputs=X.long(), baselines=0.5))
case("mas-n_samples", ValueError, "n_samples", mas(n_samples=-1))
case("mas-sampler", ValueError, "sampler", mas(sampler="gaussian"))
case("mas-p", ValueError, "p", mas(p=-0.1))
case("mas-seed", ValueError, "seed", mas(seed=-3))
case("mas-row_offset", ValueError, "row_offset", mas(row_offset=-1))
case("mas-n_features", ValueError, "feature_mask", mas(n_features=2))
case("mas-mus-no-lambda", ValueError, "lambda_", mas(sampler="mus", q=8))
case("mas-mus-lambda", ValueError, "lambda_", mas(sampler="mus", q=8, lambda_=0.3))
case("mas-mus-rows", ValueError, "n_samples", mas(sampler="mus", q=8, lambda_=0.5, n_samples=9))
case(
    "mas-mus-per_example",
    ValueError,
    "per_example",
    mas(sampler="mus", q=8, lambda_=0.5, per_example=True),
)


# --------------------------------------------------------------------------------- paths
PB = torch.zeros(1, 2, 6, dtype=F64)
AL, WQ = ops.quadrature("gausslegendre", 4)
G = randn(2, 2, 4, 6, seed=14)


def pp(inputs=X, baselines=PB, alphas=AL):
    return lambda: ops.path_points(inputs, baselines, alphas)


def pi(grads=G, inputs=X, baselines=PB, weights=WQ, **kw):
    return lambda: ops.path_integrate(grads, inputs, baselines, weights, **kw)


case("pp-inputs-int", TypeError, "inputs", pp(inputs=X.long()))
case("pp-inputs-1d", ValueError, "inputs", pp(inputs=X[0]))
case("pp-inputs-nan", ValueError, "inputs", pp(inputs=poisoned(X, NAN)))
case("pp-baselines-shape", ValueError, "baselines", pp(baselines=PB[0]))
case("pp-baselines-batch", ValueError, "baselines", pp(baselines=PB.expand(3, 2, 6)))
case("pp-baselines-dtype", TypeError, "baselines", pp(baselines=PB.float()))
case("pp-baselines-inf", ValueError, "baselines", pp(baselines=poisoned(PB, INF)))
case("pp-alphas-2d", ValueError, "alphas", pp(alphas=AL[None]))
case("pp-alphas-nan", ValueError, "alphas", pp(alphas=poisoned(AL, NAN)))
case("pi-reduction", ValueError, "reduction", pi(reduction="max"))
case("pi-grads-shape", ValueError, "grads", pi(grads=G[:, :, :3]))
case("pi-grads-nan", ValueError, "grads", pi(grads=poisoned(G, NAN)))
case("pi-grads-int", TypeError, "grads", pi(grads=G.long()))
case("pi-weights-inf", ValueError, "weights", pi(weights=poisoned(WQ, INF)))
case("quadrature-method", ValueError, "method", lambda: ops.quadrature("simpson", 4))
case("device-unknown", ValueError, "device", lambda: ops.subset_masks(4, 3, 1, device="tpu"))
case("device-type", TypeError, "device", lambda: ops.enumerate_coalitions(3, device=[0]))
if not torch.cuda.is_available():  # torch's own AssertionError before
    case("device-no-gpu", ValueError, "device", lambda: ops.permutations(2, 3, device="cuda"))
    case("device-no-gpu-q", ValueError, "device", lambda: ops.quadrature(device="cuda:0"))
case("quadrature-n_steps", ValueError, "n_steps", lambda: ops.quadrature("riemann_left", 1))


# Issue 11: int64 ids that wrap in int32, the per-example row bound, q past the
# reference's exact range, the mean over no baselines, overflow of finite values.
case("pa-perms-int64-wraps", ValueError, "perms", pa(perms=poisoned(PERMS.long(), 2**32 + 2)))
case("mas-row_offset-per_example", ValueError, "row_offset",
     mas(per_example=True, row_offset=2**63 - 1 - 4))  # fmt: skip
case("mas-mus-q-huge", ValueError, "q", mas(sampler="mus", q=2**31, lambda_=0.5))
case("pi-baselines-none-mean", ValueError, "baselines",
     pi(baselines=PB[:, :0], grads=G[:, :0]))  # fmt: skip
case("ks-values-overflow", ValueError, "kernel_shap_solve", ks(values=V * 1e300, weights=W * 1e300))
# Feature 0's "in" mean is +3e38 and its "out" mean -3e38: their difference passes float32's max.
case("bz-values-overflow", ValueError, "banzhaf_msr",
     bz(values=(3e38 * (2.0 * BM[:, 0].float() - 1.0)).expand(B, N)))  # fmt: skip


@pytest.mark.parametrize("cid", list(CASES))
def test_bad_input_is_named(cid):
    exc, pattern, fn = CASES[cid]
    with pytest.raises(exc, match=pattern):
        fn()


def test_valid_inputs_pass():
    """The unmodified inputs every case starts from are valid, so each case above fails
    for the one thing it changes."""
    ks()()
    ks(values=V3, v_empty=VE2, v_full=VE2)()
    lf()()
    lf(method="ridge", alpha=0.0)()
    pa()()
    pa(perms=PERMS.long(), antithetic=True)()
    bz()()
    ops.exact_shapley(TABLE)
    ops.unpack_masks(KEYS, D)
    ma()()
    ma(inputs=X.long(), baselines=0)()
    mas()()
    mas(sampler="mus", q=8, lambda_=0.5)()
    pp()()
    pi()()


# ---------------------------------------------------------------------- the C++ layer
C = _ext.lib()
WHERE = {"device": -1, "stream": 0, "threads": 1}
CODE = _ext.DTYPE_CODES


def buf(t: torch.Tensor, numel: int | None = None, code: int | None = None):
    ptr, n, c = _ext.buf(t.contiguous())
    return (ptr, n if numel is None else numel, c if code is None else code)


def _mask_apply_kwargs(**over):
    B_, S, E, d = 2, 3, 6, 3
    x = torch.randn(B_, E, dtype=F64)
    base = torch.zeros(1, E, dtype=F64)
    group = torch.tensor([[0, 0, 1, 1, 2, 2]])
    masks = torch.ones(1, S, d, dtype=torch.bool)
    out = torch.empty(B_, S, E, dtype=F64)
    kw = dict(
        x=x, base=base, group=group, masks=masks, out=out, B=B_, S=S, E=E, d=d,
        base_bstride=0, group_bstride=0, mask_bstride=0, sampler=0, seed=0,
        bern_threshold=0, q=0, L=0, row_offset=0, per_example=False,
    )  # fmt: skip
    kw.update(over)
    keep = [kw[k] for k in ("x", "base", "group", "masks", "out")]  # keep tensors alive
    for k in ("x", "base", "group", "masks", "out"):
        if isinstance(kw[k], torch.Tensor):
            kw[k] = buf(kw[k])
    return kw, keep


def call_mask_apply(**over):
    kw, keep = _mask_apply_kwargs(**over)
    C.mask_apply(**kw, **WHERE)
    return keep


def test_c_mask_apply_valid_call_works():
    x, base, group, masks, out = call_mask_apply()
    assert torch.equal(out, x[:, None].expand_as(out))


X64 = torch.randn(2, 6, dtype=F64)
C_MASK_CASES = {
    "x-numel": ({"x": buf(X64, numel=11)}, "x"),
    "x-dtype-uint8": ({"x": buf(X64, code=CODE[torch.uint8])}, "x"),
    "x-dtype-unknown": ({"x": buf(X64, code=17)}, "x"),
    "base-numel": ({"base": buf(torch.zeros(2, 6, dtype=F64))}, "base"),
    "base-dtype": ({"base": buf(torch.zeros(1, 6))}, "base"),
    "base-bstride": ({"base_bstride": 5}, "base"),
    "group-numel": ({"group": buf(torch.zeros(1, 5, dtype=torch.int64))}, "group"),
    "group-dtype": ({"group": buf(torch.zeros(1, 6, dtype=torch.int32))}, "group"),
    "group-out-of-range": ({"group": torch.tensor([[0, 0, 1, 1, 2, 3]])}, "group"),
    "group-huge": ({"group": torch.tensor([[0, 0, 1, 1, 2, 2**40]])}, "group"),
    "group-negative": ({"group": torch.tensor([[0, -1, 1, 1, 2, 2]])}, "group"),
    "masks-numel": ({"masks": torch.ones(1, 3, 2, dtype=torch.bool)}, "masks"),
    "masks-bstride": ({"mask_bstride": 4}, "masks"),
    "out-numel": ({"out": torch.empty(2, 2, 6, dtype=F64)}, "out"),
    "out-dtype": ({"out": torch.empty(2, 3, 6)}, "out"),
    "null-pointer": ({"x": (0, 12, CODE[F64])}, "x"),
    "negative-B": ({"B": -1}, "B"),
    "d-zero": ({"d": 0}, "d"),
    "fused-unknown-sampler": ({"masks": None, "sampler": 2}, "sampler"),
    "fused-mus-rows": ({"masks": None, "sampler": 4, "q": 2, "L": 1}, "q"),
    "fused-mus-L": ({"masks": None, "sampler": 4, "q": 8, "L": 9}, "L"),
    "fused-bernoulli-threshold": ({"masks": None, "bern_threshold": 2**32 + 1}, "threshold"),
    "fused-group-out-of-range": (
        {"masks": None, "group": torch.tensor([[0, 0, 1, 1, 2, 7]])},
        "group",
    ),
}


@pytest.mark.parametrize("cid", list(C_MASK_CASES))
def test_c_mask_apply_checks(cid):
    over, name = C_MASK_CASES[cid]
    with pytest.raises(ValueError, match=name):
        call_mask_apply(**over)


def _wls_kwargs(**over):
    B_, n, d, T_ = 2, 8, 4, 1
    masks = torch.ones(1, n, d, dtype=torch.bool)
    t = {
        "masks": masks,
        "weights": torch.ones(1, n, dtype=F64),
        "values": torch.zeros(B_, n, T_, dtype=F64),
        "v_empty": torch.zeros(B_, T_, dtype=F64),
        "v_full": torch.zeros(B_, T_, dtype=F64),
        "out": torch.empty(B_, T_, d, dtype=F64),
    }
    doubles, ints = C.kernel_shap_solve_workspace(
        B=B_, n=n, d=d, T=T_, mask_bstride=0, weight_bstride=0
    )
    t["work"] = torch.empty(doubles, dtype=F64)
    t["scratch"] = torch.empty(ints, dtype=torch.int32)
    sizes = {"B": B_, "n": n, "d": d, "T": T_, "mask_bstride": 0, "weight_bstride": 0}
    sizes.update({k: v for k, v in over.items() if k in sizes})
    t.update({k: v for k, v in over.items() if k not in sizes})
    keep = list(t.values())
    bufs = {k: (buf(v) if isinstance(v, torch.Tensor) else v) for k, v in t.items()}
    return {**bufs, **sizes}, keep


C_WLS_CASES = {
    "masks-numel": ({"masks": torch.ones(1, 8, 3, dtype=torch.bool)}, "masks"),
    "masks-dtype": ({"masks": torch.ones(1, 8, 4, dtype=F64)}, "masks"),
    "weights-numel": ({"weights": torch.ones(1, 7, dtype=F64)}, "weights"),
    "weights-dtype": ({"weights": torch.ones(1, 8)}, "weights"),
    "values-numel": ({"values": torch.zeros(2, 8, 2, dtype=F64)}, "values"),
    "values-int": ({"values": torch.zeros(2, 8, 1, dtype=torch.int64)}, "values"),
    "v_empty-numel": ({"v_empty": torch.zeros(1, 1, dtype=F64)}, "v_empty"),
    "v_full-numel": ({"v_full": torch.zeros(3, 1, dtype=F64)}, "v_full"),
    "out-numel": ({"out": torch.empty(2, 1, 3, dtype=F64)}, "out"),
    "work-small": ({"work": torch.empty(3, dtype=F64)}, "work"),
    "scratch-small": ({"scratch": torch.empty(1, dtype=torch.int32)}, "scratch"),
    "mask-bstride": ({"mask_bstride": 7}, "masks"),
    "weight-bstride": ({"weight_bstride": 3}, "weights"),
    "per-example-masks-shared-buffer": ({"mask_bstride": 32}, "masks"),
    "d-zero": ({"d": 0}, "d"),
    "n-negative": ({"n": -1}, "n"),
    "rho-negative": ({"rho": -0.5}, "rho"),
    "rho-nan": ({"rho": float("nan")}, "rho"),
    "rho-inf": ({"rho": float("inf")}, "rho"),
}


def test_c_wls_valid_call_works():
    kw, keep = _wls_kwargs()
    C.kernel_shap_solve(**kw, **WHERE)
    assert torch.isfinite(keep[5]).all()


@pytest.mark.parametrize("cid", list(C_WLS_CASES))
def test_c_wls_checks(cid):
    over, name = C_WLS_CASES[cid]
    kw, keep = _wls_kwargs(**over)
    with pytest.raises(ValueError, match=name):
        C.kernel_shap_solve(**kw, **WHERE)


def _lf_call(**over):
    B_, n, d, T_ = 1, 6, 3, 1
    t = {
        "masks": torch.ones(1, n, d, dtype=torch.bool),
        "weights": torch.ones(1, n, dtype=F64),
        "values": torch.zeros(B_, n, T_, dtype=F64),
        "coef": torch.empty(B_, T_, d, dtype=F64),
        "intercept": torch.empty(B_, T_, dtype=F64),
    }
    doubles, ints = C.linear_fit_workspace(B=B_, n=n, d=d, T=T_, mask_bstride=0, weight_bstride=0)
    t["work"] = torch.empty(doubles, dtype=F64)
    t["scratch"] = torch.empty(ints, dtype=torch.int32)
    kw = {"B": B_, "n": n, "d": d, "T": T_, "mask_bstride": 0, "weight_bstride": 0}
    kw.update(alpha=0.1, lasso=True, max_iter=10, tol=1e-7)
    for k, v in over.items():
        (kw if k in kw else t)[k] = v
    C.linear_fit(**{k: buf(v) for k, v in t.items()}, **kw, **WHERE)
    return t


@pytest.mark.parametrize(
    "over, name",
    [
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": NAN}, "alpha"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": NAN}, "tol"),
        ({"coef": torch.empty(1, 1, 2, dtype=F64)}, "coef"),
        ({"intercept": torch.empty(2, dtype=F64)}, "intercept"),
        ({"work": torch.empty(1, dtype=F64)}, "work"),
        ({"weights": torch.ones(1, 6)}, "weights"),
        ({"weight_bstride": 1}, "weights"),
    ],
)
def test_c_linear_fit_checks(over, name):
    _lf_call()  # the base call is valid
    with pytest.raises(ValueError, match=name):
        _lf_call(**over)


def _perm_call(**over):
    B_, P_, d, T_ = 1, 4, 3, 1
    t = {
        "perms": torch.arange(d, dtype=torch.int32).repeat(1, P_, 1),
        "values": torch.zeros(B_, P_, d + 1, T_, dtype=F64),
        "mean": torch.empty(B_, T_, d, dtype=F64),
        "stderr": torch.empty(B_, T_, d, dtype=F64),
        "work": torch.empty(B_ * T_ * 3 * d, dtype=F64),
    }
    kw = {"B": B_, "P": P_, "d": d, "T": T_, "perm_bstride": 0, "unit": 1}
    for k, v in over.items():
        (kw if k in kw else t)[k] = v
    bufs = {k: (buf(v) if isinstance(v, torch.Tensor) else v) for k, v in t.items()}
    C.permutation_accumulate(**bufs, **kw, **WHERE)
    return t


@pytest.mark.parametrize(
    "over, name",
    [
        ({"unit": 3}, "unit"),
        ({"unit": 0}, "unit"),
        ({"P": 3, "unit": 2}, "permutations"),
        ({"perms": torch.zeros(1, 4, 3, dtype=torch.int64)}, "perms"),
        ({"perms": torch.zeros(1, 4, 2, dtype=torch.int32)}, "perms"),
        ({"perm_bstride": 5}, "perms"),
        ({"perms": torch.zeros(1, 4, 3, dtype=torch.int32)}, "permutation"),
        ({"values": torch.zeros(1, 4, 3, 1, dtype=F64)}, "values"),
        ({"mean": torch.empty(1, 1, 4, dtype=F64)}, "mean"),
        ({"stderr": torch.empty(1, 1, 2, dtype=F64)}, "stderr"),
        ({"work": torch.empty(8, dtype=F64)}, "work"),
    ],
)
def test_c_perm_accum_checks(over, name):
    _perm_call(stderr=None)  # the base call is valid, with or without stderr
    _perm_call()
    with pytest.raises(ValueError, match=name):
        _perm_call(**over)


def test_c_perm_accum_rejects_out_of_range_ids():
    # The CPU binding checks every row itself (the kernel would skip such ids).
    with pytest.raises(ValueError, match="permutation"):
        _perm_call(perms=torch.tensor([[[0, 5, -7]] * 4], dtype=torch.int32))


def _banzhaf_call(**over):
    B_, n, d, T_ = 1, 4, 2, 1
    t = {
        "masks": torch.tensor([[[0, 0], [1, 0], [0, 1], [1, 1]]], dtype=torch.bool),
        "counts": torch.ones(1, n, dtype=F64),
        "values": torch.arange(4.0, dtype=F64).view(1, n, T_),
        "out": torch.empty(B_, T_, d, dtype=F64),
    }
    kw = {"B": B_, "n": n, "d": d, "T": T_, "mask_bstride": 0, "count_bstride": 0}
    for k, v in over.items():
        (kw if k in kw else t)[k] = v
    bufs = {k: (buf(v) if isinstance(v, torch.Tensor) else v) for k, v in t.items()}
    C.banzhaf_msr(**bufs, **kw, **WHERE)
    return t


@pytest.mark.parametrize(
    "over, name",
    [
        ({"counts": torch.ones(1, 3, dtype=F64)}, "counts"),
        ({"counts": torch.ones(1, 4)}, "counts"),
        ({"count_bstride": 2}, "counts"),
        ({"masks": torch.ones(1, 4, 3, dtype=torch.bool)}, "masks"),
        ({"values": torch.zeros(1, 4, 2, dtype=F64)}, "values"),
        ({"out": torch.empty(1, 1, 3, dtype=F64)}, "out"),
        ({"d": 0}, "d"),
    ],
)
def test_c_banzhaf_checks(over, name):
    t = _banzhaf_call()
    assert t["out"].tolist() == [[[1.0, 2.0]]]
    _banzhaf_call(counts=None)
    with pytest.raises(ValueError, match=name):
        _banzhaf_call(**over)


def _exact_call(d=3, B=1, T=1, values=None, out=None):
    v = torch.zeros(max(B, 1), 2 ** max(d, 0), T, dtype=F64) if values is None else values
    o = torch.empty(max(B, 1), T, max(d, 1), dtype=F64) if out is None else out
    vb = buf(v) if isinstance(v, torch.Tensor) else v
    C.exact_values(values=vb, out=buf(o), B=B, d=d, T=T, banzhaf=False, **WHERE)
    return o


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"d": 21, "values": torch.zeros(2**4, dtype=F64), "out": torch.zeros(21, dtype=F64)}, "d"),
        ({"d": 0}, "d"),
        ({"d": -3}, "d"),
        ({"values": torch.zeros(1, 7, 1, dtype=F64)}, "values"),
        ({"values": torch.zeros(1, 8, 1, dtype=torch.int64)}, "values"),
        ({"values": (torch.zeros(8, dtype=F64).data_ptr(), 8, 99)}, "values"),
        ({"out": torch.zeros(1, 1, 2, dtype=F64)}, "out"),
        ({"out": torch.zeros(1, 1, 3)}, "out"),
        ({"B": -1}, "B"),
    ],
)
def test_c_exact_checks(kw, name):
    _exact_call()
    with pytest.raises(ValueError, match=name):
        _exact_call(**kw)


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"keys": torch.zeros(4, 3, dtype=torch.int64)}, "keys"),
        ({"keys": torch.zeros(4, 1, dtype=torch.int32)}, "keys"),
        ({"masks": torch.zeros(4, 5, dtype=torch.bool)}, "masks"),
        ({"masks": torch.zeros(4, 70, dtype=F64)}, "masks"),
        ({"d": 0}, "d"),
        ({"n": -1}, "n"),
    ],
)
@pytest.mark.parametrize("unpack", [False, True])
def test_c_pack_checks(kw, name, unpack):
    t = {
        "masks": torch.zeros(4, 70, dtype=torch.bool),
        "keys": torch.zeros(4, 2, dtype=torch.int64),
    }
    sizes = {"n": 4, "d": 70}
    fn = C.unpack_masks if unpack else C.pack_masks
    fn(masks=buf(t["masks"]), keys=buf(t["keys"]), **sizes, **WHERE)
    for k, v in kw.items():
        (sizes if k in sizes else t)[k] = v
    with pytest.raises(ValueError, match=name):
        fn(masks=buf(t["masks"]), keys=buf(t["keys"]), **sizes, **WHERE)


def _path_points_call(**over):
    t = {
        "x": torch.zeros(2, 5, dtype=F64),
        "base": torch.zeros(1, 3, 5, dtype=F64),
        "alphas": torch.zeros(4, dtype=F64),
        "out": torch.empty(2, 3, 4, 5, dtype=F64),
    }
    kw = {"B": 2, "K": 3, "J": 4, "E": 5, "base_bstride": 0}
    for k, v in over.items():
        (kw if k in kw else t)[k] = v
    C.path_points(**{k: buf(v) for k, v in t.items()}, **kw, **WHERE)


@pytest.mark.parametrize(
    "over, name",
    [
        ({"alphas": torch.zeros(3, dtype=F64)}, "alphas"),
        ({"alphas": torch.zeros(4)}, "alphas"),
        ({"base": torch.zeros(2, 3, 5, dtype=F64)}, "baselines"),
        ({"base_bstride": 5}, "baselines"),
        ({"x": torch.zeros(2, 5, dtype=torch.int64)}, "x"),
        ({"out": torch.empty(2, 3, 4, 4, dtype=F64)}, "out"),
        ({"J": -1}, "J"),
    ],
)
def test_c_path_points_checks(over, name):
    _path_points_call()
    with pytest.raises(ValueError, match=name):
        _path_points_call(**over)


def _path_integrate_call(**over):
    t = {
        "grads": torch.zeros(2, 3, 4, 5, dtype=F64),
        "x": torch.zeros(2, 5, dtype=F64),
        "base": torch.zeros(1, 3, 5, dtype=F64),
        "weights": torch.zeros(4, dtype=F64),
        "out": torch.empty(2, 5, dtype=F64),
    }
    kw = {"B": 2, "K": 3, "J": 4, "E": 5, "base_bstride": 0, "reduction": 0}
    kw["multiply_by_inputs"], kw["pw_bstride"] = True, 0
    for k, v in over.items():
        (kw if k in kw else t)[k] = v
    C.path_integrate(**{k: buf(v) for k, v in t.items()}, **kw, **WHERE)


@pytest.mark.parametrize(
    "over, name",
    [
        ({"reduction": 3}, "reduction"),
        ({"reduction": -1}, "reduction"),
        ({"reduction": 2}, "out"),  # "none" needs [B, K, E]
        ({"K": 0, "grads": torch.zeros(0, dtype=F64), "base": torch.zeros(0, dtype=F64)}, "K"),
        ({"weights": torch.zeros(5, dtype=F64)}, "weights"),
        ({"grads": torch.zeros(2, 3, 4, 4, dtype=F64)}, "grads"),
        ({"grads": torch.zeros(2, 3, 4, 5, dtype=torch.int64)}, "grads"),
        ({"x": torch.zeros(2, 5)}, "x"),
        ({"base": torch.zeros(1, 3, 4, dtype=F64)}, "baselines"),
        ({"path_weights": torch.zeros(1, 3, 4, dtype=F64)}, "path_weights"),
        ({"path_weights": torch.zeros(1, 3, 5)}, "path_weights"),
        ({"path_weights": torch.zeros(1, 3, 5, dtype=F64), "pw_bstride": 5}, "path_weights"),
        ({"path_weights": torch.zeros(1, 3, 5, dtype=F64), "pw_bstride": 15}, "path_weights"),
    ],
)
def test_c_path_integrate_checks(over, name):
    _path_integrate_call()
    with pytest.raises(ValueError, match=name):
        _path_integrate_call(**over)


def _sample_call(sampler=0, n=4, d=3, out=None, **over):
    o = torch.empty(n, d, dtype=torch.int32 if sampler == 3 else torch.bool) if out is None else out
    kw = dict(
        row_offset=0, seed=1, bern_threshold=2**31, k=0, thresholds=None, paired=False,
        q=0, L=0, m=0,
    )  # fmt: skip
    kw.update(over)
    C.sample(sampler=sampler, out=buf(o), n=n, d=d, **kw, **WHERE)
    return o


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"sampler": 7}, "sampler"),
        ({"sampler": -1}, "sampler"),
        ({"sampler": 2}, "thresholds"),
        ({"sampler": 2, "d": 1, "out": torch.empty(4, 1, dtype=torch.bool)}, "d >= 2"),
        ({"sampler": 1, "k": 4}, "k"),
        ({"sampler": 4, "q": 4, "L": 5}, "L"),
        ({"sampler": 4, "q": 3, "L": 1}, "q rows"),
        ({"sampler": 5, "m": 1}, "m \\* d"),
        ({"sampler": 5, "m": 0}, "m"),
        ({"sampler": 6, "n": 4, "d": 21, "out": torch.empty(4, 21, dtype=torch.bool)}, "d <= 20"),
        ({"sampler": 6, "n": 9, "out": torch.empty(9, 3, dtype=torch.bool)}, "2\\^d rows"),
        ({"bern_threshold": 2**32 + 1}, "threshold"),
        ({"out": torch.empty(4, 3, dtype=torch.int32)}, "out"),
        ({"sampler": 3, "out": torch.empty(4, 3, dtype=torch.bool)}, "out"),
        ({"out": torch.empty(5, 3, dtype=torch.bool)}, "out"),
        ({"n": -1, "out": torch.empty(0, 3, dtype=torch.bool)}, "n"),
        ({"d": 0}, "d"),
        ({"row_offset": -1}, "row_offset"),
    ],
)
def test_c_sample_checks(kw, name):
    _sample_call()
    with pytest.raises(ValueError, match=name):
        _sample_call(**kw)


def test_c_sample_shapley_thresholds_size():
    d = 5
    words = _reference.shapley_size_thresholds(d)  # uint64 words, as int64 bits
    good = torch.tensor([w - 2**64 if w >= 2**63 else w for w in words], dtype=torch.int64)
    _sample_call(sampler=2, d=d, thresholds=buf(good))
    with pytest.raises(ValueError, match="thresholds"):
        _sample_call(sampler=2, d=d, thresholds=buf(good[:-1]))


# Sizes whose products overflow int64 to 0 describe empty buffers that pass every numel
# check, while the launch grid (B * S rows of E columns, ...) is astronomically large: the
# bindings must reject such sizes instead of running the kernel. Run in a subprocess: a
# kernel that reads out of bounds kills the interpreter.
OVERFLOW = {
    "mask_apply": """
        x = torch.zeros(1, dtype=torch.float64); g = torch.zeros(1, dtype=torch.int64)
        m = torch.ones(1, dtype=torch.bool)
        E = 2**32
        C.mask_apply(x=buf(x, 0), base=buf(x, 0), group=buf(g, 0), masks=buf(m, 1),
                     out=buf(x, 0), B=2**32, S=1, E=E, d=1, base_bstride=E, group_bstride=E,
                     mask_bstride=0, sampler=0, seed=0, bern_threshold=0, q=0, L=0,
                     row_offset=0, per_example=False, **WHERE)
    """,
    "exact": """
        v = torch.zeros(1, dtype=torch.float64)
        C.exact_values(values=buf(v, 0), out=buf(v, 0), B=2**62, d=4, T=1, banzhaf=False, **WHERE)
    """,
    "pack": """
        m = torch.zeros(1, dtype=torch.bool); k = torch.zeros(1, dtype=torch.int64)
        C.pack_masks(masks=buf(m, 0), keys=buf(k, 0), n=2**62, d=256, **WHERE)
    """,
    "path_points": """
        x = torch.zeros(1, dtype=torch.float64)
        C.path_points(x=buf(x, 0), base=buf(x, 0), alphas=buf(x, 1), out=buf(x, 0), B=2**32,
                      K=1, J=1, E=2**32, base_bstride=2**32, **WHERE)
    """,
}

PRELUDE = """
import torch
from xattr import _ext
C = _ext.lib()
WHERE = {"device": -1, "stream": 0, "threads": 1}
def buf(t, n):
    return (t.data_ptr(), n, _ext.DTYPE_CODES[t.dtype])
try:
%s
except ValueError as e:
    print("ValueError:", e)
else:
    print("no error")
"""


@pytest.mark.parametrize("name", list(OVERFLOW))
def test_c_rejects_sizes_that_overflow(name):
    body = textwrap.indent(textwrap.dedent(OVERFLOW[name]).strip(), "    ")
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE % body], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"crashed with {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.startswith("ValueError"), proc.stdout + proc.stderr[-2000:]


def test_subprocess_harness_sees_value_errors():
    # The harness above reports a ValueError raised in the child, so the overflow tests
    # fail only when the binding does not raise (or the child crashes).
    body = (
        "    C.exact_values(values=buf(torch.zeros(1), 1), out=buf(torch.zeros(1), 1), B=1, d=21,\n"
    )
    body += "            T=1, banzhaf=False, **WHERE)"
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE % body], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ValueError:") and "d <= 20" in proc.stdout, proc.stdout


# ----------------------------------- issue 11: every C++ message starts with its argument
# Each case: (call, the argument its message must start with as "name: "). The binding's
# keyword names are the Python names the ops pass; before, several messages named
# nothing ("unknown sampler", "sizes must be >= 0", "fused masking supports ...") or not
# the argument ("bernoulli threshold", "MuS noise is shared", "the number of permutations").
def _named_c_cases():
    big = 2**40
    return {
        "sample-sampler": (lambda: _sample_call(sampler=9), "sampler"),
        "sample-threshold": (lambda: _sample_call(bern_threshold=2**32 + 1), "bern_threshold"),
        "sample-d": (lambda: _sample_call(d=0), "d"),
        "sample-k": (lambda: _sample_call(sampler=1, k=4), "k"),
        "sample-shapley-thresholds": (lambda: _sample_call(sampler=2), "thresholds"),
        "sample-mus-q": (lambda: _sample_call(sampler=4, q=0), "q"),
        "sample-mus-L": (lambda: _sample_call(sampler=4, q=4, L=5), "L"),
        "sample-mus-rows": (lambda: _sample_call(sampler=4, q=3, L=1), "n"),
        "sample-stratified-m": (lambda: _sample_call(sampler=5, m=0), "m"),
        "sample-stratified-rows": (lambda: _sample_call(sampler=5, m=1), "n"),
        "sample-enumerate-rows": (
            lambda: _sample_call(sampler=6, n=9, out=torch.empty(9, 3, dtype=torch.bool)),
            "n",
        ),
        "sample-row_offset": (lambda: _sample_call(row_offset=2**63 - 2), "row_offset"),
        "mask-sampler": (lambda: call_mask_apply(masks=None, sampler=2), "sampler"),
        "mask-threshold": (
            lambda: call_mask_apply(masks=None, bern_threshold=2**32 + 1),
            "bern_threshold",
        ),
        "mask-mus-q": (lambda: call_mask_apply(masks=None, sampler=4, q=0, L=0), "q"),
        "mask-mus-L": (lambda: call_mask_apply(masks=None, sampler=4, q=8, L=9), "L"),
        "mask-mus-rows": (lambda: call_mask_apply(masks=None, sampler=4, q=2, L=1), "S"),
        "mask-mus-per_example": (
            lambda: call_mask_apply(masks=None, sampler=4, q=8, L=4, per_example=True),
            "per_example",
        ),
        "mask-row_offset": (
            lambda: call_mask_apply(masks=None, per_example=True, row_offset=2**63 - 3),
            "row_offset",
        ),
        "mask-d": (lambda: call_mask_apply(d=0), "d"),
        "mask-S": (lambda: call_mask_apply(S=-2), "S"),
        "wls-d": (lambda: C.kernel_shap_solve(**_wls_kwargs(d=0)[0], **WHERE), "d"),
        "wls-workspace-B": (
            lambda: C.kernel_shap_solve_workspace(
                B=-1, n=8, d=4, T=1, mask_bstride=0, weight_bstride=0
            ),
            "B",
        ),
        "wls-workspace-sizes": (
            lambda: C.kernel_shap_solve_workspace(
                B=big, n=big, d=4, T=1, mask_bstride=0, weight_bstride=0
            ),
            "B \\* n",
        ),
        "lf-alpha": (lambda: _lf_call(alpha=-1.0), "alpha"),
        "lf-max_iter": (lambda: _lf_call(max_iter=0), "max_iter"),
        "lf-tol": (lambda: _lf_call(tol=NAN), "tol"),
        "lf-workspace-T": (
            lambda: C.linear_fit_workspace(B=1, n=6, d=3, T=-1, mask_bstride=0, weight_bstride=0),
            "T",
        ),
        "perm-unit": (lambda: _perm_call(unit=3), "unit"),
        "perm-P": (lambda: _perm_call(P=3, unit=2), "P"),
        "perm-d": (lambda: _perm_call(d=0), "d"),
        "banzhaf-d": (lambda: _banzhaf_call(d=0), "d"),
        "exact-d": (lambda: _exact_call(d=0), "d"),
        "pack-d": (
            lambda: C.pack_masks(
                masks=buf(torch.zeros(4, 1, dtype=torch.bool)),
                keys=buf(torch.zeros(4, 1, dtype=torch.int64)),
                n=4,
                d=0,
                **WHERE,
            ),
            "d",
        ),  # fmt: skip
        "path_points-J": (lambda: _path_points_call(J=-1), "J"),
        "path_integrate-K": (lambda: _path_integrate_call(K=-1), "K"),
        "path_integrate-reduction": (lambda: _path_integrate_call(reduction=5), "reduction"),
        "path_integrate-mean-K0": (
            lambda: _path_integrate_call(
                K=0, grads=torch.zeros(0, dtype=F64), base=torch.zeros(0, dtype=F64)
            ),
            "K",
        ),
        "quadrature-method": (lambda: C.quadrature("simpson", 4), "method"),
        "quadrature-n_steps": (lambda: C.quadrature("gausslegendre", 0), "n_steps"),
    }


@pytest.mark.parametrize("cid", list(_named_c_cases()))
def test_c_messages_start_with_the_argument(cid):
    call, name = _named_c_cases()[cid]
    with pytest.raises(ValueError, match=rf"^{name}: "):
        call()


def test_c_empty_batches_are_valid():
    # Zero sizes are valid everywhere the maths allows (per-example buffers of B = 0).
    call_mask_apply(
        x=torch.zeros(0, 6, dtype=F64), base=torch.zeros(0, 6, dtype=F64),
        group=torch.zeros(0, 6, dtype=torch.int64), masks=torch.ones(0, 3, 3, dtype=torch.bool),
        out=torch.empty(0, 3, 6, dtype=F64), B=0, base_bstride=6, group_bstride=6,
        mask_bstride=9,
    )  # fmt: skip
    _path_integrate_call(
        K=0, reduction=1, grads=torch.zeros(0, dtype=F64), base=torch.zeros(0, dtype=F64)
    )
    _perm_call(
        B=0, perm_bstride=12, perms=torch.zeros(0, 4, 3, dtype=torch.int32),
        values=torch.zeros(0, 4, 4, 1, dtype=F64), mean=torch.empty(0, 1, 3, dtype=F64),
        stderr=torch.empty(0, 1, 3, dtype=F64), work=torch.empty(0, dtype=F64),
    )  # fmt: skip
