"""Layer Integrated Gradients: integrated gradients of a layer's activations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from xattr.explainers._common import (
    BaselineType,
    Targets,
    TargetType,
    TensorOrTuple,
    format_baselines,
    format_inputs,
    warn_if_training,
)
from xattr.explainers._gradient import (
    GradientAttribution,
    as_args,
    batch_rows,
    check_n_steps,
    chunk_args,
    convergence_delta,
    finish,
    integrate_paths,
)


class LayerIntegratedGradients(GradientAttribution):
    """Integrated gradients with respect to a layer's output (or input): the layer's
    activations are moved along the straight path from their values at the baselines to
    their values at the inputs (Captum's LayerIntegratedGradients). Works with integer
    inputs, e.g. token ids into an ``nn.Embedding``.

    Args:
        forward_func: the model, or any callable returning [B, ...] outputs.
        layer: the ``nn.Module`` whose activations are attributed (one layer).
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
        layer: nn.Module,
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = True,
    ) -> None:
        super().__init__(forward_func)
        if not isinstance(layer, nn.Module):
            raise TypeError(
                f"layer: expected one torch.nn.Module, got {type(layer).__name__} "
                "(lists of layers are not supported)"
            )
        self.layer = layer
        self.device_ids = device_ids
        self._multiply_by_inputs = bool(multiply_by_inputs)

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    def _activations(
        self, xs: tuple[Tensor, ...], args: tuple, rows: int, to_input: bool
    ) -> Tensor:
        B = xs[0].shape[0]
        parts: list[Tensor] = []
        store: dict[str, Tensor] = {}

        def fwd_hook(mod, inp, out):
            store["a"] = out

        def pre_hook(mod, inp):
            store["a"] = inp[0] if isinstance(inp, tuple) else inp

        handle = (
            self.layer.register_forward_pre_hook(pre_hook)
            if to_input
            else self.layer.register_forward_hook(fwd_hook)
        )
        try:
            with torch.no_grad():
                for s in range(0, B, rows):
                    e = min(B, s + rows)
                    store.clear()
                    self.forward_func(*(x[s:e] for x in xs), *chunk_args(args, B, s, e, 1))
                    if "a" not in store:
                        raise ValueError("layer: the layer was not called by forward_func")
                    a = store["a"]
                    if not isinstance(a, Tensor) or not a.is_floating_point():
                        raise TypeError(
                            "layer: expected the layer's "
                            f"{'input' if to_input else 'output'} to be one float tensor, got "
                            f"{type(a).__name__}"
                        )
                    parts.append(a.detach())
        finally:
            handle.remove()
        return torch.cat(parts, 0)

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
        *,
        memory_budget: int | str | None = None,
        show_progress: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Integrated gradients at the layer.

        Args:
            inputs: model inputs, [B, ...] tensor or tuple (any dtype, e.g. token ids).
            baselines: Captum's forms, in the inputs' space (e.g. a pad token id).
            target: Captum's forms, or a list of B lists of T indices / "all".
            additional_forward_args: extra arguments for the model.
            n_steps, method, internal_batch_size: as IntegratedGradients.
            return_convergence_delta: also return
                ``sum(attributions) - (f(inputs) - f(baselines))``, [B] ([B, T]).
            attribute_to_layer_input: attribute the layer's (first) input instead of its
                output.
            memory_budget: bytes (or "512MB") when ``internal_batch_size`` is None.
            show_progress: tqdm bar over path rows.

        Returns:
            Attributions shaped like the layer's activations, [B, *A] ([B, T, *A] for
            several targets), and the delta when asked for.

        Example:
            >>> import torch
            >>> lin = torch.nn.Linear(3, 4)
            >>> model = torch.nn.Sequential(lin, torch.nn.ReLU(), torch.nn.Linear(4, 1)).eval()
            >>> LayerIntegratedGradients(model, lin).attribute(torch.randn(2, 3)).shape
            torch.Size([2, 4])
        """
        xs, _ = format_inputs(inputs)
        check_n_steps(n_steps, method)
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
        act_x = self._activations(xs, args, rows0, to_input)
        act_b = self._activations(full_bases, args, rows0, to_input)
        rows = batch_rows((act_x,), internal_batch_size, memory_budget)

        def layer_call(flat: tuple[Tensor, ...], s: int, e: int, reps: int) -> Tensor:
            pts = flat[0]

            def fwd_hook(mod, inp, out):
                return pts

            def pre_hook(mod, inp):
                return (pts, *inp[1:]) if isinstance(inp, tuple) else pts

            handle = (
                self.layer.register_forward_pre_hook(pre_hook)
                if to_input
                else self.layer.register_forward_hook(fwd_hook)
            )
            try:
                model_in = tuple(x[s:e].repeat_interleave(reps, 0) for x in xs)
                return self.forward_func(*model_in, *chunk_args(args, B, s, e, reps))
            finally:
                handle.remove()

        attrs, _ = integrate_paths(
            self.forward_func,
            (act_x,),
            (act_b.unsqueeze(1),),
            args,
            targets,
            method,
            n_steps,
            rows,
            multiply_by_inputs=self._multiply_by_inputs,
            show_progress=show_progress,
            desc="LayerIntegratedGradients",
            layer_call=layer_call,
        )
        out = finish(attrs, targets.multi)[0]
        if not return_convergence_delta:
            return out
        delta = convergence_delta(self.forward_func, attrs, xs, bases, args, targets, rows0)
        return out, (delta if targets.multi else delta[:, 0])
