"""Results never depend on how the work is batched, bit for bit.

Every explainer of ``xattr.__all__`` (and MuS's smoothed output) is run with the batch
knobs it has (``memory_budget``, ``internal_batch_size``, ``perturbations_per_eval``,
``nt_samples_batch_size``) at values that range from one model row per forward call
to everything in one call; the attributions (and deltas / stds) must be identical.
The model is elementwise followed by a sum over a few elements, so that each of its
rows is computed the same way in any batch: what could differ is only xattr's own
arithmetic (the order of its sums).
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import Tensor

import xattr
from tests._helpers import randn
from xattr.smoothing import MuS

W = torch.linspace(-1.5, 2.0, 12)
V = torch.linspace(0.5, -1.0, 12)


class Model(torch.nn.Module):
    """[n, 3, 4] -> [n, 3]: per-row outputs whose arithmetic does not depend on n."""

    def __init__(self) -> None:
        super().__init__()
        self.act = torch.nn.Tanh()  # an elementwise layer, for LayerIntegratedGradients

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], 12)
        z = self.act(flat * W.to(x.dtype))
        a = (z * V.to(x.dtype)).sum(1) + flat[:, 0] * flat[:, 5]
        b = (z * z).sum(1) - flat[:, 3] * flat[:, 7] * flat[:, 11]
        c = torch.sigmoid(flat[:, 1] + flat[:, 2] * flat[:, 9])
        return torch.stack([a, b, c], 1)


MASK = torch.tensor([[0, 0, 1, 1], [2, 2, 3, 3], [4, 5, 5, 5]]).view(1, 3, 4)
BUDGETS = (1, 1500, "1GB")  # one row per call, a few rows, everything at once


def _same(results: list) -> None:
    first = results[0]
    for other in results[1:]:
        a = first if isinstance(first, tuple) else (first,)
        b = other if isinstance(other, tuple) else (other,)
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert x.dtype == y.dtype and x.shape == y.shape
            assert torch.equal(x, y), f"max |difference| {(x - y).abs().max().item():.3g}"


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def data(request) -> tuple[Model, Tensor]:
    x = randn(4, 3, 4, seed=1).to(request.param)
    model = Model().to(request.param).eval()
    # the premise: one row alone and in a batch give the same bits
    full = model(x)
    assert all(torch.equal(model(x[i : i + 1])[0], full[i]) for i in range(4))
    return model, x


def test_model_is_batch_invariant(data):
    model, x = data
    big = torch.cat([x] * 9)
    assert torch.equal(model(big)[:4], model(x))


GRADIENT_KNOBS = [{"internal_batch_size": n} for n in (1, 3, 7, 10, 21, 1000)] + [
    {"memory_budget": b} for b in BUDGETS
]


@pytest.mark.parametrize("target", [1, "all"])
def test_integrated_gradients(data, target):
    model, x = data
    ig = xattr.IntegratedGradients(model)
    kw = dict(target=target, n_steps=10, return_convergence_delta=True)
    _same([ig.attribute(x, 0.1, **kw, **knob) for knob in GRADIENT_KNOBS])
    _same([ig.attribute(x, **kw, method="riemann_trapezoid", **knob) for knob in GRADIENT_KNOBS])


@pytest.mark.parametrize("target", [1, "all"])
def test_layer_grad_cam(data, target):
    model, x = data
    gc = xattr.LayerGradCam(model, model.act)
    _same([gc.attribute(x, target=target, memory_budget=b) for b in BUDGETS])


def test_layer_integrated_gradients(data):
    model, x = data
    lig = xattr.LayerIntegratedGradients(model, model.act)
    kw = dict(target=0, n_steps=9, return_convergence_delta=True)
    _same([lig.attribute(x, **kw, **knob) for knob in GRADIENT_KNOBS])


SIG_KNOBS = [{"internal_batch_size": n} for n in (1, 7, 20, 10**6)] + [{"memory_budget": 1}]


@pytest.mark.filterwarnings("ignore:normalize")
@pytest.mark.parametrize("combine", ["per_size", "shared"])
def test_shapley_integrated_gradients(data, combine):
    model, x = data
    x = x[:2]
    sig = xattr.ShapleyIntegratedGradients(model)
    kw = dict(target=[0, 2], n_steps=6, seed=3, combine=combine, feature_mask=MASK)
    with_delta = [
        sig.attribute(x, n_coalitions_per_size=2, return_convergence_delta=True, **kw, **knob)
        for knob in SIG_KNOBS
    ]
    _same([r[0] for r in with_delta])
    for r in with_delta[1:]:  # the path totals are float64 sums, equal to rounding
        torch.testing.assert_close(r[1], with_delta[0][1], rtol=0, atol=1e-5)
    # asking for the deltas changes nothing in the attributions
    _same([with_delta[0][0], sig.attribute(x, n_coalitions_per_size=2, **kw)])
    kw["feature_mask"] = MASK.clamp(max=3)  # exact mode: d = 4, 32 paths
    _same([sig.attribute(x, exact=True, **kw, **knob) for knob in SIG_KNOBS])


def test_saliency_input_x_gradient_gradient_shap(data):
    model, x = data
    for make in (xattr.Saliency, xattr.InputXGradient):
        _same([make(model).attribute(x, target=2, memory_budget=b) for b in BUDGETS])
    gs = xattr.GradientShap(model)
    base = randn(5, 3, 4, seed=2).to(x.dtype)
    _same(
        [
            gs.attribute(
                x,
                base,
                n_samples=3,
                stdevs=0.1,
                target=1,
                seed=4,
                memory_budget=b,
                return_convergence_delta=True,
            )
            for b in BUDGETS
        ]
    )


def test_noise_tunnel(data):
    model, x = data
    nt = xattr.NoiseTunnel(xattr.IntegratedGradients(model))
    for nt_type in ("smoothgrad", "smoothgrad_sq", "vargrad"):
        runs = [
            nt.attribute(
                x,
                nt_type=nt_type,
                nt_samples=5,
                nt_samples_batch_size=n,
                stdevs=0.2,
                seed=5,
                target=1,
                n_steps=6,
                internal_batch_size=rows,
                return_convergence_delta=True,
            )
            for n in (None, 1, 2, 5)
            for rows in (None, 4)
        ]
        _same(runs)


class LiftModel(torch.nn.Module):
    """Like Model without its products of inputs, which DeepLift refuses (no rule), and
    with piecewise-linear activations, which round alike in vector and scalar code."""

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], 12)
        z = torch.relu(flat * W.to(x.dtype))
        s = torch.nn.functional.leaky_relu(flat * V.to(x.dtype) - 0.2, 0.3)
        a = (z * V.to(x.dtype)).sum(1)
        b = (s * W.to(x.dtype)).sum(1)
        c = torch.nn.functional.hardtanh(flat[:, 1] - flat[:, 2])
        return torch.stack([a, b, c], 1)


@pytest.mark.parametrize("target", [1, "all"])
def test_deeplift(data, target):
    _, x = data
    model = LiftModel()
    knobs = [{"memory_budget": b} for b in BUDGETS]
    kw = dict(target=target, return_convergence_delta=True)
    for base in (None, randn(4, 3, 4, seed=11).to(x.dtype)):
        _same([xattr.DeepLift(model).attribute(x, base, **kw, **knob) for knob in knobs])
    dist = randn(3, 3, 4, seed=12).to(x.dtype)
    _same([xattr.DeepLiftShap(model).attribute(x, dist, **kw, **knob) for knob in knobs])


class CamModel(torch.nn.Module):
    """LiftModel's kind of model with a layer module whose [B, 3, 4] output GradCAM maps."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.LeakyReLU(0.3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.layer(x * W.to(x.dtype).view(3, 4) - 0.2)
        z = torch.relu(h * V.to(x.dtype).view(3, 4))
        return torch.stack([z.sum((1, 2)), (h * W.to(x.dtype).view(3, 4)).sum((1, 2))], 1)


@pytest.mark.parametrize("target", [1, "all"])
def test_guided_grad_cam(data, target):
    _, x = data
    model = CamModel()
    gg = xattr.GuidedGradCam(model, model.layer)
    _same([gg.attribute(x, target=target, memory_budget=b) for b in BUDGETS])


def test_guided_backprop_deconvolution(data):
    _, x = data
    model = LiftModel()
    for make in (xattr.GuidedBackprop, xattr.Deconvolution):
        _same([make(model).attribute(x, target="all", memory_budget=b) for b in BUDGETS])


PERTURBATION = [
    (xattr.FeatureAblation, {}),
    (xattr.ShapleyValueSampling, {"n_samples": 3, "seed": 6}),
    (xattr.ShapleyValueSampling, {"n_samples": 3, "seed": 6, "return_std": True}),
    (xattr.Banzhaf, {"n_samples": 40, "seed": 7, "return_std": True}),
    (xattr.MeanWhenIncluded, {}),
    (xattr.MeanWhenIncluded, {"n_samples": 40, "seed": 7, "return_std": True}),
    (xattr.ExactShapley, {}),
    (xattr.ShapleyValues, {}),
    (xattr.KernelShap, {"n_samples": 30, "seed": 8}),
    (xattr.Lime, {"n_samples": 30, "seed": 9}),
]


@pytest.mark.parametrize("make, kw", PERTURBATION, ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize("removal", ["baseline", "marginal"])
def test_perturbation_explainers(data, make, kw, removal):
    model, x = data
    if removal == "marginal":
        kw = dict(kw, removal=xattr.MarginalRemoval(randn(3, 3, 4, seed=10).to(x.dtype)))
    knobs = [{"memory_budget": b} for b in BUDGETS]
    if "perturbations_per_eval" in inspect.signature(make.attribute).parameters:  # Captum's
        knobs += [{"perturbations_per_eval": n} for n in (1, 3)]
    explainer = make(model)
    _same([explainer.attribute(x, target=1, feature_mask=MASK, **kw, **knob) for knob in knobs])


def test_every_explainer_has_a_case():
    """A new explainer in the registry (xattr.EXPLAINERS) gets a case in this file."""
    perturbation = {make.__name__ for make, _ in PERTURBATION} | {"Occlusion"}
    perturbation |= {"FeaturePermutation"}  # test_feature_permutation (no removal=)
    assert perturbation == set(xattr.explainer_names("perturbation"))
    gradient = {  # the explainers the gradient tests above run
        "IntegratedGradients",
        "LayerIntegratedGradients",
        "LayerGradCam",
        "ShapleyIntegratedGradients",
        "Saliency",
        "InputXGradient",
        "GradientShap",
        "DeepLift",  # test_deeplift
        "DeepLiftShap",
        "GuidedBackprop",  # test_guided_backprop_deconvolution
        "Deconvolution",
        "GuidedGradCam",  # test_guided_grad_cam
    }
    assert gradient == set(xattr.explainer_names("gradient"))
    assert xattr.explainer_names("wrapper") == ["NoiseTunnel"]  # test_noise_tunnel


def test_feature_permutation(data):
    model, x = data
    fp = xattr.FeaturePermutation(model)
    knobs = [{"memory_budget": b} for b in BUDGETS] + [
        {"perturbations_per_eval": n} for n in (1, 3)
    ]
    _same([fp.attribute(x, target=1, feature_mask=MASK, seed=11, **knob) for knob in knobs])


def test_occlusion(data):
    model, x = data
    occ = xattr.Occlusion(model)
    knobs = [{"memory_budget": b} for b in BUDGETS] + [{"perturbations_per_eval": 2}]
    _same([occ.attribute(x, (2, 2), (1, 1), target=0, **knob) for knob in knobs])


@pytest.mark.parametrize("voting", [True, False])
def test_mus_smoothed_output(data, voting):
    model, x = data
    runs = [
        MuS(model, 0.5, q=8, feature_mask=MASK, voting=voting, output="logits", memory_budget=b)(x)
        for b in BUDGETS
    ]
    _same(runs)
