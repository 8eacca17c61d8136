"""Bad input to the explainers: a clear ValueError / TypeError that names the argument and
says what was expected, never a crash deep inside torch, a silent cast or a NaN."""

from __future__ import annotations

import inspect
import math
import warnings

import pytest
import torch
from _helpers import GRADIENT_EXPLAINERS, PERTURBATION_EXPLAINERS
from torch import nn

import xattr

NAN = math.nan

PERTURBATION = PERTURBATION_EXPLAINERS
# GradientShap and DeepLiftShap need a baseline distribution
GRADIENT = [n for n in GRADIENT_EXPLAINERS if n not in ("GradientShap", "DeepLiftShap")]


def _params(f) -> set[str]:
    return set(inspect.signature(f).parameters)


def _kw(name: str) -> dict:
    return {"sliding_window_shapes": (1,)} if name == "Occlusion" else {}


def _mlp(dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype).eval()


class _Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(10, 4)
        self.lstm = nn.LSTM(4, 5, batch_first=True)
        self.out = nn.Linear(5, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        o, _ = self.lstm(self.emb(ids))
        return self.out(o[:, -1])


X = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
IDS = torch.tensor([[1, 2, 3], [4, 5, 6]])


def _explain(name: str, model, x, **kw):
    e = getattr(xattr, name)(model)
    if name in ("KernelShap", "Lime"):
        kw.setdefault("n_samples", 8)
    if name in (
        "KernelShap",
        "Lime",
        "ShapleyValueSampling",
        "ShapleyIntegratedGradients",
        "FeaturePermutation",
    ):
        kw.setdefault("seed", 0)
    return e.attribute(x, **kw, **_kw(name))


# FeaturePermutation takes no baselines (its features take permuted values; Captum's
# signature has none either): the baseline checks below do not apply to it
WITH_BASELINES = [n for n in PERTURBATION if "baselines" in _params(getattr(xattr, n).attribute)]


# ------------------------------------------------- integer inputs, float baselines
@pytest.mark.parametrize("name", WITH_BASELINES)
@pytest.mark.parametrize(
    "baseline",
    [0.7, 2.0**70, torch.full((1, 3), 0.5)],
    ids=["fraction", "huge", "float-tensor"],
)
def test_token_ids_with_non_integral_baselines_name_the_baseline(name, baseline):
    """Such baselines make float copies of the ids (Captum's type promotion); a model
    that takes ids fails on them with an error that names the baseline, never a silent
    cast to another id."""
    with pytest.raises(ValueError, match=r"baselines\[0\]: .*int64.*integers"):
        _explain(name, _Tokens().eval(), IDS, baselines=baseline, target=0)


@pytest.mark.parametrize("name", WITH_BASELINES)
@pytest.mark.parametrize(
    "baseline", [NAN, torch.tensor([[0.0, NAN, 1.0]])], ids=["nan", "nan-tensor"]
)
def test_token_ids_refuse_non_finite_baselines(name, baseline):
    with pytest.raises(ValueError, match=r"baselines\[0\]: contains non-finite"):
        _explain(name, _Tokens().eval(), IDS, baselines=baseline, target=0)


@pytest.mark.parametrize("name", WITH_BASELINES)
def test_token_ids_take_integral_baselines(name):
    model = _Tokens().eval()
    ref = _explain(name, model, IDS, baselines=0, target=0)
    for b in (0.0, torch.tensor(0), torch.zeros(1, 3), torch.zeros(3, dtype=torch.int32)):
        torch.testing.assert_close(_explain(name, model, IDS, baselines=b, target=0), ref)


# ------------------------------------------------------------------- targets
@pytest.mark.parametrize("name", PERTURBATION + GRADIENT)
@pytest.mark.parametrize(
    "target",
    [1.5, 1.0, [0, 1.5, 2], torch.tensor([0.0, 1.0, 2.0]), (1.0,), [[0, 1.5]] * 3],
    ids=["float", "integral-float", "list", "float-tensor", "tuple", "list-of-lists"],
)
def test_float_targets_are_refused_not_truncated(name, target):
    with pytest.raises(TypeError, match="target: expected integer output indices"):
        _explain(name, _mlp(), X, target=target)


@pytest.mark.parametrize("name", ["KernelShap", "IntegratedGradients"])
def test_integer_targets_in_every_form_agree(name):
    ref = _explain(name, _mlp(), X, target=[1, 1, 1])
    for t in (1, (1,), torch.tensor(1), torch.tensor([1, 1, 1]), [torch.tensor(1)] * 3):
        torch.testing.assert_close(_explain(name, _mlp(), X, target=t), ref)


# ---------------------------------------------------------- perturbations_per_eval
@pytest.mark.parametrize(
    "name",
    [n for n in PERTURBATION if "perturbations_per_eval" in _params(getattr(xattr, n).attribute)],
)
def test_perturbations_per_eval_none_or_positive(name):
    ref = _explain(name, _mlp(), X, target=0)
    none = _explain(name, _mlp(), X, target=0, perturbations_per_eval=None)
    torch.testing.assert_close(none, ref)
    for bad, exc in ((0, ValueError), (-2, ValueError), (2.0, TypeError), (True, TypeError)):
        with pytest.raises(exc, match="perturbations_per_eval"):
            _explain(name, _mlp(), X, target=0, perturbations_per_eval=bad)


# ------------------------------------------------------------ non-finite input
@pytest.mark.parametrize("name", PERTURBATION + GRADIENT)
@pytest.mark.parametrize("value", [NAN, math.inf])
def test_non_finite_inputs_are_reported(name, value):
    x = X.clone()
    x[1, 2] = value
    with pytest.raises(ValueError, match=r"inputs\[0\]: contains non-finite"):
        _explain(name, _mlp(), x, target=0)


@pytest.mark.parametrize("name", [n for n in WITH_BASELINES if n != "Banzhaf"])
def test_non_finite_baselines_are_reported(name):
    b = torch.zeros(1, 4)
    b[0, 1] = NAN
    with pytest.raises(ValueError, match=r"baselines\[0\]: contains non-finite"):
        _explain(name, _mlp(), X, baselines=b, target=0)


# ------------------------------------------------------- messages that explain
def test_gradient_shap_names_n_samples():
    with pytest.raises(ValueError, match="n_samples"):
        xattr.GradientShap(_mlp()).attribute(X, torch.zeros(2, 4), target=0, n_samples=0)


def test_layer_methods_say_what_the_layer_gave():
    model = _Tokens().eval()
    lig = xattr.LayerIntegratedGradients(model, model.emb)
    with pytest.raises(TypeError, match=r"inputs of Embedding .*int64 \[2, 3\].*layer's output"):
        lig.attribute(IDS, target=0, attribute_to_layer_input=True)
    lig = xattr.LayerIntegratedGradients(model, model.lstm)
    with pytest.raises(TypeError, match=r"output of LSTM .*tuple\(float32.*nested tuples"):
        lig.attribute(IDS, target=0)


@pytest.mark.parametrize("name", ["KernelShap", "FeatureAblation", "Saliency", "Occlusion"])
def test_a_model_of_another_dtype_is_named(name):
    with pytest.raises(RuntimeError, match="inputs are torch.float32 but the model's parameters"):
        _explain(name, _mlp(torch.float64), X, target=0)


@pytest.mark.parametrize("name", ["FeatureAblation", "Saliency", "KernelShap"])
def test_one_dimensional_inputs_get_a_hint(name):
    with pytest.raises((RuntimeError, ValueError), match=r"1-D.*x\.unsqueeze\(0\)"):
        _explain(name, _mlp(), X[0], target=0)


def test_a_budget_too_small_for_useful_batches_warns():
    model = nn.Linear(14, 1).eval()
    with pytest.warns(UserWarning, match="memory_budget: it leaves 1 model row"):
        xattr.ExactShapley(model).attribute(torch.randn(1, 14), memory_budget=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xattr.ExactShapley(model).attribute(torch.randn(1, 14))
