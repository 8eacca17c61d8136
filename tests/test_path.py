"""Path integration: quadrature rules against Captum's formulas (written out
here with numpy), path points and the integrated-gradients sum against the
reference and against exact results (completeness), chunking, gradients and
input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _devices import (  # noqa: F401
    DEVICES,
    assert_same_bits,
    cpu_launch,
    held_to_cpu,
    on,
    pytest_generate_tests,
    to,
)

from xattr import ops
from xattr.ops import _reference

METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")
RIEMANN = METHODS[:4]
F64 = torch.float64
# numpy's leggauss takes one Newton step and evaluates P_n' before it, so its
# weights carry relative errors up to ~1e-11 at n = 128 (checked against
# 40-digit mpmath); the kernel's Newton iteration is accurate to ~3e-13 there.
# Nodes agree to 1 ulp. Riemann weights are 1/n (halved at the ends): exact.
WEIGHT_RTOL = dict.fromkeys(METHODS, 1e-15) | {"gausslegendre": 1e-10}


# ------------------------------------------------------------------ helpers
def captum_rule(method: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Captum's approximation_methods (riemann_builders, gauss_legendre_builders)."""
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n)
        return 0.5 * (1 + x), 0.5 * w
    w = np.full(n, 1 / n)
    if method == "riemann_trapezoid":
        w[0] /= 2
        w[-1] /= 2
        return np.linspace(0, 1, n), w
    if method == "riemann_left":
        return np.linspace(0, 1 - 1 / n, n), w
    if method == "riemann_middle":
        return np.linspace(1 / (2 * n), 1 - 1 / (2 * n), n), w
    return np.linspace(1 / n, 1, n), w


def flat(x, baselines):
    """[B, E] and [Bb, K, E] forms, as the ops work on."""
    return x.reshape(x.shape[0], -1), baselines.reshape(baselines.shape[0], baselines.shape[1], -1)


def rand(shape, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=F64).to(dtype)


# --------------------------------------------------------------- quadrature
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", (2, 3, 5, 16, 50, 128))
def test_quadrature_matches_captum(method, n):
    a, w = ops.quadrature(method, n)
    ea, ew = captum_rule(method, n)
    assert a.dtype == F64 and w.dtype == F64 and a.shape == w.shape == (n,)
    np.testing.assert_allclose(a.numpy(), ea, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(w.numpy(), ew, rtol=WEIGHT_RTOL[method], atol=0)


@pytest.mark.parametrize("method", METHODS)
def test_quadrature_weight_sums(method):
    for n in (2, 7, 50):
        _, w = ops.quadrature(method, n)
        want = 1 - 1 / n if method == "riemann_trapezoid" else 1.0
        assert abs(float(w.sum()) - want) < 1e-14, (method, n)


def test_quadrature_docstring_example():
    a, w = ops.quadrature("riemann_middle", 4)
    assert a.tolist() == [0.125, 0.375, 0.625, 0.875]
    assert w.tolist() == [0.25] * 4
    a, w = ops.quadrature("riemann_trapezoid", 3)
    assert a.tolist() == [0.0, 0.5, 1.0]
    assert w.tolist() == [1 / 6, 1 / 3, 1 / 6]


def test_gausslegendre_one_node():
    a, w = ops.quadrature("gausslegendre", 1)
    assert a.tolist() == [0.5] and w.tolist() == [1.0]


@pytest.mark.parametrize("n", (1, 2, 3, 4, 8, 20))
def test_gausslegendre_exact_for_degree_2n_minus_1(n):
    a, w = ops.quadrature("gausslegendre", n)
    for deg in range(2 * n):
        assert abs(float((w * a**deg).sum()) - 1 / (deg + 1)) < 1e-14, (n, deg)
    if n <= 8:  # and not exact one degree higher
        assert abs(float((w * a ** (2 * n)).sum()) - 1 / (2 * n + 1)) > 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_quadrature_dtype_and_device(method):
    a32, w32 = ops.quadrature(method, 9, dtype=torch.float32)
    a64, w64 = ops.quadrature(method, 9)
    assert a32.dtype == w32.dtype == torch.float32
    assert torch.equal(a32, a64.float()) and torch.equal(w32, w64.float())
    a, _ = ops.quadrature(method, 9, device="cpu")
    assert a.device.type == "cpu"


@pytest.mark.parametrize("method", METHODS)
def test_quadrature_vs_reference(method):
    for n in (2, 11, 64):
        a, w = ops.quadrature(method, n)
        ra, rw = _reference.quadrature(method, n)
        np.testing.assert_allclose(a.numpy(), ra, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(w.numpy(), rw, rtol=WEIGHT_RTOL[method], atol=0)


def test_quadrature_bad_inputs():
    for method in RIEMANN:
        for n in (1, 0, -3):
            with pytest.raises(ValueError, match="n_steps"):
                ops.quadrature(method, n)
    for n in (0, -1):
        with pytest.raises(ValueError, match="n_steps"):
            ops.quadrature("gausslegendre", n)
    with pytest.raises(ValueError, match="method"):
        ops.quadrature("simpson", 10)
    with pytest.raises(ValueError, match="method"):
        ops.quadrature("Riemann_Left", 10)
    with pytest.raises(TypeError, match="n_steps"):
        ops.quadrature("gausslegendre", 10.0)
    with pytest.raises(TypeError, match="n_steps"):
        ops.quadrature("gausslegendre", True)


# -------------------------------------------------------------- path points
@pytest.mark.parametrize("dtype", (torch.float32, F64))
@pytest.mark.parametrize("shared", (True, False))
def test_path_points_vs_reference(dtype, shared):
    B, K = 3, 4
    x = rand((B, 2, 5, 5), dtype, 1)
    base = rand((1 if shared else B, K, 2, 5, 5), dtype, 2)
    a, _ = ops.quadrature("gausslegendre", 7, dtype=dtype)
    out = ops.path_points(x, base, a)
    assert out.shape == (B, K, 7, 2, 5, 5) and out.dtype == dtype
    x2, b3 = flat(x, base)
    want = _reference.path_points(x2, b3, a).reshape(out.shape)
    # Same operations in the same order (b + a * (x - b)): bitwise equal.
    assert torch.equal(out, want)
    # Independently: every point is base_k + alpha_j * (x - base_k).
    for k in range(K):
        for j in range(7):
            bk = base[0 if shared else slice(None), k]
            assert torch.equal(out[:, k, j], bk + a[j] * (x - bk))


def test_path_points_endpoints():
    x = rand((2, 10), F64, 3)
    base = rand((2, 3, 10), F64, 4)
    out = ops.path_points(x, base, torch.tensor([0.0, 1.0], dtype=F64))
    assert torch.equal(out[:, :, 0], base)
    assert torch.allclose(out[:, :, 1], x.unsqueeze(1).expand(2, 3, 10), rtol=0, atol=1e-15)


def test_path_points_alpha_dtype_converted():
    x = rand((2, 4), torch.float32, 5)
    base = torch.zeros(1, 1, 4)
    a64 = torch.tensor([0.1, 0.7], dtype=F64)
    out = ops.path_points(x, base, a64)
    assert out.dtype == torch.float32
    assert torch.equal(out, ops.path_points(x, base, a64.float()))


def test_path_points_thread_invariance():
    before = torch.get_num_threads()
    try:
        x = rand((4, 3, 32, 32), torch.float32, 6)
        base = rand((1, 2, 3, 32, 32), torch.float32, 7)
        a, _ = ops.quadrature("riemann_trapezoid", 20, dtype=torch.float32)
        torch.set_num_threads(1)
        one = ops.path_points(x, base, a)
        torch.set_num_threads(2)
        two = ops.path_points(x, base, a)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


@pytest.mark.parametrize("shared", (True, False))
def test_path_points_gradcheck(shared):
    x = rand((2, 3), F64, 8).requires_grad_()
    base = rand((1 if shared else 2, 2, 3), F64, 9).requires_grad_()
    a = torch.tensor([0.0, 0.3, 0.8, 1.0], dtype=F64)
    assert torch.autograd.gradcheck(lambda u, v: ops.path_points(u, v, a), (x, base))
    assert torch.autograd.gradgradcheck(lambda u, v: ops.path_points(u, v, a), (x, base))


def test_path_points_gradient_values():
    x = rand((2, 3), F64, 10).requires_grad_()
    base = rand((1, 2, 3), F64, 11).requires_grad_()
    a = torch.tensor([0.25, 0.5], dtype=F64)
    out = ops.path_points(x, base, a)
    g = rand(out.shape, F64, 12)
    gx, gb = torch.autograd.grad(out, (x, base), g)
    assert torch.allclose(gx, (g * a.view(1, 1, 2, 1)).sum((1, 2)), rtol=0, atol=1e-14)
    assert torch.allclose(
        gb, (g * (1 - a.view(1, 1, 2, 1))).sum((0, 2)).unsqueeze(0), rtol=0, atol=1e-14
    )


# ---------------------------------------------------------- path integrate
def ig_formula(grads, x, base, weights, reduction, mbi):
    """attr = reduce_k (x - b_k) * sum_j w_j g[b, k, j], in float64."""
    B, K = grads.shape[:2]
    acc = torch.einsum("bkj...,j->bk...", grads.double(), weights.double())
    if mbi:
        acc = acc * (x.double().unsqueeze(1) - base.double())
    if reduction == "none":
        return acc
    return acc.sum(1) / (K if reduction == "mean" else 1)


@pytest.mark.parametrize("dtype", (torch.float32, F64))
@pytest.mark.parametrize("reduction", ("mean", "sum", "none"))
@pytest.mark.parametrize("mbi", (True, False))
@pytest.mark.parametrize("shared", (True, False))
def test_path_integrate_vs_reference(dtype, reduction, mbi, shared):
    B, K, J = 3, 4, 9
    x = rand((B, 2, 6), dtype, 13)
    base = rand((1 if shared else B, K, 2, 6), dtype, 14)
    _, w = ops.quadrature("gausslegendre", J, dtype=dtype)
    grads = rand((B, K, J, 2, 6), dtype, 15)
    out = ops.path_integrate(grads, x, base, w, reduction=reduction, multiply_by_inputs=mbi)
    lead = (B, K) if reduction == "none" else (B,)
    assert out.shape == lead + (2, 6) and out.dtype == dtype
    x2, b3 = flat(x, base)
    want = _reference.path_integrate(grads.reshape(B, K, J, -1), x2, b3, w, reduction, mbi)
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-13, "atol": 1e-14}
    torch.testing.assert_close(out, want.reshape(out.shape), **tol)
    expect = ig_formula(grads, x, base.expand((B,) + base.shape[1:]), w, reduction, mbi)
    torch.testing.assert_close(out, expect.to(dtype), **tol)


@pytest.mark.parametrize("dtype", (torch.float32, F64))
@pytest.mark.parametrize("reduction", ("mean", "sum", "none"))
@pytest.mark.parametrize("per_example", (True, False))
def test_path_integrate_with_path_weights(dtype, reduction, per_example):
    """path_weights multiply every path's values before the reduction (SIG's combination)."""
    B, K, J = 3, 5, 7
    x = rand((B, 2, 6), dtype, 23)
    base = rand((1, K, 2, 6), dtype, 24)
    _, w = ops.quadrature("gausslegendre", J, dtype=dtype)
    grads = rand((B, K, J, 2, 6), dtype, 25)
    pw = rand((B if per_example else 1, K, 2, 6), dtype, 26)
    out = ops.path_integrate(grads, x, base, w, reduction=reduction, path_weights=pw)
    x2, b3 = flat(x, base)
    want = _reference.path_integrate(
        grads.reshape(B, K, J, -1), x2, b3, w, reduction, True, pw.reshape(pw.shape[0], K, -1)
    )
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-13, "atol": 1e-14}
    torch.testing.assert_close(out, want.reshape(out.shape), **tol)
    per_path = ig_formula(grads, x, base.expand(B, *base.shape[1:]), w, "none", True)
    expect = per_path * pw.double()
    if reduction != "none":
        expect = expect.sum(1) / (K if reduction == "mean" else 1)
    torch.testing.assert_close(out, expect.to(dtype), **tol)
    for bad, match in (
        (pw[:, :2], "K = 5"),
        (pw.to(torch.float64 if dtype == torch.float32 else torch.float32), "dtype"),
        (pw.reshape(pw.shape[0], K, 12), "path_weights"),
    ):
        with pytest.raises((ValueError, TypeError), match=match):
            ops.path_integrate(grads, x, base, w, path_weights=bad)


def test_path_integrate_default_is_mean_with_inputs():
    x = rand((2, 5), F64, 16)
    base = rand((2, 3, 5), F64, 17)
    _, w = ops.quadrature("riemann_middle", 6)
    grads = rand((2, 3, 6, 5), F64, 18)
    out = ops.path_integrate(grads, x, base, w)
    torch.testing.assert_close(
        out, ig_formula(grads, x, base, w, "mean", True), rtol=1e-13, atol=1e-14
    )


def test_path_integrate_float32_accumulates_in_float64():
    # Many small terms: a float32 running sum would drift; the kernel sums in float64.
    J = 4096
    x = torch.ones(1, 1)
    base = torch.zeros(1, 1, 1)
    grads = torch.full((1, 1, J, 1), 0.1)
    w = torch.full((J,), 1.0, dtype=torch.float32)
    out = ops.path_integrate(grads, x, base, w)
    want = float(torch.tensor(0.1, dtype=torch.float32)) * J
    assert abs(float(out) - torch.tensor(want, dtype=torch.float32).item()) <= 1e-7 * want


@pytest.mark.parametrize("reduction", ("mean", "sum", "none"))
@pytest.mark.parametrize("mbi", (True, False))
def test_path_integrate_chunks_of_steps_add_up(reduction, mbi):
    B, K, J = 2, 3, 24
    x = rand((B, 7), F64, 19)
    base = rand((B, K, 7), F64, 20)
    _, w = ops.quadrature("gausslegendre", J)
    grads = rand((B, K, J, 7), F64, 21)
    whole = ops.path_integrate(grads, x, base, w, reduction=reduction, multiply_by_inputs=mbi)
    total = torch.zeros_like(whole)
    for lo, hi in ((0, 5), (5, 6), (6, 24)):
        total += ops.path_integrate(
            grads[:, :, lo:hi], x, base, w[lo:hi], reduction=reduction, multiply_by_inputs=mbi
        )
    torch.testing.assert_close(total, whole, rtol=1e-12, atol=1e-13)


def test_path_integrate_chunks_of_baselines_add_up():
    B, K, J = 2, 6, 5
    x = rand((B, 4), F64, 22)
    base = rand((B, K, 4), F64, 23)
    _, w = ops.quadrature("riemann_right", J)
    grads = rand((B, K, J, 4), F64, 24)
    whole = ops.path_integrate(grads, x, base, w, reduction="sum")
    parts = sum(
        ops.path_integrate(grads[:, lo:hi], x, base[:, lo:hi], w, reduction="sum")
        for lo, hi in ((0, 1), (1, 4), (4, 6))
    )
    torch.testing.assert_close(parts, whole, rtol=1e-12, atol=1e-13)


def test_path_integrate_thread_invariance():
    before = torch.get_num_threads()
    try:
        x = rand((8, 3, 16, 16), torch.float32, 25)
        base = rand((1, 2, 3, 16, 16), torch.float32, 26)
        _, w = ops.quadrature("gausslegendre", 16, dtype=torch.float32)
        grads = rand((8, 2, 16, 3, 16, 16), torch.float32, 27)
        torch.set_num_threads(1)
        one = ops.path_integrate(grads, x, base, w)
        torch.set_num_threads(2)
        two = ops.path_integrate(grads, x, base, w)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


# ------------------------------------------------------------ completeness
@pytest.mark.parametrize(
    "method", ("riemann_left", "riemann_right", "riemann_middle", "gausslegendre")
)
@pytest.mark.parametrize("n", (2, 5, 32))
def test_completeness_linear_model(method, n):
    B, K, E = 3, 2, 10
    wvec = rand((E,), F64, 28)
    x = rand((B, E), F64, 29)
    base = rand((B, K, E), F64, 30)
    alphas, weights = ops.quadrature(method, n)
    pts = ops.path_points(x, base, alphas).requires_grad_()
    (grads,) = torch.autograd.grad((pts * wvec).sum(), pts)
    attr = ops.path_integrate(grads, x, base, weights, reduction="none")
    torch.testing.assert_close(attr, (x.unsqueeze(1) - base) * wvec, rtol=0, atol=1e-12)
    # Completeness per baseline: sum(IG) = f(x) - f(b).
    gap = attr.sum(-1) - ((x.unsqueeze(1) - base) * wvec).sum(-1)
    assert gap.abs().max() < 1e-12


def test_trapezoid_weights_scale_linear_model_by_one_minus_one_over_n():
    # Captum's trapezoid weights sum to 1 - 1/n, and IG inherits the factor.
    n = 10
    wvec = rand((6,), F64, 31)
    x = rand((2, 6), F64, 32)
    base = torch.zeros(1, 1, 6, dtype=F64)
    _, weights = ops.quadrature("riemann_trapezoid", n)
    grads = wvec.expand(2, 1, n, 6)
    attr = ops.path_integrate(grads, x, base, weights)
    torch.testing.assert_close(attr, x * wvec * (1 - 1 / n), rtol=0, atol=1e-13)


def test_completeness_nonlinear_model_converges():
    g = torch.Generator().manual_seed(33)
    W = torch.randn(5, 8, generator=g, dtype=F64)

    def f(z):
        return torch.tanh(z @ W.T).sum(-1) + (z**2).sum(-1) * 0.1

    x = torch.randn(2, 8, generator=g, dtype=F64)
    base = torch.randn(2, 3, 8, generator=g, dtype=F64)
    gaps = []
    for n in (2, 4, 8, 16, 32):
        alphas, weights = ops.quadrature("gausslegendre", n)
        pts = ops.path_points(x, base, alphas).requires_grad_()
        (grads,) = torch.autograd.grad(f(pts).sum(), pts)
        attr = ops.path_integrate(grads, x, base, weights, reduction="none")
        gaps.append(float((attr.sum(-1) - (f(x).unsqueeze(1) - f(base))).abs().max()))
    assert all(b < a for a, b in zip(gaps, gaps[1:]) if a > 1e-13), gaps
    assert gaps[0] > 1e-2 and gaps[-1] < 1e-8, gaps


def test_integrated_gradients_through_autograd():
    # Path points are differentiable: IG of x with respect to x itself via
    # autograd matches the hand-written derivative of a quadratic model.
    x = rand((1, 4), F64, 34).requires_grad_()
    base = torch.zeros(1, 1, 4, dtype=F64)
    alphas, weights = ops.quadrature("gausslegendre", 3)
    pts = ops.path_points(x, base, alphas)
    (grads,) = torch.autograd.grad((pts**2).sum(), pts, create_graph=True)
    attr = ops.path_integrate(grads.detach(), x.detach(), base, weights)
    torch.testing.assert_close(attr, x.detach() ** 2, rtol=0, atol=1e-13)  # int 2 a x^2 da = x^2
    (gx,) = torch.autograd.grad((grads * weights.view(1, 1, -1, 1)).sum(), x)
    torch.testing.assert_close(gx, torch.ones_like(x), rtol=0, atol=1e-13)  # d/dx sum 2 a w x


# --------------------------------------------------------------- bad inputs
def _case():
    x = rand((2, 3, 4), F64, 40)
    base = rand((1, 2, 3, 4), F64, 41)
    a, w = ops.quadrature("gausslegendre", 5)
    grads = rand((2, 2, 5, 3, 4), F64, 42)
    return x, base, a, w, grads


def test_path_points_bad_inputs():
    x, base, a, _, _ = _case()
    with pytest.raises(ValueError, match="baselines"):
        ops.path_points(x, base[0], a)  # missing K
    with pytest.raises(ValueError, match="baselines"):
        ops.path_points(x, base.expand(3, 2, 3, 4), a)  # batch 3 != 2
    with pytest.raises(ValueError, match="baselines"):
        ops.path_points(x, base[..., :3], a)
    with pytest.raises(TypeError, match="baselines"):
        ops.path_points(x, base.float(), a)
    with pytest.raises(ValueError, match="alphas"):
        ops.path_points(x, base, a.view(1, -1))
    with pytest.raises(ValueError, match="alphas"):
        ops.path_points(x, base, torch.tensor([0.5, float("nan")], dtype=F64))
    with pytest.raises(ValueError, match="inputs"):
        ops.path_points(x[0, 0], base, a)
    with pytest.raises(TypeError, match="inputs"):
        ops.path_points(x.long(), base, a)
    with pytest.raises(ValueError, match="inputs"):
        ops.path_points(x.index_fill(1, torch.tensor([0]), float("inf")), base, a)
    with pytest.raises(ValueError, match="baselines"):
        ops.path_points(x, base.index_fill(1, torch.tensor([0]), float("nan")), a)
    with pytest.raises(TypeError, match="baselines"):
        ops.path_points(x, [0.0], a)


def test_path_integrate_bad_inputs():
    x, base, _, w, grads = _case()
    with pytest.raises(ValueError, match="grads"):
        ops.path_integrate(grads[:, :, :4], x, base, w)  # J mismatch
    with pytest.raises(ValueError, match="grads"):
        ops.path_integrate(grads[:, :1], x, base, w)  # K mismatch
    with pytest.raises(ValueError, match="grads"):
        ops.path_integrate(grads.flatten(-2), x, base, w)
    with pytest.raises(ValueError, match="grads"):
        ops.path_integrate(grads.index_fill(0, torch.tensor([1]), float("nan")), x, base, w)
    with pytest.raises(TypeError, match="grads"):
        ops.path_integrate(grads.long(), x, base, w)
    with pytest.raises(ValueError, match="weights"):
        ops.path_integrate(grads, x, base, w.view(1, -1))
    with pytest.raises(ValueError, match="baselines"):
        ops.path_integrate(grads, x, base[0], w)
    with pytest.raises(ValueError, match="reduction"):
        ops.path_integrate(grads, x, base, w, reduction="max")
    with pytest.raises(ValueError, match="inputs"):
        ops.path_integrate(grads, x[0, 0], base, w)


# ----------------------------------------------------------------- layouts
def test_non_contiguous_inputs():
    x = rand((5, 2), F64, 50).T  # [2, 5] strided
    base = rand((5, 3, 1), F64, 51).permute(2, 1, 0)  # [1, 3, 5] strided
    grads = rand((5, 4, 3, 2), F64, 52).permute(3, 2, 1, 0)  # [2, 3, 4, 5]
    a, w = ops.quadrature("gausslegendre", 8)
    a, w = a[::2], w[::2]  # strided [4]
    assert not (x.is_contiguous() or base.is_contiguous() or grads.is_contiguous())
    pts = ops.path_points(x, base, a)
    assert torch.equal(pts, ops.path_points(x.contiguous(), base.contiguous(), a.contiguous()))
    ig = ops.path_integrate(grads, x, base, w, reduction="none")
    want = ops.path_integrate(
        grads.contiguous(), x.contiguous(), base.contiguous(), w.contiguous(), reduction="none"
    )
    assert torch.equal(ig, want)


@pytest.mark.parametrize("per_example", (False, True))
def test_empty_batch_steps_or_baselines(per_example):
    # Every 0-sized dimension the maths allows gives a correctly shaped result, per
    # example baselines of an empty batch included (they used to get batch stride 0).
    a, w = ops.quadrature("gausslegendre", 3)
    base0 = torch.zeros(0 if per_example else 1, 2, 4, dtype=F64)
    x0 = torch.zeros(0, 4, dtype=F64)
    assert ops.path_points(x0, base0, a).shape == (0, 2, 3, 4)
    g0 = torch.zeros(0, 2, 3, 4, dtype=F64)
    for reduction, shape in (("mean", (0, 4)), ("sum", (0, 4)), ("none", (0, 2, 4))):
        out = ops.path_integrate(g0, x0, base0, w, reduction=reduction, path_weights=base0)
        assert out.shape == shape
        assert _reference.path_integrate(g0, x0, base0, w, reduction, True).shape == shape
    x = rand((2, 4), F64, 56)
    out = ops.path_integrate(
        torch.zeros(2, 1, 0, 4, dtype=F64), x, torch.zeros(1, 1, 4, dtype=F64), w[:0]
    )
    assert torch.equal(out, torch.zeros(2, 4, dtype=F64))
    assert ops.path_points(x, torch.zeros(1, 2, 4, dtype=F64), a[:0]).shape == (2, 2, 0, 4)
    assert ops.path_points(
        torch.zeros(2, 0, dtype=F64), torch.zeros(1, 2, 0, dtype=F64), a
    ).shape == (2, 2, 3, 0)
    # No baselines: their sum (and the per-path rows) are empty sums; their mean is not.
    nb = torch.zeros(1, 0, 4, dtype=F64)
    g = torch.zeros(2, 0, 3, 4, dtype=F64)
    assert ops.path_points(x, nb, a).shape == (2, 0, 3, 4)
    assert torch.equal(
        ops.path_integrate(g, x, nb, w, reduction="sum"), torch.zeros(2, 4, dtype=F64)
    )
    assert ops.path_integrate(g, x, nb, w, reduction="none").shape == (2, 0, 4)
    with pytest.raises(ValueError, match="baselines: the mean over baselines"):
        ops.path_integrate(g, x, nb, w)


def test_path_ops_report_overflow_of_finite_values():
    x = torch.full((1, 3), 3e38, dtype=torch.float32)
    base = -x[None]
    a, w = ops.quadrature("riemann_right", 2, dtype=torch.float32)
    with pytest.raises(ValueError, match="path_points: the result overflowed"):
        ops.path_points(x, base, a)  # x - base = 6e38 > float32's max
    g = torch.ones(1, 1, 2, 3, dtype=torch.float32)
    with pytest.raises(ValueError, match="path_integrate: the result overflowed"):
        ops.path_integrate(g, x, base, w)
    with pytest.raises(ValueError, match="grads: contain non-finite"):
        ops.path_integrate(g * float("inf"), x, base, w)


# ---------------------------------------------------------- long rows
@pytest.mark.parametrize("dtype", (torch.float32, F64))
@pytest.mark.parametrize("reduction", ("mean", "sum", "none"))
def test_long_rows(dtype, reduction):
    # Elements in several tiles (and a partial one), few rows: the CPU
    # launcher splits rows into column blocks across threads.
    B, K, J, E = 1, 3, 7, 3 * 256 + 77
    x = rand((B, E), dtype, 60)
    base = rand((1, K, E), dtype, 61)
    a, w = ops.quadrature("gausslegendre", J, dtype=dtype)
    grads = rand((B, K, J, E), dtype, 62)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        pts1 = ops.path_points(x, base, a)
        ig1 = ops.path_integrate(grads, x, base, w, reduction=reduction)
        torch.set_num_threads(2)
        pts2 = ops.path_points(x, base, a)
        ig2 = ops.path_integrate(grads, x, base, w, reduction=reduction)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(pts1, pts2) and torch.equal(ig1, ig2)
    assert torch.equal(pts1, _reference.path_points(x, base, a))
    want = ig_formula(grads, x, base, w, reduction, True).to(dtype)
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-13, "atol": 1e-14}
    torch.testing.assert_close(ig1, want, **tol)


# ------------------------------------------------ issue 11: O(n) Gauss-Legendre (16)
def legendre_at(n: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P_n and P_{n-1} at every x by the three-term recurrence (numpy, O(n) per node)."""
    p0, p1 = np.ones_like(x), x.copy()
    for k in range(2, n + 1):
        p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
    return p1, p0


@pytest.mark.parametrize("n", (101, 128, 150))
def test_gausslegendre_large_n_matches_numpy(n):
    # numpy's leggauss (eigenvalues + one Newton step), where its own weights are still
    # accurate to ~1e-10 (8e-9 at n = 1000, near the ends).
    a, w = ops.quadrature("gausslegendre", n)
    x, ew = np.polynomial.legendre.leggauss(n)
    np.testing.assert_allclose(a.numpy(), 0.5 * (1 + x), rtol=0, atol=3e-16)
    np.testing.assert_allclose(w.numpy(), 0.5 * ew, rtol=WEIGHT_RTOL["gausslegendre"], atol=0)


@pytest.mark.parametrize("n", (101, 1000, 4097))
def test_gausslegendre_large_n_are_the_roots_and_weights(n):
    # Independent of the construction: every node is a root of P_n to rounding (the
    # Newton correction P_n / P_n' is below 2 ulps of 1) and every weight equals
    # 2 (1 - x^2) / (n P_{n-1}(x))^2 (the Christoffel number), on the inner nodes, to
    # the accuracy of these float64 formulas (the recurrence's rounding grows with n).
    a, w = ops.quadrature("gausslegendre", n)
    x = 2 * a.numpy() - 1
    inner = np.abs(x) < 0.9
    p, pm1 = legendre_at(n, x[inner])
    dp = n * (pm1 - x[inner] * p) / (1 - x[inner] ** 2)
    assert np.abs(p / dp).max() < 4.5e-16
    want = (1 - x[inner] ** 2) / (n * pm1) ** 2  # on [0, 1]: half of 2 (1 - x^2) / ...
    np.testing.assert_allclose(w.numpy()[inner], want, rtol=5e-15 * n, atol=0)
    assert abs(float(w.sum()) - 1.0) < 1e-14
    assert np.all(np.diff(a.numpy()) > 0) and a[0] > 0 and a[-1] < 1
    np.testing.assert_array_equal(a.numpy() + a.numpy()[::-1], np.ones(n))  # symmetric
    np.testing.assert_array_equal(w.numpy(), w.numpy()[::-1])


@pytest.mark.parametrize("n", (101, 500))
def test_gausslegendre_large_n_integrates_polynomials_exactly(n):
    a, w = ops.quadrature("gausslegendre", n)
    # Legendre polynomials of degree < 2n integrate to 0 on [-1, 1] except P_0.
    x = (2 * a - 1).numpy()
    for deg in (1, 2, 7, n, 2 * n - 1):
        p, _ = legendre_at(deg, x) if deg > 1 else (x, None)
        assert abs(float((w.numpy() * p).sum())) < 1e-14, deg


def test_gausslegendre_reference_is_the_same_construction():
    for n in (1, 7, 100, 101, 102, 333, 2000):
        a, w = ops.quadrature("gausslegendre", n)
        ra, rw = _reference.quadrature("gausslegendre", n)
        np.testing.assert_allclose(a.numpy(), ra, rtol=0, atol=2e-16)
        np.testing.assert_allclose(w.numpy(), rw, rtol=1e-14 if n > 100 else 1e-10, atol=0)


def test_gausslegendre_against_50_digit_arithmetic():
    # Nodes and weights at n = 4000 against Newton on P_n in 50-digit decimals. The
    # weights nearest the ends (~1e-7) computed from a rounded x lost ~n^2 * 1e-16 of
    # their relative accuracy before (1.6e-9 here); now every weight is good to 1e-13,
    # the inner ones (from the asymptotic expansion) to 1e-15.
    from decimal import Decimal, getcontext

    getcontext().prec = 50
    n = 4000
    a, w = ops.quadrature("gausslegendre", n)
    for i, rtol in ((0, 1e-13), (3, 1e-13), (15, 1e-13), (16, 1e-15), (700, 1e-15), (1999, 1e-15)):
        x = Decimal(1) - 2 * Decimal(float(a[i]))  # the mirrored node near +1
        for _ in range(3):  # Newton in decimal from the float64 node
            p0, p1 = Decimal(1), x
            for k in range(2, n + 1):
                p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
            x -= p1 / (n * (p0 - x * p1) / (1 - x * x))
        p0, p1 = Decimal(1), x
        for k in range(2, n):
            p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
        exact = (1 - x * x) / (n * p1) ** 2  # half of 2 (1 - x^2) / (n P_{n-1})^2
        assert abs(float((Decimal(float(w[i])) - exact) / exact)) < rtol, i
        assert abs(float(Decimal(float(a[i])) - (1 - x) / 2)) < 1.2e-16, i


# ------------------------------------------------------------------ every device
def _rand(shape, dtype, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64).to(dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", (torch.float32, F64))
@pytest.mark.parametrize("shared", (True, False))
def test_path_points_on_every_device(dtype, shared, device):
    B, K = 3, 4
    x = _rand((B, 3, 16, 16), dtype, 10)
    base = _rand((1 if shared else B, K, 3, 16, 16), dtype, 11)
    a, _ = ops.quadrature("gausslegendre", 20, dtype=dtype)
    want = ops.path_points(x, base, a)
    with on(device) as dev:
        got = ops.path_points(*to(dev, x, base, a))
    # b + a * (x - b) with each operation rounded: no fused multiply-add on either
    # device (CMakeLists.txt), so bitwise on every device. A GPU failure here that
    # vanishes at rtol=1e-6 (float32) / 1e-14 (float64) means contraction came back.
    assert_same_bits(got, want)
    xs = x.reshape(B, -1)
    bs = base.reshape(base.shape[0], K, -1)
    assert_same_bits(got.reshape(B, K, 20, -1), _reference.path_points(xs, bs, a))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", (torch.float32, F64))
@pytest.mark.parametrize("reduction", ("mean", "sum", "none"))
@pytest.mark.parametrize("mbi", (True, False))
def test_path_integrate_on_every_device(dtype, reduction, mbi, device):
    B, K, J = 3, 2, 16
    x = _rand((B, 3, 8, 8), dtype, 12)
    base = _rand((B, K, 3, 8, 8), dtype, 13)
    _, w = ops.quadrature("gausslegendre", J, dtype=dtype)
    grads = _rand((B, K, J, 3, 8, 8), dtype, 14)
    pw = _rand((1, K, 3, 8, 8), dtype, 15)  # SIG's per-path element weights
    kw = {"reduction": reduction, "multiply_by_inputs": mbi}
    # The element launch sums in the fast path's order (bitwise); the GPU's float64
    # sums are the same operations too, compared to rounding (float32 outputs: 1e-6).
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {}
    for extra in ({}, {"path_weights": pw}):
        want = ops.path_integrate(grads, x, base, w, **kw, **extra)
        with on(device) as dev:
            got = ops.path_integrate(*to(dev, grads, x, base, w), **kw, **to_dev(extra, dev))
        held_to_cpu(device, got, want, **tol)
        ref = _reference.path_integrate(
            grads.reshape(B, K, J, -1),
            x.reshape(B, -1),
            base.reshape(B, K, -1),
            w,
            reduction=reduction,
            multiply_by_inputs=mbi,
            path_weights=pw.reshape(1, K, -1) if extra else None,
        )
        torch.testing.assert_close(got.cpu().reshape(ref.shape), ref, **tol)


def to_dev(kw, dev):
    return {k: v.to(dev) for k, v in kw.items()}
