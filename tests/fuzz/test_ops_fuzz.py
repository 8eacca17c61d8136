"""Fuzzer of the ops (xattr.ops): random shapes (0-sized included), dtypes, strides
(non-contiguous views), extreme magnitudes, bool masks whose bytes are not 0/1, large
ids and row offsets. Every call either equals its pure-torch reference in
xattr.ops._reference (bit for bit for integer work, to rounding for floating point)
or raises a clear ValueError / TypeError; never a crash, a wrong shape or a silent
NaN / inf. Budgets and the long run: see conftest.py (``XATTR_FUZZ=long``)."""

from __future__ import annotations

import re

import torch
from hypothesis import given
from hypothesis import strategies as st

from xattr import _ext, ops
from xattr.ops import _reference as ref

F32, F64 = torch.float32, torch.float64
FLOATS = st.sampled_from([F32, F64])
SEEDS = st.integers(0, 2**32 - 1)
# Magnitudes of the values: ordinary, tiny, and large enough to overflow float32 or
# float64 arithmetic in the solvers (which must then say so).
SCALES = st.sampled_from([1.0, 1.0, 1e-300, 1e30, 1e150, 1e300])
OVERFLOW = re.compile(r"the result overflowed")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def layout(t: torch.Tensor, strided: bool) -> torch.Tensor:
    """The same values, optionally as a non-contiguous view (every other element of a
    buffer twice as long in the last dimension)."""
    if not strided or t.dim() == 0:
        return t
    wide = torch.zeros(t.shape[:-1] + (2 * t.shape[-1],), dtype=t.dtype)
    wide[..., ::2] = t
    view = wide[..., ::2]
    assert t.numel() <= 1 or t.shape[-1] <= 1 or not view.is_contiguous()
    return view


def masks_of(shape, seed: int, odd: bool) -> torch.Tensor:
    """Random bool masks; with ``odd`` the True bytes are random values in 2..255 (torch
    reads any nonzero byte as True)."""
    m = torch.rand(shape, generator=gen(seed)) < 0.5
    if not odd:
        return m
    raw = torch.randint(2, 256, shape, generator=gen(seed + 1), dtype=torch.uint8)
    return (raw * m.to(torch.uint8)).view(torch.bool)


def full_design(B: int, d: int, per_example: bool, odd: bool, seed: int) -> torch.Tensor:
    """All 2^d coalitions in a random order ([n, d], or [B, n, d] per example): a design
    of full rank for every d; with ``odd`` the True bytes are random values in 2..255."""
    n = 2**d
    full = ops.enumerate_coalitions(d)[torch.randperm(n, generator=gen(seed))]
    masks = full.expand(B, n, d).clone() if per_example else full
    if not odd:
        return masks
    raw = torch.randint(2, 256, masks.shape, generator=gen(seed + 1), dtype=torch.uint8)
    return (raw * masks.to(torch.uint8)).view(torch.bool)


def values_of(shape, dtype, seed: int, scale: float) -> torch.Tensor:
    v = torch.randn(shape, generator=gen(seed), dtype=F64) * scale
    if dtype == F32:
        v = v.clamp(-3e38, 3e38)
    return v.to(dtype)


def expect_clear(exc: Exception) -> None:
    """A refusal must be a ValueError / TypeError whose message starts by naming the
    argument or the op ("name: ...")."""
    assert isinstance(exc, (ValueError, TypeError)), repr(exc)
    assert re.match(r"^[A-Za-z_][\w ,*+]*:", str(exc)), str(exc)


def bits(t: torch.Tensor) -> torch.Tensor:
    """Floats as same-size integers: equal bits, NaN payloads and signed zeros included."""
    t = t.contiguous()
    if t.dtype in (F32, F64):
        return t.view(torch.int32 if t.dtype == F32 else torch.int64)
    return t


def call_once(fn):
    try:
        return fn(), None
    except (ValueError, TypeError) as exc:
        expect_clear(exc)
        return None, exc


def call(fn):
    """(result, None) or (None, exception) for a clear refusal; anything else fails.

    The op runs under both CPU launchers (the fast path, and the element launch that
    makes the GPU's per-element calls), which must give the same bits or the same
    refusal."""
    got, exc = call_once(fn)
    with _ext.cpu_launch("element"):
        got_e, exc_e = call_once(fn)
    assert repr(exc) == repr(exc_e)
    if got is not None:
        many = isinstance(got, tuple)
        for a, b in zip(got if many else [got], got_e if many else [got_e]):
            assert a.shape == b.shape and a.dtype == b.dtype
            assert torch.equal(bits(a), bits(b)), "the CPU launchers differ"
    return got, exc


def close(got: torch.Tensor, want: torch.Tensor, rtol: float, scale: float = 0.0) -> None:
    """Equal to rounding: within rtol of the largest magnitude in ``want`` (or of
    ``scale``, the magnitude of the quantities ``want`` was computed from)."""
    assert got.shape == want.shape and got.dtype == want.dtype
    if got.numel() == 0:
        return
    assert bool(torch.isfinite(got).all()), "a silent NaN / inf"
    scale = max(scale, float(want.abs().max().double()))
    err = float((got.double() - want.double()).abs().max())
    assert err <= rtol * max(scale, 1e-300) + 1e-300, (err, scale)


def solver_outcome(got, exc, want: list[torch.Tensor], rtol: float) -> None:
    """A solver either matches its reference or reports an overflow that the
    reference shows too (a non-finite or near-overflowing result)."""
    if exc is not None:
        assert OVERFLOW.search(str(exc)), str(exc)
        big = max(float(w.double().abs().nan_to_num(float("inf")).max()) for w in want)
        limit = 1e30 if want[0].dtype == F32 else 1e250
        assert big > limit, f"refused although the reference gives at most {big}"
        return
    got = list(got) if isinstance(got, tuple) else [got]
    # Rounding errors scale with the largest result (a standard error computed from
    # values of 1e38 carries errors of ~1e22 even where it is 0).
    scale = max(float(w.double().abs().max()) if w.numel() else 0.0 for w in want)
    for g, w in zip(got, want):
        close(g, w, rtol, scale)


def squeeze_like(t: torch.Tensor, squeezed: bool) -> torch.Tensor:
    return t.squeeze(1) if squeezed else t


# ------------------------------------------------------------------------- samplers
@given(
    sampler=st.sampled_from(["bernoulli", "exact_k", "shapley", "permutation", "stratified"]),
    n=st.integers(0, 40),
    d=st.integers(1, 70),
    seed=st.integers(0, 2**64 - 1),
    offset=st.one_of(st.integers(0, 1000), st.integers(2**63 - 2000, 2**63 - 1)),
    paired=st.booleans(),
)
def test_fuzz_samplers(sampler, n, d, seed, offset, paired):
    kw = {"seed": seed}
    if sampler == "bernoulli":
        fn, rkw = (lambda: ops.bernoulli_masks(n, d, 0.3, row_offset=offset, **kw)), {"p": 0.3}
    elif sampler == "exact_k":
        fn, rkw = (lambda: ops.subset_masks(n, d, d // 2, row_offset=offset, **kw)), {"k": d // 2}
    elif sampler == "shapley":
        fn = lambda: ops.shapley_kernel_masks(n, d, paired=paired, row_offset=offset, **kw)  # noqa: E731
        rkw = {"paired": paired}
    elif sampler == "permutation":
        fn = lambda: ops.permutations(n, d, antithetic=paired, row_offset=offset, **kw)  # noqa: E731
        rkw = {"paired": paired}
    else:
        m = max(1, n // d)
        fn, rkw, n, offset = (lambda: ops.stratified_masks(m, d, **kw)), {"m": m}, m * d, 0
    got, exc = call(fn)
    if exc is not None:  # only rows past 2^63 - 1, or d too small for Shapley, are refused
        assert offset + n > 2**63 - 1 or (sampler == "shapley" and d < 2), str(exc)
        return
    want = ref.sample(sampler, n, d, seed=seed, row_offset=offset, **rkw)
    assert got.shape == (n, d) and torch.equal(got, want)


# -------------------------------------------------------------------------- masking
@given(
    B=st.integers(0, 3),
    S=st.integers(0, 5),
    F=st.sampled_from([(0,), (1,), (6,), (2, 3)]),
    dtype=st.sampled_from([F32, F64, torch.int64]),
    per_masks=st.booleans(),
    per_group=st.booleans(),
    per_base=st.booleans(),
    strided=st.booleans(),
    odd=st.booleans(),
    seed=SEEDS,
)
def test_fuzz_mask_apply(B, S, F, dtype, per_masks, per_group, per_base, strided, odd, seed):
    E = 1
    for f in F:
        E *= f
    d = 3
    x = values_of((B,) + F, F64, seed, 10.0).to(dtype)
    base = values_of(((B,) if per_base else ()) + F, F64, seed + 1, 10.0).to(dtype)
    group = torch.randint(0, d, ((B,) if per_group else ()) + F, generator=gen(seed + 2))
    masks = masks_of(((B,) if per_masks else ()) + (S, d), seed + 3, odd)
    got, exc = call(
        lambda: ops.mask_apply(
            layout(x, strided), masks, layout(group, strided), baselines=layout(base, strided)
        )
    )
    assert exc is None, str(exc)
    m3 = masks if per_masks else masks[None]
    want = ref.mask_apply(
        x.reshape(B, E),
        base.reshape(B, E) if per_base else base.reshape(1, E),
        group.reshape(B, E) if per_group else group.reshape(1, E),
        m3,
    )
    assert got.shape == (B, S) + F and torch.equal(got.reshape(B, S, E), want)


@given(
    B=st.integers(0, 3),
    S=st.integers(0, 6),
    d=st.integers(1, 9),
    sampler=st.sampled_from(["bernoulli", "mus"]),
    per_example=st.booleans(),
    big_offset=st.booleans(),
    seed=SEEDS,
)
def test_fuzz_mask_apply_sampled(B, S, d, sampler, per_example, big_offset, seed):
    E = 2 * d
    x = values_of((B, E), F64, seed, 1.0)
    group = torch.arange(E) % d
    rows = B * S if per_example else S
    offset = 2**63 - 1 - rows + (seed % 3) if big_offset else seed % 7
    kw = {"sampler": sampler, "seed": seed, "row_offset": offset, "per_example": per_example}
    if sampler == "mus":
        kw |= {"lambda_": 0.5, "q": 8}
    got, exc = call(lambda: ops.mask_apply_sampled(x, group, S, n_features=d, **kw))
    if exc is not None:  # rows past 2^63 - 1, past MuS's q rows, or per-example MuS
        assert offset + rows > 2**63 - 1 or (
            sampler == "mus" and (offset + S > 8 or per_example)
        ), str(exc)
        return
    want = ref.mask_apply_sampled(
        x, torch.zeros(1, E, dtype=F64), group[None], d, S, sampler, seed,
        q=8, L=4, row_offset=offset, per_example=per_example,
    )  # fmt: skip
    assert got.shape == (B, S, E) and torch.equal(got, want)


# ------------------------------------------------------------------------- solvers
@given(
    B=st.integers(0, 3),
    d=st.integers(1, 5),
    T=st.sampled_from([None, 1, 3]),
    dtype=FLOATS,
    per_masks=st.booleans(),
    odd=st.booleans(),
    strided=st.booleans(),
    scale=SCALES,
    seed=SEEDS,
)
def test_fuzz_kernel_shap_solve(B, d, T, dtype, per_masks, odd, strided, scale, seed):
    n = 2**d
    masks = full_design(B, d, per_masks, odd, seed)
    w = torch.rand(n, generator=gen(seed + 2), dtype=F64).to(dtype) + 0.5
    vshape = (B, n) if T is None else (B, n, T)
    v = values_of(vshape, dtype, seed + 3, scale)
    ve = values_of(vshape[:1] + vshape[2:], dtype, seed + 4, scale)
    vf = values_of(vshape[:1] + vshape[2:], dtype, seed + 5, scale)
    got, exc = call(
        lambda: ops.kernel_shap_solve(layout(masks, strided), layout(w, strided), v, ve, vf)
    )
    v3 = v if T is not None else v.unsqueeze(-1)
    m3 = masks if per_masks else masks[None]
    want = ref.kernel_shap_solve(m3, w[None], v3, ve.reshape(B, T or 1), vf.reshape(B, T or 1))
    rtol = 1e-4 if dtype == F32 else 1e-9
    solver_outcome(got, exc, [squeeze_like(want, T is None)], rtol)


@given(
    B=st.integers(0, 3),
    n=st.integers(0, 40),
    d=st.integers(1, 6),
    T=st.sampled_from([None, 2]),
    dtype=FLOATS,
    method=st.sampled_from(["ridge", "lasso"]),
    per_masks=st.booleans(),
    odd=st.booleans(),
    scale=SCALES,
    seed=SEEDS,
)
def test_fuzz_linear_fit(B, n, d, T, dtype, method, per_masks, odd, scale, seed):
    masks = masks_of(((B,) if per_masks else ()) + (n, d), seed, odd)
    w = torch.rand(n, generator=gen(seed + 2), dtype=F64).to(dtype) + 0.1
    v = values_of((B, n) if T is None else (B, n, T), dtype, seed + 3, scale)
    alpha = 1.0 if method == "ridge" else 0.01
    got, exc = call(lambda: ops.linear_fit(masks, w, v, method=method, alpha=alpha))
    v3 = v if T is not None else v.unsqueeze(-1)
    m3 = masks if per_masks else masks[None]
    coef, icpt = ref.linear_fit(m3, w[None], v3, alpha, method == "lasso")
    want = [squeeze_like(coef, T is None), icpt.squeeze(1) if T is None else icpt]
    # Lasso stops at a tolerance: kernel and reference may stop a sweep apart.
    rtol = 1e-3 if method == "lasso" or dtype == F32 else 1e-8
    solver_outcome(got, exc, want, rtol)


@given(
    B=st.integers(0, 3),
    P=st.integers(1, 6),
    d=st.integers(1, 6),
    T=st.sampled_from([None, 2]),
    dtype=FLOATS,
    per_example=st.booleans(),
    id_dtype=st.sampled_from([torch.int32, torch.int64]),
    wrap=st.sampled_from([0, 0, 2**32, -(2**32), 2**40]),
    scale=SCALES,
    seed=SEEDS,
)
def test_fuzz_permutation_accumulate(B, P, d, T, dtype, per_example, id_dtype, wrap, scale, seed):
    perms = ops.permutations((B if per_example else 1) * P, d, seed=seed).to(id_dtype)
    perms = perms.reshape(B, P, d) if per_example else perms
    if wrap and id_dtype == torch.int64 and perms.numel():
        perms = perms.clone()
        perms.view(-1)[seed % perms.numel()] += wrap  # wraps to the same id in int32
    v = values_of((B, P, d + 1) if T is None else (B, P, d + 1, T), dtype, seed + 1, scale)
    got, exc = call(lambda: ops.permutation_accumulate(perms, v, return_stderr=True))
    if wrap and id_dtype == torch.int64 and perms.numel():
        assert exc is not None and str(exc).startswith("perms:"), "a wrapped id was accepted"
        return
    p3 = perms if per_example else perms[None]
    v4 = v if T is not None else v.unsqueeze(-1)
    mean, se = ref.permutation_accumulate(p3.to(torch.int32), v4, 1)
    if exc is None and P == 1:  # the standard error is NaN with one unit, by definition
        got = got[0]
        want = [squeeze_like(mean, T is None)]
    else:
        want = [squeeze_like(mean, T is None), squeeze_like(se, T is None)]
    solver_outcome(got, exc, want, 1e-4 if dtype == F32 else 1e-9)


@given(
    B=st.integers(0, 3),
    d=st.integers(1, 5),
    T=st.sampled_from([None, 2]),
    dtype=FLOATS,
    per_masks=st.booleans(),
    odd=st.booleans(),
    counts=st.booleans(),
    scale=SCALES,
    seed=SEEDS,
)
def test_fuzz_banzhaf_msr(B, d, T, dtype, per_masks, odd, counts, scale, seed):
    n = 2**d  # every feature is in some coalition and out of another
    masks = full_design(B, d, per_masks, odd, seed)
    c = torch.randint(1, 4, (n,), generator=gen(seed + 2)) if counts else None
    v = values_of((B, n) if T is None else (B, n, T), dtype, seed + 3, scale)
    got, exc = call(lambda: ops.banzhaf_msr(masks, v, c))
    v3 = v if T is not None else v.unsqueeze(-1)
    m3 = masks if per_masks else masks[None]
    cc = None if c is None else c[None].to(dtype)
    want = squeeze_like(ref.banzhaf_msr(m3, cc, v3), T is None)
    solver_outcome(got, exc, [want], 1e-4 if dtype == F32 else 1e-10)


@given(
    B=st.integers(0, 3),
    d=st.integers(1, 8),
    T=st.sampled_from([None, 2]),
    dtype=FLOATS,
    banzhaf=st.booleans(),
    strided=st.booleans(),
    scale=SCALES,
    seed=SEEDS,
)
def test_fuzz_exact(B, d, T, dtype, banzhaf, strided, scale, seed):
    shape = (B, 2**d) if T is None else (B, 2**d, T)
    v = values_of(shape, dtype, seed, scale)
    fn = ops.exact_banzhaf if banzhaf else ops.exact_shapley
    got, exc = call(lambda: fn(layout(v, strided)))
    v3 = v if T is not None else v.unsqueeze(-1)
    want = squeeze_like(ref.exact_values(v3, banzhaf), T is None)
    solver_outcome(got, exc, [want], 1e-4 if dtype == F32 else 1e-10)


@given(n=st.integers(0, 30), d=st.integers(1, 150), odd=st.booleans(), seed=SEEDS)
def test_fuzz_pack_unique(n, d, odd, seed):
    masks = masks_of((n, d), seed, odd)
    keys = ops.pack_masks(masks)
    assert keys.shape == (n, (d + 63) // 64) and torch.equal(keys, ref.pack_masks(masks))
    assert torch.equal(ops.unpack_masks(keys, d), masks)
    uniq, inverse, counts = ops.unique_coalitions(masks)
    assert torch.equal(uniq[inverse], masks) and int(counts.sum()) == n


# ---------------------------------------------------------------------------- paths
@given(
    B=st.integers(0, 3),
    K=st.integers(0, 3),
    J=st.integers(0, 5),
    F=st.sampled_from([(0,), (1,), (5,), (2, 3)]),
    dtype=FLOATS,
    per_base=st.booleans(),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    mbi=st.booleans(),
    strided=st.booleans(),
    scale=SCALES,
    seed=SEEDS,
)
def test_fuzz_paths(B, K, J, F, dtype, per_base, reduction, mbi, strided, scale, seed):
    x = values_of((B,) + F, dtype, seed, scale)
    base = values_of(((B,) if per_base else (1,)) + (K,) + F, dtype, seed + 1, scale)
    alphas = torch.rand(J, generator=gen(seed + 2), dtype=F64).to(dtype)
    got, exc = call(lambda: ops.path_points(layout(x, strided), base, alphas))
    E = 1
    for f in F:
        E *= f
    want = ref.path_points(x.reshape(B, E), base.reshape(base.shape[0], K, E), alphas)
    solver_outcome(got.reshape(B, K, J, E) if got is not None else None, exc, [want], 1e-6)
    grads = values_of((B, K, J) + F, dtype, seed + 3, 1.0)
    weights = torch.rand(J, generator=gen(seed + 4), dtype=F64).to(dtype)
    got, exc = call(
        lambda: ops.path_integrate(
            layout(grads, strided), x, base, weights, reduction=reduction, multiply_by_inputs=mbi
        )
    )
    if K == 0 and reduction == "mean":  # the mean over no baselines
        assert exc is not None and str(exc).startswith("baselines:")
        return
    want = ref.path_integrate(
        grads.reshape(B, K, J, E), x.reshape(B, E), base.reshape(base.shape[0], K, E),
        weights, reduction, mbi,
    )  # fmt: skip
    lead = (B, K) if reduction == "none" else (B,)
    if got is not None:
        assert got.shape == lead + F
        got = got.reshape(lead + (E,))
    solver_outcome(got, exc, [want], 1e-5 if dtype == F32 else 1e-12)


@given(
    method=st.sampled_from(
        ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre"]
    ),
    n=st.one_of(st.integers(-2, 130), st.integers(131, 3000)),
)
def test_fuzz_quadrature(method, n):
    got, exc = call(lambda: ops.quadrature(method, n))
    if exc is not None:
        assert n < (1 if method == "gausslegendre" else 2) and str(exc).startswith("n_steps:")
        return
    a, w = got
    ra, rw = ref.quadrature(method, n)
    assert a.shape == w.shape == (n,)
    close(a, torch.tensor(ra, dtype=F64), 1e-15)
    close(w, torch.tensor(rw, dtype=F64), 1e-10)
    assert bool((a >= 0).all() and (a <= 1).all() and (w > 0).all())
