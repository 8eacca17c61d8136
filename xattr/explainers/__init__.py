"""Explainers: Captum's attribution methods on xattr's kernels, plus our own."""
