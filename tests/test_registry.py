"""The explainer registry (xattr.EXPLAINERS) is the package's one list of explainers,
and a removal is anything that implements the Removal protocol the game calls."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import xattr
from tests._helpers import randn
from xattr._core.attribution import Attribution
from xattr._core.removal import Removal


def test_every_exported_explainer_is_registered_and_every_registered_one_exported():
    exported = {
        name
        for name in xattr.explainers.__all__
        if inspect.isclass(getattr(xattr.explainers, name))
        and (issubclass(getattr(xattr.explainers, name), Attribution) or name == "NoiseTunnel")
    }
    assert exported == set(xattr.EXPLAINERS)
    for name, info in xattr.EXPLAINERS.items():
        assert info.name == name and getattr(xattr, name) is info.cls
        assert name in xattr.__all__ and name in xattr.explainers.__all__


def test_registry_kinds_and_construction():
    model = nn.Linear(3, 2)
    for name, info in xattr.EXPLAINERS.items():
        if info.standalone:
            assert info.cls(model).forward_func is model, name
    assert xattr.explainer_names(standalone=False) == [
        "GuidedGradCam",
        "LayerGradCam",
        "LayerIntegratedGradients",
        "NoiseTunnel",
    ]
    assert xattr.EXPLAINERS["NoiseTunnel"].kind == "wrapper"
    with pytest.raises(ValueError, match="kind"):
        xattr.explainer_names("other")


class TwoRows:
    """A removal written outside xattr: the features off S take each of two fixed
    rows, and v(S) averages them (the marginal game over those rows)."""

    reads_masks = False

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows

    def prepare(self, inputs, baselines):
        return (self.rows.to(inputs[0].dtype),)

    def copies(self, replacements):
        return replacements[0].shape[0]

    def evaluate(self, forward_func, points, masks, extra, rows):
        return forward_func(*points, *extra)


@pytest.mark.parametrize("name", ["ExactShapley", "FeatureAblation", "KernelShap", "Occlusion"])
def test_a_removal_is_any_object_with_the_protocol(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double().eval()
    x, rows = randn(3, 4, seed=1), randn(2, 4, seed=2)
    custom = TwoRows(rows)
    assert isinstance(custom, Removal)
    kw = {"sliding_window_shapes": (1,)} if name == "Occlusion" else {}
    if name == "KernelShap":
        kw.update(n_samples=12, seed=3)
    explainer = getattr(xattr, name)(model)
    ours = explainer.attribute(x, target=1, removal=custom, **kw)
    ref = explainer.attribute(x, target=1, removal=xattr.MarginalRemoval(rows), **kw)
    assert torch.equal(ours, ref)


def test_an_object_without_the_protocol_is_refused():
    model = nn.Linear(4, 2)
    with pytest.raises(TypeError, match="removal: expected BaselineRemoval"):
        xattr.ExactShapley(model).attribute(torch.ones(1, 4), target=0, removal="marginal")
