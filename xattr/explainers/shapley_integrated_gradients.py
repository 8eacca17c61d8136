"""Shapley Integrated Gradients (SIG): Integrated Gradients from many coalition
baselines, sampled the same number per coalition size, so that IG follows the
Shapley value's weighting of coalitions.

Features are d groups of input elements (``feature_mask``); r is a reference input.
A coalition S gives the baseline ``b_S``: x on the features of S, r elsewhere, and the
baseline game ``v(S) = f(b_S)``. The path from ``b_S`` to x moves only the features
outside S, so ``IG(x; b_S)`` credits only them and sums to ``f(x) - f(b_S)``.

For one feature i, the Shapley value gives total weight 1/d to each size k = 0..d-1 of
the coalitions that leave i out. SIG draws m coalitions of every size k (uniform among
the subsets of that size; ``n_coalitions_per_size="all"`` takes every subset) and
combines the paths in one of two ways:

* ``"per_size"``: ``SIG_i = (1/d) sum_k mean{IG_i(x; b_S) : |S| = k, i not in S}``,
  Shapley's per-size weights restored for every feature from the same paths (sizes
  with no sampled coalition leaving i out are dropped and the others reweighted);
* ``"shared"``: ``SIG = (1/d) sum_k mean{IG(x; b_S) : |S| = k}``, one average over
  all paths; feature i is outside a size-k coalition with probability (d-k)/d, so
  the weights tilt towards small coalitions (for a linear model with every subset
  enumerated, exactly (d+1)/(2d) times the Shapley value).

``normalize=True`` (the default) rescales each example's attributions by
``(f(x) - f(r)) / sum(a)`` so that they sum to ``f(x) - f(r)``, as Shapley values do,
with the factor limited to [1/2, 2] (see :meth:`ShapleyIntegratedGradients.attribute`).
``exact=True`` integrates, for every feature i and coalition S without i, the path
from ``b_S`` to ``b_{S+i}`` (only i moves, so the integral is ``v(S+i) - v(S)`` up to
quadrature) and weights it by Shapley's ``|S|! (d-|S|-1)! / d!``: the exact Shapley
value of the baseline game, spread over each feature's elements by the gradients.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, Literal, Union, cast, overload

import torch
from torch import Tensor

from xattr import ops
from xattr._core import validation
from xattr._core.attribution import GradientAttribution
from xattr._core.batching import as_args, batch_rows, chunk_args, expand_base
from xattr._core.features import feature_sets, format_feature_mask
from xattr._core.inputs import (
    BaselineType,
    TensorOrTupleGeneric,
    example_bytes,
    format_baselines,
    format_inputs,
    format_output,
    n_elements,
)
from xattr._core.model import outputs_at, warn_if_training
from xattr._core.progress import warn_level, with_row_progress
from xattr._core.targets import Targets, TargetType
from xattr._core.validation import flag, positive_int
from xattr.baselines import resolve
from xattr.explainers._gradient import check_n_steps, finish, integrate_paths, working_inputs
from xattr.explainers.registry import register
from xattr.ops.sampling import MAX_ENUMERATION_FEATURES

COMBINES = ("per_size", "shared")
# exact=True integrates d * 2^(d-1) single-feature paths per example.
MAX_EXACT_FEATURES = 12
# normalize=True rescales by (f(x) - f(r)) / sum(raw), limited to [1 / this, this].
NORMALIZE_BOUND = 2.0
# The coalition baselines (or, in exact mode, path end points) of one chunk of
# examples: bytes held at once.
CHUNK_BYTES = 256 * 2**20


# Captum's baselines plus the reference images this method defines per input: "blur"
# (Gaussian-blurred inputs) and "mean" (each example's channel means).
PathBaselines = Union[BaselineType, str, tuple[Union[int, float, Tensor, str], ...]]


def stratified_coalitions(
    d: int,
    n_coalitions_per_size: int | str = 4,
    seed: int | None = None,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """SIG's coalitions: ``n_coalitions_per_size`` uniform subsets of every size
    k = 0..d-1 (``"all"``: every subset of those sizes), de-duplicated.

    Returns:
        (coalitions bool [K, d] (unique), counts int64 [K]: how many times each was
        drawn; the counts of the coalitions of each size sum to m, or to C(d, k)).

    Example:
        >>> S, counts = stratified_coalitions(3, "all")
        >>> S.sum(1).tolist(), counts.tolist()
        ([0, 1, 1, 2, 1, 2, 2], [1, 1, 1, 1, 1, 1, 1])
    """
    d = positive_int("d", d)
    if n_coalitions_per_size == "all":
        if d > MAX_ENUMERATION_FEATURES:
            raise ValueError(
                f"n_coalitions_per_size: 'all' enumerates 2^d coalitions, d <= "
                f"{MAX_ENUMERATION_FEATURES}; got d = {d}"
            )
        masks = ops.enumerate_coalitions(d, device=device)[:-1]  # all but the full set
        return masks, torch.ones(masks.shape[0], dtype=torch.int64, device=device)
    if isinstance(n_coalitions_per_size, str):
        raise ValueError(
            "n_coalitions_per_size: expected a positive int or 'all', "
            f"got {n_coalitions_per_size!r}"
        )
    m = positive_int("n_coalitions_per_size", n_coalitions_per_size)
    masks = ops.stratified_masks(m, d, seed=seed, device=device)
    unique, _, counts = ops.unique_coalitions(masks)
    return unique, counts


def combination_weights(coalitions: Tensor, counts: Tensor, combine: str) -> Tensor:
    """The weight of every path's IG for every feature: [K, d] float64, so that
    ``SIG_i = sum_S w[S, i] * IG_i(x; b_S)`` (see the module docstring).

    Example:
        >>> S, n = stratified_coalitions(2, "all")  # {}, {0}, {1}
        >>> combination_weights(S, n, "per_size").tolist()
        [[0.5, 0.5], [0.0, 0.5], [0.5, 0.0]]
    """
    if combine not in COMBINES:
        raise ValueError(f"combine: expected one of {', '.join(COMBINES)}, got {combine!r}")
    K, d = coalitions.shape
    sizes = coalitions.sum(1)
    c = counts.to(torch.float64)
    if combine == "shared":
        per_size = torch.zeros(d, dtype=torch.float64, device=c.device).index_add_(0, sizes, c)
        return (c / (d * per_size[sizes])).unsqueeze(1).expand(K, d).contiguous()
    out = (~coalitions).to(torch.float64) * c[:, None]  # drawn coalitions leaving i out
    n = torch.zeros((d, d), dtype=torch.float64, device=c.device).index_add_(0, sizes, out)
    sizes_left = (n > 0).sum(0)  # [d]: sizes with at least one such coalition
    w = out / (n[sizes] * sizes_left[None, :].to(torch.float64))
    return torch.nan_to_num(w, nan=0.0)  # i in S: IG_i is 0 there, weight unused


def exact_paths(d: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
    """Exact mode's single-feature paths: for every feature i and coalition S without
    i, the path from b_S to b_{S+i}.

    Returns:
        (start coalitions S bool [P, d], end coalitions S + i bool [P, d], Shapley
        weights |S|! (d-|S|-1)! / d! float64 [P]), P = d * 2^(d-1), feature-major.

    Example:
        >>> S, S_i, w = exact_paths(2)
        >>> S.int().tolist(), S_i.int().tolist(), w.tolist()
        ([[0, 0], [0, 1], [0, 0], [1, 0]], [[1, 0], [1, 1], [0, 1], [1, 1]], [0.5, 0.5, 0.5, 0.5])
    """
    d = positive_int("d", d)
    if d > MAX_EXACT_FEATURES:
        raise ValueError(
            f"exact: integrates d * 2^(d-1) paths and supports d <= {MAX_EXACT_FEATURES} "
            f"features, got d = {d}; group features with feature_mask= or sample (exact=False)"
        )
    all_s = ops.enumerate_coalitions(d, device=device)
    starts, ends = [], []
    for i in range(d):
        s = all_s[~all_s[:, i]]
        e = s.clone()
        e[:, i] = True
        starts.append(s)
        ends.append(e)
    start, end = torch.cat(starts), torch.cat(ends)
    k = start.sum(1).tolist()
    weight = [math.factorial(a) * math.factorial(d - a - 1) / math.factorial(d) for a in k]
    return start, end, torch.tensor(weight, dtype=torch.float64, device=device)


def _chunks(s0: int, e0: int, P: int, path_bytes: int) -> list[tuple[int, int, int, int]]:
    """(example start, stop, path start, stop) blocks of examples s0..e0 whose P-path
    inputs hold about CHUNK_BYTES: several examples with all their paths, or one
    example's paths in parts."""
    per_example = max(1, P * path_bytes)
    if per_example <= CHUNK_BYTES or e0 == s0:  # an empty batch: one empty block (the shapes)
        n = max(1, CHUNK_BYTES // per_example)
        return [(s, min(e0, s + n), 0, P) for s in range(s0, max(e0, s0 + 1), n)]
    step = max(1, CHUNK_BYTES // max(1, path_bytes))
    return [(s, s + 1, p, min(P, p + step)) for s in range(s0, e0) for p in range(0, P, step)]


@register(captum=False)
class ShapleyIntegratedGradients(GradientAttribution):
    """Shapley Integrated Gradients: IG averaged over coalition baselines sampled the
    same number per coalition size (see the module docstring for the mathematics).

    Args:
        forward_func: the model, or any callable returning [B, ...] outputs.

    Example:
        >>> import torch
        >>> sig = ShapleyIntegratedGradients(torch.nn.Linear(4, 2).eval())
        >>> x = torch.randn(3, 4)
        >>> sig.attribute(x, target=0, n_coalitions_per_size=2, seed=0).shape
        torch.Size([3, 4])
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        super().__init__(forward_func, multiply_by_inputs=True)

    def has_convergence_delta(self) -> bool:
        return True

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: PathBaselines = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_coalitions_per_size: int | str = 4,
        n_steps: int = 50,
        method: str = "gausslegendre",
        seed: int | None = None,
        combine: str = "per_size",
        normalize: bool = True,
        internal_batch_size: int | None = None,
        exact: bool = False,
        return_convergence_delta: Literal[False] = False,
        *,
        blur_sigma: float = 5.0,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> TensorOrTupleGeneric: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: PathBaselines = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_coalitions_per_size: int | str = 4,
        n_steps: int = 50,
        method: str = "gausslegendre",
        seed: int | None = None,
        combine: str = "per_size",
        normalize: bool = True,
        internal_batch_size: int | None = None,
        exact: bool = False,
        *,
        return_convergence_delta: Literal[True],
        blur_sigma: float = 5.0,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> tuple[TensorOrTupleGeneric, Tensor]: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: PathBaselines = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_coalitions_per_size: int | str = 4,
        n_steps: int = 50,
        method: str = "gausslegendre",
        seed: int | None = None,
        combine: str = "per_size",
        normalize: bool = True,
        internal_batch_size: int | None = None,
        exact: bool = False,
        return_convergence_delta: bool = False,
        *,
        blur_sigma: float = 5.0,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> TensorOrTupleGeneric | tuple[TensorOrTupleGeneric, Tensor]: ...

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: PathBaselines = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_coalitions_per_size: int | str = 4,
        n_steps: int = 50,
        method: str = "gausslegendre",
        seed: int | None = None,
        combine: str = "per_size",
        normalize: bool = True,
        internal_batch_size: int | None = None,
        exact: bool = False,
        return_convergence_delta: bool = False,
        *,
        blur_sigma: float = 5.0,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> TensorOrTupleGeneric | tuple[TensorOrTupleGeneric, Tensor]:
        """SIG attributions of the target output.

        Args:
            inputs: [B, *F] float tensor or a tuple of them.
            baselines: the reference r: None (zeros), a number, a tensor [B, *F],
                [1, *F] or [*F], ``"blur"`` (each image Gaussian-blurred with
                ``blur_sigma``), ``"mean"`` (each example's channel means), or a tuple
                of these, one per input. The mean of a dataset is a [1, *F] tensor.
            target: Captum's forms, or a list of B lists of T indices / "all".
            additional_forward_args: extra model arguments (tensors with B rows
                follow the path rows).
            feature_mask: feature ids per element, as Captum's ([*F], [1, *F] or
                [B, *F] per input, ids shared across inputs); default every element
                is a feature. d features give about d * m paths per example.
            n_coalitions_per_size: m, coalitions drawn per size k = 0..d-1 (default 4;
                repeated draws are integrated once), or ``"all"`` (every subset).
            n_steps: quadrature points per path (default 50).
            method: Captum's quadrature rules, "gausslegendre" (default).
            seed: seed of the coalitions (None draws one from torch's generator).
            combine: "per_size" (default) or "shared" (module docstring). per_size is
                the default because it keeps Shapley's weights per feature: on a linear
                model it is the Shapley value for any sample, before normalisation; on
                the GridWorld experiment (experiments/sig_gridworld.py) its proportions
                were closer to exact Shapley values than shared's at every m (l1 error
                10-21% lower, Spearman higher), and on digits (experiments/sig_digits.py)
                the two tied (agreement within noise, insertion AUC 0.006-0.022 higher
                for per_size).
            normalize: rescale each example's (and target's) attributions by the
                factor ``(f(x) - f(r)) / sum(a)``, limited to [1/2, 2] (default True), so
                that they sum to ``f(x) - f(r)`` whenever their raw sum is within a
                factor 2 of it; False returns the raw combination. A positive factor
                keeps the map's ranking. The limit guards against raw sums near 0
                (positive and negative values cancelling), where the unlimited factor
                exploded: up to 413x on random MLPs, one relative error to exact Shapley
                values of 432 (2.0 raw). Where no positive factor exists (a raw sum of
                0 or of the opposite sign of f(x) - f(r), or f(x) = f(r)) the map is
                left raw. A warning counts the maps limited or left raw: they do not sum
                to f(x) - f(r). Chosen by experiments/sig_normalize.py (relative error to
                exact Shapley values, random MLPs, the GridWorld and digits, 40
                settings): raw maps are far off where the game is not additive
                (GridWorld per_size: 0.66-0.95 raw, 0.18-0.38 normalised); the limits
                2, 4, 8 and none were 1.23, 1.21, 1.19 and 1.18 times the best
                candidate's median error on average, with worst errors 2.7, 5.4, 10
                and 432; spreading the residual additively (``a + R |a| / sum|a|``)
                lowered the Spearman correlation by up to 0.18.
            internal_batch_size: Captum's batching argument (default None): each
                forward + backward call holds at least this many path rows, more where
                xattr's own choice is larger, never more than ``memory_budget`` allows
                (README, "Batching"). Results do not depend on it.
            exact: integrate every single-feature path b_S -> b_{S+i} and weight it by
                Shapley's weights: the exact Shapley value of the baseline game up to
                quadrature (d <= 12; ``n_coalitions_per_size``, ``seed`` and
                ``combine`` are unused).
            return_convergence_delta: also return every path's completeness error,
                ``sum IG(path) - (f(end) - f(start))``: [B, K] (K the unique coalitions
                of :func:`stratified_coalitions`, in its order), [B, P] in exact mode
                (the paths of :func:`exact_paths`); [B, T, K] for several targets.
            blur_sigma: sigma of the "blur" reference in pixels (default 5).
            memory_budget: bytes (or "512MB") for one forward + backward call; given
                (here or with ``xattr.set_memory_budget``) it sizes the calls; default
                1 GiB, under which xattr picks the size it measured fastest.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.

        Returns:
            Attributions shaped like ``inputs`` ([B, T, *F] for several targets), and
            the deltas when asked for.

        Example:
            >>> import torch
            >>> f = lambda x: (x[:, 0] * x[:, 1] + x[:, 2]).unsqueeze(1)
            >>> sig = ShapleyIntegratedGradients(f)
            >>> attr = sig.attribute(torch.ones(1, 3), target=0, exact=True)
            >>> [round(v, 4) for v in attr[0].tolist()]
            [0.5, 0.5, 1.0]
        """
        xs, is_tuple = format_inputs(inputs)
        xs, f = working_inputs(xs, self.forward_func)
        check_n_steps(n_steps, method)
        if combine not in COMBINES:
            raise ValueError(f"combine: expected one of {', '.join(COMBINES)}, got {combine!r}")
        normalize, exact = flag("normalize", normalize), flag("exact", exact)
        flag("return_convergence_delta", return_convergence_delta)
        warn_if_training(self.forward_func)
        B = xs[0].shape[0]
        refs = format_baselines(resolve(baselines, xs if is_tuple else xs[0], blur_sigma), xs)
        refs = tuple(expand_base(r, B).contiguous() for r in refs)
        groups, ids = format_feature_mask(feature_mask, xs)
        d = int(ids.numel())
        targets = Targets(target, B)
        args = as_args(additional_forward_args)
        rows = batch_rows(xs, internal_batch_size, memory_budget)
        run = _Run(f, xs, refs, groups, args, targets, n_steps, method, rows)
        seed = validation.seed(seed) if not exact and n_coalitions_per_size != "all" else seed
        parts = []
        # Per-example feature masks whose ids differ (superpixels of different images):
        # each run of consecutive examples with the same features gets the coalitions
        # (and weights) of its own d_g players, as if explained alone.
        for s0, e0, feats in _runs(feature_sets(groups, B, d), B, d):
            dg, dev = len(feats), xs[0].device
            if exact:
                start, end, w = exact_paths(dg, dev)
                start, end = _embed(start, feats, d), _embed(end, feats, d)
                parts.append(run.exact(start, end, w, return_convergence_delta, s0, e0))
            else:
                S, counts = stratified_coalitions(dg, n_coalitions_per_size, seed, dev)
                w = _embed(combination_weights(S, counts, combine), feats, d)
                S = _embed(S, feats, d)
                parts.append(run.sampled(S, w, return_convergence_delta, s0, e0))
        attrs, deltas = _stitch(parts, B)
        if normalize:
            attrs = run.normalized(attrs)
        out = cast(TensorOrTupleGeneric, format_output(finish(attrs, targets.multi), is_tuple))
        if not return_convergence_delta:
            return out
        deltas = cast(Tensor, deltas)  # asked for: every run returned its deltas
        return out, (deltas if targets.multi else deltas[:, 0])


def _runs(present: Tensor | None, B: int, d: int) -> list[tuple[int, int, Tensor]]:
    """Maximal runs of consecutive examples with the same features: (start, stop,
    feature indices); one run of all examples and features when every example has
    every feature (``present`` None, see :func:`feature_sets`)."""
    if present is None:
        return [(0, B, torch.arange(d))]
    out, s0 = [], 0
    for b in range(1, B + 1):
        if b == B or not torch.equal(present[b], present[s0]):
            out.append((s0, b, torch.nonzero(present[s0])[:, 0]))
            s0 = b
    return out


def _embed(t: Tensor, feats: Tensor, d: int) -> Tensor:
    """Columns of a [K, d_g] tensor (coalitions or weights over a run's own features)
    placed at ``feats`` among d (False / 0 elsewhere)."""
    if t.shape[1] == d:
        return t
    out = torch.zeros((t.shape[0], d), dtype=t.dtype, device=t.device)
    out[:, feats.to(t.device)] = t
    return out


def _stitch(
    parts: list[tuple[tuple[Tensor, ...], Tensor | None, int, int]], B: int
) -> tuple[tuple[Tensor, ...], Tensor | None]:
    """The runs' attributions (and deltas) as one batch; runs with fewer paths than the
    longest pad their deltas with NaN (no such path)."""
    if len(parts) == 1:
        return parts[0][0], parts[0][1]
    first = parts[0][0]
    attrs = tuple(a.new_zeros((B, *a.shape[1:])) for a in first)
    delta = None
    if parts[0][1] is not None:  # then every run has its deltas
        run_deltas = [cast(Tensor, p[1]) for p in parts]
        P = max(d.shape[-1] for d in run_deltas)
        delta = run_deltas[0].new_full((B, run_deltas[0].shape[1], P), float("nan"))
    for run_attrs, run_delta, s0, e0 in parts:
        for total, a in zip(attrs, run_attrs):
            total[s0:e0] = a
        if delta is not None:
            run_delta = cast(Tensor, run_delta)
            delta[s0:e0, :, : run_delta.shape[-1]] = run_delta
    return attrs, delta


class _Run:
    """One ``attribute`` call's data and its two modes."""

    def __init__(
        self,
        f: Callable,
        xs: tuple[Tensor, ...],
        refs: tuple[Tensor, ...],
        groups: tuple[Tensor, ...],
        args: tuple,
        targets: Targets,
        n_steps: int,
        method: str,
        rows: int,
    ) -> None:
        self.f, self.xs, self.refs, self.groups, self.args = f, xs, refs, groups, args
        self.targets, self.n_steps, self.method, self.rows = targets, n_steps, method, rows
        self.B = xs[0].shape[0]
        self.row_bytes = example_bytes(xs)

    def _baselines(self, masks: Tensor, s: int, e: int) -> tuple[Tensor, ...]:
        """b_S for examples s..e and coalitions masks [K, d]: [e - s, K, *F] per input."""
        return tuple(
            ops.mask_apply(x[s:e], masks, g[0] if g.shape[0] == 1 else g[s:e], r[s:e])
            for x, r, g in zip(self.xs, self.refs, self.groups)
        )

    def _weights(self, w: Tensor, s: int, e: int) -> tuple[Tensor, ...]:
        """Per-feature weights w [K, d] spread over the elements, in each input's dtype:
        [1 or e - s, K, E] per input."""
        out = []
        for g, x in zip(self.groups, self.xs):
            wx = w.to(x.dtype)
            if g.shape[0] == 1:
                out.append(wx[:, g.reshape(-1)].unsqueeze(0))
            else:
                out.append(wx[:, g[s:e].reshape(e - s, n_elements(g))].movedim(1, 0))
        return tuple(out)

    def _integrate(self, xs, bases, args, targets, weights=None, totals=False):
        return integrate_paths(
            self.f,
            xs,
            bases,
            args,
            targets,
            self.method,
            self.n_steps,
            self.rows,
            path_weights=weights,
            path_totals=totals,
        )

    @functools.cached_property
    def at_inputs(self) -> Tensor:
        """f(x): selected outputs [B, T] (for the deltas and the normalisation)."""
        return self._values(tuple(x.unsqueeze(1) for x in self.xs), 0, self.B, 1)[..., 0]

    def _values(self, points: tuple[Tensor, ...], s: int, e: int, reps: int) -> Tensor:
        """Selected outputs at ``reps`` points per example of s..e: [e - s, T, reps]."""
        n = e - s
        flat = tuple(p.reshape(n * reps, *p.shape[2:]) for p in points)
        targets = self.targets.take(s, e, reps)
        v = outputs_at(self.f, flat, chunk_args(self.args, self.B, s, e, reps), targets, self.rows)
        return v.view(n, reps, v.shape[-1]).movedim(1, 2)

    def sampled(
        self, masks: Tensor, w: Tensor, deltas: bool, s0: int, e0: int
    ) -> tuple[tuple[Tensor, ...], Tensor | None, int, int]:
        """sum_S w[S, i] IG(x; b_S) for examples s0..e0, block by block of examples and
        coalitions (the weighted sums of the blocks add up)."""
        K = masks.shape[0]
        acc = _Accumulator(self.xs, K, deltas, s0, e0)
        blocks = _chunks(s0, e0, K, 2 * self.row_bytes)
        for s, e, k0, k1 in blocks:
            bases = self._baselines(masks[k0:k1], s, e)
            xs = tuple(x[s:e] for x in self.xs)
            res = self._integrate(
                xs,
                bases,
                chunk_args(self.args, self.B, s, e, 1),
                self.targets.take(s, e),
                self._weights(w[k0:k1], s, e),
                deltas,
            )
            delta = None
            if deltas:
                fb = self._values(bases, s, e, k1 - k0)  # [n, T, k]
                fx = self.at_inputs[s:e, :, None]
                totals = cast(Tensor, res.totals)  # asked for with deltas
                delta = totals - (fx - fb).to(totals.dtype)
            acc.add(s, e, k0, k1, res.attributions, delta)
        return acc.result()

    def exact(
        self,
        start: Tensor,
        end: Tensor,
        w: Tensor,
        deltas: bool,
        s0: int,
        e0: int,
    ) -> tuple[tuple[Tensor, ...], Any, int, int]:
        """sum over single-feature paths (``exact_paths``) of Shapley weight x
        IG(b_{S+i}; b_S), for examples s0..e0."""
        P = start.shape[0]
        acc = _Accumulator(self.xs, P, deltas, s0, e0)
        blocks = _chunks(s0, e0, P, 2 * self.row_bytes)
        for s, e, p0, p1 in blocks:
            n, p = e - s, p1 - p0
            b0 = self._baselines(start[p0:p1], s, e)
            b1 = self._baselines(end[p0:p1], s, e)
            ends = tuple(b.reshape(n * p, *b.shape[2:]) for b in b1)
            starts = tuple(b.reshape(n * p, 1, *b.shape[2:]) for b in b0)
            res = self._integrate(
                ends, starts, chunk_args(self.args, self.B, s, e, p), self.targets.take(s, e, p)
            )
            per_path = [a.view(n, p, *a.shape[1:]) for a in res.attributions]  # [n, p, T, *F]
            weighted = [
                torch.tensordot(w[p0:p1], a.to(torch.float64), dims=([0], [1]))  # pyright: ignore[reportArgumentType]
                for a in per_path
            ]
            delta = None
            if deltas:
                totals = cast(
                    Tensor,
                    sum(a.reshape(*a.shape[:3], math.prod(a.shape[3:])).sum(-1) for a in per_path),
                )
                v = self._values(b1, s, e, p) - self._values(b0, s, e, p)  # [n, T, p]
                delta = totals.movedim(1, 2) - v.to(totals.dtype)
            acc.add(s, e, p0, p1, weighted, delta)
        return acc.result()

    def normalized(self, attrs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """attrs [B, T, *F] rescaled so each example's and target's sum is f(x) - f(r),
        by a factor limited to [1 / NORMALIZE_BOUND, NORMALIZE_BOUND] (the ``normalize``
        argument)."""
        fx = self.at_inputs
        fr = self._values(tuple(r.unsqueeze(1) for r in self.refs), 0, self.B, 1)[..., 0]
        f64 = torch.float64
        total = sum(a.reshape(*a.shape[:2], math.prod(a.shape[2:])).to(f64).sum(-1) for a in attrs)
        gap = (fx - fr).to(f64)
        ok = total * gap > 0  # a positive factor exists
        factor = torch.where(ok, gap / torch.where(ok, total, 1.0), 1.0)
        scale = factor.clamp(1 / NORMALIZE_BOUND, NORMALIZE_BOUND)
        limited = ok & (scale != factor)
        if not bool(ok.all()) or bool(limited.any()):
            warnings.warn(
                f"normalize: of {ok.numel()} example(s) / target(s), {int((~ok).sum())} have "
                "raw attributions that sum to 0 or to the opposite sign of f(x) - f(r) (or "
                "f(x) = f(r)), left raw, and "
                f"{int(limited.sum())} needed a factor beyond [1/{NORMALIZE_BOUND:g}, "
                f"{NORMALIZE_BOUND:g}], rescaled by the limit; those do not sum to f(x) - f(r)",
                stacklevel=warn_level(3),
            )
        return tuple(
            (a.to(f64) * scale.view(*scale.shape, *([1] * (a.dim() - 2)))).to(a.dtype)
            for a in attrs
        )


class _Accumulator:
    """Attributions [e0 - s0, T, *F] per input of examples s0..e0 (summed over blocks of
    paths in float64, cast back to the inputs' dtype at the end) and the paths' deltas
    [e0 - s0, T, P], filled block by block (T is known once the model has run). The
    blocks (:func:`_chunks`) depend only on the inputs' size, never on the memory
    budget."""

    def __init__(self, xs: tuple[Tensor, ...], P: int, deltas: bool, s0: int, e0: int) -> None:
        self.xs, self.P, self.deltas, self.s0, self.e0 = xs, P, deltas, s0, e0
        self.attrs: list[Tensor] | None = None
        self.delta: Tensor | None = None

    def add(
        self,
        s: int,
        e: int,
        p0: int,
        p1: int,
        attrs: tuple[Tensor, ...] | list[Tensor],
        delta: Tensor | None,
    ) -> None:
        if self.attrs is None:
            n = self.e0 - self.s0
            self.attrs = [a.new_zeros((n, *a.shape[1:]), dtype=torch.float64) for a in attrs]
            if self.deltas:
                delta = cast(Tensor, delta)
                self.delta = delta.new_zeros((n, delta.shape[1], self.P))
        for total, a in zip(self.attrs, attrs):
            total[s - self.s0 : e - self.s0] += a
        if self.deltas:
            cast(Tensor, self.delta)[s - self.s0 : e - self.s0, :, p0:p1] = cast(Tensor, delta)

    def result(self) -> tuple[tuple[Tensor, ...], Tensor | None, int, int]:
        attrs = tuple(a.to(x.dtype) for a, x in zip(cast(list, self.attrs), self.xs))
        return attrs, self.delta, self.s0, self.e0
