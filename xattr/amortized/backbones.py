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
    channel), cheap next to the models it explains: a patch-embedding stem (a
    convolution of ``channels[0]`` filters whose kernel equals its stride p =
    max(1, min(H, W) // 7), so that about 7 x 7 patches remain; the image is padded
    with zeros to a multiple of p; images under 14 pixels, p = 1, get a 3 x 3
    convolution of stride 1 instead, so that neighbouring pixels still meet), then a
    3 x 3 convolution of stride 2 per further
    width in ``channels`` (ReLU after each), adaptive average pooling to at most
    ``pool`` x ``pool``, then a linear head with ``n_out`` outputs.

    On 28 x 28 images with the explainer's default channels (8, 16) it costs about
    0.4 of a forward pass of bench_explainers' strided two-layer CNN at batch 256
    (bench/bench_amortized.py), and FastSHAP trains it to the loss of the earlier
    full-resolution (32, 64) backbone in the same epochs.

    Example:
        >>> import torch
        >>> cnn((1, 8, 8), 12, (8, 16))(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 12])
        >>> cnn((3, 30, 28), 5, (4,))(torch.zeros(2, 3, 30, 28)).shape
        torch.Size([2, 5])
    """
    if len(input_shape) not in (2, 3):
        raise ValueError(
            "input_shape: the 'cnn' backbone needs images, (C, H, W) or (H, W), "
            f"got {tuple(input_shape)}"
        )
    layers: list[nn.Module] = []
    if len(input_shape) == 2:
        layers.append(nn.Unflatten(1, (1, input_shape[0])))  # [B, H, W] -> [B, 1, H, W]
    c_in = 1 if len(input_shape) == 2 else input_shape[0]
    H, W = input_shape[-2:]
    p = max(1, min(H, W) // 7)
    if H % p or W % p:
        layers.append(nn.ZeroPad2d((0, -W % p, 0, -H % p)))
    H, W = -(-H // p), -(-W // p)
    for k, c in enumerate(channels):
        if k == 0:  # patches of p x p; on small images (p = 1) a 3 x 3 convolution
            conv = nn.Conv2d(c_in, c, p, stride=p) if p > 1 else nn.Conv2d(c_in, c, 3, padding=1)
            layers += [conv, nn.ReLU()]
        else:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.ReLU()]
            H, W = (H + 1) // 2, (W + 1) // 2
        c_in = c
    if H > pool or W > pool:
        layers.append(nn.AdaptiveAvgPool2d((min(H, pool), min(W, pool))))
        H, W = min(H, pool), min(W, pool)
    layers += [nn.Flatten(), nn.Linear(c_in * H * W, n_out)]
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
