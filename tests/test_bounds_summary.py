"""xattr.bounds summaries: the matrices are the exact summaries, the closed-form factors
equal the ones of the explicit matrices, and the bounds hold on random game pairs."""

import math

import pytest
import torch

from xattr import ops
from xattr.bounds import factor_of_matrix, summary_factor, summary_matrix

SUMMARIES = ("shapley", "banzhaf", "loo", "mean_when_included")


def _semivalue(v, p):
    """phi_i = sum over S without i of p_|S| (v(S + i) - v(S)), by brute force."""
    d = len(p)
    phi = torch.zeros(d, dtype=torch.float64)
    for r in range(2**d):
        for i in range(d):
            if not (r >> i) & 1:
                phi[i] += p[bin(r).count("1")] * (v[r | (1 << i)] - v[r])
    return phi


@pytest.mark.parametrize("d", [1, 2, 3, 6])
def test_matrices_are_the_summaries(d):
    g = torch.Generator().manual_seed(d)
    v = torch.randn(2**d, generator=g, dtype=torch.float64)
    exact = ops.exact_shapley(v[None])[0]
    assert torch.allclose(summary_matrix("shapley", d) @ v, exact, atol=1e-12)
    banzhaf = ops.exact_banzhaf(v[None])[0]
    assert torch.allclose(summary_matrix("banzhaf", d) @ v, banzhaf, atol=1e-12)
    full = 2**d - 1
    loo = torch.tensor([v[full] - v[full & ~(1 << i)] for i in range(d)], dtype=torch.float64)
    assert torch.allclose(summary_matrix("loo", d) @ v, loo, atol=1e-12)
    incl = torch.tensor(
        [sum(float(v[r]) for r in range(2**d) if (r >> i) & 1) / 2 ** (d - 1) for i in range(d)],
        dtype=torch.float64,
    )
    assert torch.allclose(summary_matrix("mean_when_included", d) @ v, incl, atol=1e-12)
    p = torch.rand(d, generator=g, dtype=torch.float64)
    A = summary_matrix("semivalue", d, weights=p)
    assert torch.allclose(A @ v, _semivalue(v, p.tolist()), atol=1e-12)


@pytest.mark.parametrize("summary", SUMMARIES)
@pytest.mark.parametrize("d", [1, 2, 3, 5, 8, 10])
def test_closed_forms_match_the_matrices(summary, d):
    explicit = factor_of_matrix(summary_matrix(summary, d))
    closed = summary_factor(summary, d)
    assert closed.h1 == pytest.approx(explicit.h1, rel=1e-12)
    assert closed.h2 == pytest.approx(explicit.h2, rel=1e-10)
    assert torch.allclose(closed.per_feature, explicit.per_feature, rtol=1e-12)


@pytest.mark.parametrize("d", [2, 7, 10])
def test_semivalue_closed_form_matches_the_matrix(d):
    p = torch.rand(d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    explicit = factor_of_matrix(summary_matrix("semivalue", d, weights=p))
    closed = summary_factor("semivalue", d, weights=p)
    assert closed.h1 == pytest.approx(explicit.h1, rel=1e-12)
    assert closed.h2 == pytest.approx(explicit.h2, rel=1e-10)


def test_known_values():
    for d in (1, 4, 16, 40, 64):
        assert summary_factor("banzhaf", d).h2 == pytest.approx(2.0, rel=1e-12)
        for s in ("shapley", "banzhaf", "loo"):
            assert summary_factor(s, d).h1 == pytest.approx(2 * math.sqrt(d), rel=1e-12)
        assert summary_factor("mean_when_included", d).h1 == pytest.approx(math.sqrt(d))


@pytest.mark.parametrize("summary", SUMMARIES)
def test_bounds_hold_on_random_game_pairs(summary):
    d = 6
    g = torch.Generator().manual_seed(11)
    A = summary_matrix(summary, d)
    f = summary_factor(summary, d)
    for _ in range(200):
        dv = torch.randn(2**d, generator=g, dtype=torch.float64)
        if bool(torch.rand(1, generator=g) < 0.5):
            dv = dv.sign()  # the extreme points of the max-norm ball
        m = float(dv.abs().max())
        change = A @ dv
        assert float(change.norm()) <= f.h * m * (1 + 1e-12)
        assert bool((change.abs() <= f.per_feature * m * (1 + 1e-12)).all())


def test_h2_is_attained_up_to_the_max_norm_relaxation():
    # h2 / 2^(d/2) is the spectral norm: the top right singular vector attains it in l2.
    A = summary_matrix("shapley", 5)
    _, S, Vh = torch.linalg.svd(A, full_matrices=False)
    assert float((A @ Vh[0]).norm()) == pytest.approx(float(S[0]), rel=1e-12)
    assert factor_of_matrix(A).h2 == pytest.approx(float(S[0]) * 2**2.5, rel=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="summary"):
        summary_factor("lime", 3)
    with pytest.raises(ValueError, match="d:"):
        summary_factor("shapley", 0)
    with pytest.raises(TypeError, match="d:"):
        summary_matrix("shapley", 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most d = 20"):
        summary_matrix("shapley", 21)
    with pytest.raises(ValueError, match="weights"):
        summary_factor("semivalue", 3)
    with pytest.raises(ValueError, match="weights"):
        summary_factor("semivalue", 3, weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="weights"):
        summary_factor("semivalue", 2, weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="weights"):
        summary_factor("shapley", 2, weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="A:"):
        factor_of_matrix(torch.ones(3))


def test_shapley_h2_is_the_smaller_factor_exactly_for_2_to_6_features():
    # the README's statement: Shapley's h = h2 for 2 <= d <= 6, h1 = 2 sqrt(d) from d = 7
    for d in range(2, 13):
        f = summary_factor("shapley", d)
        assert (f.h2 < f.h1) == (d <= 6), d
