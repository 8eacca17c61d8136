"""Evaluation metrics for attributions, batched on xattr's kernels.

- Faithfulness: :func:`deletion_curve`, :func:`insertion_curve` (MoRF / LeRF, any
  baseline: zero, blur, mean, a counterfactual), :func:`road` (noisy linear
  imputation), :func:`target_class_curve` (toward a counterfactual class).
- Robustness, Captum-compatible (same arguments, same values for the same random
  draws): :func:`infidelity`, :func:`sensitivity_max`.
- Sanity: :func:`cascading_randomization` with :func:`ssim` and Spearman.
- Agreement with a reference explanation: :func:`relative_l2`, :func:`mse`,
  :func:`spearman`, :func:`kendall`, :func:`top_k_intersection`,
  :func:`sign_agreement`.

Every perturbed input of every example goes through the model in large batches
under the memory budget; results are per-example tensors, and the result objects'
``summary()`` (or :func:`summarize` for a tensor) gives means, standard errors and
per-step averages.
"""

from __future__ import annotations

from xattr.metrics.agreement import (
    kendall,
    mse,
    relative_l2,
    sign_agreement,
    spearman,
    top_k_intersection,
)
from xattr.metrics.faithfulness import (
    Curve,
    RoadCurve,
    TargetClassCurve,
    deletion_curve,
    insertion_curve,
    linear_imputation,
    road,
    target_class_curve,
)
from xattr.metrics.robustness import (
    infidelity,
    infidelity_perturb_func_decorator,
    sensitivity_max,
)
from xattr.metrics.sanity import RandomizationResult, cascading_randomization, ssim
from xattr.metrics.summary import summarize

__all__ = [
    "Curve",
    "RandomizationResult",
    "RoadCurve",
    "TargetClassCurve",
    "cascading_randomization",
    "deletion_curve",
    "infidelity",
    "infidelity_perturb_func_decorator",
    "insertion_curve",
    "kendall",
    "linear_imputation",
    "mse",
    "relative_l2",
    "road",
    "sensitivity_max",
    "sign_agreement",
    "spearman",
    "ssim",
    "summarize",
    "target_class_curve",
    "top_k_intersection",
]
