"""Layer Integrated Gradients: integrated gradients of a layer's activations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Union, overload

import torch
from torch import Tensor, nn

from xattr._core.attribution import GradientAttribution, LayerAttribution, convergence_delta
from xattr._core.batching import as_args, batch_rows, chunk_args
from xattr._core.inputs import BaselineType, TensorOrTuple, format_baselines, format_inputs
from xattr._core.model import warn_if_training
from xattr._core.progress import expect_rows, model_rows, with_row_progress
from xattr._core.targets import Targets, TargetType
from xattr.explainers._gradient import check_grad_kwargs, check_n_steps, finish, integrate_paths
from xattr.explainers._layer import hook_layers, layer_tensors
from xattr.explainers.registry import register

# Attributions shaped like the layer's activations (not like the inputs): a tensor or a
# tuple per layer, a list of those for a list of layers.
LayerAttributions = Union[TensorOrTuple, list[TensorOrTuple]]


_INTEGER_ADVICE = (
    "integer tensors (e.g. the token ids an embedding takes) cannot be moved along "
    "a path: attribute the layer's output (attribute_to_layer_input=False), or the "
    "layer whose output is the embedding"
)


def _tensors(value: Any, what: str, layer: torch.nn.Module) -> tuple[tuple[Tensor, ...], bool]:
    """A layer's input or output as a tuple of float tensors, and whether it was one."""
    return layer_tensors(value, what, layer, "LayerIntegratedGradients", _INTEGER_ADVICE)


@register(captum=True)
class LayerIntegratedGradients(LayerAttribution, GradientAttribution):
    """Integrated gradients with respect to a layer's output (or inputs): the layer's
    activations are moved along the straight path from their values at the baselines to
    their values at the inputs (Captum's LayerIntegratedGradients). Works with integer
    inputs, e.g. token ids into an ``nn.Embedding``.

    Args:
        forward_func: the model, or any callable returning [B, ...] outputs.
        layer: the ``nn.Module`` whose activations are attributed, or a list of them
            (all are moved along their paths together, as in Captum).
        device_ids: accepted for Captum compatibility (DataParallel is not needed here).
        multiply_by_inputs: multiply by the activation differences (default True).

    Example:
        >>> import torch
        >>> emb = torch.nn.Embedding(10, 4)
        >>> model = torch.nn.Sequential(emb, torch.nn.Flatten(), torch.nn.Linear(12, 2)).eval()
        >>> lig = LayerIntegratedGradients(model, emb)
        >>> lig.attribute(torch.tensor([[1, 2, 3]]), target=0, n_steps=8).shape
        torch.Size([1, 3, 4])
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module | list[nn.Module],
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = True,
    ) -> None:
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        GradientAttribution.__init__(self, forward_func, multiply_by_inputs)
        self._layers = layer if isinstance(layer, list) else [layer]

    def has_convergence_delta(self) -> bool:
        return True

    def _hooks(self, to_input: bool, pre: Callable, post: Callable) -> list:
        """Hooks on every layer (:func:`hook_layers`); returns the handles."""
        return hook_layers(self._layers, to_input, pre, post)

    def _activations(
        self, xs: tuple[Tensor, ...], args: tuple, rows: int, to_input: bool
    ) -> tuple[list[tuple[Tensor, ...]], list[bool]]:
        """Every layer's activations (a tuple of tensors each) and whether each layer's
        activation is a single tensor."""
        B = xs[0].shape[0]
        parts: list[list[tuple[Tensor, ...]]] = [[] for _ in self._layers]
        single = [True] * len(self._layers)
        store: dict[int, tuple[Tensor, ...]] = {}
        what = "inputs" if to_input else "output"

        def keep(i: int, value: Any) -> None:
            store[i], single[i] = _tensors(value, what, self._layers[i])
            if to_input:
                single[i] = len(store[i]) == 1

        handles = self._hooks(to_input, keep, keep)
        expect_rows(B)
        try:
            with torch.no_grad():
                for s in range(0, max(B, 1), rows):  # an empty batch: one empty call
                    e = min(B, s + rows)
                    store.clear()
                    with model_rows(e - s):
                        self.forward_func(*(x[s:e] for x in xs), *chunk_args(args, B, s, e, 1))
                    for i in range(len(self._layers)):
                        if i not in store:
                            raise ValueError(
                                f"layer: the layer {self._layers[i].__class__.__name__} was "
                                "not called by forward_func"
                            )
                        parts[i].append(tuple(t.detach() for t in store[i]))
        finally:
            for h in handles:
                h.remove()
        acts = [tuple(torch.cat(ts, 0) for ts in zip(*p)) for p in parts]
        return acts, single

    @overload
    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: Literal[False] = False,
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> LayerAttributions: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        *,
        return_convergence_delta: Literal[True],
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> tuple[LayerAttributions, Tensor]: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> LayerAttributions | tuple[LayerAttributions, Tensor]: ...

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> LayerAttributions | tuple[LayerAttributions, Tensor]:
        """Integrated gradients at the layer.

        Args:
            inputs: model inputs, [B, ...] tensor or tuple (any dtype, e.g. token ids).
            baselines: Captum's forms, in the inputs' space (e.g. a pad token id).
            target: Captum's forms, or a list of B lists of T indices / "all".
            additional_forward_args: extra arguments for the model.
            n_steps, method, internal_batch_size: as IntegratedGradients.
            return_convergence_delta: also return
                ``sum(attributions) - (f(inputs) - f(baselines))``, [B] ([B, T]).
            attribute_to_layer_input: attribute the layer's positional inputs instead of
                its output.
            grad_kwargs: extra keyword arguments for ``torch.autograd.grad`` (Captum's).
            memory_budget: bytes (or "512MB") for one forward + backward call; given
                (here or with ``xattr.set_memory_budget``) it sizes the calls; default
                1 GiB, under which xattr picks the size it measured fastest.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.

        Returns:
            Attributions shaped like the layer's activations, [B, *A] ([B, T, *A] for
            several targets): a tensor when the activation is one tensor, a tuple when
            the layer returns (or, with ``attribute_to_layer_input``, takes) several; a
            list of those for a list of layers. The delta, when asked for, sums the
            attributions of every layer (as in Captum).

        Example:
            >>> import torch
            >>> lin = torch.nn.Linear(3, 4)
            >>> model = torch.nn.Sequential(lin, torch.nn.ReLU(), torch.nn.Linear(4, 1)).eval()
            >>> LayerIntegratedGradients(model, lin).attribute(torch.randn(2, 3)).shape
            torch.Size([2, 4])
        """
        xs, _ = format_inputs(inputs)
        check_n_steps(n_steps, method)
        check_grad_kwargs(grad_kwargs)
        warn_if_training(self.forward_func)
        B = xs[0].shape[0]
        bases = format_baselines(baselines, xs)
        full_bases = tuple(b.expand(B, *b.shape[1:]) for b in bases)
        targets = Targets(target, B)
        args = as_args(additional_forward_args)
        rows0 = batch_rows(
            tuple(x.float() if not x.is_floating_point() else x for x in xs),
            internal_batch_size,
            memory_budget,
        )
        to_input = bool(attribute_to_layer_input)
        acts_x, single = self._activations(xs, args, rows0, to_input)
        acts_b, _ = self._activations(full_bases, args, rows0, to_input)
        counts = [len(a) for a in acts_x]
        flat_x = tuple(t for a in acts_x for t in a)
        flat_b = tuple(t for a in acts_b for t in a)
        rows = batch_rows(flat_x, internal_batch_size, memory_budget, per_example=n_steps)

        def layer_call(flat: tuple[Tensor, ...], s: int, e: int, reps: int) -> Tensor:
            offsets = [sum(counts[:i]) for i in range(len(counts))]
            pts = [flat[o : o + c] for o, c in zip(offsets, counts)]

            def pre(i: int, inp: Any) -> tuple[Tensor, ...]:
                return pts[i]

            def post(i: int, out: Any) -> Any:
                return pts[i][0] if single[i] else pts[i]

            handles = self._hooks(to_input, pre, post)
            try:
                model_in = tuple(x[s:e].repeat_interleave(reps, 0) for x in xs)
                return self.forward_func(*model_in, *chunk_args(args, B, s, e, reps))
            finally:
                for h in handles:
                    h.remove()

        attrs, _, _ = integrate_paths(
            self.forward_func,
            flat_x,
            tuple(b.unsqueeze(1) for b in flat_b),
            args,
            targets,
            method,
            n_steps,
            rows,
            multiply_by_inputs=self._multiply_by_inputs,
            show_progress=show_progress,
            desc="LayerIntegratedGradients",
            layer_call=layer_call,
            grad_kwargs=grad_kwargs,
        )
        done = finish(attrs, targets.multi)
        per_layer: list[TensorOrTuple] = []
        o = 0
        for c, one in zip(counts, single):
            per_layer.append(done[o] if one else tuple(done[o : o + c]))
            o += c
        out = per_layer if isinstance(self.layer, list) else per_layer[0]
        if not return_convergence_delta:
            return out
        delta = convergence_delta(self.forward_func, attrs, xs, bases, args, targets, rows0)
        return out, (delta if targets.multi else delta[:, 0])
