"""Input- and model-perturbation bounds on removal-based attributions, and the measured
change they bound (see the package docstring for the mathematics)."""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from xattr import ops
from xattr._core import validation
from xattr._core.features import feature_sets, format_feature_mask, group_scores
from xattr._core.game import Setup
from xattr._core.inputs import format_inputs
from xattr._core.progress import with_row_progress
from xattr._core.removal import BaselineRemoval, ConditionalRemoval, MarginalRemoval
from xattr.bounds.estimator import attribution_factor, resolve_method
from xattr.bounds.summary import MAX_MATRIX_FEATURES, SUMMARIES, SummaryFactor

REMOVALS = ("baseline", "marginal", "conditional")


def removal_kind(removal: Any) -> str:
    """ "baseline", "marginal" or "conditional" for a name or a removal object.

    Example:
        >>> import torch
        >>> removal_kind(MarginalRemoval(torch.zeros(4, 3)))
        'marginal'
    """
    if isinstance(removal, str):
        if removal in REMOVALS:
            return removal
        raise ValueError(f"removal: expected one of {REMOVALS}, got {removal!r}")
    if removal is None or isinstance(removal, BaselineRemoval):
        return "baseline"
    if isinstance(removal, MarginalRemoval):
        return "marginal"
    if isinstance(removal, ConditionalRemoval):
        return "conditional"
    raise ValueError(
        "removal: the bounds cover BaselineRemoval, MarginalRemoval and ConditionalRemoval "
        f"(or their names {REMOVALS}), not {type(removal).__name__}"
    )


def _nonnegative(name: str, value: Any) -> Tensor:
    """A float or a tensor of them, >= 0 and finite, as float64 [n] (a scalar -> [1])."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return torch.tensor([_scalar(name, value)], dtype=torch.float64)
    if not isinstance(value, Tensor) or value.dtype == torch.bool or value.is_complex():
        what = f"a {value.dtype} tensor" if isinstance(value, Tensor) else type(value).__name__
        raise TypeError(f"{name}: expected a number or a real tensor, got {what}")
    if value.dim() > 1:
        raise ValueError(
            f"{name}: expected one number or one per example [n], got shape {tuple(value.shape)}"
        )
    t = value.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    if t.numel() == 0:
        raise ValueError(f"{name}: empty")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: must be finite")
    if bool((t < 0).any()):
        raise ValueError(f"{name}: must be >= 0, got {float(t.min()):g}")
    return t


def _scalar(name: str, value: Any) -> float:
    """One number >= 0 and finite (a Python number or a one-element tensor)."""
    if isinstance(value, Tensor):
        t = _nonnegative(name, value)
        if t.numel() != 1:
            raise ValueError(f"{name}: expected one number, got {t.numel()}")
        return float(t[0])
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name}: must be finite")
    if x < 0:
        raise ValueError(f"{name}: must be >= 0, got {x:g}")
    return x


@dataclass(frozen=True)
class RobustnessBound:
    """A bound on how far attributions move, and (optionally) how far they did.

    Attributes:
        perturbation: "input" or "model".
        method: the summary or estimator bounded (e.g. "shapley", "kernel_shap").
        removal: "baseline", "marginal" or "conditional".
        factor: the method's :class:`SummaryFactor` (h, h1, h2, per_feature).
        game_gap: float64 [n]: the bound on max_S |v(S) - v'(S)| (one per radius or
            per example).
        l2: float64 [n]: the bound on ||phi - phi'||_2 = factor.h * game_gap.
        per_feature: float64 [n, d]: the bound on |phi_i - phi'_i|.
        radius: float64 [n] for input perturbations (||delta||_2), else None.
        lipschitz: the g of the input bound (L, or L + 2 B M for conditional removal).
        measured: float64 [n] measured ||phi - phi'||_2, when given (:meth:`with_measured`).
    """

    perturbation: str
    method: str
    removal: str
    factor: SummaryFactor
    game_gap: Tensor
    l2: Tensor
    per_feature: Tensor
    radius: Tensor | None = None
    lipschitz: float | None = None
    measured: Tensor | None = None

    def with_measured(self, measured: Tensor | float) -> RobustnessBound:
        """A copy holding the measured change ||phi - phi'||_2: one value, or one per
        bound (a single bound, e.g. one radius for the whole batch, is compared with
        every measured value).

        Example:
            >>> import torch
            >>> b = input_bound("banzhaf", 4, 0.1, lipschitz=1.0)  # h = 2: bound 0.2
            >>> b = b.with_measured(torch.tensor([0.05, 0.3]))
            >>> b.l2.tolist(), b.holds
            ([0.2, 0.2], False)
        """
        m = _nonnegative("measured", measured)
        n = self.l2.numel()
        if m.numel() != n and 1 not in (m.numel(), n):
            raise ValueError(f"measured: expected 1 or {n} values, got {m.numel()}")
        n = max(n, m.numel())
        if n == self.l2.numel():
            return replace(self, measured=m.expand(n).clone())
        return replace(
            self,
            game_gap=self.game_gap.expand(n).clone(),
            l2=self.l2.expand(n).clone(),
            per_feature=self.per_feature.expand(n, -1).clone(),
            radius=None if self.radius is None else self.radius.expand(n).clone(),
            measured=m,
        )

    @property
    def tightness(self) -> Tensor | None:
        """measured / bound, float64 [n] (1 = tight; None without a measurement)."""
        if self.measured is None:
            return None
        return torch.where(self.l2 > 0, self.measured / self.l2, torch.zeros_like(self.l2))

    @property
    def holds(self) -> bool | None:
        """Whether every measured l2 change is within its l2 bound (up to float64
        rounding; compare per-feature changes with ``per_feature`` yourself)."""
        if self.measured is None:
            return None
        slack = 1e-9 * (1.0 + self.l2)
        return bool((self.measured <= self.l2 + slack).all())

    def summary(self) -> str:
        """A few lines for a report.

        Example:
            >>> b = input_bound("banzhaf", 4, 0.1, lipschitz=2.0)
            >>> print(b.summary().splitlines()[0])
            input perturbation, banzhaf under baseline removal (d = 4)
        """
        f = self.factor
        lines = [
            f"{self.perturbation} perturbation, {self.method} under {self.removal} removal "
            f"(d = {f.per_feature.numel()})",
            f"  factor h = {f.h:.4g} (h1 = {f.h1:.4g}, h2 = {f.h2:.4g})",
        ]
        if self.radius is not None:
            lines.append(
                f"  radius ||delta||_2: {_range(self.radius)}, Lipschitz g = {self.lipschitz:.4g}"
            )
        lines.append(f"  max_S |v(S) - v'(S)| <= {_range(self.game_gap)}")
        lines.append(f"  ||phi - phi'||_2 <= {_range(self.l2)}")
        if self.measured is not None:
            tight = self.tightness
            assert tight is not None
            lines.append(
                f"  measured: {_range(self.measured)}, tightness {_range(tight)}, "
                f"{'within' if self.holds else 'OUTSIDE'} the bound"
            )
        return "\n".join(lines)


def _range(t: Tensor) -> str:
    lo, hi = float(t.min()), float(t.max())
    return f"{lo:.4g}" if lo == hi else f"{lo:.4g} .. {hi:.4g}"


def feature_counts(inputs: Tensor | tuple[Tensor, ...], feature_mask: Any = None) -> Tensor:
    """The number of features each example has under ``feature_mask`` (as the
    explainers count them: distinct ids per example), int64 [B]: the ``d`` to give
    :func:`input_bound` / :func:`model_bound` when per-example masks give examples
    different features (sampled estimators are then drawn per example over its own d).

    Example:
        >>> import torch
        >>> mask = torch.tensor([[0, 0, 1], [0, 1, 2]])
        >>> feature_counts(torch.ones(2, 3), mask).tolist()
        [2, 3]
    """
    xs, _ = format_inputs(inputs)
    groups, ids = format_feature_mask(feature_mask, xs)
    B, d = xs[0].shape[0], int(ids.numel())
    present = feature_sets(groups, B, d)
    if present is None:
        return torch.full((B,), d, dtype=torch.int64)
    return present.sum(1).to(torch.int64).cpu()


def _counts(d: Any) -> Tensor:
    """``d``: an int, or one count per example (int64 [n], each >= 1)."""
    if isinstance(d, Tensor):
        if d.dtype.is_floating_point or d.dtype == torch.bool or d.dim() != 1 or not d.numel():
            raise ValueError(f"d: expected an int or an int tensor [n] of feature counts, got {d}")
        t = d.to(device="cpu", dtype=torch.int64)
    elif isinstance(d, (list, tuple)):
        t = torch.tensor([validation.positive_int("d", x) for x in d], dtype=torch.int64)
    else:
        t = torch.tensor([validation.positive_int("d", d)], dtype=torch.int64)
    if not t.numel() or bool((t < 1).any()):
        raise ValueError(f"d: feature counts must be >= 1, got {t.tolist()}")
    return t


def _bound(
    perturbation: str,
    method: Any,
    d: Any,
    gap: Tensor,
    removal: str,
    n_samples: int | None,
    seed: int | None,
    weights: Sequence[float] | Tensor | None,
    antithetic: bool,
    **extra: Any,
) -> RobustnessBound:
    counts = _counts(d)
    name, _ = resolve_method(method, n_samples)
    factors = {
        int(k): attribution_factor(
            method, int(k), n_samples=n_samples, seed=seed, weights=weights, antithetic=antithetic
        )
        for k in counts.unique()
    }
    n = max(counts.numel(), gap.numel())
    if 1 not in (counts.numel(), gap.numel()) and counts.numel() != gap.numel():
        raise ValueError(
            f"d: {counts.numel()} feature counts for {gap.numel()} radii / gaps: give one of "
            "each per example, or one for all"
        )
    if counts.numel() == 1:
        factor = factors[int(counts[0])]
        return RobustnessBound(
            perturbation,
            name,
            removal,
            factor,
            gap,
            factor.h * gap,
            gap[:, None] * factor.per_feature[None],
            **extra,
        )
    # one factor per example (its own d): the per-feature bound of each example is its
    # largest per-feature factor, valid for whichever of its features a column holds
    counts = counts.expand(n)
    gap = gap.expand(n).clone()
    h = torch.tensor([factors[int(k)].h for k in counts], dtype=torch.float64)
    top = torch.tensor(
        [float(factors[int(k)].per_feature.max()) for k in counts], dtype=torch.float64
    )
    width = int(counts.max())
    worst = max(factors.values(), key=lambda f: f.h)
    if "radius" in extra and extra["radius"] is not None:
        extra["radius"] = extra["radius"].expand(n).clone()
    return RobustnessBound(
        perturbation,
        name,
        removal,
        worst,
        gap,
        h * gap,
        (top * gap)[:, None].expand(n, width).clone(),
        **extra,
    )


def input_bound(
    method: Any,
    d: int | Sequence[int] | Tensor,
    eps: float | Tensor,
    *,
    lipschitz: float,
    removal: Any = "baseline",
    output_bound: float | None = None,
    tv_lipschitz: float | None = None,
    n_samples: int | None = None,
    seed: int | None = None,
    weights: Sequence[float] | Tensor | None = None,
    antithetic: bool = True,
) -> RobustnessBound:
    """How far attributions can move when the input moves by ``||delta||_2 <= eps``.

    ``||phi(x) - phi(x + delta)||_2 <= g * h * eps`` and ``|phi_i - phi'_i| <=
    g * ||a_i||_1 * eps``, with g = L for baseline and marginal removal and
    g = L + 2 B M for conditional removal (f is L-Lipschitz in l2 with |f| <= B, and the
    conditional law of the removed features given the kept ones is M-Lipschitz in
    total variation). Sampled estimators are bounded for two runs with the same seed.
    For conditional removal the bound assumes the surrogate is the exact conditional
    expectation (as for Gaussian data); a learned surrogate needs its own Lipschitz
    constant in x_S, to be given as ``lipschitz`` with ``tv_lipschitz=0``.

    Args:
        method: a summary name, an estimator name or the explainer (see
            :func:`attribution_factor`).
        d: number of features (groups), or one count per example (int64 [n], e.g.
            :func:`feature_counts`) when per-example masks give examples different
            features.
        eps: radius ||delta||_2 >= 0: a number or a tensor [n] (one bound per radius).
        lipschitz: L, an upper bound on the model's Lipschitz constant (e.g.
            :func:`lipschitz_upper`); an empirical lower estimate gives no guarantee.
        removal: "baseline" (default), "marginal", "conditional", or the removal object.
        output_bound: B = sup |f|; needed for conditional removal.
        tv_lipschitz: M; needed for conditional removal (0 for independent features).
        n_samples, seed, weights, antithetic: as in :func:`attribution_factor`.

    Returns:
        :class:`RobustnessBound` with ``radius`` and ``lipschitz = g``.

    Example:
        >>> b = input_bound("shapley", 4, 0.5, lipschitz=3.0)
        >>> round(b.factor.h1, 4), round(b.factor.h2, 4)  # h1 = 2 sqrt(4)
        (4.0, 2.8284)
        >>> round(float(b.l2[0]), 4)  # 3 * h * 0.5
        4.2426
    """
    kind = removal_kind(removal)
    radius = _nonnegative("eps", eps)
    L = _scalar("lipschitz", lipschitz)
    g = L
    if kind == "conditional":
        if output_bound is None or tv_lipschitz is None:
            raise ValueError(
                "tv_lipschitz, output_bound: conditional removal's bound is (L + 2 B M) h eps; "
                "give B = sup |f| (output_bound=) and M (tv_lipschitz=, the total-variation "
                "Lipschitz constant of the conditional law; 0 for independent features)"
            )
        g = L + 2.0 * _scalar("output_bound", output_bound) * _scalar("tv_lipschitz", tv_lipschitz)
    elif tv_lipschitz is not None or output_bound is not None:
        name = "tv_lipschitz" if tv_lipschitz is not None else "output_bound"
        raise ValueError(f"{name}: only conditional removal uses it, not {kind} removal")
    return _bound(
        "input",
        method,
        d,
        g * radius,
        kind,
        n_samples,
        seed,
        weights,
        antithetic,
        radius=radius,
        lipschitz=g,
    )


def model_bound(
    method: Any,
    d: int | Sequence[int] | Tensor,
    model_gap: float | Tensor,
    *,
    removal: Any = "baseline",
    inside_prob: float | None = None,
    output_bound: float | None = None,
    n_samples: int | None = None,
    seed: int | None = None,
    weights: Sequence[float] | Tensor | None = None,
    antithetic: bool = True,
) -> RobustnessBound:
    """How far attributions can move when the model f is replaced by f'.

    ``||phi(f) - phi(f')||_2 <= h * gap`` and ``|phi_i - phi'_i| <= ||a_i||_1 * gap``,
    with gap >= max_S |v(S) - v'(S)|: ``model_gap`` = sup |f - f'| over the points the
    removal queries (:func:`model_gap` computes it for baseline and marginal removal).
    For conditional removal the queried points are the data's support: give sup |f - f'|
    over a set X' and ``inside_prob`` = Q, a lower bound, over the coalitions S and the
    explained inputs x, of the probability that the imputed point (x_S, X_{not S}),
    X_{not S} ~ p(. | x_S), lies in X'; then gap = Q model_gap + 2 B (1 - Q) (Q = 1 when
    X' holds the whole support). The unconditional P(X in X') is not enough: for S = N
    the point is x itself (experiments/bounds_synthetic.py shows a case where it fails).

    Args:
        method: as in :func:`attribution_factor`.
        d: number of features, or one count per example (see :func:`input_bound`).
        model_gap: number or tensor [n] (e.g. one per example), >= 0.
        removal: "baseline" (default), "marginal", "conditional" or the removal object.
        inside_prob: Q in [0, 1], conditional removal only (default 1); the smallest
            probability over coalitions and inputs, as above.
        output_bound: B = sup |f|, |f'| (needed when Q < 1).
        n_samples, seed, weights, antithetic: as in :func:`attribution_factor`.

    Example:
        >>> round(float(model_bound("banzhaf", 6, 0.1).l2[0]), 6)  # h = 2 for Banzhaf
        0.2
    """
    kind = removal_kind(removal)
    gap = _nonnegative("model_gap", model_gap)
    if output_bound is not None and kind != "conditional":
        raise ValueError(f"output_bound: only conditional removal uses it, not {kind} removal")
    if inside_prob is not None:
        if kind != "conditional":
            raise ValueError(f"inside_prob: only conditional removal uses it, not {kind} removal")
        q = _scalar("inside_prob", inside_prob)
        if q > 1.0:
            raise ValueError(f"inside_prob: a probability in [0, 1], got {q:g}")
        if q < 1.0:
            if output_bound is None:
                raise ValueError("output_bound: with inside_prob < 1 the bound needs B = sup |f|")
            gap = q * gap + 2.0 * _scalar("output_bound", output_bound) * (1.0 - q)
    return _bound("model", method, d, gap, kind, n_samples, seed, weights, antithetic)


@with_row_progress("model_gap")
def model_gap(
    model: Callable[..., Any],
    model_prime: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    *,
    coalitions: Tensor | None = None,
    baselines: Any = None,
    removal: Any = None,
    target: Any = None,
    additional_forward_args: Any = None,
    feature_mask: Any = None,
    show_progress: bool | None = None,
) -> Tensor:
    """sup |f - f'| over the points baseline or marginal removal queries: the hybrids
    (x_S, b_{not S}) of every coalition S, with b the baselines or each background row.

    Args:
        model, model_prime: f and f' (same inputs, same outputs).
        inputs: [B, *F] (or a tuple), the explained examples.
        coalitions: bool [n, d], the coalitions the explainer evaluates
            (``estimator_matrix(...).coalitions``); None = all 2^d (d <= 20).
        baselines, removal, target, additional_forward_args, feature_mask: as given to
            the explainer (removal: BaselineRemoval (default) or MarginalRemoval).
        show_progress: None (default): a progress bar counting model rows appears once the
            call is projected to take more than about 2 s; True: from the start; False:
            never. One bar per call: calls made inside it count in it.

    Returns:
        float64 [B]: one gap per example, for :func:`model_bound`.

    Example:
        >>> import torch
        >>> f = lambda x: x.sum(1)
        >>> g = lambda x: x.sum(1) + 0.1 * x[:, 0]
        >>> x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
        >>> model_gap(f, g, x).round(decimals=12).tolist()  # 0.1 |x_0| at S = {0}, {0, 1}
        [0.1]
    """
    kind = removal_kind(removal)
    if kind == "conditional":
        raise ValueError(
            "removal: conditional removal queries the data distribution, not a finite set of "
            "points; measure sup |f - f'| on data (or a set X' and its probability Q) and "
            "pass it to model_bound(..., removal='conditional', inside_prob=Q)"
        )
    xs, is_tuple = format_inputs(inputs)
    rows: list[Any] = [baselines]
    if isinstance(removal, MarginalRemoval):  # each background row as the baselines
        background, _ = format_inputs(removal.background, "background")
        rows = [tuple(z[k : k + 1] for z in background) for k in range(background[0].shape[0])]
        rows = rows if is_tuple else [r[0] for r in rows]
    elif kind == "marginal":
        raise ValueError("removal: give the MarginalRemoval(background) itself, not its name")

    def diff(*args: Any) -> Tensor:
        return model(*args) - model_prime(*args)

    gap = torch.zeros(xs[0].shape[0], dtype=torch.float64)
    for base in rows:
        setup = Setup(
            diff,
            inputs,
            baselines=base,
            target=target,
            additional_forward_args=additional_forward_args,
            feature_mask=feature_mask,
        )
        masks = coalitions
        if masks is None:
            if setup.d > MAX_MATRIX_FEATURES:
                raise ValueError(
                    f"coalitions: all 2^d coalitions for d = {setup.d} are too many; give the "
                    "coalitions the explainer evaluates (estimator_matrix(...).coalitions)"
                )
            masks = ops.enumerate_coalitions(setup.d)
        if masks.dim() != 2 or masks.shape[1] != setup.d or masks.dtype != torch.bool:
            raise ValueError(f"coalitions: expected bool [n, {setup.d}], got {tuple(masks.shape)}")
        values = setup.game(masks.to(xs[0].device))  # [B, n, T]
        gap = torch.maximum(gap, values.abs().amax(dim=(1, 2)).to(torch.float64).cpu())
    return gap


@with_row_progress("attribution_change")
def attribution_change(
    explainer: Any,
    inputs: Tensor | tuple[Tensor, ...],
    inputs_prime: Tensor | tuple[Tensor, ...] | None = None,
    *,
    explainer_prime: Any = None,
    removal_prime: Any = None,
    feature_mask: Any = None,
    show_progress: bool | None = None,
    **attribute_kwargs: Any,
) -> tuple[Tensor, Tensor]:
    """The measured change of attributions, with common random numbers: the same
    ``attribute`` arguments (``seed=`` included) for both runs.

    Either the inputs move (``inputs_prime``) or the model does (``explainer_prime``,
    the same explainer class over f'), not both.

    Args:
        explainer: the explainer (over f).
        inputs: [B, *F] (or a tuple).
        inputs_prime: the moved inputs, shaped like ``inputs``.
        explainer_prime: the explainer over f', for a model change.
        removal_prime: the second run's ``removal=`` when it differs from the first's (a
            model change under conditional removal: the surrogate of f'); default: the
            same removal for both runs.
        feature_mask: as given to ``attribute`` (features = its groups).
        **attribute_kwargs: the rest of ``attribute``'s arguments (one target); a
            sampling explainer needs ``seed=``.
        show_progress: None (default): a progress bar counting model rows appears once the
            call is projected to take more than about 2 s; True: from the start; False:
            never. One bar per call: calls made inside it count in it.

    Returns:
        (l2 [B], per_feature [B, d]) float64: ||phi - phi'||_2 and |phi_i - phi'_i|.

    Example:
        >>> import torch
        >>> from xattr import ExactShapley
        >>> ex = ExactShapley(lambda x: x.prod(1))
        >>> l2, per = attribution_change(ex, torch.ones(1, 2), torch.tensor([[1.0, 2.0]]))
        >>> per.tolist()
        [[0.5, 0.5]]
    """
    if (inputs_prime is None) == (explainer_prime is None):
        raise ValueError(
            "inputs_prime, explainer_prime: give exactly one (the input or the model moves)"
        )
    if explainer_prime is not None and type(explainer_prime) is not type(explainer):
        raise ValueError(
            f"explainer_prime: expected the same explainer class as explainer "
            f"({type(explainer).__name__}) over f', got {type(explainer_prime).__name__}"
        )
    sampled = _samples(explainer, attribute_kwargs.get("n_samples"))
    if sampled and attribute_kwargs.get("seed") is None:
        raise ValueError(
            f"seed: {type(explainer).__name__} samples; give seed= so that both runs share "
            "their draws (common random numbers)"
        )
    xs, _ = format_inputs(inputs)
    if xs[0].shape[0] == 0:
        raise ValueError("inputs: an empty batch (0 examples): there is no change to measure")
    groups, ids = format_feature_mask(feature_mask, xs)
    d = int(ids.numel())
    kw = dict(attribute_kwargs)
    if feature_mask is not None:
        kw["feature_mask"] = feature_mask
    other = explainer if explainer_prime is None else explainer_prime
    moved = inputs if inputs_prime is None else inputs_prime
    scores = []
    kw_prime = kw if removal_prime is None else {**kw, "removal": removal_prime}
    for ex, x, args in ((explainer, inputs, kw), (other, moved, kw_prime)):
        out = ex.attribute(x, **args)
        attrs, _ = format_inputs(out, "attributions")
        if any(tuple(a.shape) != tuple(z.shape) for a, z in zip(attrs, xs)):
            raise ValueError(
                "target: attribution_change compares one target at a time; the explainer "
                "returned attributions of another shape than the inputs"
            )
        scores.append(group_scores(attrs, groups, d, "group"))
    per = (scores[0] - scores[1]).abs()
    return per.square().sum(1).sqrt(), per


def _samples(explainer: Any, n_samples: int | None) -> bool:
    """Whether ``explainer.attribute`` draws at random with these ``n_samples``."""
    if "seed" not in inspect.signature(explainer.attribute).parameters:
        return False
    try:
        return resolve_method(explainer, n_samples)[0] not in SUMMARIES
    except ValueError:  # an explainer the bounds do not cover, with a seed: it samples
        return True


__all__ = [
    "REMOVALS",
    "RobustnessBound",
    "attribution_change",
    "feature_counts",
    "input_bound",
    "model_bound",
    "model_gap",
    "removal_kind",
]
