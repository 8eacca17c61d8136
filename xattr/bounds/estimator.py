"""Attribution methods as linear maps of the values they evaluate: the exact summaries
(closed-form factors for any d) and the sampling estimators, whose coalitions or
permutations are fixed by their seed, so that with common random numbers (the same
``seed=`` for both games) the estimate is phi = A_hat v over the evaluated coalitions.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from xattr import ops
from xattr._core import validation
from xattr.bounds.summary import (
    SUMMARIES,
    SummaryFactor,
    factor_of_matrix,
    summary_factor,
)
from xattr.explainers.banzhaf import msr_coalitions
from xattr.explainers.kernel_shap import kernel_design

# The estimators A_hat is rebuilt for (by their draws), with the summary they estimate.
SAMPLED = {
    "kernel_shap": "shapley",
    "shapley_value_sampling": "shapley",
    "banzhaf_msr": "banzhaf",
    "mean_when_included_sampled": "mean_when_included",
}
# Explainer class name -> (exact method, sampled method or None).
_EXPLAINERS = {
    "ExactShapley": ("shapley", None),
    "FeatureAblation": ("loo", None),
    "Banzhaf": ("banzhaf", "banzhaf_msr"),
    "MeanWhenIncluded": ("mean_when_included", "mean_when_included_sampled"),
    "KernelShap": (None, "kernel_shap"),
    "ShapleyValueSampling": (None, "shapley_value_sampling"),
}


@dataclass(frozen=True)
class EstimatorMatrix:
    """An estimator as a linear map of the values it evaluates.

    Attributes:
        method: the estimator (a key of ``SAMPLED`` or a summary name).
        coalitions: bool [u, d], the distinct coalitions evaluated.
        A: float64 [d, u], phi = A @ v(coalitions).
    """

    method: str
    coalitions: Tensor
    A: Tensor

    def factor(self) -> SummaryFactor:
        """h1, h2 and per-feature factors of A (:func:`factor_of_matrix`)."""
        return factor_of_matrix(self.A)


def resolve_method(method: Any, n_samples: int | None = None) -> tuple[str, int | None]:
    """What ``method`` computes with ``n_samples``: (summary or estimator name, n_samples).

    ``method`` is a summary name (``SUMMARIES``), an estimator name (``SAMPLED``) or an
    explainer (class or instance). An explainer with an exact mode (ExactShapley,
    FeatureAblation = leave one out, Banzhaf and MeanWhenIncluded without
    ``n_samples``) gives its summary; KernelShap and ShapleyValueSampling their
    estimator, with their default ``n_samples`` when it is None.

    Example:
        >>> from xattr import Banzhaf, ShapleyValueSampling
        >>> resolve_method(Banzhaf), resolve_method(Banzhaf, 64)
        (('banzhaf', None), ('banzhaf_msr', 64))
        >>> resolve_method(ShapleyValueSampling)
        ('shapley_value_sampling', 25)
    """
    if isinstance(method, str):
        if method in SUMMARIES:
            if n_samples is not None:
                raise ValueError(f"n_samples: the summary {method!r} is exact; it takes none")
            return method, None
        if method in SAMPLED:
            if n_samples is None:
                raise ValueError(f"n_samples: the estimator {method!r} needs its n_samples")
            return method, n_samples
        raise ValueError(
            f"method: expected a summary {SUMMARIES}, an estimator {tuple(SAMPLED)} or an "
            f"explainer, got {method!r}"
        )
    cls = method if isinstance(method, type) else type(method)
    if cls.__name__ not in _EXPLAINERS:
        raise ValueError(
            f"method: the bounds cover the removal-based explainers {tuple(_EXPLAINERS)}, "
            f"not {cls.__name__}"
        )
    exact, sampled = _EXPLAINERS[cls.__name__]
    if n_samples is None:
        if exact is not None:
            return exact, None
        param = inspect.signature(cls.attribute).parameters["n_samples"]
        n_samples = param.default
    if sampled is None:
        raise ValueError(f"n_samples: {cls.__name__} is exact; it takes no n_samples")
    return sampled, n_samples


def estimator_matrix(
    method: str, d: int, *, n_samples: int, seed: int, antithetic: bool = True
) -> EstimatorMatrix:
    """The sampling estimator ``method`` with ``n_samples`` draws from ``seed`` as a
    matrix A_hat [d, u] over the u distinct coalitions it evaluates, built from the
    same draws the explainer makes (so ``A_hat @ v`` equals its estimate).

    Args:
        method: "kernel_shap" (KernelShap: the efficiency-constrained least squares,
            columns = the design's coalitions, then the empty and the full one),
            "shapley_value_sampling" (permutation sampling, all permutations averaged),
            "banzhaf_msr" (Banzhaf's maximum-sample-reuse estimate) or
            "mean_when_included_sampled" (MeanWhenIncluded's sampled estimate).
        d: number of features (>= 2 for kernel_shap, >= 1 otherwise).
        n_samples: the explainer's ``n_samples``; seed: its ``seed``.
        antithetic: ShapleyValueSampling's ``antithetic`` (default True, as there).

    Returns:
        :class:`EstimatorMatrix` (coalitions bool [u, d], A float64 [d, u]).

    Example:
        >>> em = estimator_matrix("kernel_shap", 10, n_samples=20, seed=0)
        >>> em.A.shape, round(em.factor().h1, 1)  # exact Shapley: 2 sqrt(10) = 6.3
        (torch.Size([10, 22]), 12.8)
    """
    validation.positive_int("d", d)
    n_samples = validation.positive_int("n_samples", n_samples)
    seed = validation.seed(seed)
    f64 = torch.float64
    if method == "kernel_shap":
        if d < 2:
            raise ValueError("d: KernelShap's estimate is exact for one feature; use 'shapley'")
        masks, weights, _, _ = kernel_design(d, n_samples, seed)
        # ops.kernel_shap_solve: phi = delta / d + A^+ W^{1/2} (v - v_empty - |z| delta / d)
        # with A = W^{1/2} Z (I - 11'/d), delta = v_full - v_empty: linear in (v, v_empty,
        # v_full). A^+ = (A'A)^+ A' through the d x d Gram matrix (no n x n work), its
        # eigenvalues below 1e-11 of the largest taken as 0, as the op's pivoted Cholesky
        # drops pivots (A 1 = 0 always: without the cutoff, rounding in that direction
        # blows up). Tests check A_hat against the op on unit games, every budget.
        z = masks.to(f64)
        k = z.sum(1)
        sw = weights.to(f64).sqrt()
        A = sw[:, None] * (z - k[:, None] / d)  # [n, d]
        M = torch.linalg.pinv(A.T @ A, hermitian=True, rtol=1e-11) @ (A.T * sw[None])  # [d, n]
        M = M - M.mean(0, keepdim=True)
        mk = M @ k / d
        empty = -1.0 / d - M.sum(1) + mk
        full = 1.0 / d - mk
        A_hat = torch.cat([M, empty[:, None], full[:, None]], 1)
        whole = torch.ones((1, d), dtype=torch.bool)
        return EstimatorMatrix(method, torch.cat([masks, ~whole, whole]), A_hat)
    if method == "shapley_value_sampling":
        anti = validation.flag("antithetic", antithetic) and n_samples % 2 == 0
        perms = ops.permutations(n_samples, d, seed=seed, antithetic=anti).long()  # [P, d]
        rank = torch.argsort(perms, dim=1)  # rank[p, f]: position of f in p
        steps = torch.arange(d + 1)
        chains = rank[:, None, :] < steps[None, :, None]  # [P, d + 1, d]: first j of p
        uniq, inverse, _ = ops.unique_coalitions(chains.reshape(-1, d))
        col = inverse.view(n_samples, d + 1)
        A = torch.zeros((d, uniq.shape[0]), dtype=f64)
        feat = perms.reshape(-1)
        share = torch.full_like(feat, 1.0 / n_samples, dtype=f64)
        A.index_put_((feat, col[:, 1:].reshape(-1)), share, accumulate=True)
        A.index_put_((feat, col[:, :-1].reshape(-1)), -share, accumulate=True)
        return EstimatorMatrix(method, uniq, A)
    if method in ("banzhaf_msr", "mean_when_included_sampled"):
        uniq, counts = msr_coalitions(n_samples, d, seed)  # the explainers' own draws
        z = uniq.to(f64).T  # [d, u]
        c = counts.to(f64)
        n_in = z @ c
        if bool((n_in == 0).any()) or (method == "banzhaf_msr" and bool((n_in == c.sum()).any())):
            raise ValueError(
                f"n_samples: with {n_samples} draws (seed {seed}) a feature is in no sample "
                "or in all of them; the explainer refuses this draw too"
            )
        A = z * c / n_in[:, None]
        if method == "banzhaf_msr":
            A = A - (1.0 - z) * c / (c.sum() - n_in)[:, None]
        return EstimatorMatrix(method, uniq, A)
    raise ValueError(f"method: expected one of {tuple(SAMPLED)}, got {method!r}")


def attribution_factor(
    method: Any,
    d: int,
    *,
    n_samples: int | None = None,
    seed: int | None = None,
    weights: Sequence[float] | Tensor | None = None,
    antithetic: bool = True,
) -> SummaryFactor:
    """The factors of an attribution method: ``||phi - phi'||_2 <= h * max_S |v(S) - v'(S)|``
    and ``|phi_i - phi'_i| <= per_feature[i] * max_S |v(S) - v'(S)|``, the max over the
    coalitions the method evaluates (all 2^d for an exact summary).

    Args:
        method: a summary name (``SUMMARIES``: closed forms for any d), a sampling
            estimator's name (``SAMPLED``), or the explainer (class or instance) that
            produced the attributions: ExactShapley, Banzhaf, FeatureAblation (leave one
            out), MeanWhenIncluded, KernelShap, ShapleyValueSampling.
        d: number of features.
        n_samples: the explainer's ``n_samples`` (None: its default; exact for Banzhaf
            and MeanWhenIncluded).
        seed: the explainer's ``seed``; sampled estimators need it, as the bound holds
            for two attributions computed with the same draws (common random numbers).
        weights: the size weights of ``method="semivalue"``.
        antithetic: ShapleyValueSampling's ``antithetic`` (default True, as there).

    Returns:
        :class:`SummaryFactor` (``h``, ``h1``, ``h2``, ``per_feature`` [d]).

    Example:
        >>> from xattr import KernelShap
        >>> round(attribution_factor("shapley", 10).h, 2)
        6.32
        >>> round(attribution_factor(KernelShap, 10, n_samples=20, seed=0).h, 2)
        11.82
    """
    name, n = resolve_method(method, n_samples)
    if name in SUMMARIES:
        if weights is not None:  # any weights: not cached
            return summary_factor(name, d, weights)
        return _copy(_factor(name, validation.positive_int("d", d), None, None, True))
    if weights is not None:
        raise ValueError('weights: only method="semivalue" takes weights')
    if name == "kernel_shap" and d == 1:  # KernelShap gives one feature v(N) - v(empty)
        return attribution_factor("shapley", 1)
    if seed is None:
        raise ValueError(
            "seed: a sampled estimate is bounded for two runs with the same draws; give the "
            "seed= the explainer was called with (and call it with that seed)"
        )
    assert n is not None
    key = (
        validation.positive_int("d", d),
        validation.positive_int("n_samples", n),
        validation.seed(seed),
        validation.flag("antithetic", antithetic),
    )
    return _copy(_factor(name, *key))


# The factors are a function of (method, d, n_samples, seed, antithetic) alone: the last
# 32 are kept, so bounding batch after batch explained with one seed costs no A_hat.
@functools.lru_cache(maxsize=32)
def _factor(name: str, d: int, n: int | None, seed: int | None, antithetic: bool) -> SummaryFactor:
    if n is None:
        return summary_factor(name, d)
    assert seed is not None
    return estimator_matrix(name, d, n_samples=n, seed=seed, antithetic=antithetic).factor()


def _copy(f: SummaryFactor) -> SummaryFactor:
    """A cached factor with its own per_feature tensor (callers may write to theirs)."""
    return SummaryFactor(f.h1, f.h2, f.per_feature.clone())


__all__ = [
    "SAMPLED",
    "EstimatorMatrix",
    "attribution_factor",
    "estimator_matrix",
    "resolve_method",
]
