"""Amortized explanations: a network trained once predicts removal-based Shapley values
in one forward pass (FastSHAP, Jethani et al. 2022; regression to Monte Carlo
targets, Yang et al. 2023).

:class:`AmortizedExplainer` trains an explainer network (``"mlp"``, ``"cnn"`` or any
``nn.Module``) on xattr's games (``removal=``, baselines, feature groups, the masking
kernel) and returns Captum-shaped attributions made efficient exactly:
sum_i phi_i = v(N) - v(empty).
"""

from __future__ import annotations

from xattr.amortized.backbones import BACKBONES
from xattr.amortized.explainer import OBJECTIVES, TARGET_EXPLAINERS, AmortizedExplainer

__all__ = ["BACKBONES", "OBJECTIVES", "TARGET_EXPLAINERS", "AmortizedExplainer"]
