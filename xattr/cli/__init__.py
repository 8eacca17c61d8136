"""The ``xattr`` command line (the console script of the package).

- ``xattr explain MODEL INPUTS --method M --out FILE``: any explainer on a
  ``torch.export`` program, a TorchScript file or ``package.module:factory``, for
  inputs in a .pt / .npy / .npz file or a folder of images; ``--smooth`` explains the
  MuS-smoothed model and certifies it.
- ``xattr compare MODEL INPUTS --methods ig,kernelshap``: time, model rows and
  agreement of xattr with Captum and shap (and the error against exact Shapley
  values where the number of features allows) on the user's own model.

:func:`main` runs it in-process (``main(argv) -> exit code``).
"""

from __future__ import annotations

from xattr.cli.main import main

__all__ = ["main"]
