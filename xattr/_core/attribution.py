"""The explainer base classes (Captum's ``Attribution``, ``PerturbationAttribution``,
``GradientAttribution``, ``LayerAttribution``) and the convergence delta of path methods."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xattr._core.batching import as_args, batch_rows, expand_base
from xattr._core.inputs import BaselineType, TensorOrTuple, format_baselines, format_inputs
from xattr._core.model import awaiting, completed_future, outputs_at
from xattr._core.targets import Targets, TargetType
from xattr._core.validation import check_forward_func


class Attribution:
    """Base of every explainer (Captum's ``Attribution``): holds the model.

    Args:
        forward_func: the model, any callable from input tensors to outputs.
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        check_forward_func(forward_func)
        self.forward_func = forward_func

    @property
    def multiplies_by_inputs(self) -> bool:
        """Whether attributions include the factor (inputs - baselines) (Captum's flag)."""
        return False

    def has_convergence_delta(self) -> bool:
        """Whether ``attribute`` can return a convergence delta."""
        return False

    @classmethod
    def get_name(cls) -> str:
        """The class name in words, as Captum's ``get_name`` (``"Feature Ablation"``); the
        progress bars are labelled ``"<name> attribution"``, as Captum's."""
        return "".join(c if c.islower() or i == 0 else " " + c for i, c in enumerate(cls.__name__))

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        """Captum's ``attribute_future`` for models that return ``torch.futures.Future``:
        only FeatureAblation and ShapleyValueSampling have it (as in Captum); elsewhere
        a NotImplementedError."""
        raise NotImplementedError(
            f"{type(self).__name__}: attribute_future is not implemented (as in Captum); "
            "FeatureAblation and ShapleyValueSampling have it"
        )


class PerturbationAttribution(Attribution):
    """Base of the perturbation explainers: their attributions are differences of model
    outputs, so they count as multiplied by the inputs (as in Captum)."""

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    def _attribute_awaiting(self, *args: Any, **kwargs: Any) -> Any:
        """``attribute`` for a model that returns ``torch.futures.Future``, as a completed
        Future: the same batches as ``attribute``, each model call's future waited for
        before the next call (xattr builds every batch from the previous results' sizes,
        so calls are not overlapped); a model returning anything but a Future is an
        error (AssertionError and TypeError)."""
        clone = copy.copy(self)
        clone.forward_func = awaiting(self.forward_func)
        attribute = clone.attribute  # pyright: ignore[reportAttributeAccessIssue]
        return completed_future(attribute(*args, **kwargs))


class GradientAttribution(Attribution):
    """Base of the gradient explainers (Captum's ``GradientAttribution``).

    Args:
        forward_func: the model.
        multiply_by_inputs: whether the attributions include the factor
            (inputs - baselines); the explainers that take Captum's
            ``multiply_by_inputs`` pass it on (default False, as Saliency).
    """

    def __init__(self, forward_func: Callable[..., Any], multiply_by_inputs: bool = False) -> None:
        super().__init__(forward_func)
        self._multiply_by_inputs = bool(multiply_by_inputs)

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def compute_convergence_delta(
        self,
        attributions: TensorOrTuple,
        start_point: BaselineType,
        end_point: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        """How far ``attributions`` are from completeness:
        ``sum(attributions) - (f(end_point) - f(start_point))`` per example.

        Args:
            attributions: [B, *F] per input (a tuple for tuple inputs), or [B, T, *F]
                with several targets.
            start_point: the baselines (a number, a tensor broadcastable to one example,
                [B, *F], or a tuple of those).
            end_point: the inputs, [B, *F] or a tuple.
            target, additional_forward_args: as in ``attribute``.

        Returns:
            [B] ([B, T] for several targets), in the attributions' dtype.

        Example:
            >>> import torch
            >>> from xattr import IntegratedGradients
            >>> ig = IntegratedGradients(torch.nn.Linear(3, 1).double().eval())
            >>> x = torch.randn(2, 3, dtype=torch.float64)
            >>> a = ig.attribute(x, target=0)
            >>> bool(ig.compute_convergence_delta(a, 0.0, x, target=0).abs().max() < 1e-12)
            True
        """
        ends, _ = format_inputs(end_point, "end_point")
        attrs, _ = format_inputs(attributions, "attributions")
        if len(attrs) != len(ends):
            raise ValueError(
                f"attributions: expected {len(ends)} tensor(s), one per input, got {len(attrs)}"
            )
        starts = format_baselines(start_point, ends)
        B = ends[0].shape[0]
        targets = Targets(target, B)
        lead = (B, -1) if targets.multi else (B, 1)
        shaped = []
        for i, (a, x) in enumerate(zip(attrs, ends)):
            if a.shape[0] != B:
                raise ValueError(
                    f"attributions[{i}]: {a.shape[0]} rows, the end_point has {B} examples"
                )
            shaped.append(a.reshape(*lead, *x.shape[1:]))
        rows = batch_rows(ends, None, None)
        delta = convergence_delta(
            self.forward_func,
            tuple(shaped),
            ends,
            starts,
            as_args(additional_forward_args),
            targets,
            rows,
        )
        return delta if targets.multi else delta[:, 0]


# F.interpolate's modes and the attribution dimensions (batch, channel, spatial...) each
# accepts; None: any of 3, 4, 5.
INTERPOLATE_MODES: dict[str, int | None] = {
    "nearest": None,
    "nearest-exact": None,
    "area": None,
    "linear": 3,
    "bilinear": 4,
    "bicubic": 4,
    "trilinear": 5,
}


class LayerAttribution(Attribution):
    """Base of the explainers that attribute a layer's activations (Captum's
    ``LayerAttribution``): holds the layer, and upsamples layer attributions to the
    input's size (:meth:`interpolate`).

    Args:
        forward_func: the model.
        layer: the ``nn.Module`` whose activations are attributed (a non-empty list of
            them where the explainer takes several).
        device_ids: accepted for Captum compatibility (DataParallel is not needed here).
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module | list[nn.Module],
        device_ids: list[int] | None = None,
    ) -> None:
        Attribution.__init__(self, forward_func)
        layers = layer if isinstance(layer, list) else [layer]
        if not layers or not all(isinstance(m, nn.Module) for m in layers):
            raise TypeError(
                "layer: expected a torch.nn.Module or a non-empty list of them, got "
                f"{type(layer).__name__}"
            )
        self.layer = layer
        self.device_ids = device_ids

    @staticmethod
    def interpolate(
        layer_attribution: Tensor,
        interpolate_dims: int | tuple[int, ...],
        interpolate_mode: str = "nearest",
    ) -> Tensor:
        """Resamples layer attributions [B, C, *S] (S of 1, 2 or 3 dimensions) to
        [B, C, *interpolate_dims] with ``torch.nn.functional.interpolate``, as Captum's
        ``LayerAttribution.interpolate``: e.g. a GradCAM map of a convolution's output
        upsampled to the input image.

        Args:
            layer_attribution: float [B, C, *S], 3-D, 4-D or 5-D.
            interpolate_dims: the new S: one int for every spatial dimension, or a tuple
                of len(S) positive ints.
            interpolate_mode: "nearest" (default), "nearest-exact", "area", "linear"
                (3-D), "bilinear" / "bicubic" (4-D) or "trilinear" (5-D).

        Returns:
            [B, C, *interpolate_dims], the dtype and device of ``layer_attribution``.

        Example:
            >>> import torch
            >>> a = torch.arange(4.0).view(1, 1, 2, 2)
            >>> LayerAttribution.interpolate(a, (4, 4))[0, 0, :2].tolist()
            [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]
        """
        if not isinstance(layer_attribution, Tensor) or not layer_attribution.is_floating_point():
            got = (
                str(layer_attribution.dtype).replace("torch.", "")
                if isinstance(layer_attribution, Tensor)
                else type(layer_attribution).__name__
            )
            raise TypeError(f"layer_attribution: expected a float tensor, got {got}")
        nd = layer_attribution.dim()
        if nd not in (3, 4, 5):
            raise ValueError(
                "layer_attribution: expected [batch, channels, *spatial] with 1 to 3 spatial "
                f"dimensions (3-D to 5-D), got shape {list(layer_attribution.shape)}"
            )
        if interpolate_mode not in INTERPOLATE_MODES:
            raise ValueError(
                f"interpolate_mode: expected one of {', '.join(INTERPOLATE_MODES)}, got "
                f"{interpolate_mode!r}"
            )
        want = INTERPOLATE_MODES[interpolate_mode]
        if want is not None and want != nd:
            raise ValueError(
                f"interpolate_mode: {interpolate_mode!r} resamples {want}-D attributions "
                f"({want - 2} spatial dimensions), got {nd}-D; use 'nearest' or 'area'"
            )
        dims = (interpolate_dims,) if isinstance(interpolate_dims, int) else interpolate_dims
        ok = isinstance(dims, (tuple, list, torch.Size)) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in dims
        )
        if not ok or (not isinstance(interpolate_dims, int) and len(dims) != nd - 2):
            raise ValueError(
                f"interpolate_dims: expected a positive int or {nd - 2} positive ints (one per "
                f"dimension after batch and channels of {list(layer_attribution.shape)}), got "
                f"{interpolate_dims!r}"
            )
        size = interpolate_dims if isinstance(interpolate_dims, int) else tuple(dims)
        return F.interpolate(layer_attribution, size, mode=interpolate_mode)


def convergence_delta(
    forward_func: Callable,
    attributions: tuple[Tensor, ...],
    inputs: tuple[Tensor, ...],
    baselines: tuple[Tensor, ...],
    args: tuple,
    targets: Targets,
    rows: int,
) -> Tensor:
    """sum(attributions) - (f(inputs) - f(baselines)) per example and target: [B, T].

    ``attributions`` are [B, T, *F]; ``baselines`` [1 or B, *F].
    """
    B = inputs[0].shape[0]
    base = tuple(expand_base(b, B) for b in baselines)
    end = outputs_at(forward_func, inputs, args, targets, rows)
    start = outputs_at(forward_func, base, args, targets, rows)
    total = cast(
        Tensor, sum(a.reshape(*a.shape[:2], math.prod(a.shape[2:])).sum(-1) for a in attributions)
    )
    return total - (end - start).to(total.dtype)
