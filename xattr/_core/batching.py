"""Batching under the memory budget: rows per model call, and the extra model
arguments cut and repeated to match batches of perturbed or path rows.

Rows are always ordered example-major: row ``b * R + r`` belongs to example ``b``.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor

from xattr._core.budget import resolve_budget
from xattr._core.inputs import example_bytes
from xattr._core.progress import warn_level

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
    unit: int = 1,
) -> int:
    """Rows per model call: the one batching rule of every explainer and metric.

    * **cap**: the memory budget (``memory_budget`` of the call, else the global one of
      :func:`xattr.set_memory_budget`, 1 GiB by default) holds ``budget // (16 * row
      bytes)`` rows (16: the allowance for activations); never more than that, at least 1.
    * **xattr's choice**: the cap itself when the user gave a budget (per call or
      globally); with the default budget, the size measured fastest on the device (on a
      CPU: activations of one call near CPU_BATCH_BYTES, within [256, 4096] rows, and at
      most CPU_INPUT_BYTES of inputs; on a GPU: the cap).
    * **Captum's number** ``requested`` (``perturbations_per_eval`` p, counted in units
      of ``unit`` rows, e.g. one perturbation of the whole batch; ``internal_batch_size``
      n, in rows): a lower bound. A call holds at least ``p * unit`` rows, the size of
      Captum's calls with the same value, so a Captum user's setting never makes xattr's
      calls smaller than Captum's; xattr merges more rows into a call where its choice is
      larger, and the cap bounds both.

    rows = min(cap, max(xattr's choice, requested * unit)). Results never depend on it
    (tests/test_batch_invariance.py).

    Example:
        >>> import torch
        >>> photos = torch.zeros(2, 3, 224, 224)
        >>> rows_per_batch((photos,), None, None)  # default budget, CPU: <= 2 MiB inputs
        3
        >>> rows_per_batch((photos,), 16, None)  # Captum's perturbations_per_eval=16
        16
        >>> rows_per_batch((photos,), None, "8GB")  # a budget given: it sizes the calls
        891
    """
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"{name}: expected a positive int, got {requested!r}")
    budget, explicit = resolve_budget(memory_budget)
    row_bytes = max(1, example_bytes(inputs) * per_row_copies)
    cap = max(1, budget // (row_bytes * ACTIVATION_FACTOR))
    rows = cap
    if not explicit and inputs[0].device.type == "cpu":
        # On a CPU, batches whose activations outgrow the caches (or the allocator's
        # reuse of freed blocks) are slower per row, not faster: a CNN ran 8,224 rows
        # in 205 ms in one call and in 43 ms in calls of 256; small MLPs and CNNs were
        # fastest at 256-512 rows. Keep the estimated activations of one call near
        # CPU_BATCH_BYTES, within [256, 4096] rows, and the inputs of one call within
        # CPU_INPUT_BYTES: EfficientNet-Lite0 on 224 x 224 photos (602 KB rows) took
        # 26-27 ms per row in calls of 2-4 rows, 36 in calls of 16, 75-80 in 32-110.
        tuned = min(4096, max(256, CPU_BATCH_BYTES // (row_bytes * ACTIVATION_FACTOR)))
        rows = max(1, min(cap, tuned, CPU_INPUT_BYTES // row_bytes))
    if requested is not None:
        rows = min(cap, max(rows, requested * max(1, unit)))
    return rows


def batch_rows(
    inputs: tuple[Tensor, ...],
    internal_batch_size: int | None,
    memory_budget: int | str | None,
    per_example: int = 1,
) -> int:
    """Rows per forward + backward call of a gradient method (:func:`rows_per_batch`
    with Captum's ``internal_batch_size`` n). ``per_example``: the path rows of one
    example (n_steps for IntegratedGradients), which xattr's calls take whole where they
    fit: Captum's calls hold n // B steps of every example (at least one), so a call here
    holds at least that many rows, rounded up to whole examples, within the budget; then
    xattr never makes more calls than Captum with the same n.

    Example:
        >>> import torch
        >>> x = torch.zeros(3, 3, 224, 224)
        >>> batch_rows((x,), 12, None, per_example=8)  # Captum: 4 steps x 3 = 12 rows
        16
    """
    rows = rows_per_batch(inputs, internal_batch_size, memory_budget, name="internal_batch_size")
    if internal_batch_size is None or per_example <= 1:
        return rows
    B = max(1, inputs[0].shape[0])
    want = max(rows, B * max(1, internal_batch_size // B))  # Captum's call
    whole = -(-want // per_example) * per_example
    return min(whole, max(rows, _cap(inputs, memory_budget)))


def _cap(inputs: tuple[Tensor, ...], memory_budget: int | str | None) -> int:
    """The most rows a call of these inputs may hold under the memory budget."""
    budget, _ = resolve_budget(memory_budget)
    return max(1, budget // (max(1, example_bytes(inputs)) * ACTIVATION_FACTOR))


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
            stacklevel=warn_level(4),
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
