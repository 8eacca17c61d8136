"""Shapley value sampling: average marginal contributions along random permutations.

The game is v(S) = f(x with the features off S removed) (see
:mod:`xattr.explainers.removal`; by default features off S take the
``baselines``). For a permutation pi, feature pi_j receives
v({pi_0..pi_j}) - v({pi_0..pi_{j-1}}); the mean over uniform permutations is an
unbiased estimate of the Shapley value (Castro et al., 2009) and every
permutation's contributions sum to v(N) - v(empty), so efficiency is exact.
"""

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
from xattr._core.validation import flag, positive_int
from xattr.explainers.registry import register

# Bound on the bool mask elements materialised at once (rows * d).
_MASK_ELEMENTS = 1 << 24


@register(captum=True)
class ShapleyValueSampling(PerturbationAttribution):
    """Permutation-sampling Shapley values (Captum-compatible).

    ``n_samples`` permutations are drawn (:func:`xattr.ops.permutations`); with
    ``antithetic=True`` and an even ``n_samples`` they come in pairs (a permutation
    and its reverse), which cancels much of the sampling error at no extra cost;
    with an odd ``n_samples`` the permutations are independent. Every permutation's
    chain of coalitions is evaluated in large batches, v(empty) and v(N) once for
    all, and the contributions are averaged by
    :func:`xattr.ops.permutation_accumulate` (standard errors treat an antithetic
    pair as one unit).

    Args:
        forward_func: the model; returns [B] or [B, ...] outputs for [B, ...] inputs.

    A model that returns one value (or one row) for the whole batch, Captum's "aggregate
    mode" (e.g. a batch loss), is explained as Captum does: every example is perturbed alike
    and the attributions are the batch's, [*shape, *F] per input, shape the selected
    output's ([1, *F] for one value). That cannot be batched: each coalition costs one model
    call of the B rows (instead of sharing calls of many rows), plus the first call, which
    reveals the mode; the examples must share one feature mask, and perturbations_per_eval
    must be 1.

    Example:
        >>> import torch
        >>> f = lambda x: x.sum(1)
        >>> ShapleyValueSampling(f).attribute(torch.ones(1, 3), n_samples=2, seed=0).tolist()
        [[1.0, 1.0, 1.0]]
    """

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        show_progress: bool | None = None,
        *,
        seed: int | None = None,
        return_std: Literal[False] = False,
        antithetic: bool = True,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
        return_input_shape: Literal[True] = True,
    ) -> TensorOrTupleGeneric: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        show_progress: bool | None = None,
        *,
        seed: int | None = None,
        return_std: Literal[True],
        antithetic: bool = True,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
        return_input_shape: Literal[True] = True,
    ) -> tuple[TensorOrTupleGeneric, TensorOrTupleGeneric]: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        show_progress: bool | None = None,
        *,
        seed: int | None = None,
        return_std: bool = False,
        antithetic: bool = True,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
        return_input_shape: bool = True,
    ) -> (
        TensorOrTupleGeneric
        | tuple[TensorOrTupleGeneric, TensorOrTupleGeneric]
        | Tensor
        | tuple[Tensor, Tensor]
    ): ...

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        show_progress: bool | None = None,
        *,
        seed: int | None = None,
        return_std: bool = False,
        antithetic: bool = True,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
        return_input_shape: bool = True,
    ) -> (
        TensorOrTupleGeneric
        | tuple[TensorOrTupleGeneric, TensorOrTupleGeneric]
        | Tensor
        | tuple[Tensor, Tensor]
    ):
        """Shapley value sampling attributions.

        Args:
            inputs: [B, *F] tensor or tuple of them.
            baselines: Captum's forms (None = zeros, number, tensor, tuple).
            target: None, int, tuple, list of B ints, list of B lists of T ints or
                "all" (several targets share the model evaluations).
            additional_forward_args: extra arguments for the model.
            feature_mask: int tensor(s) grouping elements into d features.
            n_samples: permutations (default 25); each costs d - 1 model rows per
                input (plus v(empty), v(N) once).
            perturbations_per_eval: Captum's batching argument (default 1): each
                forward call holds at least this many perturbations of the whole batch,
                more where xattr's own choice is larger, never more than
                ``memory_budget`` allows (README, "Batching"). Results do not depend on it.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.
            seed: 64-bit seed (None draws one from torch's global generator).
            return_std: also return the standard error of each attribution: the
                spread of the units (permutations, or antithetic pairs) divided by
                sqrt(units); NaN with fewer than two units. With few units it is
                itself noisy (t-distributed), so +-1.96 std covers less than 95%.
            antithetic: pair each permutation with its reverse when ``n_samples``
                is even (default True).
            removal: the game's removal (``BaselineRemoval`` by default).
            memory_budget: bytes (or "2GB") for one forward call; given (here or with
                ``xattr.set_memory_budget``) it sizes the calls; default 1 GiB, under
                which xattr picks the size it measured fastest.
            return_input_shape: False returns per-feature values [B, D] ([B, T, D]),
                Captum's interpretable space: column k for feature id min_id + k,
                D = max_id - min_id + 1 (zeros for ids no element has).

        Returns:
            attributions (and standard errors) shaped like the inputs ([B, *F], or
            [B, T, *F] for several targets).
        """
        n_samples = positive_int("n_samples", n_samples)
        flag("return_std", return_std)
        flag("antithetic", antithetic)
        flag("return_input_shape", return_input_shape)
        s = validation.seed(seed)
        setup = Setup(
            self.forward_func,
            inputs,
            baselines=baselines,
            target=target,
            additional_forward_args=additional_forward_args,
            feature_mask=feature_mask,
            removal=removal,
            perturbations_per_eval=perturbations_per_eval,
            memory_budget=memory_budget,
            show_progress=show_progress,
            desc=f"{self.get_name()} attribution",
            none_as_all=True,  # Captum's: target None on several outputs = each of them
        )
        game, d, B = setup.game, setup.d, setup.B
        dev = setup.inputs[0].device
        anti = antithetic and n_samples % 2 == 0
        perms = ops.permutations(n_samples, d, seed=s, antithetic=anti)
        v_full, v_empty = game.full_and_empty()
        T = v_full.shape[1]
        values = torch.empty((B, n_samples, d + 1, T), dtype=torch.float64, device=dev)
        values[:, :, 0] = v_empty[:, None]
        values[:, :, d] = v_full[:, None]
        if d > 1:
            rank = torch.argsort(perms.long(), dim=1).to(dev)  # rank[p, f] = position of f
            total = n_samples * (d - 1)  # chain rows: (permutation p, step j = 1..d-1)
            block = max(1, _MASK_ELEMENTS // d)
            flat = torch.empty((B, total, T), dtype=torch.float64, device=dev)
            for r0 in range(0, total, block):
                idx = torch.arange(r0, min(total, r0 + block), device=dev)
                masks = rank[idx // (d - 1)] < (idx % (d - 1) + 1)[:, None]
                flat[:, r0 : r0 + idx.numel()] = game(masks)
            values[:, :, 1:d] = flat.view(B, n_samples, d - 1, T)
        mean, se = ops.permutation_accumulate(
            perms.to(dev), values, antithetic=anti, return_stderr=True
        )
        return setup.result(mean, se if return_std else None, input_shape=return_input_shape)

    def attribute_future(self, *args: Any, **kwargs: Any) -> torch.Future:
        """:meth:`attribute` (same arguments) for a model that returns
        ``torch.futures.Future``: a Future holding the result. Each model call's future is
        waited for before the next call (the rows per call are as in :meth:`attribute`);
        a model that does not return a Future is an error."""
        return self._attribute_awaiting(*args, **kwargs)
