"""DeepLift (Shrikumar et al., 2017; the rescale rule) and DeepLiftShap (Lundberg & Lee,
2017), with Captum's arguments, nonlinearity table and results.

The model runs once on ``[inputs; references]``. Every call of a nonlinearity, however
the model makes it (an ``nn.ReLU`` module, the same module twice, ``F.relu``,
``torch.sigmoid``, ``x.tanh()``), is intercepted (``xattr._core.overrides.Intercept``)
and replaced by an autograd Function whose backward is DeepLift's rule, pairing each
input row with its reference row; any other call on a tensor derived from the inputs
must be linear (a table of linear and shape operations), else a ``ValueError`` names it.
So the attributions are exact, sum(attributions) = f(x) - f(reference) to rounding, on
every network of linear operations, elementwise nonlinearities and max pooling.

The rules (Captum's ``SUPPORTED_NON_LINEAR``, read per call):

- elementwise (ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus; also GELU, SiLU, Mish,
  Hardtanh, ReLU6, SELU, CELU, Hardsigmoid, Hardswish, LogSigmoid, Softsign, Tanhshrink,
  exp): the multiplier ``(g(x) - g(x0)) / (x - x0)``, the gradient ``g'(x)`` where
  ``|x - x0| < eps``;
- max pooling (1-3 d, adaptive too): the difference of the window maxima split between
  the input's and the reference's argmax, ``max(y, y0) - y0`` and ``y - max(y, y0)``,
  divided by ``x - x0`` (Captum's rule; overlapping windows add up, where Captum's unpool
  keeps one of them);
- softmax: the elementwise multipliers minus their mean along the softmax dimension
  (Captum takes the mean over the whole batch, so an example's attributions depend on
  the others; the two agree for one example). Completeness does not hold exactly
  through a softmax (nor in Captum).

A shared reference (Captum's default zeros, a scalar, one example) runs once per batch:
the forward costs B + 1 rows instead of Captum's 2 B. Per-example references (or
per-example additional arguments) cost 2 B rows.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from functools import cache
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from xattr._core import overrides as ov
from xattr._core.attribution import GradientAttribution
from xattr._core.batching import as_args, batch_rows
from xattr._core.inputs import (
    TensorOrTupleGeneric,
    format_baselines,
    format_inputs,
    format_output,
)
from xattr._core.model import check_model_output, warn_if_training
from xattr._core.progress import expect_rows, model_rows, with_row_progress
from xattr._core.targets import Targets, TargetType
from xattr._core.validation import all_finite
from xattr.explainers._gradient import _grads_of, baseline_distribution, finish, float_inputs
from xattr.explainers.registry import register
from xattr.ops import rules


# ------------------------------------------------------------------------------ rules
class _Rescale(torch.autograd.Function):
    """y = g(x); backward: the gradient times DeepLift's multiplier on the inputs' rows
    (zero on the references' rows, which nothing differentiates). The multiplier is one
    kernel pass (``xattr.ops.rules``); ``derivative`` is None for the kernel's own
    nonlinearities (``kind`` relu, sigmoid, tanh) and computes g' for the others."""

    @staticmethod
    def forward(ctx, x, fn, kind, derivative, pairing, what, eps):  # type: ignore[override]
        y = fn(x)
        k = pairing.sub_rows(x, what)
        n, ref_rows = pairing.n_x * k, pairing.n_ref * k
        deriv = None if derivative is None else derivative(x[:n])
        m = rules.rescale_multiplier_unchecked(x, y, ref_rows, kind, eps, deriv)
        ctx.save_for_backward(m)
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (m,) = ctx.saved_tensors
        n = m.shape[0]
        out = g.new_empty(g.shape)
        torch.mul(g[:n], m, out=out[:n])
        out[n:].zero_()
        return out, None, None, None, None, None, None


def _autograd_derivative(fn: Callable) -> Callable[[Tensor], Tensor]:
    def derivative(x: Tensor) -> Tensor:
        with torch.enable_grad():
            t = x.detach().requires_grad_()
            y = fn(t)
            (d,) = torch.autograd.grad(y, t, torch.ones_like(y))
        return d

    return derivative


@cache
def _signature(func: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


def _bind(func: Callable, args: tuple, kwargs: dict) -> tuple[Tensor, Callable, bool]:
    """(the tensor argument, the function of it out of place, whether in place)."""
    sig = _signature(func)
    if sig is None:  # a builtin: the tensor first, no inplace flag
        x = args[0] if args else kwargs["input"]
        rest, kw = args[1:], {k: v for k, v in kwargs.items() if k != "input"}
        return x, (lambda t: func(t, *rest, **kw)), False
    bound = sig.bind(*args, **kwargs)
    params = dict(bound.arguments)
    first = next(iter(sig.parameters))
    x = params.pop(first)
    inplace = bool(params.pop("inplace", False))
    return x, (lambda t: func(t, **params)), inplace


_OUT_OF_PLACE = {f: torch.relu for f in ov.RELU_INPLACE}


def _elementwise_rule(pairing: ov.Pairing, eps: float, name: str) -> Callable:
    def rule(func: Callable, args: tuple, kwargs: dict) -> Tensor:
        inplace = func in _OUT_OF_PLACE
        x, fn, flag = _bind(_OUT_OF_PLACE.get(func, func), args, kwargs)
        derivative = None
        if func in ov.RELU or func in _OUT_OF_PLACE:
            kind = "relu"
        elif func in ov.SIGMOID:
            kind = "sigmoid"
        elif func in ov.TANH:
            kind = "tanh"
        else:
            kind, derivative = "given", _autograd_derivative(fn)
        y = _Rescale.apply(x, fn, kind, derivative, pairing, ov.function_name(func), eps)
        if inplace or flag:  # the caller may read x afterwards, as after an in-place call
            x.copy_(y)
            return x
        return y

    return rule


class _MaxPool(torch.autograd.Function):
    """(y, indices) = max pooling of x [N, C, *S]; backward: Captum's maxpool rule."""

    @staticmethod
    def forward(ctx, x, pool, pairing, what, eps):  # type: ignore[override]
        y, idx = pool(x)
        xf, yf, idf = x.flatten(2), y.flatten(2), idx.flatten(2)
        ax, ar = pairing.split(xf, what)
        yx, yr = pairing.split(yf, what)
        ix, ir = pairing.split(idf, what)
        top = torch.maximum(yx, yr)
        ctx.save_for_backward(top - yr, yx - top, ix, ir, ax - ar)
        ctx.pairing, ctx.what, ctx.eps, ctx.shape = pairing, what, eps, x.shape
        ctx.mark_non_differentiable(idx)
        return y, idx

    @staticmethod
    def backward(ctx, g, _g_idx):  # type: ignore[override]
        up_x, up_r, ix, ir, dx = ctx.saved_tensors
        gx, _ = ctx.pairing.split(g.flatten(2), ctx.what)
        # the output differences routed back through the input's and the reference's argmax
        u = torch.zeros_like(dx).scatter_add_(-1, ix, gx * up_x)
        u.scatter_add_(-1, ir.expand_as(ix), gx * up_r)
        plain = torch.zeros_like(dx).scatter_add_(-1, ix, gx)  # max pooling's gradient
        grad = torch.where(dx.abs() < ctx.eps, plain, u / dx)
        return ctx.pairing.join(grad, ctx.shape), None, None, None, None


def _maxpool_rule(pairing: ov.Pairing, eps: float, name: str) -> Callable:
    def rule(func: Callable, args: tuple, kwargs: dict) -> Any:
        d = ov.MAX_POOL[func]
        adaptive = "adaptive" in getattr(func, "__name__", "")
        with_indices = getattr(F, f"{'adaptive_' if adaptive else ''}max_pool{d}d_with_indices")
        sig = _signature(with_indices)
        assert sig is not None
        bound = sig.bind(*args, **kwargs)
        params = dict(bound.arguments)
        x = params.pop("input")
        wanted = bool(params.pop("return_indices", False)) or func is with_indices
        if x.dim() != d + 2:
            raise ValueError(
                f"{name}: {ov.function_name(func)} received a tensor of shape "
                f"{tuple(x.shape)}; DeepLift's max-pooling rule needs a batch and a "
                f"channel dimension before the {d} pooled ones"
            )

        def pool(t: Tensor) -> tuple[Tensor, Tensor]:
            return with_indices(t, **params, return_indices=True)

        y, idx = _MaxPool.apply(x, pool, pairing, ov.function_name(func), eps)
        return (y, idx) if wanted else y

    return rule


class _Softmax(torch.autograd.Function):
    """y = softmax(x, dim); backward: Captum's softmax rule, the mean taken per slice."""

    @staticmethod
    def forward(ctx, x, dim, pairing, what, eps):  # type: ignore[override]
        y = torch.softmax(x, dim)
        ax, ar = pairing.split(x, what)
        yx, yr = pairing.split(y, what)
        dx = ax - ar
        ctx.save_for_backward(dx, (yx - yr) / dx, yx)
        ctx.dim = dim + 2  # in the split view [P, n_ref, k, *rest]
        ctx.pairing, ctx.what, ctx.eps = pairing, what, eps
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        dx, m, yx = ctx.saved_tensors
        gx, _ = ctx.pairing.split(g, ctx.what)
        plain = yx * (gx - (gx * yx).sum(ctx.dim, keepdim=True))
        unnorm = torch.where(dx.abs() < ctx.eps, plain, gx * m)
        grad = unnorm - unnorm.mean(ctx.dim, keepdim=True)
        return ctx.pairing.join(grad, g.shape), None, None, None, None


def _softmax_rule(pairing: ov.Pairing, eps: float, name: str) -> Callable:
    def rule(func: Callable, args: tuple, kwargs: dict) -> Tensor:
        x = args[0] if args else kwargs["input"]
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        dtype = kwargs.get("dtype", args[3] if func is F.softmax and len(args) > 3 else None)
        if dtype is None and func is not F.softmax and len(args) > 2:
            dtype = args[2]
        if dim is None:  # torch's implicit choice (deprecated)
            dim = 0 if x.dim() in (0, 1, 3) else 1
        dim = int(dim) % max(1, x.dim())
        if dim == 0:
            raise ValueError(
                f"{name}: {ov.function_name(func)} over dimension 0 mixes the examples of "
                "the batch; give the softmax a feature dimension"
            )
        if dtype is not None:
            x = x.to(dtype)
        return _Softmax.apply(x, dim, pairing, ov.function_name(func), eps)

    return rule


def deeplift_rules(pairing: ov.Pairing, eps: float, name: str) -> dict[Callable, Callable]:
    """Function -> DeepLift rule, for every function of Captum's nonlinearity table and
    the other elementwise nonlinearities."""
    rules: dict[Callable, Callable] = {}
    elementwise = _elementwise_rule(pairing, eps, name)
    for f in (*ov.RELU, *ov.RELU_INPLACE, *ov.SIGMOID, *ov.TANH, *ov.ELEMENTWISE_OTHER):
        rules[f] = elementwise
    maxpool = _maxpool_rule(pairing, eps, name)
    for f in ov.MAX_POOL:
        rules[f] = maxpool
    softmax = _softmax_rule(pairing, eps, name)
    for f in ov.SOFTMAX:
        rules[f] = softmax
    return rules


# ------------------------------------------------------------------------ the method
def _call_custom(func: Callable, multipliers: tuple, inputs: tuple, refs: tuple) -> tuple:
    """Captum's ``custom_attribution_func``: called with (multipliers), (multipliers,
    inputs) or (multipliers, inputs, baselines), by the number of its parameters."""
    n = len(inspect.signature(func).parameters)
    if n == 1:
        out = func(multipliers)
    elif n == 2:
        out = func(multipliers, inputs)
    elif n == 3:
        out = func(multipliers, inputs, refs)
    else:
        raise ValueError(
            "custom_attribution_func: must take 1 to 3 arguments (multipliers, inputs, "
            f"baselines), takes {n}"
        )
    out = out if isinstance(out, (tuple, list)) else (out,)
    if len(out) != len(inputs) or not all(isinstance(o, Tensor) for o in out):
        raise ValueError(
            f"custom_attribution_func: expected a tuple of {len(inputs)} tensor(s), one per input"
        )
    return tuple(out)


def _per_example_args(args: tuple, B: int) -> bool:
    return any(isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == B for a in args)


def _rows_of(a: Any, B: int, s: int, e: int, reps: int, twice: bool) -> Any:
    """A per-example tensor argument's rows for examples s..e (each repeated ``reps``
    times), twice over when the references have a row per input row."""
    if not (isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == B):
        return a
    a = a[s:e]
    if reps != 1:
        a = a.repeat_interleave(reps, 0)
    return torch.cat([a, a]) if twice else a


def _pair_difference(x: Tensor, r: Tensor) -> Tensor:
    """x [n, *F] minus its references r [n_ref, *F] (row i against row i mod n_ref)."""
    n, n_ref = x.shape[0], r.shape[0]
    if n_ref == n:
        return x - r
    return (x.reshape(n // n_ref, n_ref, *x.shape[1:]) - r).reshape(x.shape)


def run_deeplift(
    forward_func: Callable,
    xs: tuple[Tensor, ...],
    refs: tuple[Tensor, ...],
    reps: int,
    args: tuple,
    targets: Targets,
    eps: float,
    multiply: bool,
    custom: Callable | None,
    rows: int,
    name: str,
) -> tuple[tuple[Tensor, ...], Tensor]:
    """DeepLift of every input row against references, each example repeated ``reps``
    times (DeepLiftShap's N baselines; 1 for DeepLift).

    Args:
        xs: one [B, *F] per input.
        refs: one [R, *F] per input: R = reps, the same references for every example
            (row j the reference of repetition j), or R = B * reps (a reference per
            pair, example-major).
        rows: model rows per forward call (inputs and references together, at least one
            example's).

    Returns:
        (attributions: one [B * reps, T, *F] per input, deltas [B * reps, T]).
    """
    B = xs[0].shape[0]
    shared = refs[0].shape[0] == reps
    if not shared and B == 0:
        refs, shared = tuple(r[:0].new_zeros((reps, *r.shape[1:])) for r in refs), True
    # rows counts the inputs' rows; shared references add their few rows to each call
    per_call = max(1, rows // reps) if shared else max(1, rows // (2 * reps))
    attrs: list[list[Tensor]] = [[] for _ in xs]
    deltas: list[Tensor] = []
    # every call evaluates its inputs' rows and the references' (once per call when shared)
    calls = max(1, -(-B // per_call))
    expect_rows(B * reps + (calls * reps if shared else B * reps))
    for s in range(0, max(B, 1), per_call):
        e = min(B, s + per_call)
        n = (e - s) * reps
        x_rows = tuple(
            (x[s:e] if reps == 1 else x[s:e].repeat_interleave(reps, 0)).detach() for x in xs
        )
        r_rows = refs if shared else tuple(r[s * reps : e * reps] for r in refs)
        pairing = ov.Pairing(n, r_rows[0].shape[0], name)
        chunk_args = tuple(_rows_of(a, B, s, e, reps, not shared) for a in args)
        with torch.enable_grad():
            leaves = tuple(x.requires_grad_() for x in x_rows)
            points = tuple(torch.cat([x, r.detach()]) for x, r in zip(leaves, r_rows))
            rules = deeplift_rules(pairing, eps, name)
            mode = ov.Intercept(rules, name=name, strict=True, sources=points)
            with mode, model_rows(n + pairing.n_ref):
                out = forward_func(*points, *chunk_args)
            mode.check_output(out)
            out = check_model_output(out, n + pairing.n_ref, finite=False)
            sel_x = targets.select(out[:n], reps, s)
            ref_out = out[n:].detach()
            if shared and n:
                ref_out = ref_out.repeat(n // reps, *([1] * (ref_out.dim() - 1)))
            sel_r = targets.select(ref_out[:n], reps, s)
            if not targets.multi and sel_x.shape[1] != 1:
                raise ValueError(
                    f"target: selects {sel_x.shape[1]} outputs per example; give one index "
                    "per example (or a list of lists / target='all' for several targets)"
                )
            if not (all_finite(sel_x) and all_finite(sel_r)):
                raise ValueError("forward_func: returned non-finite values (NaN or inf)")
            grads, _ = _grads_of(sel_x, leaves)
        T = sel_x.shape[1]
        x_det = tuple(x.detach() for x in x_rows)
        if custom is not None:
            r_full = tuple(
                (r.repeat(n // reps, *([1] * (r.dim() - 1))) if shared else r).to(x.dtype)
                for r, x in zip(r_rows, x_det)
            )
            per_t = [
                _call_custom(custom, tuple(g[:, t] for g in grads), x_det, r_full) for t in range(T)
            ]
            chunk = tuple(torch.stack([p[i] for p in per_t], 1) for i in range(len(xs)))
        elif multiply:  # (x - r) by broadcasting: row q * n_ref + j against reference j
            chunk = tuple(
                g * _pair_difference(x, r.to(x.dtype)).unsqueeze(1)
                for g, x, r in zip(grads, x_det, r_rows)
            )
        else:
            chunk = grads
        total = cast(
            Tensor,
            sum(a.reshape(n, T, math.prod(a.shape[2:])).sum(-1) for a in chunk),
        )
        deltas.append(total - (sel_x.detach() - sel_r).to(total.dtype))
        for i, a in enumerate(chunk):
            attrs[i].append(a)
    out_attrs = tuple(parts[0] if len(parts) == 1 else torch.cat(parts) for parts in attrs)
    return out_attrs, deltas[0] if len(deltas) == 1 else torch.cat(deltas)


def _prepare(
    forward_func: Callable, inputs: Any, target: Any, additional_forward_args: Any, custom: Any
) -> tuple[tuple[Tensor, ...], bool, Targets, tuple]:
    """What DeepLift and DeepLiftShap check first: (inputs, is_tuple, targets, args)."""
    xs, is_tuple = format_inputs(inputs)
    float_inputs(xs)
    warn_if_training(forward_func)
    if custom is not None and not callable(custom):
        raise TypeError("custom_attribution_func: expected a callable or None")
    return xs, is_tuple, Targets(target, xs[0].shape[0]), as_args(additional_forward_args)


def _result(
    attrs: tuple[Tensor, ...], delta: Tensor, targets: Targets, is_tuple: bool, with_delta: bool
) -> Any:
    """Captum's return value: the attributions in the inputs' form, then the deltas."""
    result = format_output(finish(attrs, targets.multi), is_tuple)
    if with_delta:
        return result, delta if targets.multi else delta[:, 0]
    return result


def _check_eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps: expected a number >= 0, got {eps!r}")
    return float(eps)


@register(captum=True)
class DeepLift(GradientAttribution):
    """DeepLift with the rescale rule (Captum's DeepLift): every call of a nonlinearity is
    intercepted, module or functional, reused or not, so the attributions sum to
    f(x) - f(baseline) to rounding; an operation without a rule raises ValueError
    naming it instead of giving a wrong answer (see the module's docstring).

    Args:
        model: the model (any callable from input tensors to [B, ...] outputs; the batch
            must stay the first dimension of its intermediate tensors, and it must treat
            examples independently: eval mode).
        multiply_by_inputs: multiply the multipliers by (inputs - baselines) (default
            True: DeepLift's attributions; False: the multipliers, Captum's "local").
        eps: below this |x - x0| a nonlinearity's gradient replaces the secant slope
            (default 1e-10, as Captum).

    Example:
        >>> import torch
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
        ... ).double().eval()
        >>> x = torch.randn(3, 4, dtype=torch.float64)
        >>> a, delta = DeepLift(model).attribute(x, target=1, return_convergence_delta=True)
        >>> a.shape, bool(delta.abs().max() < 1e-12)
        (torch.Size([3, 4]), True)
    """

    def __init__(
        self, model: Callable[..., Any], multiply_by_inputs: bool = True, eps: float = 1e-10
    ) -> None:
        super().__init__(model, multiply_by_inputs=multiply_by_inputs)
        self.model = model
        self.eps = _check_eps(eps)

    def has_convergence_delta(self) -> bool:
        return True

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: Any = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> Any:
        """DeepLift attributions of the selected output against ``baselines``.

        Args:
            inputs: [B, *F] float tensor or a tuple of them.
            baselines: Captum's forms: None (zeros), a number, [*F], [1, *F] or [B, *F]
                per input (a tuple for tuple inputs). Default None.
            target: Captum's forms, or a list of B lists of T indices / "all".
            additional_forward_args: extra arguments for the model (tensors with B rows
                follow the batching).
            return_convergence_delta: also return sum(attributions) - (f(x) - f(x0))
                per example ([B], or [B, T] for several targets). Default False.
            custom_attribution_func: Captum's: called with (multipliers), (multipliers,
                inputs) or (multipliers, inputs, baselines) as tuples of [B, *F]
                tensors, returns the attributions (a tuple). Default None.
            memory_budget: bytes (or "512MB") that size the forward batches.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.

        Returns:
            Same form as ``inputs`` ([B, *F] per input, [B, T, *F] for several
            targets), then the deltas when asked for.

        Example:
            >>> import torch
            >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Sigmoid())
            >>> DeepLift(model.eval()).attribute(torch.randn(2, 3), 0.5, target=0).shape
            torch.Size([2, 3])
        """
        xs, is_tuple, targets, args = _prepare(
            self.forward_func, inputs, target, additional_forward_args, custom_attribution_func
        )
        B = xs[0].shape[0]
        refs = format_baselines(baselines, xs)
        shared = all(r.shape[0] == 1 for r in refs) and not _per_example_args(args, B)
        if not shared:
            refs = tuple(r.expand(B, *r.shape[1:]) for r in refs)
        rows = batch_rows(xs, None, memory_budget)
        attrs, delta = run_deeplift(
            self.forward_func,
            xs,
            refs,
            1,
            args,
            targets,
            self.eps,
            self.multiplies_by_inputs,
            custom_attribution_func,
            rows,
            type(self).__name__,
        )
        return _result(attrs, delta, targets, is_tuple, return_convergence_delta)


@register(captum=True)
class DeepLiftShap(GradientAttribution):
    """DeepLift against a distribution of baselines, averaged (Captum's DeepLiftShap):
    every input against every baseline row, the same rules as :class:`DeepLift`.

    The inputs run once per baseline and the N baselines once per forward call
    (Captum runs B * N baseline rows).

    Args:
        model: the model (see :class:`DeepLift`).
        multiply_by_inputs: multiply by (inputs - baselines) (default True).

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
        ...                             torch.nn.Linear(4, 1)).eval()
        >>> dls = DeepLiftShap(model)
        >>> dls.attribute(torch.randn(2, 3), torch.randn(5, 3)).shape
        torch.Size([2, 3])
    """

    def __init__(self, model: Callable[..., Any], multiply_by_inputs: bool = True) -> None:
        super().__init__(model, multiply_by_inputs=multiply_by_inputs)
        self.model = model
        self.eps = 1e-10

    def has_convergence_delta(self) -> bool:
        return True

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: Any,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
        *,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> Any:
        """The mean of DeepLift's attributions over the baseline rows.

        Args:
            inputs: [B, *F] float tensor or a tuple of them.
            baselines: the distribution, [N, *F] per input with N >= 2 (a tuple for
                tuple inputs), or a callable returning it (called with the inputs when
                it takes an argument).
            target, additional_forward_args, custom_attribution_func: as in
                :meth:`DeepLift.attribute`.
            return_convergence_delta: also return the delta of every (input, baseline)
                pair, [B * N] (row b * N + j), [B * N, T] for several targets.
            memory_budget: bytes (or "512MB") that size the forward batches.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.

        Returns:
            Same form as ``inputs`` ([B, *F] per input, [B, T, *F] for several
            targets), then the deltas when asked for.

        Example:
            >>> import torch
            >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh()).eval()
            >>> a, d = DeepLiftShap(model).attribute(
            ...     torch.randn(2, 3), torch.randn(4, 3), target=1, return_convergence_delta=True
            ... )
            >>> a.shape, d.shape
            (torch.Size([2, 3]), torch.Size([8]))
        """
        xs, is_tuple, targets, args = _prepare(
            self.forward_func, inputs, target, additional_forward_args, custom_attribution_func
        )
        bl = baseline_distribution(baselines, inputs, xs, "DeepLiftShap")
        N = bl[0].shape[0]
        if N < 2 or any(b.shape[0] != N for b in bl):
            raise ValueError(
                "baselines: DeepLiftShap needs a distribution of N >= 2 baseline rows, the "
                f"same N for every input, got {[b.shape[0] for b in bl]} (use DeepLift for "
                "a single baseline)"
            )
        refs, _ = format_inputs(bl, "baselines")  # finite
        B = xs[0].shape[0]
        if _per_example_args(args, B):  # each pair gets its own reference row
            refs = tuple(r.repeat(B, *([1] * (r.dim() - 1))) for r in refs)
        rows = batch_rows(xs, None, memory_budget)
        attrs, delta = run_deeplift(
            self.forward_func,
            xs,
            refs,
            N,
            args,
            targets,
            self.eps,
            self.multiplies_by_inputs,
            custom_attribution_func,
            max(rows, 2 * N),
            type(self).__name__,
        )
        mean = tuple(a.view(B, N, *a.shape[1:]).mean(1) for a in attrs)
        return _result(mean, delta, targets, is_tuple, return_convergence_delta)
