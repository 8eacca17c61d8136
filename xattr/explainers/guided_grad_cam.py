"""Guided GradCAM (Selvaraju et al., 2017; Captum's GuidedGradCam): guided
backpropagation at the inputs times the layer's GradCAM map (with a ReLU), upsampled
to each input's spatial size."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn

from xattr._core.attribution import GradientAttribution, LayerAttribution
from xattr._core.inputs import TensorOrTupleGeneric, format_inputs, format_output
from xattr._core.progress import warn_level, with_row_progress
from xattr._core.targets import Targets, TargetType
from xattr._core.validation import flag
from xattr.explainers.guided_backprop import GuidedBackprop
from xattr.explainers.layer_grad_cam import LayerGradCam
from xattr.explainers.registry import register


@register(captum=True)
class GuidedGradCam(GradientAttribution):
    """Guided GradCAM: ``GuidedBackprop`` attributions times ``LayerGradCam``'s map of
    ``layer`` (``relu_attributions=True``), the map upsampled by
    :meth:`LayerAttribution.interpolate` to each input's dimensions after the first two
    ([B, C, *S] inputs -> ``*S``). As Captum, a layer with several activation tensors is
    refused, and an input the map cannot be upsampled to (other spatial rank, or an
    unknown ``interpolate_mode``) gets an empty tensor and a warning.

    Cost: the two explainers' costs, one forward + backward pass each per batch.

    Args:
        model: the model (``nn.Module``).
        layer: the layer whose GradCAM map is used, usually the last convolution.
        device_ids: accepted for Captum compatibility.

    ``multiplies_by_inputs`` False, ``has_convergence_delta()`` False, as Captum's.

    Example:
        >>> import torch
        >>> conv = torch.nn.Conv2d(1, 4, 3, stride=2, padding=1)
        >>> model = torch.nn.Sequential(
        ...     conv, torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 16, 3)
        ... ).eval()
        >>> GuidedGradCam(model, conv).attribute(torch.randn(2, 1, 8, 8), target=1).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self, model: Callable[..., Any], layer: nn.Module, device_ids: list[int] | None = None
    ) -> None:
        super().__init__(model)
        self.grad_cam = LayerGradCam(model, layer, device_ids)
        self.guided_backprop = GuidedBackprop(model)

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        interpolate_mode: str = "nearest",
        attribute_to_layer_input: bool = False,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> TensorOrTupleGeneric:
        """Guided GradCAM attributions.

        Args:
            inputs: [B, C, *S] float tensor or a tuple of them.
            target: Captum's forms, or a list of B lists of T indices / "all".
            additional_forward_args: extra arguments for the model.
            interpolate_mode: ``torch.nn.functional.interpolate``'s mode for upsampling
                the map (default "nearest"); one it does not have gives every input an
                empty tensor and a warning, as in Captum.
            attribute_to_layer_input: GradCAM of the layer's input instead of its
                output (default False).
            memory_budget: bytes (or "512MB") that size the batches.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.

        Returns:
            Same form as ``inputs``: [B, C, *S] per input ([B, T, C, *S] for several
            targets; an empty tensor for an input the map does not fit).
        """
        xs, is_tuple = format_inputs(inputs)
        flag("attribute_to_layer_input", attribute_to_layer_input)
        multi = Targets(target, xs[0].shape[0]).multi
        cam = self.grad_cam.attribute(
            xs,
            target,
            additional_forward_args,
            attribute_to_layer_input=attribute_to_layer_input,
            relu_attributions=True,
            memory_budget=memory_budget,
            show_progress=show_progress,
        )
        if isinstance(cam, tuple):
            raise ValueError(
                "GuidedGradCam: the layer has several activation tensors; GradCAM of a layer "
                "with multiple inputs / outputs is not supported (as in Captum)"
            )
        guided = self.guided_backprop.attribute(
            xs,
            target,
            additional_forward_args,
            memory_budget=memory_budget,
            show_progress=show_progress,
        )
        lead = 2 if multi else 1  # [B, T, 1, *S] for several targets
        flat = cam.flatten(0, lead - 1)
        out: list[Tensor] = []
        for x, g in zip(xs, guided):
            try:
                up = LayerAttribution.interpolate(flat, tuple(x.shape[2:]), interpolate_mode)
            except (ValueError, RuntimeError, NotImplementedError):  # as Captum: any
                warnings.warn(
                    "GuidedGradCam: could not upsample the GradCAM map to an input of shape "
                    f"{tuple(x.shape)}; its attributions are an empty tensor",
                    UserWarning,
                    stacklevel=warn_level(2),
                )
                out.append(torch.empty(0))
                continue
            out.append(g * up.view(*cam.shape[:lead], *up.shape[1:]))
        return cast(TensorOrTupleGeneric, format_output(tuple(out), is_tuple))
