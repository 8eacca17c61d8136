"""ExactShapley: Shapley values from all 2^d coalitions (d <= 20)."""

from __future__ import annotations

from typing import Any, Literal, cast, overload

import torch
from torch import Tensor

from xattr import ops
from xattr._core.attribution import PerturbationAttribution
from xattr._core.game import Setup
from xattr._core.inputs import BaselineType, TensorOrTupleGeneric
from xattr._core.progress import with_row_progress
from xattr._core.removal import Removal
from xattr._core.targets import TargetType
from xattr._core.validation import per_eval
from xattr.explainers.registry import register

MAX_EXACT_FEATURES = 20


def enumerated_values(setup: Setup, name: str, *, can_sample: bool = False) -> Tensor:
    """The game on all 2^d coalitions, [B, 2^d, T] in :func:`xattr.ops.enumerate_coalitions`
    order, once d <= MAX_EXACT_FEATURES is checked (``name`` and ``can_sample`` word the
    error: an explainer that can sample points to ``n_samples=``)."""
    d = setup.d
    if d > MAX_EXACT_FEATURES:
        arg, hint = (
            ("n_samples", "give n_samples= to sample")
            if can_sample
            else ("feature_mask", "group features with feature_mask= or use a sampling explainer")
        )
        raise ValueError(
            f"{arg}: {name} enumerates all 2^d coalitions and supports d <= "
            f"{MAX_EXACT_FEATURES} features, got d = {d}; {hint}"
        )
    return setup.game(ops.enumerate_coalitions(d, device=setup.inputs[0].device))


def _delta(phi: Tensor, v_full: Tensor, v_empty: Tensor, multi: bool) -> Tensor:
    """sum_i phi_i - (v(N) - v(empty)): [B] or [B, T]."""
    delta = phi.sum(-1) - (v_full - v_empty)
    return delta if multi else delta[:, 0]


@register(captum=False)
class ExactShapley(PerturbationAttribution):
    """Exact Shapley values of the coalition game over the d features.

    ``phi_i = sum_{S subset N \\ {i}} |S|! (d-|S|-1)! / d! * (v(S + i) - v(S))``
    with, by default (``BaselineRemoval``), ``v(S) = f(x_S, b_{not S})``;
    ``MarginalRemoval(background)`` averages f over background rows for the
    features off S, ``ConditionalRemoval(surrogate)`` asks a surrogate. All 2^d
    coalitions are evaluated (batched under the memory budget), so d <= 20.
    Efficiency holds: ``sum_i phi_i = v(N) - v(empty)``.

    A model that returns one value (or one row) for the whole batch, Captum's "aggregate
    mode" (e.g. a batch loss), is explained as Captum does: every example is perturbed alike
    and the attributions are the batch's, [*shape, *F] per input, shape the selected
    output's ([1, *F] for one value). That cannot be batched: each coalition costs one model
    call of the B rows (instead of sharing calls of many rows), plus the first call, which
    reveals the mode; the examples must share one feature mask, and perturbations_per_eval
    must be 1.

    Example:
        >>> import torch
        >>> es = ExactShapley(lambda x: x.prod(1))
        >>> es.attribute(torch.tensor([[1.0, 2.0]])).tolist()
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
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
        return_convergence_delta: Literal[False] = False,
    ) -> TensorOrTupleGeneric: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
        *,
        return_convergence_delta: Literal[True],
    ) -> tuple[TensorOrTupleGeneric, Tensor]: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
        return_convergence_delta: bool = False,
    ) -> TensorOrTupleGeneric | tuple[TensorOrTupleGeneric, Tensor]: ...

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
        return_convergence_delta: bool = False,
    ) -> TensorOrTupleGeneric | tuple[TensorOrTupleGeneric, Tensor]:
        """Attributions shaped like ``inputs`` (see :class:`FeatureAblation` for the
        forms of ``baselines``, ``target`` and ``feature_mask``).

        Args:
            removal: ``BaselineRemoval()`` (default), ``MarginalRemoval``,
                ``ConditionalRemoval``.
            memory_budget: bytes (or "2GB") for one forward call; given (here or with
                ``xattr.set_memory_budget``) it sizes the calls; default 1 GiB, under
                which xattr picks the size it measured fastest.
            return_convergence_delta: also return ``sum_i phi_i - (v(N) - v(empty))``
                ([B], or [B, T] for several targets); zero up to rounding.

        Returns:
            attributions [B, *F] per input ([B, T, *F] for several targets), and the
            delta when asked for.

        Raises:
            ValueError: more than 20 features.
        """
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
            desc=f"{self.get_name()} attribution",
            none_as_all=True,  # Captum's: target None on several outputs = each of them
        )
        values = enumerated_values(setup, "ExactShapley")  # [B, 2^d, T]
        phi = ops.exact_shapley(values)  # [B, T, d]
        attr = setup.result(phi)
        if return_convergence_delta:
            return attr, _delta(phi, values[:, -1], values[:, 0], setup.targets.multi)
        return attr


@register(captum=True)
class ShapleyValues(ExactShapley):
    """Captum's ``ShapleyValues`` (exact Shapley values) with Captum's argument order:
    :class:`ExactShapley` under Captum's name, for drop-in use. Captum averages over all
    d! feature orders; the 2^d coalitions give the same values, so d <= 20 is practical.

    Example:
        >>> import torch
        >>> sv = ShapleyValues(lambda x: x.prod(1))
        >>> sv.attribute(torch.tensor([[1.0, 2.0]]), perturbations_per_eval=4).tolist()
        [[1.0, 1.0]]
    """

    @with_row_progress()
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        perturbations_per_eval: int = 1,
        show_progress: bool | None = None,
        *,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
    ) -> TensorOrTupleGeneric:
        """Attributions shaped like ``inputs``, as :meth:`ExactShapley.attribute`.

        ``perturbations_per_eval`` is checked for Captum compatibility; batches follow
        the memory budget and the values do not depend on it.
        """
        per_eval(perturbations_per_eval)
        attributions = super().attribute(
            inputs,
            baselines,
            target,
            additional_forward_args,
            feature_mask,
            removal,
            memory_budget,
            show_progress,
        )
        return cast(TensorOrTupleGeneric, attributions)  # no convergence delta was asked for

    def attribute_future(self, *args: Any, **kwargs: Any) -> torch.Future:
        """:meth:`attribute` (same arguments) for a model that returns
        ``torch.futures.Future``: a Future holding the result. Each model call's future is
        waited for before the next call (the rows per call are as in :meth:`attribute`);
        a model that does not return a Future is an error."""
        return self._attribute_awaiting(*args, **kwargs)
