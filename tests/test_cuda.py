"""CUDA kernels against the CPU kernels.

Samplers and selects are integer work or exact copies, so CPU and GPU must
agree bit for bit. Path points are one subtraction, multiplication and
addition per element; the build turns contraction off on both sides
(``-ffp-contract=off``, ``--fmad=false``), so they must agree bit for bit
too. Reductions and solvers (whose GPU code may sum in another order) are
compared within a tolerance.

Every test but the first is marked ``cuda`` and skipped unless
``xattr.cuda_available()`` (a CUDA build of xattr._C and a usable GPU) and
torch can make CUDA tensors.
"""

from __future__ import annotations

import pytest
import torch

import xattr
from xattr import ops

HAVE_CUDA = xattr.cuda_available() and torch.cuda.is_available()
if HAVE_CUDA:
    WHY = ""
elif not xattr.kernels_available():
    WHY = "xattr._C is not loaded"
elif not xattr.cuda_available():
    WHY = "xattr.cuda_available() is False: xattr._C was built without CUDA or sees no GPU"
else:
    WHY = "torch cannot make CUDA tensors (torch.cuda.is_available() is False)"


def needs_cuda(fn):
    return pytest.mark.cuda(pytest.mark.skipif(not HAVE_CUDA, reason=WHY)(fn))


F64 = torch.float64
SEEDS = (0, 1, 2**40 + 7, 2**64 - 1)
DIMS = (1, 2, 3, 7, 64, 65, 130)


def rand(shape, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=F64).to(dtype)


def to_cuda(*ts):
    return tuple(t.cuda() for t in ts)


def close(cuda_out, cpu_out, rtol=1e-10, atol=1e-10):
    assert cuda_out.device.type == "cuda"
    torch.testing.assert_close(cuda_out.cpu(), cpu_out, rtol=rtol, atol=atol)


# ------------------------------------------------------- runs everywhere
def test_cuda_available_is_a_bool():
    avail = xattr.cuda_available()
    assert isinstance(avail, bool)
    if not torch.cuda.is_available():
        # No GPU visible to torch: xattr cannot have one either.
        assert avail is False
    from xattr import _ext

    if _ext.lib() is not None and not _ext.lib().built_with_cuda():
        assert avail is False


# ---------------------------------------------------------------- samplers
SAMPLER_CALLS = {
    "bernoulli": lambda n, d, s, o, dev: ops.bernoulli_masks(
        n, d, 0.3, seed=s, row_offset=o, device=dev
    ),
    "exact_k": lambda n, d, s, o, dev: ops.subset_masks(
        n, d, d // 3, seed=s, row_offset=o, device=dev
    ),
    "shapley": lambda n, d, s, o, dev: ops.shapley_kernel_masks(
        n, max(d, 2), seed=s, row_offset=o, device=dev
    ),
    "shapley_unpaired": lambda n, d, s, o, dev: ops.shapley_kernel_masks(
        n, max(d, 2), seed=s, paired=False, row_offset=o, device=dev
    ),
    "permutation": lambda n, d, s, o, dev: ops.permutations(n, d, seed=s, row_offset=o, device=dev),
    "permutation_antithetic": lambda n, d, s, o, dev: ops.permutations(
        n, d, seed=s, antithetic=True, row_offset=o, device=dev
    ),
}


@needs_cuda
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(SAMPLER_CALLS))
def test_samplers_bitwise(name, seed):
    fn = SAMPLER_CALLS[name]
    for d in DIMS:
        for n, o in ((1, 0), (37, 0), (3000, 5), (9, 2**32 - 4)):
            gpu = fn(n, d, seed, o, "cuda")
            assert gpu.device.type == "cuda"
            assert torch.equal(gpu.cpu(), fn(n, d, seed, o, "cpu")), (name, d, n, o)


@needs_cuda
@pytest.mark.parametrize("seed", SEEDS)
def test_mus_stratified_enumerate_bitwise(seed):
    for d in DIMS:
        for q, lam in ((1, 1.0), (8, 0.375), (10, 0.3), (100, 0.5)):
            gpu = ops.mus_noise(q, d, lam, seed=seed, device="cuda")
            assert torch.equal(gpu.cpu(), ops.mus_noise(q, d, lam, seed=seed)), (q, lam, d)
        for m in (1, 5):
            gpu = ops.stratified_masks(m, d, seed=seed, device="cuda")
            assert torch.equal(gpu.cpu(), ops.stratified_masks(m, d, seed=seed)), (m, d)
    for d in (1, 5, 16):
        gpu = ops.enumerate_coalitions(d, device="cuda")
        assert torch.equal(gpu.cpu(), ops.enumerate_coalitions(d))


# ----------------------------------------------------------------- masking
@needs_cuda
@pytest.mark.parametrize("dtype", (torch.float32, F64, torch.int64))
@pytest.mark.parametrize("per_example", (False, True))
def test_mask_apply_bitwise(dtype, per_example):
    B, S, d = 4, 6, 49
    if dtype == torch.int64:
        x = torch.randint(0, 30000, (B, 1, 28, 28), generator=torch.Generator().manual_seed(1))
        base = torch.full((B, 1, 28, 28), 103) if per_example else 103
    else:
        x = rand((B, 1, 28, 28), dtype, 1)
        base = rand((B, 1, 28, 28), dtype, 2) if per_example else 0.5
    r = torch.arange(28)
    fm = (r.unsqueeze(1) // 4) * 7 + r.unsqueeze(0) // 4
    if per_example:
        fm = torch.stack([fm.roll(b, 1) for b in range(B)]).unsqueeze(1)
        masks = ops.bernoulli_masks(B * S, d, seed=3).reshape(B, S, d)
    else:
        masks = ops.bernoulli_masks(S, d, seed=3)
    cpu = ops.mask_apply(x, masks, fm, base)
    cbase = base.cuda() if torch.is_tensor(base) else base
    gpu = ops.mask_apply(x.cuda(), masks.cuda(), fm.cuda(), cbase)
    assert torch.equal(gpu.cpu(), cpu)


@needs_cuda
@pytest.mark.parametrize("dtype", (torch.float32, F64, torch.int64))
@pytest.mark.parametrize(
    "kw",
    (
        {"p": 0.3},
        {"p": 0.7, "per_example": True},
        {"p": 0.5, "row_offset": 2**32 - 3},
        {"sampler": "mus", "lambda_": 0.375, "q": 8},
        {"sampler": "mus", "lambda_": 0.5, "q": 16, "row_offset": 8},
    ),
)
def test_mask_apply_sampled_bitwise(dtype, kw):
    if dtype == torch.int64:
        x = torch.randint(0, 30000, (3, 2, 40), generator=torch.Generator().manual_seed(4))
        base = 7
    else:
        x = rand((3, 2, 40), dtype, 4)
        base = 0.25
    fm = torch.arange(80).reshape(2, 40) % 13
    cpu = ops.mask_apply_sampled(x, fm, 8, seed=2**64 - 1, baselines=base, **kw)
    gpu = ops.mask_apply_sampled(x.cuda(), fm.cuda(), 8, seed=2**64 - 1, baselines=base, **kw)
    assert torch.equal(gpu.cpu(), cpu)


@needs_cuda
@pytest.mark.parametrize("d", (1024, 1025, 3000))
@pytest.mark.parametrize("per_example", (False, True))
def test_mask_apply_sampled_many_features_bitwise(d, per_example):
    # The CPU kernel buffers a row's bits (stack up to 1024, heap beyond); the
    # GPU draws each element's bit on its own.
    x = rand((2, 2 * d + 3), torch.float32, 5)
    fm = torch.arange(2 * d + 3) % d
    kw = {"p": 0.6, "seed": 9, "per_example": per_example, "baselines": -2.0}
    cpu = ops.mask_apply_sampled(x, fm, 4, **kw)
    gpu = ops.mask_apply_sampled(x.cuda(), fm.cuda(), 4, **kw)
    assert torch.equal(gpu.cpu(), cpu)


@needs_cuda
def test_mask_apply_backward_on_cuda():
    x = rand((2, 6), F64, 5).requires_grad_()
    base = rand((6,), F64, 6).requires_grad_()
    fm = torch.tensor([0, 0, 1, 2, 2, 2])
    masks = ops.bernoulli_masks(4, 3, seed=7)
    g = rand((2, 4, 6), F64, 8)
    cpu = torch.autograd.grad(ops.mask_apply(x, masks, fm, base), (x, base), g)
    xc = x.detach().cuda().requires_grad_()
    bc = base.detach().cuda().requires_grad_()
    gpu = torch.autograd.grad(ops.mask_apply(xc, masks.cuda(), fm.cuda(), bc), (xc, bc), g.cuda())
    for a, b in zip(gpu, cpu):
        close(a, b, rtol=0, atol=1e-14)


@needs_cuda
def test_device_mix_rejected():
    x = rand((2, 6), torch.float32, 9).cuda()
    fm = torch.tensor([0, 0, 1, 1, 2, 2])
    masks = torch.ones(3, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="device"):
        ops.mask_apply(x, masks.cuda(), fm)
    with pytest.raises(ValueError, match="device"):
        ops.mask_apply(x, masks, fm.cuda())
    with pytest.raises(ValueError, match="device"):
        ops.path_points(x, torch.zeros(1, 1, 6), torch.tensor([0.5]).cuda())


# -------------------------------------------------------------------- path
@needs_cuda
@pytest.mark.parametrize("dtype", (torch.float32, F64))
@pytest.mark.parametrize("shared", (True, False))
def test_path_points(dtype, shared):
    B, K = 3, 4
    x = rand((B, 3, 16, 16), dtype, 10)
    base = rand((1 if shared else B, K, 3, 16, 16), dtype, 11)
    a, _ = ops.quadrature("gausslegendre", 20, dtype=dtype)
    cpu = ops.path_points(x, base, a)
    gpu = ops.path_points(*to_cuda(x, base, a))
    # b + a * (x - b) with each operation rounded: no fused multiply-add on
    # either device (CMakeLists.txt), so bitwise. A failure here that vanishes
    # at rtol=1e-6 (float32) / 1e-14 (float64) means contraction came back.
    assert torch.equal(gpu.cpu(), cpu)


@needs_cuda
@pytest.mark.parametrize("dtype", (torch.float32, F64))
@pytest.mark.parametrize("reduction", ("mean", "sum", "none"))
@pytest.mark.parametrize("mbi", (True, False))
def test_path_integrate(dtype, reduction, mbi):
    B, K, J = 3, 2, 16
    x = rand((B, 3, 8, 8), dtype, 12)
    base = rand((B, K, 3, 8, 8), dtype, 13)
    _, w = ops.quadrature("gausslegendre", J, dtype=dtype)
    grads = rand((B, K, J, 3, 8, 8), dtype, 14)
    kw = {"reduction": reduction, "multiply_by_inputs": mbi}
    cpu = ops.path_integrate(grads, x, base, w, **kw)
    gpu = ops.path_integrate(*to_cuda(grads, x, base, w), **kw)
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {}
    close(gpu, cpu, **tol)
    pw = rand((1, K, 3, 8, 8), dtype, 15)  # SIG's per-path element weights
    cpu = ops.path_integrate(grads, x, base, w, path_weights=pw, **kw)
    gpu = ops.path_integrate(*to_cuda(grads, x, base, w), path_weights=pw.cuda(), **kw)
    close(gpu, cpu, **tol)


# -------------------------------------------------------------- coalitions
def _values(masks, B, T, seed):
    """Values of a smooth nonlinear game on the coalitions: [B, n, T]."""
    d = masks.shape[-1]
    w = rand((B, T, d), F64, seed)
    m = masks.double()
    lin = (
        torch.einsum("nd,btd->bnt", m, w)
        if masks.dim() == 2
        else torch.einsum("bnd,btd->bnt", m, w)
    )
    return lin + 0.3 * torch.tanh(lin) ** 2


@needs_cuda
@pytest.mark.parametrize("T", (1, 3))
def test_kernel_shap_solve(T):
    B, n, d = 3, 200, 9
    masks = ops.shapley_kernel_masks(n, d, seed=15)
    values = _values(masks, B, T, 16)
    full = _values(torch.ones(1, d, dtype=torch.bool), B, T, 16)[:, 0]
    empty = torch.zeros(B, T, dtype=F64)
    if T == 1:
        values, full, empty = values[..., 0], full[:, 0], empty[:, 0]
    w = torch.ones(n, dtype=F64)
    cpu = ops.kernel_shap_solve(masks, w, values, empty, full)
    gpu = ops.kernel_shap_solve(*to_cuda(masks, w, values, empty, full))
    close(gpu, cpu)


@needs_cuda
@pytest.mark.parametrize("method", ("ridge", "lasso"))
def test_linear_fit(method):
    B, n, d, T = 2, 300, 10, 2
    masks = ops.bernoulli_masks(B * n, d, seed=17).reshape(B, n, d)
    values = _values(masks, B, T, 18)
    w = rand((B, n), F64, 19).abs() + 0.1
    # tol=0: coordinate descent runs to its fixed point, so a last-bit
    # difference between devices cannot stop one of them a sweep earlier.
    kw = {"alpha": 0.01, "method": method, "max_iter": 2000, "tol": 0.0}
    cpu = ops.linear_fit(masks, w, values, **kw)
    gpu = ops.linear_fit(*to_cuda(masks, w, values), **kw)
    for a, b in zip(gpu, cpu):
        close(a, b)


@needs_cuda
@pytest.mark.parametrize("antithetic", (False, True))
def test_permutation_accumulate(antithetic):
    B, P, d = 3, 40, 7
    perms = ops.permutations(P, d, seed=20, antithetic=antithetic)
    g = torch.Generator().manual_seed(21)
    values = torch.randn(B, P, d + 1, 2, generator=g, dtype=F64).cumsum(2)
    cpu = ops.permutation_accumulate(perms, values, antithetic=antithetic, return_stderr=True)
    gpu = ops.permutation_accumulate(
        *to_cuda(perms, values), antithetic=antithetic, return_stderr=True
    )
    for a, b in zip(gpu, cpu):
        close(a, b)


@needs_cuda
def test_banzhaf_msr():
    B, n, d = 2, 500, 8
    masks = ops.bernoulli_masks(n, d, seed=22)
    uniq, _, counts = ops.unique_coalitions(masks)
    values = _values(uniq, B, 1, 23)[..., 0]
    cpu = ops.banzhaf_msr(uniq, values, counts)
    gpu = ops.banzhaf_msr(*to_cuda(uniq, values, counts))
    close(gpu, cpu)
    close(
        ops.banzhaf_msr(*to_cuda(masks, _values(masks, B, 1, 23)[..., 0])),
        ops.banzhaf_msr(masks, _values(masks, B, 1, 23)[..., 0]),
    )


@needs_cuda
@pytest.mark.parametrize("d", (1, 4, 12))
def test_exact_shapley_and_banzhaf(d):
    masks = ops.enumerate_coalitions(d)
    values = _values(masks, 2, 2, 24)
    close(ops.exact_shapley(values.cuda()), ops.exact_shapley(values))
    close(ops.exact_banzhaf(values.cuda()), ops.exact_banzhaf(values))
    close(ops.exact_shapley(values[..., 0].cuda()), ops.exact_shapley(values[..., 0]))


@needs_cuda
@pytest.mark.parametrize("d", (1, 63, 64, 65, 130))
def test_pack_unpack_unique(d):
    masks = ops.bernoulli_masks(400, d, seed=25)
    masks = torch.cat([masks, masks[:50]])  # duplicates
    keys = ops.pack_masks(masks)
    gkeys = ops.pack_masks(masks.cuda())
    assert torch.equal(gkeys.cpu(), keys)
    assert torch.equal(ops.unpack_masks(gkeys, d).cpu(), masks)
    u, inv, cnt = ops.unique_coalitions(masks)
    gu, ginv, gcnt = ops.unique_coalitions(masks.cuda())
    assert torch.equal(gu.cpu(), u) and torch.equal(ginv.cpu(), inv)
    assert torch.equal(gcnt.cpu(), cnt)


# ------------------------------------------------------------------ streams
def _poison(t: torch.Tensor) -> torch.Tensor:
    """Values that differ from ``t`` everywhere."""
    return ~t if t.dtype == torch.bool else t + 1


def _stream_cases():
    """name -> (op on CUDA tensors made here, its CPU result)."""
    r = torch.arange(28)
    fm = (r.unsqueeze(1) // 4) * 7 + r.unsqueeze(0) // 4
    x = rand((4, 1, 28, 28), torch.float32, 26)
    base = rand((1, 2, 1, 28, 28), torch.float32, 27)
    masks = ops.bernoulli_masks(6, 49, seed=28)
    a, w = ops.quadrature("riemann_middle", 5, dtype=torch.float32)
    grads = rand((4, 2, 5, 1, 28, 28), torch.float32, 29)
    coal = ops.enumerate_coalitions(6)
    values = _values(coal, 2, 1, 30)[..., 0]
    ones = torch.ones(64, dtype=F64)
    xc, fmc, basec, masksc, ac, wc, gc, coalc, vc, onesc = to_cuda(
        x, fm, base, masks, a, w, grads, coal, values, ones
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


@needs_cuda
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
