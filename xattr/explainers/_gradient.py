"""What the gradient explainers share: gradients of the selected outputs with respect to
batches of points (one forward per batch, one backward per target), straight-line path
integration with K baselines per input (Integrated Gradients and its relatives), and
the convergence delta.

Rows are always ordered example-major: row ``b * R + r`` belongs to example ``b``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from xattr import ops
from xattr._core import validation
from xattr._core.batching import as_args, batch_rows, chunk_args
from xattr._core.features import mark_per_element
from xattr._core.inputs import (
    format_inputs,
    n_elements,
)
from xattr._core.model import select_checked, selected, warn_if_training
from xattr._core.progress import model_rows, row_progress
from xattr._core.targets import Targets
from xattr.ops import path as path_ops


def float_inputs(inputs: tuple[Tensor, ...], name: str = "inputs") -> None:
    """Gradient explainers need floating inputs (float32 / float64, or float16 / bfloat16
    through :func:`working_inputs`); format_inputs has checked them finite."""
    for i, x in enumerate(inputs):
        if not x.is_floating_point():
            label = name if len(inputs) == 1 else f"{name}[{i}]"
            raise TypeError(
                f"{label}: expected a floating tensor (float32, float64, float16, bfloat16), "
                f"got {str(x.dtype).replace('torch.', '')}"
            )


def baseline_distribution(
    baselines: Any, inputs: Any, xs: tuple[Tensor, ...], method: str
) -> tuple[Tensor, ...]:
    """A baseline distribution, one [N, *F] tensor per input, in the inputs' dtype and
    device: a tensor, a tuple of them, or a callable returning one (called with the
    inputs when it takes an argument), as Captum's GradientShap and DeepLiftShap take it."""
    if callable(baselines) and not isinstance(baselines, Tensor):
        takes_inputs = bool(inspect.signature(baselines).parameters)
        baselines = baselines(inputs) if takes_inputs else baselines()
    bl = baselines if isinstance(baselines, (tuple, list)) else (baselines,)
    if len(bl) != len(xs):
        raise validation.ArgumentError(
            f"baselines: expected {len(xs)} baseline tensor(s), one per input, got {len(bl)}"
        )
    for i, (b, x) in enumerate(zip(bl, xs)):
        if not isinstance(b, Tensor):
            raise validation.ArgumentTypeError(
                f"baselines[{i}]: {method} needs a baseline distribution tensor "
                f"[N, *F], got {type(b).__name__}"
            )
        if b.dim() != x.dim() or tuple(b.shape[1:]) != tuple(x.shape[1:]):
            raise validation.ArgumentError(
                f"baselines[{i}]: expected [N, *F] with F = {tuple(x.shape[1:])}, "
                f"got {tuple(b.shape)}"
            )
    return tuple(b.to(device=x.device, dtype=x.dtype) for b, x in zip(bl, xs))


def working_inputs(
    inputs: tuple[Tensor, ...], forward_func: Callable, *, integers: bool = False
) -> tuple[tuple[Tensor, ...], Callable]:
    """(the inputs in the dtype gradients are taken and summed in, the model to call on
    them), what every gradient explainer starts from.

    float32 / float64 inputs are used as they are. float16 / bfloat16 inputs are worked
    on in float32 (path points, gradients, sums: Captum's IntegratedGradients returns
    float32 for them too) while the model is called on copies cast back to the inputs'
    dtype, so it runs in its own precision (gradients flow back through the cast).
    Integer inputs, with ``integers`` (IntegratedGradients: Captum's path points
    ``b + alpha (x - b)`` are float), become torch's default float dtype, which the model
    then receives, as in Captum. Other dtypes: a TypeError naming the input.

    Example:
        >>> import torch
        >>> xs, f = working_inputs((torch.ones(2, 3, dtype=torch.float16),), lambda x: x)
        >>> xs[0].dtype, f(xs[0]).dtype
        (torch.float32, torch.float16)
    """
    work: list[Tensor] = []
    model_dtypes: list[torch.dtype | None] = []
    for i, x in enumerate(inputs):
        if x.dtype in validation.FLOATS:
            work.append(x)
            model_dtypes.append(None)
        elif x.is_floating_point():
            work.append(x.to(torch.float32))
            model_dtypes.append(x.dtype)
        elif integers and not x.is_complex() and x.dtype != torch.bool:
            work.append(x.to(torch.get_default_dtype()))
            model_dtypes.append(None)
        else:
            float_inputs((x,), "inputs" if len(inputs) == 1 else f"inputs[{i}]")
    if all(d is None for d in model_dtypes):
        return tuple(work), forward_func
    n = len(inputs)

    def in_model_dtype(*args: Any) -> Any:
        pts = tuple(p if d is None else p.to(d) for p, d in zip(args[:n], model_dtypes))
        return forward_func(*pts, *args[n:])

    return tuple(work), in_model_dtype


def grads_at(
    forward_func: Callable,
    points: tuple[Tensor, ...],
    args: tuple,
    targets: Targets,
    rows_per_example: int,
    first_example: int,
    wrt: tuple[Tensor, ...] | None = None,
    grad_kwargs: dict[str, Any] | None = None,
) -> tuple[tuple[Tensor, ...], Tensor]:
    """Gradients of each selected output w.r.t. ``wrt`` (default: the points);
    ``grad_kwargs`` go to ``torch.autograd.grad``.

    One forward pass, then one backward pass per target. Returns
    (grads: one [rows, T, *F] per tensor, selected outputs [rows, T] detached).
    """
    with torch.enable_grad():
        if wrt is None:
            points = tuple(p.detach().requires_grad_() for p in points)
            wrt = points
        sel = selected(forward_func, points, args, targets, rows_per_example, first_example)
        return _grads_of(sel, wrt, grad_kwargs)


REDUCTIONS = path_ops.REDUCTIONS
NONE = REDUCTIONS.index("none")


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
    show_progress: bool | None = None,
    desc: str = "IntegratedGradients",
    layer_call: Callable | None = None,
    grad_kwargs: dict[str, Any] | None = None,
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

    The attributions do not depend on ``rows``, bit for bit, for a model whose rows do
    not depend on their batch. Every element is the float64 sum that one
    ``ops.path_integrate`` call over all K * J points of its example forms (path by
    path: ``one_k = sum_j w_j g_kj`` step by step, then ``one_k (x - b_k)`` times the
    path weight, added to the running total; divided by K for "mean"), rounded once to
    the inputs' dtype. Blocks that hold whole examples are such a call; when an
    example's K * J rows exceed ``rows``, its paths (below J rows, the steps of one path)
    come a block at a time and :class:`_Carry` carries the same float64 sums from block
    to block. The path totals are float64 sums over the elements, to rounding.
    """
    B = inputs[0].shape[0]
    K = baselines[0].shape[1]
    alphas, weights = ops.quadrature(method, n_steps, dtype=inputs[0].dtype)
    alphas, weights = alphas.to(inputs[0].device), weights.to(inputs[0].device)
    J = alphas.shape[0]
    weighted = path_weights is not None
    if path_totals and not weighted:
        raise ValueError("path_totals: needs path_weights")
    red = "sum" if weighted else reduction  # weighted: the kernel weights and sums the paths
    # Flattened and checked once; the path kernels then run per block without checks.
    flat_x = tuple(x.reshape(B, n_elements(x)).contiguous() for x in inputs)
    flat_b = tuple(
        b.reshape(b.shape[0], K, n_elements(x)).to(x.dtype).contiguous()
        for b, x in zip(baselines, inputs)
    )
    for i, (x, b) in enumerate(zip(flat_x, flat_b)):
        validation.finite("inputs" if len(inputs) == 1 else f"inputs[{i}]", x)
        validation.finite("baselines" if len(inputs) == 1 else f"baselines[{i}]", b)
    out: list[Tensor] = []  # one [B, T, E] ([B, T, K, E] for "none") per input
    carry: list[_Carry] = []  # per input, for examples split across blocks
    totals: Tensor | None = None  # [B, T, K] float64
    T = None
    with row_progress(B * K * J, show_progress, desc):
        for s, e, k0, k1, j0, j1 in _blocks(B, K, J, rows):
            nb, reps = e - s, (k1 - k0) * (j1 - j0)
            flat = tuple(
                path_ops.points_flat(
                    x[s:e], (b if b.shape[0] == 1 else b[s:e])[:, k0:k1], alphas[j0:j1]
                ).view(nb * reps, *inp.shape[1:])
                for x, b, inp in zip(flat_x, flat_b, inputs)
            )
            if layer_call is None:
                g, _ = grads_at(
                    forward_func,
                    flat,
                    chunk_args(args, B, s, e, reps),
                    targets,
                    reps,
                    s,
                    grad_kwargs=grad_kwargs,
                )
            else:
                with torch.enable_grad():
                    flat = tuple(f.detach().requires_grad_() for f in flat)
                    with model_rows(nb * reps):
                        raw = layer_call(flat, s, e, reps)
                    sel = select_checked(raw, nb * reps, targets, reps, s)
                    g, _ = _grads_of(sel, flat, grad_kwargs)
            t = g[0].shape[1]
            if T is None:
                T = t
                for x in flat_x:
                    out.append(
                        x.new_empty((B, t, K, x.shape[1]) if red == "none" else (B, t, x.shape[1]))
                    )
                    carry.append(_Carry(red, K, J, weights, multiply_by_inputs))
                if path_totals:
                    totals = torch.zeros((B, t, K), dtype=torch.float64, device=flat_x[0].device)
            for i, (gi, x, b) in enumerate(zip(g, flat_x, flat_b)):
                # [nb*kc*jc, T, *F] -> [nb, kc, jc, T, E] -> [nb*T, kc, jc, E]
                gi = gi.reshape(nb, k1 - k0, j1 - j0, t, x.shape[1]).movedim(3, 1)
                gi = gi.reshape(nb * t, k1 - k0, j1 - j0, x.shape[1]).to(x.dtype)
                xi = _examples(x, s, e, t)
                bi = (b if b.shape[0] == 1 else _examples(b, s, e, t))[:, k0:k1]
                pw = None
                if weighted:
                    pw = path_weights[i]
                    pw = (pw if pw.shape[0] == 1 else _examples(pw, s, e, t))[:, k0:k1]
                if k1 - k0 == K and j1 - j0 == J:  # whole examples: one kernel call is their sum
                    red_i = REDUCTIONS.index(red)
                    part = path_ops.integrate_flat(
                        gi, xi, bi, weights, red_i, multiply_by_inputs, pw
                    )
                    out[i][s:e] = part.view(nb, t, *part.shape[1:])
                    # every path's IG (without its weight) summed, in float64
                    if totals is not None:
                        wide = (v.to(torch.float64) for v in (gi, xi, bi, weights))
                        per_path = path_ops.integrate_flat(*wide, NONE, multiply_by_inputs)
                        totals[s:e] += per_path.sum(-1).view(nb, t, K)
                else:  # one example (s), paths k0..k1 or steps j0..j1 of path k0
                    finished = carry[i].add(gi, xi, bi, pw, k0, j0, j1)
                    if totals is not None and finished is not None:
                        totals[s, :, k0:k1] += finished.sum(-1)
                    if k1 == K and j1 == J:
                        out[i][s] = carry[i].result().to(x.dtype)
    # A NaN or inf gradient always reaches the attributions (see ops.path_integrate).
    for a in out:
        if not validation.all_finite(a):
            raise ValueError(
                "forward_func: its gradients contain non-finite values (NaN or inf); "
                "the attributions would too"
            )
    lead = 2 if red == "none" else 1  # (T, K) or (T,) after the batch
    shaped = tuple(a.view(B, *a.shape[1 : 1 + lead], *x.shape[1:]) for a, x in zip(out, inputs))
    if totals is not None:
        totals = totals.to(inputs[0].dtype)
    return PathIntegrals(shaped, cast(int, T), totals)


class _Carry:
    """One example's path integral over blocks, in float64, exactly as
    ``PathIntegrateOp`` forms it in one call: per path k, ``one = sum_j w_j g_kj``
    (step by step, the first step assigned), its value ``v_k = one (x - b_k)`` (times
    the path weight), and the running total ``0 + v_0 + v_1 + ...`` (divided by K for
    "mean"; "none" keeps every ``0 + v_k``). Blocks arrive in the order of
    :func:`_blocks` (path by path; a path's steps in order)."""

    def __init__(
        self, reduction: str, K: int, J: int, weights: Tensor, multiply_by_inputs: bool
    ) -> None:
        self.reduction, self.K, self.J = reduction, K, J
        # the kernel reads the weights in the inputs' dtype and widens each to double
        self.w = weights.to(torch.float64)
        self.mbi = multiply_by_inputs
        self.one: Tensor | None = None  # [T, E]: the current path's steps so far
        self.acc: Tensor | None = None  # [T, E], or [T, K, E] for "none"

    def add(
        self, g: Tensor, x: Tensor, b: Tensor, pw: Tensor | None, k0: int, j0: int, j1: int
    ) -> Tensor | None:
        """Gradients g [T, kc, jc, E] of paths k0.. (steps j0..j1), x [T, E], b and pw
        [T, kc, E]. Returns the values [T, kc, E] (without the path weights) of the paths
        this block finished, None when it finished none."""
        f64 = torch.float64
        if j0 == 0 and j1 == self.J:  # whole paths: the kernel's own per-path values
            v = path_ops.integrate_flat(g.to(f64), x.to(f64), b.to(f64), self.w, NONE, self.mbi)
        else:  # steps j0..j1 of path k0
            terms = g[:, 0].to(f64) * self.w[j0:j1, None]  # [T, jc, E]
            for j in range(j1 - j0):  # step by step, as the kernel adds them
                self.one = terms[:, j] if j0 + j == 0 else cast(Tensor, self.one) + terms[:, j]
            if j1 < self.J:
                return None
            one = cast(Tensor, self.one)
            v = (one * (x.to(f64) - b[:, 0].to(f64)) if self.mbi else one)[:, None]
        value = v if pw is None else v * pw.to(f64)
        if self.acc is None:
            T, E = x.shape
            shape = (T, self.K, E) if self.reduction == "none" else (T, E)
            self.acc = torch.zeros(shape, dtype=f64, device=x.device)
        if self.reduction == "none":
            self.acc[:, k0 : k0 + v.shape[1]] += value
        else:
            for k in range(v.shape[1]):  # path by path, as the kernel adds them
                self.acc += value[:, k]
        return v

    def result(self) -> Tensor:
        """The example's sums, float64 (then the carry is reset for the next example)."""
        acc, self.acc, self.one = cast(Tensor, self.acc), None, None
        return acc / self.K if self.reduction == "mean" else acc


def _examples(t: Tensor, s: int, e: int, reps: int) -> Tensor:
    """Rows s..e of t, each repeated ``reps`` times (no copy for one)."""
    return t[s:e] if reps == 1 else t[s:e].repeat_interleave(reps, 0)


def _blocks(B: int, K: int, J: int, rows: int) -> Iterator[tuple[int, int, int, int, int, int]]:
    """(example start, stop, path start, stop, step start, stop) blocks of at most
    ``rows`` model rows (at least one): whole examples when K * J rows fit, else one
    example's paths a few at a time, else (below J rows) one path's steps a few at a
    time; always in the order of the sums (example, path, step)."""
    if rows >= K * J or B == 0:  # an empty batch: one empty block (the shapes)
        n = max(1, rows // (K * J))
        for s in range(0, max(B, 1), n):
            yield s, min(B, s + n), 0, K, 0, J
    elif rows >= J:
        n = rows // J
        for b in range(B):
            for k in range(0, K, n):
                yield b, b + 1, k, min(K, k + n), 0, J
    else:
        for b in range(B):
            for k in range(K):
                for j in range(0, J, rows):
                    yield b, b + 1, k, k + 1, j, min(J, j + rows)


def check_grad_kwargs(grad_kwargs: Any) -> dict[str, Any] | None:
    """Captum's ``grad_kwargs``: None or a dict of ``torch.autograd.grad`` arguments."""
    if grad_kwargs is not None and not isinstance(grad_kwargs, dict):
        raise TypeError(
            f"grad_kwargs: expected a dict of torch.autograd.grad arguments or None, got "
            f"{type(grad_kwargs).__name__}"
        )
    return grad_kwargs


def _grads_of(
    sel: Tensor, wrt: tuple[Tensor, ...], grad_kwargs: dict[str, Any] | None = None
) -> tuple[tuple[Tensor, ...], Tensor]:
    """Gradients of every selected output column (summed over rows) w.r.t. ``wrt``: one
    [rows, T, *F] per tensor (zeros where unused), and the selected outputs detached.
    ``grad_kwargs`` go to ``torch.autograd.grad`` (Captum's argument)."""
    T = sel.shape[1]
    kw = dict(grad_kwargs or {})
    kw.setdefault("allow_unused", True)
    retain = kw.pop("retain_graph", None)  # None: as create_graph (torch's default)
    if T == 1:  # no stacking copy
        g = torch.autograd.grad(sel[:, 0].sum(), wrt, retain_graph=retain, **kw)
        grads = tuple(
            (torch.zeros_like(w) if gi is None else gi).unsqueeze(1) for gi, w in zip(g, wrt)
        )
        return grads, sel.detach()
    per_t = []
    for t in range(T):
        g = torch.autograd.grad(
            sel[:, t].sum(), wrt, retain_graph=True if t < T - 1 else retain, **kw
        )
        per_t.append(tuple(torch.zeros_like(w) if gi is None else gi for gi, w in zip(g, wrt)))
    grads = tuple(torch.stack([p[i] for p in per_t], dim=1) for i in range(len(wrt)))
    return grads, sel.detach()


def finish(values: tuple[Tensor, ...], multi: bool) -> tuple[Tensor, ...]:
    """Drops the target dimension (dim 1) when a single target was asked for; the
    results are marked per-element (:func:`mark_per_element`)."""
    return mark_per_element(values if multi else tuple(v.squeeze(1) for v in values))


def check_n_steps(n_steps: Any, method: str) -> None:
    if method not in path_ops.METHODS:
        raise ValueError(f"method: expected one of {', '.join(path_ops.METHODS)}, got {method!r}")
    validation.int_arg("n_steps", n_steps, minimum=1 if method == "gausslegendre" else 2)


def input_grads(
    forward_func: Callable,
    inputs: tuple[Tensor, ...],
    args: tuple,
    targets: Targets,
    rows: int,
    show_progress: bool | None = None,
    desc: str = "gradients",
) -> tuple[Tensor, ...]:
    """Gradients of the selected outputs at the inputs: one [B, T, *F] per input."""
    B = inputs[0].shape[0]
    acc: list[Tensor | None] = [None] * len(inputs)
    with row_progress(B, show_progress, desc):
        for s in range(0, max(B, 1), rows):  # an empty batch: one empty call (the shapes)
            e = min(B, s + rows)
            g, _ = grads_at(
                forward_func,
                tuple(x[s:e] for x in inputs),
                chunk_args(args, B, s, e, 1),
                targets,
                1,
                s,
            )
            if e - s == B:  # one batch: its gradients are the answer
                return g
            for i, gi in enumerate(g):
                if acc[i] is None:
                    acc[i] = gi.new_zeros((B, *gi.shape[1:]))
                cast(Tensor, acc[i])[s:e] = gi
    return tuple(cast(Tensor, a) for a in acc)


def gradients_at_inputs(
    forward_func: Callable,
    inputs: Any,
    target: Any,
    additional_forward_args: Any,
    memory_budget: Any,
    show_progress: bool | None,
    desc: str,
) -> tuple[tuple[Tensor, ...], bool, Targets, tuple[Tensor, ...]]:
    """What Saliency and InputXGradient share: checked inputs, targets and the
    gradients of the selected outputs -> (inputs, is_tuple, targets, grads [B, T, *F])."""
    xs, is_tuple = format_inputs(inputs)
    xs, forward_func = working_inputs(xs, forward_func)
    warn_if_training(forward_func)
    targets = Targets(target, xs[0].shape[0])
    rows = batch_rows(xs, None, memory_budget)
    grads = input_grads(
        forward_func, xs, as_args(additional_forward_args), targets, rows, show_progress, desc
    )
    return xs, is_tuple, targets, grads
