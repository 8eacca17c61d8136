"""Multiplicative smoothing (MuS) and certified stability of explanations.

:class:`MuS` wraps a classifier so that it is lambda-Lipschitz with respect to
feature masking; :func:`certify` turns that into certificates that an explanation
(a binary feature mask) is consistent with the prediction and stable when features
are added or removed; :func:`explain_and_certify` certifies the top features of any
explainer's attributions and :func:`min_stable_fraction` finds the fewest that are
stable; :func:`finetune` adapts a base model to masking (at lambda and lambda / 2).
"""

from __future__ import annotations

from xattr.smoothing.certify import Certificate, certified_radius, certify
from xattr.smoothing.explain import (
    ExplainedCertificate,
    MinStable,
    explain_and_certify,
    min_stable_fraction,
)
from xattr.smoothing.finetune import finetune
from xattr.smoothing.mus import MuS, columns, grid_patches, tokens

__all__ = [
    "Certificate",
    "ExplainedCertificate",
    "MinStable",
    "MuS",
    "certified_radius",
    "certify",
    "columns",
    "explain_and_certify",
    "finetune",
    "grid_patches",
    "min_stable_fraction",
    "tokens",
]
