"""How a perturbation explainer removes the features outside a coalition S (the
public home of the removals; they are defined in :mod:`xattr._core.removal`, next to
the game that calls them)."""

from xattr._core.removal import BaselineRemoval, ConditionalRemoval, MarginalRemoval, Removal

__all__ = ["BaselineRemoval", "ConditionalRemoval", "MarginalRemoval", "Removal"]
