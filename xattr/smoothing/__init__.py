"""Multiplicative smoothing (MuS) and certified stability of explanations.

:class:`MuS` wraps a classifier so that it is lambda-Lipschitz with respect to
feature masking; :func:`certify` turns that into certificates that an explanation
(a binary feature mask) is consistent with the prediction and stable when features
are added or removed.
"""

from __future__ import annotations

from xattr.smoothing.certify import Certificate, certified_radius, certify
from xattr.smoothing.mus import MuS, columns, grid_patches, tokens

__all__ = ["Certificate", "MuS", "certified_radius", "certify", "columns", "grid_patches", "tokens"]
