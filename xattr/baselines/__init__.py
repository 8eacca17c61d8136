"""Reference inputs ("baselines") that explainers and metrics replace features with.

A number or a tensor works everywhere Captum takes ``baselines``; the functions here
build the data-dependent ones: a Gaussian blur of each image, each example's
per-channel mean, uniform noise, the nearest training sample of a target class, and
GANMEX's counterfactuals G(x, c) (:mod:`xattr.baselines.ganmex`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from xattr._core import validation
from xattr.baselines.ganmex import GANMEX, CounterfactualWarning

__all__ = [
    "GANMEX",
    "CounterfactualWarning",
    "blur",
    "channel_mean",
    "gaussian_window",
    "nearest_of_class",
    "resolve",
    "uniform",
]

NAMED = ("blur", "mean")


def gaussian_window(
    size: int, sigma: float, dtype: torch.dtype = torch.float64, device: Any = None
) -> Tensor:
    """A normalised 1-D Gaussian window of ``size`` taps centred on the middle: [size].

    Example:
        >>> [round(v, 4) for v in gaussian_window(3, 1.0).tolist()]
        [0.2741, 0.4519, 0.2741]
    """
    r = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    k = torch.exp(-(r**2) / (2 * sigma**2))
    return (k / k.sum()).to(dtype)


def blur(inputs: Tensor, sigma: float = 5.0, kernel_size: int | None = None) -> Tensor:
    """Each image blurred by a Gaussian over its last two dimensions.

    Args:
        inputs: [B, C, H, W] or [B, H, W] float images.
        sigma: standard deviation in pixels (default 5.0, a strong blur that removes
            most detail of a 28 x 28 digit while keeping its mean intensity).
        kernel_size: odd window size; default ``2 * ceil(3 * sigma) + 1``, at most the
            image's odd size. Borders are reflected (replicated when the image is
            smaller than the window's half-width).

    Returns:
        A tensor shaped like ``inputs`` (a blurred copy; per-channel means are kept up
        to the border handling).

    Example:
        >>> import torch
        >>> x = torch.zeros(1, 1, 9, 9); x[0, 0, 4, 4] = 1.0
        >>> b = blur(x, sigma=1.0)
        >>> b.shape, round(float(b.sum()), 4), bool(b.max() < 0.2)
        (torch.Size([1, 1, 9, 9]), 1.0, True)
    """
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
        raise TypeError("inputs: expected a float tensor of images")
    if inputs.dim() not in (3, 4):
        raise ValueError(
            f"inputs: expected [B, C, H, W] or [B, H, W] images, got {tuple(inputs.shape)}"
        )
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"sigma: expected a number > 0, got {sigma!r}")
    x = inputs if inputs.dim() == 4 else inputs.unsqueeze(1)
    B, C, H, W = x.shape
    if kernel_size is None:
        kernel_size = 2 * math.ceil(3 * sigma) + 1
        kernel_size = min(kernel_size, 2 * ((max(H, W) - 1) // 2) + 1)
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
        raise ValueError(f"kernel_size: expected an odd int >= 1, got {kernel_size!r}")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: expected an odd int >= 1, got {kernel_size}")
    k = gaussian_window(kernel_size, float(sigma), x.dtype, x.device)
    p = kernel_size // 2
    mode = "reflect" if p < H and p < W else "replicate"
    y = F.pad(x.reshape(B * C, 1, H, W), (p, p, p, p), mode=mode)
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    y = F.conv2d(y, k.view(1, 1, -1, 1))
    return y.view(B, C, H, W).reshape(inputs.shape)


def channel_mean(inputs: Tensor) -> Tensor:
    """Each example's mean over everything but its channels, broadcast back.

    Args:
        inputs: [B, C, *S] float tensor (images: the per-channel mean colour); for
            [B, F] inputs, the mean of each example's F values.

    Returns:
        A tensor shaped like ``inputs``.

    Example:
        >>> import torch
        >>> channel_mean(torch.tensor([[1.0, 3.0]])).tolist()
        [[2.0, 2.0]]
    """
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
        raise TypeError("inputs: expected a float tensor")
    if inputs.dim() < 2:
        raise ValueError(f"inputs: expected [B, ...], got {tuple(inputs.shape)}")
    if inputs.dim() == 2:
        return inputs.mean(1, keepdim=True).expand_as(inputs).clone()
    dims = tuple(range(2, inputs.dim()))
    return inputs.mean(dims, keepdim=True).expand_as(inputs).clone()


def uniform(inputs: Tensor, low: float = 0.0, high: float = 1.0, seed: int = 0) -> Tensor:
    """Uniform noise in [low, high), shaped like ``inputs`` and in its dtype, drawn from
    a CPU generator seeded by ``seed`` (torch's global RNG untouched).

    Example:
        >>> import torch
        >>> u = uniform(torch.zeros(2, 3), -1.0, 1.0, seed=0)
        >>> u.shape, bool((u >= -1).all() and (u < 1).all())
        (torch.Size([2, 3]), True)
    """
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
        raise TypeError("inputs: expected a float tensor")
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name}: expected a finite number, got {v!r}")
    if not low < high:
        raise ValueError(f"high: expected high > low = {low}, got {high}")
    g = torch.Generator().manual_seed(validation.seed(seed))
    u = torch.rand(inputs.shape, generator=g, dtype=torch.float64)
    return (low + u * (high - low)).to(inputs.dtype).to(inputs.device)


def nearest_of_class(inputs: Tensor, target: int | Tensor, data: Tensor, labels: Tensor) -> Tensor:
    """For each input, the row of ``data`` of its target class nearest to it
    (Euclidean distance, computed in float64; ties go to the first row).

    Args:
        inputs: [B, *F].
        target: the class wanted for each input: an int or [B] integer classes.
        data: [N, *F] candidate references (e.g. the training set).
        labels: [N] their classes; every target class must occur.

    Returns:
        [B, *F], rows of ``data``.

    Example:
        >>> import torch
        >>> data = torch.tensor([[0.0], [1.0], [5.0]]); labels = torch.tensor([0, 1, 1])
        >>> nearest_of_class(torch.tensor([[4.0], [0.2]]), 1, data, labels).tolist()
        [[5.0], [1.0]]
    """
    if not isinstance(inputs, Tensor) or not isinstance(data, Tensor):
        raise TypeError("inputs, data: expected tensors")
    if inputs.dim() < 2 or tuple(data.shape[1:]) != tuple(inputs.shape[1:]):
        raise ValueError(
            f"data: expected [N, *F] with inputs' F = {tuple(inputs.shape[1:])}, got "
            f"{tuple(data.shape)}"
        )
    if not isinstance(labels, Tensor) or tuple(labels.shape) != (data.shape[0],):
        raise ValueError(f"labels: expected [N] = [{data.shape[0]}] classes")
    B = inputs.shape[0]
    if isinstance(target, int) and not isinstance(target, bool):
        target = torch.full((B,), target, dtype=torch.int64)
    if not isinstance(target, Tensor) or target.is_floating_point() or target.shape != (B,):
        raise ValueError(f"target: expected an int or [B] = [{B}] integer classes")
    target = target.to(labels.device)
    missing = sorted(set(target.tolist()) - set(labels.tolist()))
    if missing:
        raise ValueError(f"target: no row of data has class {missing[0]}")
    d = torch.cdist(inputs.flatten(1).double(), data.flatten(1).double().to(inputs.device))
    d = d.masked_fill(labels.to(d.device)[None, :] != target.to(d.device)[:, None], math.inf)
    return data[d.argmin(1).to(data.device)].to(inputs.device)


def resolve(baselines: Any, inputs: Tensor | tuple[Tensor, ...], blur_sigma: float = 5.0) -> Any:
    """Captum's baseline forms unchanged, with the named ones built from the inputs:
    ``"blur"`` (:func:`blur` with ``blur_sigma``) and ``"mean"`` (:func:`channel_mean`),
    alone (for every input) or inside a tuple with one entry per input.

    Example:
        >>> import torch
        >>> resolve("mean", torch.tensor([[1.0, 3.0]])).tolist()
        [[2.0, 2.0]]
        >>> resolve(0.5, torch.zeros(1, 2))
        0.5
    """
    named = isinstance(baselines, str) or (
        isinstance(baselines, tuple) and any(isinstance(b, str) for b in baselines)
    )
    if not named:
        return baselines
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    names = baselines if isinstance(baselines, tuple) else (baselines,) * len(xs)
    if len(names) != len(xs):
        raise ValueError(
            f"baselines: expected {len(xs)} baseline(s), one per input, got {len(names)}"
        )
    out = []
    for b, x in zip(names, xs):
        if isinstance(b, str) and b not in NAMED:
            raise ValueError(f"baselines: expected a number, a tensor, 'blur' or 'mean', got {b!r}")
        out.append(
            blur(x, sigma=blur_sigma) if b == "blur" else channel_mean(x) if b == "mean" else b
        )
    return tuple(out) if isinstance(inputs, tuple) else out[0]
