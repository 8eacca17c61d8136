"""The machinery every explainer shares: input / baseline / target formatting, the
memory budget, model-output checks and the coalition game under each removal."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch

import xattr
from tests._helpers import EXACT, F64, gen
from xattr import ops
from xattr._core.batching import CPU_INPUT_BYTES, expand_additional_args, rows_per_batch
from xattr._core.features import format_feature_mask
from xattr._core.game import Setup
from xattr._core.inputs import format_baselines, format_inputs
from xattr._core.model import check_model_output, warn_if_training
from xattr._core.targets import Targets
from xattr.explainers.removal import ConditionalRemoval, MarginalRemoval


def linear_model(d, classes=3, seed=0):
    w = torch.randn(d, classes, generator=gen(seed), dtype=F64)
    return (lambda x: x.reshape(x.shape[0], -1) @ w), w


# ----------------------------------------------------------------- formatting
def test_format_inputs_forms_and_errors():
    x = torch.zeros(3, 4)
    assert format_inputs(x) == ((x,), False)
    t, is_tuple = format_inputs((x, x[:, :2]))
    assert is_tuple and len(t) == 2
    with pytest.raises(TypeError, match="inputs"):
        format_inputs([1, 2])
    with pytest.raises(ValueError, match="batch size"):
        format_inputs((x, torch.zeros(2, 4)))
    with pytest.raises(ValueError, match="inputs"):
        format_inputs(torch.tensor(1.0))


def test_format_baselines_forms():
    x = torch.randn(3, 2, 4, generator=gen(1), dtype=F64)
    (b,) = format_baselines(None, (x,))
    assert b.shape == (1, 2, 4) and not b.any()
    (b,) = format_baselines(0.5, (x,))
    assert torch.equal(b, torch.full((1, 2, 4), 0.5, dtype=F64))
    (b,) = format_baselines(torch.ones(4), (x,))  # broadcastable to one example
    assert b.shape == (1, 2, 4)
    per = torch.randn(3, 2, 4, dtype=F64)
    (b,) = format_baselines(per, (x,))
    assert torch.equal(b, per)
    (b,) = format_baselines(torch.ones(1, 2, 4), (x,))
    assert b.shape == (1, 2, 4) and b.dtype == F64
    with pytest.raises(ValueError, match="baselines"):
        format_baselines(torch.ones(5, 2, 4), (x,))
    with pytest.raises(ValueError, match="baselines"):
        format_baselines((0.0, 0.0), (x,))
    with pytest.raises(TypeError, match="baselines"):
        format_baselines("zero", (x,))


def test_expand_additional_args_repeats_example_major():
    a = torch.arange(3)
    (out, k) = expand_additional_args((a, 7), batch=3, repeats=2)
    assert out.tolist() == [0, 0, 1, 1, 2, 2] and k == 7


# -------------------------------------------------------------------- targets
def test_targets_forms():
    out = torch.arange(24.0).view(4, 6)  # 2 examples x 2 rows each, 6 classes
    assert Targets(2, 2).select(out, 2).view(-1).tolist() == [2, 8, 14, 20]
    per = Targets([1, 4], 2).select(out, 2).view(-1).tolist()
    assert per == [1, 7, 16, 22]
    assert Targets(torch.tensor([1, 4]), 2).select(out, 2).view(-1).tolist() == per
    multi = Targets([[0, 5], [1, 2]], 2)
    assert multi.multi and multi.select(out, 2).tolist() == [[0, 5], [6, 11], [13, 14], [19, 20]]
    allt = Targets("all", 2)
    assert allt.multi and allt.select(out, 2).shape == (4, 6)
    out3 = torch.arange(16.0).view(2, 2, 4)
    assert Targets((1, 2), 2).select(out3, 1).view(-1).tolist() == [6, 14]


def test_targets_errors():
    out = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="target"):
        Targets(None, 2).select(out, 2)  # several outputs, no target
    with pytest.raises(ValueError, match="target"):
        Targets(3, 2).select(out, 2)
    with pytest.raises(ValueError, match="target"):
        Targets([0, 5], 2).select(out, 2)
    with pytest.raises(ValueError, match="target"):
        Targets([0, 1, 2], 2)
    with pytest.raises(ValueError, match="target"):
        Targets("first", 2)
    with pytest.raises(TypeError, match="target"):
        Targets(True, 2)


def test_check_model_output():
    with pytest.raises(TypeError, match="forward_func"):
        check_model_output([1.0], 1)
    with pytest.raises(ValueError, match="forward_func.*rows"):
        check_model_output(torch.zeros(3, 2), 4)
    with pytest.raises(ValueError, match="non-finite"):
        check_model_output(torch.tensor([[float("nan")]]), 1)


def test_training_mode_warns():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5), torch.nn.Linear(2, 1))
    for f in (net, net.forward, lambda x: net(x) * 2, functools.partial(lambda m, x: m(x), net)):
        with pytest.warns(UserWarning, match="Dropout '1' in training mode"):
            warn_if_training(f)
    net.eval()
    net[1].train()  # a dropout left in training mode inside an eval'd model
    with pytest.warns(UserWarning, match="Dropout '1'"):
        warn_if_training(net)
    bn = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    with pytest.warns(UserWarning, match="BatchNorm1d '1'"):
        warn_if_training(lambda x: bn(x))
    net.eval()
    # nothing that behaves differently in training: no warning, whatever the mode
    quiet = [net, lambda x: net(x), torch.nn.Linear(2, 1), torch.nn.Softmax(1), torch.sin]
    quiet.append(torch.nn.InstanceNorm1d(2))  # no running statistics: the same in both modes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in quiet:
            warn_if_training(f)


# --------------------------------------------------------------- budget
def test_memory_budget_parsing():
    old = xattr.get_memory_budget()
    try:
        xattr.set_memory_budget("512MB")
        assert xattr.get_memory_budget() == 512 * 2**20
        xattr.set_memory_budget(1000)
        assert xattr.get_memory_budget() == 1000
        for bad in ("lots", "-1GB", "0"):
            with pytest.raises(ValueError, match="memory_budget"):
                xattr.set_memory_budget(bad)
        with pytest.raises(TypeError, match="memory_budget"):
            xattr.set_memory_budget(1.5)
    finally:
        xattr.set_memory_budget(None)
        assert xattr.get_memory_budget() == old


def test_cpu_batches_stay_small_for_large_rows():
    """CPU batches: a user's number is kept; chosen batches hold at most
    CPU_INPUT_BYTES of inputs (3 rows of 224 x 224 RGB photos), at least one row,
    and the budget still caps them."""
    photos = torch.zeros(2, 3, 224, 224)
    assert rows_per_batch((photos,), 64, None) == 64
    assert rows_per_batch((photos,), None, None) == CPU_INPUT_BYTES // (3 * 224 * 224 * 4) == 3
    assert rows_per_batch((torch.zeros(1, 3, 2048, 2048),), None, None) == 1
    assert rows_per_batch((torch.zeros(4, 784),), None, None) == 256
    assert rows_per_batch((torch.zeros(4, 784),), None, 784 * 4 * 16 * 10) == 10


# ----------------------------------------------------------------- the game
def test_feature_mask_remaps_ids_and_defaults():
    x = torch.zeros(2, 4)
    groups, ids = format_feature_mask(torch.tensor([5, 5, 9, 2]), (x,))
    assert ids.tolist() == [2, 5, 9] and groups[0].tolist() == [[1, 1, 2, 0]]
    groups, ids = format_feature_mask(None, (x, torch.zeros(2, 2, 1)))
    assert ids.numel() == 6 and groups[1].view(-1).tolist() == [4, 5]
    with pytest.raises(ValueError, match="feature_mask"):
        format_feature_mask(torch.zeros(3, dtype=torch.long), (x,))
    with pytest.raises(ValueError, match="feature_mask"):
        format_feature_mask(torch.tensor([0.0, 0.5, 1.0, 1.0]), (x,))
    with pytest.raises(TypeError, match="feature_mask"):
        format_feature_mask(torch.zeros(4, dtype=torch.bool), (x,))


def _setup(f, x, **kw):
    args = dict(
        baselines=None,
        target=1,
        additional_forward_args=None,
        feature_mask=None,
        removal=None,
        perturbations_per_eval=None,
        memory_budget=None,
        show_progress=False,
        desc="t",
    )
    args.update(kw)
    return Setup(f, x, **args)


def test_game_baseline_removal_matches_direct_evaluation():
    f, w = linear_model(5)
    x = torch.randn(3, 5, generator=gen(2), dtype=F64)
    base = torch.randn(5, generator=gen(3), dtype=F64)
    s = _setup(f, x, baselines=base)
    masks = ops.bernoulli_masks(7, 5, seed=4)
    v = s.game(masks)
    direct = torch.stack([f(torch.where(m, x, base))[:, 1] for m in masks], 1)
    assert v.shape == (3, 7, 1)
    torch.testing.assert_close(v[..., 0], direct, **EXACT)


def test_game_is_independent_of_batch_rows():
    f, _ = linear_model(6)
    x = torch.randn(4, 6, generator=gen(5), dtype=F64)
    masks = ops.enumerate_coalitions(6)
    big = _setup(f, x).game(masks)
    small = _setup(f, x, memory_budget=2048).game(masks)
    assert torch.equal(big, small)
    ppe = _setup(f, x, perturbations_per_eval=3).game(masks)
    assert torch.equal(big, ppe)


def test_marginal_with_one_row_equals_baseline_removal():
    f, _ = linear_model(5)
    x = torch.randn(3, 5, generator=gen(6), dtype=F64)
    row = torch.randn(1, 5, generator=gen(7), dtype=F64)
    masks = ops.bernoulli_masks(9, 5, seed=8)
    marginal = _setup(f, x, removal=MarginalRemoval(row)).game(masks)
    baseline = _setup(f, x, baselines=row).game(masks)
    torch.testing.assert_close(marginal, baseline, **EXACT)


def test_marginal_averages_background_rows():
    f, _ = linear_model(4)
    x = torch.randn(2, 4, generator=gen(9), dtype=F64)
    bg = torch.randn(5, 4, generator=gen(10), dtype=F64)
    masks = ops.bernoulli_masks(6, 4, seed=11)
    v = _setup(f, x, removal=MarginalRemoval(bg)).game(masks)
    want = torch.stack(
        [torch.stack([f(torch.where(m, x, z))[:, 1] for z in bg]).mean(0) for m in masks], 1
    )
    torch.testing.assert_close(v[..., 0], want, **EXACT)
    with pytest.raises(ValueError, match="background"):
        _setup(f, x, removal=MarginalRemoval(torch.zeros(5, 3, dtype=F64)))


def test_conditional_removal_calls_the_surrogate_with_masks():
    f, w = linear_model(4)
    x = torch.randn(2, 4, generator=gen(12), dtype=F64)
    seen = []

    def surrogate(z, m):
        seen.append(m.clone())
        return f(z) + m.sum(1, keepdim=True).to(F64)

    masks = ops.bernoulli_masks(3, 4, seed=13)
    v = _setup(f, x, removal=ConditionalRemoval(surrogate)).game(masks)
    plain = _setup(f, x).game(masks)
    torch.testing.assert_close(v - plain, masks.sum(1).to(F64).expand(2, 3).unsqueeze(-1))
    assert seen[0].shape == (6, 4)


def test_game_passes_additional_args_and_tuple_inputs():
    def f(a, b, scale):
        return (a.sum(1) + b.sum((1, 2))).unsqueeze(1) * scale

    a = torch.randn(2, 3, generator=gen(14), dtype=F64)
    b = torch.randn(2, 2, 2, generator=gen(15), dtype=F64)
    scale = torch.tensor([[1.0], [2.0]], dtype=F64)
    s = _setup(f, (a, b), target=0, additional_forward_args=(scale,))
    assert s.d == 7
    v_full, v_empty = s.game.full_and_empty()
    torch.testing.assert_close(v_full[:, 0], f(a, b, scale)[:, 0])
    assert torch.equal(v_empty, torch.zeros_like(v_empty))


def test_model_with_wrong_batch_size_is_reported():
    def f(x):  # two rows for any batch (one row would be Captum's aggregate mode)
        return x[:2].sum(1, keepdim=True)

    s = _setup(f, torch.zeros(3, 2, dtype=F64), target=None)
    with pytest.raises(ValueError, match="forward_func"):
        s.game(ops.enumerate_coalitions(2))


def test_top_level_names_are_captums():
    import captum.attr

    for name, info in xattr.EXPLAINERS.items():
        assert hasattr(xattr, name), name
        assert hasattr(captum.attr, name) == info.captum, name
    for name in ("MarginalRemoval", "ConditionalRemoval"):
        assert hasattr(xattr, name), name


@pytest.mark.parametrize("cls", xattr.explainer_names(standalone=True))
def test_constructors_reject_a_non_callable_model(cls):
    with pytest.raises(TypeError, match="forward_func"):
        getattr(xattr, cls)("not a model")
