"""torch.library conformance of every xattr custom op (schema, fake tensors, autograd
registration, AOT dispatch), a torch.compile smoke test, and the pure-torch fallback used
when the compiled kernels cannot be loaded."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch
from _devices import HAVE_CUDA, to
from _helpers import F64, gen, rand_masks, randn  # noqa: F401

import xattr
from xattr import _ext, ops

XOPS = torch.ops.xattr


def check(op, args, kwargs=None) -> None:
    result = torch.library.opcheck(op, args, kwargs)
    assert all(v == "SUCCESS" for v in result.values()), result


def test_one_name_per_kernel():
    # The kernel list (csrc/include/xattr/kernel_list.h) names each kernel as its op does:
    # the C++ drivers <name>_cpu / <name>_cuda, the binding _C.<name> and the custom op
    # torch.ops.xattr.<name> (the samplers' op is sample_, torch's mark of a writer).
    names = _ext.lib().kernel_names()
    assert len(names) == len(set(names)) == 12
    for name in names:
        assert callable(getattr(_ext.lib(), name)), name
        assert hasattr(XOPS, "sample_" if name == "sample" else name), name


def test_kernels_take_their_params_fields_by_name():
    # A binding reads its params struct's fields by name, in one place: a misspelt or
    # missing field, or a positional call, is a TypeError naming it.
    C = _ext.lib()
    x = torch.zeros(2, 3)
    base = torch.zeros(1, 1, 3)
    alphas = torch.tensor([0.5])
    out = torch.empty(2, 1, 1, 3)
    kw = {
        "x": _ext.buf(x),
        "base": _ext.buf(base),
        "alphas": _ext.buf(alphas),
        "out": _ext.buf(out),
        "B": 2,
        "K": 1,
        "J": 1,
        "E": 3,
        "base_bstride": 0,
        **_ext.where(x),
    }
    C.path_points(**kw)
    with pytest.raises(TypeError, match="path_points: unexpected argument 'bogus'"):
        C.path_points(**kw, bogus=1)
    with pytest.raises(TypeError, match="path_points: missing argument 'alphas'"):
        C.path_points(**{k: v for k, v in kw.items() if k != "alphas"})
    with pytest.raises(TypeError, match="E: path_points cannot take"):
        C.path_points(**{**kw, "E": "three"})
    with pytest.raises(TypeError):
        C.path_points(*kw.values())


def test_limits_come_from_the_kernels():
    assert _ext.MAX_ENUMERATION_FEATURES == _ext.lib().max_enumeration_features() == 20
    assert ops.sampling.MAX_ENUMERATION_FEATURES == _ext.MAX_ENUMERATION_FEATURES
    with pytest.raises(ValueError, match="d"):
        ops.enumerate_coalitions(_ext.MAX_ENUMERATION_FEATURES + 1)


def test_every_op_is_covered():
    names = {
        "sample_",
        "mask_apply",
        "mask_apply_sampled",
        "kernel_shap_solve",
        "linear_fit",
        "permutation_accumulate",
        "banzhaf_msr",
        "exact_values",
        "pack_masks",
        "unpack_masks",
        "path_points",
        "path_integrate",
        "rescale_multiplier",
    }
    for name in names:
        assert hasattr(XOPS, name), name
    registered = {
        name.split("::")[1].split(".")[0]
        for name in torch._C._dispatch_get_all_op_names()
        if name.startswith("xattr::")
    }
    assert registered == names, registered ^ names


# ------------------------------------------------------------------------------ sampling
SAMPLE_CASES = {
    # sampler code, n, d, dtype, extra (p, k, paired, q, L, m)
    "bernoulli": (0, 6, 5, torch.bool, (0.3, 0, False, 0, 0, 0)),
    "exact_k": (1, 6, 5, torch.bool, (0.5, 2, False, 0, 0, 0)),
    "shapley": (2, 6, 5, torch.bool, (0.5, 0, True, 0, 0, 0)),
    "permutation": (3, 6, 5, torch.int32, (0.5, 0, True, 0, 0, 0)),
    "mus": (4, 8, 5, torch.bool, (0.5, 0, False, 8, 3, 0)),
    "stratified": (5, 10, 5, torch.bool, (0.5, 0, False, 0, 0, 2)),
    "enumerate": (6, 16, 4, torch.bool, (0.5, 0, False, 0, 0, 0)),
}


@pytest.mark.parametrize("name", list(SAMPLE_CASES))
def test_opcheck_sample(name):
    code, n, d, dtype, (p, k, paired, q, L, m) = SAMPLE_CASES[name]
    out = torch.empty((n, d), dtype=dtype)
    check(XOPS.sample_.default, (out, code, 0, 1234, p, k, paired, q, L, m, []))
    # the op really wrote into out
    XOPS.sample_(out, code, 0, 1234, p, k, paired, q, L, m, [])
    if dtype == torch.int32:
        assert torch.equal(out.sort(1).values, torch.arange(d, dtype=torch.int32).expand(n, d))


# ------------------------------------------------------------------------------- masking
def _mask_args(dtype, per_example, grad=False):
    B, E, S, d = 3, 8, 5, 4
    if dtype == torch.int64:
        x = torch.randint(0, 100, (B, E), generator=gen(1))
        base = torch.full((B if per_example else 1, E), 7, dtype=torch.int64)
    else:
        x = randn(B, E, dtype=dtype, seed=1)
        base = randn(B if per_example else 1, E, dtype=dtype, seed=2)
    group = torch.randint(0, d, (B if per_example else 1, E), generator=gen(3))
    masks = rand_masks(B if per_example else 1, S, d, seed=4)
    if grad:
        x.requires_grad_(True)
        base.requires_grad_(True)
    return x, base, group, masks


@pytest.mark.parametrize("dtype", [torch.float32, F64, torch.int64])
@pytest.mark.parametrize("per_example", [False, True])
def test_opcheck_mask_apply(dtype, per_example):
    check(XOPS.mask_apply.default, _mask_args(dtype, per_example))


@pytest.mark.parametrize("per_example", [False, True])
def test_opcheck_mask_apply_grad(per_example):
    args = _mask_args(F64, per_example, grad=True)
    check(XOPS.mask_apply.default, args)
    torch.autograd.gradcheck(lambda x, b: XOPS.mask_apply(x, b, *args[2:]), args[:2])


def _sampled_args(dtype, sampler, grad=False):
    x, base, group, _ = _mask_args(dtype, per_example=False, grad=grad)
    if sampler == "mus":  # q = 8 rows, L = 4, rows 2..6
        rest = (4, 5, 4, 99, 0.5, 8, 4, 2, False)
    else:  # bernoulli, per-example rows
        rest = (4, 5, 0, 99, 0.3, 0, 0, 1, True)
    return (x, base, group) + rest


@pytest.mark.parametrize("dtype", [torch.float32, F64, torch.int64])
@pytest.mark.parametrize("sampler", ["bernoulli", "mus"])
def test_opcheck_mask_apply_sampled(dtype, sampler):
    check(XOPS.mask_apply_sampled.default, _sampled_args(dtype, sampler))


@pytest.mark.parametrize("sampler", ["bernoulli", "mus"])
def test_opcheck_mask_apply_sampled_grad(sampler):
    args = _sampled_args(F64, sampler, grad=True)
    check(XOPS.mask_apply_sampled.default, args)
    torch.autograd.gradcheck(lambda x, b: XOPS.mask_apply_sampled(x, b, *args[2:]), args[:2])


# ---------------------------------------------------------------------------- coalitions
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("shared", [False, True])
def test_opcheck_kernel_shap_solve(dtype, shared):
    B, n, d, T = 2, 12, 4, 2
    Bm = 1 if shared else B
    masks = rand_masks(Bm, n, d, seed=10)
    weights = randn(Bm, n, dtype=dtype, seed=11).abs()
    args = (
        masks,
        weights,
        randn(B, n, T, dtype=dtype, seed=12),
        randn(B, T, dtype=dtype, seed=13),
        randn(B, T, dtype=dtype, seed=14),
    )
    check(XOPS.kernel_shap_solve.default, args)
    check(XOPS.kernel_shap_solve.default, (*args, 0.5))  # rho: the ridge toward a prior


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("lasso", [False, True])
def test_opcheck_linear_fit(dtype, lasso):
    B, n, d, T = 2, 15, 4, 3
    args = (
        rand_masks(B, n, d, seed=20),
        randn(1, n, dtype=dtype, seed=21).abs(),
        randn(B, n, T, dtype=dtype, seed=22),
        0.01,
        lasso,
        100,
        1e-7,
    )
    check(XOPS.linear_fit.default, args)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("unit", [1, 2])
def test_opcheck_permutation_accumulate(dtype, unit):
    B, P, d, T = 2, 4, 5, 2
    perms = ops.permutations(B * P, d, seed=30, antithetic=unit == 2).view(B, P, d)
    values = randn(B, P, d + 1, T, dtype=dtype, seed=31)
    check(XOPS.permutation_accumulate.default, (perms, values, unit))
    check(XOPS.permutation_accumulate.default, (perms[:1].contiguous(), values, unit))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_opcheck_banzhaf_msr(dtype):
    B, n, d, T = 2, 16, 3, 2
    masks = torch.tensor([[i >> j & 1 for j in range(d)] for i in range(n)], dtype=torch.bool)
    counts = torch.randint(1, 4, (B, n), generator=gen(40)).to(dtype)
    values = randn(B, n, T, dtype=dtype, seed=41)
    check(XOPS.banzhaf_msr.default, (masks[None], counts, values))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("banzhaf", [False, True])
def test_opcheck_exact_values(dtype, banzhaf):
    d = 4
    check(XOPS.exact_values.default, (randn(2, 2**d, 3, dtype=dtype, seed=50), d, banzhaf))


@pytest.mark.parametrize("d", [5, 64, 70])
def test_opcheck_pack_unpack(d):
    masks = rand_masks(9, d, seed=60)
    check(XOPS.pack_masks.default, (masks,))
    keys = XOPS.pack_masks(masks)
    check(XOPS.unpack_masks.default, (keys, d))


# --------------------------------------------------------------------------------- paths
def _path_args(dtype, shared, grad=False):
    B, K, J, E = 2, 3, 4, 5
    x = randn(B, E, dtype=dtype, seed=70)
    base = randn(1 if shared else B, K, E, dtype=dtype, seed=71)
    alphas = torch.linspace(0, 1, J, dtype=dtype)
    if grad:
        x.requires_grad_(True)
        base.requires_grad_(True)
    return x, base, alphas


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("shared", [False, True])
def test_opcheck_path_points(dtype, shared):
    check(XOPS.path_points.default, _path_args(dtype, shared))


@pytest.mark.parametrize("shared", [False, True])
def test_opcheck_path_points_grad(shared):
    args = _path_args(F64, shared, grad=True)
    check(XOPS.path_points.default, args)
    torch.autograd.gradcheck(lambda x, b: XOPS.path_points(x, b, args[2]), args[:2])


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("reduction", [0, 1, 2])
@pytest.mark.parametrize("multiply", [False, True])
def test_opcheck_path_integrate(dtype, reduction, multiply):
    x, base, alphas = _path_args(dtype, shared=False)
    B, K, E = base.shape
    grads = randn(B, K, alphas.shape[0], E, dtype=dtype, seed=72)
    weights = torch.full_like(alphas, 1.0 / alphas.shape[0])
    check(XOPS.path_integrate.default, (grads, x, base, weights, reduction, multiply))
    path_weights = randn(1, K, E, dtype=dtype, seed=73)
    check(
        XOPS.path_integrate.default,
        (grads, x, base, weights, reduction, multiply, path_weights),
    )


# ------------------------------------------------------------------------- torch.compile
def _pipeline(x, masks, feature_mask, alphas):
    y = ops.mask_apply(x, masks, feature_mask, baselines=0.5)  # [B, S, E]
    p = ops.path_points(x, torch.zeros((1, 1) + x.shape[1:], dtype=x.dtype), alphas)
    return y.sum(1) * 2.0 + p.sum((1, 2))


def _raw_pipeline(x, masks, group, alphas):
    base = torch.full((1, x.shape[1]), 0.5, dtype=x.dtype)
    y = XOPS.mask_apply(x, base, group, masks)
    p = XOPS.path_points(x, torch.zeros((1, 1, x.shape[1]), dtype=x.dtype), alphas)
    return y.sum(1) * 2.0 + p.sum((1, 2))


def _compile_inputs():
    x = randn(3, 6, seed=80)
    masks = rand_masks(4, 3, seed=81)
    fm = torch.tensor([0, 0, 1, 1, 2, 2])
    alphas = torch.linspace(0, 1, 5, dtype=F64)
    return x, masks, fm, alphas


def test_compile_aot_eager():
    torch._dynamo.reset()
    x, masks, fm, alphas = _compile_inputs()
    # The public functions validate data (finite values, id ranges), which breaks the
    # graph; the ops themselves trace as one graph.
    compiled = torch.compile(_pipeline, backend="aot_eager")
    assert torch.equal(compiled(x, masks, fm, alphas), _pipeline(x, masks, fm, alphas))
    raw = torch.compile(_raw_pipeline, backend="aot_eager", fullgraph=True)
    args = (x, masks[None], fm[None], alphas)
    assert torch.equal(raw(*args), _raw_pipeline(*args))
    assert torch.equal(raw(*args), _pipeline(x, masks, fm, alphas))
    # gradients through the compiled graph
    xg = x.clone().requires_grad_(True)
    raw(xg, *args[1:]).sum().backward()
    xe = x.clone().requires_grad_(True)
    _raw_pipeline(xe, *args[1:]).sum().backward()
    assert torch.equal(xg.grad, xe.grad)


@pytest.mark.skipif(
    not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")),
    reason="inductor on the CPU needs a C++ compiler",
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch-internal, from inductor
def test_compile_inductor():
    torch._dynamo.reset()
    x, masks, fm, alphas = _compile_inputs()
    raw = torch.compile(_raw_pipeline, backend="inductor", fullgraph=True)
    args = (x, masks[None], fm[None], alphas)
    # inductor may fuse and reorder the sums: equal to rounding, not bit for bit
    torch.testing.assert_close(raw(*args), _raw_pipeline(*args), rtol=0, atol=1e-12)
    # the ops run inside the compiled graph: a different mask changes the result
    other = (x, ~masks[None], fm[None], alphas)
    assert (raw(*other) - raw(*args)).abs().max() > 1e-3


# ------------------------------------------------------------------------------ fallback
def test_fallback_to_reference(monkeypatch):
    assert xattr.kernels_available()
    x, masks, fm, alphas = _compile_inputs()
    table = randn(2, 2**5, seed=90)
    B, n, d = 2, 20, 5
    wm = rand_masks(n, d, seed=91)
    wv = randn(B, n, seed=92)
    calls = {
        "mask_apply": lambda: ops.mask_apply(x, masks, fm, baselines=0.5),
        "path_points": lambda: ops.path_points(x, torch.zeros(1, 1, 6, dtype=F64), alphas),
        "exact_shapley": lambda: ops.exact_shapley(table),
        "kernel_shap": lambda: ops.kernel_shap_solve(
            wm, torch.ones(n, dtype=F64), wv, wv[:, 0], wv[:, 1]
        ),
        "bernoulli": lambda: ops.bernoulli_masks(7, 9, 0.3, seed=5),
    }
    with_kernels = {k: f() for k, f in calls.items()}

    monkeypatch.setattr(_ext, "_C", None)
    monkeypatch.setattr(_ext, "_warned", set())
    assert not xattr.kernels_available()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        without = {k: f() for k, f in calls.items()}
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1, [str(w.message) for w in caught]
    assert "reference" in str(runtime[0].message)
    for k in calls:
        a, b = with_kernels[k], without[k]
        assert a.dtype == b.dtype and a.shape == b.shape, k
        if a.is_floating_point():
            torch.testing.assert_close(b, a, rtol=0, atol=1e-12, msg=k)
        else:
            assert torch.equal(a, b), k


# --------------------------------------------------------------------------- CUDA
def test_cuda_available_is_a_bool():
    avail = xattr.cuda_available()
    assert isinstance(avail, bool)
    if not torch.cuda.is_available():
        # No GPU visible to torch: xattr cannot have one either.
        assert avail is False
    if _ext.lib() is not None and not _ext.lib().built_with_cuda():
        assert avail is False


def _rand(shape, dtype, seed):
    return torch.randn(shape, generator=gen(seed), dtype=F64).to(dtype)


def _values(masks, B, seed):
    """Values of a smooth game on the coalitions: [B, n]."""
    w = torch.randn((B, masks.shape[-1]), generator=gen(seed), dtype=F64)
    lin = masks.double() @ w.T
    return (lin + 0.3 * torch.tanh(lin) ** 2).T.contiguous()


# ------------------------------------------------------------------ streams
def _poison(t: torch.Tensor) -> torch.Tensor:
    """Values that differ from ``t`` everywhere."""
    return ~t if t.dtype == torch.bool else t + 1


def _stream_cases():
    """name -> (op on CUDA tensors made here, its CPU result)."""
    r = torch.arange(28)
    fm = (r.unsqueeze(1) // 4) * 7 + r.unsqueeze(0) // 4
    x = _rand((4, 1, 28, 28), torch.float32, 26)
    base = _rand((1, 2, 1, 28, 28), torch.float32, 27)
    masks = ops.bernoulli_masks(6, 49, seed=28)
    a, w = ops.quadrature("riemann_middle", 5, dtype=torch.float32)
    grads = _rand((4, 2, 5, 1, 28, 28), torch.float32, 29)
    coal = ops.enumerate_coalitions(6)
    values = _values(coal, 2, 30)
    ones = torch.ones(64, dtype=F64)
    xc, fmc, basec, masksc, ac, wc, gc, coalc, vc, onesc = to(
        "cuda", x, fm, base, masks, a, w, grads, coal, values, ones
    )
    return {
        "bernoulli_masks": (
            lambda: ops.bernoulli_masks(512, 33, seed=31, device="cuda"),
            ops.bernoulli_masks(512, 33, seed=31),
        ),
        "shapley_kernel_masks": (
            lambda: ops.shapley_kernel_masks(512, 33, seed=31, device="cuda"),
            ops.shapley_kernel_masks(512, 33, seed=31),
        ),
        "permutations": (
            lambda: ops.permutations(512, 33, seed=31, device="cuda"),
            ops.permutations(512, 33, seed=31),
        ),
        "mask_apply": (lambda: ops.mask_apply(xc, masksc, fmc), ops.mask_apply(x, masks, fm)),
        "mask_apply_sampled": (
            lambda: ops.mask_apply_sampled(xc, fmc, 6, seed=32),
            ops.mask_apply_sampled(x, fm, 6, seed=32),
        ),
        "path_points": (lambda: ops.path_points(xc, basec, ac), ops.path_points(x, base, a)),
        "path_integrate": (
            lambda: ops.path_integrate(gc, xc, basec, wc),
            ops.path_integrate(grads, x, base, w),
        ),
        "exact_shapley": (lambda: ops.exact_shapley(vc), ops.exact_shapley(values)),
        "kernel_shap_solve": (
            lambda: ops.kernel_shap_solve(coalc, onesc, vc, vc[:, 0], vc[:, -1]),
            ops.kernel_shap_solve(coal, ones, values, values[:, 0], values[:, -1]),
        ),
        "pack_masks": (lambda: ops.pack_masks(coalc), ops.pack_masks(coal)),
    }


STREAM_CASES = (
    "bernoulli_masks",
    "shapley_kernel_masks",
    "permutations",
    "mask_apply",
    "mask_apply_sampled",
    "path_points",
    "path_integrate",
    "exact_shapley",
    "kernel_shap_solve",
    "pack_masks",
)


@pytest.mark.cuda
@pytest.mark.skipif(not HAVE_CUDA, reason="needs a CUDA GPU (xattr.cuda_available())")
@pytest.mark.parametrize("name", STREAM_CASES)
def test_op_runs_on_current_stream(name):
    """The op must run on torch's current stream.

    The default stream is kept busy (a long sleep) while the op is called on
    a side stream (non-blocking, so it does not wait for the default stream)
    and its result is copied on that side stream at once. Had the kernel gone
    to the default stream, it would still be queued behind the sleep and the
    copy would hold the poisoned contents of the reused output block.
    """
    if not hasattr(torch.cuda, "_sleep"):
        pytest.skip("torch.cuda._sleep is not available")
    fn, want = _stream_cases()[name]
    side = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        assert torch.cuda.current_stream() == side
        warm = fn()  # warms caches and the allocator's pool of the side stream
        warm.copy_(_poison(warm))
        del warm  # its block, now poisoned, is reused for the next result
        side.synchronize()
    torch.cuda._sleep(500_000_000)  # on the default stream
    with torch.cuda.stream(side):
        snap = fn().clone()
    side.synchronize()
    torch.cuda.synchronize()
    tol = {"rtol": 1e-6, "atol": 1e-6} if want.dtype == torch.float32 else {}
    if want.dtype.is_floating_point:
        torch.testing.assert_close(snap.cpu(), want, **tol)
    else:
        assert torch.equal(snap.cpu(), want)
