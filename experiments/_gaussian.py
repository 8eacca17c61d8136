"""Exact conditional games on Gaussian data, for the robustness-bound experiments and tests.

For x ~ N(mu, Sigma) and a model f(x) = link(w . x + c) (logistic regression with
link = sigmoid), the conditional game v(S) = E[f(x_S, X_{not S}) | X_S = x_S] is a
one-dimensional Gaussian integral: given X_S = x_S, the logit is N(m, s^2) with

    m = w_S x_S + w_{-S} (mu_{-S} + K (x_S - mu_S)) + c,   K = Sigma_{-S,S} Sigma_{S,S}^+,
    s^2 = w_{-S}' (Sigma_{-S,-S} - K Sigma_{S,-S}) w_{-S},

computed by Gauss-Hermite quadrature (exact to rounding for a smooth link). The
conditional law N(mu_{-S} + K (x_S - mu_S), C_S) moves in total variation by
TV = 2 Phi(||C_S^{-1/2} K delta_S|| / 2) - 1 <= ||C_S^{-1/2} K||_2 ||delta_S|| / sqrt(2 pi),
so M = max_S ||C_S^{-1/2} K||_2 / sqrt(2 pi) (infinite when a removed feature is a
deterministic, non-constant function of the kept ones, e.g. rho = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from xattr import ops


def _blocks(cov: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """K = Sigma_{-S,S} Sigma_{S,S}^+ and C = Sigma_{-S,-S} - K Sigma_{S,-S} for S = keep."""
    s, r = keep, ~keep
    kk = torch.linalg.pinv(cov[s][:, s], hermitian=True)
    K = cov[r][:, s] @ kk
    C = cov[r][:, r] - K @ cov[s][:, r]
    return K, (C + C.T) / 2


class GaussianConditional:
    """The exact conditional game of ``link(w . x + c)`` under N(mean, cov), as a
    ``ConditionalRemoval`` surrogate: ``g(x_masked [rows, d], mask bool [rows, d])``
    -> [rows, 1] (shaped like the model's output).

    Example:
        >>> import torch
        >>> g = GaussianConditional(torch.tensor([1.0, 0.0]), 0.0, torch.zeros(2), torch.eye(2))
        >>> x = torch.tensor([[0.0, 3.0]], dtype=torch.float64)
        >>> round(float(g(x, torch.tensor([[True, False]]))[0, 0]), 6)  # E sigmoid(0 + 0 Z)
        0.5
    """

    def __init__(
        self,
        w: Tensor,
        c: float,
        mean: Tensor,
        cov: Tensor,
        link: Callable[[Tensor], Tensor] = torch.sigmoid,
        nodes: int = 80,
    ):
        f64 = torch.float64
        self.w, self.c = w.to(f64), float(c)
        self.mean, self.cov = mean.to(f64), cov.to(f64)
        self.link = link
        t, h = np.polynomial.hermite_e.hermegauss(nodes)  # weight exp(-t^2 / 2)
        self.t = torch.tensor(t, dtype=f64)
        self.h = torch.tensor(h / math.sqrt(2 * math.pi), dtype=f64)

    def __call__(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x.to(torch.float64)
        out = torch.empty(x.shape[0], dtype=torch.float64)
        uniq, inverse, _ = ops.unique_coalitions(mask)
        for k in range(uniq.shape[0]):
            rows = inverse == k
            keep = uniq[k]
            K, C = _blocks(self.cov, keep)
            xs = x[rows][:, keep] - self.mean[keep]
            w_r = self.w[~keep]
            m = x[rows][:, keep] @ self.w[keep] + w_r @ self.mean[~keep] + xs @ (K.T @ w_r)
            s = float((w_r @ C @ w_r).clamp_min(0.0).sqrt())
            z = m[:, None] + self.c + s * self.t[None]
            out[rows] = self.link(z) @ self.h
        return out[:, None]


def tv_lipschitz(cov: Tensor, tol: float = 1e-10) -> float:
    """M = max over coalitions S of ||C_S^{-1/2} K_S||_2 / sqrt(2 pi) for N(., cov)
    (d <= 16: every coalition); inf where a removed feature is a non-constant
    deterministic function of the kept ones."""
    cov = cov.to(torch.float64)
    d = cov.shape[0]
    best = 0.0
    for keep in ops.enumerate_coalitions(d)[1:-1]:
        K, C = _blocks(cov, keep)
        evals, U = torch.linalg.eigh(C)
        proj = U.T @ K  # rows: directions of the conditional law
        scale = float(evals.max().clamp_min(0.0))
        small = evals <= tol * max(scale, 1.0)
        if bool((proj[small].abs() > 1e-8).any()):
            return math.inf
        big = ~small
        if bool(big.any()):
            whitened = proj[big] / evals[big].sqrt()[:, None]
            best = max(best, float(torch.linalg.matrix_norm(whitened, ord=2)))
    return best / math.sqrt(2 * math.pi)
