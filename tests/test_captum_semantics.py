"""Captum's semantics on the input side (issue 16): how batch sizes are read
(``perturbations_per_eval``, ``internal_batch_size``, ``memory_budget``), non-float
inputs, feature masks, empty batches and batch-size rules, Occlusion's argument forms,
half-precision inputs and Lime's interpretable models. Parity with Captum where the
method is deterministic."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from _helpers import gen
from torch import nn

import xattr
from xattr._core.batching import rows_per_batch

captum_attr = pytest.importorskip("captum.attr")


class _Counted(nn.Module):
    """A model that records the rows of every call (a cheap linear read-out)."""

    def __init__(self, d_in: int, d_out: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.lin = nn.Linear(d_in, d_out)
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        flat = torch.cat([x.flatten(1)] + [r.flatten(1) for r in rest], 1)
        return self.lin(flat)


# ------------------------------------------------------------------ 1. batching arguments
PHOTO = (3, 224, 224)  # 602 KB a row in float32: xattr's CPU choice is 3 rows a call
PATCHES = torch.arange(64).view(8, 8).repeat_interleave(28, 0).repeat_interleave(28, 1)


def _photo_case(name: str):
    """(explainer, attribute kwargs, model) for ``name`` on one 224 x 224 photo."""
    model = _Counted(3 * 224 * 224)
    kw: dict = {"target": 0}
    if name == "Occlusion":
        kw.update(sliding_window_shapes=(3, 56, 56), strides=(3, 56, 56))
    else:
        kw["feature_mask"] = PATCHES.expand(PHOTO)
    if name in ("KernelShap", "Lime"):
        kw.update(n_samples=40, seed=0)
    if name == "ShapleyValueSampling":
        kw.update(n_samples=1, seed=0)
    return getattr(xattr, name)(model), kw, model


CAPTUM_PERTURBATION = ["FeatureAblation", "Occlusion", "KernelShap", "Lime", "ShapleyValueSampling"]


def _captum_calls(name: str, x: torch.Tensor, kw: dict, **batching) -> list[int]:
    model = _Counted(3 * 224 * 224)
    kw = {k: v for k, v in kw.items() if k != "seed"}
    if "feature_mask" in kw:  # Captum (with perturbations_per_eval > 1) wants [1, *F]
        kw["feature_mask"] = kw["feature_mask"].unsqueeze(0).contiguous()
    torch.manual_seed(0)
    getattr(captum_attr, name)(model).attribute(x, **kw, **batching)
    return model.calls


@pytest.mark.parametrize("name", CAPTUM_PERTURBATION)
def test_perturbations_per_eval_never_makes_more_calls_than_captum(name):
    """Captum's perturbations_per_eval=p makes calls of p perturbations of the batch;
    with the same p xattr makes no more (and no smaller) model calls than Captum, whatever
    its own choice (3 rows a call here), and the result does not depend on p."""
    x = torch.randn(2, *PHOTO, generator=gen(1))
    explainer, kw, model = _photo_case(name)
    assert rows_per_batch((x,), None, None) == 3
    ref = explainer.attribute(x, **kw)
    model.calls.clear()
    out = explainer.attribute(x, perturbations_per_eval=8, **kw)
    theirs = _captum_calls(name, x, kw, perturbations_per_eval=8)
    assert len(model.calls) <= len(theirs), (model.calls, theirs)
    assert max(model.calls) >= max(theirs) >= 8
    torch.testing.assert_close(out, ref)  # the model's own rounding may differ by batch


@pytest.mark.parametrize("name", CAPTUM_PERTURBATION)
def test_a_given_memory_budget_sizes_the_calls(name):
    """memory_budget="8GB" holds 891 photo rows a call: no hidden 2 MB cap keeps the
    calls at 3 rows (KernelShap did before)."""
    x = torch.randn(1, *PHOTO, generator=gen(2))
    explainer, kw, model = _photo_case(name)
    cap = 8 * 2**30 // (16 * 3 * 224 * 224 * 4)
    assert rows_per_batch((x,), None, "8GB") == cap == 891
    explainer.attribute(x, memory_budget="8GB", **kw)
    assert max(model.calls) > 3, model.calls
    assert max(model.calls) <= cap


def test_a_global_budget_sizes_the_calls_and_none_restores_the_default():
    x = torch.zeros(1, *PHOTO)
    try:
        xattr.set_memory_budget("8GB")
        assert rows_per_batch((x,), None, None) == 891
    finally:
        xattr.set_memory_budget(None)
    assert xattr.get_memory_budget() == 2**30
    assert rows_per_batch((x,), None, None) == 3


def test_the_budget_caps_captums_number():
    x = torch.zeros(4, 100)  # 400 bytes a row: a budget of 64 KB holds 10 rows
    assert rows_per_batch((x,), 1000, 400 * 16 * 10) == 10
    assert rows_per_batch((x,), 2, 400 * 16 * 10, unit=4) == 10  # 8 rows asked, 10 allowed
    assert rows_per_batch((x,), 1, None, unit=4) == rows_per_batch((x,), None, None) == 327


def test_internal_batch_size_never_makes_more_calls_than_captum():
    """internal_batch_size=n: calls of at least n path rows where whole examples allow,
    never more forward + backward calls than Captum's with the same n; same attributions."""
    model = _Counted(3 * 224 * 224)
    x = torch.randn(3, *PHOTO, generator=gen(3))
    kw = {"target": 0, "n_steps": 8}
    e = xattr.IntegratedGradients(model)
    ref = e.attribute(x, **kw)
    for n in (1, 12, 30):
        model.calls.clear()
        out = e.attribute(x, internal_batch_size=n, **kw)
        theirs = _captum_calls("IntegratedGradients", x, kw, internal_batch_size=n)
        assert len(model.calls) <= len(theirs), (n, model.calls, theirs)
        torch.testing.assert_close(out, ref)


# ------------------------------------------------------------- 2. non-float inputs
class _BoolModel(nn.Module):
    """Captum's BasicModelBoolInput: it takes bool inputs only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype is torch.bool, "Input must be boolean"
        return self.lin(x.float() * 10.0)


def _dtype_model(dtype: torch.dtype):
    """A sum model that checks the dtype it is given (copies keep the inputs' dtype)."""

    def f(*xs: torch.Tensor) -> torch.Tensor:
        assert all(x.dtype == dtype for x in xs), [x.dtype for x in xs]
        return torch.stack([x.flatten(1).double().mul(i + 1).sum(1) for i, x in enumerate(xs)], 1)

    return f


BOOL_X = torch.tensor([[True, False, True], [False, True, True]])
DETERMINISTIC = ["FeatureAblation", "ShapleyValues", "Occlusion"]


def _both(name: str, model, x, **kw):
    extra = {"sliding_window_shapes": (1,)} if name == "Occlusion" else {}
    ours = getattr(xattr, name)(model).attribute(x, **kw, **extra)
    theirs = getattr(captum_attr, name)(model).attribute(x, **kw, **extra)
    return ours, theirs


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.parametrize("baselines", [None, True, False], ids=["default", "true", "false"])
@pytest.mark.parametrize("ppe", [1, 3])
def test_bool_inputs_are_perturbed_with_their_baselines(name, baselines, ppe):
    kw = {"target": 1, "baselines": baselines, "perturbations_per_eval": ppe}
    if name != "Occlusion":
        kw["feature_mask"] = torch.tensor([[0, 0, 1]])
    ours, theirs = _both(name, _BoolModel().eval(), BOOL_X, **kw)
    torch.testing.assert_close(ours, theirs.to(ours.dtype))


@pytest.mark.parametrize("name", ["KernelShap", "Lime", "ShapleyValueSampling"])
def test_bool_inputs_reach_the_model_as_bool_in_sampling_methods(name):
    kw = {"target": 1, "feature_mask": torch.tensor([[0, 0, 1]]), "seed": 0}
    kw["n_samples"] = 2 if name == "ShapleyValueSampling" else 20
    model = _BoolModel().eval()
    out = getattr(xattr, name)(model).attribute(BOOL_X, baselines=True, **kw)
    if name != "Lime":  # efficiency: the attributions add up to f(x) - f(baseline)
        fx = model(BOOL_X)[:, 1].double()
        fb = model(torch.ones_like(BOOL_X))[:, 1].double()
        per_feature = out.double()[:, [0, 2]]  # features 0 (two elements) and 1
        torch.testing.assert_close(per_feature.sum(1), fx - fb, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.int16, torch.float16])
def test_other_dtypes_keep_their_dtype_under_their_baselines(name, dtype):
    x = torch.tensor([[3, 1, 2], [0, 5, 7]]).to(dtype)
    kw = {"target": 1, "baselines": (1, 2), "perturbations_per_eval": 2}
    if name == "Occlusion":
        kw["sliding_window_shapes"] = ((1,), (2,))
    model, xs = _dtype_model(dtype), (x, x + 1)
    ours = getattr(xattr, name)(model).attribute(xs, **kw)
    theirs = getattr(captum_attr, name)(model).attribute(xs, **kw)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.double(), b.double())


@pytest.mark.parametrize("name", ["FeatureAblation", "Occlusion"])
def test_integer_inputs_with_fractional_baselines_are_promoted_as_in_captum(name):
    """x (1 - m) + b m with int64 x and b = 0.2 is float32: the model sees float copies
    (Captum's test_multi_input_ablation_with_int_input_tensor_and_float_baseline).
    Captum's ShapleyValues instead truncates the baseline to the input's dtype (0.2 ->
    0) without a word; xattr's Shapley methods promote as every other method does."""

    def sum_forward(*inps: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.flatten(t, start_dim=1) for t in inps], dim=1).sum(1)

    inp1 = torch.tensor([[0, 1], [3, 4]])
    inp2 = torch.tensor([[[0.1, 0.2], [0.3, 0.2]], [[0.4, 0.5], [0.3, 0.2]]])
    inp3 = torch.tensor([[0], [1]])
    kw = {"baselines": (0.2, 3.1, 0.4)}
    if name == "Occlusion":
        kw["sliding_window_shapes"] = ((1,), (1, 1), (1,))
    ours = getattr(xattr, name)(sum_forward).attribute((inp1, inp2, inp3), **kw)
    theirs = getattr(captum_attr, name)(sum_forward).attribute((inp1, inp2, inp3), **kw)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b.to(a.dtype))
    assert ours[0].dtype == torch.float32


# -------------------------------------- 3. float masks, empty batches and empty inputs
@pytest.mark.parametrize("name", ["FeatureAblation", "ShapleyValues"])
def test_float_feature_masks_with_integral_ids_are_ids(name):
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh()).eval()
    x = torch.randn(3, 4, generator=gen(4))
    mask = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
    ours = getattr(xattr, name)(model).attribute(x, target=1, feature_mask=mask)
    ref = getattr(xattr, name)(model).attribute(x, target=1, feature_mask=mask.long())
    theirs = getattr(captum_attr, name)(model).attribute(x, target=1, feature_mask=mask)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    torch.testing.assert_close(ours, theirs)


def test_float_feature_masks_with_fractions_are_refused():
    x = torch.randn(3, 4, generator=gen(4))
    with pytest.raises(ValueError, match=r"feature_mask\[0\]: .*integral"):
        xattr.FeatureAblation(lambda t: t.sum(1)).attribute(
            x, feature_mask=torch.tensor([[0.0, 0.5, 1.0, 1.0]])
        )


class _FirstInputOnly(nn.Module):
    """Captum's test of an empty second input: the model reads the first only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(7, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.lin(a)


EMPTY_CASES = ["FeatureAblation", "ShapleyValues", "Occlusion", "KernelShap", "Lime"]


@pytest.mark.parametrize("name", EMPTY_CASES)
@pytest.mark.parametrize("masked", [False, True])
def test_an_input_with_no_elements_gets_empty_attributions(name, masked):
    """Captum's test_multi_input_*_with_empty_input: inputs (x [1, 7], [1, 0])."""
    inp1 = torch.tensor([[23.0, 0.0, 0.0, 23.0, 0.0, 0.0, 23.0]])
    inp2 = torch.tensor([[]])
    kw: dict = {}
    if name == "Occlusion":
        kw["sliding_window_shapes"] = ((1,), (0,))
    elif masked:
        kw["feature_mask"] = (torch.arange(7)[None], torch.tensor([[]], dtype=torch.long))
    if name in ("KernelShap", "Lime"):
        kw.update(n_samples=200, seed=0)
    ours = getattr(xattr, name)(_FirstInputOnly().eval()).attribute((inp1, inp2), **kw)
    assert ours[1].shape == (1, 0)
    captum_runs = not (masked and name == "ShapleyValues")  # Captum: max() of no ids
    if name in ("FeatureAblation", "ShapleyValues", "Occlusion", "KernelShap") and captum_runs:
        kw.pop("seed", None)
        theirs = getattr(captum_attr, name)(_FirstInputOnly().eval()).attribute((inp1, inp2), **kw)
        torch.testing.assert_close(ours[0], theirs[0].reshape(ours[0].shape), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "name",
    [
        "FeatureAblation",
        "ShapleyValues",
        "ShapleyValueSampling",
        "KernelShap",
        "Lime",
        "Occlusion",
        "IntegratedGradients",
        "Saliency",
        "InputXGradient",
    ],
)
def test_an_empty_batch_gives_empty_attributions(name):
    """Where Captum raises IndexError on a batch of 0 (all but FeatureAblation and
    Occlusion), xattr returns attributions of the batch's shape."""
    kw = {"sliding_window_shapes": (1,)} if name == "Occlusion" else {}
    out = getattr(xattr, name)(nn.Linear(3, 2)).attribute(torch.zeros(0, 3), target=0, **kw)
    assert out.shape == (0, 3)


# ----------------------------------------------------------- 4. Occlusion's arguments
def _conv() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(18, 3)).eval()


IMG = torch.arange(32, dtype=torch.float32).view(2, 1, 4, 4) / 10


@pytest.mark.parametrize(
    "window, strides",
    [
        ((1, 2, 2), (2,)),  # one stride for every dimension, as a 1-tuple (Captum's reading)
        ((1, 2, 2), 2),
        ((1, 4, 2), (5, 7, 2)),  # strides beyond the window where it spans the dimension
        ((1, 4, 4), (3, 9, 9)),
        ((1, 3, 2), (1, 2, 1)),  # a last window cut off at the edge
    ],
)
def test_occlusion_argument_forms_read_as_captum(window, strides):
    kw = {"sliding_window_shapes": window, "strides": strides, "target": 1}
    ours = xattr.Occlusion(_conv()).attribute(IMG, **kw)
    theirs = captum_attr.Occlusion(_conv()).attribute(IMG, **kw)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize(
    "inputs, window, strides",
    [
        (IMG, ((1, 2),), None),  # too few window dimensions
        ((IMG, IMG), ((1, 1, 2), (1, 1, 1, 2)), None),  # too many
        ((IMG, IMG), ((1, 1, 2),) * 3, None),  # too many windows
        (IMG, (1, 2, 2), (1, 2)),  # too few stride dimensions
        (IMG, ((1, 1, 2),), 2),  # a stride beyond a window shorter than its dimension
        ((IMG, IMG), ((1, 1, 2), (1, 4, 2)), (2, (1, 2, 3))),
    ],
)
def test_occlusion_bad_arguments_raise_what_captum_and_xattr_users_catch(inputs, window, strides):
    """Captum asserts; xattr raises a ValueError that is an AssertionError too."""
    for lib in (xattr, captum_attr):
        with pytest.raises(AssertionError):
            lib.Occlusion(_conv()).attribute(
                inputs, sliding_window_shapes=window, strides=strides, target=0
            )
    with pytest.raises(ValueError, match="sliding_window_shapes|strides"):
        xattr.Occlusion(_conv()).attribute(
            inputs, sliding_window_shapes=window, strides=strides, target=0
        )


# --------------------------------------------- 5. half precision and integer inputs
def _half_model(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(dtype).eval()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["IntegratedGradients", "Saliency", "InputXGradient"])
def test_half_inputs_run_the_model_in_half_and_sum_in_float32(name, dtype):
    """The model sees its own dtype; gradients are summed in float32 (Captum's IG returns
    float32 for half inputs); the values are Captum's to half precision, and xattr's
    float32 sums are the float64 reference's to float32 rounding of the model."""
    model = _half_model(dtype)
    seen: list[torch.dtype] = []
    model.register_forward_pre_hook(lambda m, a: seen.append(a[0].dtype))
    x = torch.randn(4, 3, generator=gen(5)).to(dtype)
    ours = getattr(xattr, name)(model).attribute(x, target=0)
    assert set(seen) == {dtype} and ours.dtype == torch.float32
    theirs = getattr(captum_attr, name)(model).attribute(x, target=0)
    tol = 2e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(ours, theirs.float(), rtol=tol, atol=tol)


def test_half_inputs_in_gradient_shap_and_noise_tunnel():
    model = _half_model(torch.float16)
    x = torch.randn(4, 3, generator=gen(6)).half()
    gs = xattr.GradientShap(model).attribute(x, baselines=torch.zeros(5, 3).half(), target=0)
    nt = xattr.NoiseTunnel(xattr.Saliency(model)).attribute(x, target=0, nt_samples=3, seed=0)
    assert gs.shape == nt.shape == (4, 3) and gs.isfinite().all() and nt.isfinite().all()


def test_integer_inputs_to_integrated_gradients_as_captum():
    """Captum's path points b + alpha (x - b) of int64 x are float32: the model gets
    those, and the attributions are float32 (Saliency and InputXGradient refuse ints in
    both libraries: a gradient with respect to an integer tensor does not exist)."""
    torch.manual_seed(0)
    lin = nn.Linear(3, 2)

    def model(t: torch.Tensor) -> torch.Tensor:
        return lin(t if t.is_floating_point() else t.float())

    x = torch.tensor([[1, 2, 3], [4, 5, 6]])
    ours, delta = xattr.IntegratedGradients(model).attribute(
        x, target=0, return_convergence_delta=True
    )
    theirs = captum_attr.IntegratedGradients(model).attribute(x, target=0)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs)
    assert delta.abs().max() < 1e-4
    with pytest.raises(TypeError, match="inputs: expected a floating tensor"):
        xattr.Saliency(model).attribute(x, target=0)


# ------------------------------------------------ 6. Lime with Captum's Model interface
class _WeightedLeastSquares:
    """A deterministic model with Captum's Model interface (fit(DataLoader),
    representation(), bias()), not derived from Captum's class: weighted least squares
    with an intercept, in float64."""

    def fit(self, train_data, **kwargs):
        x, y, w = next(iter(train_data))
        a = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], 1)
        sw = w.double().sqrt()[:, None]
        sol = torch.linalg.lstsq(a * sw, y.double()[:, None] * sw).solution[:, 0]
        self.coef, self.intercept = sol[:-1], sol[-1]
        return {}

    def representation(self):
        return self.coef[None]

    def bias(self):
        return self.intercept


def _fixed_samples(d: int, n: int):
    rows = torch.rand(n, d, generator=gen(7)) < 0.5

    def perturb(original_inp, **kwargs):
        yield from (r[None].long() for r in rows)

    return perturb


def test_lime_fits_any_model_with_captums_interface():
    """Same samples, same model interface: xattr's Lime is Captum's."""
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).eval()
    x = torch.randn(2, 5, generator=gen(8))
    kw = {"target": 1, "n_samples": 30}
    perturb = _fixed_samples(5, 30)
    ours = xattr.Lime(model, _WeightedLeastSquares(), perturb_func=perturb).attribute(x, **kw)
    theirs = captum_attr.Lime(model, _WeightedLeastSquares(), perturb_func=perturb).attribute(
        x, **kw
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_lime_with_captums_sgd_lasso():
    """Captum's SGD-trained lasso (trained by Captum's own code) on Captum's own case
    (test_simple_lime_sgd_model: coefficients [73.37, 193.33, 113.33] within 1.0)."""
    from captum._utils.models.linear_model import SGDLasso
    from captum.testing.helpers.basic_models import BasicModel_MultiLayer

    torch.manual_seed(0)
    sgd = SGDLasso()
    sgd.fit = partial(sgd.fit, initial_lr=0.1, max_epoch=500)  # as Captum's test
    x = torch.tensor([[20.0, 50.0, 30.0]])
    out = xattr.Lime(BasicModel_MultiLayer(), sgd).attribute(x, target=0, n_samples=1000, seed=0)
    torch.testing.assert_close(out, torch.tensor([[73.3716, 193.3349, 113.3349]]), rtol=0, atol=1.0)
