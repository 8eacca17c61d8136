"""What the layer explainers share (LayerIntegratedGradients, LayerGradCam): hooks on the
attributed layers and the check that a layer's activations are float tensors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle


def describe(value: Any) -> str:
    """A short description of a (nested) tensor structure: 'tuple(int64 [2, 3], ...)'."""
    if isinstance(value, Tensor):
        return f"{str(value.dtype).replace('torch.', '')} {list(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__}({', '.join(describe(v) for v in value)})"
    return type(value).__name__


def layer_tensors(
    value: Any, what: str, layer: nn.Module, who: str, integer_advice: str
) -> tuple[tuple[Tensor, ...], bool]:
    """A layer's input or output as a tuple of float tensors, and whether it was one
    tensor; a TypeError naming ``who`` (the explainer) and the layer otherwise."""
    single = isinstance(value, Tensor)
    parts = (value,) if single else value
    if isinstance(parts, (tuple, list)) and all(
        isinstance(t, Tensor) and t.is_floating_point() for t in parts
    ):
        return tuple(parts), single
    flat = [value] if single else list(parts) if isinstance(parts, (tuple, list)) else []
    if any(isinstance(t, Tensor) and not t.is_floating_point() for t in flat):
        advice = integer_advice
    elif any(isinstance(t, (tuple, list)) for t in flat):
        advice = (
            "nested tuples (e.g. an LSTM's (output, (h_n, c_n))) are not supported: "
            "attribute a module that returns tensors, e.g. a small nn.Module around the "
            "layer that returns only its output"
        )
    else:
        advice = "attribute a layer whose activations are float tensors"
    raise TypeError(
        f"layer: {who} needs the {what} of {type(layer).__name__} to be "
        f"a float tensor or a tuple of them, got {describe(value)}; {advice}"
    )


def hook_layers(
    layers: Sequence[nn.Module], to_input: bool, pre: Callable, post: Callable
) -> list[RemovableHandle]:
    """Hooks on every layer: ``pre(i, inputs)`` before layer i runs (when attributing its
    inputs), else ``post(i, output)`` after it; a hook's non-None return value replaces
    the layer's inputs / output. Returns the handles (remove them in a ``finally``)."""
    handles = []
    for i, m in enumerate(layers):
        if to_input:
            handles.append(m.register_forward_pre_hook(lambda mod, inp, i=i: pre(i, inp)))
        else:
            handles.append(m.register_forward_hook(lambda mod, inp, out, i=i: post(i, out)))
    return handles
