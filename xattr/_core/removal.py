"""How a perturbation explainer removes the features outside a coalition S.

Every perturbation explainer computes a game v(S) on the d features of each
input and attributes from it; ``removal=`` chooses the game:

* ``BaselineRemoval()`` (the default, Captum's): features off S take the
  ``baselines`` values, v(S) = f(x_S, b_{not S}).
* ``MarginalRemoval(background)``: v(S) = mean_n f(x_S, z^n_{not S}) over the N
  rows of a background set (the interventional / marginal game).
* ``ConditionalRemoval(surrogate)``: v(S) = g(x masked to S, mask), a surrogate
  trained to predict f from a masked input and its mask (Covert et al.).

A removal is what the game calls (:class:`Removal`): ``prepare`` gives the values
the features off S take, ``copies`` how many perturbed copies of every (example,
coalition) are evaluated and averaged, ``evaluate`` the outputs of a batch of
perturbed rows. The game (``xattr._core.game``), Occlusion and the modules to come
call these three and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from torch import Tensor

from xattr._core.inputs import format_inputs
from xattr._core.model import check_model_output, run_model
from xattr._core.progress import model_rows


@runtime_checkable
class Removal(Protocol):
    """What the game asks of a removal (BaselineRemoval, MarginalRemoval and
    ConditionalRemoval implement it).

    ``reads_masks``: whether :meth:`evaluate` needs the coalition of every row (the
    game builds the [rows, d] masks only then).
    """

    reads_masks: ClassVar[bool]

    def prepare(
        self, inputs: tuple[Tensor, ...], baselines: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...]:
        """The values the features off S take, one tensor per input: [1 or B, *F]
        (shared or per example) when :meth:`copies` is 1, else [copies, *F] rows, each
        of which every example is evaluated against. ``baselines`` are the checked
        [1 or B, *F] baselines; ``inputs`` the checked [B, *F] inputs."""
        ...

    def copies(self, replacements: tuple[Tensor, ...]) -> int:
        """Perturbed copies per (example, coalition); v(S) is their mean."""
        ...

    def evaluate(
        self,
        forward_func: Callable[..., Any],
        points: Sequence[Tensor],
        masks: Tensor | None,
        extra: Sequence[Any],
        rows: int,
    ) -> Tensor:
        """The outputs of ``rows`` perturbed rows (``points``, one [rows, *F] tensor per
        input; ``masks`` bool [rows, d] when ``reads_masks``, else None; ``extra`` the
        model's additional arguments for these rows), one row per point, checked for
        their shape but not for finiteness (the game checks the outputs it selects)."""
        ...


class _ReplaceByBaselines:
    """What the removals share: features off S take the baselines (one copy) and the
    model evaluates the perturbed rows. A removal overrides what differs."""

    reads_masks: ClassVar[bool] = False

    def prepare(
        self, inputs: tuple[Tensor, ...], baselines: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...]:
        return baselines

    def copies(self, replacements: tuple[Tensor, ...]) -> int:
        return 1

    def evaluate(
        self,
        forward_func: Callable[..., Any],
        points: Sequence[Tensor],
        masks: Tensor | None,
        extra: Sequence[Any],
        rows: int,
    ) -> Tensor:
        return run_model(forward_func, points, extra, rows, finite=False)


@dataclass(frozen=True)
class BaselineRemoval(_ReplaceByBaselines):
    """Features off S take the explainer's ``baselines`` (Captum's behaviour)."""


@dataclass(frozen=True)
class MarginalRemoval(_ReplaceByBaselines):
    """Features off S take each background row's values; v(S) averages over the rows.

    Args:
        background: [N, *F] tensor, or a tuple of them for tuple inputs.

    Example:
        >>> import torch
        >>> MarginalRemoval(torch.zeros(4, 3)).background.shape
        torch.Size([4, 3])
    """

    background: Tensor | tuple[Tensor, ...]

    def prepare(
        self, inputs: tuple[Tensor, ...], baselines: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...]:
        """The background rows, checked against the inputs, in their dtype and device."""
        bg, _ = format_inputs(self.background, "background")
        if len(bg) != len(inputs):
            raise ValueError(
                f"background: expected {len(inputs)} tensor(s), one per input, got {len(bg)}"
            )
        for i, (z, x) in enumerate(zip(bg, inputs)):
            if tuple(z.shape[1:]) != tuple(x.shape[1:]):
                raise ValueError(
                    f"background[{i}]: rows must be shaped like one example "
                    f"{tuple(x.shape[1:])}, got {tuple(z.shape[1:])}"
                )
        return tuple(z.to(device=x.device, dtype=x.dtype) for z, x in zip(bg, inputs))

    def copies(self, replacements: tuple[Tensor, ...]) -> int:
        return replacements[0].shape[0]


@dataclass(frozen=True)
class ConditionalRemoval(_ReplaceByBaselines):
    """v(S) = surrogate(*masked_inputs, mask): a model that predicts f from an input
    whose features off S are replaced by the baselines, and the bool mask [rows, d]."""

    surrogate: Callable[..., Tensor]
    reads_masks: ClassVar[bool] = True

    def evaluate(
        self,
        forward_func: Callable[..., Any],
        points: Sequence[Tensor],
        masks: Tensor | None,
        extra: Sequence[Any],
        rows: int,
    ) -> Tensor:
        with model_rows(rows):
            out = self.surrogate(*points, masks, *extra)
        return check_model_output(out, rows, finite=False)


def check_removal(removal: Any) -> Removal:
    """``removal=`` checked: None (BaselineRemoval()) or a :class:`Removal`."""
    if removal is None:
        return BaselineRemoval()
    if not isinstance(removal, Removal):
        raise TypeError(
            "removal: expected BaselineRemoval(), MarginalRemoval(background) or "
            f"ConditionalRemoval(surrogate), got {type(removal).__name__}"
        )
    return removal
