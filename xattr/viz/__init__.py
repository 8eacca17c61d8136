"""Pictures of attributions (matplotlib, imported only when a function draws).

- Captum's image plots with Captum's arguments: :func:`visualize_image_attr`,
  :func:`visualize_image_attr_multiple` (``from xattr.viz import visualization as viz``
  replaces ``from captum.attr import visualization as viz``).
- xattr's own: :func:`image_attributions` (methods side by side on one colour scale,
  superpixel outlines), :func:`text_html` (tokens coloured by attribution, HTML),
  :func:`feature_bars` (tabular features), :func:`curves` (deletion / insertion curves
  with their AUC), :func:`certified_radii` (MuS certificates).
- :func:`to_explanation`: any attribution result as a ``shap.Explanation`` for shap's
  plots.

Every drawing function returns a matplotlib ``Figure`` and never calls ``plt.show()``
(Captum's functions follow Captum's ``use_pyplot``). matplotlib is an optional extra:
``pip install "torch-xattr[demo]"``.
"""

from __future__ import annotations

from xattr.viz import visualization
from xattr.viz.curves import certified_radii, curves
from xattr.viz.explanation import to_explanation
from xattr.viz.images import image_attributions
from xattr.viz.tabular import feature_bars
from xattr.viz.text import text_html
from xattr.viz.visualization import visualize_image_attr, visualize_image_attr_multiple

__all__ = [
    "certified_radii",
    "curves",
    "feature_bars",
    "image_attributions",
    "text_html",
    "to_explanation",
    "visualization",
    "visualize_image_attr",
    "visualize_image_attr_multiple",
]
