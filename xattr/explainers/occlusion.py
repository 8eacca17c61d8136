"""Occlusion: Captum's sliding-window ablation, with windows batched."""

from __future__ import annotations

import math
from typing import Any, Union, cast

import torch
from torch import Tensor

from xattr._core.attribution import PerturbationAttribution
from xattr._core.batching import expand_additional_args, rows_per_batch
from xattr._core.inputs import (
    BaselineType,
    TensorOrTupleGeneric,
    attribution_dtype,
    format_baselines,
    format_inputs,
    format_output,
    promotion_note,
)
from xattr._core.model import promotion_errors, run_model, warn_if_training
from xattr._core.progress import expect_rows, with_row_progress
from xattr._core.removal import Removal, check_removal
from xattr._core.targets import Targets, TargetType
from xattr._core.validation import ArgumentError, per_eval
from xattr.explainers.registry import register

ShapeArg = Union[tuple[int, ...], tuple[tuple[int, ...], ...]]
StrideArg = Union[None, int, tuple[int, ...], tuple[Union[int, tuple[int, ...]], ...]]


def _per_input(value: Any, n_inputs: int, name: str, allow_int: bool) -> tuple:
    """Captum's per-input formatting of ``sliding_window_shapes`` / ``strides``."""
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n_inputs
    if n_inputs == 1 and not (isinstance(value, tuple) and len(value) == 1):
        value = (value,)
    if isinstance(value, list):
        value = tuple(value)
    if not isinstance(value, tuple) or len(value) != n_inputs:
        raise ArgumentError(f"{name}: expected one entry per input ({n_inputs}), got {value!r}")
    if not allow_int and value and isinstance(value[0], int):
        value = (value,)
    return value


def _dims(value: Any, rank: int, name: str, i: int, allow_int: bool) -> tuple[int, ...]:
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * rank
    if isinstance(value, list):
        value = tuple(value)
    if (
        not isinstance(value, tuple)
        or len(value) != rank
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ArgumentError(
            f"{name}[{i}]: expected {'an int or ' if allow_int else ''}a tuple of {rank} ints "
            f"(one per non-batch dimension), got {value!r}"
        )
    if any(v < (1 if allow_int else 0) for v in value):  # a window may be 0 long (below)
        raise ArgumentError(f"{name}[{i}]: entries must be >= 1, got {value}")
    return value


def _windows(
    idx: Tensor,
    shape: tuple[int, ...],
    window: tuple[int, ...],
    stride: tuple[int, ...],
    counts: tuple[int, ...],
) -> Tensor:
    """bool [len(idx), E]: window w (first dimension varying fastest, as in Captum),
    starting at ``(w_k * stride_k)`` and clipped to the input."""
    c = idx.shape[0]
    out = torch.ones((c, *shape), dtype=torch.bool, device=idx.device)
    rem = idx.clone()
    rank = len(shape)
    for k in range(rank):
        pos = (rem % counts[k]) * stride[k]
        rem = rem // counts[k]
        ar = torch.arange(shape[k], device=idx.device)
        m = (ar[None] >= pos[:, None]) & (ar[None] < pos[:, None] + window[k])  # [c, D_k]
        view = [c] + [1] * rank
        view[1 + k] = shape[k]
        out &= m.view(view)
    return out.reshape(c, -1)


@register(captum=True)
class Occlusion(PerturbationAttribution):
    """Sliding-window occlusion (Captum's ``Occlusion``).

    For each window position w (per input; windows of one input never touch the
    others) the game value is ``v(not w) = f(x with the window set to the baseline)``
    (``BaselineRemoval``, default) or its mean over the rows of a background set
    (``MarginalRemoval(background)``: the window takes each row's values). Each
    element's attribution is ``f(x) - v(not w)`` averaged over the windows covering
    it. Windows overlap, so they are not a feature partition: perturbed batches are
    built with ``torch.where`` from a [windows, elements] matrix, many windows per
    forward call. ``ConditionalRemoval`` is not supported (a surrogate's mask is
    over features, which windows are not).

    Example:
        >>> import torch
        >>> occ = Occlusion(lambda x: x.sum(1))
        >>> occ.attribute(torch.tensor([[1.0, 2.0, 3.0]]), sliding_window_shapes=(2,)).tolist()
        [[3.0, 4.0, 5.0]]
    """

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        sliding_window_shapes: ShapeArg,
        strides: StrideArg = None,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        perturbations_per_eval: int = 1,
        show_progress: bool | None = None,
        *,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
    ) -> TensorOrTupleGeneric:
        """Attributions shaped like ``inputs``.

        Args:
            inputs: [B, *F] tensor or a tuple of them.
            sliding_window_shapes: a tuple of len(F) ints per input (a tuple of
                tuples for tuple inputs).
            strides: None (1), an int, a tuple of len(F) ints, or one of these per input.
            baselines, target, additional_forward_args: as in :class:`FeatureAblation`.
            perturbations_per_eval: Captum's batching argument (default 1): each
                forward call holds at least this many windows of the whole batch, more
                where xattr's own choice is larger, never more than ``memory_budget``
                allows (README, "Batching"). Results do not depend on it.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.
            removal: ``BaselineRemoval()`` (default) or ``MarginalRemoval(background)``.
            memory_budget: bytes (or "2GB") for one forward call; given (here or with
                ``xattr.set_memory_budget``) it sizes the calls; default 1 GiB, under
                which xattr picks the size it measured fastest.

        Returns:
            [B, *F] per input ([B, T, *F] for several targets), in the input's dtype
            (Captum returns float32 here even for float64 inputs).
        """
        ppe = per_eval(perturbations_per_eval)
        warn_if_training(self.forward_func)
        xs, is_tuple = format_inputs(inputs)
        n_in = len(xs)
        shapes = _per_input(sliding_window_shapes, n_in, "sliding_window_shapes", False)
        strides_t = (1,) * n_in if strides is None else _per_input(strides, n_in, "strides", True)
        windows, steps, counts = [], [], []
        for i, x in enumerate(xs):
            rank = x.dim() - 1
            win = _dims(shapes[i], rank, "sliding_window_shapes", i, False)
            st = _dims(strides_t[i], rank, "strides", i, True)
            feat = tuple(x.shape[1:])
            for k in range(rank):
                if win[k] == 0 and feat[k] != 0:  # only an empty dimension takes no window
                    raise ArgumentError(
                        f"sliding_window_shapes[{i}]: entries must be >= 1, got {win}"
                    )
                if win[k] > feat[k]:
                    raise ArgumentError(
                        f"sliding_window_shapes[{i}]: {win} exceeds the input dimensions {feat}"
                    )
                if feat[k] != win[k] and st[k] > win[k]:
                    raise ArgumentError(
                        f"strides[{i}]: {st} cannot be larger than the window {win}"
                    )
            windows.append(win)
            steps.append(st)
            counts.append(tuple(math.ceil((f - w) / s) + 1 for f, w, s in zip(feat, win, st)))
        removal = check_removal(removal)
        if removal.reads_masks:
            raise TypeError(
                "removal: Occlusion supports BaselineRemoval() and MarginalRemoval(background), "
                f"got {type(removal).__name__}"
            )
        B = xs[0].shape[0]
        targets = Targets(target, B)
        repl = removal.prepare(xs, format_baselines(baselines, xs))
        N = removal.copies(repl)
        note = promotion_note(xs, repl)  # baselines that change the copies' dtype
        per_copy = N != 1  # every example meets each of the N replacement rows
        rows = rows_per_batch(xs, ppe, memory_budget, unit=B * N)  # a window of the batch: B N rows
        per_chunk = max(1, rows // max(1, B * N))
        f = self.forward_func
        args = additional_forward_args

        output_dtype = torch.get_default_dtype()  # the model's, once it has run

        def forward(pert: tuple[Tensor, ...], per_example: int) -> Tensor:
            nonlocal output_dtype
            n = pert[0].shape[0]
            with torch.no_grad(), promotion_errors(note if pert is not xs else None):
                out = run_model(f, pert, expand_additional_args(args, B, per_example), n)
            output_dtype = out.dtype
            return targets.select(out, per_example).to(torch.float64)

        total_w = sum(math.prod(c) for c in counts)
        expect_rows(B + B * N * total_w)  # x itself, then N copies of every window
        v_full = forward(xs, 1)  # [B, T]
        results = []
        for i, x in enumerate(xs):
            feat = tuple(x.shape[1:])
            E = math.prod(feat)
            xf = x.reshape(B, 1, 1, E)
            rf = repl[i].reshape(1, N, 1, E) if per_copy else repl[i].reshape(len(repl[i]), 1, 1, E)
            W = math.prod(counts[i])
            acc = torch.zeros((B, v_full.shape[1], E), dtype=torch.float64, device=x.device)
            cover = torch.zeros(E, dtype=torch.float64, device=x.device)
            for w0 in range(0, W, per_chunk):
                idx = torch.arange(w0, min(W, w0 + per_chunk), device=x.device)
                c = idx.shape[0]
                win = _windows(idx, feat, windows[i], steps[i], counts[i])  # [c, E]
                pert_i = torch.where(win[None, None], rf, xf)  # [B, N, c, E]
                pert_i = pert_i.expand(B, N, c, E).reshape(B * N * c, *feat)
                pert = tuple(
                    pert_i
                    if j == i
                    else xj.reshape(B, 1, *xj.shape[1:])
                    .expand(B, N * c, *xj.shape[1:])
                    .reshape(B * N * c, *xj.shape[1:])
                    for j, xj in enumerate(xs)
                )
                v = forward(pert, N * c)
                v = v.view(B, N, c, v.shape[-1]).mean(1)  # [B, c, T]
                diff = v_full.unsqueeze(1) - v
                wd = win.to(torch.float64)
                acc += torch.einsum("bct,ce->bte", diff, wd)
                cover += wd.sum(0)
            a = (acc / cover).reshape(B, acc.shape[1], *feat)
            a = a.to(attribution_dtype(x, output_dtype))
            results.append(a if targets.multi else a[:, 0])
        return cast(TensorOrTupleGeneric, format_output(tuple(results), is_tuple))
