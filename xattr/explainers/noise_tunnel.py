"""NoiseTunnel: SmoothGrad, SmoothGrad-squared and VarGrad over any gradient explainer."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from xattr._core import validation
from xattr._core.batching import expand_additional_args, repeat_per_example
from xattr._core.features import LAYOUT_ATTRIBUTE, mark_per_element
from xattr._core.inputs import TensorOrTuple, format_inputs, format_output
from xattr._core.progress import row_progress
from xattr.explainers._gradient import float_inputs
from xattr.explainers.registry import register

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def _expand_target(target: Any, B: int, n: int) -> Any:
    """Per-example targets repeated n times example-major; shared targets unchanged."""
    if isinstance(target, Tensor) and target.numel() > 1:
        return target.repeat_interleave(n, dim=0)
    if isinstance(target, list) and len(target) == B:
        return [t for t in target for _ in range(n)]
    return target


def _distribution_rows(baselines: Any) -> int | None:
    """N, the rows of a baseline distribution to draw from (None: nothing to draw)."""
    bl = baselines if isinstance(baselines, (tuple, list)) else (baselines,)
    tensors = [b for b in bl if isinstance(b, Tensor)]
    if not tensors:
        return None
    rows = {b.shape[0] for b in tensors if b.dim() > 0}
    if len(rows) != 1:
        raise ValueError(
            "baselines: a baseline distribution needs the same number of rows in every "
            f"tensor, got {[tuple(b.shape) for b in tensors]}"
        )
    return rows.pop()


def _expand_baselines(baselines: Any, xs: tuple[Tensor, ...], n: int, idx: Tensor | None) -> Any:
    """Baselines of the B * n copies (example-major): the drawn rows ``idx`` of a
    distribution, or the given baselines repeated."""
    if idx is None:
        return _repeat_per_example(baselines, xs, n)
    single = not isinstance(baselines, (tuple, list))
    bl = (baselines,) if single else tuple(baselines)
    out = tuple(b[idx.to(b.device)] if isinstance(b, Tensor) else b for b in bl)
    return out[0] if single else out


def _repeat_per_example(value: Any, xs: tuple[Tensor, ...], n: int) -> Any:
    """Per-example tensors (shaped like their inputs) repeated n times example-major, as
    the noisy inputs are; shared values unchanged."""
    B = xs[0].shape[0]
    if not isinstance(value, (tuple, list)):
        return repeat_per_example(value, B, n, xs[0].dim())
    return tuple(repeat_per_example(v, B, n, x.dim()) for v, x in zip(value, xs))


def _stdevs(stdevs: Any, k: int) -> tuple[float, ...]:
    vals = tuple(stdevs) if isinstance(stdevs, (tuple, list)) else (stdevs,) * k
    if len(vals) != k:
        raise ValueError(f"stdevs: expected one value per input ({k}), got {len(vals)}")
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"stdevs: expected a float or a tuple of floats, got {v!r}")
        if v < 0:
            raise ValueError(f"stdevs: must be >= 0, got {v}")
    return tuple(float(v) for v in vals)


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded by ``seed`` (None draws the seed from torch's
    global generator, so ``torch.manual_seed`` keeps results reproducible)."""
    s = validation.seed(seed)
    return torch.Generator(device=device).manual_seed(s % 2**63)


@register(captum=True)
class NoiseTunnel:
    """Averages an explainer's attributions over noisy copies of the inputs (Captum's
    NoiseTunnel): SmoothGrad, SmoothGrad-squared or VarGrad.

    Args:
        attribution_method: an xattr explainer instance (e.g. ``Saliency(model)``).

    Example:
        >>> import torch
        >>> from xattr.explainers.saliency import Saliency
        >>> nt = NoiseTunnel(Saliency(torch.nn.Linear(3, 2).eval()))
        >>> nt.attribute(torch.randn(4, 3), nt_samples=8, stdevs=0.1, target=0, seed=0).shape
        torch.Size([4, 3])
    """

    def __init__(self, attribution_method: Any) -> None:
        if not hasattr(attribution_method, "attribute"):
            raise TypeError(
                "attribution_method: expected an explainer with an attribute method, got "
                f"{type(attribution_method).__name__}"
            )
        self.attribution_method = attribution_method
        has = getattr(attribution_method, "has_convergence_delta", None)
        self.is_delta_supported = bool(has()) if callable(has) else False

    @property
    def multiplies_by_inputs(self) -> bool:
        return bool(getattr(self.attribution_method, "multiplies_by_inputs", False))

    def has_convergence_delta(self) -> bool:
        return self.is_delta_supported

    def attribute(
        self,
        inputs: TensorOrTuple,
        nt_type: str = "smoothgrad",
        nt_samples: int = 5,
        nt_samples_batch_size: int | None = None,
        stdevs: float | tuple[float, ...] = 1.0,
        draw_baseline_from_distrib: bool = False,
        *,
        seed: int | None = None,
        **kwargs: Any,
    ) -> TensorOrTuple | tuple[TensorOrTuple, Tensor]:
        """Smoothed attributions.

        Args:
            inputs: [B, *F] float tensor or a tuple of them.
            nt_type: "smoothgrad" (mean, default), "smoothgrad_sq" (mean of squares) or
                "vargrad" (variance).
            nt_samples: noisy copies per example (default 5).
            nt_samples_batch_size: copies per example handled per call of the wrapped
                explainer (default: all).
            stdevs: standard deviation of the gaussian noise, one float or one per input
                (default 1.0).
            draw_baseline_from_distrib: draw each copy's baseline from the rows of
                ``baselines`` (one joint row for all inputs).
            seed: seed of the noise; None draws it from torch's global generator.
            **kwargs: passed to the wrapped explainer's ``attribute`` (target, baselines,
                additional_forward_args, n_steps, return_convergence_delta, ...).

        Returns:
            Attributions in the wrapped explainer's form, plus the deltas
            [B * nt_samples] (example-major) when asked for. The copies are drawn one
            at a time and their attributions summed in float64 in copy order, so the
            result does not depend on ``nt_samples_batch_size`` (Captum's deltas come
            partition by partition when it splits the copies).

        Example:
            >>> import torch
            >>> from xattr.explainers.integrated_gradients import IntegratedGradients
            >>> nt = NoiseTunnel(IntegratedGradients(torch.nn.Linear(3, 1).eval()))
            >>> nt.attribute(torch.randn(2, 3), nt_type="vargrad", n_steps=4, seed=1).shape
            torch.Size([2, 3])
        """
        xs, is_tuple = format_inputs(inputs)
        float_inputs(xs)
        gen = make_generator(seed, xs[0].device)
        # one bar for all the wrapped explainer's calls (its show_progress decides)
        desc = "NoiseTunnel attribution"
        with row_progress(None, kwargs.get("show_progress"), desc):
            return self._attribute(
                gen,
                xs,
                is_tuple,
                nt_type,
                nt_samples,
                nt_samples_batch_size,
                stdevs,
                draw_baseline_from_distrib,
                kwargs,
            )

    def _attribute(
        self,
        gen: torch.Generator,
        xs: tuple[Tensor, ...],
        is_tuple: bool,
        nt_type: str,
        nt_samples: int,
        nt_samples_batch_size: int | None,
        stdevs: Any,
        draw: bool,
        kwargs: dict,
    ) -> Any:
        if nt_type not in NT_TYPES:
            raise ValueError(f"nt_type: expected one of {', '.join(NT_TYPES)}, got {nt_type!r}")
        nt_samples = validation.int_arg("nt_samples", nt_samples, minimum=1)
        if nt_samples_batch_size is None:
            per = nt_samples
        else:
            per = min(
                nt_samples,
                validation.int_arg("nt_samples_batch_size", nt_samples_batch_size, minimum=1),
            )
        sds = _stdevs(stdevs, len(xs))
        want_delta = bool(kwargs.get("return_convergence_delta", False))
        if want_delta and not self.is_delta_supported:
            raise ValueError(
                "return_convergence_delta: the wrapped explainer has no convergence delta"
            )
        B = xs[0].shape[0]
        N = _distribution_rows(kwargs.get("baselines")) if draw else None
        # float64 sums over the copies, one copy at a time in copy order, and the random
        # draws made copy by copy (every input's noise, then the baseline rows): the
        # result does not depend on nt_samples_batch_size
        sums: list[Tensor] | None = None
        sqs: list[Tensor] | None = None
        deltas: list[Tensor] = []
        attr_tuple = is_tuple
        done = 0
        while done < nt_samples:
            n = min(per, nt_samples - done)
            noise: list[list[Tensor]] = [[] for _ in xs]
            rows: list[Tensor] = []
            for _ in range(n):
                for i, (x, sd) in enumerate(zip(xs, sds)):
                    if sd > 0:
                        shape = (B, *x.shape[1:])
                        z = torch.randn(shape, generator=gen, device=gen.device, dtype=x.dtype)
                        noise[i].append(z)
                if N is not None:
                    rows.append(torch.randint(0, N, (B,), generator=gen, device=gen.device))
            noisy = tuple(
                x.repeat_interleave(n, dim=0)
                + (
                    sd * torch.stack(z, 1).reshape(B * n, *x.shape[1:]).to(x.device)
                    if sd > 0
                    else 0
                )
                for x, sd, z in zip(xs, sds, noise)
            )
            kw = dict(kwargs)
            if "target" in kw:
                kw["target"] = _expand_target(kw["target"], B, n)
            if kw.get("additional_forward_args") is not None:
                kw["additional_forward_args"] = expand_additional_args(
                    kw["additional_forward_args"], B, n
                )
            if "baselines" in kw:
                idx = torch.stack(rows, 1).reshape(B * n) if rows else None
                kw["baselines"] = _expand_baselines(kw["baselines"], xs, n, idx)
            if kw.get("feature_mask") is not None:  # per-example masks follow the copies
                kw["feature_mask"] = _repeat_per_example(kw["feature_mask"], xs, n)
            res = self.attribution_method.attribute(noisy if is_tuple else noisy[0], **kw)
            if want_delta:
                res, d = res
                deltas.append(d.reshape(B, n, *d.shape[1:]))
            attr_tuple = isinstance(res, tuple)
            parts = res if attr_tuple else (res,)
            per_element = all(getattr(p, LAYOUT_ATTRIBUTE, None) == "element" for p in parts)
            parts = tuple(p.reshape(B, n, *p.shape[1:]) for p in parts)
            if sums is None:
                sums = [p.new_zeros(p[:, 0].shape, dtype=torch.float64) for p in parts]
                sqs = [s.clone() for s in sums]
            for c in range(n):
                for i, p in enumerate(parts):
                    v = p[:, c].to(torch.float64)
                    cast(list, sums)[i] += v
                    cast(list, sqs)[i] += v * v
            done += n
        mean = [s / nt_samples for s in cast(list, sums)]
        msq = [s / nt_samples for s in cast(list, sqs)]
        if nt_type == "smoothgrad":
            out = mean
        elif nt_type == "smoothgrad_sq":
            out = msq
        else:
            out = [q - m * m for m, q in zip(mean, msq)]
        result = tuple(o.to(p.dtype) for o, p in zip(out, parts))
        if per_element:  # averages of per-element maps are per-element maps
            mark_per_element(result)
        result = format_output(result, attr_tuple)
        if want_delta:
            d = torch.cat(deltas, 1)
            return result, d.reshape(B * nt_samples, *d.shape[2:])
        return result
