"""Input X Gradient (Shrikumar et al., 2016): inputs times gradients of the target output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from xattr._core.attribution import GradientAttribution
from xattr._core.inputs import TensorOrTupleGeneric, format_output
from xattr._core.progress import with_row_progress
from xattr._core.targets import TargetType
from xattr.explainers._gradient import finish, gradients_at_inputs
from xattr.explainers.registry import register


@register(captum=True)
class InputXGradient(GradientAttribution):
    """Inputs multiplied by the gradient of the selected output (Captum's InputXGradient).

    Args:
        forward_func: the model, or any callable returning [B, ...] outputs.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(3, 2).eval()
        >>> InputXGradient(model).attribute(torch.randn(4, 3), target=0).shape
        torch.Size([4, 3])
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        super().__init__(forward_func, multiply_by_inputs=True)

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
        """``inputs * d output / d inputs``.

        Args:
            inputs: [B, *F] float tensor or a tuple of them.
            target: Captum's forms, or a list of B lists of T indices / "all".
            additional_forward_args: extra arguments for the model.
            memory_budget: bytes (or "512MB") for one forward + backward call; given
                (here or with ``xattr.set_memory_budget``) it sizes the calls; default
                1 GiB, under which xattr picks the size it measured fastest.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.

        Returns:
            Same form as ``inputs``: [B, *F] per input, [B, T, *F] for several targets.

        Example:
            >>> import torch
            >>> ixg = InputXGradient(torch.nn.Linear(3, 1).eval())
            >>> ixg.attribute(torch.randn(2, 3)).shape
            torch.Size([2, 3])
        """
        xs, is_tuple, targets, g = gradients_at_inputs(
            self.forward_func,
            inputs,
            target,
            additional_forward_args,
            memory_budget,
            show_progress,
            "InputXGradient",
        )
        out = tuple(gi * x.unsqueeze(1) for gi, x in zip(g, xs))
        return cast(TensorOrTupleGeneric, format_output(finish(out, targets.multi), is_tuple))
