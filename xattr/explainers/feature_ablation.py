"""FeatureAblation: Captum's leave-one-feature-out attribution on xattr's game."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from xattr._core.attribution import PerturbationAttribution
from xattr._core.game import Setup
from xattr._core.inputs import BaselineType, TensorOrTupleGeneric
from xattr._core.progress import with_row_progress
from xattr._core.removal import Removal
from xattr._core.targets import TargetType
from xattr.explainers.registry import register

# Bool mask entries built at once (rows x d); the game batches model rows itself.
_MASK_ELEMENTS = 1 << 24


@register(captum=True)
class FeatureAblation(PerturbationAttribution):
    """Leave-one-out attribution: ``attr_i = v(N) - v(N \\ {i})``.

    The game (see :mod:`xattr.explainers.removal`) with the default
    ``BaselineRemoval`` is ``v(S) = f(x_S, b_{not S})``, so each feature (group of
    elements sharing an id in ``feature_mask``) gets ``f(x) - f(x with the
    feature set to the baseline)``, spread over its elements: Captum's
    ``FeatureAblation``. Feature ids are shared across tuple inputs (the same id in
    two inputs is one feature, as in Captum 0.9).

    A model that returns one value (or one row) for the whole batch, Captum's "aggregate
    mode" (e.g. a batch loss), is explained as Captum does: every example is perturbed alike
    and the attributions are the batch's, [T', *F] per input, T' the number of output values
    (Captum's FeatureAblation). That cannot be batched: each coalition costs one model call
    of the B rows (instead of sharing calls of many rows), plus the first call, which
    reveals the mode; the examples must share one feature mask, and perturbations_per_eval
    must be 1.

    Example:
        >>> import torch
        >>> fa = FeatureAblation(lambda x: x.sum(1))
        >>> fa.attribute(torch.tensor([[1.0, 2.0]])).tolist()
        [[1.0, 2.0]]
    """

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
        perturbations_per_eval: int = 1,
        show_progress: bool | None = None,
        *,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
    ) -> TensorOrTupleGeneric:
        """Attributions shaped like ``inputs``.

        Args:
            inputs: [B, *F] tensor or a tuple of them.
            baselines: Captum's forms (None = zeros, number, [*F], [1 or B, *F], tuple).
            target: None, int, tuple, list of B ints, tensor, list of B lists of T
                ints (several targets per example), or ``"all"``.
            additional_forward_args: extra model arguments (tensors with the batch as
                first dimension are repeated with the perturbed rows).
            feature_mask: integer ids per element, [*F] or [1 or B, *F] per input;
                default every scalar is its own feature.
            perturbations_per_eval: Captum's batching argument (default 1): each
                forward call holds at least this many ablations of the whole batch,
                more where xattr's own choice is larger, never more than
                ``memory_budget`` allows (README, "Batching"). Results do not depend on it.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.
            removal: ``BaselineRemoval()`` (default), ``MarginalRemoval(background)``
                or ``ConditionalRemoval(surrogate)``.
            memory_budget: bytes (or "2GB") for one forward call; given (here or with
                ``xattr.set_memory_budget``) it sizes the calls; default 1 GiB, under
                which xattr picks the size it measured fastest.

        Returns:
            [B, *F] per input ([B, T, *F] for several targets / "all"), a tuple when
            ``inputs`` is a tuple; in the model output's dtype, as Captum's.
        """
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
            aggregate_layout="flat",
        )
        game, d = setup.game, setup.d
        device = setup.inputs[0].device
        # as many masks per game call as fill its batches, at least 2^24 mask entries;
        # the first call also evaluates the full coalition (row 0)
        chunk = max(1, _MASK_ELEMENTS // max(1, d), game.rows // max(1, setup.B))
        diffs, v_full = [], None
        for j0 in range(0, d, chunk):
            j1 = min(d, j0 + chunk)
            first = int(j0 == 0)
            masks = torch.ones((first + j1 - j0, d), dtype=torch.bool, device=device)
            idx = torch.arange(j0, j1, device=device)
            masks[first + idx - j0, idx] = False
            v = game(masks)  # [B, rows, T]
            if first:
                v_full, v = v[:, 0], v[:, 1:]
            diffs.append(cast(Tensor, v_full).unsqueeze(1) - v)  # [B, c, T]
        phi = torch.cat(diffs, dim=1).transpose(1, 2)  # [B, T, d]
        out = setup.result(phi)
        # Captum's FeatureAblation: attributions in the model output's dtype (float64 for
        # a model returning Python floats, int64 for integer outputs: exact differences)
        dtype = game.output_dtype
        typed = tuple(o.to(dtype) for o in out) if isinstance(out, tuple) else out.to(dtype)
        return cast(TensorOrTupleGeneric, typed)

    def attribute_future(self, *args: Any, **kwargs: Any) -> torch.Future:
        """:meth:`attribute` (same arguments) for a model that returns
        ``torch.futures.Future``: a Future holding the attributions. Each model call's
        future is waited for before the next call (the rows per call are as in
        :meth:`attribute`); a model that does not return a Future is an error.

        Example:
            >>> import torch
            >>> def model(x):
            ...     fut = torch.futures.Future()
            ...     fut.set_result(x.sum(1))
            ...     return fut
            >>> FeatureAblation(model).attribute_future(torch.tensor([[1.0, 2.0]])).wait()
            tensor([[1., 2.]])
        """
        return self._attribute_awaiting(*args, **kwargs)
