"""Evaluation metrics for attributions, batched on xattr's kernels.

Faithfulness (deletion / insertion curves, ROAD, target-class curves), robustness
(Captum-compatible ``infidelity`` and ``sensitivity_max``), sanity (cascading
model randomisation) and agreement with a reference explanation. Every perturbed
input of every example goes through the model in large batches under the memory
budget; results are per-example tensors.
"""

from __future__ import annotations

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

__all__ = [
    "Curve",
    "RoadCurve",
    "TargetClassCurve",
    "deletion_curve",
    "insertion_curve",
    "linear_imputation",
    "road",
    "target_class_curve",
]
