"""Path integration for Integrated Gradients with K baselines per input.

Points on the straight paths ``b_k + alpha_j (x - b_k)``, the quadrature
rules Captum names (riemann_left / right / middle / trapezoid,
gausslegendre), and the weighted sum of gradients times ``(x - b_k)``,
averaged over baselines. The integral is linear in the weights, so long paths
can be integrated in chunks of steps and added up.
"""

from __future__ import annotations

import math

import torch

from xattr import _ext
from xattr.ops import _checks, _reference

METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")
REDUCTIONS = ("mean", "sum", "none")


def quadrature(
    method: str = "gausslegendre",
    n_steps: int = 50,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quadrature nodes (alphas) and weights on [0, 1], with Captum's rules.

    Riemann rules use equal weights 1/n; as in Captum, ``riemann_trapezoid``
    halves the two end weights of 1/n (so they sum to 1 - 1/n) with nodes
    ``linspace(0, 1, n)``. ``gausslegendre`` is exact for polynomials of
    degree 2n - 1.

    Returns:
        (alphas [n_steps], weights [n_steps]).

    Example:
        >>> a, w = quadrature("riemann_middle", 4)
        >>> a.tolist(), w.tolist()
        ([0.125, 0.375, 0.625, 0.875], [0.25, 0.25, 0.25, 0.25])
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    n_steps = _checks.int_arg("n_steps", n_steps, minimum=1 if method == "gausslegendre" else 2)
    device = _checks.device("device", device)
    if _ext.kernels_available():
        alphas, weights = _ext.lib().quadrature(method, n_steps)
    else:
        alphas, weights = _reference.quadrature(method, n_steps)
    return (
        torch.tensor(alphas, dtype=dtype, device=device),
        torch.tensor(weights, dtype=dtype, device=device),
    )


# ----------------------------------------------------------------- custom ops
def points_flat(x: torch.Tensor, base: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Path points on flat, checked data: x [B, E], base [1 or B, K, E], alphas [J] ->
    [B, K, J, E]. The body of ``xattr::path_points``; explainers call it directly
    (no dispatcher, no autograd) once per batch of rows."""
    x, base, alphas = (t.contiguous() for t in (x, base, alphas))
    if not _ext.use_kernels(x.device):
        return _reference.path_points(x, base, alphas)
    B, E = x.shape
    K, J = base.shape[1], alphas.shape[0]
    out = x.new_empty((B, K, J, E))
    _ext.lib().path_points(
        x=_ext.buf(x),
        base=_ext.buf(base),
        alphas=_ext.buf(alphas),
        out=_ext.buf(out),
        B=B,
        K=K,
        J=J,
        E=E,
        base_bstride=_ext.batch_stride(base, K * E),
        **_ext.where(x),
    )
    return out


_path_points_op = torch.library.custom_op(
    "xattr::path_points", mutates_args=(), device_types=("cpu", "cuda")
)(points_flat)


@_path_points_op.register_fake
def _(x, base, alphas):
    return x.new_empty((x.shape[0], base.shape[1], alphas.shape[0], x.shape[1]))


def _path_points_setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[2])
    ctx.base_rows = inputs[1].shape[0]


def _path_points_backward(ctx, grad):
    (alphas,) = ctx.saved_tensors
    a = alphas.to(grad.dtype).view(1, 1, -1, 1)
    gx = gb = None
    if ctx.needs_input_grad[0]:
        gx = (grad * a).sum((1, 2))
    if ctx.needs_input_grad[1]:
        gb = (grad * (1 - a)).sum(2)
        if ctx.base_rows == 1:
            gb = gb.sum(0, keepdim=True)
    return gx, gb, None


_path_points_op.register_autograd(_path_points_backward, setup_context=_path_points_setup)


def integrate_flat(
    grads: torch.Tensor,
    x: torch.Tensor,
    base: torch.Tensor,
    weights: torch.Tensor,
    reduction: int,
    multiply_by_inputs: bool,
    path_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Path integration on flat, checked data: grads [B, K, J, E], x [B, E], base
    [1 or B, K, E], weights [J], reduction an index into REDUCTIONS -> [B, E] (or
    [B, K, E]), path_weights None or [1 or B, K, E] (every path's element weights,
    before the reduction). The body of ``xattr::path_integrate``; no finiteness check."""
    grads, x, base, weights = (t.contiguous() for t in (grads, x, base, weights))
    if path_weights is not None:
        path_weights = path_weights.contiguous()
    if not _ext.use_kernels(x.device):
        return _reference.path_integrate(
            grads, x, base, weights, REDUCTIONS[reduction], multiply_by_inputs, path_weights
        )
    B, K, J, E = grads.shape
    out = x.new_empty((B, K, E) if REDUCTIONS[reduction] == "none" else (B, E))
    _ext.lib().path_integrate(
        grads=_ext.buf(grads),
        x=_ext.buf(x),
        base=_ext.buf(base),
        weights=_ext.buf(weights),
        out=_ext.buf(out),
        B=B,
        K=K,
        J=J,
        E=E,
        base_bstride=_ext.batch_stride(base, K * E),
        reduction=reduction,
        multiply_by_inputs=multiply_by_inputs,
        path_weights=None if path_weights is None else _ext.buf(path_weights),
        pw_bstride=0 if path_weights is None else _ext.batch_stride(path_weights, K * E),
        **_ext.where(x),
    )
    return out


_path_integrate_op = torch.library.custom_op(
    "xattr::path_integrate", mutates_args=(), device_types=("cpu", "cuda")
)(integrate_flat)


@_path_integrate_op.register_fake
def _(grads, x, base, weights, reduction, multiply_by_inputs, path_weights=None):
    B, K, _, E = grads.shape
    return x.new_empty((B, K, E) if REDUCTIONS[reduction] == "none" else (B, E))


# ------------------------------------------------------------- public API
def _flat_baselines(
    inputs: torch.Tensor, baselines: torch.Tensor, name: str = "baselines"
) -> torch.Tensor:
    """[B or 1, K, *F] -> [B or 1, K, E], checked (shape, dtype, finite)."""
    feat = tuple(inputs.shape[1:])
    _checks.tensor(name, baselines, dtypes=_checks.FLOATS)
    if (
        baselines.dim() != inputs.dim() + 1
        or tuple(baselines.shape[2:]) != feat
        or (baselines.shape[0] not in (1, inputs.shape[0]))
    ):
        raise ValueError(
            f"{name}: expected [B, K, *F] or [1, K, *F] with inputs {tuple(inputs.shape)}, "
            f"got {tuple(baselines.shape)}"
        )
    if baselines.dtype != inputs.dtype:
        raise TypeError(f"{name}: dtype {baselines.dtype} differs from inputs {inputs.dtype}")
    _checks.finite(name, baselines)
    return baselines.reshape(baselines.shape[0], baselines.shape[1], math.prod(feat)).contiguous()


def _flat_inputs(inputs: torch.Tensor) -> torch.Tensor:
    _checks.tensor("inputs", inputs, dtypes=_checks.FLOATS)
    if inputs.dim() < 2:
        raise ValueError(
            f"inputs: expected [B, *F] with at least 2 dimensions, got {tuple(inputs.shape)}"
        )
    _checks.finite("inputs", inputs)
    return inputs.reshape(inputs.shape[0], math.prod(inputs.shape[1:])).contiguous()


def _vector(name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    _checks.tensor(name, t, dtypes=_checks.FLOATS, ndim=1)
    _checks.finite(name, t)
    return t.to(like.dtype).contiguous()


def _may_overflow(x: torch.Tensor, base: torch.Tensor, alphas: torch.Tensor) -> bool:
    """Whether b + a (x - b) can leave the dtype's range: |b| + |a| (|x| + |b|) bounds
    every intermediate and result (computed in float64, from the finite inputs)."""
    if not (x.numel() and base.numel() and alphas.numel()):
        return False
    mx, mb, ma = (float(t.detach().abs().max()) for t in (x, base, alphas))
    return mb + ma * (mx + mb) >= torch.finfo(x.dtype).max / 2


def path_points(
    inputs: torch.Tensor, baselines: torch.Tensor, alphas: torch.Tensor
) -> torch.Tensor:
    """Points on the straight paths from each baseline to its input.

    ``out[b, k, j] = baselines[b, k] + alphas[j] * (inputs[b] - baselines[b, k])``,
    Captum's order of operations. Differentiable in inputs and baselines.

    Args:
        inputs: [B, *F] float32 / float64.
        baselines: [B, K, *F] (per input) or [1, K, *F] (shared), same dtype.
        alphas: [J] nodes, e.g. from :func:`quadrature`.

    Returns:
        [B, K, J, *F].

    Example:
        >>> x = torch.ones(1, 3)
        >>> a, _ = quadrature("riemann_right", 2, dtype=torch.float32)
        >>> path_points(x, torch.zeros(1, 1, 3), a)[0, 0].tolist()
        [[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]
    """
    x2 = _flat_inputs(inputs)
    b3 = _flat_baselines(inputs, baselines)
    a = _vector("alphas", alphas, x2)
    _checks.same_device(inputs=x2, baselines=b3, alphas=a)
    out = _path_points_op(x2, b3, a)
    if _may_overflow(x2, b3, a):  # else the [B, K, J, E] result need not be scanned
        _checks.finite_result("path_points", "inputs, baselines or alphas", out)
    return out.reshape((x2.shape[0], b3.shape[1], a.shape[0]) + tuple(inputs.shape[1:]))


def path_integrate(
    grads: torch.Tensor,
    inputs: torch.Tensor,
    baselines: torch.Tensor,
    weights: torch.Tensor,
    *,
    reduction: str = "mean",
    multiply_by_inputs: bool = True,
    path_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Integrated-gradients sum over path points, in float64 accumulation.

    ``attr[b] = reduce_k (inputs[b] - baselines[b, k]) * sum_j weights[j] grads[b, k, j]``;
    with ``multiply_by_inputs=False`` the factor ``(inputs - baselines)`` is
    left out (Captum's "global" attribution). Linear in ``weights``: chunks of
    steps can be integrated separately and summed.

    Args:
        grads: [B, K, J, *F] gradients at :func:`path_points`.
        inputs, baselines: as :func:`path_points`.
        weights: [J] quadrature weights.
        reduction: "mean" (default) or "sum" over baselines -> [B, *F];
            "none" -> [B, K, *F].
        path_weights: optional [B, K, *F] or [1, K, *F] weights that multiply every
            path's attributions element by element before the reduction (e.g.
            ``reduction="sum"`` gives ``sum_k path_weights[:, k] * IG(x; b_k)``).

    Returns:
        Attributions, dtype of inputs.

    Example:
        >>> x = torch.ones(1, 2)
        >>> a, w = quadrature("gausslegendre", 4, dtype=torch.float32)
        >>> b = torch.zeros(1, 1, 2)
        >>> g = torch.full((1, 1, 4, 2), 3.0)  # f(x) = 3 * sum(x)
        >>> path_integrate(g, x, b, w).tolist()
        [[3.0, 3.0]]
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    x2 = _flat_inputs(inputs)
    b3 = _flat_baselines(inputs, baselines)
    w = _vector("weights", weights, x2)
    _checks.tensor("grads", grads, dtypes=_checks.FLOATS)
    B, K, J = x2.shape[0], b3.shape[1], w.shape[0]
    if K == 0 and reduction == "mean":
        raise ValueError(
            "baselines: the mean over baselines needs at least one (K >= 1), got K = 0"
        )
    if tuple(grads.shape) != (B, K, J) + tuple(inputs.shape[1:]):
        raise ValueError(
            f"grads: expected {(B, K, J) + tuple(inputs.shape[1:])} (B, K, J, *F), "
            f"got {tuple(grads.shape)}"
        )
    _checks.same_device(inputs=x2, baselines=b3, weights=w, grads=grads)
    g4 = grads.to(x2.dtype).reshape(B, K, J, x2.shape[1])
    pw = None
    if path_weights is not None:
        pw = _flat_baselines(inputs, path_weights, "path_weights")
        if pw.shape[1] != K:
            raise ValueError(f"path_weights: expected K = {K} paths, got {pw.shape[1]}")
        _checks.same_device(inputs=x2, path_weights=pw)
    red = REDUCTIONS.index(reduction)
    out = _path_integrate_op(g4, x2, b3, w, red, bool(multiply_by_inputs), pw)
    # A NaN or inf gradient always reaches the (much smaller) output: every gradient is
    # multiplied by a finite weight and, when multiplying, by x - b (inf * 0 is NaN too).
    # Checking the output costs B*E reads instead of B*K*J*E; only a non-finite output
    # reads the gradients, to tell bad gradients from an overflow of finite ones.
    if not _checks.all_finite(out):
        if not _checks.all_finite(g4):
            raise ValueError(
                "grads: contain non-finite values (NaN or inf); the attributions would too"
            )
        _checks.finite_result("path_integrate", "grads, inputs, baselines or weights", out)
    lead = (B, K) if reduction == "none" else (B,)
    return out.reshape(lead + tuple(inputs.shape[1:]))
