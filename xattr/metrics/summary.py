"""Summaries of per-example metric values."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def summarize(values: Tensor) -> dict[str, float]:
    """Mean, standard deviation, standard error of the mean, median, min, max and
    count of per-example values; NaNs (undefined values) are left out and counted.

    Args:
        values: [B] (any shape: all entries are pooled).

    Returns:
        dict with keys mean, std, sem, median, min, max, n, nan.

    Example:
        >>> import torch
        >>> s = summarize(torch.tensor([1.0, 2.0, 3.0, float("nan")]))
        >>> s["mean"], s["median"], s["n"], s["nan"]
        (2.0, 2.0, 3, 1)
    """
    if not isinstance(values, Tensor):
        raise TypeError(f"values: expected a tensor, got {type(values).__name__}")
    v = values.detach().reshape(-1).to(torch.float64).cpu()
    ok = ~torch.isnan(v)
    v, n = v[ok], int(ok.sum())
    if n == 0:
        nan = float("nan")
        return {
            "mean": nan,
            "std": nan,
            "sem": nan,
            "median": nan,
            "min": nan,
            "max": nan,
            "n": 0,
            "nan": int((~ok).sum()),
        }
    std = float(v.std()) if n > 1 else float("nan")
    return {
        "mean": float(v.mean()),
        "std": std,
        "sem": std / math.sqrt(n) if n > 1 else float("nan"),
        "median": float(v.median()),
        "min": float(v.min()),
        "max": float(v.max()),
        "n": n,
        "nan": int((~ok).sum()),
    }
