"""Sanity checks for attributions (Adebayo et al., "Sanity Checks for Saliency Maps", 2018).

:func:`cascading_randomization` re-initialises a model's layers from the output
backwards, one more at each step, recomputes the attributions and reports how
similar they stay to the original ones (SSIM and Spearman rank correlation per
example). An explanation that depends on what the model learned should drift
away quickly; one that stays similar is insensitive to the model's parameters.

:func:`ssim` is the structural similarity index (Wang et al., 2004) for batches
of 2-D maps, as ``skimage.metrics.structural_similarity`` with Gaussian weights.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn

from xattr._core.inputs import TensorOrTuple, format_inputs
from xattr._core.progress import check_show_progress, row_progress
from xattr._core.targets import TargetType
from xattr._core.validation import flag
from xattr.baselines import gaussian_window
from xattr.metrics.agreement import spearman

__all__ = ["RandomizationResult", "cascading_randomization", "ssim"]

# Percentile of the map that scales it to [0, 1] (the paper's grayscale visualisation).
NORM_PERCENTILE = 99.0


# ------------------------------------------------------------------ SSIM
def ssim(
    a: Tensor,
    b: Tensor,
    *,
    data_range: float | None = None,
    sigma: float = 1.5,
    win_size: int | None = None,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Mean structural similarity (SSIM) of each pair of 2-D maps.

    The standard SSIM of Wang et al. (2004): local means, variances and covariance
    under a Gaussian window (sigma 1.5, 11 x 11), constants C1 = (k1 R)^2 and
    C2 = (k2 R)^2 for the data range R, averaged over the positions where the
    window fits inside the map (no padding). This matches
    ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=R)``. Maps with channels, [B, C, H, W],
    get the mean over channels of the per-channel SSIM (skimage's ``channel_axis``).
    Computed in float64.

    Args:
        a: [B, H, W] or [B, C, H, W] float tensor.
        b: the other maps, shaped like ``a``.
        data_range: R, the range of values the maps can take (e.g. 1.0 for maps
            in [0, 1]). Default None: computed per example from the pair, as
            max(a, b) - min(a, b); a pair of identical constant maps (R = 0) then
            has SSIM 1.
        sigma: standard deviation of the Gaussian window, in pixels (default 1.5).
        win_size: odd window side; default None: 2 * int(3.5 * sigma + 0.5) + 1 (11
            for sigma 1.5, as skimage). Must not exceed H or W.
        k1: constant of the luminance term (default 0.01).
        k2: constant of the contrast-structure term (default 0.03).

    Returns:
        [B], in the floating dtype of the pair; 1 for identical maps.

    Example:
        >>> import torch
        >>> from xattr.metrics.sanity import ssim
        >>> x = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> ssim(x, x, data_range=1.0)
        tensor([1., 1.])
        >>> bool((ssim(x, x.flip(-1), data_range=1.0) < 0.5).all())
        True
    """
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    if a.dim() not in (3, 4):
        raise ValueError(f"a: expected [B, H, W] or [B, C, H, W] maps, got shape {tuple(a.shape)}")
    if b.shape != a.shape:
        raise ValueError(f"b: shape {tuple(b.shape)} differs from a's {tuple(a.shape)}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"sigma: expected a positive number, got {sigma!r}")
    if win_size is None:
        win_size = 2 * int(3.5 * sigma + 0.5) + 1
    if isinstance(win_size, bool) or not isinstance(win_size, int):
        raise TypeError(f"win_size: expected an odd int, got {type(win_size).__name__}")
    if win_size < 1 or win_size % 2 == 0:
        raise ValueError(f"win_size: expected an odd positive int, got {win_size}")
    H, W = a.shape[-2:]
    if win_size > min(H, W):
        raise ValueError(
            f"win_size: the {win_size} x {win_size} window does not fit the {H} x {W} maps; "
            "give a smaller win_size (odd) or larger maps"
        )
    dtype = torch.promote_types(a.dtype, b.dtype)
    x = a.detach().to(torch.float64)
    y = b.detach().to(torch.float64)
    B = x.shape[0]
    if data_range is None:
        hi = torch.maximum(x.reshape(B, -1).amax(dim=1), y.reshape(B, -1).amax(dim=1))
        lo = torch.minimum(x.reshape(B, -1).amin(dim=1), y.reshape(B, -1).amin(dim=1))
        R = hi - lo
    else:
        if isinstance(data_range, bool) or not isinstance(data_range, (int, float)):
            raise TypeError(f"data_range: expected a number, got {type(data_range).__name__}")
        if not data_range > 0:
            raise ValueError(f"data_range: expected a positive number, got {data_range}")
        R = torch.full((B,), float(data_range), dtype=torch.float64, device=x.device)
    x = x.reshape(-1, 1, H, W)  # one row per (example, channel)
    y = y.reshape(-1, 1, H, W)
    C = x.shape[0] // B
    w = gaussian_window(win_size, float(sigma), torch.float64, x.device)
    stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    stats = nn.functional.conv2d(stats, w.view(1, 1, -1, 1).expand(5, 1, -1, 1), groups=5)
    stats = nn.functional.conv2d(stats, w.view(1, 1, 1, -1).expand(5, 1, 1, -1), groups=5)
    ux, uy, uxx, uyy, uxy = stats.unbind(dim=1)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1 = ((k1 * R) ** 2).repeat_interleave(C).view(-1, 1, 1)
    c2 = ((k2 * R) ** 2).repeat_interleave(C).view(-1, 1, 1)
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    s = (num / den).mean(dim=(1, 2)).view(B, C).mean(dim=1)
    # R = 0 only for identical constant maps (0 / 0 above).
    return torch.where(R > 0, s, torch.ones_like(s)).to(dtype)


# ------------------------------------------------------------------ randomisation
class RandomizationResult(NamedTuple):
    """What :func:`cascading_randomization` returns.

    Attributes:
        layers: the randomised layers' names, in randomisation order (K of them).
        ssim: [K + 1, B]; row k compares the attributions after randomising
            ``layers[:k]`` with the original ones (row 0, the original model, is 1).
            NaN when the attributions are not image-like.
        spearman: [K + 1, B], likewise for the Spearman rank correlation.
    """

    layers: list[str]
    ssim: Tensor
    spearman: Tensor

    def summary(self) -> dict:
        """Mean SSIM and Spearman over examples at each step (NaNs left out), with the
        steps' layer names."""
        return {
            "layers": ["none", *self.layers],
            "ssim": self.ssim.nanmean(1).tolist(),
            "spearman": self.spearman.nanmean(1).tolist(),
        }

    def plot(self, path: str | os.PathLike) -> None:
        """Write a PNG of the mean (over examples) SSIM and Spearman against the step.

        Uses matplotlib's Agg canvas directly (the global pyplot backend is left alone).

        Args:
            path: file to write (PNG).

        Example:
            >>> import os, tempfile, torch
            >>> from xattr.metrics.sanity import RandomizationResult
            >>> r = RandomizationResult(["fc"], torch.tensor([[1.0], [0.2]]), torch.ones(2, 1))
            >>> path = os.path.join(tempfile.mkdtemp(), "cascade.png")
            >>> r.plot(path)
            >>> os.path.getsize(path) > 0
            True
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        steps = list(range(len(self.layers) + 1))
        fig = Figure(figsize=(max(5.0, 0.5 * len(steps) + 2), 4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for values, label in ((self.ssim, "SSIM"), (self.spearman, "Spearman")):
            mean = torch.nanmean(values.double(), dim=1)
            if not bool(torch.isnan(mean[1:]).all()):
                ax.plot(steps, mean.tolist(), marker="o", label=label)
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.set_xticks(steps)
        ax.set_xticklabels(["original", *self.layers], rotation=45, ha="right")
        ax.set_xlabel("randomised up to layer (from the output)")
        ax.set_ylabel("similarity to the original (mean over examples)")
        ax.set_ylim(-1.05, 1.05)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, format="png")


def _owns_parameters(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


def _layer_names(model: nn.Module, layers: Sequence[str] | None) -> list[str]:
    """The layers to randomise, from the output backwards."""
    modules = dict(model.named_modules())
    if layers is None:
        names = [n for n, m in modules.items() if _owns_parameters(m)]
        if not names:
            raise ValueError("layers: the model has no module with parameters to randomise")
        return names[::-1]
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)):
        raise TypeError(f"layers: expected a list of module names, got {type(layers).__name__}")
    if not layers:
        raise ValueError("layers: expected at least one module name, got an empty list")
    available = [n for n, m in modules.items() if next(m.parameters(), None) is not None]
    for name in layers:
        if not isinstance(name, str):
            raise TypeError(f"layers: expected module names (str), got {type(name).__name__}")
        if name not in modules:
            raise ValueError(
                f"layers: the model has no module named {name!r}; "
                f"modules with parameters: {available}"
            )
        if name not in available:
            raise ValueError(f"layers: module {name!r} has no parameters to randomise")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers: names must be distinct, got {list(layers)}")
    return list(layers)


def _randomize(module: nn.Module, seed: int) -> None:
    """Re-initialise every parameter under ``module`` from a seeded random state.

    Modules with ``reset_parameters()`` (most torch layers) take their default
    initialisation; the parameters of other modules are drawn from
    N(0, s^2) with s the parameter's own standard deviation (0.01 when it has a
    single element or is constant). The global RNGs are restored afterwards.
    """
    # Seed only the generators the re-initialisation draws from (torch.manual_seed would
    # also queue a seed for every CUDA device, which fork_rng does not undo).
    devices = sorted({p.device.index for p in module.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.default_generator.manual_seed(seed)
        for i in devices:
            torch.cuda.default_generators[i].manual_seed(seed)
        for m in module.modules():
            if not _owns_parameters(m):
                continue
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
                continue
            for p in m.parameters(recurse=False):
                s = float(p.std()) if p.numel() > 1 else 0.0
                p.normal_(0.0, s if s > 0 and math.isfinite(s) else 0.01)


def _attributions(explain: Callable, model: nn.Module, inputs: Any, target: Any) -> tuple:
    out, _ = format_inputs(explain(model, inputs, target), "explain (its return value)")
    return tuple(t.detach() for t in out)


def _image_map(attributions: tuple[Tensor, ...]) -> Tensor | None:
    """The paper's grayscale map [B, H, W] in [0, 1], or None when not image-like.

    |attributions| summed over channels ([B, C, H, W]; [B, H, W] as is), then per
    example (m - min) / (p99 - min) clipped to [0, 1], p99 the 99th percentile
    (linear interpolation, as numpy); the maximum replaces p99 when they coincide
    with the minimum, and a constant map becomes all zeros.
    """
    if len(attributions) != 1 or attributions[0].dim() not in (3, 4):
        return None
    m = attributions[0].abs().double()
    if m.dim() == 4:
        m = m.sum(dim=1)
    B = m.shape[0]
    flat = torch.sort(m.reshape(B, -1), dim=1).values
    pos = (flat.shape[1] - 1) * NORM_PERCENTILE / 100
    lo, frac = math.floor(pos), pos - math.floor(pos)
    hi = min(lo + 1, flat.shape[1] - 1)
    vmax = flat[:, lo] + (flat[:, hi] - flat[:, lo]) * frac
    vmin, top = flat[:, 0], flat[:, -1]
    vmax = torch.where(vmax > vmin, vmax, top)
    scale = torch.where(vmax > vmin, vmax - vmin, torch.ones_like(vmax))
    return ((m - vmin.view(B, 1, 1)) / scale.view(B, 1, 1)).clamp(0, 1)


def cascading_randomization(
    model: nn.Module,
    explain: Callable[[nn.Module, Any, TargetType], TensorOrTuple],
    inputs: Any,
    target: TargetType = None,
    layers: Sequence[str] | None = None,
    seed: int = 0,
    show_progress: bool | None = None,
    *,
    absolute: bool = True,
    win_size: int | None = None,
) -> RandomizationResult:
    """Cascading model-parameter randomisation test (Adebayo et al., 2018).

    On a deep copy of ``model`` (the model itself is never modified), step k
    re-initialises ``layers[k - 1]`` on top of the k - 1 layers before it, so that
    after step k the k layers closest to the output are random; the attributions
    are recomputed with ``explain`` and compared with the original ones.

    Each layer is re-initialised with its modules' ``reset_parameters()`` (the
    layer's default initialisation, as the paper re-runs the initialisers), or
    N(0, s^2) with s the parameter's standard deviation for modules without one,
    under a random state seeded from ``seed`` and the step (the global RNGs are
    left as they were). The same ``seed`` gives the same result when ``explain``
    is deterministic.

    Similarities, per example:

    - SSIM of the paper's normalised grayscale maps: |attributions| summed over
      channels, scaled per example so that the minimum maps to 0 and the 99th
      percentile to 1, clipped to [0, 1]; :func:`ssim` with ``data_range=1``. Only
      for image-like attributions (one tensor, [B, H, W] or [B, C, H, W]); NaN
      otherwise.
    - Spearman rank correlation (:func:`xattr.metrics.agreement.spearman`) over
      every attribution element, of the absolute values (the paper's "absolute
      value" variant, ``absolute=True``) or of the signed ones.

    Args:
        model: the model, an ``nn.Module`` (use ``model.eval()`` first).
        explain: ``explain(model, inputs, target) -> attributions`` ([B, *F] tensor
            or tuple of them), e.g.
            ``lambda m, x, t: xattr.IntegratedGradients(m).attribute(x, target=t)``.
            Called once on ``model`` and once per step on the randomised copy.
        inputs: passed to ``explain`` as they are.
        target: passed to ``explain`` as it is. Note that the target stays fixed
            while the model's prediction may change.
        layers: names (as in ``model.named_modules()``) of the layers to randomise,
            in order, from the output backwards; a block's name randomises every
            parameter under it. Default None: every module that owns parameters
            (every parametrised layer), in reverse registration order, which is
            from the output backwards when modules are registered in forward
            order (as ``nn.Sequential`` does).
        seed: seed of the re-initialisations (default 0).
        show_progress: None (default): a progress bar counting model rows appears once the
            call is projected to take more than about 2 s; True: from the start; False:
            never. One bar per call: calls made inside it count in it. The total: the first
            run's rows times K + 1.
        absolute: Spearman of |attributions| (default True) or of the signed values.
        win_size: SSIM window side (odd; default 11), smaller for maps under 11 x 11.

    Returns:
        :class:`RandomizationResult` with ``layers`` (K names), ``ssim`` and
        ``spearman`` [K + 1, B] (row 0, the original model, is exactly 1), and
        ``plot(path)`` for a PNG of the mean curves.

    Example:
        >>> import torch
        >>> from xattr import Saliency
        >>> from xattr.metrics.sanity import cascading_randomization
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 12 * 12, 3)).eval()
        >>> explain = lambda m, x, t: Saliency(m).attribute(x, target=t)
        >>> result = cascading_randomization(model, explain, torch.randn(2, 1, 12, 12), target=0)
        >>> result.layers
        ['3', '0']
        >>> result.ssim.shape, result.spearman[0]
        (torch.Size([3, 2]), tensor([1., 1.]))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not callable(explain):
        raise TypeError(f"explain: expected a callable, got {type(explain).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    check_show_progress(show_progress)
    flag("absolute", absolute)
    names = _layer_names(model, layers)
    step_seeds = torch.randint(
        0, 2**62, (len(names),), generator=torch.Generator().manual_seed(seed)
    ).tolist()

    with row_progress(None, show_progress, "cascading randomization") as bar:
        first = bar.n
        original = _attributions(explain, model, inputs, target)
        first = bar.n - first  # the model rows of one run
        map0 = _image_map(original)
        if map0 is not None:
            ssim(map0, map0, data_range=1.0, win_size=win_size)  # checks the window early
        B = original[0].shape[0]
        dtype = original[0].dtype if original[0].is_floating_point() else torch.float32
        ssims = [torch.ones(B, dtype=dtype)]
        spearmans = [torch.ones(B, dtype=dtype)]
        orig_rank = tuple(t.abs() for t in original) if absolute else original

        randomized = copy.deepcopy(model)
        # every randomised model costs what the original did
        with row_progress(first * len(names) or None, show_progress, ""):
            for name, step_seed in zip(names, step_seeds):
                _randomize(randomized.get_submodule(name), step_seed)
                attr = _attributions(explain, randomized, inputs, target)
                if [t.shape for t in attr] != [t.shape for t in original]:
                    raise ValueError(
                        f"explain: returned shapes {[tuple(t.shape) for t in attr]} after "
                        f"randomising {name!r}, {[tuple(t.shape) for t in original]} before"
                    )
                maps = _image_map(attr)
                if maps is None:
                    ssims.append(torch.full((B,), math.nan, dtype=dtype))
                else:
                    # the maps of the original model exist too (the same shapes)
                    score = ssim(cast(Tensor, map0), maps, data_range=1.0, win_size=win_size)
                    ssims.append(score.cpu().to(dtype))
                ranked = tuple(t.abs() for t in attr) if absolute else attr
                spearmans.append(spearman(orig_rank, ranked).cpu().to(dtype))
    return RandomizationResult(names, torch.stack(ssims), torch.stack(spearmans))
