"""LayerGradCam (Selvaraju et al., 2017): a layer's activations weighted by the mean
gradient of the target output over each channel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xattr._core.attribution import GradientAttribution, LayerAttribution
from xattr._core.batching import as_args, batch_rows, chunk_args
from xattr._core.inputs import TensorOrTuple, format_inputs
from xattr._core.model import selected, warn_if_training
from xattr._core.progress import expect_rows, with_row_progress
from xattr._core.targets import Targets, TargetType
from xattr._core.validation import flag
from xattr.explainers._gradient import _grads_of, check_grad_kwargs, finish
from xattr.explainers._layer import hook_layers, layer_tensors
from xattr.explainers.registry import register

_INTEGER_ADVICE = (
    "integer tensors (e.g. the token ids an embedding takes) have no gradient: attribute "
    "the layer's output (attribute_to_layer_input=False), or a layer that takes floats"
)


def grad_cam(grads: Tensor, acts: Tensor, attr_dim_summation: bool = True) -> Tensor:
    """GradCAM of one activation tensor, as Captum forms it: the gradients averaged over
    every dimension after the channels (dimension 1 of the layer), times the activations,
    summed over the channels when ``attr_dim_summation``.

    Args:
        grads: [n, T, *A] gradients of T selected outputs; acts: [n, *A] activations,
            A = (C, *S).

    Returns:
        [n, T, 1, *S] ([n, T, *A] without ``attr_dim_summation``).
    """
    if acts.dim() < 2 and attr_dim_summation:
        raise ValueError(
            "layer: LayerGradCam sums over the layer's dimension 1 (channels), but its "
            f"activations are {list(acts.shape)} ([batch] only); attribute a layer with "
            "[batch, channels, ...] activations, or pass attr_dim_summation=False"
        )
    weights = grads.mean(tuple(range(3, grads.dim())), keepdim=True) if acts.dim() > 2 else grads
    scaled = weights * acts.unsqueeze(1)
    return scaled.sum(2, keepdim=True) if attr_dim_summation else scaled


@register(captum=True)
class LayerGradCam(LayerAttribution, GradientAttribution):
    """GradCAM at a layer (Captum's LayerGradCam): the gradient of the target output with
    respect to the layer's activations [B, C, *S] is averaged over S for each channel,
    multiplied by the activations and summed over the channels -> [B, 1, *S]. Usually the
    last convolution of a CNN; :meth:`LayerAttribution.interpolate` upsamples the map to
    the input's size. As in Captum (and unlike the paper) no ReLU is applied unless
    ``relu_attributions=True``. A 2-D layer [B, C] is not averaged: [B, 1] =
    sum_c grad_c * act_c.

    One forward and one backward pass per batch of examples (batches sized by the memory
    budget); the backward pass stops at the layer. Integer inputs (token ids) work when
    the layer's activations are float.

    Args:
        forward_func: the model, or any callable returning [B, ...] outputs.
        layer: the ``nn.Module`` whose output (or inputs) is attributed. When the
            module runs several times in one forward pass, its last call is attributed
            (as in Captum).
        device_ids: accepted for Captum compatibility (DataParallel is not needed here).

    ``multiplies_by_inputs`` is False and ``has_convergence_delta()`` False, as Captum's.

    Example:
        >>> import torch
        >>> conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        >>> model = torch.nn.Sequential(
        ...     conv, torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 36, 3)
        ... ).eval()
        >>> cam = LayerGradCam(model, conv).attribute(torch.randn(2, 1, 6, 6), target=1)
        >>> cam.shape, LayerAttribution.interpolate(cam, (12, 12)).shape
        (torch.Size([2, 1, 6, 6]), torch.Size([2, 1, 12, 12]))
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        device_ids: list[int] | None = None,
    ) -> None:
        if not isinstance(layer, nn.Module):
            raise TypeError(f"layer: expected a torch.nn.Module, got {type(layer).__name__}")
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        GradientAttribution.__init__(self, forward_func)

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        attr_dim_summation: bool = True,
        grad_kwargs: dict[str, Any] | None = None,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> TensorOrTuple:
        """GradCAM attributions of the layer.

        Args:
            inputs: model inputs, [B, ...] tensor or tuple (any dtype, e.g. token ids).
            target: Captum's forms, or a list of B lists of T indices / "all".
            additional_forward_args: extra arguments for the model.
            attribute_to_layer_input: attribute the layer's positional inputs instead of
                its output (default False).
            relu_attributions: apply a ReLU to the result, as the original GradCAM
                (default False: signed attributions, as Captum).
            attr_dim_summation: sum over the channels (dimension 1) (default True).
            grad_kwargs: extra keyword arguments for ``torch.autograd.grad``.
            memory_budget: bytes (or "512MB") that size the batches; default the global
                budget.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.

        Returns:
            Per activation tensor of the layer, [B, 1, *S] for activations [B, C, *S]
            ([B, C, *S] without ``attr_dim_summation``; [B, T, ...] for several targets):
            a tensor when the layer has one activation tensor, else a tuple.

        Example:
            >>> import torch
            >>> lin = torch.nn.Linear(3, 4)
            >>> model = torch.nn.Sequential(lin, torch.nn.Tanh(), torch.nn.Linear(4, 2)).eval()
            >>> LayerGradCam(model, lin).attribute(torch.randn(5, 3), target="all").shape
            torch.Size([5, 2, 1])
        """
        xs, _ = format_inputs(inputs)
        to_input = flag("attribute_to_layer_input", attribute_to_layer_input)
        relu = flag("relu_attributions", relu_attributions)
        summed = flag("attr_dim_summation", attr_dim_summation)
        check_grad_kwargs(grad_kwargs)
        warn_if_training(self.forward_func)
        B = xs[0].shape[0]
        targets = Targets(target, B)
        args = as_args(additional_forward_args)
        rows = batch_rows(
            tuple(x if x.is_floating_point() else x.float() for x in xs), None, memory_budget
        )
        parts: list[tuple[Tensor, ...]] = []
        expect_rows(B)
        for s in range(0, max(B, 1), rows):  # an empty batch: one empty call (the shapes)
            e = min(B, s + rows)
            grads, acts = self._grads_and_acts(
                tuple(x[s:e] for x in xs),
                chunk_args(args, B, s, e, 1),
                targets,
                s,
                to_input,
                grad_kwargs,
            )
            parts.append(tuple(grad_cam(g, a, summed).detach() for g, a in zip(grads, acts)))
        cams = parts[0] if len(parts) == 1 else tuple(torch.cat(p, 0) for p in zip(*parts))
        if relu:
            cams = tuple(F.relu(c) for c in cams)
        done = finish(cams, targets.multi)
        return done[0] if len(done) == 1 else done

    def _grads_and_acts(
        self,
        xs: tuple[Tensor, ...],
        args: tuple,
        targets: Targets,
        first: int,
        to_input: bool,
        grad_kwargs: dict[str, Any] | None,
    ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """One forward pass with the layer's activations replaced by leaves that require
        grad (the backward pass stops there), then the gradients of the selected outputs:
        ([n, T, *A] per activation tensor, the activations [n, *A])."""
        layer = cast(nn.Module, self.layer)  # one module (checked in __init__)
        store: dict[str, tuple[Tensor, ...]] = {}

        def swap(value: Any, what: str) -> Any:
            ts, single = layer_tensors(value, what, layer, "LayerGradCam", _INTEGER_ADVICE)
            leaves = tuple(t.detach().requires_grad_() for t in ts)
            store["acts"] = leaves  # the last call of the layer is the one attributed
            # the model goes on with copies, so that in-place layers after this one
            # (ReLU(inplace=True)) leave the leaves alone
            copies = tuple(t.clone() for t in leaves)
            return copies[0] if single else type(value)(copies)

        handles = hook_layers(
            [layer],
            to_input,
            lambda i, inp: swap(inp, "inputs"),
            lambda i, out: swap(out, "output"),
        )
        try:
            with torch.enable_grad():
                sel = selected(self.forward_func, xs, args, targets, 1, first)
                if "acts" not in store:
                    raise ValueError(
                        f"layer: the layer {type(layer).__name__} was not called by forward_func"
                    )
                grads, _ = _grads_of(sel, store["acts"], grad_kwargs)
        finally:
            for h in handles:
                h.remove()
        return grads, store["acts"]
