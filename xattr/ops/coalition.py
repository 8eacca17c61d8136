"""Coalition evaluation: turn model outputs on coalitions into attributions.

All solvers work in float64 inside the kernels and return the dtype of
``values``. Masks are bool, shared by the batch ([n, d]) or per example
([B, n, d]); values are [B, n] (one output) or [B, n, T] (T outputs solved
together, sharing every factorisation).
"""

from __future__ import annotations

import math

import torch

from xattr import _ext
from xattr.ops import _checks, _reference
from xattr.ops.sampling import MAX_ENUMERATION_FEATURES


def _workspace(sizes: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    doubles, ints = sizes
    return (
        torch.empty(doubles, dtype=torch.float64, device=device),
        torch.empty(ints, dtype=torch.int32, device=device),
    )


def _bstride(t: torch.Tensor, per_item: int) -> int:
    """Batch stride of a [1 or B, ...] tensor: 0 when shared (a leading 1), else one
    item. A per-example tensor of an empty batch (B = 0) is per example too."""
    return _ext.batch_stride(t, per_item)


# ----------------------------------------------------------------- custom ops
@torch.library.custom_op("xattr::kernel_shap_solve", mutates_args=(), device_types=("cpu", "cuda"))
def _kernel_shap_solve_op(
    masks: torch.Tensor,
    weights: torch.Tensor,
    values: torch.Tensor,
    v_empty: torch.Tensor,
    v_full: torch.Tensor,
    rho: float = 0.0,
) -> torch.Tensor:
    masks, weights, values, v_empty, v_full = (
        t.contiguous() for t in (masks, weights, values, v_empty, v_full)
    )
    if not _ext.use_kernels(values.device):
        return _reference.kernel_shap_solve(masks, weights, values, v_empty, v_full, rho)
    B, n, T = values.shape
    d = masks.shape[2]
    mbs, wbs = _bstride(masks, n * d), _bstride(weights, n)
    out = values.new_empty((B, T, d))
    work, scratch = _workspace(
        _ext.lib().kernel_shap_solve_workspace(
            B=B, n=n, d=d, T=T, mask_bstride=mbs, weight_bstride=wbs
        ),
        values.device,
    )
    _ext.lib().kernel_shap_solve(
        masks=_ext.buf(masks),
        weights=_ext.buf(weights),
        values=_ext.buf(values),
        v_empty=_ext.buf(v_empty),
        v_full=_ext.buf(v_full),
        out=_ext.buf(out),
        work=_ext.buf(work),
        scratch=_ext.buf(scratch),
        B=B,
        n=n,
        d=d,
        T=T,
        mask_bstride=mbs,
        weight_bstride=wbs,
        rho=rho,
        **_ext.where(values),
    )
    return out


@_kernel_shap_solve_op.register_fake
def _(masks, weights, values, v_empty, v_full, rho=0.0):
    return values.new_empty((values.shape[0], values.shape[2], masks.shape[2]))


@torch.library.custom_op("xattr::linear_fit", mutates_args=(), device_types=("cpu", "cuda"))
def _linear_fit_op(
    masks: torch.Tensor,
    weights: torch.Tensor,
    values: torch.Tensor,
    alpha: float,
    lasso: bool,
    max_iter: int,
    tol: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    masks, weights, values = (t.contiguous() for t in (masks, weights, values))
    if not _ext.use_kernels(values.device):
        return _reference.linear_fit(masks, weights, values, alpha, lasso, max_iter, tol)
    B, n, T = values.shape
    d = masks.shape[2]
    mbs, wbs = _bstride(masks, n * d), _bstride(weights, n)
    coef = values.new_empty((B, T, d))
    intercept = values.new_empty((B, T))
    work, scratch = _workspace(
        _ext.lib().linear_fit_workspace(B=B, n=n, d=d, T=T, mask_bstride=mbs, weight_bstride=wbs),
        values.device,
    )
    _ext.lib().linear_fit(
        masks=_ext.buf(masks),
        weights=_ext.buf(weights),
        values=_ext.buf(values),
        coef=_ext.buf(coef),
        intercept=_ext.buf(intercept),
        work=_ext.buf(work),
        scratch=_ext.buf(scratch),
        B=B,
        n=n,
        d=d,
        T=T,
        mask_bstride=mbs,
        weight_bstride=wbs,
        alpha=alpha,
        lasso=lasso,
        max_iter=max_iter,
        tol=tol,
        **_ext.where(values),
    )
    return coef, intercept


@_linear_fit_op.register_fake
def _(masks, weights, values, alpha, lasso, max_iter, tol):
    B, _, T = values.shape
    return values.new_empty((B, T, masks.shape[2])), values.new_empty((B, T))


@torch.library.custom_op(
    "xattr::permutation_accumulate", mutates_args=(), device_types=("cpu", "cuda")
)
def _perm_op(
    perms: torch.Tensor, values: torch.Tensor, unit: int
) -> tuple[torch.Tensor, torch.Tensor]:
    perms, values = perms.contiguous(), values.contiguous()
    if not _ext.use_kernels(values.device):
        return _reference.permutation_accumulate(perms, values, unit)
    B, P, d1, T = values.shape
    d = d1 - 1
    mean = values.new_empty((B, T, d))
    se = values.new_empty((B, T, d))
    work = torch.empty(B * T * 3 * d, dtype=torch.float64, device=values.device)
    _ext.lib().permutation_accumulate(
        perms=_ext.buf(perms),
        values=_ext.buf(values),
        mean=_ext.buf(mean),
        stderr=_ext.buf(se),
        work=_ext.buf(work),
        B=B,
        P=P,
        d=d,
        T=T,
        perm_bstride=_bstride(perms, P * d),
        unit=unit,
        **_ext.where(values),
    )
    return mean, se


@_perm_op.register_fake
def _(perms, values, unit):
    B, _, d1, T = values.shape
    return values.new_empty((B, T, d1 - 1)), values.new_empty((B, T, d1 - 1))


@torch.library.custom_op("xattr::banzhaf_msr", mutates_args=(), device_types=("cpu", "cuda"))
def _banzhaf_op(masks: torch.Tensor, counts: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    masks, counts, values = masks.contiguous(), counts.contiguous(), values.contiguous()
    if not _ext.use_kernels(values.device):
        return _reference.banzhaf_msr(masks, counts, values)
    B, n, T = values.shape
    d = masks.shape[2]
    out = values.new_empty((B, T, d))
    _ext.lib().banzhaf_msr(
        masks=_ext.buf(masks),
        counts=_ext.buf(counts),
        values=_ext.buf(values),
        out=_ext.buf(out),
        B=B,
        n=n,
        d=d,
        T=T,
        mask_bstride=_bstride(masks, n * d),
        count_bstride=_bstride(counts, n),
        **_ext.where(values),
    )
    return out


@_banzhaf_op.register_fake
def _(masks, counts, values):
    return values.new_empty((values.shape[0], values.shape[2], masks.shape[2]))


@torch.library.custom_op("xattr::exact_values", mutates_args=(), device_types=("cpu", "cuda"))
def _exact_values_op(values: torch.Tensor, d: int, banzhaf: bool) -> torch.Tensor:
    values = values.contiguous()
    if not _ext.use_kernels(values.device):
        return _reference.exact_values(values, banzhaf)
    B, _, T = values.shape
    out = values.new_empty((B, T, d))
    _ext.lib().exact_values(
        values=_ext.buf(values),
        out=_ext.buf(out),
        B=B,
        d=d,
        T=T,
        banzhaf=banzhaf,
        **_ext.where(values),
    )
    return out


@_exact_values_op.register_fake
def _(values, d, banzhaf):
    return values.new_empty((values.shape[0], values.shape[2], d))


@torch.library.custom_op("xattr::pack_masks", mutates_args=(), device_types=("cpu", "cuda"))
def _pack_op(masks: torch.Tensor) -> torch.Tensor:
    masks = masks.contiguous()
    if not _ext.use_kernels(masks.device):
        return _reference.pack_masks(masks)
    n, d = masks.shape
    keys = torch.empty((n, (d + 63) // 64), dtype=torch.int64, device=masks.device)
    _ext.lib().pack_masks(masks=_ext.buf(masks), keys=_ext.buf(keys), n=n, d=d, **_ext.where(masks))
    return keys


@_pack_op.register_fake
def _(masks):
    return masks.new_empty((masks.shape[0], (masks.shape[1] + 63) // 64), dtype=torch.int64)


@torch.library.custom_op("xattr::unpack_masks", mutates_args=(), device_types=("cpu", "cuda"))
def _unpack_masks_op(keys: torch.Tensor, d: int) -> torch.Tensor:
    keys = keys.contiguous()
    if not _ext.use_kernels(keys.device):
        return _reference.unpack_masks(keys, d)
    n = keys.shape[0]
    masks = torch.empty((n, d), dtype=torch.bool, device=keys.device)
    _ext.lib().unpack_masks(
        keys=_ext.buf(keys), masks=_ext.buf(masks), n=n, d=d, **_ext.where(keys)
    )
    return masks


@_unpack_masks_op.register_fake
def _(keys, d):
    return keys.new_empty((keys.shape[0], d), dtype=torch.bool)


# ------------------------------------------------------------- public API
def _masks3(masks: torch.Tensor, B: int, n: int | None = None) -> torch.Tensor:
    _checks.tensor("masks", masks, dtypes=(torch.bool,), ndim=(2, 3))
    m3 = masks.unsqueeze(0) if masks.dim() == 2 else masks
    if m3.shape[0] not in (1, B):
        raise ValueError(f"masks: per-example masks need batch {B}, got {tuple(masks.shape)}")
    if n is not None and m3.shape[1] != n:
        raise ValueError(
            f"masks: expected {n} coalitions (rows) to match values, got {m3.shape[1]}"
        )
    if m3.shape[2] < 1:
        raise ValueError("masks: need at least one feature")
    return m3.contiguous()


def _values3(values: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """[B, n] or [B, n, T] -> ([B, n, T], squeezed)."""
    _checks.tensor("values", values, dtypes=_checks.FLOATS, ndim=(2, 3))
    _checks.finite("values", values)
    return (values.unsqueeze(-1), True) if values.dim() == 2 else (values, False)


def _rows(
    name: str, t: torch.Tensor | None, B: int, n: int, like: torch.Tensor, nonneg: bool = True
) -> torch.Tensor:
    """Per-coalition weights or counts: [n] shared or [B, n]."""
    t1 = _checks.tensor(name, t, dtypes=_checks.FLOATS + (torch.int32, torch.int64), ndim=(1, 2))
    t2 = t1.unsqueeze(0) if t1.dim() == 1 else t1
    if t2.shape[0] not in (1, B) or t2.shape[1] != n:
        raise ValueError(f"{name}: expected [{n}] or [{B}, {n}], got {tuple(t1.shape)}")
    t2 = t2.to(like.dtype)
    _checks.finite(name, t2)
    if nonneg and t2.numel() and bool((t2 < 0).any()):
        raise ValueError(f"{name}: must be >= 0, found {float(t2.min())}")
    return t2.contiguous()


def _per_output(
    name: str, t: torch.Tensor, B: int, T: int, squeezed: bool, like: torch.Tensor
) -> torch.Tensor:
    _checks.tensor(name, t, dtypes=_checks.FLOATS)
    want = (B,) if squeezed else (B, T)
    if tuple(t.shape) != want:
        raise ValueError(f"{name}: expected shape {want}, got {tuple(t.shape)}")
    _checks.finite(name, t)
    return t.reshape(B, T).to(like.dtype).contiguous()


def _out(t: torch.Tensor, squeezed: bool) -> torch.Tensor:
    return t.squeeze(1) if squeezed else t


def kernel_shap_solve(
    masks: torch.Tensor,
    weights: torch.Tensor,
    values: torch.Tensor,
    v_empty: torch.Tensor,
    v_full: torch.Tensor,
    *,
    prior: torch.Tensor | None = None,
    rho: float = 0.0,
) -> torch.Tensor:
    """KernelSHAP's weighted least squares with efficiency held exactly, optionally
    shrunk toward a prior.

    Solves ``min_phi sum_r w_r (values_r - v_empty - masks_r . phi)^2
    + rho * scale * ||phi - prior||^2`` subject to ``sum(phi) = v_full - v_empty``
    for every input and output at once, in float64 (``prior`` = 0 when not given).
    ``scale`` makes ``rho`` dimensionless: the mean eigenvalue of the weighted Gram
    matrix on the efficiency plane, ``trace(P Z'WZ P) / (d - 1)`` with
    ``P = I - 11'/d`` (one number per design; it does not change when the weights
    are rescaled), so ``rho = 1`` weighs the prior like an average direction of
    the data. Where the coalitions do not determine every direction (too few or
    repeated rows, complementary pairs) and ``rho = 0``, the minimiser with the
    least ``||phi - prior||`` is returned: it is unique, so the result does not
    depend on the order of the features (features the rows cannot tell apart share
    their total equally, or keep the prior's split). As ``rho`` grows the result
    tends to the prior projected onto the plane ``sum(phi) = v_full - v_empty``.

    The prior enters as a substitution ``psi = phi - prior``: the values become
    ``values - masks . prior`` (in float64, one [B, n, d] x [B, d] product here) and
    the kernel solves for psi; ``rho`` is a scalar of the kernel, added to the
    diagonal of the Gram matrix it factorises, so one factorisation still serves
    every input that shares (masks, weights). Memory: min(n, d)^2 doubles per
    distinct (masks, weights) (the Gram matrix of the columns when n >= d, of the
    rows when n < d), plus 2 min(n, d) per output; with a prior also the masks in
    float64 ([n, d] or [B, n, d]).

    Args:
        masks: bool [n, d] (shared) or [B, n, d].
        weights: [n] or [B, n], >= 0 (e.g. Shapley-kernel weights; equal weights
            when rows were drawn from the kernel distribution).
        values: [B, n] or [B, n, T]: v(S_r) for each coalition.
        v_empty, v_full: [B] or [B, T]: v(empty) and v(all features).
        prior: the initial guess phi0, [B, d] (or [B, T, d] for [B, n, T] values);
            default None (no prior: 0).
        rho: the ridge strength, a finite number >= 0 (default 0: no ridge).

    Returns:
        phi: [B, d] (or [B, T, d]), in the dtype of ``values``.

    Example:
        >>> m = enumerate_coalitions(3)
        >>> v = m.double() @ torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
        >>> phi = kernel_shap_solve(m, torch.ones(8, dtype=torch.float64), v[None], v[:1], v[-1:])
        >>> [round(p, 9) for p in phi[0].tolist()]
        [1.0, 2.0, 3.0]
        >>> w2 = torch.ones(2, dtype=torch.float64)  # rows {} and {1}: they fix phi_1 only
        >>> phi = kernel_shap_solve(m[:2], w2, v[None, :2], v[:1], v[-1:])
        >>> [round(p, 9) for p in phi[0].tolist()]
        [1.0, 2.5, 2.5]
        >>> guess = torch.tensor([[3.0, 3.0, 0.0]], dtype=torch.float64)  # phi_2 - phi_3 = 3
        >>> phi = kernel_shap_solve(m[:2], w2, v[None, :2], v[:1], v[-1:], prior=guess)
        >>> [round(p, 9) for p in phi[0].tolist()]
        [1.0, 4.0, 1.0]
    """
    v3, squeezed = _values3(values)
    B, n, T = v3.shape
    m3 = _masks3(masks, B, n)
    w = _rows("weights", weights, B, n, v3)
    ve = _per_output("v_empty", v_empty, B, T, squeezed, v3)
    vf = _per_output("v_full", v_full, B, T, squeezed, v3)
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 <= rho < math.inf:
        raise ValueError(f"rho: expected a finite number >= 0, got {rho!r}")
    _checks.same_device(masks=m3, weights=w, values=v3, v_empty=ve, v_full=vf)
    if prior is None:
        phi = _kernel_shap_solve_op(m3, w, v3, ve, vf, float(rho))
    else:
        p3 = _prior3(prior, B, T, m3.shape[2], squeezed)
        _checks.same_device(values=v3, prior=p3)
        f64 = torch.float64
        shifted = v3.to(f64) - m3.to(f64) @ p3.mT  # values - z . prior: [B, n, T]
        full = vf.to(f64) - p3.sum(-1)  # v_full - sum(prior)
        psi = _kernel_shap_solve_op(m3, w.to(f64), shifted, ve.to(f64), full, float(rho))
        phi = (p3 + psi).to(v3.dtype)
    _checks.finite_result("kernel_shap_solve", "values, v_empty, v_full, weights or prior", phi)
    return _out(phi, squeezed)


def _prior3(prior: torch.Tensor, B: int, T: int, d: int, squeezed: bool) -> torch.Tensor:
    """The prior [B, d] or [B, T, d] -> [B, T, d] float64, checked."""
    _checks.tensor("prior", prior, dtypes=_checks.FLOATS)
    want = (B, d) if squeezed else (B, T, d)
    if tuple(prior.shape) != want:
        raise ValueError(
            f"prior: expected shape {want} (one initial guess per input"
            f"{'' if squeezed else ' and output'} over the {d} features), "
            f"got {tuple(prior.shape)}"
        )
    _checks.finite("prior", prior)
    return prior.reshape(B, T, d).to(torch.float64).contiguous()


def linear_fit(
    masks: torch.Tensor,
    weights: torch.Tensor,
    values: torch.Tensor,
    *,
    alpha: float = 0.01,
    method: str = "lasso",
    max_iter: int = 1000,
    tol: float = 1e-7,
) -> tuple[torch.Tensor, torch.Tensor]:
    """LIME's weighted linear surrogate with an unpenalised intercept.

    ``method="lasso"`` equals scikit-learn's ``Lasso(alpha)`` fitted with
    ``sample_weight`` (Captum's Lime default, alpha = 0.01): cyclic coordinate
    descent until the largest coefficient step is at most ``tol`` times the
    largest coefficient, or ``max_iter`` sweeps (on the data, without a d x d
    matrix, when n < d). ``method="ridge"`` equals ``Ridge(alpha)`` with
    ``sample_weight`` (closed form); with ``alpha=0`` it is ``LinearRegression``'s
    minimum-norm least-squares fit, also when the rows do not determine every
    coefficient. Memory: min(n, d)^2 doubles per distinct (masks, weights).

    Args:
        masks: bool [n, d] or [B, n, d] (interpretable binary features).
        weights: [n] or [B, n], >= 0 (similarities).
        values: [B, n] or [B, n, T].

    Returns:
        (coef [B, d] or [B, T, d], intercept [B] or [B, T]).

    Example:
        >>> m = enumerate_coalitions(2)
        >>> v = (m.double() @ torch.tensor([1.0, -1.0], dtype=torch.float64))[None]
        >>> w = torch.ones(4, dtype=torch.float64)
        >>> coef, b = linear_fit(m, w, v, method="ridge", alpha=0.0)
        >>> [round(c, 6) for c in coef[0].tolist()]
        [1.0, -1.0]
    """
    if method not in ("lasso", "ridge"):
        raise ValueError(f"method: expected 'lasso' or 'ridge', got {method!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
        raise ValueError(f"alpha: expected a number >= 0, got {alpha!r}")
    max_iter = _checks.int_arg("max_iter", max_iter, minimum=1)
    if not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"tol: expected a number >= 0, got {tol!r}")
    v3, squeezed = _values3(values)
    B, n, T = v3.shape
    m3 = _masks3(masks, B, n)
    w = _rows("weights", weights, B, n, v3)
    _checks.same_device(masks=m3, weights=w, values=v3)
    coef, intercept = _linear_fit_op(
        m3, w, v3, float(alpha), method == "lasso", max_iter, float(tol)
    )
    _checks.finite_result("linear_fit", "values or weights", coef, intercept)
    return _out(coef, squeezed), (intercept.squeeze(1) if squeezed else intercept)


def permutation_accumulate(
    perms: torch.Tensor,
    values: torch.Tensor,
    *,
    antithetic: bool = False,
    return_stderr: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Shapley sampling: average marginal contributions along permutations.

    ``values[b, p, j]`` is v(first j features of permutation p), j = 0..d; the
    contribution ``values[b, p, j+1] - values[b, p, j]`` goes to feature
    ``perms[(b,) p, j]``. With ``antithetic=True`` rows 2t, 2t+1 form a pair
    (see :func:`permutations`) averaged before the standard error is taken.

    Args:
        perms: int [P, d] (shared) or [B, P, d].
        values: [B, P, d+1] or [B, P, d+1, T].

    Returns:
        phi [B, d] (or [B, T, d]); with ``return_stderr`` also the standard
        error of each entry (NaN with fewer than two units).

    Example:
        >>> p = permutations(4, 3, seed=0)
        >>> w = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
        >>> cum = torch.zeros(1, 4, 4, dtype=torch.float64)
        >>> cum[0, :, 1:] = w[p.long()].cumsum(1)
        >>> permutation_accumulate(p, cum).tolist()
        [[1.0, 2.0, 4.0]]
    """
    _checks.tensor("perms", perms, dtypes=(torch.int32, torch.int64), ndim=(2, 3))
    _checks.tensor("values", values, dtypes=_checks.FLOATS, ndim=(3, 4))
    _checks.finite("values", values)
    squeezed = values.dim() == 3
    v4 = values.unsqueeze(-1) if squeezed else values
    B, P, d1, T = v4.shape
    p3 = perms.unsqueeze(0) if perms.dim() == 2 else perms
    if p3.shape[0] not in (1, B) or p3.shape[1] != P or p3.shape[2] != d1 - 1:
        raise ValueError(
            f"perms: expected [{P}, {d1 - 1}] or [{B}, {P}, {d1 - 1}] to match "
            f"values {tuple(values.shape)}, got {tuple(perms.shape)}"
        )
    # Ids are checked against [0, d) before the int32 kernels see them: an int64 id of
    # 2^32 + k would otherwise wrap to the valid id k (and pass every later check).
    if p3.numel() and (int(p3.min()) < 0 or int(p3.max()) >= d1 - 1):
        bad = int(p3.min()) if int(p3.min()) < 0 else int(p3.max())
        raise ValueError(
            f"perms: every row must be a permutation of 0..{d1 - 2}; found the id {bad}"
        )
    if p3.device.type != "cpu" or not _ext.kernels_available():  # the CPU kernel checks itself
        ident = torch.arange(d1 - 1, device=p3.device)
        if p3.numel() and not bool((p3.sort(dim=-1).values == ident).all()):
            raise ValueError(f"perms: every row must be a permutation of 0..{d1 - 2}")
    unit = 2 if antithetic else 1
    if P < 1:
        raise ValueError("perms: need at least one permutation, got 0")
    if P % unit:
        raise ValueError(f"perms: antithetic pairs need an even number of permutations, got {P}")
    _checks.same_device(perms=p3, values=v4)
    mean, se = _perm_op(p3.to(torch.int32).contiguous(), v4.contiguous(), unit)
    # The standard error is NaN by definition with a single unit; else it must be finite.
    _checks.finite_result("permutation_accumulate", "values", mean, *([se] if P > unit else []))
    if return_stderr:
        return _out(mean, squeezed), _out(se, squeezed)
    return _out(mean, squeezed)


def banzhaf_msr(
    masks: torch.Tensor, values: torch.Tensor, counts: torch.Tensor | None = None
) -> torch.Tensor:
    """Maximum-sample-reuse Banzhaf values (Wang & Jia, 2023).

    ``beta_i = mean{v(S) : i in S} - mean{v(S) : i not in S}`` over the sampled
    coalitions (Bernoulli(1/2) gives an unbiased estimate), each counted
    ``counts`` times (duplicates kept as counts, e.g. from
    :func:`unique_coalitions`).

    Args:
        masks: bool [n, d] or [B, n, d]. values: [B, n] or [B, n, T].
        counts: [n] or [B, n] multiplicities, default 1.

    Raises:
        ValueError: a feature is in every sampled coalition or in none.

    Returns:
        [B, d] (or [B, T, d]).

    Example:
        >>> m = enumerate_coalitions(2)
        >>> v = (m.double() @ torch.tensor([1.0, 3.0], dtype=torch.float64))[None]
        >>> banzhaf_msr(m, v).tolist()
        [[1.0, 3.0]]
    """
    v3, squeezed = _values3(values)
    B, n, T = v3.shape
    m3 = _masks3(masks, B, n)
    c = (
        torch.ones((1, n), dtype=v3.dtype, device=v3.device)
        if counts is None
        else _rows("counts", counts, B, n, v3)
    )
    _checks.same_device(masks=m3, counts=c, values=v3)
    out = _banzhaf_op(m3, c, v3)
    # A non-finite result (checking the small output costs B*T*d reads) is either 0/0, a
    # feature whose "in" or "out" side has no coalition with positive count, or an
    # overflow of finite values; only then are the two told apart.
    if not _checks.all_finite(out):
        z = m3.to(torch.float64)
        pos = (c > 0).to(torch.float64).unsqueeze(-1)  # [Bc, n, 1]
        n_in = (z * pos).sum(1)  # [B or 1, d]: coalitions holding each feature
        n_out = ((1.0 - z) * pos).sum(1)
        empty = (n_in == 0) | (n_out == 0)
        if bool(empty.any()):
            feature = int(torch.nonzero(empty)[0, -1])
            raise ValueError(
                f"masks: feature {feature} is in every sampled coalition or in none "
                "(with positive count); its Banzhaf value is undefined: draw more"
            )
        _checks.finite_result("banzhaf_msr", "values or counts", out)
    return _out(out, squeezed)


def _exact(values: torch.Tensor, banzhaf: bool) -> torch.Tensor:
    v3, squeezed = _values3(values)
    rows = v3.shape[1]
    d = rows.bit_length() - 1
    if rows < 2 or rows != 2**d:
        raise ValueError(f"values: expected 2^d rows (one per coalition), got {rows}")
    if d > MAX_ENUMERATION_FEATURES:
        raise ValueError(
            f"values: exact enumeration supports d <= {MAX_ENUMERATION_FEATURES}, got {d}"
        )
    out = _exact_values_op(v3.contiguous(), d, banzhaf)
    _checks.finite_result("exact_banzhaf" if banzhaf else "exact_shapley", "values", out)
    return _out(out, squeezed)


def exact_shapley(values: torch.Tensor) -> torch.Tensor:
    """Exact Shapley values from the values of all 2^d coalitions.

    ``values[b, r]`` is v of the coalition holding feature i iff bit i of r is
    set (the order of :func:`enumerate_coalitions`); d <= 20.

    Returns:
        [B, d] (or [B, T, d] for values [B, 2^d, T]).

    Example:
        >>> m = enumerate_coalitions(2).double()
        >>> v = (m[:, 0] * m[:, 1])[None]  # v = 1 only for the pair
        >>> exact_shapley(v).tolist()
        [[0.5, 0.5]]
    """
    return _exact(values, banzhaf=False)


def exact_banzhaf(values: torch.Tensor) -> torch.Tensor:
    """Exact Banzhaf values from the values of all 2^d coalitions (see
    :func:`exact_shapley` for the layout).

    Example:
        >>> m = enumerate_coalitions(2).double()
        >>> exact_banzhaf((m[:, 0] * m[:, 1])[None]).tolist()
        [[0.5, 0.5]]
    """
    return _exact(values, banzhaf=True)


def pack_masks(masks: torch.Tensor) -> torch.Tensor:
    """Bit-packs masks: int64 [n, ceil(d/64)], feature i in bit i % 64 of word i // 64.

    Example:
        >>> pack_masks(torch.tensor([[True, False, True]])).tolist()
        [[5]]
    """
    _checks.tensor("masks", masks, dtypes=(torch.bool,), ndim=2)
    if masks.shape[1] < 1:
        raise ValueError("masks: need at least one feature")
    return _pack_op(masks.contiguous())


def unpack_masks(keys: torch.Tensor, d: int) -> torch.Tensor:
    """Inverse of :func:`pack_masks`: bool [n, d].

    Example:
        >>> unpack_masks(torch.tensor([[5]]), 3).tolist()
        [[True, False, True]]
    """
    _checks.tensor("keys", keys, dtypes=(torch.int64,), ndim=2)
    d = _checks.int_arg("d", d, minimum=1)
    if keys.shape[1] != (d + 63) // 64:
        raise ValueError(f"keys: d = {d} needs {(d + 63) // 64} words per row, got {keys.shape[1]}")
    return _unpack_masks_op(keys.contiguous(), d)


def unique_coalitions(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """De-duplicates coalitions so that a model is never asked the same question twice.

    Rows are bit-packed (:func:`pack_masks`) and compared as keys.

    Returns:
        (unique bool [u, d] in key order, inverse int64 [n] with
        ``unique[inverse] == masks``, counts int64 [u]).

    Example:
        >>> m = torch.tensor([[True, False], [True, False], [False, True]])
        >>> u, inv, cnt = unique_coalitions(m)
        >>> u[inv].equal(m), cnt.tolist()
        (True, [2, 1])
    """
    keys = pack_masks(masks)
    if keys.shape[1] == 1:  # d <= 64: one word per row, a flat unique (much faster)
        uniq, inverse, counts = torch.unique(keys[:, 0], return_inverse=True, return_counts=True)
        return unpack_masks(uniq.unsqueeze(1), masks.shape[1]), inverse, counts
    uniq, inverse, counts = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
    return unpack_masks(uniq, masks.shape[1]), inverse, counts
