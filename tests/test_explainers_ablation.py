"""FeatureAblation, Occlusion, ExactShapley and Banzhaf: parity with Captum,
brute-force references, Shapley axioms, MSR statistics and argument checks."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from captum.attr import FeatureAblation as CFeatureAblation
from captum.attr import Occlusion as COcclusion
from torch import nn

from tests._helpers import F32, F64, TOL, cnn, gen, mlp, randn
from xattr.explainers.banzhaf import Banzhaf
from xattr.explainers.exact_shapley import ExactShapley
from xattr.explainers.feature_ablation import FeatureAblation
from xattr.explainers.occlusion import Occlusion
from xattr.explainers.removal import ConditionalRemoval, MarginalRemoval


def _mlp(dtype) -> nn.Module:  # [B, 1, 8, 8] -> [B, 3]
    return mlp(64, 16, 3, dtype=dtype, seed=1, flatten=True)


def _cnn(dtype) -> nn.Module:  # [B, 1, 8, 8] -> [B, 3]
    return cnn(1, 4, 8, 3, padding=1, pool=2, dtype=dtype, seed=2)


class _TupleModel(nn.Module):
    """f(x [B,1,8,8], y [B,5], scale [B,1]) -> [B, 3]."""

    def __init__(self, dtype):
        super().__init__()
        torch.manual_seed(3)
        self.a = _mlp(dtype)
        self.b = nn.Linear(5, 3).to(dtype)
        self.eval()

    def forward(self, x, y, scale):
        return self.a(x) * scale + torch.tanh(self.b(y)) * self.a(x).sin()


def _patches(size: int) -> torch.Tensor:
    r = torch.arange(8)
    return ((r[:, None] // size) * (8 // size) + r[None, :] // size).view(1, 8, 8)


def _close(a, b, tol):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape, (u.shape, v.shape)
        assert (u.double() - v.double()).abs().max().item() <= tol


# ------------------------------------------------------------------ FeatureAblation
@pytest.mark.parametrize("model_fn", [_mlp, _cnn])
@pytest.mark.parametrize("patch", [None, 2, 4])
@pytest.mark.parametrize("target", [1, "list", "tensor"])
def test_feature_ablation_captum(dtype, tol, model_fn, patch, target):
    model = model_fn(dtype)
    B = 3
    x = randn(B, 1, 8, 8, dtype=dtype, seed=4)
    t = {1: 1, "list": [0, 2, 1], "tensor": torch.tensor([2, 2, 0])}[target]
    fm = None if patch is None else _patches(patch)
    kw = dict(target=t, feature_mask=fm)
    for baselines in (
        None,
        0.5,
        randn(B, 1, 8, 8, dtype=dtype, seed=5),
        randn(1, 8, 8, dtype=dtype, seed=6),
    ):
        # Captum's results do not depend on perturbations_per_eval; 16 keeps it quick
        # (Captum 0.9's perturbations_per_eval > 1 path fails on per-example baselines or
        # targets and on [*F]-shaped feature masks)
        per_example = (
            not isinstance(t, int)
            or fm is not None
            or (isinstance(baselines, torch.Tensor) and baselines.shape[0] == B)
        )
        ref = CFeatureAblation(model).attribute(
            x, baselines=baselines, perturbations_per_eval=1 if per_example else 16, **kw
        )
        got = FeatureAblation(model).attribute(x, baselines=baselines, **kw)
        assert got.dtype == dtype
        _close(got, ref, tol)


def test_feature_ablation_tuple_args_and_per_example_masks(dtype, tol):
    model = _TupleModel(dtype)
    B = 2
    x = randn(B, 1, 8, 8, dtype=dtype, seed=7)
    y = randn(B, 5, dtype=dtype, seed=8)
    scale = randn(B, 1, dtype=dtype, seed=9)
    # per-example masks on x; y's features share ids with some of x's (cross-tensor)
    fx = torch.cat([_patches(2), _patches(4) + 3], 0).view(B, 1, 8, 8)
    fy = torch.tensor([[0, 1, 1, 20, 21]])
    bl = (randn(B, 1, 8, 8, dtype=dtype, seed=10), 0.25)
    kw = dict(baselines=bl, target=[2, 0], additional_forward_args=(scale,), feature_mask=(fx, fy))
    ref = CFeatureAblation(model).attribute((x, y), **kw)
    got = FeatureAblation(model).attribute((x, y), **kw)
    assert isinstance(got, tuple)
    _close(got, ref, tol)
    for ppe in (1, 3, 50):
        _close(
            FeatureAblation(model).attribute((x, y), perturbations_per_eval=ppe, **kw),
            ref,
            tol,
        )
        _close(
            CFeatureAblation(model).attribute((x, y), perturbations_per_eval=ppe, **kw),
            ref,
            tol,
        )


def test_feature_ablation_independent_of_batching():
    model = _cnn(F64)
    x = randn(2, 1, 8, 8, seed=11)
    fa = FeatureAblation(model)
    ref = fa.attribute(x, target=0, feature_mask=_patches(2))
    for kw in ({"perturbations_per_eval": 1}, {"perturbations_per_eval": 7}, {"memory_budget": 1}):
        _close(fa.attribute(x, target=0, feature_mask=_patches(2), **kw), ref, 1e-12)


def test_feature_ablation_multi_target():
    model = _mlp(F64)
    x = randn(2, 1, 8, 8, seed=12)
    fa = FeatureAblation(model)
    got = fa.attribute(x, target=[[0, 2], [1, 1]], feature_mask=_patches(4))
    assert got.shape == (2, 2, 1, 8, 8)
    for k in range(2):
        single = fa.attribute(x, target=[[0, 2][k], [1, 1][k]], feature_mask=_patches(4))
        _close(got[:, k], single, 1e-12)
    allt = fa.attribute(x, target="all")
    assert allt.shape == (2, 3, 1, 8, 8)
    for c in range(3):
        _close(allt[:, c], fa.attribute(x, target=c), 1e-12)


def test_feature_ablation_removals():
    model = _mlp(F64)
    x = randn(3, 1, 8, 8, seed=13)
    z = randn(1, 1, 8, 8, seed=14)
    fa = FeatureAblation(model)
    ref = fa.attribute(x, baselines=z, target=1, feature_mask=_patches(2))
    got = fa.attribute(x, target=1, feature_mask=_patches(2), removal=MarginalRemoval(z))
    _close(got, ref, 1e-12)

    def surrogate(xm, mask):
        assert mask.dtype == torch.bool and mask.shape[1] == 16
        return model(xm)

    got = fa.attribute(
        x, baselines=z, target=1, feature_mask=_patches(2), removal=ConditionalRemoval(surrogate)
    )
    _close(got, ref, 1e-12)
    # several background rows: the average of the one-row games (the game is linear in v)
    zz = randn(3, 1, 8, 8, seed=15)
    mean = sum(fa.attribute(x, baselines=zz[i : i + 1], target=1) for i in range(3)) / 3
    _close(fa.attribute(x, target=1, removal=MarginalRemoval(zz)), mean, 1e-12)


# ------------------------------------------------------------------ Occlusion
def _occlusion_brute(model, x, window, stride, baseline, target):
    """Float64 Captum semantics, one window at a time."""
    feat = x.shape[1:]
    counts = [math.ceil((f - w) / s) + 1 for f, w, s in zip(feat, window, stride)]
    fx = model(x)[:, target]
    acc = torch.zeros_like(x)
    cover = torch.zeros(feat, dtype=x.dtype)
    for pos in itertools.product(*[range(c) for c in counts]):
        m = torch.zeros(feat, dtype=torch.bool)
        m[tuple(slice(p * s, p * s + w) for p, s, w in zip(pos, stride, window))] = True
        xp = torch.where(m, baseline, x)
        acc += (fx - model(xp)[:, target]).view(-1, *[1] * len(feat)) * m
        cover += m
    return acc / cover


@pytest.mark.parametrize("model_fn", [_mlp, _cnn])
@pytest.mark.parametrize(
    "window,stride",
    [((1, 2, 2), (1, 2, 2)), ((1, 3, 3), 1), ((1, 3, 3), (1, 2, 2)), ((1, 4, 2), 2)],
)
def test_occlusion_captum(model_fn, window, stride):
    model = model_fn(F32)
    x = randn(3, 1, 8, 8, dtype=F32, seed=16)
    for baselines in (None, 0.3, randn(3, 1, 8, 8, dtype=F32, seed=17)):
        kw = dict(
            sliding_window_shapes=window, strides=stride, baselines=baselines, target=[0, 1, 2]
        )
        ref = COcclusion(model).attribute(x, **kw)
        got = Occlusion(model).attribute(x, **kw)
        _close(got, ref, 1e-5)
        _close(Occlusion(model).attribute(x, perturbations_per_eval=5, **kw), ref, 1e-5)


def test_occlusion_float64_brute():
    model = _cnn(F64)
    x = randn(2, 1, 8, 8, seed=18)
    b = randn(2, 1, 8, 8, seed=19)
    window, stride = (1, 3, 3), (1, 2, 2)
    ref = _occlusion_brute(model, x, window, stride, b, 1)
    occ = Occlusion(model)
    got = occ.attribute(x, window, stride, baselines=b, target=1)
    assert got.dtype == F64
    _close(got, ref, 1e-10)
    _close(occ.attribute(x, window, stride, baselines=b, target=1, memory_budget=1), ref, 1e-10)
    _close(
        occ.attribute(x, window, stride, target=1, removal=MarginalRemoval(b[:1])),
        occ.attribute(x, window, stride, baselines=b[:1], target=1),
        1e-12,
    )


def test_occlusion_tuple_and_targets():
    model = _TupleModel(F32)
    x = randn(2, 1, 8, 8, dtype=F32, seed=20)
    y = randn(2, 5, dtype=F32, seed=21)
    scale = randn(2, 1, dtype=F32, seed=22)
    kw = dict(
        sliding_window_shapes=((1, 2, 2), (2,)),
        strides=((1, 2, 2), 1),
        baselines=(0.1, randn(1, 5, dtype=F32, seed=23)),
        additional_forward_args=(scale,),
    )
    ref = COcclusion(model).attribute((x, y), target=2, **kw)
    got = Occlusion(model).attribute((x, y), target=2, **kw)
    _close(got, ref, 1e-5)
    allt = Occlusion(model).attribute((x, y), target="all", **kw)
    assert allt[0].shape == (2, 3, 1, 8, 8) and allt[1].shape == (2, 3, 5)
    _close((allt[0][:, 2], allt[1][:, 2]), got, 1e-6)


# ------------------------------------------------------------------ exact games
def _game(model, x, b, groups, d):
    """v(S) for one example x [1, *F] as a Python function of a frozenset."""

    def v(S):
        keep = torch.zeros_like(x, dtype=torch.bool)
        for i in S:
            keep |= groups == i
        with torch.no_grad():
            return float(model(torch.where(keep, x, b)).reshape(-1)[0])

    return v


def _brute_shapley(v, d):
    phi = [0.0] * d
    for i in range(d):
        rest = [j for j in range(d) if j != i]
        for k in range(d):
            w = math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d)
            for S in itertools.combinations(rest, k):
                phi[i] += w * (v(frozenset(S) | {i}) - v(frozenset(S)))
    return torch.tensor(phi, dtype=F64)


def _brute_banzhaf(v, d):
    phi = [0.0] * d
    for i in range(d):
        rest = [j for j in range(d) if j != i]
        for k in range(d):
            for S in itertools.combinations(rest, k):
                phi[i] += (v(frozenset(S) | {i}) - v(frozenset(S))) / 2 ** (d - 1)
    return torch.tensor(phi, dtype=F64)


def _small_model():
    torch.manual_seed(5)
    return nn.Sequential(nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 2)).double().eval()


@pytest.mark.parametrize("d_mask", [None, "groups"])
def test_exact_shapley_and_banzhaf_brute(d_mask):
    model = _small_model()
    x = randn(2, 8, seed=24)
    b = randn(2, 8, seed=25)
    fm = None if d_mask is None else torch.tensor([[0, 0, 1, 2, 3, 3, 4, 5]])
    d = 8 if fm is None else 6
    groups = torch.arange(8).view(1, 8) if fm is None else fm
    sh = ExactShapley(model).attribute(x, baselines=b, target=1, feature_mask=fm)
    bz = Banzhaf(model).attribute(x, baselines=b, target=1, feature_mask=fm)
    f1 = lambda t: model(t)[:, 1:2]  # noqa: E731
    for e in range(2):
        v = _game(f1, x[e : e + 1], b[e : e + 1], groups, d)
        ref_sh = _brute_shapley(v, d)
        ref_bz = _brute_banzhaf(v, d)
        _close(sh[e], ref_sh[groups[0]], 1e-10)
        _close(bz[e], ref_bz[groups[0]], 1e-10)


def test_shapley_axioms():
    x = randn(3, 6, seed=26)
    b = randn(3, 6, seed=27)
    x[:, 1] = x[:, 0]
    b[:, 1] = b[:, 0]

    def f(t):  # symmetric in features 0 and 1, ignores feature 3
        return torch.tanh(t[:, 0] * t[:, 1] + t[:, 2]) + t[:, 4] * t[:, 5] ** 2 + t[:, 0] + t[:, 1]

    def g(t):
        return (t[:, :3] * t[:, 3:]).sum(1).sin()

    es = ExactShapley(f)
    phi, delta = es.attribute(x, baselines=b, return_convergence_delta=True)
    _close(phi.sum(1), f(x) - f(b), 1e-10)  # efficiency
    assert delta.abs().max() <= 1e-10
    _close(phi[:, 0], phi[:, 1], 1e-12)  # symmetry
    assert phi[:, 3].abs().max() <= 1e-12  # dummy
    lin = ExactShapley(lambda t: f(t) + 2 * g(t)).attribute(x, baselines=b)
    _close(lin, phi + 2 * ExactShapley(g).attribute(x, baselines=b), 1e-10)  # linearity


def test_exact_multi_target_and_marginal():
    model = _small_model()
    x = randn(3, 8, seed=28)
    z = randn(1, 8, seed=29)
    fm = torch.tensor([0, 0, 1, 1, 2, 3, 4, 4])
    for cls in (ExactShapley, Banzhaf):
        ex = cls(model)
        allt = ex.attribute(x, baselines=z, target="all", feature_mask=fm)
        assert allt.shape == (3, 2, 8)
        for c in range(2):
            _close(allt[:, c], ex.attribute(x, baselines=z, target=c, feature_mask=fm), 1e-12)
        marg = ex.attribute(x, target="all", feature_mask=fm, removal=MarginalRemoval(z))
        _close(marg, allt, 1e-12)


# ------------------------------------------------------------------ MSR Banzhaf
def _msr_setup():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1)).double().eval()
    x = randn(2, 6, seed=30) * 2
    return model, x


def test_msr_converges_and_is_deterministic():
    model, x = _msr_setup()
    bz = Banzhaf(model)
    exact = bz.attribute(x)
    errs = []
    for n in (100, 1000, 20000):
        est = bz.attribute(x, n_samples=n, seed=1)
        errs.append((est - exact).abs().max().item())
    assert errs[-1] < errs[0] and errs[-1] < 0.05
    a = bz.attribute(x, n_samples=300, seed=7, return_std=True)
    b = bz.attribute(x, n_samples=300, seed=7, return_std=True)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    torch.manual_seed(3)
    c = bz.attribute(x, n_samples=300)
    torch.manual_seed(3)
    assert torch.equal(c, bz.attribute(x, n_samples=300))
    assert not torch.equal(a[0], bz.attribute(x, n_samples=300, seed=8))
    e, s = bz.attribute(x, return_std=True)
    assert torch.equal(s, torch.zeros_like(s))


def test_msr_std_coverage():
    model, x = _msr_setup()
    bz = Banzhaf(model)
    exact = bz.attribute(x)
    hits = total = 0
    for seed in range(150):
        est, se = bz.attribute(x, n_samples=200, seed=seed, return_std=True)
        hits += int(((est - exact).abs() <= 1.96 * se).sum())
        total += est.numel()
    assert 0.85 <= hits / total <= 1.0, hits / total


# ------------------------------------------------------------------ errors
def test_errors():
    model = _mlp(F32)
    x = randn(2, 1, 8, 8, dtype=F32, seed=31)
    fa = FeatureAblation(model)
    with pytest.raises(ValueError, match="baselines"):
        fa.attribute(x, baselines=torch.zeros(2, 1, 8, 7), target=0)
    with pytest.raises(ValueError, match="feature_mask"):
        fa.attribute(x, target=0, feature_mask=torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="feature_mask"):  # floats must hold integral ids
        fa.attribute(x, target=0, feature_mask=torch.full((1, 8, 8), 0.5))
    with pytest.raises(ValueError, match="target"):
        fa.attribute(x, target=5)
    with pytest.raises(ValueError, match="target"):
        fa.attribute(x, target=[0, 7])
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        fa.attribute(x, target=0, perturbations_per_eval=0)
    with pytest.raises(ValueError, match="forward_func"):
        # one row too many (one row for the whole batch is Captum's aggregate mode)
        FeatureAblation(lambda t: torch.cat([model(t), model(t)[:1]])).attribute(x, target=0)
    with pytest.raises(ValueError, match="forward_func"):
        FeatureAblation(lambda t: model(t) * float("nan")).attribute(x, target=0)
    occ = Occlusion(model)
    with pytest.raises(ValueError, match="forward_func"):
        Occlusion(lambda t: model(t)[:1]).attribute(x, (1, 2, 2), target=0)
    with pytest.raises(ValueError, match="sliding_window_shapes"):
        occ.attribute(x, (1, 9, 2), target=0)
    with pytest.raises(ValueError, match="sliding_window_shapes"):
        occ.attribute(x, (2, 2), target=0)
    with pytest.raises(ValueError, match="strides"):
        occ.attribute(x, (1, 2, 2), strides=(1, 3, 3), target=0)
    with pytest.raises(ValueError, match="baselines"):
        occ.attribute(x, (1, 2, 2), baselines=torch.zeros(3, 3), target=0)
    with pytest.raises(TypeError, match="removal"):
        occ.attribute(x, (1, 2, 2), target=0, removal=ConditionalRemoval(model))
    flat = randn(1, 21, seed=32)
    with pytest.raises(ValueError, match="feature_mask"):
        ExactShapley(lambda t: t.sum(1)).attribute(flat)
    with pytest.raises(ValueError, match="n_samples"):
        Banzhaf(lambda t: t.sum(1)).attribute(flat)
    with pytest.raises(TypeError, match="n_samples"):
        Banzhaf(lambda t: t.sum(1)).attribute(flat, n_samples=1.5)
    with pytest.raises(TypeError, match="seed"):
        Banzhaf(lambda t: t.sum(1)).attribute(flat, n_samples=10, seed="a")
    # sampling works beyond 20 features
    assert Banzhaf(lambda t: t.sum(1)).attribute(flat, n_samples=500, seed=0).shape == (1, 21)


def test_training_mode_warns():
    model = nn.Sequential(_mlp(F32), nn.Dropout(0.1)).train()
    x = randn(1, 1, 8, 8, dtype=F32, seed=33)
    with pytest.warns(UserWarning, match="training mode"):
        FeatureAblation(model).attribute(x, target=0, feature_mask=_patches(4))
    with pytest.warns(UserWarning, match="training mode"):
        Occlusion(model).attribute(x, (1, 4, 4), (1, 4, 4), target=0)


def test_show_progress_and_scalar_outputs():
    x = randn(2, 4, seed=34)
    f = lambda t: (t**2).sum(1)  # noqa: E731  (one value per example, target=None)
    ref = CFeatureAblation(f).attribute(x, show_progress=True)
    _close(FeatureAblation(f).attribute(x, show_progress=True), ref, 1e-12)
    _close(
        Occlusion(f).attribute(x, (2,), show_progress=True),
        COcclusion(f).attribute(x, (2,)).double(),
        1e-6,
    )
    ExactShapley(f).attribute(x, show_progress=True)
    Banzhaf(f).attribute(x, n_samples=50, seed=0, show_progress=True)


# ----------------------------------------------------------------- token-id inputs
class _Bag(nn.Module):
    """Token ids [B, L] -> [B, 3] through an embedding bag (float32 outputs)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.emb, self.out = nn.Embedding(30, 8), nn.Linear(8, 3)

    def forward(self, ids):
        return self.out(torch.tanh(self.emb(ids)).mean(1))


def test_token_ids_match_captum_in_the_models_dtype():
    model = _Bag().eval()
    ids = torch.randint(1, 30, (3, 7), generator=gen(5))
    target = torch.tensor([0, 2, 1])
    ours = FeatureAblation(model).attribute(ids, baselines=0, target=target)
    theirs = CFeatureAblation(model).attribute(ids, baselines=0, target=target)
    assert ours.dtype == theirs.dtype == F32
    torch.testing.assert_close(ours, theirs, rtol=0, atol=TOL[F32])
    occ = Occlusion(model).attribute(ids, (2,), baselines=0, target=target)
    cocc = COcclusion(model).attribute(ids, (2,), baselines=0, target=target)
    assert occ.dtype == cocc.dtype == F32
    torch.testing.assert_close(occ, cocc, rtol=0, atol=TOL[F32])
    exact = ExactShapley(model).attribute(ids, baselines=0, target=target)
    assert exact.dtype == F32
    # a float64 model gives float64 attributions
    assert FeatureAblation(model.double()).attribute(ids, target=0).dtype == F64


def test_feature_ablation_attributions_take_the_output_dtype():
    """As Captum's FeatureAblation: float64 outputs of float32 inputs give float64
    attributions, integer outputs exact int64 differences (Captum's values too)."""
    x = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]])
    for f in (
        lambda t: (t.double() * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum(1),
        lambda t: (t * 2).round().long().sum(1),
    ):
        ours, theirs = FeatureAblation(f).attribute(x), CFeatureAblation(f).attribute(x)
        assert ours.dtype == theirs.dtype == f(x).dtype
        assert torch.equal(ours, theirs)
