"""What the gradient explainers share: gradients of the selected outputs with respect to
batches of points (one forward per batch, one backward per target), straight-line path
integration with K baselines per input (Integrated Gradients and its relatives), and
the convergence delta.

Rows are always ordered example-major: row ``b * R + r`` belongs to example ``b``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
from torch import Tensor

from xattr import ops
from xattr.explainers._common import (
    Attribution,
    Targets,
    TargetType,
    TensorOrTuple,
    check_model_output,
    format_baselines,
    format_inputs,
    progress,
    rows_per_batch,
    run_model,
    warn_if_training,
)
from xattr.ops import _checks


def float_inputs(inputs: tuple[Tensor, ...], name: str = "inputs") -> None:
    """Gradient explainers need floating inputs (float32 / float64)."""
    for i, x in enumerate(inputs):
        if x.dtype not in _checks.FLOATS:
            label = name if len(inputs) == 1 else f"{name}[{i}]"
            raise TypeError(
                f"{label}: expected a float32 or float64 tensor, got "
                f"{str(x.dtype).replace('torch.', '')}"
            )
        _checks.finite(name if len(inputs) == 1 else f"{name}[{i}]", x)


def chunk_args(args: tuple, batch: int, start: int, stop: int, reps: int) -> tuple:
    """Examples start..stop of the per-example tensor arguments, each repeated ``reps``
    times example-major; other arguments pass unchanged."""
    out = []
    for a in args:
        if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch:
            a = a[start:stop]
            if reps != 1:
                a = a.repeat_interleave(reps, dim=0)
        out.append(a)
    return tuple(out)


def as_args(args: Any) -> tuple:
    if args is None:
        return ()
    return args if isinstance(args, tuple) else (args,)


def selected(
    forward_func: Callable,
    points: tuple[Tensor, ...],
    args: tuple,
    targets: Targets,
    rows_per_example: int,
    first_example: int,
) -> Tensor:
    """Selected outputs [rows, T] of the model at ``points`` (checked)."""
    out = run_model(forward_func, points, args, points[0].shape[0])
    return _select_checked(out, points[0].shape[0], targets, rows_per_example, first_example)


def _select_checked(
    out: Any, rows: int, targets: Targets, rows_per_example: int, first_example: int
) -> Tensor:
    out = check_model_output(out, rows)
    sel = targets.select(out, rows_per_example, first_example)
    if not targets.multi and sel.shape[1] != 1:
        raise ValueError(
            f"target: selects {sel.shape[1]} outputs per example; give one index per example "
            "(or a list of lists / target='all' for several targets)"
        )
    return sel


def grads_at(
    forward_func: Callable,
    points: tuple[Tensor, ...],
    args: tuple,
    targets: Targets,
    rows_per_example: int,
    first_example: int,
    wrt: tuple[Tensor, ...] | None = None,
) -> tuple[tuple[Tensor, ...], Tensor]:
    """Gradients of each selected output w.r.t. ``wrt`` (default: the points).

    One forward pass, then one backward pass per target. Returns
    (grads: one [rows, T, *F] per tensor, selected outputs [rows, T] detached).
    """
    with torch.enable_grad():
        if wrt is None:
            points = tuple(p.detach().requires_grad_() for p in points)
            wrt = points
        sel = selected(forward_func, points, args, targets, rows_per_example, first_example)
        return _grads_of(sel, wrt)


def outputs_at(
    forward_func: Callable,
    points: tuple[Tensor, ...],
    args: tuple,
    targets: Targets,
    rows: int,
    bar: Any = None,
) -> Tensor:
    """Selected outputs [B, T] at one point per example, in batches of ``rows``
    (``bar``: a progress bar advanced by the rows done)."""
    B = points[0].shape[0]
    parts = []
    with torch.no_grad():
        for s in range(0, max(B, 1), rows):  # an empty batch: one empty call (the shapes)
            e = min(B, s + rows)
            pts = tuple(p[s:e] for p in points)
            parts.append(selected(forward_func, pts, chunk_args(args, B, s, e, 1), targets, 1, s))
            if bar is not None:
                bar.update(e - s)
    return torch.cat(parts, 0)


def batch_rows(
    inputs: tuple[Tensor, ...],
    internal_batch_size: int | None,
    memory_budget: int | str | None,
) -> int:
    return rows_per_batch(inputs, internal_batch_size, memory_budget, name="internal_batch_size")


def expand_base(base: Tensor, B: int) -> Tensor:
    return base if base.shape[0] == B else base.expand(B, *base.shape[1:])


class PathIntegrals(NamedTuple):
    """What :func:`integrate_paths` returns."""

    attributions: tuple[Tensor, ...]
    n_targets: int
    totals: Tensor | None


def integrate_paths(
    forward_func: Callable,
    inputs: tuple[Tensor, ...],
    baselines: tuple[Tensor, ...],
    args: tuple,
    targets: Targets,
    method: str,
    n_steps: int,
    rows: int,
    multiply_by_inputs: bool = True,
    reduction: str = "mean",
    show_progress: bool = False,
    desc: str = "IntegratedGradients",
    layer_call: Callable | None = None,
    path_weights: tuple[Tensor, ...] | None = None,
    path_totals: bool = False,
) -> PathIntegrals:
    """Integrated gradients along straight paths, K baselines per input.

    Args:
        inputs: one [B, *F] per input; baselines: one [1 or B, K, *F] per input.
        rows: model rows per forward (scaled-input rows, as Captum's internal_batch_size).
        layer_call: when given, ``layer_call(points, example_start, example_stop, reps)``
            runs the model with the points injected (LayerIntegratedGradients) and returns
            its raw output; the points are then what gradients are taken with respect to.
        path_weights: one [1 or B, K, E] per input (E elements of one example), in the
            inputs' dtype: the attributions are then ``sum_k path_weights[:, k] *
            IG(x; b_k)`` (the reduction is ignored).
        path_totals: with ``path_weights``, also return every path's sum of IG.

    Returns:
        PathIntegrals: attributions (one [B, T, *F] per input, [B, T, K, *F] for
        reduction "none"), T, and totals ([B, T, K], only with ``path_totals``).
    """
    B = inputs[0].shape[0]
    K = baselines[0].shape[1]
    alphas, weights = ops.quadrature(method, n_steps, dtype=inputs[0].dtype)
    alphas, weights = alphas.to(inputs[0].device), weights.to(inputs[0].device)
    J = alphas.shape[0]
    per_example = K * J
    weighted = path_weights is not None
    if path_totals and not weighted:
        raise ValueError("path_totals: needs path_weights")
    # weighted: the kernel weights and sums the paths; "none" only for the path totals
    red = ops.path.REDUCTIONS.index(("none" if path_totals else "sum") if weighted else reduction)
    totals: Tensor | None = None
    # Flattened and checked once; the path kernels then run per block without checks.
    flat_x = tuple(x.reshape(B, -1).contiguous() for x in inputs)
    flat_b = tuple(
        b.reshape(b.shape[0], K, -1).to(x.dtype).contiguous() for b, x in zip(baselines, inputs)
    )
    for i, (x, b) in enumerate(zip(flat_x, flat_b)):
        _checks.finite("inputs" if len(inputs) == 1 else f"inputs[{i}]", x)
        _checks.finite("baselines" if len(inputs) == 1 else f"baselines[{i}]", b)
    acc: list[Tensor | None] = [None] * len(inputs)
    T = None
    bar = progress(B * per_example, show_progress, desc)
    for s, e, j0, j1 in _kblocks(B, K, J, rows):
        nb = e - s
        a = alphas[j0:j1]
        w = weights[j0:j1]
        reps = K * a.shape[0]
        flat = tuple(
            ops.path.points_flat(x[s:e], b if b.shape[0] == 1 else b[s:e], a).view(
                nb * reps, *inp.shape[1:]
            )
            for x, b, inp in zip(flat_x, flat_b, inputs)
        )
        if layer_call is None:
            g, _ = grads_at(forward_func, flat, chunk_args(args, B, s, e, reps), targets, reps, s)
        else:
            with torch.enable_grad():
                flat = tuple(f.detach().requires_grad_() for f in flat)
                out = layer_call(flat, s, e, reps)
                sel = _select_checked(out, nb * reps, targets, reps, s)
                g, _ = _grads_of(sel, flat)
        t = g[0].shape[1]
        if T is None:
            T = t
        for i, (gi, x, b) in enumerate(zip(g, flat_x, flat_b)):
            # [nb*K*j, T, *F] -> [nb, T, K, j, E] -> [nb*T, K, j, E]
            gi = gi.reshape(nb, K, a.shape[0], t, x.shape[1]).movedim(3, 1)
            gi = gi.reshape(nb * t, K, a.shape[0], x.shape[1]).to(x.dtype)
            xi = _examples(x, s, e, t)
            bi = b if b.shape[0] == 1 else _examples(b, s, e, t)
            pw = None
            if weighted:
                pw = path_weights[i]
                pw = pw if pw.shape[0] == 1 else _examples(pw, s, e, t)
            if path_totals:  # [nb * t, K, E]: every path's sums, then the weighted sum
                part = ops.path.integrate_flat(gi, xi, bi, w, red, multiply_by_inputs)
                if totals is None:
                    totals = x.new_zeros((B, t, K))
                totals[s:e] += part.sum(-1).view(nb, t, K)
                part = (part * pw).sum(1)
            else:
                part = ops.path.integrate_flat(gi, xi, bi, w, red, multiply_by_inputs, pw)
            part = part.view(nb, t, *part.shape[1:])
            if acc[i] is None:
                acc[i] = x.new_zeros((B, t, *part.shape[2:]))
            acc[i][s:e] += part
        bar.update(nb * K * a.shape[0])
    bar.close()
    # A NaN or inf gradient always reaches the attributions (see ops.path_integrate).
    for a in acc:
        if a is not None and not bool(torch.isfinite(a).all()):
            raise ValueError(
                "forward_func: its gradients contain non-finite values (NaN or inf); "
                "the attributions would too"
            )
    lead = 2 if reduction == "none" and not weighted else 1  # (T, K) or (T,) after the batch
    shaped = tuple(a.view(B, *a.shape[1 : 1 + lead], *x.shape[1:]) for a, x in zip(acc, inputs))
    return PathIntegrals(shaped, int(T), totals)


def _examples(t: Tensor, s: int, e: int, reps: int) -> Tensor:
    """Rows s..e of t, each repeated ``reps`` times (no copy for one)."""
    return t[s:e] if reps == 1 else t[s:e].repeat_interleave(reps, 0)


def _kblocks(B: int, K: int, J: int, rows: int) -> Iterator[tuple[int, int, int, int]]:
    """(example start, example stop, step start, step stop) blocks of at most ``rows`` model
    rows (at least one step of one example); a block holds all K baselines of its steps."""
    per_step = K
    if rows >= K * J:
        n = rows // (K * J)
        for s in range(0, B, n):
            yield s, min(B, s + n), 0, J
    else:
        steps = max(1, rows // per_step)
        for b in range(B):
            for j in range(0, J, steps):
                yield b, b + 1, j, min(J, j + steps)


def _grads_of(sel: Tensor, wrt: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...], Tensor]:
    T = sel.shape[1]
    if T == 1:  # no stacking copy
        g = torch.autograd.grad(sel[:, 0].sum(), wrt, allow_unused=True)
        grads = tuple(
            (torch.zeros_like(w) if gi is None else gi).unsqueeze(1) for gi, w in zip(g, wrt)
        )
        return grads, sel.detach()
    per_t = []
    for t in range(T):
        g = torch.autograd.grad(sel[:, t].sum(), wrt, retain_graph=t < T - 1, allow_unused=True)
        per_t.append(tuple(torch.zeros_like(w) if gi is None else gi for gi, w in zip(g, wrt)))
    grads = tuple(torch.stack([p[i] for p in per_t], dim=1) for i in range(len(wrt)))
    return grads, sel.detach()


def finish(values: tuple[Tensor, ...], multi: bool) -> tuple[Tensor, ...]:
    """Drops the target dimension (dim 1) when a single target was asked for."""
    return values if multi else tuple(v.squeeze(1) for v in values)


def convergence_delta(
    forward_func: Callable,
    attributions: tuple[Tensor, ...],
    inputs: tuple[Tensor, ...],
    baselines: tuple[Tensor, ...],
    args: tuple,
    targets: Targets,
    rows: int,
) -> Tensor:
    """sum(attributions) - (f(inputs) - f(baselines)) per example and target: [B, T].

    ``attributions`` are [B, T, *F]; ``baselines`` [1 or B, *F].
    """
    B = inputs[0].shape[0]
    base = tuple(expand_base(b, B) for b in baselines)
    end = outputs_at(forward_func, inputs, args, targets, rows)
    start = outputs_at(forward_func, base, args, targets, rows)
    total = sum(a.reshape(a.shape[0], a.shape[1], -1).sum(-1) for a in attributions)
    return total - (end - start).to(total.dtype)


class GradientAttribution(Attribution):
    """Base of the gradient explainers (Captum's ``GradientAttribution``).

    Args:
        forward_func: the model.
        multiply_by_inputs: whether the attributions include the factor
            (inputs - baselines); the explainers that take Captum's
            ``multiply_by_inputs`` pass it on (default False, as Saliency).
    """

    def __init__(self, forward_func: Callable[..., Any], multiply_by_inputs: bool = False) -> None:
        super().__init__(forward_func)
        self._multiply_by_inputs = bool(multiply_by_inputs)

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def compute_convergence_delta(
        self,
        attributions: TensorOrTuple,
        start_point: Any,
        end_point: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        """How far ``attributions`` are from completeness:
        ``sum(attributions) - (f(end_point) - f(start_point))`` per example.

        Args:
            attributions: [B, *F] per input (a tuple for tuple inputs), or [B, T, *F]
                with several targets.
            start_point: the baselines (a number, a tensor broadcastable to one example,
                [B, *F], or a tuple of those).
            end_point: the inputs, [B, *F] or a tuple.
            target, additional_forward_args: as in ``attribute``.

        Returns:
            [B] ([B, T] for several targets), in the attributions' dtype.

        Example:
            >>> import torch
            >>> from xattr import IntegratedGradients
            >>> ig = IntegratedGradients(torch.nn.Linear(3, 1).double().eval())
            >>> x = torch.randn(2, 3, dtype=torch.float64)
            >>> a = ig.attribute(x, target=0)
            >>> bool(ig.compute_convergence_delta(a, 0.0, x, target=0).abs().max() < 1e-12)
            True
        """
        ends, _ = format_inputs(end_point, "end_point")
        attrs, _ = format_inputs(attributions, "attributions")
        if len(attrs) != len(ends):
            raise ValueError(
                f"attributions: expected {len(ends)} tensor(s), one per input, got {len(attrs)}"
            )
        starts = format_baselines(start_point, ends)
        B = ends[0].shape[0]
        targets = Targets(target, B)
        lead = (B, -1) if targets.multi else (B, 1)
        shaped = []
        for i, (a, x) in enumerate(zip(attrs, ends)):
            if a.shape[0] != B:
                raise ValueError(
                    f"attributions[{i}]: {a.shape[0]} rows, the end_point has {B} examples"
                )
            shaped.append(a.reshape(*lead, *x.shape[1:]))
        rows = batch_rows(ends, None, None)
        delta = convergence_delta(
            self.forward_func,
            tuple(shaped),
            ends,
            starts,
            as_args(additional_forward_args),
            targets,
            rows,
        )
        return delta if targets.multi else delta[:, 0]


def check_n_steps(n_steps: Any, method: str) -> None:
    if method not in ops.path.METHODS:
        raise ValueError(f"method: expected one of {', '.join(ops.path.METHODS)}, got {method!r}")
    _checks.int_arg("n_steps", n_steps, minimum=1 if method == "gausslegendre" else 2)


def input_grads(
    forward_func: Callable,
    inputs: tuple[Tensor, ...],
    args: tuple,
    targets: Targets,
    rows: int,
    show_progress: bool = False,
    desc: str = "gradients",
) -> tuple[Tensor, ...]:
    """Gradients of the selected outputs at the inputs: one [B, T, *F] per input."""
    B = inputs[0].shape[0]
    acc: list[Tensor | None] = [None] * len(inputs)
    bar = progress(B, show_progress, desc)
    for s in range(0, max(B, 1), rows):  # an empty batch: one empty call (the shapes)
        e = min(B, s + rows)
        g, _ = grads_at(
            forward_func, tuple(x[s:e] for x in inputs), chunk_args(args, B, s, e, 1), targets, 1, s
        )
        if e - s == B:  # one batch: its gradients are the answer
            bar.update(B)
            bar.close()
            return g
        for i, gi in enumerate(g):
            if acc[i] is None:
                acc[i] = gi.new_zeros((B, *gi.shape[1:]))
            acc[i][s:e] = gi
        bar.update(e - s)
    bar.close()
    return tuple(acc)


def gradients_at_inputs(
    forward_func: Callable,
    inputs: Any,
    target: Any,
    additional_forward_args: Any,
    memory_budget: Any,
    show_progress: bool,
    desc: str,
) -> tuple[tuple[Tensor, ...], bool, Targets, tuple[Tensor, ...]]:
    """What Saliency and InputXGradient share: checked inputs, targets and the
    gradients of the selected outputs -> (inputs, is_tuple, targets, grads [B, T, *F])."""
    xs, is_tuple = format_inputs(inputs)
    float_inputs(xs)
    warn_if_training(forward_func)
    targets = Targets(target, xs[0].shape[0])
    rows = batch_rows(xs, None, memory_budget)
    grads = input_grads(
        forward_func, xs, as_args(additional_forward_args), targets, rows, show_progress, desc
    )
    return xs, is_tuple, targets, grads
