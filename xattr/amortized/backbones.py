"""The networks an :class:`~xattr.amortized.AmortizedExplainer` trains: one input
[B, *F] -> d attributions for each of C outputs, returned flat as [B, C * d]
(class-major: column c * d + i is feature i of output c)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

BACKBONES = ("mlp", "cnn", "tokens")


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


class TokenHead(nn.Module):
    """Per-token attributions for text over a frozen encoder: token ids [B, T] ->
    ``encoder`` -> states [B, T, E]; each position's state next to the mean state of
    the snippet (its context) goes through an MLP (widths ``hidden``) to ``n_out``
    values per token; the values of the positions of each feature are summed: [B,
    n_out * d], class-major.

    The encoder is not a submodule: it is never trained, not moved by ``.to()`` and not
    in the state dict (pass it again to
    :meth:`~xattr.amortized.AmortizedExplainer.load`); it runs under no_grad.

    Args:
        encoder: token ids [B, T] (int64) -> [B, T, E] (an ``nn.Embedding``, or an
            encoder's hidden states).
        groups: int64 [T]: each position's feature, 0..d-1.
        n_out: values per feature (C).
        hidden: the per-token MLP's hidden widths.

    Example:
        >>> import torch
        >>> head = TokenHead(torch.nn.Embedding(50, 8), torch.arange(6) // 2, 3, (16,))
        >>> head(torch.randint(0, 50, (4, 6))).shape
        torch.Size([4, 9])
    """

    encoder: Callable[[Tensor], Tensor]
    pool: Tensor

    def __init__(
        self,
        encoder: Callable[[Tensor], Tensor],
        groups: Tensor,
        n_out: int,
        hidden: Sequence[int],
    ) -> None:
        super().__init__()
        if not callable(encoder):
            raise TypeError(f"encoder: expected a module or callable, got {type(encoder).__name__}")
        self.__dict__["encoder"] = encoder  # frozen: not a submodule (see the docstring)
        T = groups.numel()
        with torch.no_grad():
            states = encoder(torch.zeros((1, T), dtype=torch.int64))
        if not isinstance(states, Tensor) or states.dim() != 3 or states.shape[:2] != (1, T):
            got = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
            raise ValueError(
                f"encoder: expected token states [B, {T}, E] for ids [B, {T}], got {got}"
            )
        d = int(groups.max()) + 1
        self.n_out, self.d = n_out, d
        # [T, d]: sums the positions of each feature
        self.register_buffer("pool", nn.functional.one_hot(groups, d).float())
        self.head = mlp((2 * states.shape[-1],), n_out, hidden)

    def forward(self, ids: Tensor) -> Tensor:
        with torch.no_grad():
            states = self.encoder(ids)
        states = states.to(self.pool.dtype)
        context = states.mean(1, keepdim=True).expand_as(states)
        per_token = self.head(torch.cat([states, context], -1).flatten(0, 1))
        per_token = per_token.view(ids.shape[0], ids.shape[1], self.n_out)  # [B, T, C]
        return (per_token.transpose(1, 2) @ self.pool).flatten(1)  # [B, C * d]
