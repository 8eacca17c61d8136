"""Saliency (Simonyan et al., 2013): gradients of the target output w.r.t. the inputs."""

from __future__ import annotations

from typing import Any

from xattr.explainers._common import (
    Attribution,
    Targets,
    TargetType,
    TensorOrTuple,
    format_inputs,
    format_output,
    warn_if_training,
)
from xattr.explainers._gradient import (
    as_args,
    batch_rows,
    finish,
    float_inputs,
    input_grads,
)


class Saliency(Attribution):
    """Gradient of the selected output with respect to each input feature (Captum's Saliency).

    Args:
        forward_func: the model, or any callable returning [B, ...] outputs.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(3, 2).eval()
        >>> Saliency(model).attribute(torch.randn(4, 3), target=1).shape
        torch.Size([4, 3])
    """

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        abs: bool = True,
        additional_forward_args: Any = None,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool = False,
    ) -> TensorOrTuple:
        """Gradients (absolute values by default) of the target output.

        Args:
            inputs: [B, *F] float tensor or a tuple of them.
            target: Captum's forms (int, tuple, list or tensor of B indices), or a list of
                B lists of T indices / "all" for several targets at once.
            abs: return absolute gradients (default True).
            additional_forward_args: extra arguments for the model (tensors with B rows
                follow the batching).
            memory_budget: bytes (or "512MB") that size the batches; default global budget.
            show_progress: tqdm bar over examples.

        Returns:
            Same form as ``inputs``: [B, *F] per input, [B, T, *F] for several targets.

        Example:
            >>> import torch
            >>> sal = Saliency(torch.nn.Linear(3, 2).eval())
            >>> sal.attribute(torch.randn(2, 3), target="all").shape
            torch.Size([2, 2, 3])
        """
        xs, is_tuple = format_inputs(inputs)
        float_inputs(xs)
        warn_if_training(self.forward_func)
        targets = Targets(target, xs[0].shape[0])
        rows = batch_rows(xs, None, memory_budget)
        g = input_grads(
            self.forward_func,
            xs,
            as_args(additional_forward_args),
            targets,
            rows,
            show_progress,
            "Saliency",
        )
        if abs:
            g = tuple(t.abs() for t in g)
        return format_output(finish(g, targets.multi), is_tuple)
