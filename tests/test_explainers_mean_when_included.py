"""MeanWhenIncluded: phi_i = 2^{-(d-1)} sum_{S holding i} v(S), exact by enumeration or the
mean of v over the Bernoulli(1/2) coalitions that MSR Banzhaf draws with the same seed."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from tests._helpers import EXACT, F32, F64, mlp, randn
from xattr import ops
from xattr._core.game import Setup
from xattr.bounds import estimator_matrix, summary_matrix
from xattr.explainers.banzhaf import Banzhaf
from xattr.explainers.mean_when_included import MeanWhenIncluded
from xattr.explainers.removal import ConditionalRemoval, MarginalRemoval


def _v(f, x: torch.Tensor, b: torch.Tensor, groups: torch.Tensor, S) -> float:
    """v(S) = f(x on the features of S, b elsewhere) for one example x, b [1, F]."""
    keep = torch.zeros_like(groups, dtype=torch.bool)
    for i in S:
        keep |= groups == i
    with torch.no_grad():
        return float(f(torch.where(keep, x, b)).reshape(-1)[0])


def _enumerated(f, x, b, groups, d: int) -> torch.Tensor:
    """v for all 2^d coalitions in the order of ops.enumerate_coalitions (bit i = feature i)."""
    masks = ops.enumerate_coalitions(d)
    return torch.tensor(
        [_v(f, x, b, groups, torch.nonzero(m)[:, 0].tolist()) for m in masks], dtype=F64
    )


def _brute(f, x, b, groups, d: int) -> torch.Tensor:
    """The definition, in plain Python: the mean of v(S) over the 2^(d-1) sets S holding i."""
    phi = []
    for i in range(d):
        others = [j for j in range(d) if j != i]
        total = 0.0
        for k in range(d):
            for T in itertools.combinations(others, k):
                total += _v(f, x, b, groups, (i, *T))
        phi.append(total / 2 ** (d - 1))
    return torch.tensor(phi, dtype=F64)


def _drawn(f, x, b, groups, d: int, n: int, seed: int):
    """The sampled estimate recomputed in Python from the raw draws (duplicates kept):
    (mean of v over the draws holding i, its standard error, mean over those lacking i)."""
    masks = ops.bernoulli_masks(n, d, 0.5, seed=seed)
    vals = [_v(f, x, b, groups, torch.nonzero(m)[:, 0].tolist()) for m in masks]
    mean_in, se_in, mean_out = [], [], []
    for i in range(d):
        inside = [v for v, m in zip(vals, masks) if m[i]]
        outside = [v for v, m in zip(vals, masks) if not m[i]]
        mu = sum(inside) / len(inside)
        var = sum((v - mu) ** 2 for v in inside) / (len(inside) - 1)
        mean_in.append(mu)
        se_in.append(math.sqrt(var / len(inside)))
        mean_out.append(sum(outside) / len(outside))
    as_t = lambda a: torch.tensor(a, dtype=F64)  # noqa: E731
    return as_t(mean_in), as_t(se_in), as_t(mean_out)


def _one_output(model, t: int):
    return lambda z: model(z)[:, t]


# ----------------------------------------------------------------------------- exact
@pytest.mark.parametrize("d", range(1, 9))
def test_exact_is_the_summary_matrix_and_the_definition(d):
    model = mlp(d, 5, 2, seed=d)
    x, b = randn(2, d, seed=10 + d), randn(2, d, seed=20 + d)
    phi = MeanWhenIncluded(model).attribute(x, baselines=b, target=1)
    groups = torch.arange(d).view(1, d)
    A = summary_matrix("mean_when_included", d)
    for e in range(2):
        f = _one_output(model, 1)
        v = _enumerated(f, x[e : e + 1], b[e : e + 1], groups, d)
        torch.testing.assert_close(phi[e], A @ v, **EXACT)
        torch.testing.assert_close(
            phi[e], _brute(f, x[e : e + 1], b[e : e + 1], groups, d), **EXACT
        )


def test_exact_with_grouped_features_several_targets_and_float32():
    model = mlp(8, 6, 3, seed=3)
    x, b = randn(3, 8, seed=30), randn(1, 8, seed=31)
    fm = torch.tensor([[0, 0, 1, 2, 2, 2, 3, 4]])
    mwi = MeanWhenIncluded(model)
    allt = mwi.attribute(x, baselines=b, target="all", feature_mask=fm)
    assert allt.shape == (3, 3, 8)
    for t in range(3):
        one = mwi.attribute(x, baselines=b, target=t, feature_mask=fm)
        torch.testing.assert_close(allt[:, t], one, **EXACT)
        for e in range(3):
            ref = _brute(_one_output(model, t), x[e : e + 1], b, fm, 5)
            torch.testing.assert_close(one[e], ref[fm[0]], **EXACT)
    low = MeanWhenIncluded(mlp(8, 6, 3, seed=3, dtype=F32)).attribute(
        x.float(), baselines=b.float(), target=1, feature_mask=fm
    )
    assert low.dtype == F32
    torch.testing.assert_close(low.double(), allt[:, 1], rtol=0, atol=1e-5)


def test_tuple_inputs_are_the_concatenated_input():
    model = mlp(7, 5, 2, seed=4)
    x, b = randn(2, 7, seed=32), randn(1, 7, seed=33)
    fm = torch.tensor([[0, 1, 1, 2, 3, 3, 4]])
    whole = MeanWhenIncluded(model).attribute(x, baselines=b, target=0, feature_mask=fm)
    split = MeanWhenIncluded(lambda p, q: model(torch.cat([p, q], 1))).attribute(
        (x[:, :3], x[:, 3:]),
        baselines=(b[:, :3], b[:, 3:]),
        target=0,
        feature_mask=(fm[:, :3], fm[:, 3:]),
    )
    assert isinstance(split, tuple) and len(split) == 2
    torch.testing.assert_close(torch.cat(split, 1), whole, **EXACT)


def test_per_example_feature_masks():
    """Each example gets its own features' values, as if it were explained alone (a
    feature id an example lacks is a player that changes nothing: the mean over the
    coalitions holding i does not see it)."""
    model = mlp(6, 5, 2, seed=5)
    x, b = randn(2, 6, seed=34), randn(2, 6, seed=35)
    fm = torch.tensor([[0, 0, 1, 1, 2, 2], [3, 1, 1, 4, 4, 0]])
    mwi = MeanWhenIncluded(model)
    got = mwi.attribute(x, baselines=b, target=1, feature_mask=fm)
    f = _one_output(model, 1)
    for e in range(2):
        alone = mwi.attribute(x[e : e + 1], baselines=b[e : e + 1], target=1, feature_mask=fm[e])
        torch.testing.assert_close(got[e], alone[0], **EXACT)
        ids = torch.unique(fm[e])  # the example's own features, renumbered 0..k-1
        local = torch.searchsorted(ids, fm[e : e + 1])
        ref = _brute(f, x[e : e + 1], b[e : e + 1], local, len(ids))
        torch.testing.assert_close(got[e], ref[local[0]], **EXACT)


# ---------------------------------------------------------------------------- removals
def test_removals():
    model = mlp(5, 6, 2, seed=6)
    x, bg = randn(3, 5, seed=36), randn(4, 5, seed=37)
    mwi = MeanWhenIncluded(model)
    per_row = [mwi.attribute(x, baselines=bg[r : r + 1], target=0) for r in range(4)]
    for kw in ({}, {"n_samples": 60, "seed": 2}):  # the game is linear: v averages over rows
        rows = [mwi.attribute(x, baselines=bg[r : r + 1], target=0, **kw) for r in range(4)]
        marginal = mwi.attribute(x, target=0, removal=MarginalRemoval(bg), **kw)
        torch.testing.assert_close(marginal, sum(rows) / 4, **EXACT)
    torch.testing.assert_close(
        mwi.attribute(x, target=0, removal=MarginalRemoval(bg[1:2])), per_row[1], **EXACT
    )

    # a surrogate adding |S| to f: mean of |S| over the S holding i is 1 + (d - 1) / 2
    def surrogate(z, m):
        return model(z) + m.sum(1, keepdim=True).to(z.dtype)

    cond = mwi.attribute(x, baselines=bg[:1], target=0, removal=ConditionalRemoval(surrogate))
    torch.testing.assert_close(cond, per_row[0] + 3.0, **EXACT)


# ----------------------------------------------------------------------------- sampled
def test_sampled_is_the_mean_over_the_banzhaf_draws():
    """The sampled value (and its standard error) recomputed from the raw Bernoulli draws
    in Python; Banzhaf with the same seed uses the same draws (mean_in - mean_out)."""
    d, n, seed = 5, 40, 11
    model = mlp(d, 5, 1, seed=7)
    x, b = randn(1, d, seed=38), randn(1, d, seed=39)
    phi, se = MeanWhenIncluded(model).attribute(
        x, baselines=b, n_samples=n, seed=seed, return_std=True
    )
    f = _one_output(model, 0)
    mean_in, se_in, mean_out = _drawn(f, x, b, torch.arange(d).view(1, d), d, n, seed)
    torch.testing.assert_close(phi[0], mean_in, **EXACT)
    torch.testing.assert_close(se[0], se_in, **EXACT)
    bz = Banzhaf(model).attribute(x, baselines=b, n_samples=n, seed=seed)
    torch.testing.assert_close(bz[0], mean_in - mean_out, **EXACT)


@pytest.mark.parametrize("d, n, seed", [(1, 2, 0), (5, 40, 3), (9, 100, 4)])
def test_sampled_is_the_bounds_estimator_matrix(d, n, seed):
    """xattr.bounds rebuilds the sampled estimate as A_hat @ v over the same draws."""
    model = mlp(d, 6, 2, seed=d)
    x, b = randn(3, d, seed=50), randn(1, d, seed=51)
    em = estimator_matrix("mean_when_included_sampled", d, n_samples=n, seed=seed)
    values = Setup(model, x, baselines=b, target=1).game(em.coalitions)[:, :, 0]  # [B, u]
    phi = MeanWhenIncluded(model).attribute(x, baselines=b, target=1, n_samples=n, seed=seed)
    torch.testing.assert_close(phi, values @ em.A.T, **EXACT)


def test_sampled_converges_to_exact():
    model = mlp(6, 8, 1, seed=8)
    x = randn(2, 6, seed=40) * 2
    mwi = MeanWhenIncluded(model)
    exact = mwi.attribute(x)
    errs = [(mwi.attribute(x, n_samples=n, seed=1) - exact).abs().max().item() for n in (50, 20000)]
    assert errs[1] < errs[0] / 4 and errs[1] < 0.02, errs


def test_sampled_equals_exact_where_every_coalition_holding_i_has_one_value():
    """d = 1: the only coalition holding the feature is N, so any sample that draws it
    gives v(N) exactly (an equal count of every coalition would too, for any d)."""
    model = mlp(1, 4, 1, seed=9)
    x = randn(3, 1, seed=41)
    mwi = MeanWhenIncluded(model)
    exact = mwi.attribute(x)
    torch.testing.assert_close(exact[:, 0], model(x)[:, 0], **EXACT)
    for seed in range(5):
        est = mwi.attribute(x, n_samples=30, seed=seed)
        torch.testing.assert_close(est, exact, **EXACT)


def test_deterministic_under_seed():
    model = mlp(6, 8, 1, seed=8)
    x = randn(2, 6, seed=40)
    mwi = MeanWhenIncluded(model)
    a = mwi.attribute(x, n_samples=300, seed=7, return_std=True)
    b = mwi.attribute(x, n_samples=300, seed=7, return_std=True)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], mwi.attribute(x, n_samples=300, seed=8))
    torch.manual_seed(3)
    c = mwi.attribute(x, n_samples=300)
    torch.manual_seed(3)
    assert torch.equal(c, mwi.attribute(x, n_samples=300))


def test_std():
    model = mlp(6, 8, 1, seed=8)
    x = randn(2, 6, seed=40)
    mwi = MeanWhenIncluded(model)
    _, s = mwi.attribute(x, return_std=True)
    assert torch.equal(s, torch.zeros_like(s))
    _, s = mwi.attribute(x, n_samples=200, seed=0, return_std=True)
    assert bool(torch.isfinite(s).all()) and bool((s > 0).all())
    # a feature held by a single draw has no sample variance: inf
    d, n = 12, 2
    seed = next(s for s in range(1000) if ops.bernoulli_masks(n, d, 0.5, seed=s).sum(0).min() == 1)
    _, s = MeanWhenIncluded(lambda t: t.sum(1)).attribute(
        randn(1, d, seed=42), n_samples=n, seed=seed, return_std=True
    )
    once = ops.bernoulli_masks(n, d, 0.5, seed=seed).sum(0) == 1
    assert bool(torch.isinf(s[0, once]).all()) and bool(torch.isfinite(s[0, ~once]).all())


def test_std_coverage():
    """The standard error is calibrated: about 95% of the estimates lie within 1.96 se."""
    model = mlp(6, 8, 1, seed=8)
    x = randn(2, 6, seed=40) * 2
    mwi = MeanWhenIncluded(model)
    exact = mwi.attribute(x)
    hits = total = 0
    for seed in range(150):
        est, se = mwi.attribute(x, n_samples=200, seed=seed, return_std=True)
        hits += int(((est - exact).abs() <= 1.96 * se).sum())
        total += est.numel()
    assert 0.9 <= hits / total <= 0.99, hits / total


# ------------------------------------------------------------------------------ errors
def test_errors():
    mwi = MeanWhenIncluded(lambda t: t.sum(1))
    x = randn(1, 6, seed=43)
    with pytest.raises(ValueError, match="n_samples"):
        mwi.attribute(x, n_samples=1)
    with pytest.raises(TypeError, match="n_samples"):
        mwi.attribute(x, n_samples=1.5)
    with pytest.raises(TypeError, match="seed"):
        mwi.attribute(x, n_samples=10, seed="a")
    with pytest.raises(TypeError, match="removal"):
        mwi.attribute(x, removal="marginal")
    flat = randn(1, 21, seed=44)
    with pytest.raises(ValueError, match=r"n_samples: exact .* d <= 20"):
        mwi.attribute(flat)
    assert mwi.attribute(flat, n_samples=200, seed=0).shape == (1, 21)  # sampling is not limited
    # a feature in no draw has no mean
    d, n = 12, 2
    seed = next(s for s in range(1000) if ops.bernoulli_masks(n, d, 0.5, seed=s).sum(0).min() == 0)
    with pytest.raises(ValueError, match="n_samples: feature .* none of the 2 sampled"):
        MeanWhenIncluded(lambda t: t.sum(1)).attribute(randn(1, d, seed=45), n_samples=n, seed=seed)


def test_a_feature_in_every_draw_is_fine():
    """Unlike Banzhaf (which needs coalitions lacking i too), the mean when included only
    needs one coalition holding i."""
    d, n = 3, 2
    draws = [ops.bernoulli_masks(n, d, 0.5, seed=s) for s in range(1000)]
    seed = next(s for s, m in enumerate(draws) if m.all(0).any() and m.any(0).all())
    model = nn.Sequential(nn.Linear(d, 1)).double().eval()
    x = randn(1, d, seed=46)
    with pytest.raises(ValueError, match="every sampled coalition or in none"):
        Banzhaf(model).attribute(x, n_samples=n, seed=seed)
    assert bool(torch.isfinite(MeanWhenIncluded(model).attribute(x, n_samples=n, seed=seed)).all())
