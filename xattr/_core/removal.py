"""How a perturbation explainer removes the features outside a coalition S.

Every perturbation explainer computes a game v(S) on the d features of each
input and attributes from it; ``removal=`` chooses the game:

* ``BaselineRemoval()`` (the default, Captum's): features off S take the
  ``baselines`` values, v(S) = f(x_S, b_{not S}).
* ``MarginalRemoval(background)``: v(S) = mean_n f(x_S, z^n_{not S}) over the N
  rows of a background set (the interventional / marginal game).
* ``ConditionalRemoval(surrogate)``: v(S) = g(x masked to S, mask), a surrogate
  trained to predict f from a masked input and its mask (Covert et al.).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

from torch import Tensor


@dataclass(frozen=True)
class BaselineRemoval:
    """Features off S take the explainer's ``baselines`` (Captum's behaviour)."""


@dataclass(frozen=True)
class MarginalRemoval:
    """Features off S take each background row's values; v(S) averages over the rows.

    Args:
        background: [N, *F] tensor, or a tuple of them for tuple inputs.

    Example:
        >>> import torch
        >>> MarginalRemoval(torch.zeros(4, 3)).background.shape
        torch.Size([4, 3])
    """

    background: Tensor | tuple[Tensor, ...]


@dataclass(frozen=True)
class ConditionalRemoval:
    """v(S) = surrogate(*masked_inputs, mask): a model that predicts f from an input
    whose features off S are replaced by the baselines, and the bool mask [rows, d]."""

    surrogate: Callable[..., Tensor]


Removal = Union[BaselineRemoval, MarginalRemoval, ConditionalRemoval]
