"""GuidedBackprop and Deconvolution: Captum's results on networks of ReLU modules, the
same results when the ReLUs are functional or one module is used several times (where
Captum leaves the ordinary gradient), and the backward rules themselves."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xattr
from xattr import Deconvolution, GuidedBackprop

ca = pytest.importorskip("captum.attr")
D = torch.float64
METHODS = ["GuidedBackprop", "Deconvolution"]


def _x(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


def _captum(name, model, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(ca, name)(model).attribute(*args, **kw)


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            nn.Conv2d(2, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 2),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(32, 16),
            nn.ReLU(),
            nn.Linear(16, 3),
        )
        .to(D)
        .eval()
    )


class _Functional(nn.Module):
    """_cnn's layers with functional ReLUs and one ReLU module used twice."""

    def __init__(self, seq: nn.Module) -> None:
        super().__init__()
        self.seq = seq
        self.relu = nn.ReLU()

    def forward(self, x):
        s = self.seq
        h = s[2](F.relu(s[0](x)))
        h = self.relu(s[3](h)).flatten(1)
        return s[8](self.relu(s[6](h)).relu().relu())  # relu is idempotent forward


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("target", [0, [2, 1, 0, 1]])
def test_matches_captum_on_relu_modules(name, target):
    model = _cnn()
    x = _x(4, 2, 6, 6)
    ours = getattr(xattr, name)(model).attribute(x, target=target)
    theirs = _captum(name, model, x, target=target)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
    assert (ours != 0).float().mean() > 0.2  # not a vacuous comparison
    e, c = getattr(xattr, name)(model), getattr(ca, name)(model)
    assert e.multiplies_by_inputs == c.multiplies_by_inputs
    assert e.has_convergence_delta() == c.has_convergence_delta()


@pytest.mark.parametrize("name", METHODS)
def test_functional_and_reused_relus_where_captum_misses_them(name):
    model = _cnn()
    functional = _Functional(model).eval()
    x = _x(4, 2, 6, 6)
    with torch.no_grad():  # the same function
        torch.testing.assert_close(functional(x), model(x))
    ours = getattr(xattr, name)(functional).attribute(x, target=1)
    reference = _captum(name, model, x, target=1)  # Captum is right on distinct modules
    # Extra ReLUs after a ReLU change nothing for guided backprop (relu(relu(g)) * mask);
    # for deconvolution either (relu is idempotent on the gradient too).
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-14)
    theirs = _captum(name, functional, x, target=1)
    assert (theirs - reference).abs().max() > 1e-3


def test_the_rules():
    """One ReLU: guided = relu(g) * (x > 0), deconvolution = relu(g)."""
    w = torch.tensor([[1.0, -2.0, 3.0]], dtype=D)

    def f(x):
        return torch.relu(x) @ w.T

    x = torch.tensor([[0.5, 1.0, -1.0]], dtype=D)
    gb = GuidedBackprop(f).attribute(x, target=0)
    dc = Deconvolution(f).attribute(x, target=0)
    torch.testing.assert_close(gb, torch.tensor([[1.0, 0.0, 0.0]], dtype=D))
    torch.testing.assert_close(dc, torch.tensor([[1.0, 0.0, 3.0]], dtype=D))
    sal = xattr.Saliency(f).attribute(x, target=0, abs=False)
    torch.testing.assert_close(sal, torch.tensor([[1.0, -2.0, 0.0]], dtype=D))


def test_several_targets_tuple_inputs_and_errors():
    model = _cnn()
    x = _x(3, 2, 6, 6)
    every = GuidedBackprop(model).attribute(x, target="all")
    assert every.shape == (3, 3, 2, 6, 6)
    torch.testing.assert_close(every[:, 2], GuidedBackprop(model).attribute(x, target=2))

    def two(a, b):
        return model(a + b)

    a, b = GuidedBackprop(two).attribute((x, 0.5 * x), target=0)
    torch.testing.assert_close(a, b)
    with pytest.raises(TypeError, match="expected a floating tensor"):
        Deconvolution(model).attribute(torch.ones(2, 2, 6, 6, dtype=torch.long), target=0)


# ------------------------------------------------------------- models out of sight
def _relu_mlp():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()


@pytest.mark.parametrize("cls", ["GuidedBackprop", "Deconvolution", "DeepLift"])
def test_torchscript_models_are_refused_not_answered_with_gradients(cls):
    # a scripted model's ReLUs run in C++, where no rule can replace them: the answer
    # would silently be the plain gradient, so the explainers refuse it
    model = _relu_mlp()
    scripted = torch.jit.script(model)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    explainer = getattr(xattr, cls)
    for opaque in (scripted, lambda t: 2 * scripted(t)):
        with pytest.raises(ValueError, match="cannot see .*TorchScript"):
            explainer(opaque).attribute(x, target=0)
    explainer(model).attribute(x, target=0)  # the eager model is fine


def test_guided_backprop_on_an_exported_program_equals_the_eager_model():
    # torch.export graphs call aten.relu: intercepted like F.relu
    model = _relu_mlp()
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    program = torch.export.export(model, (x,)).module()
    for cls in (xattr.GuidedBackprop, xattr.Deconvolution):
        eager = cls(model).attribute(x, target=1)
        exported = cls(program).attribute(x, target=1)
        torch.testing.assert_close(exported, eager)
    plain = xattr.Saliency(model).attribute(x, target=1, abs=False)
    assert not torch.allclose(xattr.GuidedBackprop(program).attribute(x, target=1), plain)
