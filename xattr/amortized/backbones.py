"""The networks an :class:`~xattr.amortized.AmortizedExplainer` trains: one input
[B, *F] -> d attributions for each of C outputs, returned flat as [B, C * d]
(class-major: column c * d + i is feature i of output c)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

BACKBONES = ("mlp", "cnn")


def mlp(input_shape: Sequence[int], n_out: int, hidden: Sequence[int]) -> nn.Sequential:
    """Flatten -> (Linear -> ReLU) per width in ``hidden`` -> Linear(n_out): [B, *F] ->
    [B, n_out]. ``hidden=()`` is one linear map of the flattened input.

    Example:
        >>> import torch
        >>> mlp((3, 4), 10, (16,))(torch.zeros(2, 3, 4)).shape
        torch.Size([2, 10])
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def cnn(
    input_shape: Sequence[int], n_out: int, channels: Sequence[int], pool: int = 4
) -> nn.Sequential:
    """A small convolutional net over images [B, C_in, H, W] (or [B, H, W], one
    channel): a 3 x 3 convolution per width in ``channels`` (ReLU after each; the first
    keeps the resolution, the others halve it), adaptive average pooling to
    ``pool`` x ``pool``, then a linear head with ``n_out`` outputs.

    Example:
        >>> import torch
        >>> cnn((1, 8, 8), 12, (8, 16))(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 12])
    """
    if len(input_shape) not in (2, 3):
        raise ValueError(
            "input_shape: the 'cnn' backbone needs images, (C, H, W) or (H, W), "
            f"got {tuple(input_shape)}"
        )
    layers: list[nn.Module] = []
    if len(input_shape) == 2:
        layers.append(nn.Unflatten(1, (1, *input_shape)))
    c_in = 1 if len(input_shape) == 2 else input_shape[0]
    for k, c in enumerate(channels):
        layers += [nn.Conv2d(c_in, c, 3, stride=1 if k == 0 else 2, padding=1), nn.ReLU()]
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(pool), nn.Flatten(), nn.Linear(c_in * pool * pool, n_out)]
    return nn.Sequential(*layers)
