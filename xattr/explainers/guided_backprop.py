"""Guided Backpropagation (Springenberg et al., 2015) and Deconvolution (Zeiler & Fergus,
2014): gradients in which every ReLU's backward is replaced (Captum's GuidedBackprop and
Deconvolution).

Every ReLU call is intercepted (``xattr._core.overrides.Intercept``), whether the model
makes it through an ``nn.ReLU`` module, the same module twice, ``F.relu``,
``torch.relu`` or ``x.relu()``; Captum hooks ``nn.ReLU`` modules only, so it leaves
functional ReLUs with their ordinary gradient. Other operations keep their gradients,
as in Captum.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor

from xattr._core import overrides as ov
from xattr._core.attribution import GradientAttribution
from xattr._core.inputs import TensorOrTupleGeneric, format_output
from xattr._core.progress import with_row_progress
from xattr._core.targets import TargetType
from xattr.explainers._gradient import finish, gradients_at_inputs
from xattr.explainers.registry import register


class _ModifiedRelu(torch.autograd.Function):
    """relu(x); backward: relu(g) * (x > 0) (guided) or relu(g) (deconvolution)."""

    @staticmethod
    def forward(ctx, x, guided):  # type: ignore[override]
        ctx.guided = guided
        if guided:
            ctx.save_for_backward(x > 0)
        return torch.relu(x)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        out = torch.relu(g)
        if ctx.guided:
            (mask,) = ctx.saved_tensors
            out = out * mask
        return out, None


def _relu_rule(guided: bool) -> Callable:
    def rule(func: Callable, args: tuple, kwargs: dict) -> Tensor:
        x = args[0] if args else kwargs["input"]
        inplace = func in ov.RELU_INPLACE or bool(
            kwargs.get("inplace", args[1] if len(args) > 1 else False)
        )
        y = _ModifiedRelu.apply(x, guided)
        if inplace and not (x.is_leaf and x.requires_grad):  # as after an in-place call
            x.copy_(y)
            return x
        return y

    return rule


def modified_relu_rules(guided: bool) -> dict[Callable, Callable]:
    """Every ReLU function -> its guided-backprop (``guided``) or deconvolution rule."""
    rule = _relu_rule(guided)
    return {f: rule for f in (*ov.RELU, *ov.RELU_INPLACE)}


def _intercepted(forward_func: Callable, guided: bool, name: str, *args: Any) -> Any:
    # the inputs (the tensors being differentiated) are traced, so that a model whose
    # ReLUs run out of the mode's sight (TorchScript) is refused, not silently answered
    # with plain gradients
    sources = tuple(a for a in args if isinstance(a, Tensor) and a.requires_grad)
    mode = ov.Intercept(modified_relu_rules(guided), name=name, sources=sources, trace=True)
    with mode:
        out = forward_func(*args)
    mode.check_output(out)
    return out


class _ModifiedReluGradient(GradientAttribution):
    """Gradients with every ReLU's backward replaced (the two classes below)."""

    _guided = True

    def __init__(self, model: Callable[..., Any]) -> None:
        super().__init__(model)
        self.model = model

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> TensorOrTupleGeneric:
        """The modified gradients of the selected output at the inputs.

        Args:
            inputs: [B, *F] float tensor or a tuple of them.
            target: Captum's forms, or a list of B lists of T indices / "all".
            additional_forward_args: extra arguments for the model.
            memory_budget: bytes (or "512MB") that size the batches.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.

        Returns:
            Same form as ``inputs``: [B, *F] per input, [B, T, *F] for several targets.
        """
        name = type(self).__name__
        run = functools.partial(_intercepted, self.forward_func, self._guided, name)
        xs, is_tuple, targets, g = gradients_at_inputs(
            run, inputs, target, additional_forward_args, memory_budget, show_progress, name
        )
        return cast(TensorOrTupleGeneric, format_output(finish(g, targets.multi), is_tuple))


@register(captum=True)
class GuidedBackprop(_ModifiedReluGradient):
    """Guided backpropagation (Captum's GuidedBackprop): gradients in which each ReLU
    passes back only the positive gradient, and only where its input was positive:
    ``relu(g) * (x > 0)``. Every ReLU call counts (modules, reused modules, ``F.relu``,
    ``torch.relu``, ``x.relu()``).

    Args:
        model: the model, or any callable returning [B, ...] outputs.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
        ...                             torch.nn.Linear(4, 2)).eval()
        >>> GuidedBackprop(model).attribute(torch.randn(5, 3), target=1).shape
        torch.Size([5, 3])
    """

    _guided = True


@register(captum=True)
class Deconvolution(_ModifiedReluGradient):
    """Deconvolution (Captum's Deconvolution): gradients in which each ReLU passes back
    the positive part of the incoming gradient, whatever its input was: ``relu(g)``.
    Every ReLU call counts (modules, reused modules, ``F.relu``, ``torch.relu``,
    ``x.relu()``).

    Args:
        model: the model, or any callable returning [B, ...] outputs.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
        ...                             torch.nn.Linear(4, 2)).eval()
        >>> Deconvolution(model).attribute(torch.randn(5, 3), target=0).shape
        torch.Size([5, 3])
    """

    _guided = False
