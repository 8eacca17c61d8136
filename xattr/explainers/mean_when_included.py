"""MeanWhenIncluded: the mean of v(S) over the coalitions that hold a feature (RISE-like),
exact by enumeration or from the Bernoulli(1/2) coalitions that MSR Banzhaf draws."""

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
from xattr.explainers.banzhaf import msr_coalitions, weighted_mean_var
from xattr.explainers.exact_shapley import enumerated_values
from xattr.explainers.registry import register


@register(captum=False)
class MeanWhenIncluded(PerturbationAttribution):
    """Mean-when-included values ``phi_i = 2^{-(d-1)} sum_{S subset N, i in S} v(S)``.

    ``phi_i`` is the mean of v(S) over the uniformly random coalitions S that hold
    feature i (RISE's summary; the "mean when included" of Covert et al., 2021, and of
    Lin, Covert & Lee, 2023): its row of the summary matrix is ``2^{-(d-1)}`` where i
    is in S and 0 elsewhere (:func:`xattr.bounds.summary_matrix`). Unlike Shapley or
    Banzhaf values it is not a difference: a feature the model ignores gets the mean of
    v, not 0, and it is unchanged by adding features the model ignores.

    The game is ``v(S) = f(x_S, b_{not S})`` with the default ``BaselineRemoval``
    (``MarginalRemoval`` / ``ConditionalRemoval`` change it, see
    :mod:`xattr.explainers.removal`). With ``n_samples=None`` and d <= 20 all 2^d
    coalitions are evaluated (exact; computed as ``beta_i / 2 + mean_S v(S)`` from the
    exact Banzhaf value beta_i, since the sums over the coalitions holding and lacking i
    add up to the sum over all). Otherwise the ``n_samples`` Bernoulli(1/2) coalitions
    that :class:`Banzhaf` draws with the same seed are used (each distinct one
    evaluated once, kept with its count c_u), and
    ``phi_i = sum_u c_u m_ui v_u / sum_u c_u m_ui``, the mean of v over the sampled
    coalitions holding i (unbiased given that at least one does); ``return_std`` adds
    its standard error ``s_i / sqrt(n_i)`` (s_i the count-weighted sample standard
    deviation over those n_i coalitions; inf when n_i < 2).

    Example:
        >>> import torch
        >>> mwi = MeanWhenIncluded(lambda x: x.sum(1))
        >>> mwi.attribute(torch.tensor([[1.0, 2.0]])).tolist()  # (v({0}) + v(N)) / 2, ...
        [[2.0, 2.5]]
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
                (>= 2) draws that many Bernoulli(1/2) coalitions, the same as
                :class:`Banzhaf` with the same ``seed``.
            seed: seed of the draws; None draws one from torch's global generator.
            removal, memory_budget, show_progress: as in the other explainers.
            return_std: also return the standard error, shaped like the attributions
                (zeros for the exact values).

        Returns:
            attributions [B, *F] per input ([B, T, *F] for several targets), and the
            standard error when asked for.

        Raises:
            ValueError: n_samples=None with d > 20; n_samples < 2; a feature in none of
                the sampled coalitions.
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
            values = enumerated_values(
                setup, "exact mean-when-included (n_samples=None)", can_sample=True
            )  # [B, 2^d, T]
            # sum_{S holding i} v = (sum_{S holding i} - sum_{S lacking i} + sum_S) / 2
            phi = 0.5 * ops.exact_banzhaf(values) + values.mean(1).unsqueeze(-1)
            std = torch.zeros_like(phi)
        else:
            uniq, counts = msr_coalitions(n_samples, d, seed_value, device)
            missing = uniq.sum(0) == 0  # a feature in no sampled coalition
            if bool(missing.any()):
                feature = int(torch.nonzero(missing)[0, 0])
                raise ValueError(
                    f"n_samples: feature {feature} is in none of the {n_samples} sampled "
                    "coalitions; its mean-when-included value is undefined: draw more"
                )
            values = setup.game(uniq)  # [B, u, T]
            w = counts.to(values.dtype)[:, None] * uniq.to(values.dtype)  # [u, d]
            phi, var = weighted_mean_var(values, w)
            std = var.sqrt()
        return setup.result(phi, std if return_std else None)
