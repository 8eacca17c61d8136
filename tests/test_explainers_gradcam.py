"""LayerGradCam and LayerAttribution.interpolate: Captum's semantics (parity with Captum
0.9 in float64), xattr's additions (several targets, batching under the memory budget)
and clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import xattr
from xattr import LayerAttribution, LayerGradCam
from xattr._core.attribution import GradientAttribution

ca = pytest.importorskip("captum.attr")
F64 = torch.float64
EXACT = dict(rtol=0, atol=1e-12)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class CNN(nn.Module):
    """Two convolutions with in-place ReLUs (as torchvision's models), a linear head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1)
        self.relu2 = nn.ReLU(inplace=True)
        self.fc = nn.Linear(5 * 36, 3)

    def forward(self, x: Tensor, scale: Tensor | None = None) -> Tensor:
        h = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        out = self.fc(h.flatten(1))
        return out if scale is None else out * scale[:, None]


def _cnn() -> CNN:
    return CNN().to(F64).eval()


X = torch.randn(4, 2, 6, 6, generator=_gen(1), dtype=F64)


def _both(model, layer, x, **kw):
    ours = LayerGradCam(model, layer).attribute(x, **kw)
    theirs = ca.LayerGradCam(model, layer).attribute(x, **kw)
    return ours, theirs


def _close(ours, theirs) -> None:
    assert type(ours) is type(theirs)
    a = ours if isinstance(ours, tuple) else (ours,)
    b = theirs if isinstance(theirs, tuple) else (theirs,)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape and u.dtype == v.dtype
        torch.testing.assert_close(u, v.detach(), **EXACT)


@pytest.mark.parametrize("layer", ["conv1", "relu1", "conv2", "fc"])
@pytest.mark.parametrize(
    "kw",
    [
        {"target": 1},
        {"target": [0, 2, 1, 1], "relu_attributions": True},
        {"target": torch.tensor(2), "attr_dim_summation": False},
        {"target": 0, "attribute_to_layer_input": True},
        {"target": 2, "attribute_to_layer_input": True, "attr_dim_summation": False},
    ],
    ids=["int", "list-relu", "no-summation", "layer-input", "layer-input-no-summation"],
)
def test_matches_captum(layer, kw):
    model = _cnn()
    _close(*_both(model, getattr(model, layer), X, **kw))


def test_shapes_follow_the_layer():
    model = _cnn()
    cam = LayerGradCam(model, model.conv2).attribute(X, target=1)
    assert cam.shape == (4, 1, 6, 6)  # channels summed
    assert LayerGradCam(model, model.fc).attribute(X, target=1).shape == (4, 1)  # [B, C]
    per_channel = LayerGradCam(model, model.conv2).attribute(X, 1, attr_dim_summation=False)
    assert per_channel.shape == (4, 5, 6, 6)
    torch.testing.assert_close(per_channel.sum(1, keepdim=True), cam, **EXACT)


def test_relu_is_the_positive_part():
    model = _cnn()
    gc = LayerGradCam(model, model.conv1)
    signed = gc.attribute(X, target=2)
    assert (signed < 0).any()
    assert torch.equal(gc.attribute(X, target=2, relu_attributions=True), signed.clamp(min=0))


def test_gradcam_of_a_linear_model_is_its_closed_form():
    """f = w . act (act = the layer's [B, C, S] output): the mean gradient per channel is
    mean_s w[c, s], so the map is sum_c mean_s(w[c]) * act[c, s]."""
    lin = nn.Identity()
    w = torch.randn(3, 5, generator=_gen(2), dtype=F64)

    def f(x: Tensor) -> Tensor:
        return (lin(x) * w).sum((1, 2))[:, None]

    x = torch.randn(2, 3, 5, generator=_gen(3), dtype=F64)
    cam = LayerGradCam(f, lin).attribute(x, target=0)
    expected = (w.mean(1)[None, :, None] * x).sum(1, keepdim=True)
    torch.testing.assert_close(cam, expected, **EXACT)


class TwoOut(nn.Module):
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.tanh(x), x * 2


class TupleModel(nn.Module):
    """A layer with a tuple output and a layer with two positional inputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.split = TwoOut()
        self.bil = nn.Bilinear(4, 4, 3)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.split(x)
        return self.bil(a, b)


def test_tuple_activations_match_captum():
    model = TupleModel().to(F64).eval()
    x = torch.randn(3, 4, generator=_gen(4), dtype=F64)
    ours, theirs = _both(model, model.split, x, target=1)
    assert isinstance(ours, tuple) and len(ours) == 2 and ours[0].shape == (3, 1)
    _close(ours, theirs)
    _close(*_both(model, model.bil, x, target=2, attribute_to_layer_input=True))


def test_tuple_inputs_and_additional_forward_args_match_captum():
    model = _cnn()
    scale = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)

    def two(x: Tensor, y: Tensor, s: Tensor) -> Tensor:
        return model(x + y, s)

    y = torch.randn(4, 2, 6, 6, generator=_gen(5), dtype=F64)
    kw = dict(target=[1, 0, 2, 2], additional_forward_args=(scale,))
    _close(*_both(two, model.conv2, (X, y), **kw))


def test_token_ids_into_an_embedding_match_captum():
    torch.manual_seed(2)
    emb = nn.Embedding(20, 6)
    model = nn.Sequential(emb, nn.Flatten(), nn.Linear(6 * 5, 2)).to(F64).eval()
    ids = torch.randint(0, 20, (3, 5), generator=_gen(6))
    ours, theirs = _both(model, emb, ids, target=1)
    assert ours.shape == (3, 1, 6)  # [B, T, E]: dimension 1 is the token position
    _close(ours, theirs)


def test_a_layer_called_twice_attributes_its_last_call_as_captum():
    torch.manual_seed(3)
    shared = nn.Linear(4, 4)

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared, self.head = shared, nn.Linear(4, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.head(torch.tanh(self.shared(torch.tanh(self.shared(x)))))

    model = Twice().to(F64).eval()
    x = torch.randn(3, 4, generator=_gen(7), dtype=F64)
    _close(*_both(model, model.shared, x, target=0))


def test_several_targets_are_the_single_target_maps():
    model = _cnn()
    gc = LayerGradCam(model, model.conv2)
    every = gc.attribute(X, target="all", relu_attributions=True)
    assert every.shape == (4, 3, 1, 6, 6)
    for t in range(3):
        single = gc.attribute(X, target=t, relu_attributions=True)
        torch.testing.assert_close(every[:, t], single, **EXACT)


def test_batches_do_not_change_the_result():
    model = _cnn()
    gc = LayerGradCam(model, model.conv1)
    whole = gc.attribute(X, target=[0, 1, 2, 0], memory_budget="1GB")
    assert torch.equal(gc.attribute(X, target=[0, 1, 2, 0], memory_budget=1), whole)


def test_empty_batch_gives_empty_maps():
    model = _cnn()
    cam = LayerGradCam(model, model.conv2).attribute(X[:0], target=0)
    assert cam.shape == (0, 1, 6, 6)


def test_grad_kwargs_reach_autograd():
    model = _cnn()
    gc = LayerGradCam(model, model.conv2)
    ref = gc.attribute(X, target=1)
    assert torch.equal(gc.attribute(X, target=1, grad_kwargs={"retain_graph": True}), ref)
    with pytest.raises(TypeError, match="bogus"):
        gc.attribute(X, target=1, grad_kwargs={"bogus": 1})


def test_flags_and_classes_match_captum():
    model = _cnn()
    ours, theirs = LayerGradCam(model, model.conv2), ca.LayerGradCam(model, model.conv2)
    assert ours.multiplies_by_inputs == theirs.multiplies_by_inputs is False
    assert ours.has_convergence_delta() == theirs.has_convergence_delta() is False
    assert isinstance(ours, LayerAttribution) and isinstance(ours, GradientAttribution)
    assert ours.layer is model.conv2 and ours.device_ids is None
    lig = xattr.LayerIntegratedGradients(model, model.conv2)
    assert isinstance(lig, LayerAttribution)
    info = xattr.EXPLAINERS["LayerGradCam"]
    assert info.kind == "gradient" and info.captum and not info.standalone


# ----------------------------------------------------------------- interpolate
@pytest.mark.parametrize(
    "shape, dims, mode",
    [
        ((2, 1, 3), (7,), "linear"),
        ((2, 1, 3), 5, "nearest"),
        ((2, 1, 3, 4), (6, 8), "nearest"),
        ((2, 3, 3, 4), (7, 5), "bilinear"),
        ((2, 1, 3, 4), (9, 9), "bicubic"),
        ((2, 1, 4, 4), (2, 2), "area"),
        ((1, 2, 2, 3, 2), (4, 6, 4), "trilinear"),
        ((1, 2, 2, 3, 2), 3, "nearest-exact"),
    ],
)
def test_interpolate_matches_captum(shape, dims, mode):
    a = torch.randn(*shape, generator=_gen(8), dtype=F64)
    ours = LayerAttribution.interpolate(a, dims, mode)
    theirs = ca.LayerAttribution.interpolate(a, dims, mode)
    torch.testing.assert_close(ours, theirs, **EXACT)


def test_interpolate_to_the_input_size_for_guided_gradcam():
    """GuidedGradCam's use: a GradCAM map upsampled to the input's spatial size."""
    x = torch.randn(2, 2, 6, 6, generator=_gen(9), dtype=F64)
    torch.manual_seed(4)
    pool = nn.Sequential(nn.Conv2d(2, 3, 2, stride=2), nn.Flatten(), nn.Linear(27, 2))
    pool = pool.to(F64).eval()
    cam = LayerGradCam(pool, pool[0]).attribute(x, target=0, relu_attributions=True)
    assert cam.shape == (2, 1, 3, 3)
    up = LayerAttribution.interpolate(cam, tuple(x.shape[2:]))
    assert up.shape == (2, 1, 6, 6)
    assert torch.equal(up[:, :, ::2, ::2], cam)  # nearest: each cell covers 2 x 2 pixels


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (("not a tensor", (2, 2)), TypeError, "layer_attribution: expected a float tensor"),
        ((torch.ones(2, 1, 2, 2, dtype=torch.long), (4, 4)), TypeError, "int64"),
        ((torch.ones(2, 4), (4,)), ValueError, r"layer_attribution: .*\[2, 4\]"),
        ((torch.ones(2, 1, 2, 2), (4,)), ValueError, "interpolate_dims: expected .* 2 positive"),
        ((torch.ones(2, 1, 2, 2), (4, 0)), ValueError, "interpolate_dims"),
        ((torch.ones(2, 1, 2, 2), 2.5), ValueError, "interpolate_dims"),
        ((torch.ones(2, 1, 2, 2), (4, 4), "cubic"), ValueError, "interpolate_mode: expected"),
        ((torch.ones(2, 1, 2, 2), (4, 4), "trilinear"), ValueError, "'trilinear' resamples 5-D"),
        ((torch.ones(2, 1, 2), (4,), "bilinear"), ValueError, "interpolate_mode"),
    ],
)
def test_interpolate_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        LayerAttribution.interpolate(*args)


# ----------------------------------------------------------------- errors
def test_errors_name_the_argument():
    model = _cnn()
    with pytest.raises(TypeError, match="layer: expected a torch.nn.Module"):
        LayerGradCam(model, "conv2")
    with pytest.raises(TypeError, match="layer: expected a torch.nn.Module"):
        LayerGradCam(model, [model.conv1, model.conv2])
    with pytest.raises(TypeError, match="forward_func"):
        LayerGradCam("model", model.conv2)
    gc = LayerGradCam(model, model.conv2)
    for name in ("attribute_to_layer_input", "relu_attributions", "attr_dim_summation"):
        with pytest.raises(TypeError, match=f"{name}: expected a bool"):
            gc.attribute(X, target=0, **{name: 1})
    with pytest.raises(TypeError, match="grad_kwargs: expected a dict"):
        gc.attribute(X, target=0, grad_kwargs=[("retain_graph", True)])
    with pytest.raises(ValueError, match="target"):
        gc.attribute(X, target=7)
    unused = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="layer: the layer Linear was not called"):
        LayerGradCam(model, unused).attribute(X, target=0)


def test_integer_layer_inputs_and_1d_layers_are_explained():
    emb = nn.Embedding(10, 3)
    model = nn.Sequential(emb, nn.Flatten(), nn.Linear(6, 2)).eval()
    ids = torch.tensor([[1, 2], [3, 4]])
    with pytest.raises(TypeError, match=r"LayerGradCam needs the inputs of Embedding .*int64"):
        LayerGradCam(model, emb).attribute(ids, target=0, attribute_to_layer_input=True)
    squeeze = nn.Flatten(0)  # [B, 1] -> [B]: a layer without a channel dimension

    def f(x: Tensor) -> Tensor:
        return squeeze(x.sum(1, keepdim=True))[:, None] * 2

    x = torch.randn(3, 4, generator=_gen(10))
    with pytest.raises(ValueError, match=r"sums over the layer's dimension 1 .*\[3\]"):
        LayerGradCam(f, squeeze).attribute(x, target=0)
    flat = LayerGradCam(f, squeeze).attribute(x, target=0, attr_dim_summation=False)
    torch.testing.assert_close(flat, 2 * x.sum(1))  # gradient 2 times the activation
