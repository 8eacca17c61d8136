"""Masking / multiplicative smoothing: build the perturbed batch

    out[b, s, ...] = base + m[b, s, group(...)] * (x - base)

where ``group`` (Captum's ``feature_mask``) maps every input element to one
of d features (superpixels, patches, tokens, columns). Computed as a select,
``m ? x : base``, which is the same for binary m and exact in floating point.
Token ids (int64) are masked by replacement with the same formula.
"""

from __future__ import annotations

import math

import torch

from xattr import _ext
from xattr.ops import _checks, _reference, _thresholds
from xattr.ops.sampling import SAMPLER_CODES, to_signed64

MASKABLE = (torch.float32, torch.float64, torch.int64)


# ----------------------------------------------------------------- custom ops
def _mask_apply_impl(
    x: torch.Tensor, base: torch.Tensor, group: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """The body of ``xattr::mask_apply``: [B, E] inputs, [1 or B, E] base and group,
    bool [1 or B, S, d] masks -> [B, S, E]."""
    x, base, group, masks = (t.contiguous() for t in (x, base, group, masks))
    if not _ext.use_kernels(x.device):
        return _reference.mask_apply(x, base, group, masks)
    B, E = x.shape
    S, d = masks.shape[1], masks.shape[2]
    out = x.new_empty((B, S, E))
    _ext.lib().mask_apply(
        x=_ext.buf(x),
        base=_ext.buf(base),
        group=_ext.buf(group),
        masks=_ext.buf(masks),
        out=_ext.buf(out),
        B=B,
        S=S,
        E=E,
        d=d,
        base_bstride=_ext.batch_stride(base, E),
        group_bstride=_ext.batch_stride(group, E),
        mask_bstride=_ext.batch_stride(masks, S * d),
        **_ext.where(x),
    )
    return out


_mask_apply_op = torch.library.custom_op(
    "xattr::mask_apply", mutates_args=(), device_types=("cpu", "cuda")
)(_mask_apply_impl)


@_mask_apply_op.register_fake
def _(x, base, group, masks):
    return x.new_empty((x.shape[0], masks.shape[1], x.shape[1]))


def _bits(masks: torch.Tensor, group: torch.Tensor, B: int) -> torch.Tensor:
    """The mask bit of every output element, bool [B, S, E]."""
    S, E = masks.shape[1], group.shape[1]
    m = masks.expand(B, -1, -1)
    return torch.gather(m, 2, group.expand(B, E).unsqueeze(1).expand(B, S, E))


def _select_backward(ctx, grad: torch.Tensor, bits: torch.Tensor):
    """Gradients of out = bits ? x : base with respect to x and base."""
    gx = gb = None
    if ctx.needs_input_grad[0]:
        gx = torch.where(bits, grad, 0).sum(1)
    if ctx.needs_input_grad[1]:
        gb = torch.where(bits, 0, grad).sum(1)
        if ctx.base_rows == 1:
            gb = gb.sum(0, keepdim=True)
    return gx, gb


def _mask_apply_setup(ctx, inputs, output) -> None:
    x, base, group, masks = inputs
    ctx.save_for_backward(group, masks)
    ctx.base_rows = base.shape[0]


def _mask_apply_backward(ctx, grad):
    group, masks = ctx.saved_tensors
    return (*_select_backward(ctx, grad, _bits(masks, group, grad.shape[0])), None, None)


_mask_apply_op.register_autograd(_mask_apply_backward, setup_context=_mask_apply_setup)


@torch.library.custom_op("xattr::mask_apply_sampled", mutates_args=(), device_types=("cpu", "cuda"))
def _mask_apply_sampled_op(
    x: torch.Tensor,
    base: torch.Tensor,
    group: torch.Tensor,
    d: int,
    n_samples: int,
    sampler: int,
    seed: int,
    p: float,
    q: int,
    L: int,
    row_offset: int,
    per_example: bool,
) -> torch.Tensor:
    x, base, group = (t.contiguous() for t in (x, base, group))
    seed_u = seed % 2**64
    name = "mus" if sampler == SAMPLER_CODES["mus"] else "bernoulli"
    if not _ext.use_kernels(x.device):
        return _reference.mask_apply_sampled(
            x,
            base,
            group,
            d,
            n_samples,
            name,
            seed_u,
            p=p,
            q=q,
            L=L,
            row_offset=row_offset,
            per_example=per_example,
        )
    B, E = x.shape
    out = x.new_empty((B, n_samples, E))
    _ext.lib().mask_apply(
        x=_ext.buf(x),
        base=_ext.buf(base),
        group=_ext.buf(group),
        out=_ext.buf(out),
        B=B,
        S=n_samples,
        E=E,
        d=d,
        base_bstride=_ext.batch_stride(base, E),
        group_bstride=_ext.batch_stride(group, E),
        sampler=sampler,
        seed=seed_u,
        bern_threshold=_thresholds.bernoulli_threshold(p),
        q=q,
        L=L,
        row_offset=row_offset,
        per_example=per_example,
        **_ext.where(x),
    )
    return out


@_mask_apply_sampled_op.register_fake
def _(x, base, group, d, n_samples, sampler, seed, p, q, L, row_offset, per_example):
    return x.new_empty((x.shape[0], n_samples, x.shape[1]))


def _sampled_setup(ctx, inputs, output) -> None:
    x, base, group, *rest = inputs
    ctx.save_for_backward(group)
    ctx.rest = rest
    ctx.base_rows = base.shape[0]
    ctx.shape = x.shape


def _sampled_backward(ctx, grad):
    (group,) = ctx.saved_tensors
    # Regenerate the bits: the fused kernel applied to x = 1, base = 0.
    B, E = ctx.shape
    ones = torch.ones((B, E), dtype=grad.dtype, device=grad.device)
    zeros = torch.zeros((1, E), dtype=grad.dtype, device=grad.device)
    bits = _mask_apply_sampled_op(ones, zeros, group, *ctx.rest).bool()
    return (*_select_backward(ctx, grad, bits), *([None] * 10))


_mask_apply_sampled_op.register_autograd(_sampled_backward, setup_context=_sampled_setup)


# ------------------------------------------------------------- public API
def _per_example(name: str, t: torch.Tensor, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Brings ``t`` to [1, E] (shared: shaped like one example, or with a
    leading 1) or [B, E] (per example: shaped like x)."""
    feat = tuple(x.shape[1:])
    if t.dim() == x.dim() and t.shape[0] in (1, x.shape[0]):
        try:
            t = t.broadcast_to((t.shape[0],) + feat)
        except RuntimeError:
            pass
        else:
            return t.reshape(t.shape[0], math.prod(feat)).to(dtype).contiguous()
    try:
        t = t.broadcast_to(feat)
    except RuntimeError:
        raise ValueError(
            f"{name}: expected a shape broadcastable to one example {feat} or equal to the "
            f"batch {tuple(x.shape)}, got {tuple(t.shape)}"
        ) from None
    return t.reshape(1, math.prod(feat)).to(dtype).contiguous()


def prepare(x, feature_mask, baselines):
    """Checks and flattens: x to [B, E], the group map to [Bg, E], the base to [Bb, E]
    (the inputs of ``torch.ops.xattr.mask_apply``; ids are checked against d by the
    caller)."""
    _checks.tensor("inputs", x, dtypes=MASKABLE)
    if x.dim() < 2:
        raise ValueError(
            f"inputs: expected [batch, ...] with at least 2 dimensions, got {tuple(x.shape)}"
        )
    _checks.tensor("feature_mask", feature_mask)
    if feature_mask.is_floating_point() or feature_mask.dtype == torch.bool:
        raise TypeError(f"feature_mask: expected an integer dtype, got {feature_mask.dtype}")
    _checks.finite("inputs", x)
    group = _per_example("feature_mask", feature_mask, x, torch.int64)
    if isinstance(baselines, torch.Tensor):
        if x.is_floating_point() != baselines.is_floating_point():
            raise TypeError(
                f"baselines: dtype {baselines.dtype} does not suit inputs of dtype {x.dtype}"
            )
        _checks.finite("baselines", baselines)
        base = _per_example("baselines", baselines, x, x.dtype)
    elif isinstance(baselines, (int, float)) and not isinstance(baselines, bool):
        if not x.is_floating_point() and not isinstance(baselines, int):
            raise TypeError("baselines: token-id inputs need an integer replacement id")
        base = torch.full((1, math.prod(x.shape[1:])), baselines, dtype=x.dtype, device=x.device)
        _checks.finite("baselines", base)
    else:
        raise TypeError(f"baselines: expected a number or a tensor, got {type(baselines).__name__}")
    _checks.same_device(inputs=x, feature_mask=group, baselines=base)
    if group.numel() > 0 and int(group.min()) < 0:
        raise ValueError(f"feature_mask: ids must be >= 0, found {int(group.min())}")
    return x.reshape(x.shape[0], math.prod(x.shape[1:])).contiguous(), group, base


def apply_prepared(
    prepared: tuple[torch.Tensor, torch.Tensor, torch.Tensor], masks: torch.Tensor
) -> torch.Tensor:
    """Masks applied to inputs checked once by :func:`prepare` -> [B, S, E].

    ``masks``: bool [1 or B, S, d] with d above every id. Calls the kernel
    without the dispatcher (no autograd, ~20 us less per call), for loops that
    mask once per forward batch under ``torch.no_grad``.
    """
    x, group, base = prepared
    return _mask_apply_impl(x, base, group, masks)


def _n_features(group: torch.Tensor, d: int | None) -> int:
    top = int(group.max()) + 1 if group.numel() > 0 else 1
    if d is None:
        return top
    d = _checks.int_arg("d", d, minimum=1)
    if top > d:
        raise ValueError(f"feature_mask: ids must be in [0, {d}), found {top - 1}")
    return d


def mask_apply(
    inputs: torch.Tensor,
    masks: torch.Tensor,
    feature_mask: torch.Tensor,
    baselines: float | int | torch.Tensor = 0.0,
) -> torch.Tensor:
    """Applies binary feature masks to a batch of inputs.

    ``out[b, s] = inputs[b]`` where feature ``feature_mask[...]`` is on in
    ``masks[(b,) s]``, else ``baselines``. Differentiable in inputs and
    baselines.

    Args:
        inputs: [B, *F] float32, float64 or int64 (token ids: replacement).
        masks: bool [S, d] shared by the batch, or [B, S, d] per example.
        feature_mask: integer ids in [0, d), shaped like one example ``F``
            (shared) or like ``inputs`` (per example).
        baselines: a number, a tensor broadcastable to one example, or one per
            example ([B, *F]). Default 0 (multiplicative smoothing).

    Returns:
        [B, S, *F], dtype of inputs.

    Example:
        >>> x = torch.arange(4.0).reshape(1, 4)
        >>> m = torch.tensor([[True, False]])
        >>> mask_apply(x, m, torch.tensor([0, 0, 1, 1])).tolist()
        [[[0.0, 1.0, 0.0, 0.0]]]
    """
    x2, group, base = prepare(inputs, feature_mask, baselines)
    _checks.tensor("masks", masks, dtypes=(torch.bool,), ndim=(2, 3))
    m3 = masks.unsqueeze(0) if masks.dim() == 2 else masks
    if m3.shape[0] not in (1, x2.shape[0]):
        raise ValueError(
            f"masks: per-example masks need batch {x2.shape[0]}, got {tuple(masks.shape)}"
        )
    _checks.same_device(inputs=inputs, masks=masks)
    _n_features(group, m3.shape[2])
    out = _mask_apply_op(x2, base, group, m3.contiguous())
    return out.reshape((x2.shape[0], m3.shape[1]) + tuple(inputs.shape[1:]))


def mask_apply_sampled(
    inputs: torch.Tensor,
    feature_mask: torch.Tensor,
    n_samples: int,
    *,
    sampler: str = "bernoulli",
    p: float = 0.5,
    lambda_: float | None = None,
    q: int | None = None,
    seed: int | None = None,
    baselines: float | int | torch.Tensor = 0.0,
    n_features: int | None = None,
    per_example: bool = False,
    row_offset: int = 0,
) -> torch.Tensor:
    """Samples masks and applies them in one pass, never materialising the masks.

    Bit for bit the same as sampling with :func:`xattr.ops.bernoulli_masks` /
    :func:`xattr.ops.mus_noise` and calling :func:`mask_apply`.

    Args:
        inputs, feature_mask, baselines: as :func:`mask_apply`.
        n_samples: S, perturbed copies per input.
        sampler: "bernoulli" (keep probability ``p``) or "mus" (structured
            noise with ``lambda_`` and ``q``; then rows ``row_offset`` ..
            ``row_offset + n_samples - 1`` of the q x d noise).
        seed: 64-bit seed; None draws from torch's global generator.
        n_features: d; default ``feature_mask.max() + 1``.
        per_example: Bernoulli only: example b uses rows b*S .. b*S + S - 1
            (else every example shares rows 0..S-1).
        row_offset: first mask row, to produce the stream in chunks.

    Returns:
        [B, S, *F].

    Example:
        >>> x = torch.ones(2, 6)
        >>> y = mask_apply_sampled(x, torch.arange(6), 8, sampler="mus", lambda_=0.5, q=8, seed=0)
        >>> y.shape
        torch.Size([2, 8, 6])
    """
    x2, group, base = prepare(inputs, feature_mask, baselines)
    d = _n_features(group, n_features)
    n_samples = _checks.int_arg("n_samples", n_samples, minimum=0)
    # Mask rows row_offset .. row_offset + rows - 1, with rows = B * n_samples per example:
    # every row index must fit an int64 (the kernel's counters and the reference's).
    rows = x2.shape[0] * n_samples if per_example else n_samples
    row_offset = _checks.int_arg("row_offset", row_offset, minimum=0, maximum=2**63 - 1 - rows)
    level = 0
    if sampler == "mus":
        if lambda_ is None or q is None:
            raise ValueError("sampler='mus' needs lambda_ and q")
        level = _checks.mus_level(lambda_, q)
        if row_offset + n_samples > q:
            raise ValueError(
                f"n_samples + row_offset: MuS noise has q = {q} rows, asked for "
                f"{row_offset + n_samples}"
            )
        if per_example:
            raise ValueError("per_example: MuS noise is shared by the batch")
    elif sampler == "bernoulli":
        p = _checks.prob("p", p)
    else:
        raise ValueError(f"sampler: expected 'bernoulli' or 'mus', got {sampler!r}")
    out = _mask_apply_sampled_op(
        x2,
        base,
        group,
        d,
        n_samples,
        SAMPLER_CODES[sampler],
        to_signed64(_checks.seed(seed)),
        float(p),
        int(q or 0),
        level,
        row_offset,
        bool(per_example),
    )
    return out.reshape((x2.shape[0], n_samples) + tuple(inputs.shape[1:]))
