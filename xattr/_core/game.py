"""The coalition game every perturbation explainer (and every metric that removes
features) evaluates.

``Game(...)(masks)`` returns v(S) for every input and every coalition row:
masks are bool [S, d] (shared by the batch) or [B, S, d]; values are
[B, S, T] for T selected outputs. Perturbed inputs are built with the masking
kernel and pushed through the model in batches of ``rows`` model rows; the
removal (baseline, marginal, conditional) decides what replaces the features
off S. ``Setup`` turns ``attribute()`` arguments into a game.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from xattr._core.batching import (
    expand_additional_args,
    rows_per_batch,
    slice_additional_args,
    warn_tiny_batches,
)
from xattr._core.budget import resolve_budget
from xattr._core.features import feature_sets, format_feature_mask, interpretable, spread
from xattr._core.inputs import (
    attribution_dtype,
    check_finite,
    example_bytes,
    format_baselines,
    format_inputs,
    masking_dtype,
    promotion_note,
)
from xattr._core.model import (
    AggregateOutput,
    ModelOutputError,
    as_output_tensor,
    promotion_errors,
    warn_if_training,
)
from xattr._core.progress import check_show_progress, model_rows, row_progress
from xattr._core.removal import Removal, check_removal
from xattr._core.targets import Targets
from xattr._core.validation import per_eval
from xattr.ops.masking import apply_prepared
from xattr.ops.masking import prepare as prepare_masking

# Perturbed inputs built per masking call: several forward batches at once (fewer
# calls), small enough to stay in cache until the model reads them.
PERTURBED_BYTES = 4 * 2**20


# Solver memory (KernelShap's and Lime's designs, values and least-squares workspaces)
# below this never counts against the memory budget: a budget set small to keep the
# forward batches small must not refuse small solves.
SOLVER_FLOOR = 64 * 2**20


class Game:
    """v(S) for a batch of inputs (see the module docstring).

    Args:
        forward_func: the model (any callable).
        inputs: tuple of [B, *F] tensors.
        baselines: tuple of [1 or B, *F] tensors (from ``format_baselines``).
        groups: tuple of int64 [1 or B, *F] feature ids in 0..d-1.
        n_features: d.
        targets: a :class:`Targets`.
        additional_forward_args: passed to the model after the inputs.
        removal: a removal object (``BaselineRemoval`` by default).
        rows: model rows per forward call; None: by
            :func:`~xattr._core.batching.rows_per_batch` from ``per_eval`` (Captum's
            ``perturbations_per_eval``: at least that many perturbations of the whole
            batch per call) and ``memory_budget``.
        show_progress, desc: the bar of a call made outside any (see
            :mod:`xattr._core.progress`); each call announces its B * copies * S model
            rows and counts them as the model evaluates them.
    """

    def __init__(
        self,
        forward_func: Callable,
        inputs: tuple[Tensor, ...],
        baselines: tuple[Tensor, ...],
        groups: tuple[Tensor, ...],
        n_features: int,
        targets: Targets,
        additional_forward_args: Any = None,
        removal: Removal | None = None,
        rows: int | None = None,
        show_progress: bool | None = None,
        desc: str = "coalitions",
        per_eval: int | None = None,
        memory_budget: int | str | None = None,
    ):
        self.f = forward_func
        self.inputs, self.baselines, self.groups = inputs, baselines, groups
        self.d, self.targets = n_features, targets
        self.args = additional_forward_args
        self.removal = check_removal(removal)
        self.show_progress, self.desc = show_progress, desc
        self.B = inputs[0].shape[0]
        self.evaluations = 0  # model rows evaluated so far (per input)
        self.output_dtype = torch.get_default_dtype()  # the model's, once it has run
        # Captum's aggregate mode (the model returns one value / one row for the whole
        # batch): None until the first model call tells, then True or False. In that
        # mode every model call is the B rows of one coalition, and v(S) [T'] (the
        # selected output, flattened; ``aggregate_shape`` its shape) is every example's.
        self.aggregate: bool | None = None
        self.aggregate_shape: tuple[int, ...] = ()
        # aggregate mode needs one coalition per call: a user's perturbations_per_eval
        # above 1 cannot be honoured (Captum refuses it too); Setup sets this
        self.aggregate_refusal: str | None = None
        replacements = self.removal.prepare(inputs, baselines)
        # each (example, coalition) is evaluated against `copies` replacement rows
        self.copies = self.removal.copies(replacements)
        if rows is None:  # one perturbation of the batch = B * copies rows
            rows = rows_per_batch(inputs, per_eval, memory_budget, unit=self.B * self.copies)
        self.rows = max(1, int(rows))
        self.chunk_rows = max(self.rows, PERTURBED_BYTES // max(1, example_bytes(inputs)))
        # What the masking op needs, checked and flattened once (not once per chunk):
        # (x [R, E], base [1 or R, E], group [1 or R, E]) per input, where R = B, or
        # B * copies (example-major) when every example meets every replacement row.
        self._masking = []
        # the dtype of every input's perturbed copies (Captum's promotion: the baselines'
        # dtype from format_baselines), carried through the masking kernel in a dtype it
        # takes exactly (bool and small ints as int64, half / bfloat16 as float32)
        self._dtypes = tuple(base.dtype for base in replacements)
        self.promotion = promotion_note(inputs, replacements)
        for x, g, base in zip(inputs, groups, replacements):
            carrier = masking_dtype(base.dtype)
            x, base = x.to(carrier), base.to(carrier)
            if self.copies != 1:
                N = self.copies
                x = x.repeat_interleave(N, dim=0)
                base = base.repeat(self.B, *([1] * (base.dim() - 1)))
                g = g if g.shape[0] == 1 else g.repeat_interleave(N, dim=0)
            if x.dim() == 1:  # one scalar per example: masked as [B, 1]
                x, g, base = (t.reshape(t.shape[0], 1) for t in (x, g, base))
            self._masking.append(prepare_masking(x, g, base))

    # ---------------------------------------------------------------- eval
    def _forward(self, pert: tuple[Tensor, ...], per_example: int, masks: Tensor | None) -> Tensor:
        """Selected model outputs on perturbed rows ordered (example, copy) -> [rows, T]
        (float64, not yet checked finite), in forward calls of at most ``self.rows`` rows."""
        n = pert[0].shape[0]
        args = () if self.args is None else expand_additional_args(self.args, self.B, per_example)
        outs = []
        with torch.no_grad():
            # an empty batch still makes one (empty) call: the outputs' shape and dtype
            for a in range(0, max(n, 1), self.rows):
                b = min(n, a + self.rows)
                part = pert if b - a == n else tuple(t[a:b] for t in pert)
                extra = slice_additional_args(args, n, a, b) if args else ()
                rows_masks = None if masks is None else masks[a:b]
                with promotion_errors(self.promotion):
                    outs.append(self.removal.evaluate(self.f, part, rows_masks, extra, b - a))
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        self.output_dtype = out.dtype
        return self.targets.select(out, per_example).to(torch.float64)

    def _perturb(self, masks: Tensor, copies: int) -> tuple[Tensor, ...]:
        """Perturbed inputs for masks [1 or B, s, d]: [B * copies * s, *F] per input."""
        if masks.shape[0] > 1 and copies > 1:
            masks = masks.repeat_interleave(copies, dim=0)
        masks = masks.contiguous()
        n = self.B * copies * masks.shape[1]  # also for inputs of no elements
        return tuple(
            apply_prepared(prep, masks).reshape(n, *x.shape[1:]).to(dtype)
            for x, prep, dtype in zip(self.inputs, self._masking, self._dtypes)
        )

    def _chunk(self, masks: Tensor) -> Tensor:
        """masks [1 or B, s, d] -> values [B, s, T].

        The first model call holds several coalitions and reveals whether the model is
        in aggregate mode. A model that only takes batches of B rows (e.g. a loss
        against B labels it holds: Captum calls it with the B rows of one perturbation
        at a time) fails there: then the first coalition alone is tried, as Captum's
        first call, and if that reveals aggregate mode the game goes on in it; else
        the model's error stands."""
        if self.aggregate:
            return self._aggregate_chunk(masks)
        if self.aggregate is None and masks.shape[1] > 1 and self.B > 1:
            try:
                return self._decide(masks)
            except Exception as error:
                if self.aggregate is not None:  # the mode was known: xattr's own error
                    raise
                try:
                    first = self._decide(masks[:, :1])
                except Exception:
                    raise error from None  # not a model of B rows: its first error
                if not self.aggregate:
                    raise error
                return torch.cat([first, self._aggregate_chunk(masks[:, 1:])], dim=1)
        return self._decide(masks)

    def _decide(self, masks: Tensor) -> Tensor:
        """:meth:`_chunk` by model rows, turning to aggregate mode on the first call
        that returns one value for the batch."""
        try:
            v = self._rows_chunk(masks)
        except AggregateOutput as exc:
            # only the first model call decides; only baseline removal (one copy, no
            # surrogate) reads a batch-level output as the batch's value
            if self.aggregate is not None or self.copies != 1 or self.removal.reads_masks:
                raise
            self.aggregate = True
            if self.aggregate_refusal is not None:
                raise ModelOutputError(self.aggregate_refusal) from None
            if any(g.shape[0] > 1 and not bool((g == g[:1]).all()) for g in self.groups):
                raise ModelOutputError(
                    "feature_mask: the model returns one value for the whole batch "
                    "(aggregate mode), so the examples must share one feature mask "
                    "([1, *F] or [*F]); explain the examples one at a time instead"
                ) from None
            same = masks.shape[0] == 1 or bool((masks == masks[:1]).all())
            if masks.shape[1] == 1 and self.rows >= self.B and same:
                # that call was the B rows of this one coalition: its output is the value
                self.output_dtype = exc.output.dtype
                value = self._aggregate_select(exc.output).to(torch.float64)
                return value[None, None].expand(self.B, 1, -1)
            return self._aggregate_chunk(masks)
        self.aggregate = False
        return v

    def _aggregate_chunk(self, masks: Tensor) -> Tensor:
        """Aggregate mode: masks [1 or B, s, d] (the same coalitions for every example)
        -> values [B, s, T'], one model call of B rows per coalition."""
        if masks.shape[0] > 1 and not bool((masks == masks[:1]).all()):
            raise ModelOutputError(
                "feature_mask: the model returns one value for the whole batch (aggregate "
                "mode), so every example must be perturbed alike: give one feature mask "
                "for the batch ([1, *F]), or explain one example at a time"
            )
        args = () if self.args is None else self.args
        args = args if isinstance(args, tuple) else (args,)
        vals = []
        with torch.no_grad():
            for j in range(masks.shape[1]):
                pert = self._perturb(masks[:1, j : j + 1], 1)  # [B, *F] per input
                with promotion_errors(self.promotion), model_rows(self.B):
                    out = as_output_tensor(self.f(*pert, *args))
                vals.append(self._aggregate_select(out))
                self.output_dtype = out.dtype
        if not vals:
            return torch.empty((self.B, 0, 0), dtype=torch.float64)
        v = torch.stack(vals).to(torch.float64)  # [s, T']
        return v.unsqueeze(0).expand(self.B, -1, -1)

    def _aggregate_select(self, out: Tensor) -> Tensor:
        """The target's part of a whole-batch output, flattened [T'] (Captum's selection
        on the output as it is: target None takes all of it, an int / tuple indexes its
        dimensions after the first); its shape is kept in ``aggregate_shape``."""
        kind = self.targets.kind
        if kind in ("none", "all"):
            sel = out
        elif kind == "fixed":
            if out.dim() - 1 < len(self.targets.fixed):
                raise ModelOutputError(
                    f"target: index {self.targets.fixed} needs {len(self.targets.fixed)} "
                    f"output dimensions after the first; the model returns "
                    f"{tuple(out.shape)} for the whole batch (aggregate mode)"
                )
            sel = out[(slice(None), *self.targets.fixed)]
        else:
            raise ModelOutputError(
                "target: per-example targets need one output row per example; the model "
                f"returns {tuple(out.shape)} for the whole batch (aggregate mode)"
            )
        self.aggregate_shape = tuple(sel.shape) or (1,)
        return sel.reshape(-1)

    def _rows_chunk(self, masks: Tensor) -> Tensor:
        """masks [1 or B, s, d] -> values [B, s, T], one model row per perturbed row."""
        s, N = masks.shape[1], self.copies
        rows_masks = None
        if self.removal.reads_masks:  # the coalition of every row, ordered as the rows
            rows_masks = masks.expand(self.B, s, self.d)
            if N != 1:
                rows_masks = rows_masks.unsqueeze(1).expand(self.B, N, s, self.d)
            rows_masks = rows_masks.reshape(self.B * N * s, self.d)
        v = self._forward(self._perturb(masks, N), N * s, rows_masks)
        if N != 1:
            return v.view(self.B, N, s, v.shape[-1]).mean(1)
        return v.view(self.B, s, v.shape[-1])

    def __call__(self, masks: Tensor) -> Tensor:
        """v(S) for every input and every mask row: [B, S, T] (float64)."""
        m3 = masks.unsqueeze(0) if masks.dim() == 2 else masks
        if m3.shape[0] == 1:
            m3 = m3.contiguous()  # then every chunk of rows is contiguous too
        if m3.shape[-1] != self.d:
            raise ValueError(f"masks: expected {self.d} features, got {m3.shape[-1]}")
        S = m3.shape[1]
        warn_tiny_batches(self.rows, self.B * self.copies * S)
        step = max(1, self.chunk_rows // max(1, self.B * self.copies))
        parts = []
        with row_progress(self.B * self.copies * S, self.show_progress, self.desc):
            for s0 in range(0, S, step):
                parts.append(self._chunk(m3[:, s0 : s0 + step]))
        self.evaluations += S
        if not parts:
            return torch.empty((self.B, 0, 0), dtype=torch.float64)
        v = torch.cat(parts, dim=1)
        check_finite(v)  # the selected outputs only, once per call
        return v

    def full_and_empty(self) -> tuple[Tensor, Tensor]:
        """v(N) and v(empty), each [B, T]."""
        m = torch.zeros((2, self.d), dtype=torch.bool, device=self.inputs[0].device)
        m[0] = True
        v = self(m)
        return v[:, 0], v[:, 1]


class Setup:
    """Everything a perturbation explainer derives from its ``attribute`` arguments:
    checked inputs, baselines, feature groups and targets, and the :class:`Game`.

    Every argument after ``inputs`` is keyword-only and named as in ``attribute``, so
    an explainer passes on what it was given by name. ``desc`` labels the progress
    bar. :meth:`result` turns per-feature values into the explainer's return value.

    Example:
        >>> import torch
        >>> s = Setup(lambda x: x.sum(1), torch.ones(2, 3), baselines=0.0)
        >>> s.d, s.game(torch.tensor([[True, False, True]])).tolist()
        (3, [[[2.0]], [[2.0]]])
    """

    def __init__(
        self,
        forward_func: Callable,
        inputs: Any,
        *,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        removal: Removal | None = None,
        perturbations_per_eval: int | None = None,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
        desc: str = "coalitions",
        aggregate_layout: str = "shape",
        none_as_all: bool = False,
    ):
        warn_if_training(forward_func)
        check_show_progress(show_progress)
        self.aggregate_layout = aggregate_layout
        self.inputs, self.is_tuple = format_inputs(inputs)
        self.baselines = format_baselines(baselines, self.inputs)
        self.groups, self.ids = format_feature_mask(feature_mask, self.inputs)
        self.d = int(self.ids.numel())
        self.B = self.inputs[0].shape[0]
        self.present = feature_sets(self.groups, self.B, self.d)
        self.targets = Targets(target, self.B)
        self.targets.none_as_all = none_as_all
        # Captum's perturbations_per_eval: at least that many perturbations of the batch
        # per forward call, under the memory budget (rows_per_batch); the results never
        # depend on it.
        self.budget, _ = resolve_budget(memory_budget)
        self.game = Game(
            forward_func,
            self.inputs,
            self.baselines,
            self.groups,
            self.d,
            self.targets,
            additional_forward_args=additional_forward_args,
            removal=removal,
            show_progress=show_progress,
            desc=desc,
            per_eval=per_eval(perturbations_per_eval),
            memory_budget=memory_budget,
        )
        if perturbations_per_eval not in (None, 1):
            self.game.aggregate_refusal = (
                "perturbations_per_eval: the model returns one value for the whole batch "
                "(aggregate mode), which evaluates one coalition of the whole batch per "
                f"model call; pass perturbations_per_eval=1 (got {perturbations_per_eval})"
            )

    def example_sets(self) -> list[tuple[Tensor, Tensor]]:
        """The examples that have the same features, with those features: a list of
        (example indices int64 [b], feature indices int64 [d_g]); one entry (every
        example, every feature) unless per-example feature masks use different ids.
        Explainers whose estimator depends on the number of players (KernelShap, Lime)
        solve each entry over its own features, as if its examples were explained alone.
        """
        if self.present is None:
            return [(torch.arange(self.B), torch.arange(self.d))]
        sets, inverse = torch.unique(self.present, dim=0, return_inverse=True)
        return [
            (torch.nonzero(inverse == k)[:, 0], torch.nonzero(sets[k])[:, 0])
            for k in range(sets.shape[0])
        ]

    def check_solver_memory(self, name: str, needed: int, n_samples: int) -> None:
        """Refuses a call whose solver would need more than the memory budget (or
        SOLVER_FLOOR, whichever is larger), before anything of it is allocated, and
        says what to change."""
        limit = max(self.budget, SOLVER_FLOOR)
        if needed > limit:
            raise ValueError(
                f"{name}: the least-squares fit for d = {self.d} features and n_samples = "
                f"{n_samples} needs about {needed / 2**20:,.0f} MiB, more than the memory "
                f"budget of {limit / 2**20:,.0f} MiB; group input elements into fewer "
                "features with feature_mask= (superpixels, patches, tokens), lower "
                "n_samples, or raise memory_budget="
            )

    def per_feature(self, phi: Tensor) -> Tensor:
        """[B, T, d] -> [B, D] for one target, [B, T, D] for several: Captum's
        interpretable space, where column k is the feature with id ``min_id + k`` and
        D = max_id - min_id + 1 (ids shifted to start at 0, as Captum shifts them;
        zeros for ids no element has, and for the ids an example does not have);
        dtype as :meth:`output`'s. In aggregate mode: [1, D] for one output value,
        else [*shape, D] (``shape`` the selected output's)."""
        phi = phi.to(attribution_dtype(self.inputs[0], self.game.output_dtype))
        if self.game.aggregate:
            phi = interpretable(phi[:1], self.ids)  # [1, T', D]: every example's row
            return phi[:, 0] if phi.shape[1] == 1 else phi.reshape(*self._agg_shape(phi), -1)
        if self.present is not None:  # a feature an example does not have gets exactly 0
            phi = phi.masked_fill(~self.present[:, None].to(phi.device), 0)
        phi = interpretable(phi, self.ids)
        return phi if self.targets.multi else phi[:, 0]

    def output(self, phi: Tensor) -> Any:
        """[B, T, d] per-feature values -> attributions shaped like the inputs.

        In aggregate mode (the model returned one value or row for the whole batch) the
        values are the batch's, not an example's: per input [*shape, *F], where shape is
        the selected output's shape (a scalar: (1,)), or its number of elements (T',)
        with ``aggregate_layout="flat"`` (Captum's FeatureAblation)."""
        if self.game.aggregate and self.B == 0:
            # an empty batch: nothing to perturb, every value of the batch is 0 (Captum)
            dtype = attribution_dtype(self.inputs[0], self.game.output_dtype)
            lead = self._agg_shape(phi)
            out = tuple(phi.new_zeros((*lead, *x.shape[1:]), dtype=dtype) for x in self.inputs)
        elif self.game.aggregate:
            one = tuple(x[:1] for x in self.inputs)
            groups = tuple(g[:1] for g in self.groups)
            out = spread(phi[:1], groups, one, True, self.game.output_dtype)
            shape = self._agg_shape(phi)
            out = tuple(a.reshape(*shape, *a.shape[2:]) for a in out)
        else:
            out = spread(phi, self.groups, self.inputs, self.targets.multi, self.game.output_dtype)
        return out if self.is_tuple else out[0]

    def _agg_shape(self, phi: Tensor) -> tuple[int, ...]:
        """The leading shape of aggregate-mode attributions (see :meth:`output`)."""
        if self.aggregate_layout == "flat":
            return (phi.shape[1],)
        return self.game.aggregate_shape

    def result(self, phi: Tensor, std: Tensor | None = None, *, input_shape: bool = True) -> Any:
        """An explainer's return value from per-feature values [B, T, d]: attributions
        shaped like the inputs (:meth:`output`), or Captum's per-feature layout with
        ``input_shape=False`` (:meth:`per_feature`); with a standard error ``std``
        [B, T, d], the pair (attributions, std) in the same layout."""
        shape = self.output if input_shape else self.per_feature
        return shape(phi) if std is None else (shape(phi), shape(std))
