"""Summaries as linear maps of the game, and their Lipschitz factors (see the package
docstring for the mathematics)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from xattr import ops
from xattr._core.validation import positive_int

SUMMARIES = ("shapley", "banzhaf", "loo", "mean_when_included", "semivalue")

# A [d, 2^d] float64 matrix is materialised only up to this d (2^20 coalitions:
# 160 MB at d = 20); the factors have closed forms for every d.
MAX_MATRIX_FEATURES = 20


@dataclass(frozen=True)
class SummaryFactor:
    """Factors of a summary A: ||A dv||_2 <= h * max|dv|, |(A dv)_i| <= per_feature[i] * max|dv|.

    Attributes:
        h1: sqrt(sum_i ||a_i||_1^2).
        h2: ||A||_2 * sqrt(number of coalitions).
        per_feature: [d] float64, ||a_i||_1.
    """

    h1: float
    h2: float
    per_feature: Tensor

    @property
    def h(self) -> float:
        """min(h1, h2): the factor the bounds use."""
        return min(self.h1, self.h2)


def _check_d(d: int) -> int:
    return positive_int("d", d)


def semivalue_weights(
    summary: str, d: int, weights: Sequence[float] | Tensor | None = None
) -> Tensor:
    """Size weights p_0..p_{d-1} of a semivalue, float64 [d].

    Args:
        summary: "shapley", "banzhaf", "loo" or "semivalue" (then ``weights`` are used).
        d: number of features (>= 1).
        weights: [d] non-negative p_k for ``summary="semivalue"``; must be None otherwise.

    Returns:
        p [d]: phi_i = sum over S without i of p_|S| (v(S + i) - v(S)).

    Example:
        >>> semivalue_weights("shapley", 3).tolist()
        [0.3333333333333333, 0.16666666666666666, 0.3333333333333333]
    """
    _check_d(d)
    if summary == "semivalue":
        if weights is None:
            raise ValueError('weights: summary="semivalue" needs the d size weights p_0..p_{d-1}')
        p = torch.as_tensor(weights, dtype=torch.float64).flatten()
        if p.numel() != d:
            raise ValueError(f"weights: expected {d} size weights p_0..p_{d - 1}, got {p.numel()}")
        if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
            raise ValueError("weights: size weights must be finite and >= 0")
        return p
    if weights is not None:
        raise ValueError(f'weights: only summary="semivalue" takes weights, not {summary!r}')
    if summary == "shapley":
        return torch.tensor(
            [1.0 / (d * math.comb(d - 1, k)) for k in range(d)], dtype=torch.float64
        )
    if summary == "banzhaf":
        return torch.full((d,), 2.0 ** -(d - 1), dtype=torch.float64)
    if summary == "loo":
        p = torch.zeros(d, dtype=torch.float64)
        p[d - 1] = 1.0
        return p
    raise ValueError(f"summary: expected one of {SUMMARIES[:3] + ('semivalue',)}, got {summary!r}")


def _check_summary(summary: str) -> None:
    if summary not in SUMMARIES:
        raise ValueError(f"summary: expected one of {SUMMARIES}, got {summary!r}")


def summary_matrix(summary: str, d: int, weights: Sequence[float] | Tensor | None = None) -> Tensor:
    """The summary as a matrix A [d, 2^d] float64: phi = A v for v [2^d] in the order of
    :func:`xattr.ops.enumerate_coalitions` (feature i in coalition r iff bit i of r).

    Args:
        summary: one of ``SUMMARIES``.
        d: number of features, 1 <= d <= 20 (2^d columns).
        weights: the size weights of ``summary="semivalue"``.

    Example:
        >>> import torch
        >>> from xattr import ops
        >>> v = torch.rand(2**4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> A = summary_matrix("shapley", 4)
        >>> torch.allclose(A @ v, ops.exact_shapley(v[None])[0])
        True
    """
    _check_summary(summary)
    _check_d(d)
    if d > MAX_MATRIX_FEATURES:
        raise ValueError(
            f"d: a summary matrix has 2^d columns; at most d = {MAX_MATRIX_FEATURES}, got {d} "
            "(summary_factor gives the factors for any d)"
        )
    z = ops.enumerate_coalitions(d).T  # [d, 2^d] bool: i in S
    if summary == "mean_when_included":
        return z.to(torch.float64) * 2.0 ** -(d - 1)
    p = semivalue_weights(summary, d, weights)
    size = z.sum(0)  # [2^d]
    inside = p[(size - 1).clamp(min=0)]  # p_{|S|-1}, for i in S (|S| >= 1 there)
    outside = -p[size.clamp(max=d - 1)]  # -p_{|S|}, for i not in S (|S| <= d - 1 there)
    return torch.where(z, inside, outside)


def factor_of_matrix(A: Tensor) -> SummaryFactor:
    """h1, h2 and the per-feature factors of any linear summary (or estimator) A [d, n],
    computed from the matrix in float64 (n = number of evaluated coalitions).

    Example:
        >>> f = factor_of_matrix(summary_matrix("loo", 5))
        >>> round(f.h1, 6), round(f.h2, 6)
        (4.472136, 13.856406)
    """
    if not isinstance(A, Tensor) or A.dim() != 2:
        raise ValueError("A: expected a [d, n] tensor")
    A = A.to(torch.float64)
    if not bool(torch.isfinite(A).all()):
        raise ValueError("A: contains NaN or inf")
    per_feature = A.abs().sum(1)
    h1 = float(per_feature.square().sum().sqrt())
    # ||A||_2^2 = the largest eigenvalue of the smaller Gram matrix (d x d for d <= n)
    gram = A @ A.T if A.shape[0] <= A.shape[1] else A.T @ A
    spectral = math.sqrt(max(float(torch.linalg.eigvalsh(gram)[-1]), 0.0)) if A.numel() else 0.0
    return SummaryFactor(h1, spectral * math.sqrt(A.shape[1]), per_feature)


def summary_factor(
    summary: str, d: int, weights: Sequence[float] | Tensor | None = None
) -> SummaryFactor:
    """Closed-form factors of an exact summary for any d (no 2^d matrix).

    Args:
        summary: one of ``SUMMARIES``.
        d: number of features (>= 1).
        weights: the size weights of ``summary="semivalue"``.

    Returns:
        :class:`SummaryFactor`: ``h1``, ``h2``, ``h = min(h1, h2)``, ``per_feature`` [d].

    Example:
        >>> round(summary_factor("shapley", 16).h1, 6)  # 2 sqrt(d)
        8.0
    """
    _check_summary(summary)
    _check_d(d)
    if summary == "mean_when_included":
        # A A' = 2^-(d-1) I + 2^-d (11' - I): eigenvalues 2^-(d-1) + (d-1) 2^-d and 2^-d.
        l1 = 2.0 ** -(d - 1)
        top = l1 + (d - 1) * 2.0**-d
        per = torch.ones(d, dtype=torch.float64)
        return SummaryFactor(math.sqrt(d), math.sqrt(top) * 2.0 ** (d / 2), per)
    p = [float(x) for x in semivalue_weights(summary, d, weights)]
    norm1 = 2.0 * sum(math.comb(d - 1, k) * p[k] for k in range(d))
    # (A A')_ii = alpha, (A A')_ij = beta (i != j), summed over coalition sizes k.
    alpha = sum(math.comb(d - 1, k) * p[k] ** 2 for k in range(d)) * 2.0
    beta = 0.0
    for k in range(d - 1):  # |S| = k without i and j
        c = math.comb(d - 2, k)
        beta += c * (p[k + 1] - p[k]) ** 2  # both in, one in (twice), both out
    top = max(alpha + (d - 1) * beta, alpha - beta, 0.0)
    per = torch.full((d,), norm1, dtype=torch.float64)
    return SummaryFactor(math.sqrt(d) * norm1, math.sqrt(top) * 2.0 ** (d / 2), per)
