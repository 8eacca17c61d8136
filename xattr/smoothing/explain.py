"""Certified explanations from any attribution method (MuS, Xue, Alur & Wong, NeurIPS 2023).

An attribution method ranks the d features of the smoothed model g (a feature's score
is the value its elements all carry in a perturbation explainer's output, the sum of
its elements' attributions in a per-element map: ``layout``, see
:func:`xattr.metrics.faithfulness.feature_scores`); the binary explanation ``alpha`` keeps the
top-ranked ones. :func:`explain_and_certify` keeps a fixed fraction and certifies that
alpha; :func:`min_stable_fraction` finds the fewest top-ranked features whose alpha is
stable: consistent (argmax g(x, alpha) = argmax g(x, 1)) with incremental and
decremental certified radii of at least r.

The paper explains g itself: build the explainer on the :class:`MuS` object (after
``.eval()``), e.g. ``xattr.FeatureAblation(smoothed)`` with ``feature_mask`` equal to
the smoothed model's features. An explainer of the base model h (or precomputed
attributions) is accepted as well; the certificates are always those of g, only the
ranking changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Union

import torch
from torch import Tensor

from xattr._core.budget import get_memory_budget, parse_bytes
from xattr._core.features import check_layout, feature_ranks, feature_scores
from xattr._core.inputs import TensorOrTuple
from xattr._core.progress import row_progress
from xattr._core.targets import TargetType
from xattr.smoothing.certify import Certificate, certified_radius, warn_if_relabelled
from xattr.smoothing.mus import Features, MuS

METHODS = ("scan", "binary")
# top_fraction * d within this relative slack of an integer counts as that integer, so
# that 0.3 * 10 = 3.0000000000000004 keeps 3 features, not 4.
FRACTION_SLACK = 1e-9

ExplainerOrAttributions = Union[Any, Callable[..., TensorOrTuple], TensorOrTuple]


class ExplainedCertificate(NamedTuple):
    """What :func:`explain_and_certify` returns.

    Attributes:
        attributions: what the explainer returned (shaped like x), or the attributions
            given.
        alpha: [B, d] bool on x's device, the top-k features of each example.
        certificate: the :class:`~xattr.smoothing.Certificate` of alpha, as
            ``certify(smoothed, x, alpha)`` gives it.
    """

    attributions: Any
    alpha: Tensor
    certificate: Certificate


class MinStable(NamedTuple):
    """What :func:`min_stable_fraction` returns, per example.

    Attributes:
        k: [B] int64, the number of top-ranked features in the stable explanation
            found, in 1..d; d + 1 when no explanation is stable (exactly when the full
            input's certified radius is below r: alpha = 1, k = d, is stable otherwise).
        fraction: [B] float64, k / d (above 1 for the sentinel d + 1).
        certificate: the :class:`~xattr.smoothing.Certificate` of the top-k alpha
            (of alpha = 1, k = d, for the sentinel).
    """

    k: Tensor
    fraction: Tensor
    certificate: Certificate


# ------------------------------------------------------------------ checks
def _check_smoothed(smoothed: Any) -> MuS:
    if not isinstance(smoothed, MuS):
        raise TypeError(f"smoothed: expected a MuS classifier, got {type(smoothed).__name__}")
    return smoothed


def _check_x(x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a tensor [B, *F], got {type(x).__name__}")
    if x.dim() < 1:
        raise ValueError("x: expected a batch dimension, got a scalar")
    return x


def _top_count(top_fraction: Any, d: int) -> int:
    """k = ceil(top_fraction * d) (within FRACTION_SLACK), at least 1."""
    if isinstance(top_fraction, bool) or not isinstance(top_fraction, (int, float)):
        raise TypeError(f"top_fraction: expected a number in (0, 1], got {type(top_fraction)}")
    if not 0 < top_fraction <= 1:  # NaN fails too
        raise ValueError(f"top_fraction: expected a number in (0, 1], got {top_fraction}")
    return max(1, math.ceil(top_fraction * d * (1 - FRACTION_SLACK)))


def _check_r(r: Any) -> int:
    if isinstance(r, bool) or not isinstance(r, int):
        raise TypeError(f"r: expected an int >= 0, got {type(r).__name__}")
    if r < 0:
        raise ValueError(f"r: expected an int >= 0, got {r}")
    return r


# ------------------------------------------------------------------ parts
def _evaluate(
    smoothed: MuS,
    feats: Features,
    x: Tensor,
    rows: Tensor | None,
    alphas: Tensor | None,
    max_rows: int | None = None,
    show_progress: bool | None = None,
) -> Tensor:
    """Scores of g read as :func:`certify` reads them (vote counts when voting, else
    probabilities), on the CPU: [n, C] for row i = g(x[rows[i]], alphas[i]).

    The rows are evaluated with the features of the whole batch (so that per-example
    feature masks and segmenters see the examples they were made for), at most
    ``max_rows`` rows per call of ``smoothed.counts``.
    """
    groups = feats.groups
    if rows is not None:
        x = x.index_select(0, rows.to(x.device))
        groups = groups if groups.shape[0] == 1 else groups.index_select(0, rows.to(groups.device))
    n = x.shape[0]
    step = n if max_rows is None else max(1, max_rows)
    parts = []
    with torch.no_grad():
        for a in range(0, n, step):
            b = min(n, a + step)
            ids = groups if groups.shape[0] == 1 else groups[a:b]
            alpha = None if alphas is None else alphas[a:b]
            counts = smoothed.counts(
                x[a:b], alpha, features=feats._replace(groups=ids), show_progress=show_progress
            )
            parts.append((counts if smoothed.voting else counts / smoothed.q).cpu())
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _radius(smoothed: MuS, scores: Tensor) -> tuple:
    return certified_radius(scores, smoothed.level, smoothed.q, smoothed.voting)


def _is_attributions(obj: Any) -> bool:
    if isinstance(obj, Tensor):
        return True
    return isinstance(obj, (tuple, list)) and bool(obj) and all(isinstance(t, Tensor) for t in obj)


def _check_explainer(obj: Any, target: Any, kwargs: dict, name: str) -> None:
    """Before any evaluation: an explainer, a callable, or attributions without
    explainer arguments."""
    if _is_attributions(obj):
        if kwargs:
            raise TypeError(
                f"{name}: attributions were given, so the keyword arguments {sorted(kwargs)} "
                "(for an explainer's attribute) have no use"
            )
        if target is not None:
            raise ValueError(f"target: only used to call an explainer; {name} are attributions")
    elif not (callable(getattr(obj, "attribute", None)) or callable(obj)):
        raise TypeError(
            f"{name}: expected an explainer (with .attribute), a callable explainer(x, target) "
            f"or attributions shaped like x, got {type(obj).__name__}"
        )


def _attributions(obj: Any, x: Tensor, target: Any, kwargs: dict) -> Any:
    """Attributions from an explainer (``.attribute``) or a callable, or the given
    ones. An xattr explainer's rows count for the caller's progress bar."""
    if _is_attributions(obj):
        return obj
    attribute = getattr(obj, "attribute", None)
    if callable(attribute):
        return attribute(x, target=target, **kwargs)
    return obj(x, target, **kwargs)


def _ranks(attributions: Any, x: Tensor, feats: Features, layout: str) -> Tensor:
    """[B, d] int64 on the CPU: the place of every feature in the order of decreasing
    score (0 = highest; equal scores: lower feature index first)."""
    scores = feature_scores(attributions, (x,), (feats.groups,), feats.d, layout).cpu()
    return feature_ranks(scores)


def _full(smoothed: MuS, x: Tensor, feats: Features, show_progress: bool | None) -> tuple:
    """(scores of g(x, 1), their certified radius); warns when g's labels are not the
    base model's."""
    full_scores = _evaluate(smoothed, feats, x, None, None, show_progress=show_progress)
    full = _radius(smoothed, full_scores)
    warn_if_relabelled(smoothed, x, full[0], feats, show_progress, stacklevel=5)
    return full_scores, full


# ------------------------------------------------------------------ public
def explain_and_certify(
    smoothed: MuS,
    explainer: ExplainerOrAttributions,
    x: Tensor,
    top_fraction: float = 0.25,
    target: TargetType = None,
    *,
    layout: str = "auto",
    show_progress: bool | None = None,
    **attribute_kwargs: Any,
) -> ExplainedCertificate:
    """Turns any xattr attribution into the top-k alpha and certifies it.

    Every feature of the smoothed model (``smoothed.features(x)``) gets a score from
    the attributions (``layout``); alpha keeps, per example, the k = ceil(top_fraction *
    d) highest-scoring features (equal scores: lower feature index first), and is
    certified as by ``certify(smoothed, x, alpha)`` (which warns when g's label is not
    the base model's).

    Cost, in forward rows of the base model h: 2 B q for g(x, 1) and g(x, alpha) (2 B
    when lambda = 1), B for h's labels (none when lambda = 1), and the explainer's: an
    explainer of g pays q rows per row it evaluates (KernelShap, n_samples q per
    example; IntegratedGradients, n_steps q per example, each with a backward pass).

    Args:
        smoothed: the :class:`MuS` classifier g.
        explainer: an object with ``.attribute(x, target=..., **attribute_kwargs)`` (an
            xattr or Captum explainer; build it on ``smoothed`` to explain g as the paper
            does, or on the base model to explain h), a callable ``explainer(x, target,
            **attribute_kwargs)``, or attributions shaped like x (then neither target
            nor attribute_kwargs may be given).
        x: [B, *F] inputs.
        top_fraction: the fraction of features kept, in (0, 1] (default 0.25); a
            product top_fraction * d within 1e-9 of an integer counts as that integer.
        target: the class the explainer explains; default the smoothed prediction
            argmax g(x, 1) per example (a [B] int64 tensor). Certificates are always
            about argmax g(x, 1), whatever the target.
        show_progress: None (default): a progress bar counting model rows appears once the
            call is projected to take more than about 2 s; True: from the start; False:
            never. One bar per call: calls made inside it count in it. The explainer's rows
            count in the same bar. Default:
            the MuS's ``show_progress``.
        **attribute_kwargs: passed to the explainer (e.g. ``feature_mask``,
            ``n_samples``).

    Returns:
        :class:`ExplainedCertificate` (attributions, alpha [B, d] bool, certificate).

    Example:
        >>> import torch, xattr
        >>> from xattr.smoothing import MuS, columns
        >>> from xattr.smoothing.explain import explain_and_certify
        >>> w = torch.arange(1.0, 9.0)  # class 0 while the weighted sum exceeds 9
        >>> h = lambda t: torch.stack([t @ w, torch.full_like(t[:, 0], 9.0)], 1)
        >>> g = MuS(h, 1 / 2, q=16, feature_mask=columns(), output="logits")
        >>> out = explain_and_certify(g, xattr.FeatureAblation(g), torch.ones(2, 8),
        ...                           top_fraction=0.5)
        >>> out.alpha.sum(1).tolist(), out.certificate.consistent.tolist()
        ([4, 4], [True, True])
    """
    _check_smoothed(smoothed)
    _check_x(x)
    _check_explainer(explainer, target, attribute_kwargs, "explainer")
    check_layout(layout)
    show = smoothed.shows_progress(show_progress)
    with row_progress(None, show, "MuS explain_and_certify"):
        feats = smoothed.features(x)
        k = _top_count(top_fraction, feats.d)
        _, full = _full(smoothed, x, feats, show)
        tgt = full[0].to(x.device) if target is None else target
        attributions = _attributions(explainer, x, tgt, attribute_kwargs)
        alpha = (_ranks(attributions, x, feats, layout) < k).to(x.device)
        at = _radius(smoothed, _evaluate(smoothed, feats, x, None, alpha, show_progress=show))
        return ExplainedCertificate(attributions, alpha, Certificate.at(at, full))


def min_stable_fraction(
    smoothed: MuS,
    explainer_or_attributions: ExplainerOrAttributions,
    x: Tensor,
    r: int = 1,
    target: TargetType = None,
    method: str = "scan",
    *,
    memory_budget: int | str | None = None,
    show_progress: bool | None = None,
    layout: str = "auto",
    **attribute_kwargs: Any,
) -> MinStable:
    """The smallest number k of top-ranked features whose alpha is stable with radius r.

    Features are ranked as in :func:`explain_and_certify`; the top-k alpha is stable
    when it is consistent and both certified integer radii (incremental at alpha,
    decremental at alpha = 1) are at least r. The decremental radius does not depend
    on k, and alpha = 1 (k = d) is stable exactly when the full input's radius is at
    least r; otherwise no k is (sentinel k = d + 1). Warns when g's label is not the
    base model's (the certificates are about g's).

    Cost, in forward rows of the base model h (B examples, d features, q rows of MuS
    noise; q becomes 1 when lambda = 1): B q for g(x, 1), B for h's labels (none when
    lambda = 1), the explainer's own (an explainer of g pays q rows per row it
    evaluates: KernelShap n_samples q per example, IntegratedGradients n_steps q, each
    with a backward pass), then the search: "scan" evaluates g at k = 1, 2, ... until
    each example's answer, at most B q (d - 1) rows (one 224 x 224 photo in 196 patches
    with q = 64: up to 12,480 rows, minutes for an ImageNet CNN on a CPU); "binary"
    about B q ceil(log2 d) (512 for that photo).

    Args:
        smoothed: the :class:`MuS` classifier g.
        explainer_or_attributions: an explainer, a callable or attributions shaped like
            x, as ``explainer`` of :func:`explain_and_certify`.
        x: [B, *F] inputs.
        r: the radius, an int >= 0 (default 1).
        target: the class the explainer explains; default argmax g(x, 1) per example.
        method: "scan" (default): exact; stability is not monotone in k, so every
            k = 1, 2, ... is evaluated upwards (all examples and a chunk of k in one
            batched evaluation of g, examples leaving once they have their k).
            "binary": the paper's binary search over k in [1, d] (about log2 d
            evaluations); its k is always stable but approximate: it may miss the
            smallest stable k when stability is not monotone in k.
        memory_budget: bytes (or "512MB") for one batched evaluation of g (masks,
            perturbed inputs and outputs of q rows per (example, k)); default the
            smoothed model's budget, else the global one. Not passed to the explainer.
        show_progress: None (default): a progress bar counting model rows appears once the
            call is projected to take more than about 2 s; True: from the start; False:
            never. One bar per call: calls made inside it count in it. The bar counts g(x,
            1), h's labels, the explainer's
            rows and the search (its total: the search's upper bound until it ends).
            Default: the MuS's ``show_progress``.
        layout: as :func:`explain_and_certify`'s (not passed to the explainer).
        **attribute_kwargs: passed to the explainer.

    Returns:
        :class:`MinStable` (k [B] int64 in 1..d or d + 1, fraction [B] = k / d, the
        certificate at that k).

    Example:
        >>> import torch
        >>> from xattr.smoothing import MuS
        >>> from xattr.smoothing.explain import min_stable_fraction
        >>> model = lambda t: torch.stack([t.sum(1), 3 - t.sum(1)], 1)  # class 0 if > 1.5
        >>> g = MuS(model, 1.0, q=1, output="logits")
        >>> ranking = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
        >>> m = min_stable_fraction(g, ranking, torch.ones(1, 4), r=0)
        >>> m.k.tolist(), m.fraction.tolist(), m.certificate.consistent.tolist()
        ([2], [0.5], [True])
    """
    _check_smoothed(smoothed)
    _check_x(x)
    r = _check_r(r)
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    show = smoothed.shows_progress(show_progress)
    name = "explainer_or_attributions"
    _check_explainer(explainer_or_attributions, target, attribute_kwargs, name)
    check_layout(layout)
    if memory_budget is None:
        memory_budget = smoothed.memory_budget
    budget = get_memory_budget() if memory_budget is None else parse_bytes(memory_budget)
    with row_progress(None, show, "MuS min_stable_fraction"):
        feats = smoothed.features(x)
        groups, d = feats.groups, feats.d
        full_scores, full = _full(smoothed, x, feats, show)
        tgt = full[0].to(x.device) if target is None else target
        attributions = _attributions(explainer_or_attributions, x, tgt, attribute_kwargs)
        pos = _ranks(attributions, x, feats, layout)  # [B, d] on the CPU
        B, C = x.shape[0], full_scores.shape[1]
        # bytes per (example, k) evaluated: the repeated and the perturbed input, its
        # feature ids when per example, and q rows of masks and (one-hot) outputs
        x_bytes = x[0].numel() * x.element_size()
        g_bytes = groups[0].numel() * groups.element_size() if groups.shape[0] > 1 else 0
        row_bytes = 2 * x_bytes + g_bytes + d + smoothed.q * (d + 16 * C)
        max_rows = max(1, budget // row_bytes)

        found = full[3] >= r  # alpha = 1 is stable: some k is
        k = torch.where(found, d, d + 1).to(torch.int64)
        best = full_scores.clone()  # the scores at each example's answer

        def stable(scores: Tensor, rows: Tensor) -> Tensor:
            label, _, _, radius = _radius(smoothed, scores)
            return (label == full[0][rows]) & (radius >= r)  # decremental >= r already

        def evaluate(rows: Tensor, alphas: Tensor) -> Tensor:
            return _evaluate(smoothed, feats, x, rows, alphas, max_rows)

        if method == "scan":
            todo = found.nonzero().squeeze(1)
            # at most every k < d for every example that has one: an upper bound
            search = row_progress(todo.numel() * (d - 1) * smoothed.g_rows(1), show, "")
            with search:
                k0 = 1
                while todo.numel() and k0 < d:
                    n = todo.numel()
                    K = min(d - k0, max(1, max_rows // n))
                    ks = torch.arange(k0, k0 + K)
                    alphas = pos[todo].unsqueeze(1) < ks.view(1, K, 1)  # [n, K, d]
                    rows = todo.repeat_interleave(K)  # example-major
                    scores = evaluate(rows, alphas.reshape(n * K, d))
                    ok = stable(scores, rows).view(n, K)
                    hit = ok.any(1)
                    first = ok.to(torch.int8).argmax(1)  # the first stable k of the chunk
                    sel = hit.nonzero().squeeze(1)
                    k[todo[sel]] = ks[first[sel]]
                    best[todo[sel]] = scores.view(n, K, C)[sel, first[sel]]
                    todo = todo[~hit]
                    k0 += K
        else:
            lo, hi = torch.ones(B, dtype=torch.int64), k.clone()  # hi: stable (or no k is)
            todo = found & (lo < hi)
            # at most ceil(log2 d) + 1 steps per example: an upper bound
            steps = math.ceil(math.log2(d)) + 1 if d else 0
            search = row_progress(int(todo.sum()) * steps * smoothed.g_rows(1), show, "")
            with search:
                while bool(todo.any()):
                    idx = todo.nonzero().squeeze(1)
                    mid = torch.div(lo[idx] + hi[idx], 2, rounding_mode="floor")
                    scores = evaluate(idx, pos[idx] < mid.unsqueeze(1))
                    ok = stable(scores, idx)
                    hi[idx[ok]] = mid[ok]
                    best[idx[ok]] = scores[ok]
                    lo[idx[~ok]] = mid[~ok] + 1
                    todo = found & (lo < hi)
            k = torch.where(found, hi, k)
        certificate = Certificate.at(_radius(smoothed, best), full)
        return MinStable(k, k.to(torch.float64) / d, certificate)
