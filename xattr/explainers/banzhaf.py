"""Banzhaf: exact Banzhaf values by enumeration, or the maximum-sample-reuse
(MSR) estimator over Bernoulli(1/2) coalitions."""

from __future__ import annotations

from typing import Any, Literal, overload

import torch
from torch import Tensor

from xattr import ops
from xattr._core import validation
from xattr._core.attribution import PerturbationAttribution
from xattr._core.game import Setup
from xattr._core.inputs import BaselineType, TensorOrTupleGeneric
from xattr._core.progress import with_row_progress
from xattr._core.removal import Removal
from xattr._core.targets import TargetType
from xattr.explainers.exact_shapley import enumerated_values
from xattr.explainers.registry import register


def weighted_mean_var(values: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Per feature, the mean of v over the coalitions weighted by ``w`` and the
    variance of that mean.

    ``mean_i = sum_u w_ui v_u / n_i`` with ``n_i = sum_u w_ui``, and ``s_i^2 / n_i``
    with ``s_i^2`` the unbiased sample variance of v over those coalitions (``w`` read
    as counts). Used by :func:`msr_stderr` (one side each) and MeanWhenIncluded.

    Args:
        values: [B, u, T] float64; w: [u, d] counts (zero where a coalition is off
            the side).

    Returns:
        (mean, var_of_mean), each [B, T, d]; the mean is NaN where n_i = 0 and the
        variance inf where n_i < 2.
    """
    n = w.sum(0)  # [d]
    s1 = torch.einsum("but,ud->btd", values, w)
    s2 = torch.einsum("but,ud->btd", values * values, w)
    mean = s1 / n
    var = (s2 - n * mean * mean).clamp_min(0.0) / (n - 1)
    var = torch.where(n > 1, var, torch.full_like(var, float("inf")))
    return mean, var / n


def msr_coalitions(
    n_samples: int, d: int, seed: int, device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    """The coalitions of the MSR estimate (Banzhaf's, and MeanWhenIncluded's with the
    same seed): ``n_samples`` Bernoulli(1/2) rows over d features, de-duplicated.

    Returns:
        (distinct coalitions bool [u, d], their counts int64 [u]).

    Example:
        >>> masks, counts = msr_coalitions(100, 3, seed=0)
        >>> masks.shape[1], int(counts.sum())
        (3, 100)
    """
    masks = ops.bernoulli_masks(n_samples, d, 0.5, seed=seed, device=device)
    uniq, _, counts = ops.unique_coalitions(masks)
    return uniq, counts


def msr_stderr(masks: Tensor, counts: Tensor, values: Tensor) -> Tensor:
    """Standard error of the MSR Banzhaf estimate, from the same evaluations.

    ``beta_i = mean_in - mean_out`` is a difference of two independent sample means
    (given the split), so ``se_i^2 = var_in / n_in + var_out / n_out`` with the
    unbiased sample variances of v over the coalitions holding / lacking i
    (duplicates weighted by their counts; see :func:`weighted_mean_var`).

    Args:
        masks: bool [u, d]; counts: [u]; values: [B, u, T] float64.

    Returns:
        [B, T, d] (inf where a side holds fewer than two coalitions).
    """
    m = masks.to(values.dtype)  # [u, d]
    c = counts.to(values.dtype)  # [u]
    _, var_in = weighted_mean_var(values, c[:, None] * m)
    _, var_out = weighted_mean_var(values, c[:, None] * (1.0 - m))
    return (var_in + var_out).sqrt()


@register(captum=False)
class Banzhaf(PerturbationAttribution):
    """Banzhaf values ``beta_i = 2^{1-d} sum_{S subset N \\ {i}} (v(S + i) - v(S))``.

    The game is ``v(S) = f(x_S, b_{not S})`` with the default ``BaselineRemoval``
    (``MarginalRemoval`` / ``ConditionalRemoval`` change it, see
    :mod:`xattr.explainers.removal`). With ``n_samples=None`` and d <= 20 all 2^d
    coalitions are evaluated (exact). Otherwise ``n_samples`` coalitions are drawn
    Bernoulli(1/2) (seeded), each distinct one evaluated once, and the MSR
    estimator ``beta_i = mean{v(S): i in S} - mean{v(S): i not in S}`` is used
    (Wang & Jia, 2023); ``return_std`` adds its standard error
    ``sqrt(var_in / n_in + var_out / n_out)`` (see :func:`msr_stderr`).

    Example:
        >>> import torch
        >>> bz = Banzhaf(lambda x: x.prod(1))
        >>> bz.attribute(torch.tensor([[1.0, 2.0]])).tolist()
        [[1.0, 1.0]]
    """

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int | None = None,
        seed: int | None = None,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
        return_std: Literal[False] = False,
    ) -> TensorOrTupleGeneric: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int | None = None,
        seed: int | None = None,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
        *,
        return_std: Literal[True],
    ) -> tuple[TensorOrTupleGeneric, TensorOrTupleGeneric]: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int | None = None,
        seed: int | None = None,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
        return_std: bool = False,
    ) -> TensorOrTupleGeneric | tuple[TensorOrTupleGeneric, TensorOrTupleGeneric]: ...

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int | None = None,
        seed: int | None = None,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
        return_std: bool = False,
    ) -> TensorOrTupleGeneric | tuple[TensorOrTupleGeneric, TensorOrTupleGeneric]:
        """Attributions shaped like ``inputs`` (forms of ``baselines``, ``target``,
        ``feature_mask`` as in :class:`FeatureAblation`).

        Args:
            n_samples: None (default) = exact by enumeration (needs d <= 20); an int
                draws that many Bernoulli(1/2) coalitions (MSR estimate).
            seed: seed of the draws; None draws one from torch's global generator.
            removal, memory_budget, show_progress: as in the other explainers.
            return_std: also return the standard error, shaped like the attributions
                (zeros for the exact values).

        Returns:
            attributions [B, *F] per input ([B, T, *F] for several targets), and the
            standard error when asked for.

        Raises:
            ValueError: n_samples=None with d > 20; a feature in every or in no sample.
        """
        if n_samples is not None:
            n_samples = validation.int_arg("n_samples", n_samples, minimum=2)
        seed_value = validation.seed(seed)
        setup = Setup(
            self.forward_func,
            inputs,
            baselines=baselines,
            target=target,
            additional_forward_args=additional_forward_args,
            feature_mask=feature_mask,
            removal=removal,
            memory_budget=memory_budget,
            show_progress=show_progress,
        )
        d, device = setup.d, setup.inputs[0].device
        if n_samples is None:
            values = enumerated_values(setup, "exact Banzhaf (n_samples=None)", can_sample=True)
            phi = ops.exact_banzhaf(values)
            std = torch.zeros_like(phi)
        else:
            uniq, counts = msr_coalitions(n_samples, d, seed_value, device)
            values = setup.game(uniq)  # [B, u, T]
            phi = ops.banzhaf_msr(uniq, values, counts.to(values.dtype))
            std = msr_stderr(uniq, counts, values) if return_std else None
        return setup.result(phi, std if return_std else None)
