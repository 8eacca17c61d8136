"""FeaturePermutation: permutation feature importance (Captum's), batched through the
same game as FeatureAblation."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from xattr._core import validation
from xattr._core.features import format_feature_mask
from xattr._core.game import Setup
from xattr._core.inputs import TensorOrTupleGeneric, format_inputs, n_elements
from xattr._core.progress import warn_level, with_row_progress
from xattr._core.targets import TargetType
from xattr.explainers.feature_ablation import FeatureAblation
from xattr.explainers.registry import register


class PermutationError(validation.ArgumentError):
    """A batch that cannot be permuted (fewer than 2 examples). A ValueError, and an
    AssertionError too because Captum's ``_permute_feature`` asserts it."""


def _check_batch(n: int) -> None:
    if n <= 1:
        raise PermutationError(
            f"inputs: cannot permute features with batch_size = {n}; permutation feature "
            "importance needs at least 2 examples"
        )


def _draw_permutation(n: int, generator: torch.Generator | None = None) -> Tensor:
    """A uniform permutation of 0..n-1 other than the identity, drawn as Captum draws it
    (``torch.randperm(n)``, redrawn while it is the identity; fewer than 2 items have
    none: a :class:`PermutationError`), from ``generator`` (default torch's global one,
    as Captum; a CPU generator seeded with s draws what ``torch.manual_seed(s)`` would)."""
    _check_batch(n)
    perm = torch.randperm(n, generator=generator)
    no_perm = torch.arange(n)
    while (perm == no_perm).all():
        perm = torch.randperm(n, generator=generator)
    return perm


def _draw_permutations(count: int, n: int, generator: torch.Generator | None) -> Tensor:
    """``count`` calls of :func:`_draw_permutation`: the same draws in the same order,
    int64 [count, n]. The draws form one stream from which identities are dropped, so
    they are drawn in bulk and checked at once, and the stream goes on for the rows the
    identities left missing."""
    _check_batch(n)
    identity = torch.arange(n)
    rows: list[Tensor] = []
    have = 0
    while have < count:
        draws = torch.stack([torch.randperm(n, generator=generator) for _ in range(count - have)])
        kept = draws[~(draws == identity).all(1)]
        rows.append(kept)
        have += kept.shape[0]
    return torch.cat(rows) if rows else torch.empty((0, n), dtype=torch.int64)


def _permute_feature(x: Tensor, feature_mask: Tensor) -> Tensor:
    """Captum's default ``perm_func``: the elements where ``feature_mask`` is True take
    their values from another example of the batch, all by one random permutation of the
    batch (never the identity); the others keep theirs.

    Args:
        x: [B, *F], B >= 2.
        feature_mask: bool, broadcastable to [B, *F].

    Returns:
        [B, *F], x's dtype.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> x = torch.tensor([[1.0, 10.0], [2.0, 20.0]])
        >>> _permute_feature(x, torch.tensor([True, False])).tolist()
        [[2.0, 10.0], [1.0, 20.0]]
    """
    perm = _draw_permutation(x.size(0)).to(x.device)
    return torch.where(feature_mask.to(x.device).bool(), x[perm], x)


@register(captum=True)
class FeaturePermutation(FeatureAblation):
    """Permutation feature importance (Captum's FeaturePermutation): each feature's values
    are shuffled across the batch, ``attr_i = f(x) - f(x with feature i permuted)`` per
    example, spread over the feature's elements.

    Every feature's permuted values are gathered into one tensor shaped like the inputs
    (feature i's elements of example b taken from example pi_i(b)), and that tensor is the
    baseline of FeatureAblation's game: the d perturbed batches go through the model in
    batches sized by the memory budget, never one call per feature.

    The permutations are drawn as Captum draws them: with the default ``perm_func``, one
    ``torch.randperm(B)`` (redrawn while it is the identity) per feature and input tensor
    holding it, features in Captum's order (each input's ids in increasing order, inputs
    in order), so that code that seeds torch before Captum's call gets Captum's result.
    ``seed=`` draws the same permutations as ``torch.manual_seed(seed)`` would, without
    touching torch's global generator. (Captum with ``perturbations_per_eval > 1`` on a
    tuple of inputs draws extra permutations for features absent from an input; xattr's
    draws never depend on ``perturbations_per_eval``.)

    A batch of fewer than 2 examples has nothing to permute: the attributions are 0 and
    a warning says so (Captum skips the features the same way).

    Args:
        forward_func: the model, or any callable returning [B, ...] outputs (e.g. a loss
            per example).
        perm_func: ``perm_func(x [B, *F], mask bool [1 or B, *F]) -> [B, *F]``, the
            batch with the masked elements permuted; called once per feature and input
            tensor holding it, in the order above. Only the masked elements are read
            (a function that changes others is refused). Default: Captum's random
            permutation of the batch.

    Example:
        >>> import torch
        >>> fp = FeaturePermutation(lambda x: x.sum(1))
        >>> x = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
        >>> fp.attribute(x, seed=0).tolist()  # B = 2: the one swap
        [[-2.0, -3.0], [2.0, 3.0]]
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        perm_func: Callable[[Tensor, Tensor], Tensor] = _permute_feature,
    ) -> None:
        super().__init__(forward_func)
        if not callable(perm_func):
            raise TypeError(f"perm_func: expected a callable, got {type(perm_func).__name__}")
        self.perm_func = perm_func
        # Captum's attribute: fewer examples than this leave every feature unpermuted
        self._min_examples_per_batch_grouped = 2

    @with_row_progress()
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTupleGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        perturbations_per_eval: int = 1,
        show_progress: bool | None = None,
        *,
        seed: int | None = None,
        memory_budget: int | str | None = None,
        **kwargs: Any,
    ) -> TensorOrTupleGeneric:
        """Attributions shaped like ``inputs``.

        Args:
            inputs: [B, *F] tensor or a tuple of them (B >= 2 to permute anything).
            target: None, int, tuple, list of B ints, tensor, list of B lists of T
                ints (several targets per example), or ``"all"``.
            additional_forward_args: extra model arguments (tensors with the batch as
                first dimension follow the perturbed rows).
            feature_mask: integer ids per element, [*F] or [1 or B, *F] per input; the
                same id in two inputs is one feature; default every scalar is its own
                feature.
            perturbations_per_eval: Captum's; a minimum number of perturbations per
                forward call (the memory budget may put more). Results do not depend on it.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.
            seed: None draws from torch's global generator (as Captum); an int draws the
                permutations ``torch.manual_seed(seed)`` would give, leaving the global
                generator as it was.
            memory_budget: bytes (or "2GB") for a batch; default the global budget.
            **kwargs: ``baselines`` is ignored, as in Captum (the features take permuted
                values); any other name is a TypeError.

        Returns:
            [B, *F] per input ([B, T, *F] for several targets / "all"), a tuple when
            ``inputs`` is a tuple.
        """
        kwargs.pop("baselines", None)
        if kwargs:
            raise TypeError(
                f"FeaturePermutation.attribute: unexpected argument(s) {', '.join(kwargs)}"
            )
        xs, _ = format_inputs(inputs)
        groups, _ = format_feature_mask(feature_mask, xs)
        seed = None if seed is None else validation.seed(seed)
        B = xs[0].shape[0]
        if B < self._min_examples_per_batch_grouped or all(x.numel() == 0 for x in xs):
            return self._unpermuted(inputs, target, additional_forward_args, feature_mask, B)
        # a seed: its own CPU generator (the stream torch.manual_seed(seed) starts)
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        permuted = self._permuted(xs, groups, gen)
        return super().attribute(
            inputs,
            baselines=permuted,
            target=target,
            additional_forward_args=additional_forward_args,
            feature_mask=feature_mask,
            perturbations_per_eval=perturbations_per_eval,
            show_progress=show_progress,
            memory_budget=memory_budget,
        )

    def _unpermuted(
        self, inputs: Any, target: Any, additional_forward_args: Any, feature_mask: Any, B: int
    ) -> Any:
        """Zeros in the attributions' shape (one model call, for the targets), with a
        warning when there were examples but too few to permute."""
        if B > 0:
            warnings.warn(
                f"inputs: FeaturePermutation permutes features across the batch, which "
                f"needs at least {self._min_examples_per_batch_grouped} examples; got {B}, "
                "so every attribution is 0 (as in Captum)",
                UserWarning,
                stacklevel=warn_level(3),
            )
        setup = Setup(
            self.forward_func,
            inputs,
            target=target,
            additional_forward_args=additional_forward_args,
            feature_mask=feature_mask,
        )
        full = torch.ones((1, setup.d), dtype=torch.bool, device=setup.inputs[0].device)
        v = setup.game(full)  # [B, 1, T]
        return setup.result(v.new_zeros((setup.B, v.shape[-1], setup.d)))

    def _permuted(
        self, xs: tuple[Tensor, ...], groups: tuple[Tensor, ...], gen: torch.Generator | None
    ) -> tuple[Tensor, ...]:
        """The inputs with every feature permuted across the batch by its own draws (one
        per feature and input tensor holding it, in Captum's order)."""
        B = xs[0].shape[0]
        # (feature, input) pairs in Captum's order: each input's new ids, increasing
        held = [torch.unique(g).tolist() for g in groups]
        order: list[int] = []
        seen: set[int] = set()
        for ids in held:
            for j in ids:
                if j not in seen:
                    seen.add(j)
                    order.append(j)
        sets = [set(ids) for ids in held]
        pairs = [(j, i) for j in order for i, ids in enumerate(sets) if j in ids]
        if self.perm_func is not _permute_feature:
            if gen is not None:  # the user's function draws from torch's global generator
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(gen.initial_seed())
                    return self._custom(xs, groups, pairs)
            return self._custom(xs, groups, pairs)
        perms = _draw_permutations(len(pairs), B, gen)  # [P, B]
        perms = perms.to(xs[0].device)
        pair_feature = torch.tensor([j for j, _ in pairs], dtype=torch.int64)
        pair_input = torch.tensor([i for _, i in pairs], dtype=torch.int64)
        out = []
        for i, (x, g) in enumerate(zip(xs, groups)):
            # row of `perms` of every (feature, input i) pair, by feature id (0..d-1)
            row = torch.full((len(order),), -1, dtype=torch.int64)
            mine = pair_input == i
            row[pair_feature[mine]] = torch.nonzero(mine)[:, 0]
            row = row.to(x.device)
            E = n_elements(x)
            flat_g = g.reshape(g.shape[0], E)  # [1 or B, E]
            # example each element takes its value from: perms[row[group], b]
            src = perms[row[flat_g], torch.arange(B, device=x.device)[:, None]]  # [B, E]
            out.append(x.detach().reshape(B, E).gather(0, src).view_as(x))
        return tuple(out)

    def _custom(
        self, xs: tuple[Tensor, ...], groups: tuple[Tensor, ...], pairs: list[tuple[int, int]]
    ) -> tuple[Tensor, ...]:
        """A user's ``perm_func``, called per (feature, input) pair in Captum's order;
        only each feature's own elements are kept from its result."""
        out = [x.detach().clone() for x in xs]
        for j, i in pairs:
            x = xs[i].detach()
            mask = groups[i] == j
            got = self.perm_func(x, mask)
            if not isinstance(got, Tensor) or got.shape != x.shape:
                raise ValueError(
                    f"perm_func: expected a tensor of the input's shape {list(x.shape)}, got "
                    + (f"{list(got.shape)}" if isinstance(got, Tensor) else type(got).__name__)
                )
            full = mask.expand_as(x)
            if not torch.equal(got[~full].to(x.dtype), x[~full]):
                raise ValueError(
                    f"perm_func: it changed elements outside the feature's mask (feature {j} "
                    f"of inputs[{i}]); it must permute only the masked elements"
                )
            out[i] = torch.where(full, got.to(x.dtype), out[i])
        return tuple(out)
