"""Captum's helpers for text models that tutorials import from ``captum.attr``: a
reference (baseline) sequence of one token (``TokenReferenceBase``), and an embedding
layer swapped for a pass-through so that explainers can work on embeddings
(``configure_interpretable_embedding_layer`` / ``remove_interpretable_embedding_layer``).

Example:
    >>> import torch
    >>> from xattr import IntegratedGradients
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.embedding = torch.nn.Embedding(10, 4)
    ...         self.fc = torch.nn.Linear(4, 2)
    ...     def forward(self, ids):
    ...         return self.fc(self.embedding(ids).mean(1))
    >>> net = Net().eval()
    >>> ids = torch.tensor([[1, 2, 3]])
    >>> ref = TokenReferenceBase(0).generate_reference(3, "cpu").unsqueeze(0)
    >>> import warnings
    >>> with warnings.catch_warnings():  # Captum's warning: remove the layer when done
    ...     warnings.simplefilter("ignore")
    ...     emb = configure_interpretable_embedding_layer(net, "embedding")
    >>> x, b = emb.indices_to_embeddings(ids), emb.indices_to_embeddings(ref)
    >>> IntegratedGradients(net).attribute(x, b, target=1).shape
    torch.Size([1, 3, 4])
    >>> remove_interpretable_embedding_layer(net, emb)
    >>> type(net.embedding).__name__
    'Embedding'
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from xattr._core.validation import ArgumentError


class InterpretableEmbeddingError(ArgumentError):
    """A misuse of the interpretable embedding layer. A ValueError, and an AssertionError
    too because Captum asserts the same conditions (its tests expect AssertionError)."""


class InterpretableEmbeddingBase(nn.Module):
    """Stands in for a model's embedding layer (Captum's ``InterpretableEmbeddingBase``):
    its forward returns its first argument unchanged, so the model runs on embeddings
    computed outside it (:meth:`indices_to_embeddings`), which explainers can then
    perturb, interpolate and differentiate.

    Args:
        embedding: the original embedding layer (any callable from the layer's inputs
            to embeddings; ``num_embeddings`` / ``embedding_dim`` are read when it has
            them, else None).
        full_name: its dotted name in the model (e.g. ``"encoder.embedding"``).

    Example:
        >>> import torch
        >>> emb = InterpretableEmbeddingBase(torch.nn.Embedding(5, 3), "embedding")
        >>> e = emb.indices_to_embeddings(torch.tensor([[1, 4]]))
        >>> e.shape, emb(e) is e, emb.embedding_dim
        (torch.Size([1, 2, 3]), True, 3)
    """

    def __init__(self, embedding: Any, full_name: str) -> None:
        nn.Module.__init__(self)
        self.num_embeddings = getattr(embedding, "num_embeddings", None)
        self.embedding_dim = getattr(embedding, "embedding_dim", None)
        self.embedding = embedding
        self.full_name = full_name

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        """The precomputed embeddings: the first positional argument, else the first
        keyword argument, unchanged."""
        if not inputs and not kwargs:
            raise InterpretableEmbeddingError(
                "InterpretableEmbeddingBase: no input; pass the embeddings computed by "
                "indices_to_embeddings as the first argument of the layer"
            )
        return inputs[0] if inputs else next(iter(kwargs.values()))

    def indices_to_embeddings(self, *inputs: Any, **kwargs: Any) -> Tensor:
        """The original layer's output for its inputs (e.g. token ids [B, T] ->
        embeddings [B, T, E] for an ``nn.Embedding``)."""
        return self.embedding(*inputs, **kwargs)


class TokenReferenceBase:
    """A reference (baseline) sequence of one token, e.g. the padding token (Captum's
    ``TokenReferenceBase``).

    Args:
        reference_token_idx: the token's index in the vocabulary (default 0).

    Example:
        >>> TokenReferenceBase(reference_token_idx=1).generate_reference(3, "cpu")
        tensor([1, 1, 1])
    """

    def __init__(self, reference_token_idx: int = 0) -> None:
        if isinstance(reference_token_idx, bool) or not isinstance(reference_token_idx, int):
            raise TypeError(
                "reference_token_idx: expected an int (a token index), got "
                f"{type(reference_token_idx).__name__}"
            )
        self.reference_token_idx = reference_token_idx

    def generate_reference(
        self, sequence_length: int, device: torch.device | str | None = None
    ) -> Tensor:
        """The reference sequence: int64 [sequence_length], every entry
        ``reference_token_idx``, on ``device`` (Captum's argument; default the CPU).
        Add a batch dimension (``.unsqueeze(0)``) to use it as the baselines of [1, T]
        token ids."""
        if isinstance(sequence_length, bool) or not isinstance(sequence_length, int):
            raise TypeError(
                f"sequence_length: expected an int, got {type(sequence_length).__name__}"
            )
        if sequence_length < 0:
            raise ValueError(f"sequence_length: must be >= 0, got {sequence_length}")
        return torch.full(
            (sequence_length,), self.reference_token_idx, dtype=torch.int64, device=device
        )


def _parent_and_name(model: nn.Module, name: str) -> tuple[Any, str, Any]:
    """(the object holding the dotted attribute ``name`` of model, its last part, its
    value), or a ValueError naming the part that is missing."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"embedding_layer_name: expected a dotted attribute name, got {name!r}")
    parts = name.split(".")
    parent: Any = model
    for i, part in enumerate(parts[:-1]):
        if not hasattr(parent, part):
            raise ValueError(
                f"embedding_layer_name: {type(model).__name__} has no attribute "
                f"{'.'.join(parts[: i + 1])!r}"
            )
        parent = getattr(parent, part)
    if not hasattr(parent, parts[-1]):
        children = [n for n, _ in model.named_modules() if n][:20]
        raise ValueError(
            f"embedding_layer_name: {type(model).__name__} has no attribute {name!r} "
            f"(its submodules: {', '.join(children) or 'none'})"
        )
    return parent, parts[-1], getattr(parent, parts[-1])


def _is_interpretable(layer: Any) -> bool:
    """xattr's InterpretableEmbeddingBase, or Captum's (same name and attributes)."""
    return isinstance(layer, InterpretableEmbeddingBase) or (
        type(layer).__name__ == "InterpretableEmbeddingBase" and hasattr(layer, "full_name")
    )


def configure_interpretable_embedding_layer(
    model: nn.Module, embedding_layer_name: str = "embedding"
) -> InterpretableEmbeddingBase:
    """Swaps the model's embedding layer for an :class:`InterpretableEmbeddingBase`
    that passes precomputed embeddings through (Captum's function, with its warning);
    undo with :func:`remove_interpretable_embedding_layer` when done.

    Args:
        model: the model (an ``nn.Module``).
        embedding_layer_name: the layer's dotted name in the model (default
            ``"embedding"``; e.g. ``"encoder.embed_tokens"``).

    Returns:
        The interpretable layer (now in the model): ``indices_to_embeddings(ids)``
        computes [B, T, E] embeddings to explain in place of the ids.

    Example:
        >>> import warnings, torch
        >>> model = torch.nn.Sequential(torch.nn.Embedding(5, 2), torch.nn.Flatten())
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     emb = configure_interpretable_embedding_layer(model, "0")
        >>> e = emb.indices_to_embeddings(torch.tensor([[1, 2]]))
        >>> model(e).shape
        torch.Size([1, 4])
        >>> remove_interpretable_embedding_layer(model, emb)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    parent, last, layer = _parent_and_name(model, embedding_layer_name)
    if _is_interpretable(layer):
        raise InterpretableEmbeddingError(
            "embedding_layer_name: an InterpretableEmbeddingBase is already configured for "
            f"{embedding_layer_name!r}; remove it first (remove_interpretable_embedding_layer)"
        )
    if not callable(layer):
        raise TypeError(
            f"embedding_layer_name: {embedding_layer_name!r} is a {type(layer).__name__}, "
            "not a layer"
        )
    warnings.warn(
        f"{embedding_layer_name}: replaced by an interpretable embedding layer that takes "
        "embedding vectors as its input (as Captum's); call "
        "remove_interpretable_embedding_layer to restore the original layer when the "
        "interpretation is done",
        UserWarning,
        stacklevel=2,
    )
    interpretable = InterpretableEmbeddingBase(layer, embedding_layer_name)
    setattr(parent, last, interpretable)
    return interpretable


def remove_interpretable_embedding_layer(
    model: nn.Module, interpretable_emb: InterpretableEmbeddingBase
) -> None:
    """Puts back the original embedding layer that
    :func:`configure_interpretable_embedding_layer` replaced (Captum's function).

    Args:
        model: the model.
        interpretable_emb: what ``configure_interpretable_embedding_layer`` returned.

    Example:
        >>> import warnings, torch
        >>> model = torch.nn.Sequential(torch.nn.Embedding(5, 2))
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     emb = configure_interpretable_embedding_layer(model, "0")
        >>> remove_interpretable_embedding_layer(model, emb)
        >>> type(model[0]).__name__
        'Embedding'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not _is_interpretable(interpretable_emb):
        raise TypeError(
            "interpretable_emb: expected the InterpretableEmbeddingBase that "
            "configure_interpretable_embedding_layer returned, got "
            f"{type(interpretable_emb).__name__}"
        )
    parent, last, _ = _parent_and_name(model, interpretable_emb.full_name)
    setattr(parent, last, interpretable_emb.embedding)
