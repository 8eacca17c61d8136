"""KernelShap, ShapleyValueSampling and Lime against exact Shapley values and Captum."""

from __future__ import annotations

import warnings

import pytest
import torch

from tests._helpers import F64, gen, randn
from xattr import ops
from xattr.explainers.kernel_shap import KernelShap, kernel_design
from xattr.explainers.lime import Lime, LinearSurrogate
from xattr.explainers.shapley_value_sampling import ShapleyValueSampling

captum_attr = pytest.importorskip("captum.attr")


def make_model(d: int, T: int = 3, seed: int = 0):
    """A nonlinear float64 model with interactions: [B, d] -> [B, T]."""
    W = randn(d, T, seed=seed)
    V = randn(d, d, seed=seed + 1) / d

    def f(x):
        x = x.reshape(x.shape[0], -1)
        return torch.tanh(x @ W) + ((x @ V) * x).sum(1, keepdim=True)

    return f


def exact(f, x, baseline=0.0):
    """Exact Shapley values [B, T, d] of the baseline game, every scalar a feature."""
    d = x.shape[1]
    m = ops.enumerate_coalitions(d).to(x.dtype)
    vals = torch.stack([f(xb[None] * m + baseline * (1 - m)) for xb in x])
    return ops.exact_shapley(vals)


D = 8
F = make_model(D)
X = randn(2, D, seed=5)
EX = exact(F, X)  # [2, 3, 8]


# ------------------------------------------------------------------ accuracy
def test_kernel_shap_exact_when_budget_covers_all_coalitions():
    for n in (2**D - 2, 1000):
        a = KernelShap(F).attribute(X, target=1, n_samples=n, seed=3)
        torch.testing.assert_close(a, EX[:, 1], atol=1e-10, rtol=0)
    m, w, pair, is_exact = kernel_design(D, 2**D - 2, 0)
    assert is_exact and m.shape[0] == 2**D - 2 and bool((pair < 0).all())
    a, s = KernelShap(F).attribute(X, target=1, n_samples=300, seed=3, return_std=True)
    assert bool((s == 0).all())


def test_single_feature():
    f = lambda x: (x**2).sum(1)  # noqa: E731
    x = randn(3, 1, seed=1)
    for expl in (KernelShap(f), ShapleyValueSampling(f)):
        torch.testing.assert_close(expl.attribute(x, seed=0), x**2)


def test_kernel_design_allocation():
    m, w, pair, is_exact = kernel_design(10, 100, 0)
    assert not is_exact and m.shape[0] <= 100
    sizes = m.sum(1)
    # sizes 1 and 9 enumerated (20 rows) with their exact weight, the rest sampled in pairs
    assert int((sizes == 1).sum()) == 10 and int((sizes == 9).sum()) == 10
    assert bool((pair[(sizes == 1) | (sizes == 9)] < 0).all())
    s = m[pair >= 0]
    P = s.shape[0] // 2
    assert P == 40
    assert abs(float(w.sum()) - 1) < 1e-12
    # complements are present for every sampled row
    keys = {tuple(r.tolist()) for r in s}
    assert all(tuple((~r).tolist()) in keys for r in s)


def _err(a, ex):
    return float((a - ex).pow(2).mean().sqrt())


def test_convergence():
    x, ex = X[:1], EX[:1, 0]
    for cls, ns in ((KernelShap, (30, 200)), (ShapleyValueSampling, (4, 100))):
        errs = [
            sum(_err(cls(F).attribute(x, target=0, n_samples=n, seed=s), ex) for s in range(3))
            for n in ns
        ]
        assert errs[1] < 0.5 * errs[0], (cls.__name__, errs)


def test_no_worse_than_captum():
    x, ex = X[:1], EX[:1, 0]
    ours = {"ks": 0.0, "svs": 0.0}
    theirs = {"ks": 0.0, "svs": 0.0}
    n_ks, n_svs = 60, 6
    for s in range(10):
        ours["ks"] += _err(KernelShap(F).attribute(x, target=0, n_samples=n_ks, seed=s), ex)
        ours["svs"] += _err(
            ShapleyValueSampling(F).attribute(x, target=0, n_samples=n_svs, seed=s), ex
        )
        torch.manual_seed(s)
        c = captum_attr.KernelShap(F).attribute(
            x, target=0, n_samples=n_ks, perturbations_per_eval=n_ks
        )
        theirs["ks"] += _err(c, ex)
        torch.manual_seed(s)
        c = captum_attr.ShapleyValueSampling(F).attribute(
            x, target=0, n_samples=n_svs, perturbations_per_eval=64
        )
        theirs["svs"] += _err(c, ex)
    assert ours["ks"] <= theirs["ks"], (ours, theirs)
    assert ours["svs"] <= theirs["svs"], (ours, theirs)


@pytest.mark.parametrize("cls,n", [(KernelShap, 100), (ShapleyValueSampling, 40)])
def test_std_coverage(cls, n):
    hits, total = 0, 0
    for s in range(30):
        a, sd = cls(F).attribute(X, target="all", n_samples=n, seed=s, return_std=True)
        assert a.shape == sd.shape == EX.shape
        hits += int(((a - EX).abs() <= 1.96 * sd).sum())
        total += a.numel()
    assert hits / total >= 0.85, hits / total


# ---------------------------------------------------------------- axioms
@pytest.mark.parametrize("cls,n", [(KernelShap, 40), (ShapleyValueSampling, 5)])
def test_efficiency(cls, n):
    b = randn(1, D, seed=9)
    a = cls(F).attribute(X, baselines=b, target="all", n_samples=n, seed=1)
    gap = F(X) - F(b)
    torch.testing.assert_close(a.sum(-1), gap, atol=1e-12, rtol=0)


def test_symmetry_and_dummy():
    # v depends on x0 * x1 (symmetric, same values) and x2; x3, x4 are dummies.
    f = lambda x: (x[:, 0] * x[:, 1] + torch.sin(x[:, 2]) * x[:, 0])[:, None]  # noqa: E731
    x = torch.tensor([[1.5, 1.5, 0.7, 2.0, -1.0]], dtype=F64)
    ks = KernelShap(f).attribute(x, target=0, n_samples=30, seed=0)  # 2^5 - 2 = 30: exact
    assert abs(float(ks[0, 3])) < 1e-12 and abs(float(ks[0, 4])) < 1e-12
    sv = ShapleyValueSampling(f).attribute(x, target=0, n_samples=7, seed=0)
    assert float(sv[0, 3]) == 0.0 and float(sv[0, 4]) == 0.0
    g = lambda x: (x[:, 0] * x[:, 1] * x[:, 2])[:, None]  # noqa: E731
    y = torch.tensor([[1.5, 1.5, 1.5, 0.0]], dtype=F64)
    a = KernelShap(g).attribute(y, target=0, n_samples=14, seed=0)
    torch.testing.assert_close(a[0, :3], torch.full((3,), 1.5**3 / 3, dtype=F64))


# ---------------------------------------------------------- reproducibility
@pytest.mark.parametrize(
    "make",
    [
        lambda: KernelShap(F),
        lambda: ShapleyValueSampling(F),
        lambda: Lime(F),
    ],
)
def test_determinism_and_batch_independence(make):
    kw = {"target": "all", "n_samples": 40, "seed": 11}
    a = make().attribute(X, **kw)
    b = make().attribute(X, **kw)
    assert torch.equal(a, b)
    c = make().attribute(X, memory_budget=2000, **kw)  # a few rows per forward call
    torch.testing.assert_close(c, a, atol=1e-12, rtol=0)
    e = make().attribute(X, perturbations_per_eval=7, **kw)
    torch.testing.assert_close(e, a, atol=1e-12, rtol=0)
    torch.manual_seed(3)
    u = make().attribute(X, target="all", n_samples=40)
    torch.manual_seed(3)
    v = make().attribute(X, target="all", n_samples=40)
    assert torch.equal(u, v)
    assert not torch.equal(u, make().attribute(X, target="all", n_samples=40, seed=12))


@pytest.mark.parametrize("cls", [KernelShap, ShapleyValueSampling, Lime])
def test_several_targets_equal_per_target_runs(cls):
    kw = {"n_samples": 30, "seed": 4}
    many = cls(F).attribute(X, target=[[2, 0], [1, 2]], **kw)
    assert many.shape == (2, 2, D)
    for j in range(2):
        one = cls(F).attribute(X, target=[[2, 0][j], [1, 2][j]], **kw)
        torch.testing.assert_close(many[:, j], one, atol=1e-12, rtol=0)


def test_shapes_tuple_inputs_feature_mask():
    f = lambda a, b: a.sum((1, 2))[:, None] * b.sum(1, keepdim=True)  # noqa: E731
    a, b = randn(2, 3, 4, seed=1), randn(2, 5, seed=2)
    fm = (torch.arange(12).view(1, 3, 4) // 4, torch.tensor([3, 3, 4, 4, 4]))
    for expl in (KernelShap(f), ShapleyValueSampling(f), Lime(f)):
        out = expl.attribute((a, b), target=0, feature_mask=fm, n_samples=20, seed=0)
        assert isinstance(out, tuple) and out[0].shape == a.shape and out[1].shape == b.shape
        assert torch.equal(out[0][:, :, 0], out[0][:, :, 3])  # grouped elements share a value
    flat = KernelShap(f).attribute(
        (a, b), target=0, feature_mask=fm, n_samples=20, seed=0, return_input_shape=False
    )
    assert flat.shape == (2, 5)


# ------------------------------------------------------------------ LIME
def _samples_func(samples):
    it = iter(samples)

    def perturb(inp, **kwargs):
        return next(it)[None]

    return perturb


@pytest.mark.parametrize("model", ["lasso", "ridge"])
def test_lime_matches_captum_on_the_same_samples(model):
    from captum._utils.models.linear_model import SkLearnLasso, SkLearnRidge

    torch.manual_seed(0)
    f = make_model(12, seed=3)
    x = randn(2, 2, 6, seed=7).float()
    fm = torch.arange(12).view(1, 2, 6) // 2
    n = 40
    S = (torch.rand(2 * n, 6, generator=gen(1)) < 0.5).long()
    g = lambda t: f(t.double()).float()  # noqa: E731
    captum_model = SkLearnLasso(alpha=0.01) if model == "lasso" else SkLearnRidge(alpha=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = captum_attr.Lime(
            g, interpretable_model=captum_model, perturb_func=_samples_func(S)
        ).attribute(x, baselines=0.3, target=1, feature_mask=fm, n_samples=n)
    ours = Lime(
        g, None if model == "lasso" else LinearSurrogate("ridge"), perturb_func=_samples_func(S)
    ).attribute(x, baselines=0.3, target=1, feature_mask=fm, n_samples=n)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    # a user similarity function (Captum's default, called per sample) gives the same
    from captum.attr._core.lime import get_exp_kernel_similarity_function

    sim = get_exp_kernel_similarity_function("cosine", 1.0)
    again = Lime(
        g,
        None if model == "lasso" else "ridge",
        similarity_func=sim,
        perturb_func=_samples_func(S),
    ).attribute(x, baselines=0.3, target=1, feature_mask=fm, n_samples=n)
    torch.testing.assert_close(again, theirs, atol=1e-5, rtol=1e-5)
    # Captum's own surrogate object is accepted and fitted the same way
    same = Lime(g, captum_model, perturb_func=_samples_func(S)).attribute(
        x, baselines=0.3, target=1, feature_mask=fm, n_samples=n
    )
    torch.testing.assert_close(same, theirs, atol=1e-5, rtol=1e-5)


def test_lime_takes_captum_surrogates_and_refuses_their_unsupported_options():
    from captum._utils.models.linear_model import SkLearnLasso, SkLearnLinearRegression

    torch.manual_seed(0)
    g = lambda t: F(t.double()).float()  # noqa: E731
    x = X[:2].float()
    S = (torch.rand(60, D, generator=gen(2)) < 0.5).long()
    for captum_model in (SkLearnLasso(alpha=0.05), SkLearnLinearRegression()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = captum_attr.Lime(
                g, interpretable_model=captum_model, perturb_func=_samples_func(S)
            ).attribute(x, target=1, n_samples=30)
        ours = Lime(g, captum_model, perturb_func=_samples_func(S)).attribute(
            x, target=1, n_samples=30
        )
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="positive"):
        Lime(g, SkLearnLasso(alpha=0.1, positive=True)).attribute(x, target=1, n_samples=8)


def test_lime_default_sampler_recovers_a_linear_model():
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)
    f = lambda x: (x @ w)[:, None]  # noqa: E731
    x = torch.ones(1, 4, dtype=F64)
    a = Lime(f, "ridge").attribute(x, target=0, n_samples=64, seed=0)
    # ridge with a small penalty on an exactly linear game: close to w
    torch.testing.assert_close(a[0], w, atol=0.05, rtol=0)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("cls", [KernelShap, ShapleyValueSampling, Lime])
def test_bad_arguments(cls):
    e = cls(F)
    with pytest.raises(ValueError, match="n_samples"):
        e.attribute(X, target=0, n_samples=0)
    with pytest.raises(TypeError, match="n_samples"):
        e.attribute(X, target=0, n_samples=2.5)
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        e.attribute(X, target=0, perturbations_per_eval=0)
    with pytest.raises(TypeError, match="seed"):
        e.attribute(X, target=0, seed="x")
    with pytest.raises(ValueError, match="seed"):
        e.attribute(X, target=0, seed=-1)
    with pytest.raises(TypeError, match="inputs"):
        e.attribute([1, 2], target=0)
    with pytest.raises(ValueError, match="target"):
        e.attribute(X, target="some")
    with pytest.raises(TypeError, match="forward_func"):
        cls(3)


def test_bad_lime_arguments():
    with pytest.raises(ValueError, match="interpretable_model"):
        Lime(F, "elastic")
    with pytest.raises(TypeError, match="interpretable_model"):
        Lime(F, 3)
    with pytest.raises(ValueError, match="interpretable_model"):
        Lime(F, LinearSurrogate(alpha=-1.0))
    with pytest.raises(TypeError, match="similarity_func"):
        Lime(F, similarity_func=1)
    with pytest.raises(ValueError, match="perturb_func"):
        Lime(F, perturb_func=lambda inp, **kw: torch.ones(1, 3)).attribute(X, target=0)
    with pytest.raises(TypeError, match="return_std"):
        KernelShap(F).attribute(X, target=0, return_std=1)
    with pytest.raises(TypeError, match="antithetic"):
        ShapleyValueSampling(F).attribute(X, target=0, antithetic=None)


def test_token_ids_give_attributions_in_the_models_dtype():
    torch.manual_seed(6)
    emb, lin = torch.nn.Embedding(20, 4), torch.nn.Linear(4, 2)

    def f(ids):
        return lin(torch.tanh(emb(ids)).mean(1))

    ids = torch.randint(1, 20, (2, 5), generator=gen(7))
    for cls, kw in [
        (KernelShap, {"n_samples": 40}),
        (Lime, {"n_samples": 40}),
        (ShapleyValueSampling, {"n_samples": 4}),
    ]:
        a = cls(f).attribute(ids, baselines=0, target=1, seed=0, **kw)
        assert a.shape == ids.shape and a.dtype == torch.float32, cls.__name__
