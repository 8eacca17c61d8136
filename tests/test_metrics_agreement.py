"""Agreement metrics: exact values against scipy.stats (with ties), hand-computed
cases, invariances, shapes, feature-mask grouping and argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from tests._helpers import gen, randn
from xattr.metrics.agreement import (
    kendall,
    mse,
    relative_l2,
    sign_agreement,
    spearman,
    top_k_intersection,
)

F32, F64 = torch.float32, torch.float64
ALL = [relative_l2, mse, spearman, kendall, sign_agreement]


def _ties(B: int, d: int, levels: int, seed: int) -> torch.Tensor:
    """Values with many ties: integers in [0, levels), as float64."""
    return torch.randint(0, levels, (B, d), generator=gen(seed)).to(F64)


def _scipy(fn, a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return [float(fn(x.numpy(), y.numpy()).statistic) for x, y in zip(a, b)]


def _same(got: torch.Tensor, want: list[float], tol: float = 1e-12) -> None:
    assert got.shape == (len(want),)
    for g, w in zip(got.tolist(), want):
        assert (math.isnan(g) and math.isnan(w)) or abs(g - w) <= tol, (got, want)


# ------------------------------------------------------------------ against scipy
@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@pytest.mark.parametrize("d", [2, 3, 7, 16, 33, 100, 1000])
@pytest.mark.parametrize("levels", [2, 5, 10**9])
def test_spearman_kendall_match_scipy(d, levels):
    """Few levels: heavy ties; 10**9 levels: (almost surely) none."""
    a = _ties(6, d, levels, seed=d)
    b = _ties(6, d, max(2, levels // 2), seed=d + 1)
    b[0] = a[0]  # identical row
    b[1] = -a[1]  # reversed row
    _same(spearman(a, b), _scipy(stats.spearmanr, a, b))
    _same(kendall(a, b), _scipy(stats.kendalltau, a, b))


def test_spearman_kendall_match_scipy_on_correlated_floats():
    a = randn(4, 3001, seed=1)
    b = a + 0.7 * randn(4, 3001, seed=2)
    b = torch.round(b * 4) / 4  # ties in b only
    _same(spearman(a, b), _scipy(stats.spearmanr, a, b))
    _same(kendall(a, b), _scipy(stats.kendalltau, a, b))
    assert bool((kendall(a, b) > 0.3).all())


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
def test_undefined_rank_correlations_are_nan_as_scipy():
    const = torch.ones(1, 5, dtype=F64)
    x = torch.arange(5, dtype=F64).view(1, 5)
    for fn, ref in ((spearman, stats.spearmanr), (kendall, stats.kendalltau)):
        assert math.isnan(float(ref(const[0].numpy(), x[0].numpy()).statistic))
        assert torch.isnan(fn(const, x)).all() and torch.isnan(fn(x, const)).all()
        assert torch.isnan(fn(torch.ones(3, 1), torch.ones(3, 1))).all()  # one feature


# ------------------------------------------------------------------ hand-computed
def test_hand_computed_values():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[1.0, 3.0, 2.0, 4.0]])
    # one swap: 5 concordant, 1 discordant pair; rank differences (0, 1, -1, 0)
    assert kendall(a, b).item() == pytest.approx(4 / 6)
    assert spearman(a, b).item() == pytest.approx(1 - 6 * 2 / (4 * 15))
    assert kendall(a, a.flip(1)).item() == -1.0
    assert spearman(a, a.flip(1)).item() == -1.0
    # ties: a = (1, 1, 2), b = (1, 2, 3): concordant 2, tied in a 1 -> 2 / sqrt(2 * 3)
    assert kendall(torch.tensor([[1.0, 1.0, 2.0]]), torch.tensor([[1.0, 2.0, 3.0]])).item() == (
        pytest.approx(2 / math.sqrt(6))
    )
    # average ranks (1.5, 1.5, 3) vs (1, 2, 3): centred (-.5, -.5, 1) . (-1, 0, 1) = 1.5
    assert spearman(torch.tensor([[1.0, 1.0, 2.0]]), torch.tensor([[1.0, 2.0, 3.0]])).item() == (
        pytest.approx(1.5 / math.sqrt(1.5 * 2))
    )
    x, r = torch.tensor([[3.0, 4.0], [1.0, 1.0]]), torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    assert relative_l2(x, r).tolist() == [pytest.approx(4 / 3), 0.0]
    assert mse(x, r).tolist() == [8.0, 0.0]


def test_relative_l2_of_zero_reference():
    """ref = 0: 0 when a = 0 as well (identical maps), inf otherwise."""
    ref = torch.zeros(3, 4)
    a = torch.zeros(3, 4)
    a[1, 2] = 1e-30
    a[2] = -2.0
    out = relative_l2(a, ref)
    assert out[0].item() == 0.0
    assert math.isinf(out[1].item()) and math.isinf(out[2].item())
    assert relative_l2(ref, a)[1:].tolist() == [1.0, 1.0]  # a zero map against a nonzero ref
    # tiny and huge maps: no underflow or overflow in the norms
    tiny = torch.tensor([[3e-30, 4e-30]])
    assert relative_l2(torch.zeros(1, 2), tiny).item() == pytest.approx(1.0)
    assert relative_l2(2 * tiny, tiny).item() == pytest.approx(1.0)
    huge = torch.tensor([[3e30, 4e30]])
    assert relative_l2(huge, 2 * huge).item() == pytest.approx(0.5)


def test_top_k_intersection_hand_computed():
    a = torch.tensor([[4.0, -3.0, 2.0, 1.0]])
    ref = torch.tensor([[1.0, 2.0, -3.0, 4.0]])
    # by |value|: ref's top 2 = {3, 2}, a's = {0, 1}; top 3: {3, 2, 1} and {0, 1, 2}
    assert top_k_intersection(a, ref, 2).item() == 0.0
    assert top_k_intersection(a, ref, 3).item() == pytest.approx(2 / 3)
    assert top_k_intersection(a, ref, 4).item() == 1.0
    # signed: ref's top 2 = {3, 1}, a's = {0, 2}; top 3: {3, 1, 0} and {0, 2, 3}
    assert top_k_intersection(a, ref, 2, absolute=False).item() == 0.0
    assert top_k_intersection(a, ref, 3, absolute=False).item() == pytest.approx(2 / 3)
    # ties at the k-th place go to the lower index: zeros pick features 0 and 1
    z = torch.zeros(1, 4)
    assert top_k_intersection(z, torch.tensor([[0.0, 5.0, 4.0, 0.0]]), 2).item() == 0.5


def test_sign_agreement_hand_computed():
    a = torch.tensor([[1.0, -1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    ref = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 1.0, -1.0, 0.0]])
    # a zero agrees only with a zero
    assert sign_agreement(a, ref).tolist() == [0.5, 0.5]


# ------------------------------------------------------------------ invariances
def test_identical_maps():
    a = randn(5, 3, 8, 8, seed=3)
    assert relative_l2(a, a).tolist() == [0.0] * 5
    assert mse(a, a).tolist() == [0.0] * 5
    assert spearman(a, a).tolist() == [1.0] * 5
    assert kendall(a, a).tolist() == [1.0] * 5
    assert sign_agreement(a, a).tolist() == [1.0] * 5
    assert top_k_intersection(a, a, 10).tolist() == [1.0] * 5


def test_rank_correlations_invariant_to_monotone_transforms():
    a = randn(4, 200, seed=4)
    a[:, :50] = torch.round(a[:, :50])  # some ties
    ref = a + randn(4, 200, seed=5)
    for f in (torch.exp, lambda t: t**3 + 2 * t, lambda t: 5 * t - 1):
        assert torch.allclose(spearman(f(a), ref), spearman(a, ref), atol=1e-12)
        assert torch.allclose(kendall(f(a), ref), kendall(a, ref), atol=1e-12)
        assert torch.allclose(kendall(a, f(ref)), kendall(a, ref), atol=1e-12)
    # a decreasing transform flips the sign
    assert torch.allclose(spearman(-a, ref), -spearman(a, ref), atol=1e-12)
    assert torch.allclose(kendall(-a, ref), -kendall(a, ref), atol=1e-12)


def test_scale_invariance_and_symmetry():
    a, ref = randn(3, 50, seed=6), randn(3, 50, seed=7)
    assert torch.allclose(relative_l2(3 * a, 3 * ref), relative_l2(a, ref))
    assert torch.allclose(mse(3 * a, 3 * ref), 9 * mse(a, ref))
    assert torch.allclose(top_k_intersection(-2 * a, ref, 7), top_k_intersection(a, ref, 7))
    for fn in (mse, spearman, kendall, sign_agreement):
        assert torch.allclose(fn(a, ref), fn(ref, a))


# ------------------------------------------------------------------ shapes
def test_shapes_and_dtypes(dtype):
    a, ref = randn(4, 3, 5, 6, dtype=dtype, seed=8), randn(4, 3, 5, 6, dtype=dtype, seed=9)
    for fn in ALL:
        out = fn(a, ref)
        assert out.shape == (4,) and out.dtype == dtype
    overlap = top_k_intersection(a, ref, 5)
    assert overlap.shape == (4,)
    # a fraction of k, and 1 against itself
    assert bool(((overlap >= 0) & (overlap <= 1)).all())
    assert torch.allclose(overlap * 5, (overlap * 5).round())
    assert top_k_intersection(a, a, 5).tolist() == [1.0] * 4
    # per-example rows are independent: one row alone gives the same value
    for fn in ALL:
        assert torch.allclose(fn(a[2:3], ref[2:3]), fn(a, ref)[2:3])
    # mixed dtypes promote
    assert spearman(a.float(), ref.double()).dtype == F64


def test_tuples_are_one_concatenated_feature_vector():
    a = (randn(3, 4, seed=10), randn(3, 2, 5, seed=11))
    ref = (randn(3, 4, seed=12), randn(3, 2, 5, seed=13))
    flat_a = torch.cat([t.reshape(3, -1) for t in a], dim=1)
    flat_r = torch.cat([t.reshape(3, -1) for t in ref], dim=1)
    for fn in ALL:
        assert torch.equal(fn(a, ref), fn(flat_a, flat_r))
    assert torch.equal(top_k_intersection(a, ref, 4), top_k_intersection(flat_a, flat_r, 4))


def test_one_scalar_per_example():
    a, ref = torch.tensor([1.0, -2.0, 0.0]), torch.tensor([2.0, -2.0, 1.0])
    assert mse(a, ref).tolist() == [1.0, 0.0, 1.0]
    assert sign_agreement(a, ref).tolist() == [1.0, 1.0, 0.0]


# ------------------------------------------------------------------ feature_mask
def test_feature_mask_compares_group_sums():
    a, ref = randn(3, 2, 4, seed=14), randn(3, 2, 4, seed=15)
    # ids 7, 3, 9 (not contiguous); group order is by increasing id: 3, 7, 9
    mask = torch.tensor([[7, 7, 3, 3], [9, 9, 9, 3]])
    groups = [mask == 3, mask == 7, mask == 9]
    ga = torch.stack([a[:, g].sum(dim=1) for g in groups], dim=1)
    gr = torch.stack([ref[:, g].sum(dim=1) for g in groups], dim=1)
    for fn in ALL:
        assert torch.allclose(fn(a, ref, feature_mask=mask), fn(ga, gr), atol=1e-12)
    assert torch.equal(
        top_k_intersection(a, ref, 2, feature_mask=mask), top_k_intersection(ga, gr, 2)
    )
    # the same mask with a leading 1
    assert torch.equal(mse(a, ref, feature_mask=mask[None]), mse(a, ref, feature_mask=mask))


def test_feature_mask_per_example_and_tuples():
    a = (randn(2, 3, seed=16), randn(2, 2, seed=17))
    ref = (randn(2, 3, seed=18), randn(2, 2, seed=19))
    masks = (torch.tensor([[0, 0, 1], [0, 1, 1]]), torch.tensor([[1, 2], [2, 2]]))
    for b in range(2):
        for fn in (relative_l2, mse, sign_agreement):
            want = []
            for x in (a, ref):
                v = torch.cat([x[0][b], x[1][b]])
                m = torch.cat([masks[0][b], masks[1][b]])
                want.append(torch.stack([v[m == g].sum() for g in range(3)]).view(1, 3))
            assert torch.allclose(fn(a, ref, feature_mask=masks)[b], fn(*want)[0])


def test_top_k_counts_groups():
    a, ref = randn(2, 6, seed=20), randn(2, 6, seed=21)
    mask = torch.tensor([0, 0, 1, 1, 2, 2])
    top_k_intersection(a, ref, 3, feature_mask=mask)
    with pytest.raises(ValueError, match="k"):
        top_k_intersection(a, ref, 4, feature_mask=mask)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("fn", ALL)
def test_bad_inputs_name_the_argument(fn):
    a = randn(2, 5, seed=22)
    with pytest.raises(TypeError, match="^a"):
        fn([1.0, 2.0], a)
    with pytest.raises(TypeError, match="^ref"):
        fn(a, "x")
    with pytest.raises(ValueError, match="^ref"):
        fn(a, a[:, :4])
    with pytest.raises(ValueError, match="^ref"):
        fn(a, (a, a))
    with pytest.raises(TypeError, match=r"^a\[0\]"):
        fn(a.long(), a)
    bad = a.clone()
    bad[1, 3] = math.nan
    with pytest.raises(ValueError, match=r"^ref\[0\].*non-finite"):
        fn(a, bad)
    with pytest.raises(ValueError, match="^feature_mask"):
        fn(a, a, feature_mask=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="^feature_mask"):  # a float mask holds integral ids
        fn(a, a, feature_mask=torch.full((5,), 0.5))
    with pytest.raises(ValueError, match="^a"):
        fn(torch.zeros(2, 0), torch.zeros(2, 0))


def test_top_k_argument_checks():
    a = randn(2, 5, seed=23)
    with pytest.raises(ValueError, match="^k"):
        top_k_intersection(a, a, 0)
    with pytest.raises(ValueError, match="^k"):
        top_k_intersection(a, a, 6)
    with pytest.raises(TypeError, match="^k"):
        top_k_intersection(a, a, 2.0)
    with pytest.raises(TypeError, match="^absolute"):
        top_k_intersection(a, a, 2, absolute=1)


def test_feature_mask_scores_each_layout_right():
    """A perturbation explainer's map (every element of a feature carries the feature's
    value) against a per-element one: f = 3 x_0 + 0.5 (x_1 + ... + x_4) at x = 1,
    baseline 0, feature 1 spanning four elements; both say (3, 2)."""
    import xattr

    w = torch.tensor([3.0, 0.5, 0.5, 0.5, 0.5], dtype=F64)
    x, mask = torch.ones(1, 5, dtype=F64), torch.tensor([0, 1, 1, 1, 1])
    group = xattr.KernelShap(lambda t: t @ w).attribute(x, feature_mask=mask, seed=0)
    assert group.tolist() == [[3.0, 2.0, 2.0, 2.0, 2.0]]
    element = torch.tensor([[3.0, 0.2, 0.8, 0.5, 0.5]], dtype=F64)  # shares, summing to 2
    ig = xattr.IntegratedGradients(lambda t: t @ w).attribute(x)  # marked per-element
    for ref in (element, ig, group):
        kw = dict(feature_mask=mask)
        assert relative_l2(group, ref, **kw).item() < 1e-12
        assert mse(group, ref, **kw).item() < 1e-12
        assert spearman(group, ref, **kw).tolist() == [1.0]
        assert kendall(group, ref, **kw).tolist() == [1.0]
        assert top_k_intersection(group, ref, 1, **kw).tolist() == [1.0]
        assert sign_agreement(group, ref, **kw).tolist() == [1.0]
    # summing the group layout (the old reading) flips the order
    kw = dict(feature_mask=mask, layout=("element", "auto"))
    assert spearman(group, element, **kw).tolist() == [-1.0]
    assert top_k_intersection(group, element, 1, **kw).tolist() == [0.0]
    assert abs(relative_l2(group, element, **kw).item() - 6 / 13**0.5) < 1e-12
    assert spearman(group, element, feature_mask=mask, layout=("group", "element")) == 1.0
    with pytest.raises(ValueError, match="layout"):
        mse(group, element, feature_mask=mask, layout="group")  # element varies in feature 1
    with pytest.raises(ValueError, match="layout"):
        mse(group, element, feature_mask=mask, layout=("group",))
