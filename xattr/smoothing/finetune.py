"""Fine-tuning a base model for MuS: train it on randomly masked inputs.

A model trained on whole inputs loses accuracy when most of its features are masked,
and so does the MuS classifier built on it (every one of its q forward passes sees
only about lambda * d features). Xue, Alur & Wong (2023) therefore fine-tune the base
model on masked inputs at two keep probabilities, lambda and lambda / 2;
:func:`finetune` does that with the same feature ids and the same masking op as
:class:`~xattr.smoothing.MuS`, so what the model is trained on is what it will see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xattr._core import validation
from xattr._core.features import format_feature_mask
from xattr._core.progress import check_show_progress, count_rows, row_progress
from xattr._core.validation import flag, positive_int
from xattr.ops.masking import mask_apply
from xattr.smoothing.mus import keep_positions

# Seeds of the global RNG (dropout, a DataLoader's shuffling) inside a fine-tuning
# run: derived from the user's seed, but not equal to it, so that they draw another
# stream than the masks' generator.
GLOBAL_SEED_SALT = 0x5DEECE66D
DEFAULT_LR = 1e-4
DEFAULT_BATCH_SIZE = 64

Data = Union[tuple[Tensor, Tensor], Iterable[Sequence[Tensor]]]


def keep_probabilities(batch: int, lambda_: float) -> Tensor:
    """The keep probability of every example of a batch: lambda at even positions
    (0, 2, 4, ...), lambda / 2 at odd ones. float32 [batch].

    Example:
        >>> keep_probabilities(5, 0.5).tolist()
        [0.5, 0.25, 0.5, 0.25, 0.5]
    """
    p = torch.full((batch,), float(lambda_))
    p[1::2] = lambda_ / 2
    return p


def _check_lambda(lambda_: Any) -> float:
    if isinstance(lambda_, bool) or not isinstance(lambda_, (int, float)):
        raise TypeError(f"lambda_: expected a float in (0, 1], got {type(lambda_).__name__}")
    if not 0.0 < float(lambda_) <= 1.0:
        raise ValueError(f"lambda_: the keep probability must be in (0, 1], got {lambda_}")
    return float(lambda_)


def _n_examples(data: Any) -> int | None:
    """Examples per epoch: x's rows of a pair of tensors, a DataLoader's dataset's
    length when it has one, else None."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor):
        return int(data[0].shape[0]) if data[0].dim() else None
    dataset: Any = getattr(data, "dataset", None)
    try:
        return len(dataset)
    except TypeError:  # no dataset, or one without a length
        return None


def _batches(
    data: Any, batch_size: int | None, shuffle: bool, gen: torch.Generator
) -> tuple[Callable[[], Iterable[Sequence[Tensor]]], int | None]:
    """(a function giving one epoch's batches, batches per epoch if known)."""
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, Tensor) for t in data)
    ):
        x, y = data
        if x.dim() < 1 or y.dim() < 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                "data: x and y must share their first (batch) dimension, got shapes "
                f"{tuple(x.shape)} and {tuple(y.shape)}"
            )
        n = x.shape[0]
        if n == 0:
            raise ValueError("data: no examples")
        bs = DEFAULT_BATCH_SIZE if batch_size is None else positive_int("batch_size", batch_size)

        def epoch() -> Iterable[Sequence[Tensor]]:
            order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
            for a in range(0, n, bs):
                idx = order[a : a + bs]
                yield x[idx.to(x.device)], y[idx.to(y.device)]

        return epoch, (n + bs - 1) // bs
    if isinstance(data, Tensor) or isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise TypeError(
            "data: expected a pair of tensors (x, y) or a DataLoader (an iterable of (x, y) "
            f"batches), got {type(data).__name__}"
        )
    if batch_size is not None:
        raise ValueError(
            "batch_size: only for a pair of tensors (x, y); a DataLoader makes its own batches"
        )
    if iter(data) is data:
        raise TypeError(
            "data: a one-shot iterator cannot be run once per epoch; pass a DataLoader, a "
            "list of (x, y) batches, or the pair of tensors (x, y)"
        )
    try:
        n_batches = len(data)  # pyright: ignore[reportArgumentType]  (else: TypeError)
    except TypeError:
        n_batches = None
    return lambda: data, n_batches


def _pair(batch: Any) -> tuple[Tensor, Tensor]:
    if (
        not isinstance(batch, (tuple, list))
        or len(batch) != 2
        or not all(isinstance(t, Tensor) for t in batch)
    ):
        raise TypeError(
            f"data: every batch must be a pair of tensors (x, y), got {type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        )
    return batch[0], batch[1]


def masked_batch(
    x: Tensor,
    lambda_: float,
    gen: torch.Generator,
    feature_mask: Tensor | Callable[[Tensor], Tensor] | None = None,
    mask_value: float | int = 0,
    always_keep: Sequence[int] = (),
) -> Tensor:
    """One batch as :func:`finetune` trains on it: x [B, *F] with, for every example,
    the features off a random mask set to ``mask_value`` -> [B, *F] (dtype of x).

    Example b keeps each of its d features independently with probability lambda
    (b even) or lambda / 2 (b odd), drawn from ``gen`` (a CPU generator: the same
    masks on every device); the features whose ids are in ``always_keep`` (the ids of
    ``feature_mask``, as :class:`~xattr.smoothing.MuS`'s) are never masked.
    ``feature_mask`` as MuS's.

    Example:
        >>> g = torch.Generator().manual_seed(0)  # lambda = 1: example 1 keeps about half
        >>> masked_batch(torch.ones(2, 6), 1.0, g, torch.tensor([0, 0, 1, 1, 2, 2])).tolist()
        [[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]]
    """
    ids = feature_mask(x) if callable(feature_mask) else feature_mask
    groups, user_ids = format_feature_mask(ids, (x,))
    d, B = int(user_ids.numel()), x.shape[0]
    kept = keep_positions(always_keep, user_ids)
    keep = torch.rand((B, d), generator=gen) < keep_probabilities(B, lambda_)[:, None]
    if kept:
        keep[:, list(kept)] = True
    with torch.no_grad():
        out = mask_apply(x.detach(), keep.to(x.device).unsqueeze(1), groups[0], mask_value)
    return out[:, 0]


def finetune(
    model: nn.Module,
    data: Data,
    lambda_: float,
    *,
    feature_mask: Tensor | Callable[[Tensor], Tensor] | None = None,
    mask_value: float | int = 0,
    always_keep: Sequence[int] | None = None,
    epochs: int = 1,
    batch_size: int | None = None,
    shuffle: bool = True,
    lr: float | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    seed: int | None = 0,
    show_progress: bool | None = None,
) -> nn.Module:
    """Fine-tunes ``model`` on randomly masked inputs so that it stays accurate under
    MuS smoothing at keep probability ``lambda_``; returns it, in eval mode.

    Every batch x [B, *F] is masked before the forward pass: example b keeps each of
    its d features independently with probability ``lambda_`` if b is even (positions
    0, 2, 4, ... of the batch) and ``lambda_ / 2`` if b is odd, so a batch is half at
    each level (the paper fine-tunes at lambda and lambda / 2) and, with shuffled
    data, every example meets both levels over the epochs. Masked features become
    ``mask_value`` (the masking op of :class:`~xattr.smoothing.MuS`, with the same
    feature ids); the loss ``loss_fn(model(masked_x), y)`` is minimised. Unlike MuS
    noise, the masks are independent Bernoulli draws (no structure is needed for
    training). (The authors' scripts instead mask every example once per level, with
    a random subset of about lambda * d features, doubling the batch; alternating
    keeps the batch, and the cost per step, of plain training.)

    Args:
        model: the base model (an ``nn.Module``), [B, *F] -> outputs that ``loss_fn``
            compares with the labels (default: logits [B, C]). Trained in place (in
            train mode: dropout and batch norm act as in training).
        data: a pair of tensors ``(x, y)`` (x [N, *F], y [N]), batched by
            ``batch_size`` and reshuffled every epoch with the seed when ``shuffle``;
            or a ``DataLoader`` (any re-iterable of ``(x, y)`` batches), used as it is.
            Batches are moved to the model's device.
        lambda_: keep probability in (0, 1], the lambda of the MuS classifier to be
            built on the model.
        feature_mask: feature ids ([*F] or [1, *F], any integers, as MuS's) or a
            segmenter ``f(x) -> ids`` (:func:`~xattr.smoothing.grid_patches`,
            :func:`~xattr.smoothing.columns`, :func:`~xattr.smoothing.tokens`); default
            every element of an example is a feature.
        mask_value: what a masked feature becomes (default 0; for token ids the mask /
            pad token id, an int).
        always_keep: feature ids (those of ``feature_mask``, as MuS's) never masked,
            e.g. BOS / EOS tokens.
        epochs: passes over the data (default 1).
        batch_size: examples per batch for a pair of tensors (default 64); not allowed
            with a DataLoader.
        shuffle: reshuffle a pair of tensors every epoch (default True).
        lr: learning rate of the default optimizer, Adam over the parameters that
            require gradients (default 1e-4); not allowed with ``optimizer``.
        optimizer: a ``torch.optim.Optimizer`` over the model's parameters, used
            instead of Adam (its state carries on between calls).
        loss_fn: ``loss_fn(outputs, y) -> scalar`` (default ``F.cross_entropy``).
        seed: seeds a ``torch.Generator`` that draws the masks and the shuffling
            (default 0; None draws a seed from torch's global generator). Dropout and
            a DataLoader's own shuffling use torch's global RNG: inside the call it is
            forked and seeded from ``seed`` too, and restored afterwards, so the same
            seed, data and initial weights give the same weights, and the caller's
            random stream is left untouched.
        show_progress: None (default): a progress bar counting model rows appears once the
            call is projected to take more than about 2 s; True: from the start; False:
            never. One bar per call: calls made inside it count in it. Counts the training
            rows (epochs x examples).

    Returns:
        ``model``, fine-tuned, in eval mode.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(),
        ...                             torch.nn.Linear(8, 3))
        >>> x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
        >>> model = finetune(model, (x, y), 0.25, epochs=2, batch_size=8, lr=1e-2)
        >>> model.training
        False
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    lambda_ = _check_lambda(lambda_)
    if not (feature_mask is None or isinstance(feature_mask, Tensor) or callable(feature_mask)):
        raise TypeError(
            "feature_mask: expected a tensor of feature ids or a segmenter function, "
            f"got {type(feature_mask).__name__}"
        )
    if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
        raise TypeError(f"mask_value: expected a number, got {type(mask_value).__name__}")
    if always_keep is not None and (
        isinstance(always_keep, (str, bytes, Tensor)) or not isinstance(always_keep, Sequence)
    ):
        raise TypeError(
            f"always_keep: expected a list of feature ids, got {type(always_keep).__name__}"
        )
    keep_ids = tuple(int(i) for i in (always_keep or ()))
    epochs = positive_int("epochs", epochs)
    shuffle = flag("shuffle", shuffle)
    show_progress = check_show_progress(show_progress)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn: expected a callable, got {type(loss_fn).__name__}")
    seed = validation.seed(seed)
    if optimizer is not None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        if lr is not None:
            raise ValueError("lr: give either lr (for the default Adam) or an optimizer, not both")
    else:
        if lr is None:
            lr = DEFAULT_LR
        if isinstance(lr, bool) or not isinstance(lr, (int, float)):
            raise TypeError(f"lr: expected a positive float, got {type(lr).__name__}")
        if not lr > 0:
            raise ValueError(f"lr: expected a positive float, got {lr}")
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model: has no parameters that require gradients; nothing to train")
        optimizer = torch.optim.Adam(params, lr=float(lr))
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")

    gen = torch.Generator().manual_seed(seed)
    epoch_batches, n_batches = _batches(data, batch_size, shuffle, gen)
    cuda = [device.index or 0] if device.type == "cuda" else []
    examples = _n_examples(data)
    rows = epochs * examples if examples is not None else None
    with torch.random.fork_rng(devices=cuda), row_progress(rows, show_progress, "finetune"):
        torch.manual_seed(seed ^ GLOBAL_SEED_SALT)
        model.train()
        try:
            for _ in range(epochs):
                for batch in epoch_batches():
                    x, y = _pair(batch)
                    x, y = x.to(device), y.to(device)
                    xm = masked_batch(x, lambda_, gen, feature_mask, mask_value, keep_ids)
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(model(xm), y)
                    count_rows(xm.shape[0])
                    if not isinstance(loss, Tensor) or loss.numel() != 1:
                        raise ValueError(
                            "loss_fn: must return a scalar tensor (e.g. a mean over the batch), "
                            f"got {type(loss).__name__}"
                            + (f" of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else "")
                        )
                    loss.reshape(()).backward()
                    optimizer.step()
        finally:
            model.eval()
    return model
