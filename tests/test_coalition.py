"""Coalition solvers (xattr.ops.coalition) against the pure-torch references, against
independent solutions (torch.linalg, scikit-learn, brute-force loops over subsets and
permutations) and against the axioms the attributions must satisfy."""

from __future__ import annotations

import itertools
import math

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
from xattr.ops import _reference as ref

F64 = torch.float64


# ------------------------------------------------------------------------------ helpers
def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rand_masks(shape, seed: int, p: float = 0.5) -> torch.Tensor:
    return torch.rand(shape, generator=gen(seed), dtype=F64) < p


def random_table(d: int, B: int = 1, T: int | None = None, seed: int = 0) -> torch.Tensor:
    """A random (non-additive) game: v of all 2^d coalitions, [B, 2^d] or [B, 2^d, T]."""
    shape = (B, 2**d) if T is None else (B, 2**d, T)
    return torch.randn(shape, generator=gen(seed), dtype=F64)


def mask_index(masks: torch.Tensor) -> torch.Tensor:
    """Row index in the enumerate_coalitions order: bit i set iff feature i present."""
    d = masks.shape[-1]
    return (masks.long() << torch.arange(d)).sum(-1)


def lookup(table: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """v(S_r) for a table [B, 2^d(, T)] and masks [n, d] or [B, n, d]: [B, n(, T)]."""
    idx = mask_index(masks)
    if idx.dim() == 1:
        return table[:, idx]
    return torch.stack([table[b, idx[b]] for b in range(table.shape[0])])


def brute_values(table_1d: list[float], d: int, banzhaf: bool) -> list[float]:
    """Shapley / Banzhaf values by the textbook sum over subsets, in plain Python."""
    out = []
    for i in range(d):
        others = [j for j in range(d) if j != i]
        total = 0.0
        for k in range(d):
            w = (
                1.0 / 2 ** (d - 1)
                if banzhaf
                else math.factorial(k) * math.factorial(d - 1 - k) / math.factorial(d)
            )
            for subset in itertools.combinations(others, k):
                s = sum(1 << j for j in subset)
                total += w * (table_1d[s | (1 << i)] - table_1d[s])
        out.append(total)
    return out


def shapley_kernel_weights(masks: torch.Tensor) -> torch.Tensor:
    d = masks.shape[-1]
    k = masks.sum(-1).tolist()
    return torch.tensor([(d - 1) / (math.comb(d, s) * s * (d - s)) for s in k], dtype=F64)


def close(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    """|a - b| <= tol * max(1, max|b|) elementwise, NaN in the same places."""
    assert a.shape == b.shape, (a.shape, b.shape)
    a64, b64 = a.to(F64), b.to(F64)
    scale = max(1.0, float(b64.abs().max())) if b64.numel() else 1.0
    torch.testing.assert_close(a64, b64, rtol=0, atol=tol * scale, equal_nan=True)


def ref_tol(dtype: torch.dtype) -> float:
    return 1e-10 if dtype == F64 else 2e-5


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------- kernel_shap_solve
def _wls_problem(B, n, d, T, dtype, per_masks, per_weights, seed):
    masks = rand_masks((B, n, d) if per_masks else (n, d), seed)
    weights = torch.rand((B, n) if per_weights else (n,), generator=gen(seed + 1), dtype=F64)
    weights = (weights + 0.1).to(dtype)
    vshape = (B, n) if T is None else (B, n, T)
    values = torch.randn(vshape, generator=gen(seed + 2), dtype=F64).to(dtype)
    eshape = (B,) if T is None else (B, T)
    v_empty = torch.randn(eshape, generator=gen(seed + 3), dtype=F64).to(dtype)
    v_full = torch.randn(eshape, generator=gen(seed + 4), dtype=F64).to(dtype)
    return masks, weights, values, v_empty, v_full


def _kkt_solve(masks, weights, values, v_empty, v_full):
    """The constrained WLS by its KKT system, one (b, t) at a time, in float64."""
    B, n = values.shape[:2]
    T = values.shape[2]
    d = masks.shape[-1]
    m3 = masks.expand(B, n, d)
    w2 = weights.expand(B, n)
    out = torch.empty((B, T, d), dtype=F64)
    for b in range(B):
        Z = m3[b].to(F64)
        W = torch.diag(w2[b].to(F64))
        K = torch.zeros((d + 1, d + 1), dtype=F64)
        K[:d, :d] = 2 * Z.T @ W @ Z
        K[:d, d] = 1.0
        K[d, :d] = 1.0
        for t in range(T):
            rhs = torch.empty(d + 1, dtype=F64)
            rhs[:d] = 2 * Z.T @ W @ (values[b, :, t].to(F64) - v_empty[b, t])
            rhs[d] = v_full[b, t] - v_empty[b, t]
            out[b, t] = torch.linalg.solve(K, rhs)[:d]
    return out


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("per_masks", [False, True])
@pytest.mark.parametrize("per_weights", [False, True])
@pytest.mark.parametrize("T", [None, 1, 3])
def test_kernel_shap_matches_reference(dtype, per_masks, per_weights, T):
    B, n, d = 3, 40, 7
    masks, weights, values, ve, vf = _wls_problem(B, n, d, T, dtype, per_masks, per_weights, 11)
    phi = ops.kernel_shap_solve(masks, weights, values, ve, vf)
    want_shape = (B, d) if T is None else (B, T, d)
    assert phi.shape == want_shape and phi.dtype == dtype
    Tn = 1 if T is None else T
    expect = ref.kernel_shap_solve(
        masks if per_masks else masks[None],
        weights if per_weights else weights[None],
        values.reshape(B, n, Tn),
        ve.reshape(B, Tn),
        vf.reshape(B, Tn),
    )
    close(phi.reshape(B, Tn, d), expect, ref_tol(dtype))


@pytest.mark.parametrize("per_masks", [False, True])
@pytest.mark.parametrize("per_weights", [False, True])
def test_kernel_shap_matches_kkt(per_masks, per_weights):
    B, n, d, T = 3, 60, 8, 3
    masks, weights, values, ve, vf = _wls_problem(B, n, d, T, F64, per_masks, per_weights, 21)
    phi = ops.kernel_shap_solve(masks, weights, values, ve, vf)
    expect = _kkt_solve(masks, weights, values, ve, vf)
    close(phi, expect, 1e-8)
    # The unconstrained WLS gives a different answer: the constraint is active.
    Z = masks.to(F64) if per_masks else masks.to(F64).expand(B, n, d)
    free = torch.linalg.lstsq(Z, values - ve.unsqueeze(1)).solution.mT
    assert (free - expect).abs().max() > 1e-3


def test_kernel_shap_matches_eliminated_lstsq():
    # Independent route: eliminate phi_0 (not the last feature, as the kernel does) and
    # solve the unconstrained weighted problem by lstsq on sqrt(w)-scaled rows.
    n, d = 50, 6
    masks, weights, values, ve, vf = _wls_problem(2, n, d, None, F64, False, False, 31)
    phi = ops.kernel_shap_solve(masks, weights, values, ve, vf)
    Z = masks.to(F64)
    sw = weights.sqrt().unsqueeze(1)
    for b in range(2):
        delta = vf[b] - ve[b]
        A = Z[:, 1:] - Z[:, :1]
        y = values[b] - ve[b] - Z[:, 0] * delta
        rest = torch.linalg.lstsq(sw * A, (sw[:, 0] * y).unsqueeze(1)).solution[:, 0]
        expect = torch.cat([(delta - rest.sum()).view(1), rest])
        close(phi[b], expect, 1e-8)


@pytest.mark.parametrize("n", [2, 5, 9])
@pytest.mark.parametrize("scale", [1.0, 1e6])
def test_kernel_shap_efficiency_exact(n, scale):
    B, d, T = 4, 9, 2
    masks, weights, values, ve, vf = _wls_problem(B, n, d, T, F64, True, True, 41 + n)
    values, ve, vf = values * scale, ve * scale, vf * scale
    phi = ops.kernel_shap_solve(masks, weights, values, ve, vf)
    assert torch.isfinite(phi).all()
    delta = vf - ve
    err = (phi.sum(-1) - delta).abs()
    bound = 1e-12 * (phi.abs().sum(-1) + delta.abs())
    assert (err <= bound).all(), (err, bound)


@pytest.mark.parametrize("d", [3, 4, 5, 6, 7, 8])
def test_kernel_shap_all_coalitions_is_exact_shapley(d):
    table = random_table(d, B=2, T=2, seed=100 + d)
    masks = ops.enumerate_coalitions(d)[1:-1]
    weights = shapley_kernel_weights(masks)
    phi = ops.kernel_shap_solve(masks, weights, table[:, 1:-1], table[:, 0], table[:, -1])
    exact = ops.exact_shapley(table)
    close(phi, exact, 1e-10)
    # and against the textbook formula, so the check does not rest on exact_shapley alone
    brute = torch.tensor(brute_values(table[1, :, 1].tolist(), d, banzhaf=False), dtype=F64)
    close(phi[1, 1], brute, 1e-10)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_kernel_shap_rank_deficient(n):
    B, d = 3, 8
    masks, weights, values, ve, vf = _wls_problem(B, n, d, None, F64, True, False, 51)
    phi = ops.kernel_shap_solve(masks, weights, values, ve, vf)
    assert torch.isfinite(phi).all()
    delta = vf - ve
    assert ((phi.sum(-1) - delta).abs() <= 1e-12 * (phi.abs().sum(-1) + delta.abs())).all()
    expect = ref.kernel_shap_solve(
        masks, weights[None], values[..., None], ve[:, None], vf[:, None]
    )
    close(phi, expect[:, 0], 1e-9)


def test_kernel_shap_duplicate_and_zero_weight_rows():
    # Rows repeated and rows with weight 0 make the Gram matrix singular.
    d = 5
    base = rand_masks((4, d), 61)
    masks = torch.cat([base, base, rand_masks((3, d), 62)])
    weights = torch.cat([torch.ones(8, dtype=F64), torch.zeros(3, dtype=F64)])
    values = torch.randn((2, 11), generator=gen(63), dtype=F64)
    ve, vf = torch.tensor([0.5, -1.0], dtype=F64), torch.tensor([2.0, 3.0], dtype=F64)
    phi = ops.kernel_shap_solve(masks, weights, values, ve, vf)
    assert torch.isfinite(phi).all()
    close(phi.sum(-1), vf - ve, 1e-12)


def test_kernel_shap_linear_game_is_exact():
    B, n, d = 3, 30, 7
    w = torch.randn((B, d), generator=gen(71), dtype=F64)
    c = torch.randn((B,), generator=gen(72), dtype=F64)
    masks = rand_masks((n, d), 73)
    weights = torch.rand(n, generator=gen(74), dtype=F64) + 0.05
    values = masks.to(F64) @ w.T
    values = values.T + c[:, None]  # [B, n]
    phi = ops.kernel_shap_solve(masks, weights, values, c, c + w.sum(1))
    close(phi, w, 1e-12)


def test_kernel_shap_single_feature():
    masks = torch.tensor([[True], [False]])
    values = torch.tensor([[3.0, 1.0]], dtype=F64)
    phi = ops.kernel_shap_solve(masks, torch.ones(2, dtype=F64), values, values[:, 1], values[:, 0])
    assert phi.tolist() == [[2.0]]


def _dense_design(masks, weights, values):
    """For the dense solvers below: B, T, d, masks [B, n, d] and weights [B, n] in
    float64, P = I - 11'/d and an empty result [B, T, d]."""
    B, n, T = values.shape
    d = masks.shape[-1]
    proj = torch.eye(d, dtype=F64) - 1.0 / d
    m3, w2 = masks.expand(B, n, d).to(F64), weights.expand(B, n).to(F64)
    return B, T, d, m3, w2, proj, torch.empty((B, T, d), dtype=F64)


def _min_norm_constrained(masks, weights, values, v_empty, v_full):
    """The minimum-norm constrained WLS by its definition: phi = delta/d + pinv(A) b with
    A = W^(1/2) Z (I - 11'/d), one (b, t) at a time (torch.linalg.pinv, an SVD)."""
    B, T, d, m3, w2, proj, out = _dense_design(masks, weights, values)
    for b in range(B):
        A = w2[b].sqrt()[:, None] * (m3[b] @ proj)
        for t in range(T):
            delta = v_full[b, t] - v_empty[b, t]
            y = values[b, :, t] - v_empty[b, t] - m3[b].sum(1) * delta / d
            out[b, t] = delta / d + torch.linalg.pinv(A, rtol=1e-9) @ (w2[b].sqrt() * y)
    return out


def test_kernel_shap_rank_deficient_is_min_norm_and_permutation_equivariant():
    # Features 2 and 3 always appear together: the design cannot tell them apart. The
    # solve must split their total equally, whatever the column order (the review's
    # case: true [1, 2, 3, 4] came out [1, 2, 0, 7] or [1, 2, 7, 0]).
    masks = torch.tensor(
        [[1, 0, 0, 0], [0, 1, 1, 1], [0, 1, 0, 0], [1, 0, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1]],
        dtype=torch.bool,
    )
    phi_true = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)
    values = (masks.to(F64) @ phi_true)[None]
    zero, full = torch.zeros(1, dtype=F64), phi_true.sum().view(1)
    w = torch.ones(6, dtype=F64)
    phi = ops.kernel_shap_solve(masks, w, values, zero, full)
    close(phi, torch.tensor([[1.0, 2.0, 3.5, 3.5]], dtype=F64), 1e-12)
    swapped = ops.kernel_shap_solve(masks[:, [0, 1, 3, 2]], w, values, zero, full)
    close(swapped, phi[:, [0, 1, 3, 2]], 1e-12)
    for perm in itertools.permutations(range(4)):
        p = list(perm)
        close(ops.kernel_shap_solve(masks[:, p], w, values, zero, full), phi[:, p], 1e-12)


@pytest.mark.parametrize("n,d", [(12, 10), (6, 9), (30, 30), (25, 200), (1, 5)])
@pytest.mark.parametrize("per_masks", [False, True])
def test_kernel_shap_min_norm_primal_and_dual(n, d, per_masks):
    # n >= d solves through the d x d Gram of the columns, n < d through the n x n Gram
    # of the rows; both are the minimum-norm solution, here with complementary pairs
    # (dependent rows) in the design.
    B, T = 2, 2
    masks, weights, values, ve, vf = _wls_problem(B, n, d, T, F64, per_masks, False, 131 + n)
    if n >= 2:
        half = n // 2
        if per_masks:
            masks[:, half : 2 * half] = ~masks[:, :half]
        else:
            masks[half : 2 * half] = ~masks[:half]
    phi = ops.kernel_shap_solve(masks, weights, values, ve, vf)
    close(phi, _min_norm_constrained(masks, weights, values, ve, vf), 1e-9)
    Tn = values.shape[2]
    expect = ref.kernel_shap_solve(
        masks if per_masks else masks[None],
        weights[None],
        values,
        ve.reshape(B, Tn),
        vf.reshape(B, Tn),
    )
    close(phi, expect, 1e-9)
    # the same rows with zero-weight rows appended (n >= d: the primal form) agree
    if n < d:
        extra = d - n + 1
        pad_m = rand_masks((B, extra, d) if per_masks else (extra, d), 7)
        m2 = torch.cat([masks, pad_m], dim=-2)
        w2 = torch.cat([weights, torch.zeros(extra, dtype=F64)])
        v2 = torch.cat([values, torch.randn((B, extra, T), generator=gen(8), dtype=F64)], 1)
        close(ops.kernel_shap_solve(m2, w2, v2, ve, vf), phi, 1e-9)


def test_kernel_shap_dual_memory_follows_the_smaller_side():
    # d = 16,384 features and 25 rows: the workspace is 25 x 25 per problem, not d x d
    # (a dense d x d float64 Gram would take 2.1 GB).
    from xattr import _ext

    if not _ext.kernels_available():
        pytest.skip("no compiled kernels")
    n, d = 25, 16384
    doubles, ints = _ext.lib().kernel_shap_solve_workspace(
        B=1, n=n, d=d, T=1, mask_bstride=0, weight_bstride=0
    )
    assert doubles == n * n + n + 2 * n and ints == 2 * n + 1
    doubles, _ = _ext.lib().linear_fit_workspace(
        B=1, n=n, d=d, T=1, mask_bstride=0, weight_bstride=0
    )
    assert doubles <= n * n + n + 2 * d + 1 + 2 * n
    masks = rand_masks((n, d), 141)
    values = torch.randn((1, n), generator=gen(142), dtype=F64)
    ve, vf = torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64)
    phi = ops.kernel_shap_solve(masks, torch.ones(n, dtype=F64), values, ve, vf)
    assert phi.shape == (1, d) and torch.isfinite(phi).all()
    close(phi.sum(-1), vf - ve, 1e-12)


def test_solvers_read_mask_bytes_as_torch_bool():
    # A bool tensor whose bytes are 2 (made by a view) is True to torch; the solvers must
    # read it so (the review: kernel_shap_solve gave [0, 0, 5] instead of [1, 3.375,
    # 0.625], linear_fit zeros).
    ones = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=torch.uint8)
    odd = (ones * 2).view(torch.bool)
    proper = ones.bool()
    values = torch.tensor([[1.0, 4.0, 3.0, 1.0]], dtype=F64)
    w = torch.tensor([1.0, 2.0, 1.0, 0.5], dtype=F64)
    ve, vf = torch.zeros(1, dtype=F64), torch.tensor([5.0], dtype=F64)
    close(
        ops.kernel_shap_solve(odd, w, values, ve, vf),
        ops.kernel_shap_solve(proper, w, values, ve, vf),
        1e-12,
    )
    for method in ("ridge", "lasso"):
        a = ops.linear_fit(odd, w, values, alpha=0.01, method=method)
        b = ops.linear_fit(proper, w, values, alpha=0.01, method=method)
        close(a[0], b[0], 1e-12)
        close(a[1], b[1], 1e-12)


# --------------------------------------------- kernel_shap_solve with a prior and a ridge
def _ridge_kkt(masks, weights, values, v_empty, v_full, prior, rho):
    """min sum_r w_r (y_r - v0 - z_r . phi)^2 + rho s ||phi - prior||^2 s.t. 1'phi = delta,
    s = trace(P Z'WZ P) / (d - 1), by its dense KKT system in psi = phi - prior, one (b, t)
    at a time in float64. The system's pseudo-inverse gives the least-norm psi where the
    design leaves directions free (rho = 0): the KKT null space is {(x, 0): Hx = 0, 1'x = 0}."""
    B, T, d, m3, w2, proj, out = _dense_design(masks, weights, values)
    for b in range(B):
        Z, W = m3[b], torch.diag(w2[b])
        H = Z.T @ W @ Z
        s = torch.trace(proj @ H @ proj) / (d - 1)
        K = torch.zeros((d + 1, d + 1), dtype=F64)
        K[:d, :d] = 2 * (H + rho * s * torch.eye(d, dtype=F64))
        K[:d, d] = K[d, :d] = 1.0
        Kp = torch.linalg.pinv(K, rtol=1e-10, hermitian=True)
        for t in range(T):
            p0 = prior[b, t]
            rhs = torch.empty(d + 1, dtype=F64)
            rhs[:d] = 2 * Z.T @ W @ (values[b, :, t] - v_empty[b, t] - Z @ p0)
            rhs[d] = v_full[b, t] - v_empty[b, t] - p0.sum()
            out[b, t] = p0 + (Kp @ rhs)[:d]
    return out


def _prior_problem(B, n, d, T, design, seed, per_masks=False):
    masks, weights, values, ve, vf = _wls_problem(B, n, d, T, F64, per_masks, False, seed)
    if design == "pairs":  # complementary pairs: dependent rows
        half = n // 2
        masks[..., half : 2 * half, :] = ~masks[..., :half, :]
    elif design == "tied":  # features 0 and 1 always together: a direction left free
        masks[..., 1] = masks[..., 0]
    prior = torch.randn((B, T, d), generator=gen(seed + 9), dtype=F64)
    return masks, weights, values, ve, vf, prior


PRIOR_CASES = [
    (40, 6, "random"),
    (40, 6, "tied"),
    (30, 8, "pairs"),
    (5, 9, "random"),
    (6, 9, "tied"),
]


@pytest.mark.parametrize("n,d,design", PRIOR_CASES)
@pytest.mark.parametrize("rho", [0.0, 0.05, 1.0, 30.0])
@pytest.mark.parametrize("per_masks", [False, True])
def test_kernel_shap_prior_matches_ridge_kkt_and_reference(n, d, design, rho, per_masks):
    # n >= d: the primal (d x d) Gram; n < d: the dual (n x n); "tied" and "pairs" leave
    # directions free, which the prior fills at rho = 0.
    B, T = 3, 2
    masks, w, v, ve, vf, prior = _prior_problem(B, n, d, T, design, 300 + n + d, per_masks)
    phi = ops.kernel_shap_solve(masks, w, v, ve, vf, prior=prior, rho=rho)
    close(phi, _ridge_kkt(masks, w, v, ve, vf, prior, rho), 1e-8)
    close(phi.sum(-1), vf - ve, 1e-12)
    # the op with only rho (the prior as its substitution) against the reference with rho
    m3 = masks if per_masks else masks[None]
    z = m3.to(F64)
    shifted, full = v - z @ prior.mT, vf - prior.sum(-1)
    psi = ops.kernel_shap_solve(masks, w, shifted, ve, full, rho=rho)
    close(psi, ref.kernel_shap_solve(m3, w[None], shifted, ve, full, rho), 1e-10)
    close(prior + psi, phi, 1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("n,d", [(40, 7), (4, 7)])
@pytest.mark.parametrize("T", [None, 3])
def test_kernel_shap_ridge_matches_reference(dtype, n, d, T):
    B = 3
    masks, weights, values, ve, vf = _wls_problem(B, n, d, T, dtype, True, True, 350 + n)
    Tn = 1 if T is None else T
    for rho in (0.2, 5.0):
        phi = ops.kernel_shap_solve(masks, weights, values, ve, vf, rho=rho)
        assert phi.dtype == dtype
        expect = ref.kernel_shap_solve(
            masks, weights, values.reshape(B, n, Tn), ve.reshape(B, Tn), vf.reshape(B, Tn), rho
        )
        close(phi.reshape(B, Tn, d), expect, ref_tol(dtype))


def test_kernel_shap_no_prior_no_ridge_is_unchanged():
    # rho = 0 (given or not) is today's solve, bit for bit; a ridge changes it.
    masks, w, v, ve, vf, _ = _prior_problem(3, 30, 6, 2, "random", 361)
    base = ops.kernel_shap_solve(masks, w, v, ve, vf)
    assert torch.equal(ops.kernel_shap_solve(masks, w, v, ve, vf, rho=0.0), base)
    assert (ops.kernel_shap_solve(masks, w, v, ve, vf, rho=0.5) - base).abs().max() > 1e-3


@pytest.mark.parametrize("n,d", [(40, 6), (3, 6)])
def test_kernel_shap_huge_rho_projects_the_prior(n, d):
    # rho -> inf: the prior moved onto the efficiency plane by the same amount everywhere.
    masks, w, v, ve, vf, prior = _prior_problem(2, n, d, 2, "random", 371)
    phi = ops.kernel_shap_solve(masks, w, v, ve, vf, prior=prior, rho=1e12)
    projected = prior + ((vf - ve) - prior.sum(-1)).unsqueeze(-1) / d
    close(phi, projected, 1e-9)
    # and the distance to the projection shrinks as rho grows
    gaps = [
        float((ops.kernel_shap_solve(masks, w, v, ve, vf, prior=prior, rho=r) - projected).norm())
        for r in (0.0, 0.1, 1.0, 10.0, 100.0)
    ]
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps


def test_kernel_shap_prior_without_ridge_fills_only_free_directions():
    # Full rank (n >= d, independent columns): the rows determine phi; the prior changes
    # nothing. Features 0 and 1 tied: the rows fix phi_0 + phi_1 only, and the prior's
    # difference phi_0 - phi_1 is kept (least ||phi - prior||), where no prior splits evenly.
    masks, w, v, ve, vf, prior = _prior_problem(2, 40, 6, 1, "random", 381)
    close(
        ops.kernel_shap_solve(masks, w, v, ve, vf, prior=prior),
        ops.kernel_shap_solve(masks, w, v, ve, vf),
        1e-10,
    )
    masks, w, v, ve, vf, prior = _prior_problem(2, 40, 6, 1, "tied", 382)
    plain = ops.kernel_shap_solve(masks, w, v, ve, vf)
    with_prior = ops.kernel_shap_solve(masks, w, v, ve, vf, prior=prior)
    close(plain[..., 0], plain[..., 1], 1e-10)
    close(with_prior[..., 0] - with_prior[..., 1], prior[..., 0] - prior[..., 1], 1e-10)
    close(with_prior[..., 0] + with_prior[..., 1], plain[..., 0] + plain[..., 1], 1e-10)
    close(with_prior[..., 2:], plain[..., 2:], 1e-10)


def test_kernel_shap_rho_is_dimensionless_in_the_weights():
    # The ridge's scale follows the Gram: rescaling every weight leaves the solve unchanged.
    for n in (40, 4):
        masks, w, v, ve, vf, prior = _prior_problem(2, n, 7, 2, "random", 391 + n)
        a = ops.kernel_shap_solve(masks, w, v, ve, vf, prior=prior, rho=0.7)
        b = ops.kernel_shap_solve(masks, w * 1e4, v, ve, vf, prior=prior, rho=0.7)
        close(a, b, 1e-10)


def test_kernel_shap_prior_shapes_and_dtypes():
    masks, w, v, ve, vf, prior = _prior_problem(2, 20, 5, 1, "random", 401)
    # [B, d] prior for [B, n] values; float32 values return float32
    phi = ops.kernel_shap_solve(masks, w, v[..., 0], ve[:, 0], vf[:, 0], prior=prior[:, 0])
    close(phi, ops.kernel_shap_solve(masks, w, v, ve, vf, prior=prior)[:, 0], 1e-12)
    f32 = ops.kernel_shap_solve(
        masks, w.float(), v.float(), ve.float(), vf.float(), prior=prior.float(), rho=0.3
    )
    assert f32.dtype == torch.float32


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"rho": -1.0}, "rho"),
        ({"rho": math.nan}, "rho"),
        ({"rho": math.inf}, "rho"),
        ({"rho": True}, "rho"),
        ({"rho": "1"}, "rho"),
        ({"prior": torch.zeros(2, 4, dtype=F64)}, r"prior: expected shape \(2, 5\)"),
        ({"prior": torch.zeros(2, 1, 5, dtype=F64)}, r"prior: expected shape \(2, 5\)"),
        ({"prior": torch.zeros(2, 5, dtype=torch.int64)}, "prior"),
        ({"prior": torch.full((2, 5), math.nan, dtype=F64)}, "prior"),
        ({"prior": [[0.0] * 5] * 2}, "prior"),
    ],
)
def test_kernel_shap_prior_and_rho_errors(kw, match):
    masks, w, v, ve, vf, _ = _prior_problem(2, 20, 5, 1, "random", 411)
    with pytest.raises((ValueError, TypeError), match=match):
        ops.kernel_shap_solve(masks, w, v[..., 0], ve[:, 0], vf[:, 0], **kw)


# ------------------------------------------------------------------------------ linear_fit
def _lime_problem(n, d, B, T, seed, per_masks=False, per_weights=False):
    masks = rand_masks((B, n, d) if per_masks else (n, d), seed)
    weights = torch.rand((B, n) if per_weights else (n,), generator=gen(seed + 1), dtype=F64)
    weights = weights + 0.05
    values = torch.randn((B, n) if T is None else (B, n, T), generator=gen(seed + 2), dtype=F64)
    # a signal, so that the lasso keeps some coefficients
    beta = torch.randn((d,), generator=gen(seed + 3), dtype=F64)
    sig = masks.to(F64) @ beta
    values = values * 0.3 + (sig if T is None else sig.unsqueeze(-1))
    return masks, weights, values


def _ridge_closed_form(X, y, w, alpha):
    sw = w.sum()
    xbar = (w[:, None] * X).sum(0) / sw
    ybar = (w * y).sum() / sw
    Xc, yc = X - xbar, y - ybar
    A = Xc.T @ (w[:, None] * Xc) + alpha * torch.eye(X.shape[1], dtype=F64)
    beta = torch.linalg.solve(A, Xc.T @ (w * yc))
    return beta, ybar - xbar @ beta


@pytest.mark.parametrize("alpha", [0.0, 0.01, 1.0])
def test_ridge_matches_closed_form_and_sklearn(alpha):
    from sklearn.linear_model import Ridge

    n, d, B = 80, 7, 2
    masks, weights, values = _lime_problem(n, d, B, None, 81)
    coef, icpt = ops.linear_fit(masks, weights, values, alpha=alpha, method="ridge")
    assert coef.shape == (B, d) and icpt.shape == (B,)
    X = masks.to(F64)
    for b in range(B):
        beta, c0 = _ridge_closed_form(X, values[b], weights, alpha)
        close(coef[b], beta, 1e-8)
        close(icpt[b], c0, 1e-8)
        sk = Ridge(alpha=alpha).fit(X.numpy(), values[b].numpy(), sample_weight=weights.numpy())
        np.testing.assert_allclose(coef[b].numpy(), sk.coef_, rtol=0, atol=1e-8)
        np.testing.assert_allclose(float(icpt[b]), sk.intercept_, rtol=0, atol=1e-8)


@pytest.mark.parametrize("n,d", [(10, 30), (25, 200), (8, 8)])
def test_ridge_and_linear_regression_rank_deficient_match_sklearn(n, d):
    # Fewer rows than features (the dual form): alpha > 0 is sklearn's Ridge, alpha = 0
    # LinearRegression's minimum-norm lstsq solution (not an arbitrary least-squares one).
    from sklearn.linear_model import LinearRegression, Ridge

    masks, weights, values = _lime_problem(n, d, 2, None, 151 + d)
    X = masks.to(F64).numpy()
    for alpha in (0.0, 0.01, 1.0):
        coef, icpt = ops.linear_fit(masks, weights, values, alpha=alpha, method="ridge")
        ec, ei = ref.linear_fit(masks[None], weights[None], values[..., None], alpha, False)
        close(coef, ec[:, 0], 1e-9)
        for b in range(2):
            sk = Ridge(alpha=alpha) if alpha else LinearRegression()
            sk.fit(X, values[b].numpy(), sample_weight=weights.numpy())
            np.testing.assert_allclose(coef[b].numpy(), sk.coef_, rtol=0, atol=1e-8)
            np.testing.assert_allclose(float(icpt[b]), sk.intercept_, rtol=0, atol=1e-8)


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_lasso_with_fewer_rows_than_features_matches_sklearn(alpha):
    # n < d: coordinate descent on the data (no d x d Gram), the same iterates.
    from sklearn.linear_model import Lasso

    n, d = 30, 60
    masks, weights, values = _lime_problem(n, d, 2, None, 161)
    kw = {"alpha": alpha, "method": "lasso", "tol": 1e-10, "max_iter": 100000}
    coef, icpt = ops.linear_fit(masks, weights, values, **kw)
    ec, _ = ref.linear_fit(masks[None], weights[None], values[..., None], alpha, True, 10**5, 1e-10)
    close(coef, ec[:, 0], 1e-9)
    X = masks.to(F64).numpy()
    for b in range(2):
        sk = Lasso(alpha=alpha, tol=1e-12, max_iter=100000)
        sk.fit(X, values[b].numpy(), sample_weight=weights.numpy())
        np.testing.assert_allclose(coef[b].numpy(), sk.coef_, rtol=0, atol=1e-7)
        np.testing.assert_allclose(float(icpt[b]), sk.intercept_, rtol=0, atol=1e-7)
        assert (sk.coef_ == 0).any()  # the penalty is active: not a least-squares fit


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.1])
def test_lasso_matches_sklearn(alpha):
    from sklearn.linear_model import Lasso

    n, d, B = 120, 8, 2
    masks, weights, values = _lime_problem(n, d, B, None, 91)
    coef, icpt = ops.linear_fit(
        masks, weights, values, alpha=alpha, method="lasso", tol=1e-10, max_iter=100000
    )
    X = masks.to(F64).numpy()
    zeros = 0
    for b in range(B):
        sk = Lasso(alpha=alpha, tol=1e-12, max_iter=100000)
        sk.fit(X, values[b].numpy(), sample_weight=weights.numpy())
        np.testing.assert_allclose(coef[b].numpy(), sk.coef_, rtol=0, atol=1e-6)
        np.testing.assert_allclose(float(icpt[b]), sk.intercept_, rtol=0, atol=1e-6)
        zeros += int((sk.coef_ == 0).sum())
    if alpha == 0.1:
        assert zeros > 0  # the penalty is doing something, so the check is not vacuous


@pytest.mark.parametrize("n", [1, 3, 40])  # 40 > d: the Gram form; 1, 3 < d: the data
def test_lasso_skips_a_column_present_in_every_sample(n):
    """A feature in every sample has no variance: exactly 0 in both the kernel and the
    reference, whatever the scale of the values (a few ulps of rounding in its centred
    Gram diagonal once gave -5.8e29 in the reference and 0 in the kernel)."""
    g = torch.Generator().manual_seed(23)
    d = 4
    masks = torch.rand(n, d, generator=g) < 0.5
    masks[:, 1] = True
    w = torch.rand(n, generator=g, dtype=torch.float64) + 0.1
    v = torch.randn(1, n, generator=g, dtype=torch.float64) * 1e30
    coef, icpt = ops.linear_fit(masks, w, v, method="lasso", alpha=0.01)
    rc, ri = ref.linear_fit(masks[None], w[None], v[..., None], 0.01, True)
    assert coef[0, 1] == 0 and rc[0, 0, 1] == 0
    torch.testing.assert_close(coef, rc[:, 0], rtol=1e-6, atol=0)
    torch.testing.assert_close(icpt, ri[:, 0], rtol=1e-6, atol=0)


def test_lasso_differs_from_ridge():
    masks, weights, values = _lime_problem(60, 6, 1, None, 95)
    lasso, _ = ops.linear_fit(masks, weights, values, alpha=0.1, method="lasso")
    ridge, _ = ops.linear_fit(masks, weights, values, alpha=0.1, method="ridge")
    assert (lasso - ridge).abs().max() > 1e-3


@pytest.mark.parametrize("method", ["ridge", "lasso"])
@pytest.mark.parametrize("per_masks", [False, True])
@pytest.mark.parametrize("per_weights", [False, True])
def test_linear_fit_per_example_and_outputs(method, per_masks, per_weights):
    from sklearn.linear_model import Lasso, Ridge

    n, d, B, T = 50, 5, 3, 3
    masks, weights, values = _lime_problem(n, d, B, T, 101, per_masks, per_weights)
    alpha = 0.02
    coef, icpt = ops.linear_fit(
        masks, weights, values, alpha=alpha, method=method, tol=1e-10, max_iter=100000
    )
    assert coef.shape == (B, T, d) and icpt.shape == (B, T)
    tol = 1e-8 if method == "ridge" else 1e-6
    for b in range(B):
        X = (masks[b] if per_masks else masks).to(F64).numpy()
        w = (weights[b] if per_weights else weights).numpy()
        for t in range(T):
            if method == "ridge":
                sk = Ridge(alpha=alpha).fit(X, values[b, :, t].numpy(), sample_weight=w)
            else:
                sk = Lasso(alpha=alpha, tol=1e-12, max_iter=100000)
                sk.fit(X, values[b, :, t].numpy(), sample_weight=w)
            np.testing.assert_allclose(coef[b, t].numpy(), sk.coef_, rtol=0, atol=tol)
            np.testing.assert_allclose(float(icpt[b, t]), sk.intercept_, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("method", ["ridge", "lasso"])
@pytest.mark.parametrize("T", [None, 2])
def test_linear_fit_matches_reference(dtype, method, T):
    n, d, B = 40, 6, 2
    masks, weights, values = _lime_problem(n, d, B, T, 111, per_masks=True)
    weights, values = weights.to(dtype), values.to(dtype)
    coef, icpt = ops.linear_fit(masks, weights, values, alpha=0.01, method=method)
    assert coef.dtype == dtype and icpt.dtype == dtype
    Tn = 1 if T is None else T
    ec, ei = ref.linear_fit(
        masks, weights[None], values.reshape(B, n, Tn), 0.01, method == "lasso", 1000, 1e-7
    )
    tol = ref_tol(dtype) if method == "ridge" else max(ref_tol(dtype), 1e-8)
    close(coef.reshape(B, Tn, d), ec, tol)
    close(icpt.reshape(B, Tn), ei, tol)


# ----------------------------------------------------------------- permutation_accumulate
def _perm_values(table: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """values[b, p, j] = v(first j features of perm p) for a table [B, 2^d(, T)]."""
    P, d = perms.shape[-2:]
    pb = perms.long() if perms.dim() == 3 else perms.long().expand(table.shape[0], P, d)
    bits = torch.zeros(pb.shape[:2] + (d + 1,), dtype=torch.long)
    bits[..., 1:] = (1 << pb).cumsum(-1)
    return torch.stack([table[b, bits[b]] for b in range(table.shape[0])])


def _contributions(perms: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Marginal contributions [P, d] for one input and output (numpy, by a loop)."""
    P, d = perms.shape
    out = np.zeros((P, d))
    for p in range(P):
        for j in range(d):
            out[p, perms[p, j]] = values[p, j + 1] - values[p, j]
    return out


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("per_example", [False, True])
@pytest.mark.parametrize("T", [None, 3])
@pytest.mark.parametrize("antithetic", [False, True])
def test_permutation_matches_reference(dtype, per_example, T, antithetic):
    B, P, d = 3, 8, 6
    if per_example:
        perms = torch.stack(
            [ops.permutations(P, d, seed=200 + b, antithetic=antithetic) for b in range(B)]
        )
    else:
        perms = ops.permutations(P, d, seed=200, antithetic=antithetic)
    shape = (B, P, d + 1) if T is None else (B, P, d + 1, T)
    values = torch.randn(shape, generator=gen(201), dtype=F64).to(dtype)
    mean, se = ops.permutation_accumulate(perms, values, antithetic=antithetic, return_stderr=True)
    Tn = 1 if T is None else T
    em, es = ref.permutation_accumulate(
        perms if per_example else perms[None],
        values.reshape(B, P, d + 1, Tn),
        2 if antithetic else 1,
    )
    close(mean.reshape(B, Tn, d), em, ref_tol(dtype))
    close(se.reshape(B, Tn, d), es, ref_tol(dtype))
    only_mean = ops.permutation_accumulate(perms, values, antithetic=antithetic)
    assert torch.equal(only_mean, mean)


def test_permutation_efficiency_exact():
    B, P, d, T = 3, 7, 9, 2
    table = random_table(d, B=B, T=T, seed=211) * 1e3
    perms = ops.permutations(P, d, seed=212)
    values = _perm_values(table, perms)
    phi = ops.permutation_accumulate(perms, values)
    delta = (table[:, -1] - table[:, 0]).unsqueeze(-1)  # [B, T, 1]
    err = (phi.sum(-1, keepdim=True) - delta).abs()
    assert (err <= 1e-12 * (phi.abs().sum(-1, keepdim=True) + delta.abs())).all()


def test_permutation_all_orders_is_exact_shapley():
    d = 4
    table = random_table(d, B=2, T=2, seed=221)
    perms = torch.tensor(list(itertools.permutations(range(d))), dtype=torch.int32)
    values = _perm_values(table, perms)
    phi = ops.permutation_accumulate(perms, values)
    close(phi, ops.exact_shapley(table), 1e-12)
    brute = torch.tensor(brute_values(table[0, :, 1].tolist(), d, banzhaf=False), dtype=F64)
    close(phi[0, 1], brute, 1e-12)


def test_permutation_per_example_perms():
    # Per-example permutations: example b must use its own orders.
    B, d = 2, 4
    table = random_table(d, B=B, seed=225)
    perms = torch.tensor(list(itertools.permutations(range(d))), dtype=torch.int32)
    perms2 = torch.stack([perms, perms.flip(0)])
    values = _perm_values(table, perms2)
    phi = ops.permutation_accumulate(perms2, values)
    close(phi, ops.exact_shapley(table), 1e-12)
    # shuffling the values of example 1 against its permutations changes the answer
    wrong = ops.permutation_accumulate(perms, values)
    assert (wrong[1] - phi[1]).abs().max() > 1e-6


def test_permutation_stderr_matches_numpy():
    B, P, d = 2, 13, 5
    perms = ops.permutations(P, d, seed=231)
    values = torch.randn((B, P, d + 1), generator=gen(232), dtype=F64)
    mean, se = ops.permutation_accumulate(perms, values, return_stderr=True)
    for b in range(B):
        c = _contributions(perms.numpy(), values[b].numpy())
        np.testing.assert_allclose(mean[b].numpy(), c.mean(0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            se[b].numpy(), c.std(0, ddof=1) / np.sqrt(P), rtol=1e-10, atol=1e-14
        )


def test_permutation_antithetic_stderr_over_pairs():
    B, P, d = 2, 12, 5
    perms = ops.permutations(P, d, seed=241, antithetic=True)
    assert torch.equal(perms[1::2], perms[0::2].flip(1))
    values = torch.randn((B, P, d + 1), generator=gen(242), dtype=F64)
    mean, se = ops.permutation_accumulate(perms, values, antithetic=True, return_stderr=True)
    plain_mean, plain_se = ops.permutation_accumulate(perms, values, return_stderr=True)
    for b in range(B):
        c = _contributions(perms.numpy(), values[b].numpy())
        pairs = 0.5 * (c[0::2] + c[1::2])
        np.testing.assert_allclose(mean[b].numpy(), pairs.mean(0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            se[b].numpy(), pairs.std(0, ddof=1) / np.sqrt(P // 2), rtol=1e-10, atol=1e-14
        )
    close(mean, plain_mean, 1e-12)
    assert (se - plain_se).abs().max() > 1e-6  # the pairing matters


def test_permutation_stderr_nan_for_one_unit():
    d = 4
    values = torch.randn((2, 1, d + 1), generator=gen(251), dtype=F64)
    mean, se = ops.permutation_accumulate(
        ops.permutations(1, d, seed=0), values, return_stderr=True
    )
    assert torch.isfinite(mean).all() and torch.isnan(se).all()
    values2 = torch.randn((2, 2, d + 1), generator=gen(252), dtype=F64)
    perms2 = ops.permutations(2, d, seed=1, antithetic=True)
    mean, se = ops.permutation_accumulate(perms2, values2, antithetic=True, return_stderr=True)
    assert torch.isfinite(mean).all() and torch.isnan(se).all()
    _, se = ops.permutation_accumulate(perms2, values2, return_stderr=True)
    assert torch.isfinite(se).all()


# ------------------------------------------------------------------------------ banzhaf
def _banzhaf_direct(masks: torch.Tensor, values: torch.Tensor, counts=None) -> torch.Tensor:
    """The definition, by loops: masks [n, d], values [n] -> [d]."""
    n, d = masks.shape
    c = [1.0] * n if counts is None else [float(x) for x in counts]
    out = []
    for i in range(d):
        s1 = n1 = s0 = n0 = 0.0
        for r in range(n):
            if bool(masks[r, i]):
                s1 += c[r] * float(values[r])
                n1 += c[r]
            else:
                s0 += c[r] * float(values[r])
                n0 += c[r]
        out.append(s1 / n1 - s0 / n0)
    return torch.tensor(out, dtype=F64)


@pytest.mark.parametrize("with_counts", [False, True])
@pytest.mark.parametrize("per_example", [False, True])
def test_banzhaf_matches_definition(with_counts, per_example):
    B, n, d, T = 2, 40, 6, 2
    masks = rand_masks((B, n, d) if per_example else (n, d), 301)
    values = torch.randn((B, n, T), generator=gen(302), dtype=F64)
    counts = torch.randint(1, 5, (n,), generator=gen(303)) if with_counts else None
    out = ops.banzhaf_msr(masks, values, counts)
    assert out.shape == (B, T, d)
    for b in range(B):
        m = masks[b] if per_example else masks
        for t in range(T):
            close(out[b, t], _banzhaf_direct(m, values[b, :, t], counts), 1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("T", [None, 3])
@pytest.mark.parametrize("count_dtype", [None, torch.int64, F64])
def test_banzhaf_matches_reference(dtype, T, count_dtype):
    B, n, d = 3, 30, 5
    masks = rand_masks((B, n, d), 311)
    shape = (B, n) if T is None else (B, n, T)
    values = torch.randn(shape, generator=gen(312), dtype=F64).to(dtype)
    counts = None
    if count_dtype is not None:
        counts = torch.randint(1, 4, (B, n), generator=gen(313)).to(count_dtype)
    out = ops.banzhaf_msr(masks, values, counts)
    Tn = 1 if T is None else T
    expect = ref.banzhaf_msr(
        masks, None if counts is None else counts.to(dtype), values.reshape(B, n, Tn)
    )
    close(out.reshape(B, Tn, d), expect, ref_tol(dtype))


def test_banzhaf_zero_counts_ignore_rows():
    n, d = 20, 4
    masks = rand_masks((n, d), 321)
    values = torch.randn((1, n), generator=gen(322), dtype=F64)
    counts = torch.ones(n, dtype=torch.int64)
    counts[::3] = 0
    out = ops.banzhaf_msr(masks, values, counts)
    keep = counts > 0
    close(out, ops.banzhaf_msr(masks[keep], values[:, keep]), 1e-12)


def test_banzhaf_converges_to_exact():
    d = 4
    table = random_table(d, B=1, T=None, seed=331)
    masks = ops.bernoulli_masks(200_000, d, 0.5, seed=332)
    est = ops.banzhaf_msr(masks, lookup(table, masks))
    exact = ops.exact_banzhaf(table)
    assert (est - exact).abs().max() < 0.02
    # the estimator is not simply returning something small
    assert exact.abs().max() > 0.1


def test_banzhaf_unique_counts_equal_raw_rows():
    d, n = 5, 400
    table = random_table(d, B=2, T=None, seed=341)
    masks = ops.bernoulli_masks(n, d, 0.5, seed=342)
    uniq, inverse, counts = ops.unique_coalitions(masks)
    assert uniq.shape[0] < n  # there are duplicates to fold
    raw = ops.banzhaf_msr(masks, lookup(table, masks))
    folded = ops.banzhaf_msr(uniq, lookup(table, uniq), counts)
    close(folded, raw, 1e-12)
    unweighted = ops.banzhaf_msr(uniq, lookup(table, uniq))
    assert (unweighted - raw).abs().max() > 1e-6


@pytest.mark.parametrize("fill", [True, False])
def test_banzhaf_feature_in_all_or_no_rows(fill):
    masks = rand_masks((10, 4), 351)
    masks[:, 2] = fill
    values = torch.randn((1, 10), generator=gen(352), dtype=F64)
    with pytest.raises(ValueError, match="masks"):
        ops.banzhaf_msr(masks, values)


def test_banzhaf_feature_only_in_zero_count_rows():
    masks = torch.tensor([[True, False], [False, True], [True, True], [False, False]])
    values = torch.randn((1, 4), generator=gen(353), dtype=F64)
    counts = torch.tensor([0, 1, 0, 1])  # feature 0 appears only with count 0
    with pytest.raises(ValueError, match="masks"):
        ops.banzhaf_msr(masks, values, counts)


# ---------------------------------------------------------------------------- exact
@pytest.mark.parametrize("d", list(range(1, 11)))
def test_exact_matches_brute_force(d):
    table = random_table(d, B=2, seed=400 + d)
    shap = ops.exact_shapley(table)
    banz = ops.exact_banzhaf(table)
    assert shap.shape == (2, d) and banz.shape == (2, d)
    for b in range(2):
        t = table[b].tolist()
        close(shap[b], torch.tensor(brute_values(t, d, False), dtype=F64), 1e-12)
        close(banz[b], torch.tensor(brute_values(t, d, True), dtype=F64), 1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("banzhaf", [False, True])
def test_exact_matches_reference(dtype, banzhaf):
    table = random_table(9, B=2, T=3, seed=411).to(dtype)
    out = (ops.exact_banzhaf if banzhaf else ops.exact_shapley)(table)
    assert out.dtype == dtype
    close(out, ref.exact_values(table, banzhaf), ref_tol(dtype))


@pytest.mark.parametrize("d", [2, 5, 12])
def test_exact_shapley_efficiency(d):
    table = random_table(d, B=3, T=2, seed=421 + d) * 100
    phi = ops.exact_shapley(table)
    delta = table[:, -1] - table[:, 0]
    assert ((phi.sum(-1) - delta).abs() <= 1e-12 * (phi.abs().sum(-1) + delta.abs())).all()


def _swap_bits(r: torch.Tensor, i: int, j: int) -> torch.Tensor:
    bi, bj = (r >> i) & 1, (r >> j) & 1
    return r ^ ((bi ^ bj) << i) ^ ((bi ^ bj) << j)


@pytest.mark.parametrize("exact", [ops.exact_shapley, ops.exact_banzhaf])
def test_exact_symmetry(exact):
    d, i, j = 6, 1, 4
    table = random_table(d, B=2, seed=431)
    r = torch.arange(2**d)
    sym = 0.5 * (table + table[:, _swap_bits(r, i, j)])
    phi = exact(sym)
    close(phi[:, i], phi[:, j], 1e-12)
    raw = exact(table)
    assert (raw[:, i] - raw[:, j]).abs().max() > 1e-6


@pytest.mark.parametrize("exact", [ops.exact_shapley, ops.exact_banzhaf])
def test_exact_dummy(exact):
    d, k = 7, 3
    table = random_table(d, B=2, T=2, seed=441)
    r = torch.arange(2**d)
    dummy = table[:, r & ~(1 << k)]  # v(S) = v(S without k)
    phi = exact(dummy)
    assert (phi[..., k].abs() <= 1e-12).all()
    assert (phi.abs().amax(-1) > 1e-3).all()


@pytest.mark.parametrize("exact", [ops.exact_shapley, ops.exact_banzhaf])
def test_exact_linearity(exact):
    d = 8
    v = random_table(d, B=2, seed=451)
    w = random_table(d, B=2, seed=452)
    a, b = 2.5, -0.75
    close(exact(a * v + b * w), a * exact(v) + b * exact(w), 1e-12)


@pytest.mark.parametrize("exact", [ops.exact_shapley, ops.exact_banzhaf])
def test_exact_multiple_outputs(exact):
    d, T = 6, 4
    table = random_table(d, B=2, T=T, seed=461)
    out = exact(table)
    assert out.shape == (2, T, d)
    for t in range(T):
        assert torch.equal(out[:, t], exact(table[:, :, t].contiguous()))


def test_exact_rejects_bad_row_counts():
    with pytest.raises(ValueError, match="values"):
        ops.exact_shapley(torch.zeros((1, 2**21), dtype=F64))
    for rows in (1, 6, 12, 1000):
        with pytest.raises(ValueError, match="values"):
            ops.exact_shapley(torch.zeros((1, rows), dtype=F64))
        with pytest.raises(ValueError, match="values"):
            ops.exact_banzhaf(torch.zeros((1, rows, 2), dtype=F64))


# ------------------------------------------------------------------------ pack / unique
def _keys_by_hand(masks: torch.Tensor) -> torch.Tensor:
    n, d = masks.shape
    W = (d + 63) // 64
    out = np.zeros((n, W), dtype=np.uint64)
    m = masks.numpy()
    for r in range(n):
        for i in range(d):
            if m[r, i]:
                out[r, i // 64] |= np.uint64(1) << np.uint64(i % 64)
    return torch.from_numpy(out.view(np.int64))


@pytest.mark.parametrize("d", [1, 63, 64, 65, 130])
def test_pack_round_trip(d):
    n = 37
    masks = rand_masks((n, d), 500 + d)
    masks[0] = True  # bit 63 set (negative int64 key) for d >= 64
    masks[1] = False
    keys = ops.pack_masks(masks)
    assert keys.shape == (n, (d + 63) // 64) and keys.dtype == torch.int64
    assert torch.equal(keys, _keys_by_hand(masks))
    assert torch.equal(keys, ref.pack_masks(masks))
    back = ops.unpack_masks(keys, d)
    assert back.dtype == torch.bool and torch.equal(back, masks)
    assert torch.equal(ref.unpack_masks(keys, d), masks)


def test_pack_bit_layout():
    d = 130
    for i in (0, 1, 62, 63, 64, 100, 127, 128, 129):
        m = torch.zeros((1, d), dtype=torch.bool)
        m[0, i] = True
        keys = ops.pack_masks(m)
        want = np.zeros(3, dtype=np.uint64)
        want[i // 64] = np.uint64(1) << np.uint64(i % 64)
        assert keys[0].tolist() == want.view(np.int64).tolist(), i


def test_unpack_ignores_bits_past_d():
    keys = torch.tensor([[-1]], dtype=torch.int64)  # all 64 bits set
    assert torch.equal(ops.unpack_masks(keys, 5), torch.ones((1, 5), dtype=torch.bool))


@pytest.mark.parametrize("d", [3, 10, 70])
def test_unique_coalitions(d):
    n = 300
    masks = rand_masks((n, d), 510 + d, p=0.5 if d < 10 else 0.97)
    masks = torch.cat([masks, masks[:50]])  # duplicates for every d
    uniq, inverse, counts = ops.unique_coalitions(masks)
    assert uniq.dtype == torch.bool and inverse.dtype == torch.int64
    assert torch.equal(uniq[inverse], masks)
    assert int(counts.sum()) == masks.shape[0]
    assert torch.equal(counts, torch.bincount(inverse, minlength=uniq.shape[0]))
    assert torch.unique(uniq, dim=0).shape[0] == uniq.shape[0]  # no duplicate rows
    tu, tcounts = torch.unique(masks, dim=0, return_counts=True)
    assert {tuple(r) for r in uniq.tolist()} == {tuple(r) for r in tu.tolist()}
    ours = dict(zip(map(tuple, uniq.tolist()), counts.tolist()))
    theirs = dict(zip(map(tuple, tu.tolist()), tcounts.tolist()))
    assert ours == theirs
    # key order: rows sorted by their packed keys
    keys = ops.pack_masks(uniq)
    assert torch.equal(torch.unique(keys, dim=0), keys)


# ---------------------------------------------------------------------------- determinism
def _solver_calls():
    B, n, d, T = 8, 120, 9, 3
    masks = rand_masks((B, n, d), 601)
    shared = rand_masks((n, d), 602)
    weights = torch.rand((B, n), generator=gen(603), dtype=F64) + 0.1
    values = torch.randn((B, n, T), generator=gen(604), dtype=F64)
    ve = torch.randn((B, T), generator=gen(605), dtype=F64)
    vf = torch.randn((B, T), generator=gen(606), dtype=F64)
    perms = torch.stack([ops.permutations(16, d, seed=607 + b) for b in range(B)])
    pvals = torch.randn((B, 16, d + 1, T), generator=gen(608), dtype=F64)
    table = random_table(12, B=4, T=2, seed=609)
    big = rand_masks((5000, 200), 610)
    return {
        "kernel_shap_per_example": lambda: ops.kernel_shap_solve(masks, weights, values, ve, vf),
        "kernel_shap_shared": lambda: ops.kernel_shap_solve(
            shared, weights[0], values.float(), ve.float(), vf.float()
        ),
        "ridge": lambda: ops.linear_fit(masks, weights, values, method="ridge"),
        "lasso": lambda: ops.linear_fit(shared, weights[0], values, method="lasso", alpha=0.01),
        "permutation": lambda: ops.permutation_accumulate(perms, pvals, return_stderr=True),
        "banzhaf": lambda: ops.banzhaf_msr(masks, values),
        "exact_shapley": lambda: ops.exact_shapley(table),
        "exact_banzhaf": lambda: ops.exact_banzhaf(table),
        "pack": lambda: ops.pack_masks(big),
        "unique": lambda: ops.unique_coalitions(big[:, :3]),
    }


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits of a tensor (NaN-safe, tells -0.0 from 0.0)."""
    if t.dtype == F64:
        return t.view(torch.int64)
    if t.dtype == torch.float32:
        return t.view(torch.int32)
    return t


@pytest.mark.parametrize("name", list(_solver_calls()))
def test_deterministic_across_threads_and_calls(name, restore_threads):
    call = _solver_calls()[name]
    torch.set_num_threads(1)
    one = call()
    torch.set_num_threads(2)
    two = call()
    again = call()
    one, two, again = (list(o) if isinstance(o, tuple) else [o] for o in (one, two, again))
    assert len(one) == len(two) == len(again)
    for a, b, c in zip(one, two, again):
        assert torch.equal(_bits(a), _bits(b))
        assert torch.equal(_bits(b), _bits(c))


# ------------------------------------------- issue 11: bool bytes, int64 ids, empties
def odd_bytes(masks: torch.Tensor, seed: int) -> torch.Tensor:
    """The same masks with every True byte replaced by a random byte in 2..255: torch
    reads any nonzero byte of a bool tensor as True (a uint8 tensor viewed as bool)."""
    raw = torch.randint(2, 256, masks.shape, generator=gen(seed), dtype=torch.uint8)
    return (raw * masks.to(torch.uint8)).view(torch.bool)


def test_kernel_shap_reads_nonzero_mask_bytes_as_present():
    # The review's case: [0, 0, 5] when the solver read a byte of 2 as absent (b & 1).
    m = ops.enumerate_coalitions(3)
    v = (m.double() @ torch.tensor([1.0, 3.375, 0.625], dtype=F64))[None]
    two = (m.to(torch.uint8) * 2).view(torch.bool)
    phi = ops.kernel_shap_solve(two, torch.ones(8, dtype=F64), v, v[:, 0], v[:, -1])
    close(phi, torch.tensor([[1.0, 3.375, 0.625]], dtype=F64), 1e-12)


@pytest.mark.parametrize("per_example", [False, True])
def test_solvers_read_mask_bytes_as_torch_does(per_example):
    B, n, d = 3, 24, 5
    masks = rand_masks((B, n, d) if per_example else (n, d), 901)
    odd = odd_bytes(masks, 902)
    assert torch.equal(odd, masks) and not torch.equal(odd.view(torch.uint8), masks.byte())
    w = torch.rand(n, generator=gen(903), dtype=F64) + 0.1
    v = torch.randn((B, n), generator=gen(904), dtype=F64)
    ve, vf = v[:, 0], v[:, 1]
    calls = {
        "kernel_shap_solve": lambda m: ops.kernel_shap_solve(m, w, v, ve, vf),
        "ridge": lambda m: ops.linear_fit(m, w, v, method="ridge", alpha=0.1),
        "lasso": lambda m: ops.linear_fit(m, w, v, method="lasso", alpha=0.01),
        "banzhaf_msr": lambda m: ops.banzhaf_msr(m, v),
    }
    for name, call in calls.items():
        got, want = call(odd), call(masks)
        for a, b in zip(
            got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)
        ):
            assert torch.equal(a, b), name
    flat = odd.reshape(-1, d)
    assert torch.equal(ops.pack_masks(flat), ops.pack_masks(masks.reshape(-1, d)))
    assert torch.equal(ops.pack_masks(flat), ref.pack_masks(flat))
    uniq, inverse, counts = ops.unique_coalitions(flat)
    assert torch.equal(uniq[inverse], masks.reshape(-1, d))


def test_references_read_mask_bytes_as_torch_does():
    B, n, d = 2, 16, 4
    masks = rand_masks((n, d), 911)[None]
    odd = odd_bytes(masks, 912)
    w = torch.rand((1, n), generator=gen(913), dtype=F64) + 0.1
    v = torch.randn((B, n, 1), generator=gen(914), dtype=F64)
    ve, vf = v[:, 0], v[:, 1]
    assert torch.equal(
        ref.kernel_shap_solve(odd, w, v, ve, vf), ref.kernel_shap_solve(masks, w, v, ve, vf)
    )
    assert torch.equal(
        ref.linear_fit(odd, w, v, 0.1, False)[0], ref.linear_fit(masks, w, v, 0.1, False)[0]
    )
    assert torch.equal(ref.banzhaf_msr(odd, None, v), ref.banzhaf_msr(masks, None, v))


def test_permutation_accumulate_rejects_int64_ids_that_wrap_int32():
    # 2^32 + 2 wraps to the valid id 2 in int32: the op used to return [1, 2, 4] here.
    perms = torch.tensor([[0, 1, 2**32 + 2]], dtype=torch.int64)
    values = torch.tensor([[[0.0, 1.0, 3.0, 7.0]]], dtype=F64)
    with pytest.raises(ValueError, match=r"perms: .*4294967298"):
        ops.permutation_accumulate(perms, values)
    with pytest.raises(ValueError, match="perms"):
        ops.permutation_accumulate(perms - 2**33, values)  # -2^33 + ... wraps as well
    assert ops.permutation_accumulate(perms.clamp(max=2), values).tolist() == [[1.0, 2.0, 4.0]]


def _empty_calls(B: int, n: int, T: int | None):
    """Each solver on B examples and n coalitions (T outputs or one), per-example and
    shared masks: (name, op call, reference call, expected output shapes)."""
    d = 4
    shp = (B, n) if T is None else (B, n, T)
    out_shape = (B, d) if T is None else (B, T, d)
    v = torch.randn(shp, generator=gen(921), dtype=F64)
    per = rand_masks((B, n, d), 922)
    shared = rand_masks((n, d), 923)
    w = torch.ones(n, dtype=F64)
    ve = torch.zeros(shp[:1] + shp[2:], dtype=F64)
    v3 = v if T is not None else v.unsqueeze(-1)
    ve2 = ve.reshape(B, T or 1)
    calls = {}
    for tag, m in (("per", per), ("shared", shared)):
        m3 = m if m.dim() == 3 else m[None]
        calls[f"ks-{tag}"] = (
            lambda m=m: ops.kernel_shap_solve(m, w, v, ve, ve),
            lambda m3=m3: ref.kernel_shap_solve(m3, w[None], v3, ve2, ve2),
            [out_shape],
        )
        calls[f"ridge-{tag}"] = (
            lambda m=m: ops.linear_fit(m, w, v, method="ridge"),
            lambda m3=m3: ref.linear_fit(m3, w[None], v3, 0.01, False),
            [out_shape, out_shape[:-1]],
        )
    return calls


@pytest.mark.parametrize("T", [None, 2])
def test_solvers_accept_an_empty_batch(T):
    B, n, d = 0, 8, 4
    for name, (call, reference, shapes) in _empty_calls(B, n, T).items():
        got = call()
        got = got if isinstance(got, tuple) else (got,)
        assert [tuple(g.shape) for g in got] == shapes, name
        want = reference()
        want = want if isinstance(want, tuple) else (want,)
        assert [g.numel() for g in want] == [0] * len(want), name
    v = torch.zeros((0, n) if T is None else (0, n, T), dtype=F64)
    per = rand_masks((0, n, d), 924)
    shared = ops.enumerate_coalitions(3)
    vb = torch.zeros((0, 8) if T is None else (0, 8, T), dtype=F64)
    shape = (0, 3) if T is None else (0, T, 3)
    assert ops.banzhaf_msr(per, v).shape == ((0, d) if T is None else (0, T, d))
    assert ops.banzhaf_msr(shared, vb).shape == shape
    assert ops.exact_shapley(vb).shape == shape
    assert ops.exact_banzhaf(vb).shape == shape
    perms = ops.permutations(3, d, seed=0)
    pv = torch.zeros((0, 3, d + 1) if T is None else (0, 3, d + 1, T), dtype=F64)
    out_pd = (0, d) if T is None else (0, T, d)
    for p in (perms, perms.expand(0, 3, d)):
        mean, se = ops.permutation_accumulate(p, pv, return_stderr=True)
        assert mean.shape == se.shape == out_pd
    pv4 = pv if T is not None else pv.unsqueeze(-1)
    ref_mean, _ = ref.permutation_accumulate(perms.expand(0, 3, d), pv4, 1)
    assert ref_mean.numel() == 0


def test_pack_and_unique_accept_zero_rows():
    empty = torch.zeros((0, 70), dtype=torch.bool)
    keys = ops.pack_masks(empty)
    assert keys.shape == (0, 2) and torch.equal(keys, ref.pack_masks(empty))
    assert ops.unpack_masks(keys, 70).shape == (0, 70)
    uniq, inverse, counts = ops.unique_coalitions(empty[:, :5])
    assert uniq.shape == (0, 5) and inverse.shape == counts.shape == (0,)


# ---------------------------------------------------------- issue 11: overflow (15)
HUGE = 1e300


def test_solvers_report_overflow_of_finite_values():
    m = ops.enumerate_coalitions(3)
    v = (m.double() @ torch.tensor([1.0, -2.0, 3.0], dtype=F64))[None] * HUGE
    w = torch.full((8,), HUGE, dtype=F64)
    calls = {
        "kernel_shap_solve": lambda: ops.kernel_shap_solve(m, w, v, v[:, 0], v[:, -1]),
        "linear_fit": lambda: ops.linear_fit(m, w, v, method="ridge"),
        "exact_shapley": lambda: ops.exact_shapley(
            torch.tensor([[-HUGE, HUGE] * 4], dtype=F64) * 1e8
        ),
        "exact_banzhaf": lambda: ops.exact_banzhaf(
            torch.tensor([[-HUGE, HUGE] * 4], dtype=F64) * 1e8
        ),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=rf"{name}: the result overflowed"):
            call()


def test_float32_results_that_overflow_on_the_cast_are_reported():
    # Every input is a finite float32; the float64 differences exceed float32's range.
    big = torch.tensor(3e38, dtype=torch.float32)
    m = torch.tensor([[False, False], [True, False], [False, True], [True, True]])
    v = torch.stack([-big, big, -big, big])[None]
    with pytest.raises(ValueError, match="banzhaf_msr: the result overflowed"):
        ops.banzhaf_msr(m, v)
    with pytest.raises(ValueError, match="exact_shapley: the result overflowed"):
        ops.exact_shapley(v)
    perms = torch.tensor([[0, 1], [1, 0]], dtype=torch.int32)
    pv = torch.stack([torch.stack([-big, big, -big])] * 2)[None]
    with pytest.raises(ValueError, match="permutation_accumulate: the result overflowed"):
        ops.permutation_accumulate(perms, pv)


def test_banzhaf_still_blames_the_masks_when_a_side_is_empty():
    masks = torch.tensor([[True, False], [True, True]])
    with pytest.raises(ValueError, match="masks: feature 0 is in every sampled coalition"):
        ops.banzhaf_msr(masks, torch.tensor([[1.0, 2.0]], dtype=F64))


# ------------------------------------------------------------------ every device
# Each op on every device (the CPU's fast path and element launch, CUDA) against the
# CPU's fast path: the element launch runs the same arithmetic in the same order
# (bitwise); the GPU's solvers and reductions are compared to rounding (1e-10), its
# integer work (packing, de-duplication) bitwise.
def smooth_values(masks: torch.Tensor, B: int, T: int, seed: int) -> torch.Tensor:
    """Values of a smooth nonlinear game on the coalitions: [B, n, T]."""
    d = masks.shape[-1]
    w = torch.randn((B, T, d), generator=gen(seed), dtype=F64)
    m = masks.double()
    eq = "nd,btd->bnt" if masks.dim() == 2 else "bnd,btd->bnt"
    lin = torch.einsum(eq, m, w)
    return lin + 0.3 * torch.tanh(lin) ** 2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("T", (1, 3))
@pytest.mark.parametrize("n,shrink", [(200, False), (200, True), (5, True)])
def test_kernel_shap_solve_on_every_device(T, n, shrink, device):
    # shrink: toward a prior with a ridge (n = 5 < d: the dual form)
    B, d = 3, 9
    masks = ops.shapley_kernel_masks(n, d, seed=15)
    values = smooth_values(masks, B, T, 16)
    full = smooth_values(torch.ones(1, d, dtype=torch.bool), B, T, 16)[:, 0]
    empty = torch.zeros(B, T, dtype=F64)
    prior = torch.randn((B, T, d), generator=gen(17), dtype=F64)
    if T == 1:
        values, full, empty, prior = values[..., 0], full[:, 0], empty[:, 0], prior[:, 0]
    w = torch.ones(n, dtype=F64)
    kw = {"prior": prior, "rho": 0.3} if shrink else {}
    want = ops.kernel_shap_solve(masks, w, values, empty, full, **kw)
    with on(device) as dev:
        kw = {"prior": prior.to(dev), "rho": 0.3} if shrink else {}
        got = ops.kernel_shap_solve(*to(dev, masks, w, values, empty, full), **kw)
    held_to_cpu(device, got, want)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ("ridge", "lasso"))
def test_linear_fit_on_every_device(method, device):
    B, n, d, T = 2, 300, 10, 2
    masks = ops.bernoulli_masks(B * n, d, seed=17).reshape(B, n, d)
    values = smooth_values(masks, B, T, 18)
    w = torch.rand((B, n), generator=gen(19), dtype=F64) + 0.1
    # tol=0: coordinate descent runs to its fixed point, so a last-bit difference
    # between devices cannot stop one of them a sweep earlier.
    kw = {"alpha": 0.01, "method": method, "max_iter": 2000, "tol": 0.0}
    want = ops.linear_fit(masks, w, values, **kw)
    with on(device) as dev:
        got = ops.linear_fit(*to(dev, masks, w, values), **kw)
    held_to_cpu(device, got, want)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("antithetic", (False, True))
def test_permutation_accumulate_on_every_device(antithetic, device):
    B, P, d = 3, 40, 7
    perms = ops.permutations(P, d, seed=20, antithetic=antithetic)
    values = torch.randn(B, P, d + 1, 2, generator=gen(21), dtype=F64).cumsum(2)
    kw = {"antithetic": antithetic, "return_stderr": True}
    want = ops.permutation_accumulate(perms, values, **kw)
    with on(device) as dev:
        got = ops.permutation_accumulate(*to(dev, perms, values), **kw)
    held_to_cpu(device, got, want)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", (torch.float32, F64))
def test_banzhaf_msr_on_every_device(dtype, device):
    B, n, d = 2, 500, 300  # 300 features: two tiles of the CPU's fast path
    masks = ops.bernoulli_masks(n, d, seed=22)
    uniq, _, counts = ops.unique_coalitions(masks)
    for m, c in ((uniq, counts.to(dtype)), (masks, None)):
        values = smooth_values(m, B, 1, 23)[..., 0].to(dtype)
        want = ops.banzhaf_msr(m, values, c)
        with on(device) as dev:
            got = ops.banzhaf_msr(*to(dev, m, values, c))
        held_to_cpu(device, got, want, rtol=1e-6 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("d", (1, 4, 12))
def test_exact_shapley_and_banzhaf_on_every_device(d, device):
    masks = ops.enumerate_coalitions(d)
    values = smooth_values(masks, 2, 2, 24)
    for fn in (ops.exact_shapley, ops.exact_banzhaf):
        for v in (values, values[..., 0], values.float()):
            want = fn(v)
            with on(device) as dev:
                got = fn(v.to(dev))
            tol = {"rtol": 1e-6, "atol": 1e-6} if v.dtype == torch.float32 else {}
            held_to_cpu(device, got, want, **tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("d", (1, 63, 64, 65, 130))
def test_pack_unpack_unique_on_every_device(d, device):
    masks = ops.bernoulli_masks(400, d, seed=25)
    masks = torch.cat([masks, masks[:50]])  # duplicates
    keys = ops.pack_masks(masks)
    u, inv, cnt = ops.unique_coalitions(masks)
    with on(device) as dev:
        (md,) = to(dev, masks)
        gkeys = ops.pack_masks(md)
        unpacked = ops.unpack_masks(gkeys, d)
        got = ops.unique_coalitions(md)
    assert_same_bits(gkeys, keys)
    assert_same_bits(unpacked, masks)
    assert_same_bits(got, (u, inv, cnt))
