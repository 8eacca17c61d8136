"""KernelSHAP: Shapley values as the solution of a weighted least-squares problem.

The game is v(S) = f(x with the features off S removed) (see
:mod:`xattr.explainers.removal`; by default features off S take the
``baselines``). KernelSHAP (Lundberg & Lee, 2017) finds the additive model
``v(S) ~ v(empty) + sum_{i in S} phi_i`` that is closest in the Shapley-kernel
weighted norm, with ``sum(phi) = v(N) - v(empty)`` held exactly; with every
coalition enumerated its solution is the exact Shapley value.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from xattr import ops
from xattr.explainers._common import (
    BaselineType,
    PerturbationAttribution,
    TargetType,
    TensorOrTuple,
    flag,
    positive_int,
)
from xattr.explainers._game import Setup
from xattr.explainers.removal import Removal
from xattr.ops import _checks


# ----------------------------------------------------------------- design
def kernel_design(d: int, n_samples: int, seed: int) -> tuple[Tensor, Tensor, Tensor, bool]:
    """KernelSHAP coalitions and weights for ``d`` features and ``n_samples`` draws.

    Sizes are allocated as in the ``shap`` package: size pairs (k, d-k) are taken
    in order of decreasing kernel weight, and a pair whose subsets all fit the
    remaining budget in expectation (``budget * share >= count``) is enumerated with
    its exact Shapley-kernel weight; the rest of the budget is sampled from the
    kernel distribution restricted to the remaining sizes as complementary pairs,
    each row weighing an equal share of the remaining kernel mass. With
    ``2^d - 2 <= n_samples`` every coalition is enumerated (exact result).

    Returns:
        (masks bool [m, d], weights float64 [m] summing to 1, pair int64 [m]
        (the sampled pair of each row, -1 for enumerated rows), exact).
    """
    if d < 2:
        raise ValueError(f"d: KernelSHAP designs need d >= 2, got {d}")
    if d <= 62 and 2**d - 2 <= n_samples:
        m = ops.enumerate_coalitions(d)[1:-1]
        k = m.sum(1).to(torch.float64)
        binom = torch.tensor([math.comb(d, int(j)) for j in k.tolist()], dtype=torch.float64)
        w = (d - 1) / (binom * k * (d - k))
        return m, w / w.sum(), torch.full((m.shape[0],), -1, dtype=torch.int64), True
    n_sizes = (d - 1 + 1) // 2  # ceil((d-1)/2) representatives k = 1..n_sizes
    n_paired = (d - 1) // 2
    share = [(d - 1) / (k * (d - k)) * (2 if k <= n_paired else 1) for k in range(1, n_sizes + 1)]
    total = sum(share)
    share = [s / total for s in share]
    left, remaining = n_samples, list(share)
    masks, weights = [], []
    enumerated = 0
    for k in range(1, n_sizes + 1):
        paired = k <= n_paired
        count = math.comb(d, k) * (2 if paired else 1)
        if left * remaining[k - 1] / count < 1.0 - 1e-8:
            break
        enumerated = k
        left -= count
        if remaining[k - 1] < 1.0:
            rest = 1.0 - remaining[k - 1]
            remaining = [r / rest for r in remaining]
        combos = torch.combinations(torch.arange(d), k) if k > 1 else torch.arange(d)[:, None]
        m = torch.zeros((combos.shape[0], d), dtype=torch.bool)
        m.scatter_(1, combos, True)
        if paired:
            m = torch.cat([m, ~m])
        masks.append(m)
        weights.append(torch.full((m.shape[0],), share[k - 1] / count, dtype=torch.float64))
    rest_sizes = list(range(enumerated + 1, n_sizes + 1))
    pair_ids = [torch.full((sum(x.shape[0] for x in masks),), -1, dtype=torch.int64)]
    n_pairs = left // 2
    if not masks and n_pairs < 1:
        n_pairs = 1
    if rest_sizes and n_pairs > 0:
        # One draw for all remaining sizes: the kernel renormalised over the sizes not
        # enumerated (k and d - k alike), paired rows (a draw and its complement).
        mass = sum(share[k - 1] for k in rest_sizes)
        allowed = sorted(set(rest_sizes) | {d - k for k in rest_sizes})
        masks.append(
            ops.shapley_kernel_masks(2 * n_pairs, d, seed=seed, paired=True, sizes=allowed)
        )
        pair_ids.append(torch.arange(n_pairs, dtype=torch.int64).repeat_interleave(2))
        weights.append(torch.full((2 * n_pairs,), mass / (2 * n_pairs), dtype=torch.float64))
    m = torch.cat(masks)
    w = torch.cat(weights)
    return m, w / w.sum(), torch.cat(pair_ids), False


def _sandwich_std(
    masks: Tensor, weights: Tensor, pair: Tensor, values: Tensor, v_empty: Tensor, phi: Tensor
) -> Tensor:
    """Standard error of the constrained WLS solution over the sampled pairs.

    Linearising phi = argmin sum_r w_r (y_r - z_r.phi)^2 s.t. 1.phi = c around the
    solution gives phi - E[phi] ~ M sum_p g_p with M the d x d block of the inverse
    KKT matrix [[Z'WZ, 1], [1', 0]] and g_p = sum_{r in pair p} w_r z_r e_r (e the
    residuals). The sampled pairs are i.i.d., so Var(phi) ~ P/(P-1) sum_p
    (M g_p - mean)^2 (the sandwich / delta-method estimate), inflated by the HC1
    factor P / (P - d + 1) for the d - 1 fitted parameters (plain sandwich estimates
    under-cover with few pairs); enumerated rows carry no sampling variance.

    masks [m, d], weights [m], pair [m], values [B, m, T], v_empty [B, T],
    phi [B, T, d] -> std [B, T, d].
    """
    B, T, d = phi.shape
    sampled = pair >= 0
    P = int(pair.max()) + 1 if bool(sampled.any()) else 0
    if P < 2:
        return torch.zeros_like(phi) if P == 0 else torch.full_like(phi, float("nan"))
    z = masks.to(torch.float64)
    A = z.T @ (weights[:, None] * z)
    K = torch.zeros((d + 1, d + 1), dtype=torch.float64)
    K[:d, :d] = A
    K[:d, d] = 1.0
    K[d, :d] = 1.0
    M = torch.linalg.pinv(K)[:d, :d]
    zs, ws, ps = z[sampled], weights[sampled], pair[sampled]
    y = values[:, sampled].permute(0, 2, 1) - v_empty[:, :, None]  # [B, T, r]
    e = y - phi @ zs.T  # [B, T, r]
    g = torch.zeros((B, T, P, d), dtype=torch.float64)
    g.index_add_(2, ps, (ws * e)[..., None] * zs)
    psi = g @ M
    # HC1-style small-sample correction: d - 1 free parameters (efficiency fixes one).
    var = psi.var(dim=2, correction=0) * P * P / max(P - (d - 1), 1)
    return var.clamp_min(0).sqrt()


# ---------------------------------------------------------------- explainer
class KernelShap(PerturbationAttribution):
    """KernelSHAP (Captum-compatible), with shap's size allocation and exact efficiency.

    The game is v(S) = f(x_S, removed_{not S}) (``removal=``, default: features off
    S take ``baselines``). Coalitions are drawn as in :func:`kernel_design`
    (enumerated sizes with their exact kernel weight, the rest sampled as
    complementary pairs), duplicates are evaluated once and weigh by their count,
    and the weighted least squares is solved with ``sum(phi) = v(N) - v(empty)``
    held exactly (:func:`xattr.ops.kernel_shap_solve`).

    The coalitions are shared by every input of the batch (one Gram factorisation).
    The design does not depend on the inputs, so each input's estimate has exactly
    the distribution it would have if that input were explained alone: sharing adds
    no bias (KernelSHAP's own O(1/n) regression bias aside, the estimate is unbiased
    to first order); only the errors of different inputs are correlated.

    ``return_std`` gives a sandwich (delta-method) standard error over the sampled
    complementary pairs (see ``_sandwich_std``); it needs clearly more sampled pairs
    than features to be reliable (tested: ~92% coverage of +-1.96 std at d = 8,
    n_samples = 100), and forms a (d+1) x (d+1) matrix, so keep d moderate (use a
    ``feature_mask``).

    Args:
        forward_func: the model; returns [B] or [B, ...] outputs for [B, ...] inputs.

    Example:
        >>> import torch
        >>> f = lambda x: x.sum(1)
        >>> KernelShap(f).attribute(torch.ones(1, 3), n_samples=6, seed=0).tolist()
        [[1.0, 1.0, 1.0]]
    """

    @property
    def multiplies_by_inputs(self) -> bool:
        """False, as in Captum: the attributions are a surrogate's coefficients."""
        return False

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        return_input_shape: bool = True,
        show_progress: bool = False,
        *,
        seed: int | None = None,
        return_std: bool = False,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
    ) -> TensorOrTuple | tuple[TensorOrTuple, TensorOrTuple]:
        """KernelSHAP attributions.

        Args:
            inputs: [B, *F] tensor or tuple of them.
            baselines: Captum's forms (None = zeros, number, tensor [1 or B, *F] or
                [*F], tuple of these): what replaces removed features.
            target: output(s) to explain: None, int, tuple, list of B ints, list of B
                lists of T ints or "all" (several targets share one set of model
                evaluations and one factorisation).
            additional_forward_args: extra arguments for the model.
            feature_mask: int tensor(s) grouping elements into d features
                (default: every scalar is a feature).
            n_samples: coalitions drawn per input (default 25), the model rows
                spent besides v(empty) and v(N). Sampled rows come in complementary
                pairs, so an odd remainder goes unused (and n_samples = 1 draws one
                pair); duplicates are evaluated once. With ``2^d - 2 <= n_samples``
                all coalitions are used and the result is exact.
            perturbations_per_eval: accepted for Captum compatibility; batching is
                decided by ``memory_budget`` and never changes the result.
            return_input_shape: True: attributions shaped like the inputs; False:
                per-feature values [B, D] ([B, T, D] for several targets) in Captum's
                interpretable space: column k for feature id min_id + k,
                D = max_id - min_id + 1.
            show_progress: a progress bar over coalitions.
            seed: 64-bit seed (None draws one from torch's global generator).
            return_std: also return the standard error of each attribution
                (sandwich estimate over the sampled pairs, see ``_sandwich_std``;
                0 where everything was enumerated), shaped like the attributions.
            removal: the game's removal (``BaselineRemoval`` by default).
            memory_budget: bytes (or "2GB") for a forward batch.

        Returns:
            attributions (and standard errors with ``return_std``): like the inputs
            ([B, *F], [B, T, *F] for several targets) or per feature.
        """
        n_samples = positive_int("n_samples", n_samples)
        flag("return_input_shape", return_input_shape)
        flag("return_std", return_std)
        s = _checks.seed(seed)
        setup = Setup(
            self.forward_func,
            inputs,
            baselines,
            target,
            additional_forward_args,
            feature_mask,
            removal,
            perturbations_per_eval,
            memory_budget,
            show_progress,
            "kernel shap",
        )
        game, d = setup.game, setup.d
        v_full, v_empty = game.full_and_empty()
        if d == 1:
            phi = (v_full - v_empty)[:, :, None]
            std = torch.zeros_like(phi)
        else:
            masks, weights, pair, exact = kernel_design(d, n_samples, s)
            dev = setup.inputs[0].device
            uniq, inverse, _ = ops.unique_coalitions(masks)
            w_u = torch.zeros(uniq.shape[0], dtype=torch.float64).index_add_(0, inverse, weights)
            values = game(uniq.to(dev)).cpu()
            phi = ops.kernel_shap_solve(uniq, w_u, values, v_empty.cpu(), v_full.cpu())
            if return_std and not exact:
                std = _sandwich_std(masks, weights, pair, values[:, inverse], v_empty.cpu(), phi)
            else:
                std = torch.zeros_like(phi)
        dev = setup.inputs[0].device
        phi, std = phi.to(dev), std.to(dev)
        if return_input_shape:
            out = setup.output(phi)
            return (out, setup.output(std)) if return_std else out
        out = setup.per_feature(phi)
        return (out, setup.per_feature(std)) if return_std else out
