"""DeepLift's rules as kernels: the rescale rule's multiplier of an elementwise
nonlinearity, computed in one pass over a batch that holds the inputs' rows and then
their references' rows (the layout of ``xattr._core.overrides.Pairing``):

    m = (g(x) - g(x_ref)) / (x - x_ref),   or g'(x) where |x - x_ref| < eps,

input row i paired with reference row ``i mod ref_rows``. The pure-torch reference
(:func:`xattr.ops._reference.rescale_multiplier`) takes seven tensor operations for it;
the two agree bit for bit.
"""

from __future__ import annotations

import math

import torch

from xattr import _ext
from xattr.ops import _checks, _reference

RESCALE_KINDS = _reference.RESCALE_KINDS


def _rescale_impl(
    x: torch.Tensor,
    y: torch.Tensor,
    ref_rows: int,
    kind: int,
    eps: float,
    deriv: torch.Tensor | None,
) -> torch.Tensor:
    """The body of ``xattr::rescale_multiplier``: x, y [N, *rest] -> m [N - ref_rows, *rest]."""
    if not _ext.use_kernels(x.device):
        return _reference.rescale_multiplier(x, y, ref_rows, RESCALE_KINDS[kind], eps, deriv)
    n = x.shape[0] - ref_rows
    m = x.new_empty((n, *x.shape[1:]))
    x, y = x.contiguous(), y.contiguous()
    R = math.prod(x.shape[1:])
    extra = {} if deriv is None else {"deriv": _ext.buf(deriv.contiguous())}
    _ext.lib().rescale_multiplier(
        x=_ext.buf(x),
        y=_ext.buf(y),
        m=_ext.buf(m),
        rows=n,
        R=R,
        P=ref_rows * R,
        kind=kind,
        eps=eps,
        **extra,
        **_ext.where(x),
    )
    return m


_rescale_op = torch.library.custom_op(
    "xattr::rescale_multiplier", mutates_args=(), device_types=("cpu", "cuda")
)(_rescale_impl)


@_rescale_op.register_fake
def _(x, y, ref_rows, kind, eps, deriv):
    return x.new_empty((x.shape[0] - ref_rows, *x.shape[1:]))


def check_rescale(
    x: torch.Tensor,
    y: torch.Tensor,
    ref_rows: int,
    kind: str,
    eps: float,
    deriv: torch.Tensor | None,
) -> int:
    """The checks of :func:`rescale_multiplier`; returns the kernel's code of ``kind``."""
    _checks.tensor("x", x, dtypes=(torch.float32, torch.float64))
    _checks.tensor("y", y, dtypes=(x.dtype,))
    if x.dim() == 0 or y.shape != x.shape or y.device != x.device:
        raise ValueError(
            f"x, y: expected two tensors of one shape [N, ...] on one device, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if kind not in RESCALE_KINDS:
        raise ValueError(f"kind: expected one of {RESCALE_KINDS}, got {kind!r}")
    n = x.shape[0] - ref_rows
    if isinstance(ref_rows, bool) or ref_rows < 1 or n < 0 or n % ref_rows:
        raise ValueError(
            f"ref_rows: expected a number of reference rows >= 1 dividing the {n} input "
            f"rows of x ({x.shape[0]} rows in all), got {ref_rows}"
        )
    if not eps >= 0:
        raise ValueError(f"eps: expected a number >= 0, got {eps!r}")
    if (deriv is None) == (kind == "given"):
        raise ValueError("deriv: give the derivative [n, ...] exactly when kind='given'")
    if deriv is not None:
        _checks.tensor("deriv", deriv, dtypes=(x.dtype,))
        if deriv.shape != (n, *x.shape[1:]) or deriv.device != x.device:
            raise ValueError(
                f"deriv: expected shape {(n, *x.shape[1:])} on {x.device}, got "
                f"{tuple(deriv.shape)} on {deriv.device}"
            )
    return RESCALE_KINDS.index(kind)


def rescale_multiplier(
    x: torch.Tensor,
    y: torch.Tensor,
    ref_rows: int,
    kind: str = "relu",
    eps: float = 1e-10,
    deriv: torch.Tensor | None = None,
) -> torch.Tensor:
    """DeepLift's rescale multiplier of y = g(x), for a batch of inputs followed by
    their references.

    Args:
        x: [n + ref_rows, *rest] float32/float64: the nonlinearity's input, the inputs'
            n rows first, then the references' ref_rows rows (input row i is paired with
            reference row i mod ref_rows).
        y: g(x), the same shape.
        ref_rows: number of reference rows, >= 1, dividing n.
        kind: g: "relu", "sigmoid", "tanh" (their derivatives are computed from x and y)
            or "given" (the derivative is ``deriv``). Default "relu".
        eps: below this |x - x_ref| the derivative replaces the secant. Default 1e-10.
        deriv: [n, *rest] g'(x) on the inputs' rows (kind="given" only).

    Returns:
        m [n, *rest]: (y - y_ref) / (x - x_ref), or g'(x) where |x - x_ref| < eps.

    Example:
        >>> import torch
        >>> x = torch.tensor([[2.0, -1.0], [1e-12, 3.0], [0.0, 1.0]])  # 2 inputs, 1 reference
        >>> rescale_multiplier(x, torch.relu(x), ref_rows=1)  # 1e-12 - 0 < eps: relu'(1e-12)
        tensor([[1.0000, 0.5000],
                [1.0000, 1.0000]])
    """
    code = check_rescale(x, y, ref_rows, kind, eps, deriv)
    return _rescale_op(x, y, ref_rows, code, float(eps), deriv)


def rescale_multiplier_unchecked(
    x: torch.Tensor,
    y: torch.Tensor,
    ref_rows: int,
    kind: str,
    eps: float,
    deriv: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`rescale_multiplier` on arguments the caller has already checked: the kernel
    without the checks and the dispatcher (about 14 us less per call), for DeepLift's
    rules, which run it once per nonlinearity call inside an autograd Function (no
    tracing, no autograd through it). Other dtypes than float32 / float64 (half,
    bfloat16) run the pure-torch reference."""
    if x.dtype not in (torch.float32, torch.float64):
        return _reference.rescale_multiplier(x, y, ref_rows, kind, eps, deriv)
    return _rescale_impl(x, y, ref_rows, RESCALE_KINDS.index(kind), eps, deriv)
