"""Masking: mask_apply and the fused mask_apply_sampled against the reference
and against the select they promise (exact), their gradients, chunking,
thread-count invariance and input checks."""

from __future__ import annotations

import pytest
import torch
from _devices import (  # noqa: F401
    DEVICES,
    HAVE_CUDA,
    assert_same_bits,
    cpu_launch,
    on,
    pytest_generate_tests,
    to,
)

import xattr
from xattr import ops
from xattr.ops import _reference

FLOAT_DTYPES = (torch.float32, torch.float64)


# ------------------------------------------------------------------ helpers
def patches(h: int, w: int, ph: int, pw: int) -> torch.Tensor:
    """Group ids of (ph x pw) patches of an h x w image, row-major: int64 [h, w]."""
    r = torch.arange(h).unsqueeze(1) // ph
    c = torch.arange(w).unsqueeze(0) // pw
    return r * (w // pw) + c


def expected(x, masks, feature_mask, base):
    """Independent formula: out[b, s] = where(masks[b, s][feature_mask[b]], x[b], base[b])."""
    B = x.shape[0]
    m3 = masks if masks.dim() == 3 else masks.unsqueeze(0).expand(B, -1, -1)
    fm = feature_mask.expand(x.shape)
    bt = torch.as_tensor(base, dtype=x.dtype).expand(x.shape)
    out = torch.empty((B, m3.shape[1]) + tuple(x.shape[1:]), dtype=x.dtype)
    for b in range(B):
        for s in range(m3.shape[1]):
            out[b, s] = torch.where(m3[b, s][fm[b]], x[b], bt[b])
    return out


def _rows(t, x):
    """[1, E] when ``t`` is shared by the batch (shaped like one example, or with a
    leading 1), else [B, E]: the forms the op hands to the kernel."""
    t = torch.as_tensor(t)
    if t.dim() == x.dim() and t.shape[0] == x.shape[0] != 1:
        return t.expand(x.shape).reshape(x.shape[0], -1)
    return t.expand((1,) + tuple(x.shape[1:])).reshape(1, -1)


def flat_ref(x, masks, feature_mask, base):
    """_reference.mask_apply on the flattened forms the op works on."""
    B = x.shape[0]
    m3 = masks.unsqueeze(0) if masks.dim() == 2 else masks
    b2 = _rows(torch.as_tensor(base, dtype=x.dtype), x)
    out = _reference.mask_apply(x.reshape(B, -1), b2, _rows(feature_mask, x), m3)
    return out.reshape((B, m3.shape[1]) + tuple(x.shape[1:]))


def make_x(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.int64:
        return torch.randint(0, 30000, shape, generator=g)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


# --------------------------------------------------------- vs the reference
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_mnist_patches(dtype):
    x = make_x((8, 1, 28, 28), dtype)
    fm = patches(28, 28, 4, 4).unsqueeze(0)  # [1, 28, 28], 49 groups
    assert int(fm.max()) == 48
    masks = ops.bernoulli_masks(6, 49, 0.5, seed=1)
    base = make_x((1, 28, 28), dtype, seed=2)
    out = ops.mask_apply(x, masks, fm, base)
    assert out.shape == (8, 6, 1, 28, 28) and out.dtype == dtype
    assert torch.equal(out, flat_ref(x, masks, fm, base))
    assert torch.equal(out, expected(x, masks, fm, base))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_rgb_groups_shared_across_channels(dtype):
    x = make_x((4, 3, 64, 64), dtype)
    fm = patches(64, 64, 8, 8)  # [64, 64] broadcast over channels, 64 groups
    masks = ops.bernoulli_masks(5, 64, 0.3, seed=3)
    out = ops.mask_apply(x, masks, fm, 0.5)
    assert out.shape == (4, 5, 3, 64, 64)
    assert torch.equal(out, flat_ref(x, masks, fm, 0.5))
    assert torch.equal(out, expected(x, masks, fm, 0.5))
    # The three channels of a pixel are kept or dropped together.
    kept = out != 0.5
    assert torch.equal(kept[:, :, 0], kept[:, :, 1]) and torch.equal(kept[:, :, 0], kept[:, :, 2])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_per_example_feature_mask_masks_and_baselines(dtype):
    B, d = 3, 10
    x = make_x((B, 2, 5), dtype)
    g = torch.Generator().manual_seed(4)
    fm = torch.stack([torch.randperm(d, generator=g).reshape(2, 5) for _ in range(B)])
    masks = ops.bernoulli_masks(B * 4, d, 0.5, seed=5).reshape(B, 4, d)
    base = make_x((B, 2, 5), dtype, seed=6)
    out = ops.mask_apply(x, masks, fm, base)
    assert out.shape == (B, 4, 2, 5)
    assert torch.equal(out, flat_ref(x, masks, fm, base))
    assert torch.equal(out, expected(x, masks, fm, base))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shared", ("masks", "feature_mask", "baselines"))
def test_mixed_sharing(dtype, shared):
    B, d = 4, 6
    x = make_x((B, 12), dtype)
    fm = (
        torch.arange(12) // 2
        if shared == "feature_mask"
        else torch.stack([torch.arange(12).roll(b) // 2 for b in range(B)])
    )
    masks = (
        ops.bernoulli_masks(7, d, seed=8)
        if shared == "masks"
        else ops.bernoulli_masks(B * 7, d, seed=8).reshape(B, 7, d)
    )
    base = make_x((12,), dtype, 9) if shared == "baselines" else make_x((B, 12), dtype, 9)
    out = ops.mask_apply(x, masks, fm, base)
    assert torch.equal(out, flat_ref(x, masks, fm, base))
    assert torch.equal(out, expected(x, masks, fm, base))


def test_token_ids():
    x = make_x((4, 16), torch.int64)
    fm = torch.arange(16) // 2  # 8 features of two tokens
    masks = ops.bernoulli_masks(5, 8, seed=10)
    out = ops.mask_apply(x, masks, fm, 103)  # [MASK] id
    assert out.dtype == torch.int64
    assert torch.equal(out, flat_ref(x, masks, fm, 103))
    assert torch.equal(out, expected(x, masks, fm, 103))
    assert set(out[~masks[:, fm].unsqueeze(0).expand(4, 5, 16)].tolist()) == {103}
    # Per-example replacement ids.
    base = torch.randint(0, 5, (4, 16), generator=torch.Generator().manual_seed(1))
    out = ops.mask_apply(x, masks, fm, base)
    assert torch.equal(out, expected(x, masks, fm, base))
    # Ids beyond float precision survive untouched.
    big = torch.full((1, 16), 2**62 + 1)
    assert torch.equal(
        ops.mask_apply(big, masks, fm, 0)[0, masks[:, fm]], big.expand(5, 16)[masks[:, fm]]
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + (torch.int64,))
def test_select_is_exact(dtype):
    x = make_x((3, 40), dtype, 11)
    base = make_x((3, 40), dtype, 12)
    fm = torch.arange(40) % 9
    masks = ops.bernoulli_masks(6, 9, seed=13)
    out = ops.mask_apply(x, masks, fm, base)
    bits = masks[:, fm].unsqueeze(0).expand(3, 6, 40)
    xs, bs = x.unsqueeze(1).expand_as(out), base.unsqueeze(1).expand_as(out)
    assert torch.equal(out[bits], xs[bits])
    assert torch.equal(out[~bits], bs[~bits])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + (torch.int64,))
def test_identity_masks(dtype):
    x = make_x((2, 3, 4), dtype)
    base = make_x((3, 4), dtype, 1)
    fm = torch.arange(12).reshape(3, 4) % 5
    on = ops.mask_apply(x, torch.ones(2, 5, dtype=torch.bool), fm, base)
    off = ops.mask_apply(x, torch.zeros(2, 5, dtype=torch.bool), fm, base)
    assert torch.equal(on, x.unsqueeze(1).expand(2, 2, 3, 4))
    assert torch.equal(off, base.expand(2, 2, 3, 4))


def test_multiplicative_smoothing_is_base_zero():
    x = make_x((2, 10), torch.float64)
    fm = torch.arange(10)
    masks = ops.bernoulli_masks(4, 10, seed=14)
    out = ops.mask_apply(x, masks, fm)
    assert torch.equal(out, x.unsqueeze(1) * masks.unsqueeze(0).double())
    assert torch.equal(out, ops.mask_apply(x, masks, fm, torch.zeros(10, dtype=torch.float64)))


def test_masks_with_unused_features_and_empty():
    x = make_x((2, 6), torch.float64)
    fm = torch.tensor([0, 0, 1, 1, 3, 3])  # feature 2 unused, d = 5 from masks
    masks = ops.bernoulli_masks(3, 5, seed=15)
    assert torch.equal(ops.mask_apply(x, masks, fm), expected(x, masks, fm, 0.0))
    empty = ops.mask_apply(x, torch.zeros(0, 5, dtype=torch.bool), fm)
    assert empty.shape == (2, 0, 6)


def test_thread_count_invariance(threads):
    x = make_x((8, 1, 28, 28), torch.float32)
    fm = patches(28, 28, 4, 4)
    masks = ops.bernoulli_masks(40, 49, seed=16)
    threads(1)
    a = ops.mask_apply(x, masks, fm, 0.1)
    b = ops.mask_apply_sampled(x, fm, 40, seed=16, baselines=0.1)
    threads(2)
    assert torch.equal(a, ops.mask_apply(x, masks, fm, 0.1))
    assert torch.equal(b, ops.mask_apply_sampled(x, fm, 40, seed=16, baselines=0.1))
    assert torch.equal(a, b)


# ------------------------------------------------------------ fused sampler
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + (torch.int64,))
@pytest.mark.parametrize("p", (0.1, 0.5, 0.9))
def test_sampled_bernoulli_shared_rows(dtype, p):
    x = make_x((8, 1, 28, 28), dtype)
    fm = patches(28, 28, 4, 4)
    base = 7 if dtype == torch.int64 else 0.25
    out = ops.mask_apply_sampled(x, fm, 12, p=p, seed=2**64 - 1, baselines=base)
    masks = ops.bernoulli_masks(12, 49, p, seed=2**64 - 1)
    assert torch.equal(out, ops.mask_apply(x, masks, fm, base))
    assert torch.equal(out, flat_ref(x, masks, fm, base))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sampled_bernoulli_per_example_rows(dtype):
    B, S, d = 5, 6, 49
    x = make_x((B, 1, 28, 28), dtype)
    fm = patches(28, 28, 4, 4)
    base = make_x((B, 1, 28, 28), dtype, 3)
    out = ops.mask_apply_sampled(x, fm, S, seed=42, baselines=base, per_example=True)
    masks = ops.bernoulli_masks(B * S, d, seed=42).reshape(B, S, d)  # row b * S + s
    assert torch.equal(out, ops.mask_apply(x, masks, fm, base))
    shared = ops.mask_apply_sampled(x, fm, S, seed=42, baselines=base)
    assert not torch.equal(out, shared)


def test_sampled_n_features_larger_than_ids():
    x = make_x((2, 8), torch.float64)
    fm = torch.arange(8) // 2  # ids 0..3, d = 9
    out = ops.mask_apply_sampled(x, fm, 5, seed=3, n_features=9)
    assert torch.equal(out, ops.mask_apply(x, ops.bernoulli_masks(5, 9, seed=3), fm))


@pytest.mark.parametrize("q,lam", ((8, 0.5), (10, 0.3), (16, 1.0), (5, 0.0)))
def test_sampled_mus_rows(q, lam):
    x = make_x((3, 2, 10), torch.float64)
    fm = torch.arange(20).reshape(2, 10) % 7
    out = ops.mask_apply_sampled(x, fm, q, sampler="mus", lambda_=lam, q=q, seed=77)
    noise = ops.mus_noise(q, 7, lam, seed=77)
    assert torch.equal(out, ops.mask_apply(x, noise, fm))
    # Every feature is kept in exactly lambda * q of the q copies.
    kept = (out != 0).sum(1)
    assert (kept == round(lam * q)).all()


def test_sampled_mus_chunks():
    q, lam = 12, 0.25
    x = make_x((2, 9), torch.float32)
    fm = torch.arange(9)
    whole = ops.mask_apply_sampled(x, fm, q, sampler="mus", lambda_=lam, q=q, seed=5)
    parts = [
        ops.mask_apply_sampled(x, fm, n, sampler="mus", lambda_=lam, q=q, seed=5, row_offset=o)
        for o, n in ((0, 5), (5, 1), (6, 6))
    ]
    assert torch.equal(torch.cat(parts, 1), whole)
    assert torch.equal(whole, ops.mask_apply(x, ops.mus_noise(q, 9, lam, seed=5), fm))


def test_sampled_bernoulli_chunks_over_samples():
    x = make_x((4, 30), torch.float64)
    fm = torch.arange(30) // 3
    whole = ops.mask_apply_sampled(x, fm, 50, p=0.4, seed=9)
    parts = [
        ops.mask_apply_sampled(x, fm, n, p=0.4, seed=9, row_offset=o)
        for o, n in ((0, 7), (7, 1), (8, 42))
    ]
    assert torch.equal(torch.cat(parts, 1), whole)
    # Rows 2^32 + s are not rows s.
    assert not torch.equal(ops.mask_apply_sampled(x, fm, 8, seed=9, row_offset=2**32), whole[:, :8])


def test_sampled_per_example_chunks_over_batch():
    # per_example rows are row_offset + b * S + s: a chunk of the batch starting
    # at example b0 uses row_offset = b0 * S.
    B, S = 6, 4
    x = make_x((B, 12), torch.float64)
    fm = torch.arange(12) // 2
    whole = ops.mask_apply_sampled(x, fm, S, seed=31, per_example=True)
    parts = [
        ops.mask_apply_sampled(x[b0:b1], fm, S, seed=31, per_example=True, row_offset=b0 * S)
        for b0, b1 in ((0, 1), (1, 4), (4, 6))
    ]
    assert torch.equal(torch.cat(parts, 0), whole)


@pytest.mark.parametrize("per_example", (False, True))
def test_sampled_vs_reference(per_example):
    x = make_x((3, 20), torch.float32)
    fm = torch.arange(20) % 6
    base = make_x((3, 20), torch.float32, 1)
    out = ops.mask_apply_sampled(
        x, fm, 9, p=0.7, seed=2**40 + 7, baselines=base, per_example=per_example, row_offset=3
    )
    want = _reference.mask_apply_sampled(
        x,
        base,
        fm.unsqueeze(0),
        6,
        9,
        "bernoulli",
        2**40 + 7,
        p=0.7,
        row_offset=3,
        per_example=per_example,
    )
    assert torch.equal(out, want)


def test_sampled_seed_none_follows_manual_seed():
    x = make_x((2, 8), torch.float64)
    fm = torch.arange(8)
    torch.manual_seed(3)
    a = ops.mask_apply_sampled(x, fm, 16)
    torch.manual_seed(3)
    b = ops.mask_apply_sampled(x, fm, 16)
    assert torch.equal(a, b)


# ----------------------------------------------------------------- autograd
def small_case(per_example_base: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    shape = (2, 6) if per_example_base else (6,)
    base = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    fm = torch.tensor([0, 0, 1, 2, 2, 2])
    return x, base, fm


@pytest.mark.parametrize("per_example_base", (False, True))
@pytest.mark.parametrize("per_example_masks", (False, True))
def test_gradcheck_mask_apply(per_example_base, per_example_masks):
    x, base, fm = small_case(per_example_base)
    masks = ops.bernoulli_masks(8, 3, seed=1)
    if per_example_masks:
        masks = masks.reshape(2, 4, 3)
    assert torch.autograd.gradcheck(lambda a, b: ops.mask_apply(a, masks, fm, b), (x, base))
    assert torch.autograd.gradgradcheck(lambda a, b: ops.mask_apply(a, masks, fm, b), (x, base))


@pytest.mark.parametrize("per_example_base", (False, True))
@pytest.mark.parametrize(
    "kw",
    ({"per_example": False}, {"per_example": True}, {"sampler": "mus", "lambda_": 0.5, "q": 4}),
)
def test_gradcheck_mask_apply_sampled(per_example_base, kw):
    x, base, fm = small_case(per_example_base, 1)
    fn = lambda a, b: ops.mask_apply_sampled(a, fm, 4, seed=5, baselines=b, **kw)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, base))


@pytest.mark.parametrize("sampled", (False, True))
def test_gradient_values(sampled):
    x, base, fm = small_case(False, 2)
    masks = ops.bernoulli_masks(5, 3, seed=6)
    if sampled:
        out = ops.mask_apply_sampled(x, fm, 5, seed=6, baselines=base)
    else:
        out = ops.mask_apply(x, masks, fm, base)
    g = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    gx, gb = torch.autograd.grad(out, (x, base), g)
    bits = masks[:, fm].unsqueeze(0).expand(2, 5, 6).double()  # [B, S, E]
    assert torch.allclose(gx, (g * bits).sum(1), rtol=0, atol=1e-14)
    assert torch.allclose(gb, (g * (1 - bits)).sum((0, 1)), rtol=0, atol=1e-14)


def test_gradient_only_inputs():
    x = make_x((2, 4), torch.float64).requires_grad_()
    masks = torch.tensor([[True, False], [True, True]])
    out = ops.mask_apply(x, masks, torch.tensor([0, 1, 0, 1]), 3.0)
    (gx,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(gx, torch.tensor([[2.0, 1.0, 2.0, 1.0]] * 2, dtype=torch.float64))


# --------------------------------------------------------------- bad inputs
def _x():
    return make_x((2, 6), torch.float32)


FM = torch.tensor([0, 0, 1, 1, 2, 2])
M = torch.ones(3, 3, dtype=torch.bool)

BAD = [
    ("ids >= d", lambda: ops.mask_apply(_x(), M, torch.tensor([0, 0, 1, 1, 2, 3])), ValueError),
    ("negative id", lambda: ops.mask_apply(_x(), M, torch.tensor([0, 0, 1, 1, 2, -1])), ValueError),
    ("fm shape", lambda: ops.mask_apply(_x(), M, torch.zeros(5, dtype=torch.int64)), ValueError),
    ("fm batch", lambda: ops.mask_apply(_x(), M, torch.zeros(3, 6, dtype=torch.int64)), ValueError),
    ("float fm", lambda: ops.mask_apply(_x(), M, FM.float()), TypeError),
    ("bool fm", lambda: ops.mask_apply(_x(), M, FM.bool()), TypeError),
    ("fm not tensor", lambda: ops.mask_apply(_x(), M, [0, 0, 1, 1, 2, 2]), TypeError),
    ("masks not bool", lambda: ops.mask_apply(_x(), M.int(), FM), TypeError),
    ("masks 1-d", lambda: ops.mask_apply(_x(), M[0], FM), ValueError),
    ("masks batch", lambda: ops.mask_apply(_x(), M.expand(3, 3, 3), FM), ValueError),
    (
        "NaN inputs",
        lambda: ops.mask_apply(_x().index_fill(1, torch.tensor([2]), float("nan")), M, FM),
        ValueError,
    ),
    (
        "inf inputs",
        lambda: ops.mask_apply(_x().index_fill(1, torch.tensor([2]), float("inf")), M, FM),
        ValueError,
    ),
    ("NaN baselines", lambda: ops.mask_apply(_x(), M, FM, float("nan")), ValueError),
    (
        "NaN baseline tensor",
        lambda: ops.mask_apply(_x(), M, FM, torch.tensor([0.0, 0, 0, float("nan"), 0, 0])),
        ValueError,
    ),
    ("baselines shape", lambda: ops.mask_apply(_x(), M, FM, torch.zeros(4)), ValueError),
    ("baselines type", lambda: ops.mask_apply(_x(), M, FM, "zero"), TypeError),
    ("bool baselines", lambda: ops.mask_apply(_x(), M, FM, True), TypeError),
    (
        "token float base tensor",
        lambda: ops.mask_apply(torch.ones(2, 6, dtype=torch.int64), M, FM, torch.zeros(6)),
        TypeError,
    ),
    (
        "token float base",
        lambda: ops.mask_apply(torch.ones(2, 6, dtype=torch.int64), M, FM, 0.5),
        TypeError,
    ),
    (
        "float int base tensor",
        lambda: ops.mask_apply(_x(), M, FM, torch.zeros(6, dtype=torch.int64)),
        TypeError,
    ),
    ("int32 inputs", lambda: ops.mask_apply(_x().int(), M, FM, 0), TypeError),
    ("1-d inputs", lambda: ops.mask_apply(torch.ones(6), M, FM), ValueError),
    (
        "mus without lambda",
        lambda: ops.mask_apply_sampled(_x(), FM, 4, sampler="mus", q=4),
        ValueError,
    ),
    (
        "mus without q",
        lambda: ops.mask_apply_sampled(_x(), FM, 4, sampler="mus", lambda_=0.5),
        ValueError,
    ),
    (
        "mus lambda",
        lambda: ops.mask_apply_sampled(_x(), FM, 4, sampler="mus", lambda_=0.3, q=4),
        ValueError,
    ),
    (
        "mus rows",
        lambda: ops.mask_apply_sampled(_x(), FM, 3, sampler="mus", lambda_=0.5, q=4, row_offset=2),
        ValueError,
    ),
    (
        "mus per example",
        lambda: ops.mask_apply_sampled(
            _x(), FM, 4, sampler="mus", lambda_=0.5, q=4, per_example=True
        ),
        ValueError,
    ),
    ("sampler", lambda: ops.mask_apply_sampled(_x(), FM, 4, sampler="shapley"), ValueError),
    ("p", lambda: ops.mask_apply_sampled(_x(), FM, 4, p=1.5), ValueError),
    ("n_samples", lambda: ops.mask_apply_sampled(_x(), FM, -1), ValueError),
    ("row_offset", lambda: ops.mask_apply_sampled(_x(), FM, 2, row_offset=-1), ValueError),
    ("n_features", lambda: ops.mask_apply_sampled(_x(), FM, 2, n_features=2), ValueError),
    ("seed", lambda: ops.mask_apply_sampled(_x(), FM, 2, seed=2**64), ValueError),
    ("seed type", lambda: ops.mask_apply_sampled(_x(), FM, 2, seed=0.0), TypeError),
    ("sampled negative id", lambda: ops.mask_apply_sampled(_x(), -FM, 2), ValueError),
]


@pytest.mark.parametrize("call,exc", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_inputs(call, exc):
    with pytest.raises(exc):
        call()


def test_error_messages_name_the_argument():
    with pytest.raises(ValueError, match="feature_mask"):
        ops.mask_apply(_x(), M, torch.tensor([0, 0, 1, 1, 2, 3]))
    with pytest.raises(ValueError, match="feature_mask"):
        ops.mask_apply(_x(), M, torch.tensor([0, 0, 1, 1, 2, -1]))
    with pytest.raises(ValueError, match="masks"):
        ops.mask_apply(_x(), M.expand(3, 3, 3), FM)
    with pytest.raises(ValueError, match="baselines"):
        ops.mask_apply(_x(), M, FM, float("nan"))
    with pytest.raises(ValueError, match="inputs"):
        ops.mask_apply(_x().index_fill(1, torch.tensor([2]), float("nan")), M, FM)


@pytest.mark.cuda
@pytest.mark.skipif(not HAVE_CUDA, reason="needs a CUDA GPU (xattr.cuda_available())")
def test_device_mix():
    x = _x().cuda()
    with pytest.raises(ValueError, match="device"):
        ops.mask_apply(x, M, FM)
    with pytest.raises(ValueError, match="device"):
        ops.mask_apply(x, M.cuda(), FM, torch.zeros(6))
    with pytest.raises(ValueError, match="device"):
        ops.mask_apply(x, M, FM.cuda())
    with pytest.raises(ValueError, match="device"):
        ops.path_points(x, torch.zeros(1, 1, 6), torch.tensor([0.5]).cuda())


# ------------------------------------------------------------- every device
# A select copies bits and the fused samplers are integer work: every device (the
# CPU's fast path and element launch, CUDA) gives the CPU's and the reference's bits.
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + (torch.int64,))
@pytest.mark.parametrize("per_example", (False, True))
def test_mask_apply_on_every_device(dtype, per_example, device):
    B, S, d = 4, 6, 49
    x = make_x((B, 1, 28, 28), dtype, 1)
    if dtype == torch.int64:
        base = torch.full((B, 1, 28, 28), 103) if per_example else 103
    else:
        base = make_x((B, 1, 28, 28), dtype, 2) if per_example else 0.5
    fm = patches(28, 28, 4, 4)
    if per_example:
        fm = torch.stack([fm.roll(b, 1) for b in range(B)]).unsqueeze(1)
        masks = ops.bernoulli_masks(B * S, d, seed=3).reshape(B, S, d)
    else:
        masks = ops.bernoulli_masks(S, d, seed=3)
    want = ops.mask_apply(x, masks, fm, base)
    with on(device) as dev:
        got = ops.mask_apply(*to(dev, x, masks, fm, base))
    assert got.device.type == dev
    assert_same_bits(got, want)
    assert_same_bits(got, flat_ref(x, masks, fm, base))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + (torch.int64,))
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
def test_mask_apply_sampled_on_every_device(dtype, kw, device):
    x = make_x((3, 2, 40), dtype, 4)
    base = 7 if dtype == torch.int64 else 0.25
    fm = torch.arange(80).reshape(2, 40) % 13
    want = ops.mask_apply_sampled(x, fm, 8, seed=2**64 - 1, baselines=base, **kw)
    with on(device) as dev:
        got = ops.mask_apply_sampled(*to(dev, x, fm), 8, seed=2**64 - 1, baselines=base, **kw)
    assert_same_bits(got, want)
    # The same draws as the sampler's masks, applied by the reference.
    if kw.get("sampler") == "mus":
        o = kw.get("row_offset", 0)
        masks = ops.mus_noise(kw["q"], 13, kw["lambda_"], seed=2**64 - 1)[o : o + 8]
    else:
        rows = 3 * 8 if kw.get("per_example") else 8
        masks = ops.bernoulli_masks(
            rows, 13, kw["p"], seed=2**64 - 1, row_offset=kw.get("row_offset", 0)
        )
        masks = masks.reshape(3, 8, 13) if kw.get("per_example") else masks
    assert_same_bits(got, flat_ref(x, masks, fm, base))


@pytest.mark.parametrize("device", DEVICES)
def test_mask_apply_backward_on_every_device(device):
    x = make_x((2, 6), torch.float64, 5).requires_grad_()
    base = make_x((6,), torch.float64, 6).requires_grad_()
    fm = torch.tensor([0, 0, 1, 2, 2, 2])
    masks = ops.bernoulli_masks(4, 3, seed=7)
    g = make_x((2, 4, 6), torch.float64, 8)
    want = torch.autograd.grad(ops.mask_apply(x, masks, fm, base), (x, base), g)
    with on(device) as dev:
        xd = x.detach().to(dev).requires_grad_()
        bd = base.detach().to(dev).requires_grad_()
        got = torch.autograd.grad(ops.mask_apply(xd, *to(dev, masks, fm), bd), (xd, bd), g.to(dev))
    # The gradients are sums over the masks' rows (torch's reductions): to rounding.
    for a, b in zip(got, want):
        torch.testing.assert_close(a.cpu(), b, rtol=0, atol=1e-14)


# ----------------------------------------------------------------- layouts
def test_non_contiguous_inputs():
    xt = make_x((12, 3), torch.float64).T  # [3, 12], not contiguous
    fm = (torch.arange(24).reshape(2, 12) // 3)[::2]  # [1, 12] view with a stride
    base = make_x((12, 2), torch.float64, 1)[:, 0]  # strided [12]
    masks = ops.bernoulli_masks(10, 4, seed=17).T.contiguous().T  # [10, 4], column-major
    assert not (xt.is_contiguous() or base.is_contiguous() or masks.is_contiguous())
    out = ops.mask_apply(xt, masks, fm, base)
    want = ops.mask_apply(xt.contiguous(), masks.contiguous(), fm.contiguous(), base.contiguous())
    assert torch.equal(out, want)
    assert torch.equal(out, expected(xt, masks, fm, base))
    sampled = ops.mask_apply_sampled(xt, fm, 5, seed=2, baselines=base)
    assert torch.equal(
        sampled, ops.mask_apply_sampled(xt.contiguous(), fm, 5, seed=2, baselines=base.contiguous())
    )


@pytest.mark.parametrize("sampled", (False, True))
def test_empty_batch(sampled):
    x = torch.zeros(0, 6)
    fm = torch.arange(6) // 2
    if sampled:
        out = ops.mask_apply_sampled(x, fm, 4, seed=0)
    else:
        out = ops.mask_apply(x, torch.ones(4, 3, dtype=torch.bool), fm)
    assert out.shape == (0, 4, 6)


# ------------------------------------------------- many features, long rows
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("d", (1023, 1024, 1025, 3000))
@pytest.mark.parametrize("per_example", (False, True))
def test_sampled_many_features(d, per_example, device):
    # The CPU's fast path draws a row's d bits into a buffer (on the stack up to
    # 1024 features, on the heap beyond): both sides of the boundary. The element
    # launch and the GPU draw each element's bit on its own.
    B, S, E = 2, 3, 2 * d + 5
    x = make_x((B, E), torch.float64, 18)
    g = torch.Generator().manual_seed(19)
    fm = torch.randint(0, d, (E,), generator=g)
    fm[:d] = torch.arange(d)  # every feature used
    with on(device) as dev:
        kw = {"p": 0.4, "seed": 20, "per_example": per_example, "baselines": -1.0}
        out = ops.mask_apply_sampled(*to(dev, x, fm), S, **kw).cpu()
    rows = B * S if per_example else S
    masks = ops.bernoulli_masks(rows, d, 0.4, seed=20)
    masks = masks.reshape(B, S, d) if per_example else masks
    assert torch.equal(out, ops.mask_apply(x, masks, fm, -1.0))
    assert torch.equal(out, expected(x, masks, fm, -1.0))


@pytest.mark.parametrize("d", (1024, 1500))
def test_sampled_mus_many_features(d):
    x = make_x((2, d), torch.float32, 21)
    fm = torch.arange(d).flip(0)
    out = ops.mask_apply_sampled(x, fm, 6, sampler="mus", lambda_=0.5, q=8, seed=3, row_offset=2)
    noise = ops.mus_noise(8, d, 0.5, seed=3)[2:]
    assert torch.equal(out, ops.mask_apply(x, noise, fm))


@pytest.mark.parametrize("sampled", (False, True))
def test_long_rows_thread_invariance(sampled, threads):
    # Few rows of many elements: the CPU launcher splits rows into column blocks.
    x = make_x((1, 3, 200, 200), torch.float32, 22)
    fm = patches(200, 200, 10, 10)  # 400 features
    masks = ops.bernoulli_masks(2, 400, seed=23)

    def run():
        if sampled:
            return ops.mask_apply_sampled(x, fm, 2, seed=23, baselines=0.5)
        return ops.mask_apply(x, masks, fm, 0.5)

    threads(1)
    one = run()
    threads(2)
    two = run()
    assert torch.equal(one, two)
    assert torch.equal(one, expected(x, masks, fm, 0.5))


# ------------------------------------------------------- issue 11: empties, bytes, rows
@pytest.mark.parametrize("dtype", (torch.float32, torch.float64, torch.int64))
def test_empty_batch_with_per_example_tensors(dtype):
    # A per-example mask, feature mask or baseline of an empty batch is [0, ...]; it used
    # to get batch stride 0 and fail the kernel's size check.
    x = torch.zeros(0, 2, 3, dtype=dtype)
    fm = torch.tensor([[0, 0, 1], [1, 2, 2]])
    masks = torch.ones(0, 5, 3, dtype=torch.bool)
    for kw in ({"baselines": 0}, {"baselines": torch.zeros(0, 2, 3, dtype=dtype)}):
        for f in (fm, fm.expand(0, 2, 3)):
            for m in (masks, torch.ones(5, 3, dtype=torch.bool)):
                out = ops.mask_apply(x, m, f, **kw)
                assert out.shape == (0, 5, 2, 3) and out.dtype == dtype
    out = ops.mask_apply_sampled(x, fm.expand(0, 2, 3), 4, seed=1, per_example=True, baselines=0)
    assert out.shape == (0, 4, 2, 3)
    no_elements = torch.zeros(2, 0, dtype=dtype)
    shared = torch.ones(5, 3, dtype=torch.bool)
    empty_fm = torch.zeros(0, dtype=torch.int64)
    assert ops.mask_apply(no_elements, shared, empty_fm, baselines=0).shape == (2, 5, 0)
    ref = _reference.mask_apply(
        torch.zeros(0, 6, dtype=dtype), torch.zeros(0, 6, dtype=dtype), fm.reshape(1, 6), masks
    )
    assert ref.shape == (0, 5, 6)


def test_mask_bytes_other_than_one_are_present():
    x = torch.randn(3, 6, dtype=torch.float64)
    fm = torch.tensor([0, 0, 1, 1, 2, 2])
    masks = torch.rand(3, 4, 3, generator=torch.Generator().manual_seed(5)) < 0.5
    raw = torch.randint(2, 256, masks.shape, generator=torch.Generator().manual_seed(6))
    odd = (raw.to(torch.uint8) * masks.to(torch.uint8)).view(torch.bool)
    for m, o in ((masks, odd), (masks[0], odd[0])):
        want = expected(x, m, fm, 0.0)
        assert torch.equal(ops.mask_apply(x, o, fm), want)
        assert torch.equal(
            _reference.mask_apply(
                x, torch.zeros(1, 6, dtype=torch.float64), fm[None], o if o.dim() == 3 else o[None]
            ),
            want,
        )


def test_sampled_per_example_row_bound_counts_the_batch():
    # Example b reads rows row_offset + b * S .. : the last one must fit an int64 (it
    # used to overflow, undefined behaviour, when only row_offset + S was bounded).
    x = torch.randn(4, 6, dtype=torch.float64)
    fm = torch.tensor([0, 0, 1, 1, 2, 2])
    top = 2**63 - 1 - 4 * 8
    with pytest.raises(ValueError, match="row_offset"):
        ops.mask_apply_sampled(x, fm, 8, seed=3, per_example=True, row_offset=top + 1)
    got = ops.mask_apply_sampled(x, fm, 8, seed=3, per_example=True, row_offset=top)
    want = _reference.mask_apply_sampled(
        x, torch.zeros(1, 6, dtype=torch.float64), fm[None], 3, 8, "bernoulli", 3,
        row_offset=top, per_example=True,
    )  # fmt: skip
    assert torch.equal(got, want)
    # Shared rows only need row_offset + S below 2^63.
    ops.mask_apply_sampled(x, fm, 8, seed=3, row_offset=2**63 - 1 - 8)


def test_c_mask_apply_bounds_per_example_rows():
    C = xattr._ext.lib()
    x = torch.zeros(4, 6, dtype=torch.float64)
    out = torch.empty(4, 8, 6, dtype=torch.float64)
    g = torch.zeros(1, 6, dtype=torch.int64)
    b = xattr._ext.buf
    kw = dict(
        x=b(x), base=b(x[:1].contiguous()), group=b(g), masks=None, out=b(out), B=4, S=8, E=6,
        d=1, base_bstride=0, group_bstride=0, mask_bstride=0, sampler=0, seed=0,
        bern_threshold=2**31, q=0, L=0, per_example=True, device=-1, stream=0, threads=1,
    )  # fmt: skip
    C.mask_apply(row_offset=2**63 - 1 - 32, **kw)
    with pytest.raises(ValueError, match="^row_offset: row_offset \\+ B \\* S"):
        C.mask_apply(row_offset=2**63 - 1 - 31, **kw)
