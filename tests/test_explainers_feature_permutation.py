"""FeaturePermutation: Captum's permutation feature importance on FeatureAblation's game.
Parity with Captum 0.9 under the same torch seed (the same permutations), closed forms
with a deterministic perm_func, batching, the small-batch rule and clear errors."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import Tensor, nn

import xattr
from xattr import FeatureAblation, FeaturePermutation
from xattr.explainers import feature_permutation as fpm
from xattr.explainers.feature_permutation import PermutationError, _permute_feature

ca = pytest.importorskip("captum.attr")
F64 = torch.float64
EXACT = dict(rtol=0, atol=1e-12)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).to(F64).eval()


X = torch.randn(5, 6, generator=_gen(1), dtype=F64)


def _both(model, x, seed: int, **kw):
    torch.manual_seed(seed)
    ours = FeaturePermutation(model).attribute(x, **kw)
    torch.manual_seed(seed)
    theirs = ca.FeaturePermutation(model).attribute(x, **kw)
    return ours, theirs


def _close(ours, theirs) -> None:
    a = ours if isinstance(ours, tuple) else (ours,)
    b = theirs if isinstance(theirs, tuple) else (theirs,)
    assert isinstance(ours, tuple) == isinstance(theirs, tuple) and len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape and u.dtype == v.dtype
        torch.testing.assert_close(u, v, **EXACT)


@pytest.mark.parametrize(
    "kw",
    [
        {"target": 1},
        {"target": [0, 1, 2, 1, 0], "feature_mask": torch.tensor([[0, 0, 1, 2, 2, 3]])},
        {"target": 2, "perturbations_per_eval": 4},
        {"target": torch.tensor([2, 2, 0, 1, 1]), "feature_mask": torch.tensor([5, 1, 1, 9, 5, 1])},
    ],
    ids=["int", "grouped", "per-eval", "sparse-ids"],
)
def test_matches_captum_under_the_same_seed(kw):
    _close(*_both(_mlp(), X, 3, **kw))


@pytest.mark.parametrize("B", [2, 3])
def test_matches_captum_on_small_batches(B):
    """Half (B = 2) or a sixth (B = 3) of the draws are the identity, which Captum redraws."""
    for seed in range(4):
        _close(*_both(_mlp(), X[:B], seed, target=0))


@pytest.mark.parametrize(
    "mask",
    [None, (torch.tensor([[3, 1]]), torch.tensor([[1, 0, 2, 3]]))],
    ids=["default", "across-inputs"],
)
def test_tuple_inputs_match_captum(mask):
    model = _mlp()
    scale = torch.linspace(0.5, 2.0, 5, dtype=F64)

    def f(a: Tensor, b: Tensor, s: Tensor) -> Tensor:
        return model(torch.cat([a, b], 1)) * s[:, None]

    xs = (X[:, :2].clone(), X[:, 2:].clone())
    kw = dict(target=0, feature_mask=mask, additional_forward_args=(scale,))
    _close(*_both(f, xs, 4, **kw))


def test_token_ids_match_captum():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Embedding(30, 4), nn.Flatten(), nn.Linear(16, 2)).to(F64).eval()
    ids = torch.randint(0, 30, (6, 4), generator=_gen(2))
    _close(*_both(model, ids, 5, target=1))


def test_captums_own_perm_func_gives_the_same():
    from captum.attr._core.feature_permutation import _permute_feature as captum_perm

    model = _mlp()
    torch.manual_seed(6)
    ours = FeaturePermutation(model, perm_func=captum_perm).attribute(X, target=0)
    torch.manual_seed(6)
    fast = FeaturePermutation(model).attribute(X, target=0)
    assert torch.equal(ours, fast)


def test_seed_draws_what_manual_seed_draws_and_leaves_torch_alone():
    model = _mlp()
    torch.manual_seed(11)
    ref = FeaturePermutation(model).attribute(X, target=1)
    state = torch.get_rng_state()
    seeded = FeaturePermutation(model).attribute(X, target=1, seed=11)
    assert torch.equal(seeded, ref)
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(FeaturePermutation(model).attribute(X, target=1, seed=12), ref)


def _roll(x: Tensor, mask: Tensor) -> Tensor:
    """A deterministic perm_func: example b takes example b - 1's values."""
    return torch.where(mask, x.roll(1, 0), x)


def test_linear_model_closed_form():
    """f(x) = x . w: permuting feature i changes f by w_i (x_b,i - x_pi(b),i)."""
    w = torch.randn(6, generator=_gen(3), dtype=F64)
    fp = FeaturePermutation(lambda x: x @ w, perm_func=_roll)
    got = fp.attribute(X)
    torch.testing.assert_close(got, (X - X.roll(1, 0)) * w, **EXACT)
    grouped = fp.attribute(X, feature_mask=torch.tensor([0, 0, 0, 1, 1, 1]))
    per_elem = (X - X.roll(1, 0)) * w
    expected = torch.cat(
        [
            per_elem[:, :3].sum(1, keepdim=True).expand(5, 3),
            per_elem[:, 3:].sum(1, keepdim=True).expand(5, 3),
        ],
        1,
    )
    torch.testing.assert_close(grouped, expected, **EXACT)


def test_it_is_feature_ablation_with_permuted_baselines():
    model = _mlp()
    mask = torch.tensor([[0, 1, 1, 2, 3, 3]])
    got = FeaturePermutation(model, perm_func=_roll).attribute(X, target=2, feature_mask=mask)
    ref = FeatureAblation(model).attribute(X, X.roll(1, 0), target=2, feature_mask=mask)
    assert torch.equal(got, ref)


def test_batching_and_per_eval_do_not_change_the_result():
    model = _mlp()
    fp = FeaturePermutation(model)
    runs = [
        fp.attribute(X, target="all", seed=2, **kw)
        for kw in (
            {},
            {"memory_budget": 1},
            {"perturbations_per_eval": 3},
            {"memory_budget": "1GB"},
        )
    ]
    assert runs[0].shape == (5, 3, 6)
    for r in runs[1:]:  # to rounding: a BLAS matmul's bits depend on the batch it sees
        # (bit-for-bit invariance on a batch-invariant model: test_batch_invariance.py)
        torch.testing.assert_close(r, runs[0], rtol=1e-12, atol=1e-14)


def test_one_example_gives_zeros_with_a_warning_and_an_empty_batch_empty():
    model = _mlp()
    fp = FeaturePermutation(model)
    with pytest.warns(UserWarning, match="at least 2 examples; got 1"):
        one = fp.attribute(X[:1], target=0)
    assert torch.equal(one, torch.zeros(1, 6, dtype=F64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fp.attribute(X[:0], target=0).shape == (0, 6)
    fp._min_examples_per_batch_grouped = 1  # Captum's knob: then the permutation refuses
    with pytest.raises(AssertionError, match="batch_size = 1"):
        fp.attribute(X[:1], target=0)
    with pytest.raises(ValueError, match="batch_size = 1"):
        fp.attribute(X[:1], target=0)


def test_default_perm_func_permutes_only_the_mask():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[1, 2] = True
    out = _permute_feature(x, mask)
    assert torch.equal(out[:, 1, 2], x.flip(0)[:, 1, 2])  # B = 2: the swap
    assert torch.equal(out[:, ~mask], x[:, ~mask])
    with pytest.raises(PermutationError):
        _permute_feature(x[:1], mask)
    assert issubclass(PermutationError, ValueError) and issubclass(PermutationError, AssertionError)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_bulk_draws_are_the_one_by_one_draws(n):
    """Identities are redrawn at once, as Captum does (n = 2 and 3 give many)."""
    gen = _gen(n)
    expected = torch.stack([fpm._draw_permutation(n, gen) for _ in range(300)])
    assert torch.equal(fpm._draw_permutations(300, n, _gen(n)), expected)
    assert not (expected == torch.arange(n)).all(1).any()
    assert fpm._draw_permutations(0, n, _gen(n)).shape == (0, n)


def test_flags_match_captum():
    model = _mlp()
    ours, theirs = FeaturePermutation(model), ca.FeaturePermutation(model)
    assert ours.multiplies_by_inputs == theirs.multiplies_by_inputs is True
    assert ours.has_convergence_delta() == theirs.has_convergence_delta() is False
    assert isinstance(ours, FeatureAblation) and ours.perm_func is _permute_feature
    assert xattr.EXPLAINERS["FeaturePermutation"].kind == "perturbation"


def test_baselines_are_ignored_as_in_captum():
    model = _mlp()
    ref = FeaturePermutation(model).attribute(X, target=0, seed=1)
    assert torch.equal(FeaturePermutation(model).attribute(X, target=0, seed=1, baselines=3.0), ref)


def test_errors_name_the_argument():
    model = _mlp()
    with pytest.raises(TypeError, match="perm_func: expected a callable"):
        FeaturePermutation(model, perm_func=3)
    with pytest.raises(TypeError, match="forward_func"):
        FeaturePermutation("model")
    fp = FeaturePermutation(model)
    with pytest.raises(TypeError, match="unexpected argument.*sliding_window_shapes"):
        fp.attribute(X, target=0, sliding_window_shapes=(1,))
    with pytest.raises(TypeError, match="seed"):
        fp.attribute(X, target=0, seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        fp.attribute(X, target=0, seed=-1)
    bad = X.clone()
    bad[2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"inputs\[0\]: contains non-finite"):
        fp.attribute(bad, target=0)
    with pytest.raises(ValueError, match="feature_mask"):
        fp.attribute(X, target=0, feature_mask=torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="perm_func: it changed elements outside"):
        FeaturePermutation(model, perm_func=lambda x, m: x.roll(1, 0)).attribute(X, target=0)
    with pytest.raises(ValueError, match=r"perm_func: expected a tensor of the input's shape"):
        FeaturePermutation(model, perm_func=lambda x, m: x[:2]).attribute(X, target=0)


def _future(model):
    def f(*args: Tensor) -> torch.futures.Future:
        fut: torch.futures.Future = torch.futures.Future()
        fut.set_result(model(*args))
        return fut

    return f


def test_attribute_future_is_a_torch_future_equal_to_captums():
    # Captum returns the C++ torch.Future (its tests check `type(f) is torch.Future`), and
    # the same attributions as attribute under the same seed
    model = _mlp()
    torch.manual_seed(4)
    fut = FeaturePermutation(_future(model)).attribute_future(X, target=1)
    assert type(fut) is torch.Future
    ours = fut.wait()
    torch.manual_seed(4)
    theirs = ca.FeaturePermutation(_future(model)).attribute_future(X, target=1).wait()
    _close(ours, theirs)
    torch.manual_seed(4)
    _close(ours, FeaturePermutation(model).attribute(X, target=1))


@pytest.mark.parametrize("future", [False, True], ids=["attribute", "future"])
@pytest.mark.parametrize("grouped", [False, True], ids=["per-element", "one-group"])
def test_batch_loss_holding_b_labels_matches_captum(future, grouped):
    # FeaturePermutation's usual model: a loss of the batch against B labels it holds,
    # which only takes batches of B rows (aggregate mode). The first call, of several
    # perturbations, fails; then every call is the B rows of one permuted batch, as in
    # Captum, and the same seed gives Captum's values
    B = 6
    labels = torch.randn(B, generator=_gen(2), dtype=F64)
    calls = []

    def loss(a: Tensor, b: Tensor) -> Tensor:
        calls.append(a.shape[0])
        y = (a[:, :, 0] * a[:, :, 1]).sum(1) + (b[:, :, 0] * b[:, :, 1]).sum(1)
        return ((y - labels) ** 2).mean()

    xs = (
        torch.randn(B, 3, 2, generator=_gen(3), dtype=F64),
        torch.randn(B, 3, 3, generator=_gen(4), dtype=F64),
    )
    if grouped:  # one feature across both inputs
        mask = (torch.zeros(1, 3, 2, dtype=torch.long), torch.zeros(1, 3, 3, dtype=torch.long))
    else:
        mask = (torch.arange(6).view(1, 3, 2), torch.arange(6, 15).view(1, 3, 3))
    results = []
    for cls in (FeaturePermutation, ca.FeaturePermutation):
        torch.manual_seed(9)
        if future:
            results.append(cls(_future(loss)).attribute_future(xs, feature_mask=mask).wait())
        else:
            results.append(cls(loss).attribute(xs, feature_mask=mask))
    ours, theirs = results
    assert ours[0].shape == (1, 3, 2) and ours[1].shape == (1, 3, 3)
    _close(ours, theirs)
    assert calls[0] > B and set(calls[1:]) == {B}


def test_empty_input_gives_captums_zero():
    # a 1-D input of no examples: the model's one value is the batch's (aggregate mode),
    # and with nothing to permute it is Captum's tensor([0.])
    fp = FeaturePermutation(lambda x: x.sum(dim=-1))
    got = fp.attribute(torch.tensor([]))
    want = ca.FeaturePermutation(lambda x: x.sum(dim=-1)).attribute(torch.tensor([]))
    assert got.shape == want.shape == (1,) and got.dtype == want.dtype
    assert torch.equal(got, want)
    assert torch.equal(FeatureAblation(lambda x: x.sum(dim=-1)).attribute(torch.tensor([])), want)
