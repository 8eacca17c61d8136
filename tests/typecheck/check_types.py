"""Static checks of the public API's types, run by pyright in `make lint` (pyproject's
``[tool.pyright] include``): the attributions follow the input's form (a tensor for a
tensor, a tuple for a tuple) and the flags that add a second result (
``return_convergence_delta``, ``return_std``) change the return type to a pair.

Nothing here runs: pytest's ``--doctest-modules`` only imports the module, and the
checks live in a function that is never called. ``assert_type`` fails the type check
(not a test) when the inferred type differs.
"""

from __future__ import annotations

import torch
from torch import Tensor
from typing_extensions import assert_type

from xattr import (
    Banzhaf,
    ExactShapley,
    FeatureAblation,
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    KernelShap,
    LayerIntegratedGradients,
    Lime,
    MeanWhenIncluded,
    NoiseTunnel,
    Occlusion,
    Saliency,
    ShapleyIntegratedGradients,
    ShapleyValues,
    ShapleyValueSampling,
)
from xattr.explainers.layer_integrated_gradients import LayerAttributions

Tensors = tuple[Tensor, ...]


def _checks(model: torch.nn.Linear, x: Tensor, y: Tensor, flag: bool) -> None:
    # the result follows the input
    assert_type(Saliency(model).attribute(x), Tensor)
    assert_type(Saliency(model).attribute((x, y)), Tensors)
    assert_type(InputXGradient(model).attribute(x, target=0), Tensor)
    assert_type(FeatureAblation(model).attribute((x, y)), Tensors)
    assert_type(Occlusion(model).attribute(x, (1,)), Tensor)
    assert_type(ShapleyValues(model).attribute(x), Tensor)
    assert_type(Lime(model).attribute((x, y)), Tensors)

    # return_convergence_delta=True: (attributions, delta)
    ig = IntegratedGradients(model)
    assert_type(ig.attribute(x), Tensor)
    assert_type(ig.attribute(x, return_convergence_delta=False), Tensor)
    assert_type(ig.attribute(x, return_convergence_delta=True), tuple[Tensor, Tensor])
    assert_type(ig.attribute((x, y), return_convergence_delta=True), tuple[Tensors, Tensor])
    # a flag known only at run time gives either form
    assert_type(ig.attribute(x, return_convergence_delta=flag), Tensor | tuple[Tensor, Tensor])
    gs = GradientShap(model)
    assert_type(gs.attribute(x, x), Tensor)
    assert_type(gs.attribute(x, lambda: x), Tensor)  # a baseline function
    assert_type(gs.attribute(x, x, return_convergence_delta=True), tuple[Tensor, Tensor])
    es = ExactShapley(model)
    assert_type(es.attribute(x, return_convergence_delta=True), tuple[Tensor, Tensor])
    sig = ShapleyIntegratedGradients(model)
    assert_type(sig.attribute((x, y), return_convergence_delta=True), tuple[Tensors, Tensor])

    # return_std=True: (attributions, std), both in the input's form
    assert_type(Banzhaf(model).attribute(x, return_std=True), tuple[Tensor, Tensor])
    assert_type(MeanWhenIncluded(model).attribute(x), Tensor)
    assert_type(MeanWhenIncluded(model).attribute((x, y), return_std=True), tuple[Tensors, Tensors])
    assert_type(KernelShap(model).attribute((x, y), return_std=True), tuple[Tensors, Tensors])
    assert_type(ShapleyValueSampling(model).attribute(x), Tensor)
    assert_type(ShapleyValueSampling(model).attribute(x, return_std=True), tuple[Tensor, Tensor])
    # per-feature values ([B, D]) do not follow the input
    assert_type(
        KernelShap(model).attribute((x, y), return_input_shape=False),
        Tensors | tuple[Tensors, Tensors] | Tensor | tuple[Tensor, Tensor],
    )
    assert_type(Lime(model).attribute((x, y), return_input_shape=False), Tensors | Tensor)

    # layer attributions follow the layer, not the input
    lig = LayerIntegratedGradients(model, model)
    assert_type(lig.attribute(x), LayerAttributions)
    assert_type(lig.attribute(x, return_convergence_delta=True), tuple[LayerAttributions, Tensor])

    # NoiseTunnel passes **kwargs on to any explainer: its result is not narrowed
    NoiseTunnel(Saliency(model)).attribute(x)
