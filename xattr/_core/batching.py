"""Batching under the memory budget: rows per model call, and the extra model
arguments cut and repeated to match batches of perturbed or path rows.

Rows are always ordered example-major: row ``b * R + r`` belongs to example ``b``.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor

from xattr._core.budget import get_memory_budget, parse_bytes
from xattr._core.inputs import example_bytes

# Activations of a forward pass cost a multiple of the input's bytes; batches are
# sized so that inputs * this factor fit in the budget.
ACTIVATION_FACTOR = 16


# Target size of one CPU batch's activations, and the most input bytes of one CPU
# batch (see rows_per_batch).
CPU_BATCH_BYTES = 2 * 2**20


CPU_INPUT_BYTES = 2 * 2**20


def rows_per_batch(
    inputs: tuple[Tensor, ...],
    requested: int | None,
    memory_budget: int | str | None,
    name: str = "perturbations_per_eval",
    per_row_copies: int = 1,
) -> int:
    """Rows per forward call: the user's number, else as many as fit the budget.

    ``requested`` counts rows in the units the caller uses (e.g. perturbations per
    example); None means "choose".
    """
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"{name}: expected a positive int, got {requested!r}")
        return requested
    budget = get_memory_budget() if memory_budget is None else parse_bytes(memory_budget)
    row_bytes = max(1, example_bytes(inputs) * per_row_copies)
    rows = max(1, budget // (row_bytes * ACTIVATION_FACTOR))
    if inputs[0].device.type == "cpu":
        # On a CPU, batches whose activations outgrow the caches (or the allocator's
        # reuse of freed blocks) are slower per row, not faster: a CNN ran 8,224 rows
        # in 205 ms in one call and in 43 ms in calls of 256; small MLPs and CNNs were
        # fastest at 256-512 rows. Keep the estimated activations of one call near
        # CPU_BATCH_BYTES, within [256, 4096] rows, and the inputs of one call within
        # CPU_INPUT_BYTES: EfficientNet-Lite0 on 224 x 224 photos (602 KB rows) took
        # 26-27 ms per row in calls of 2-4 rows, 36 in calls of 16, 75-80 in 32-110.
        cap = min(4096, max(256, CPU_BATCH_BYTES // (row_bytes * ACTIVATION_FACTOR)))
        rows = max(1, min(rows, cap, CPU_INPUT_BYTES // row_bytes))
    return rows


def batch_rows(
    inputs: tuple[Tensor, ...],
    internal_batch_size: int | None,
    memory_budget: int | str | None,
) -> int:
    return rows_per_batch(inputs, internal_batch_size, memory_budget, name="internal_batch_size")


# A call that leaves fewer rows than this per forward call, for more calls than
# TINY_BATCH_CALLS, is slowed down by the per-call cost of the model: warn.
TINY_BATCH_ROWS = 16


TINY_BATCH_CALLS = 10_000


def warn_tiny_batches(rows: int, total: int) -> None:
    """Warns when ``total`` model rows go through the model ``rows`` at a time in so many
    calls that the per-call cost dominates (a memory budget too small for the job)."""
    calls = -(-total // max(1, rows))
    if rows < TINY_BATCH_ROWS and calls > TINY_BATCH_CALLS:
        warnings.warn(
            f"memory_budget: it leaves {rows} model row(s) per forward call, so the "
            f"{total:,} rows of this call take {calls:,} forward calls, each paying the "
            "model's fixed cost; raise memory_budget (or xattr.set_memory_budget), or "
            "explain fewer features (a coarser feature_mask)",
            UserWarning,
            stacklevel=4,
        )


def expand_additional_args(args: Any, batch: int, repeats: int) -> tuple:
    """Repeats every tensor argument with the batch as first dimension, example-major
    (row b * repeats + s), to match the perturbed rows; other arguments pass as they are."""
    if args is None:
        return ()
    if not isinstance(args, tuple):
        args = (args,)
    out = []
    for a in args:
        if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch and repeats != 1:
            out.append(a.repeat_interleave(repeats, dim=0))
        else:
            out.append(a)
    return tuple(out)


def repeat_per_example(value: Any, batch: int, k: int, ndim: int | None = None) -> Any:
    """A tensor with one row per example (batch > 1; ``ndim`` dimensions when given)
    repeated ``k`` times example-major (row b * k + j), as perturbed copies are; anything
    else unchanged."""
    if (
        isinstance(value, Tensor)
        and value.dim() > 0
        and value.shape[0] == batch
        and batch > 1
        and (ndim is None or value.dim() == ndim)
    ):
        return value.repeat_interleave(k, dim=0)
    return value


def slice_additional_args(args: tuple, batch: int, start: int, stop: int) -> tuple:
    """Rows start..stop of the expanded tensor arguments (others unchanged)."""
    return tuple(
        a[start:stop] if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch else a
        for a in args
    )


def chunk_args(args: tuple, batch: int, start: int, stop: int, reps: int) -> tuple:
    """Examples start..stop of the per-example tensor arguments, each repeated ``reps``
    times example-major; other arguments pass unchanged."""
    out = []
    for a in args:
        if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch:
            a = a[start:stop]
            if reps != 1:
                a = a.repeat_interleave(reps, dim=0)
        out.append(a)
    return tuple(out)


def as_args(args: Any) -> tuple:
    if args is None:
        return ()
    return args if isinstance(args, tuple) else (args,)


def expand_base(base: Tensor, B: int) -> Tensor:
    return base if base.shape[0] == B else base.expand(B, *base.shape[1:])
