"""Drop-in details from Captum's own test suite: the Attribution API flags, convergence
deltas, Captum's names and argument forms (ShapleyValues, callable GradientShap
baselines, NoiseTunnel over per-example feature masks, target forms, inputs that
require grad)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import xattr

ca = pytest.importorskip("captum.attr")
# Captum's gradient methods warn that they set requires_grad on our inputs
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor .* did not already require")
F32, F64 = torch.float32, torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mlp(dtype=F32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype).eval()


X = torch.randn(4, 6, generator=_gen(1))

# the explainers Captum has too, built from the model alone (the registry)
NAMES = xattr.explainer_names(captum=True, standalone=True)


@pytest.mark.parametrize("name", NAMES)
def test_flags_match_captum(name):
    model = _mlp()
    ours, theirs = getattr(xattr, name)(model), getattr(ca, name)(model)
    assert ours.multiplies_by_inputs == theirs.multiplies_by_inputs
    assert ours.has_convergence_delta() == theirs.has_convergence_delta()
    nt_ours, nt_theirs = xattr.NoiseTunnel(ours), ca.NoiseTunnel(theirs)
    assert nt_ours.multiplies_by_inputs == nt_theirs.multiplies_by_inputs
    assert nt_ours.has_convergence_delta() == nt_theirs.has_convergence_delta()


def test_lig_flags_match_captum():
    model = _mlp()
    ours = xattr.LayerIntegratedGradients(model, model[0], multiply_by_inputs=False)
    theirs = ca.LayerIntegratedGradients(model, model[0], multiply_by_inputs=False)
    assert ours.multiplies_by_inputs == theirs.multiplies_by_inputs is False
    assert ours.has_convergence_delta() == theirs.has_convergence_delta() is True


def test_compute_convergence_delta_matches_captum():
    model = _mlp(F64)
    x = X.double()
    base = torch.full_like(x, 0.2)
    target = [0, 2, 1, 1]
    ig = xattr.IntegratedGradients(model)
    a = ig.attribute(x, base, target=target, n_steps=10)
    ours = ig.compute_convergence_delta(a, base, x, target=target)
    theirs = ca.IntegratedGradients(model).compute_convergence_delta(a, base, x, target=target)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    # the same delta attribute() returns; scalar start points work too
    _, delta = ig.attribute(x, base, target=target, n_steps=10, return_convergence_delta=True)
    torch.testing.assert_close(ours, delta, rtol=0, atol=1e-12)
    assert ig.compute_convergence_delta(a, 0.2, x, target=target).shape == (4,)
    with pytest.raises(ValueError, match="attributions"):
        ig.compute_convergence_delta(a[:2], base, x, target=target)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_shapley_values_matches_captum(dtype):
    model = _mlp(dtype)
    x = X.to(dtype)
    fm = torch.tensor([[0, 0, 1, 2, 3, 3]])
    ours = xattr.ShapleyValues(model).attribute(
        x, 0.5, target=1, feature_mask=fm, perturbations_per_eval=3
    )
    theirs = ca.ShapleyValues(model).attribute(
        x, 0.5, target=1, feature_mask=fm, perturbations_per_eval=3
    )
    # Captum 0.9 accumulates ShapleyValues in float32 even for a float64 model (~1e-7
    # off); ours stays in the input's dtype, exact to 1e-10 against brute force
    # (test_explainers_ablation).
    assert ours.dtype == dtype
    torch.testing.assert_close(ours, theirs.to(dtype), rtol=0, atol=1e-5 if dtype == F32 else 1e-6)
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        xattr.ShapleyValues(model).attribute(x, target=1, perturbations_per_eval=0)


def test_gradient_shap_takes_a_function_for_baselines():
    model = _mlp()
    dist = torch.randn(5, 6, generator=_gen(2))
    gs = xattr.GradientShap(model)
    ref = gs.attribute(X, dist, n_samples=4, target=0, seed=3)
    torch.testing.assert_close(gs.attribute(X, lambda: dist, n_samples=4, target=0, seed=3), ref)
    got = gs.attribute(X, lambda inp: dist + 0 * inp[:1], n_samples=4, target=0, seed=3)
    torch.testing.assert_close(got, ref)


def test_noise_tunnel_repeats_per_example_feature_masks():
    model = _mlp()
    fm = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 2], [0] * 6, [1, 0, 1, 0, 1, 0]])
    kw = dict(nt_samples=3, stdevs=0.0, target=2, feature_mask=fm, baselines=0.1)
    ours = xattr.NoiseTunnel(xattr.FeatureAblation(model)).attribute(X, **kw)
    theirs = ca.NoiseTunnel(ca.FeatureAblation(model)).attribute(X, **kw)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    plain = xattr.FeatureAblation(model).attribute(X, 0.1, target=2, feature_mask=fm)
    torch.testing.assert_close(ours, plain, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "target",
    [torch.tensor([1]), torch.tensor(2), torch.tensor([0, 2, 1, 1]), [2, 1, 0, 0]],
    ids=["tensor1", "tensor0d", "tensorB", "listB"],
)
@pytest.mark.parametrize("name", ["FeatureAblation", "IntegratedGradients", "Saliency"])
def test_target_forms_match_captum(name, target):
    model = _mlp()
    ours = getattr(xattr, name)(model).attribute(X, target=target)
    theirs = getattr(ca, name)(model).attribute(X, target=target)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_per_example_tuple_targets_on_a_multidimensional_output():
    torch.manual_seed(5)
    lin = nn.Linear(6, 12)

    def f(x):
        return lin(x).view(-1, 3, 4)

    target = [(0, 1), (2, 3), (1, 0), (2, 2)]
    ours = xattr.FeatureAblation(f).attribute(X, target=target)
    theirs = ca.FeatureAblation(f).attribute(X, target=target)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_none_and_bare_tensor_additional_forward_args():
    torch.manual_seed(6)
    lin = nn.Linear(6, 3)

    def f(x, scale, flag=None):
        return lin(x) * scale if flag is None else lin(x)

    scale = torch.rand(4, 1, generator=_gen(7)) + 0.5
    for args in [scale, (scale, None)]:
        ours = xattr.FeatureAblation(f).attribute(X, target=1, additional_forward_args=args)
        theirs = ca.FeatureAblation(f).attribute(X, target=1, additional_forward_args=args)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_inputs_that_require_grad_are_left_alone(name):
    model = _mlp()
    x = X.clone().requires_grad_()
    kw = {"sliding_window_shapes": (2,)} if name == "Occlusion" else {}
    if name == "GradientShap":
        kw.update(baselines=torch.zeros(3, 6), seed=0)
    if name == "DeepLiftShap":  # a baseline distribution is required, as in Captum
        kw.update(baselines=torch.randn(3, 6, generator=_gen(2)))
    if name in ("KernelShap", "Lime", "ShapleyValueSampling"):
        kw.update(n_samples=8 if name != "ShapleyValueSampling" else 2, seed=0)
    if name == "FeaturePermutation":
        kw.update(seed=0)
    a = getattr(xattr, name)(model).attribute(x, target=0, **kw)
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert x.grad is None
    ref = getattr(xattr, name)(model).attribute(X, target=0, **kw)
    torch.testing.assert_close(a.detach(), ref)


@pytest.mark.parametrize("name", ["KernelShap", "Lime", "ShapleyValueSampling"])
@pytest.mark.parametrize(
    "ids, columns",
    [
        ([1, 1, 3, 3, 4, 1], [0, 2, 3]),  # Captum shifts the ids to start at 0: D = 4
        ([-2, -2, 0, 0, 1, -2], [0, 2, 3]),  # negative ids: each keeps its own column
        ([0, 0, 2, 2, 5, 0], [0, 2, 5]),  # gaps stay as zero columns: D = 6
    ],
)
def test_interpretable_outputs_use_captums_columns(name, ids, columns):
    model = _mlp()
    fm = torch.tensor([ids])
    n = 6 if name == "ShapleyValueSampling" else 40
    e = getattr(xattr, name)(model)
    full = e.attribute(X, target=0, feature_mask=fm, n_samples=n, seed=0)
    small = e.attribute(X, target=0, feature_mask=fm, n_samples=n, seed=0, return_input_shape=False)
    D = max(ids) - min(ids) + 1
    assert small.shape == (4, D)
    unused = [c for c in range(D) if c not in columns]
    assert (small[:, unused] == 0).all()
    # the first element of each feature (ids in increasing order) carries its value
    first = [ids.index(i) for i in sorted(set(ids))]
    torch.testing.assert_close(small[:, columns], full[:, first])
    if name != "ShapleyValueSampling":  # Captum's layout (its KernelShap / Lime)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = getattr(ca, name)(model).attribute(
                X, target=0, feature_mask=fm, n_samples=n, return_input_shape=False
            )
        assert theirs.shape == small.shape


@pytest.mark.parametrize("name", ["FeatureAblation", "ShapleyValueSampling"])
def test_one_scalar_per_example_inputs_match_captum(name):
    def f(x):
        return torch.stack([2 * x, x * x], 1)

    x = torch.randn(5, generator=_gen(9))
    kw = {} if name == "FeatureAblation" else {"n_samples": 4}
    ours = getattr(xattr, name)(f).attribute(x, 0.5, target=1, **kw)
    theirs = getattr(ca, name)(f).attribute(x, 0.5, target=1, **kw)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    # one feature: KernelShap is exact (Captum's KernelShap cannot sample d = 1)
    ks = xattr.KernelShap(f).attribute(x, 0.5, target=1, n_samples=4)
    torch.testing.assert_close(ks, x * x - 0.25)
