"""Shapley Integrated Gradients: exact mode = exact Shapley, path completeness, the
linear-model identities of both combinations, stratification, determinism, errors."""

from __future__ import annotations

import math

import pytest
import torch

from tests._helpers import EXACT, F64, mlp, randn
from xattr import ExactShapley, ShapleyIntegratedGradients
from xattr.baselines import blur, channel_mean
from xattr.explainers.shapley_integrated_gradients import (
    combination_weights,
    exact_paths,
    stratified_coalitions,
)


def linear(d: int, out: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(d, out).double().eval()


def group_sums(a: torch.Tensor, groups: torch.Tensor, d: int) -> torch.Tensor:
    """Per-element attributions [B, E] summed per feature id: [B, d]."""
    return torch.zeros(a.shape[0], d, dtype=a.dtype).index_add_(1, groups, a)


# ------------------------------------------------------------------ exact mode
@pytest.mark.parametrize("d", [1, 3, 6])
def test_exact_mode_is_exact_shapley_on_a_smooth_model(d):
    m = mlp(d, 12, 3)
    x, r = randn(4, d, seed=1), randn(1, d, seed=2)
    target = [0, 2, 1, 0]
    got = ShapleyIntegratedGradients(m).attribute(
        x, baselines=r, target=target, exact=True, normalize=False
    )
    want = ExactShapley(m).attribute(x, baselines=r, target=target)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


def test_exact_mode_with_feature_groups_tuple_inputs_and_several_targets():
    """d = 5 features over two inputs: each feature's elements sum to its Shapley value."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(7, 8), torch.nn.Softplus(), torch.nn.Linear(8, 2))
    net = net.double().eval()

    def f(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([a, b], 1))

    a, b = randn(3, 4, seed=4), randn(3, 3, seed=5)
    ga, gb = torch.tensor([0, 0, 1, 2]), torch.tensor([2, 3, 4])
    sig = ShapleyIntegratedGradients(f)
    got_a, got_b = sig.attribute(
        (a, b), baselines=(0.5, 0.0), target="all", feature_mask=(ga, gb), exact=True
    )
    assert got_a.shape == (3, 2, 4) and got_b.shape == (3, 2, 3)
    want_a, want_b = ExactShapley(f).attribute(
        (a, b), baselines=(0.5, 0.0), target="all", feature_mask=(ga, gb)
    )
    per_feature = torch.zeros(3, 2, 5, dtype=F64)
    per_feature.index_add_(2, ga, got_a).index_add_(2, gb, got_b)
    want = torch.stack(
        [want_a[..., 0], want_a[..., 2], want_a[..., 3], want_b[..., 1], want_b[..., 2]], -1
    )
    torch.testing.assert_close(per_feature, want, atol=1e-9, rtol=0)


def test_exact_paths_enumerate_every_coalition_without_i_with_shapley_weights():
    d = 4
    start, end, w = exact_paths(d)
    assert start.shape == (d * 2 ** (d - 1), d)
    moved = end & ~start
    assert bool((moved.sum(1) == 1).all()) and bool(((end & ~moved) == start).all())
    for i in range(d):  # per feature, the weights of all S without i sum to 1
        assert math.isclose(float(w[moved[:, i]].sum()), 1.0, rel_tol=1e-12)
        assert len({tuple(s.tolist()) for s in start[moved[:, i]]}) == 2 ** (d - 1)


# ------------------------------------------------------------------ completeness
@pytest.mark.parametrize("exact", [False, True])
def test_every_path_is_complete(exact):
    d = 5
    m = mlp(d, 12, 3)
    x, r = randn(3, d, seed=6), randn(3, d, seed=7)
    attr, delta = ShapleyIntegratedGradients(m).attribute(
        x,
        baselines=r,
        target=1,
        n_coalitions_per_size=3,
        seed=11,
        exact=exact,
        return_convergence_delta=True,
    )
    paths = exact_paths(d)[0].shape[0] if exact else stratified_coalitions(d, 3, 11)[0].shape[0]
    assert attr.shape == (3, d) and delta.shape == (3, paths)
    assert float(delta.abs().max()) < 1e-10
    # normalised attributions sum to f(x) - f(r)
    torch.testing.assert_close(attr.sum(1), (m(x) - m(r))[:, 1], **EXACT)


def test_completeness_error_shrinks_with_n_steps():
    m = mlp(4, 12, 3)
    x = randn(2, 4, seed=8) * 3
    errs = []
    for n in (2, 4, 8):
        _, delta = ShapleyIntegratedGradients(m).attribute(
            x,
            target=0,
            n_steps=n,
            method="riemann_trapezoid",
            seed=0,
            normalize=False,  # the deltas are about the paths, not the normalisation
            return_convergence_delta=True,
        )
        errs.append(float(delta.abs().max()))
    assert errs[0] > errs[1] > errs[2]


# ------------------------------------------------------------------ linear model identities
@pytest.mark.parametrize("d", [2, 5, 8])
def test_linear_model_all_subsets_shared_per_size_and_normalised(d):
    m = linear(d)
    x, r = randn(4, d, seed=9), randn(1, d, seed=10)
    phi = ExactShapley(m).attribute(x, baselines=r, target=1)
    torch.testing.assert_close(phi, m.weight[1].detach() * (x - r), **EXACT)
    sig = ShapleyIntegratedGradients(m)

    def run(combine: str, normalize: bool) -> torch.Tensor:
        return sig.attribute(
            x,
            baselines=r,
            target=1,
            n_coalitions_per_size="all",
            combine=combine,
            normalize=normalize,
        )

    torch.testing.assert_close(run("shared", False), (d + 1) / (2 * d) * phi, **EXACT)
    # the factor 2d / (d + 1) is within normalize's limit of 2: the Shapley value back
    for combine in ("shared", "per_size"):
        torch.testing.assert_close(run(combine, True), phi, **EXACT)
    torch.testing.assert_close(run("per_size", False), phi, **EXACT)


def test_linear_model_per_size_is_shapley_for_any_sample():
    """Every path that leaves i out gives IG_i = phi_i on a linear model, so the per-size
    conditional means are phi_i whatever was drawn."""
    d = 7
    m = linear(d)
    x = randn(3, d, seed=12)
    phi = m.weight[0].detach() * x
    for n in (1, 3):
        got = ShapleyIntegratedGradients(m).attribute(
            x, target=0, n_coalitions_per_size=n, seed=n, normalize=False
        )
        torch.testing.assert_close(got, phi, **EXACT)


def test_sampled_shared_converges_to_its_enumerated_value():
    d = 6
    m = linear(d)
    x = randn(2, d, seed=13)
    phi = m.weight[0].detach() * x
    sig = ShapleyIntegratedGradients(m)
    errs = {}
    for n in (2, 32, 512):
        errs[n] = {}
        for normalize in (False, True):
            got = sig.attribute(
                x,
                target=0,
                n_coalitions_per_size=n,
                combine="shared",
                seed=5,
                normalize=normalize,
            )
            want = phi * ((d + 1) / (2 * d) if not normalize else 1.0)
            errs[n][normalize] = float(((got - want).abs().sum(1) / want.abs().sum(1)).max())
    for normalize in (False, True):
        assert errs[2][normalize] > errs[32][normalize] > errs[512][normalize]
        assert errs[512][normalize] < 0.03


# ------------------------------------------------------------------ coalitions and weights
def test_coalitions_are_stratified_by_size():
    d, n = 9, 5
    S, counts = stratified_coalitions(d, n, seed=3)
    sizes = S.sum(1)
    per_size = torch.zeros(d + 1, dtype=torch.int64).index_add_(0, sizes, counts)
    assert per_size[:d].tolist() == [n] * d and int(per_size[d]) == 0
    assert len({tuple(s.tolist()) for s in S}) == S.shape[0]  # de-duplicated
    assert int((sizes == 0).sum()) == 1 and int(counts[sizes == 0]) == n
    S, counts = stratified_coalitions(d, "all")
    per_size = torch.zeros(d + 1, dtype=torch.int64).index_add_(0, S.sum(1), counts)
    assert per_size[:d].tolist() == [math.comb(d, k) for k in range(d)]


def test_combination_weights():
    d = 6
    S, counts = stratified_coalitions(d, 3, seed=1)
    out = ~S
    shared = combination_weights(S, counts, "shared")
    # each size has total weight 1/d, shared by every feature
    for k in range(d):
        assert math.isclose(float(shared[S.sum(1) == k, 0].sum()), 1 / d, rel_tol=1e-12)
    per_size = combination_weights(S, counts, "per_size")
    assert float(per_size[S].abs().sum()) == 0.0  # i in S: unused
    torch.testing.assert_close(per_size.sum(0), torch.ones(d, dtype=F64), **EXACT)
    for i in range(d):  # per feature: the sizes that have a path leaving it out share 1
        ks = S[out[:, i]].sum(1).unique()
        for k in ks.tolist():
            rows = out[:, i] & (S.sum(1) == k)
            assert math.isclose(float(per_size[rows, i].sum()), 1 / len(ks), rel_tol=1e-12)


# ------------------------------------------------------------------ determinism and batching
def test_same_seed_same_attributions_and_batching_does_not_matter():
    m = mlp(6, 12, 3)
    x = randn(5, 6, seed=14)
    sig = ShapleyIntegratedGradients(m)
    kw = dict(target=2, n_coalitions_per_size=2, n_steps=8, normalize=False)
    a = sig.attribute(x, seed=21, **kw)
    assert torch.equal(a, sig.attribute(x, seed=21, **kw))
    assert not torch.equal(a, sig.attribute(x, seed=22, **kw))
    torch.manual_seed(0)
    b = sig.attribute(x, seed=None, **kw)
    torch.manual_seed(0)
    assert torch.equal(b, sig.attribute(x, seed=None, **kw))
    for rows in (1, 7, 1000):
        c = sig.attribute(x, seed=21, internal_batch_size=rows, **kw)
        torch.testing.assert_close(c, a, **EXACT)


def test_per_example_feature_masks_and_additional_args():
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    net = net.double().eval()

    def f(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return net(x) * scale[:, None]

    x, scale = randn(3, 6, seed=15), torch.tensor([1.0, 2.0, -1.0], dtype=F64)
    masks = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 1, 2, 0, 1, 2], [2, 2, 2, 1, 0, 0]])
    sig = ShapleyIntegratedGradients(f)
    got = sig.attribute(
        x, target=[0, 1, 0], additional_forward_args=scale, feature_mask=masks, exact=True
    )
    for b in range(3):
        one = sig.attribute(
            x[b : b + 1],
            target=[[0, 1, 0][b]],
            additional_forward_args=scale[b : b + 1],
            feature_mask=masks[b],
            exact=True,
        )
        torch.testing.assert_close(got[b : b + 1], one, **EXACT)
        want = ExactShapley(f).attribute(
            x[b : b + 1],
            target=[0, 1, 0][b],
            additional_forward_args=scale[b : b + 1],
            feature_mask=masks[b],
        )
        got_f = group_sums(got[b : b + 1], masks[b], 3)
        torch.testing.assert_close(got_f, want[:, [masks[b].tolist().index(k) for k in range(3)]])


def test_named_references():
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).double().eval()
    x = randn(2, 1, 4, 4, seed=16)
    groups = torch.arange(16).view(1, 4, 4) // 4  # four rows of pixels
    sig = ShapleyIntegratedGradients(m)

    for name, ref in (("blur", blur(x, sigma=1.0)), ("mean", channel_mean(x))):
        got = sig.attribute(
            x, baselines=name, blur_sigma=1.0, target=0, feature_mask=groups, exact=True
        )
        want = sig.attribute(x, baselines=ref, target=0, feature_mask=groups, exact=True)
        torch.testing.assert_close(got, want, atol=0, rtol=0)


def test_normalize_never_inflates_a_map():
    """The review's case: a raw sum that is 1% of f(x) - f(r) made the rescaling multiply
    the map by 100. f = 1.6 x0 + 1.38 x1 - 1.98 x0 x1 at (1, 1), reference 0: exact
    Shapley (0.61, 0.39); per_size over every coalition, raw
    ((0.61 - 0.38) / 2, (0.39 - 0.6) / 2) = (0.115, -0.105), which sums to 0.01."""

    def f(x: torch.Tensor) -> torch.Tensor:
        return (1.6 * x[:, 0] + 1.38 * x[:, 1] - 1.98 * x[:, 0] * x[:, 1]).unsqueeze(1)

    one = torch.ones(1, 2, dtype=F64)
    sig = ShapleyIntegratedGradients(f)
    kw = dict(target=0, n_coalitions_per_size="all", n_steps=8)
    raw = sig.attribute(one, normalize=False, **kw)
    torch.testing.assert_close(raw, torch.tensor([[0.115, -0.105]], dtype=F64))
    with pytest.warns(UserWarning, match="1 needed a factor beyond .1/2, 2."):
        got = sig.attribute(one, **kw)  # normalize=True is the default
    torch.testing.assert_close(got, 2 * raw)  # the limit, not 100x
    # (within the limit the map sums to f(x) - f(r): the linear-model tests above)


def test_normalize_never_flips_or_zeroes_a_map():
    """No positive factor exists when the raw sum cancels out (here f(x) = f(r)) or has
    the opposite sign of f(x) - f(r): the raw values come back, with a warning."""

    def cancel(x: torch.Tensor) -> torch.Tensor:
        return (x[:, 0] - x[:, 1]).unsqueeze(1)

    x = torch.tensor([[1.0, 1.0], [2.0, 1.0]], dtype=F64)
    with pytest.warns(UserWarning, match="of 2 example.*1 have raw attributions"):
        got = ShapleyIntegratedGradients(cancel).attribute(x, target=0, exact=True)
    torch.testing.assert_close(got, torch.tensor([[1.0, -1.0], [2.0, -1.0]], dtype=F64))

    def f(x: torch.Tensor) -> torch.Tensor:  # f(1, 1) - f(0, 0) = 1
        return (-4 * x[:, 0] * x[:, 1] + 2.5 * (x[:, 0] + x[:, 1])).unsqueeze(1)

    # per_size over {}, {0}, {1}: each feature gets (IG from 0 + IG from b_other) / 2
    # = ((-4/2 + 2.5) + (-4 + 2.5)) / 2 = -0.5, a raw sum of -1
    one = torch.ones(1, 2, dtype=F64)
    with pytest.warns(UserWarning, match="opposite sign"):
        got = ShapleyIntegratedGradients(f).attribute(one, target=0, n_coalitions_per_size="all")
    torch.testing.assert_close(got, torch.full((1, 2), -0.5, dtype=F64))


# ------------------------------------------------------------------ errors
def test_bad_arguments_are_reported():
    m = mlp(3, 12, 3)
    x = randn(2, 3, seed=17)
    sig = ShapleyIntegratedGradients(m)
    cases = [
        (dict(combine="mean"), ValueError, "combine"),
        (dict(n_coalitions_per_size=0), ValueError, "n_coalitions_per_size"),
        (dict(n_coalitions_per_size="some"), ValueError, "n_coalitions_per_size"),
        (dict(n_coalitions_per_size=2.5), TypeError, "n_coalitions_per_size"),
        (dict(normalize="yes"), TypeError, "normalize"),
        (dict(exact=1), TypeError, "exact"),
        (dict(n_steps=0), ValueError, "n_steps"),
        (dict(method="simpson"), ValueError, "method"),
        (dict(baselines="noise"), ValueError, "baselines"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(feature_mask=torch.tensor([0.0, 1.5, 2.0])), ValueError, "feature_mask"),
    ]
    for kw, err, match in cases:
        with pytest.raises(err, match=match):
            sig.attribute(x, target=0, **kw)
    with pytest.raises(ValueError, match="d <= 12"):
        ShapleyIntegratedGradients(linear(13)).attribute(randn(1, 13, seed=0), target=0, exact=True)
    with pytest.raises(TypeError, match="float"):
        sig.attribute(torch.ones(2, 3, dtype=torch.int64), target=0)
    with pytest.raises(ValueError, match="finite"):
        sig.attribute(torch.full((2, 3), float("nan"), dtype=F64), target=0)


def test_captum_style_flags():
    sig = ShapleyIntegratedGradients(linear(3))
    assert sig.multiplies_by_inputs is True and sig.has_convergence_delta() is True


@pytest.mark.parametrize("exact", [False, True])
def test_blocks_of_paths_give_the_same_answer(monkeypatch, exact):
    """Large inputs are integrated a block of paths at a time (CHUNK_BYTES): the sums and
    the per-path deltas do not depend on the blocks."""
    import xattr.explainers.shapley_integrated_gradients as sig_module

    m = mlp(5, 12, 3)
    x = randn(3, 5, seed=18)
    kw = dict(
        target="all", n_coalitions_per_size=3, seed=2, exact=exact, return_convergence_delta=True
    )
    want, want_delta = ShapleyIntegratedGradients(m).attribute(x, **kw)
    for chunk in (5 * 8 * 2 * 4, 5 * 8 * 3):  # a few paths of one example; one path
        monkeypatch.setattr(sig_module, "CHUNK_BYTES", chunk)
        got, delta = ShapleyIntegratedGradients(m).attribute(x, **kw)
        torch.testing.assert_close(got, want, **EXACT)
        torch.testing.assert_close(delta, want_delta, **EXACT)
