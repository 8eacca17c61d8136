"""GradientShap (Lundberg & Lee, 2017): expected gradients over a baseline distribution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast, overload

import torch
from torch import Tensor

from xattr._core.attribution import GradientAttribution, convergence_delta
from xattr._core.batching import as_args, batch_rows
from xattr._core.inputs import (
    TensorOrTuple,
    TensorOrTupleGeneric,
    format_baselines,
    format_inputs,
    format_output,
)
from xattr._core.model import warn_if_training
from xattr._core.progress import row_progress
from xattr._core.targets import Targets, TargetType
from xattr._core.validation import positive_int
from xattr.explainers._gradient import (
    baseline_distribution,
    finish,
    input_grads,
    working_inputs,
)
from xattr.explainers.noise_tunnel import NoiseTunnel, make_generator
from xattr.explainers.registry import register


class _InputBaselineXGradient:
    """``(x - b) * grad f(b + alpha (x - b))`` with one uniform alpha per row (Captum's
    InputBaselineXGradient); alphas come from the generator set by GradientShap."""

    def __init__(
        self, forward_func: Callable, multiply_by_inputs: bool, memory_budget: Any
    ) -> None:
        self.forward_func = forward_func
        self.multiply_by_inputs = multiply_by_inputs
        self.memory_budget = memory_budget
        self.generator: torch.Generator | None = None

    def has_convergence_delta(self) -> bool:
        return True

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
    ) -> Any:
        xs, is_tuple = format_inputs(inputs)
        B = xs[0].shape[0]
        bases = tuple(b.expand(B, *b.shape[1:]) for b in format_baselines(baselines, xs))
        gen = cast(torch.Generator, self.generator)  # set by GradientShap before the call
        alpha = torch.rand(B, generator=gen, device=gen.device, dtype=xs[0].dtype).to(xs[0].device)
        pts = tuple(b + alpha.view(B, *([1] * (x.dim() - 1))) * (x - b) for x, b in zip(xs, bases))
        targets = Targets(target, B)
        args = as_args(additional_forward_args)
        rows = batch_rows(xs, None, self.memory_budget)
        g = input_grads(self.forward_func, pts, args, targets, rows)
        if self.multiply_by_inputs:
            g = tuple(gi * (x - b).unsqueeze(1) for gi, x, b in zip(g, xs, bases))
        out = format_output(finish(g, targets.multi), is_tuple)
        if not return_convergence_delta:
            return out
        delta = convergence_delta(self.forward_func, g, xs, bases, args, targets, rows)
        return out, (delta if targets.multi else delta[:, 0])


@register(captum=True)
class GradientShap(GradientAttribution):
    """GradientShap / expected gradients (Captum's GradientShap): SmoothGrad over
    ``(x' - b) * grad f(b + alpha (x' - b))`` with ``x' = x + N(0, stdevs^2)``, ``b`` drawn
    from the baseline distribution and ``alpha ~ U(0, 1)``, averaged over ``n_samples``.

    Args:
        forward_func: the model, or any callable returning [B, ...] outputs.
        multiply_by_inputs: multiply gradients by ``(x' - b)`` (default True).

    Example:
        >>> import torch
        >>> gs = GradientShap(torch.nn.Linear(3, 2).eval())
        >>> gs.attribute(torch.randn(4, 3), torch.zeros(10, 3), target=0, seed=0).shape
        torch.Size([4, 3])
    """

    def __init__(self, forward_func: Callable[..., Any], multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func, multiply_by_inputs)

    def has_convergence_delta(self) -> bool:
        return True

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: Tensor | tuple[Tensor, ...] | Callable[..., TensorOrTuple],
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: Literal[False] = False,
        *,
        seed: int | None = None,
        memory_budget: int | str | None = None,
    ) -> TensorOrTupleGeneric: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: Tensor | tuple[Tensor, ...] | Callable[..., TensorOrTuple],
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        return_convergence_delta: Literal[True],
        seed: int | None = None,
        memory_budget: int | str | None = None,
    ) -> tuple[TensorOrTupleGeneric, Tensor]: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: Tensor | tuple[Tensor, ...] | Callable[..., TensorOrTuple],
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        *,
        seed: int | None = None,
        memory_budget: int | str | None = None,
    ) -> TensorOrTupleGeneric | tuple[TensorOrTupleGeneric, Tensor]: ...

    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: Tensor | tuple[Tensor, ...] | Callable[..., TensorOrTuple],
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        *,
        seed: int | None = None,
        memory_budget: int | str | None = None,
    ) -> TensorOrTupleGeneric | tuple[TensorOrTupleGeneric, Tensor]:
        """Expected gradients.

        Args:
            inputs: [B, *F] float tensor or a tuple of them.
            baselines: the baseline distribution, [N, *F] per input (a tuple for tuple
                inputs); each sample draws one row (the same row for every input). Or, as
                in Captum, a function ``fn()`` or ``fn(inputs)`` that returns it.
            n_samples: samples per example (default 5).
            stdevs: standard deviation of the gaussian noise added to the inputs, one float
                or one per input (default 0.0).
            target: Captum's forms, or a list of B lists of T indices / "all".
            additional_forward_args: extra arguments for the model.
            return_convergence_delta: also return, per sample,
                ``sum(attr) - (f(x') - f(b))``, [B * n_samples] (example-major).
            seed: seed of the noise, baselines and alphas; None draws it from torch's
                global generator.
            memory_budget: bytes (or "512MB") for one forward + backward call; given
                (here or with ``xattr.set_memory_budget``) it sizes the calls; default
                1 GiB, under which xattr picks the size it measured fastest.

        Returns:
            Attributions in the form of ``inputs`` ([B, T, *F] for several targets), and
            the deltas when asked for.

        Example:
            >>> import torch
            >>> gs = GradientShap(torch.nn.Linear(3, 1).eval())
            >>> attr, delta = gs.attribute(torch.randn(2, 3), torch.randn(5, 3), n_samples=4,
            ...                            return_convergence_delta=True, seed=0)
            >>> attr.shape, delta.shape
            (torch.Size([2, 3]), torch.Size([8]))
        """
        n_samples = positive_int("n_samples", n_samples)
        xs, is_tuple = format_inputs(inputs)
        xs, f = working_inputs(xs, self.forward_func)
        warn_if_training(self.forward_func)
        bl = baseline_distribution(baselines, inputs, xs, "GradientShap")
        inner = _InputBaselineXGradient(f, self._multiply_by_inputs, memory_budget)
        gen = make_generator(seed, xs[0].device)
        inner.generator = gen
        nt = NoiseTunnel(inner)
        kwargs: dict[str, Any] = {
            "baselines": bl if is_tuple else bl[0],
            "target": target,
            "additional_forward_args": additional_forward_args,
            "return_convergence_delta": return_convergence_delta,
        }
        with row_progress(None, None, f"{self.get_name()} attribution"):  # one bar
            return nt._attribute(
                gen, xs, is_tuple, "smoothgrad", n_samples, None, stdevs, True, kwargs
            )
