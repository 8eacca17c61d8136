"""Robustness bounds for removal-based attributions (Lin, Covert & Lee, NeurIPS 2023).

A removal-based attribution is a linear map of the game: phi = A v, where v holds
v(S) for the 2^d coalitions S (row r of :func:`xattr.ops.enumerate_coalitions`:
feature i is in S iff bit i of r is set) and row a_i of A is the summary's weight
on each coalition. If two games differ by at most ``dv = max_S |v(S) - v'(S)|``
(an input moved, or the model replaced by a nearby one), then

    ||A (v - v')||_2 <= h * dv,        |phi_i - phi'_i| <= ||a_i||_1 * dv,

with the summary factor h = min(h1, h2), h1 = sqrt(sum_i ||a_i||_1^2) and
h2 = ||A||_2 * 2^(d/2) (the spectral norm, times sqrt of the number of coalitions).

Summaries (a_i(S) for i in S / i not in S):

- semivalues with size weights p_0..p_{d-1}: p_{|S|-1} / -p_{|S|};
  Shapley p_k = k! (d-1-k)! / d!, Banzhaf p_k = 1 / 2^(d-1), leave-one-out
  p_k = 1{k = d-1}. For each, ||a_i||_1 = 2 sum_k C(d-1, k) p_k (2 for all three,
  so h1 = 2 sqrt(d)), and A A' = alpha I + beta (11' - I) has the eigenvalues
  alpha + (d-1) beta and alpha - beta in closed form (Banzhaf: h2 = 2 for every d);
- mean-when-included (RISE-like): 1 / 2^(d-1) / 0, h1 = sqrt(d).

Sampling estimators with common random numbers (the same ``seed=`` for both games)
are linear maps A_hat of the values they evaluate (KernelShap's constrained least
squares, permutation sampling, MSR Banzhaf): :func:`estimator_matrix` rebuilds A_hat
from the seed, and its factors replace the exact ones (much larger at small budgets).

Input perturbation x' = x + delta, f L-Lipschitz in l2, |f| <= B:
|v_x(S) - v_x'(S)| <= L ||delta_S||_2 for baseline and marginal removal, and
(L + 2 B M) ||delta_S||_2 for conditional removal when the conditional law of X_{not S}
given X_S = x_S is M-Lipschitz in total variation; so ||phi(x) - phi(x')||_2 <= g h eps
(:func:`input_bound`). Model perturbation f -> f': |v(S) - v'(S)| <= sup |f - f'| over
the points the removal queries (:func:`model_gap`), or Q sup_{X'} |f - f'| + 2 B (1 - Q)
for conditional removal when an imputed point lies in X' with probability Q
(:func:`model_bound`). :func:`attribution_change` measures the actual change with
common random numbers.

L comes from :func:`lipschitz_upper`, a guaranteed upper bound for Sequential networks
(exact spectral norms of small linear runs, proven bounds for larger convolutions, no
power iteration); :func:`lipschitz_lower` is the empirical lower estimate (the largest
local constant found), reported next to it: the bounds use the upper one.

Reference: C. Lin, I. Covert, S.-I. Lee, "On the Robustness of Removal-Based Feature
Attributions", NeurIPS 2023.

Example:
    >>> from xattr.bounds import summary_factor
    >>> f = summary_factor("banzhaf", 10)
    >>> round(f.h1, 4), round(f.h2, 4), round(f.h, 4)
    (6.3246, 2.0, 2.0)
"""

from xattr.bounds.estimator import (
    SAMPLED,
    EstimatorMatrix,
    attribution_factor,
    estimator_matrix,
    resolve_method,
)
from xattr.bounds.lipschitz import lipschitz_lower, lipschitz_upper
from xattr.bounds.robustness import (
    REMOVALS,
    RobustnessBound,
    attribution_change,
    feature_counts,
    input_bound,
    model_bound,
    model_gap,
    removal_kind,
)
from xattr.bounds.summary import (
    SUMMARIES,
    SummaryFactor,
    factor_of_matrix,
    semivalue_weights,
    summary_factor,
    summary_matrix,
)

__all__ = [
    "REMOVALS",
    "SAMPLED",
    "EstimatorMatrix",
    "RobustnessBound",
    "attribution_change",
    "attribution_factor",
    "feature_counts",
    "estimator_matrix",
    "input_bound",
    "lipschitz_lower",
    "lipschitz_upper",
    "model_bound",
    "model_gap",
    "removal_kind",
    "resolve_method",
    "SUMMARIES",
    "SummaryFactor",
    "factor_of_matrix",
    "semivalue_weights",
    "summary_factor",
    "summary_matrix",
]
