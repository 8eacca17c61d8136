"""GuidedGradCam: Captum's parity on CNNs (float64, tight), the composition of
GuidedBackprop and LayerGradCam it is defined as, several targets, tuple inputs, an
input the map cannot be upsampled to (empty tensor + warning, as Captum) and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests._helpers import gen
from xattr import GuidedBackprop, GuidedGradCam, LayerAttribution, LayerGradCam

captum_attr = pytest.importorskip("captum.attr")


def cnn(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        conv2,
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 5 * 5, 3),
    )
    return model.double().eval(), conv2


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("to_input", [False, True])
def test_parity_with_captum(mode, to_input):
    model, layer = cnn()
    x = torch.randn(4, 2, 10, 10, generator=gen(0), dtype=torch.float64)
    target = torch.tensor([0, 2, 1, 2])
    ours = GuidedGradCam(model, layer).attribute(
        x, target, interpolate_mode=mode, attribute_to_layer_input=to_input
    )
    theirs = captum_attr.GuidedGradCam(model, layer).attribute(
        x, target, interpolate_mode=mode, attribute_to_layer_input=to_input
    )
    assert ours.abs().sum() > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_is_guided_backprop_times_the_upsampled_relu_cam():
    model, layer = cnn(1)
    x = torch.randn(3, 2, 10, 10, generator=gen(1), dtype=torch.float64)
    cam = LayerGradCam(model, layer).attribute(x, 1, relu_attributions=True)
    want = GuidedBackprop(model).attribute(x, 1) * LayerAttribution.interpolate(cam, (10, 10))
    torch.testing.assert_close(GuidedGradCam(model, layer).attribute(x, 1), want, rtol=0, atol=0)


def test_several_targets_and_tuple_inputs():
    model, layer = cnn(2)
    x = torch.randn(3, 2, 10, 10, generator=gen(2), dtype=torch.float64)
    gg = GuidedGradCam(model, layer)
    every = gg.attribute(x, "all")
    assert every.shape == (3, 3, 2, 10, 10)
    for t in range(3):
        torch.testing.assert_close(every[:, t], gg.attribute(x, t), rtol=1e-12, atol=1e-14)

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, a, b):
            return self.model(a + b.mean(1, keepdim=True))

    two = Two().eval()
    b = torch.randn(3, 1, 10, 10, generator=gen(3), dtype=torch.float64)
    ours = GuidedGradCam(two, layer).attribute((x, b), 0)
    theirs = captum_attr.GuidedGradCam(two, layer).attribute((x, b), 0)
    assert isinstance(ours, tuple) and len(ours) == 2
    for o, t in zip(ours, theirs):
        torch.testing.assert_close(o, t, rtol=1e-10, atol=1e-12)


def test_an_input_the_map_does_not_fit_gets_an_empty_tensor():
    model, layer = cnn(3)

    class WithVector(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, img, v):
            return self.model(img) + v.sum(1, keepdim=True)

    m = WithVector().eval()
    x = torch.randn(2, 2, 10, 10, generator=gen(4), dtype=torch.float64)
    v = torch.randn(2, 5, generator=gen(5), dtype=torch.float64)
    with pytest.warns(UserWarning, match="could not upsample"):
        a, e = GuidedGradCam(m, layer).attribute((x, v), 0)
    assert a.shape == x.shape and e.numel() == 0


def test_errors():
    model, layer = cnn()
    x = torch.randn(2, 2, 10, 10, generator=gen(0), dtype=torch.float64)
    with pytest.warns(UserWarning, match="could not upsample"):  # Captum's answer too
        (a,) = GuidedGradCam(model, layer).attribute((x,), 0, interpolate_mode="cubic")
    assert a.numel() == 0
    with pytest.raises(TypeError, match="layer"):
        GuidedGradCam(model, "conv")
    with pytest.raises(TypeError, match="attribute_to_layer_input"):
        GuidedGradCam(model, layer).attribute(x, 0, attribute_to_layer_input=1)
