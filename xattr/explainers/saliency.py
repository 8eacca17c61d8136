"""Saliency (Simonyan et al., 2013): gradients of the target output w.r.t. the inputs."""

from __future__ import annotations

from typing import Any, cast

from xattr._core.attribution import GradientAttribution
from xattr._core.inputs import TensorOrTupleGeneric, format_output
from xattr._core.progress import with_row_progress
from xattr._core.targets import TargetType
from xattr.explainers._gradient import finish, gradients_at_inputs
from xattr.explainers.registry import register


@register(captum=True)
class Saliency(GradientAttribution):
    """Gradient of the selected output with respect to each input feature (Captum's Saliency).

    Args:
        forward_func: the model, or any callable returning [B, ...] outputs.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(3, 2).eval()
        >>> Saliency(model).attribute(torch.randn(4, 3), target=1).shape
        torch.Size([4, 3])
    """

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        target: TargetType = None,
        abs: bool = True,
        additional_forward_args: Any = None,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> TensorOrTupleGeneric:
        """Gradients (absolute values by default) of the target output.

        Args:
            inputs: [B, *F] float tensor or a tuple of them.
            target: Captum's forms (int, tuple, list or tensor of B indices), or a list of
                B lists of T indices / "all" for several targets at once.
            abs: return absolute gradients (default True).
            additional_forward_args: extra arguments for the model (tensors with B rows
                follow the batching).
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
            >>> sal = Saliency(torch.nn.Linear(3, 2).eval())
            >>> sal.attribute(torch.randn(2, 3), target="all").shape
            torch.Size([2, 2, 3])
        """
        xs, is_tuple, targets, g = gradients_at_inputs(
            self.forward_func,
            inputs,
            target,
            additional_forward_args,
            memory_budget,
            show_progress,
            "Saliency",
        )
        if abs:
            g = tuple(t.abs() for t in g)
        return cast(TensorOrTupleGeneric, format_output(finish(g, targets.multi), is_tuple))
