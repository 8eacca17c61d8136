"""The explainer base classes (Captum's ``Attribution``, ``PerturbationAttribution``,
``GradientAttribution``) and the convergence delta of path methods."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, cast

from torch import Tensor

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
