"""Mask samplers: coalitions for every estimator, from counter-based random
numbers (Philox4x32-10 keyed by the seed, counter = row and draw index).

Each row depends only on (seed, its global row index), so rows can be made in
any chunks (``row_offset``), on the CPU or a GPU, with identical bits. Masks
are ``torch.bool`` [n, d] (True = feature present); permutations int32 [n, d].
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch

from xattr import _ext
from xattr.ops import _checks, _reference, _thresholds

SAMPLERS = ("bernoulli", "exact_k", "shapley", "permutation", "mus", "stratified", "enumerate")
SAMPLER_CODES = {name: code for code, name in enumerate(SAMPLERS)}
MAX_ENUMERATION_FEATURES = _ext.MAX_ENUMERATION_FEATURES  # kMaxEnumerationFeatures (C++)


def to_signed64(v: int) -> int:
    """A uint64 as the int64 with the same bits (op schemas carry int64)."""
    return v - 2**64 if v >= 2**63 else v


@lru_cache(maxsize=64)
def _size_thresholds(d: int, sizes: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The exact integer size table, as int64 words with the same bits."""
    table = [to_signed64(t) for t in _thresholds.shapley_size_thresholds(d, sizes)]
    return torch.tensor(table, dtype=torch.int64, device=device)


@torch.library.custom_op("xattr::sample_", mutates_args=("out",), device_types=("cpu", "cuda"))
def _sample_op(
    out: torch.Tensor,
    sampler: int,
    row_offset: int,
    seed: int,
    p: float,
    k: int,
    paired: bool,
    q: int,
    L: int,
    m: int,
    sizes: list[int],
) -> None:
    n, d = out.shape
    seed_u = seed % 2**64
    if not _ext.use_kernels(out.device):
        out.copy_(
            _reference.sample(
                SAMPLERS[sampler],
                n,
                d,
                seed=seed_u,
                row_offset=row_offset,
                p=p,
                k=k,
                paired=paired,
                q=q,
                L=L,
                m=m,
                device=out.device,
                thresholds=(
                    _thresholds.shapley_size_thresholds(d, sizes)
                    if SAMPLERS[sampler] == "shapley"
                    else None
                ),
            )
        )
        return
    thresholds = work = None
    if SAMPLERS[sampler] == "shapley":
        thresholds = _size_thresholds(d, tuple(sizes), out.device)
    if SAMPLERS[sampler] == "mus":  # the seed vector, drawn once per call
        work = torch.empty(d, dtype=torch.int64, device=out.device)
    _ext.lib().sample(
        sampler=sampler,
        out=_ext.buf(out),
        n=n,
        d=d,
        row_offset=row_offset,
        seed=seed_u,
        bern_threshold=_thresholds.bernoulli_threshold(p),
        k=k,
        thresholds=None if thresholds is None else _ext.buf(thresholds),
        work=None if work is None else _ext.buf(work),
        paired=paired,
        q=q,
        L=L,
        m=m,
        **_ext.where(out),
    )


@_sample_op.register_fake
def _(out, sampler, row_offset, seed, p, k, paired, q, L, m, sizes) -> None:
    return None


# The scalar arguments of ``xattr::sample_`` that a sampler does not use.
SAMPLE_DEFAULTS = {"p": 0.5, "k": 0, "paired": False, "q": 0, "L": 0, "m": 0, "sizes": []}


def _sample(
    sampler: str,
    n: int,
    d: int,
    dtype: torch.dtype,
    device,
    seed: int | None,
    row_offset: int,
    **kw,
) -> torch.Tensor:
    n = _checks.int_arg("n", n, minimum=0)
    d = _checks.int_arg("d", d, minimum=1)
    row_offset = _checks.int_arg("row_offset", row_offset, minimum=0, maximum=2**63 - 1 - n)
    out = torch.empty((n, d), dtype=dtype, device=_checks.device("device", device))
    args = SAMPLE_DEFAULTS | kw
    _sample_op(out, SAMPLER_CODES[sampler], row_offset, to_signed64(_checks.seed(seed)), **args)
    return out


def bernoulli_masks(
    n: int,
    d: int,
    p: float = 0.5,
    *,
    seed: int | None = None,
    row_offset: int = 0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Masks whose bits are independent Bernoulli(p).

    Args:
        n: rows. d: features. p: keep probability in [0, 1] (default 0.5).
        seed: 64-bit seed; None draws one from torch's global generator.
        row_offset: global index of the first row, to produce a stream in chunks.
        device: where to allocate.

    Returns:
        bool [n, d].

    Example:
        >>> m = bernoulli_masks(4, 10, 0.5, seed=0)
        >>> m.shape, m.dtype
        (torch.Size([4, 10]), torch.bool)
    """
    return _sample("bernoulli", n, d, torch.bool, device, seed, row_offset, p=_checks.prob("p", p))


def subset_masks(
    n: int,
    d: int,
    k: int,
    *,
    seed: int | None = None,
    row_offset: int = 0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Rows that are uniform random subsets of exactly ``k`` of the ``d`` features.

    Returns bool [n, d] with every row summing to k.

    Example:
        >>> subset_masks(3, 8, 2, seed=1).sum(1).tolist()
        [2, 2, 2]
    """
    k = _checks.int_arg("k", k, minimum=0)
    if k > d:
        raise ValueError(f"k: must be <= d = {d}, got {k}")
    return _sample("exact_k", n, d, torch.bool, device, seed, row_offset, k=k)


def shapley_kernel_masks(
    n: int,
    d: int,
    *,
    seed: int | None = None,
    paired: bool = True,
    row_offset: int = 0,
    sizes: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """KernelSHAP coalitions: size k in 1..d-1 drawn with probability
    proportional to (d-1) / (k (d-k)), then a uniform subset of that size.

    With ``paired=True`` (default) row 2t+1 is the complement of row 2t, which
    cancels the first-order sampling error (Covert & Lee, 2021). ``sizes``
    restricts the draw to those sizes (the kernel renormalised over them), as
    KernelSHAP needs once it has enumerated the others.

    Returns bool [n, d]. Needs d >= 2.

    Example:
        >>> m = shapley_kernel_masks(4, 6, seed=0)
        >>> bool((m[0] ^ m[1]).all())
        True
    """
    if d < 2:
        raise ValueError(f"d: Shapley-kernel coalitions need d >= 2, got {d}")
    allowed = sorted({_checks.int_arg("sizes", k, 1, d - 1) for k in (sizes or ())})
    if sizes is not None and not allowed:
        raise ValueError("sizes: give at least one coalition size (or None for all)")
    return _sample(
        "shapley", n, d, torch.bool, device, seed, row_offset, paired=bool(paired), sizes=allowed
    )


def permutations(
    n: int,
    d: int,
    *,
    seed: int | None = None,
    antithetic: bool = False,
    row_offset: int = 0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Uniform random permutations of 0..d-1 (Fisher-Yates).

    With ``antithetic=True`` row 2t+1 is row 2t reversed.

    Returns int32 [n, d].

    Example:
        >>> p = permutations(2, 5, seed=3, antithetic=True)
        >>> p[1].flip(0).equal(p[0])
        True
    """
    return _sample(
        "permutation", n, d, torch.int32, device, seed, row_offset, paired=bool(antithetic)
    )


def mus_noise(
    q: int, d: int, lambda_: float, *, seed: int | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """MuS structured noise (Xue, Alur & Wong, 2023): q masks over d features.

    A seed vector v in {0, 1/q, ..., (q-1)/q}^d is drawn from the seed and
    ``s[j, i] = ((v_i + (j + 1/2) / q) mod 1) < lambda_``. With lambda_ a
    multiple of 1/q every column has exactly lambda_ * q ones, so over a
    uniformly chosen row each feature is kept with probability exactly
    lambda_ (features are correlated; only the marginals are Bernoulli).

    Args:
        q: rows (forward passes of the smoothed model). d: features.
        lambda_: keep probability, a multiple of 1/q (ValueError otherwise,
            naming the nearest valid values).

    Returns:
        bool [q, d].

    Example:
        >>> s = mus_noise(8, 5, 0.25, seed=0)
        >>> s.sum(0).tolist()
        [2, 2, 2, 2, 2]
    """
    level = _checks.mus_level(lambda_, q)
    return _sample("mus", q, d, torch.bool, device, seed, 0, q=q, L=level)


def stratified_masks(
    m: int, d: int, *, seed: int | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The same number ``m`` of uniform subsets for every size k = 0..d-1.

    Rows k*m .. k*m + m - 1 have size k. Used by Shapley Integrated Gradients.

    Returns bool [m * d, d].

    Example:
        >>> stratified_masks(2, 3, seed=0).sum(1).tolist()
        [0, 0, 1, 1, 2, 2]
    """
    m = _checks.int_arg("m", m, minimum=1)
    return _sample("stratified", m * d, d, torch.bool, device, seed, 0, m=m)


def enumerate_coalitions(d: int, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """All 2^d coalitions: row r holds feature i iff bit i of r is set.

    d is limited to 20 (about a million rows).

    Returns bool [2^d, d].

    Example:
        >>> enumerate_coalitions(2).int().tolist()
        [[0, 0], [1, 0], [0, 1], [1, 1]]
    """
    d = _checks.int_arg("d", d, minimum=1, maximum=MAX_ENUMERATION_FEATURES)
    return _sample("enumerate", 2**d, d, torch.bool, device, 0, 0)
