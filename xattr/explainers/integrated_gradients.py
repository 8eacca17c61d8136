"""Integrated Gradients (Sundararajan et al., 2017) on xattr's path kernels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast, overload

from torch import Tensor

from xattr._core.attribution import GradientAttribution, convergence_delta
from xattr._core.batching import as_args, batch_rows
from xattr._core.inputs import (
    BaselineType,
    TensorOrTupleGeneric,
    format_baselines,
    format_inputs,
    format_output,
)
from xattr._core.model import warn_if_training
from xattr._core.progress import with_row_progress
from xattr._core.targets import Targets, TargetType
from xattr.explainers._gradient import check_n_steps, finish, integrate_paths, working_inputs
from xattr.explainers.registry import register


@register(captum=True)
class IntegratedGradients(GradientAttribution):
    """Integrated Gradients: ``(x - b) * integral_0^1 grad f(b + a (x - b)) da``,
    with Captum's quadrature rules (Captum's IntegratedGradients, same answers).

    Args:
        forward_func: the model, or any callable returning [B, ...] outputs.
        multiply_by_inputs: multiply the integrated gradients by ``(x - b)`` (default
            True, "global" attribution); False returns the integrated gradients alone.

    Example:
        >>> import torch
        >>> ig = IntegratedGradients(torch.nn.Linear(3, 2).eval())
        >>> attr, delta = ig.attribute(torch.randn(4, 3), target=1,
        ...                            return_convergence_delta=True)
        >>> attr.shape, delta.shape
        (torch.Size([4, 3]), torch.Size([4]))
    """

    def __init__(self, forward_func: Callable[..., Any], multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func, multiply_by_inputs)

    def has_convergence_delta(self) -> bool:
        return True

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: Literal[False] = False,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> TensorOrTupleGeneric: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        *,
        return_convergence_delta: Literal[True],
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> tuple[TensorOrTupleGeneric, Tensor]: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> TensorOrTupleGeneric | tuple[TensorOrTupleGeneric, Tensor]: ...

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> TensorOrTupleGeneric | tuple[TensorOrTupleGeneric, Tensor]:
        """Integrated gradients of the target output along the straight path from the
        baselines to the inputs.

        Args:
            inputs: [B, *F] float tensor or a tuple of them.
            baselines: None (zeros), a number, a tensor [B, *F], [1, *F] or [*F], or a tuple
                of these, one per input.
            target: Captum's forms, or a list of B lists of T indices / "all".
            additional_forward_args: extra arguments for the model (tensors with B rows
                follow the path rows).
            n_steps: quadrature points (default 50).
            method: "gausslegendre" (default), "riemann_left", "riemann_right",
                "riemann_middle" or "riemann_trapezoid".
            internal_batch_size: Captum's batching argument (default None): each
                forward + backward call holds at least this many path rows, more where
                xattr's own choice is larger, never more than ``memory_budget`` allows
                (README, "Batching"). Results do not depend on it.
            return_convergence_delta: also return
                ``sum(attributions) - (f(inputs) - f(baselines))``, [B] ([B, T] for several
                targets).
            memory_budget: bytes (or "512MB") for one forward + backward call; given
                (here or with ``xattr.set_memory_budget``) it sizes the calls; default
                1 GiB, under which xattr picks the size it measured fastest.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.

        Returns:
            Attributions in the form of ``inputs`` ([B, *F] per input, [B, T, *F] for
            several targets), and the delta when asked for.

        Example:
            >>> import torch
            >>> ig = IntegratedGradients(torch.nn.Linear(3, 2).eval())
            >>> ig.attribute(torch.randn(2, 3), target="all", n_steps=8).shape
            torch.Size([2, 2, 3])
        """
        xs, is_tuple = format_inputs(inputs)
        xs, f = working_inputs(xs, self.forward_func, integers=True)
        check_n_steps(n_steps, method)
        warn_if_training(self.forward_func)
        B = xs[0].shape[0]
        bases = format_baselines(baselines, xs)
        targets = Targets(target, B)
        args = as_args(additional_forward_args)
        rows = batch_rows(xs, internal_batch_size, memory_budget, per_example=n_steps)
        attrs, _, _ = integrate_paths(
            f,
            xs,
            tuple(b.unsqueeze(1) for b in bases),
            args,
            targets,
            method,
            n_steps,
            rows,
            multiply_by_inputs=self._multiply_by_inputs,
            show_progress=show_progress,
            desc="IntegratedGradients",
        )
        out = cast(TensorOrTupleGeneric, format_output(finish(attrs, targets.multi), is_tuple))
        if not return_convergence_delta:
            return out
        delta = convergence_delta(f, attrs, xs, bases, args, targets, rows)
        return out, (delta if targets.multi else delta[:, 0])
