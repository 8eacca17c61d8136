"""Amortized explanations: a network trained once predicts removal-based Shapley values
in one forward pass (FastSHAP, Jethani et al. 2022; regression to Monte Carlo
targets, Yang et al. 2023).

:class:`AmortizedExplainer` trains an explainer network (``"mlp"``, ``"cnn"``,
``"tokens"`` for text over a frozen encoder, or any ``nn.Module``) on xattr's games
(``removal=``, baselines, feature groups, the masking kernel) and returns
Captum-shaped attributions made efficient exactly: sum_i phi_i = v(N) - v(empty).

:class:`SelectiveExplainer` (Paes, Wei, Calmon 2024) keeps the amortized explanation
where its uncertainty (a deep ensemble's variance, or a learned head) is low and
refines the rest with a small Monte Carlo explanation, lam A + (1 - lam) MC_n.
"""

from __future__ import annotations

from xattr.amortized.backbones import BACKBONES, TokenHead
from xattr.amortized.explainer import OBJECTIVES, TARGET_EXPLAINERS, AmortizedExplainer
from xattr.amortized.selective import (
    FALLBACKS,
    UNCERTAINTIES,
    SelectiveExplainer,
    SelectiveResult,
    train_ensemble,
)

__all__ = [
    "BACKBONES",
    "FALLBACKS",
    "OBJECTIVES",
    "TARGET_EXPLAINERS",
    "UNCERTAINTIES",
    "AmortizedExplainer",
    "SelectiveExplainer",
    "SelectiveResult",
    "TokenHead",
    "train_ensemble",
]
