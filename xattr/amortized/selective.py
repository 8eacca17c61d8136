"""Selective explanations (Paes, Wei, Calmon, NeurIPS 2024): keep the amortized
explanation where it is reliable, refine it with a small Monte Carlo explanation where
it is not.

An uncertainty score s(x) ranks inputs by how far the amortized explanation A(x) is
likely to be from a high-quality one HQ(x):

* ``"ensemble"`` (deep ensemble): k amortized explainers trained with different seeds
  (:func:`train_ensemble`); A(x) is their mean and
  s(x) = (1/d) sum_i Var_k(A^k(x)_i), the population variance over the k members
  (divided by k, not k - 1).
* ``"learned"``: a small MLP on (x, A(x)) trained by
  :meth:`SelectiveExplainer.fit_uncertainty` to predict ||A(x) - HQ(x)||^2 / d
  against high-quality explanations given for its training inputs.

:meth:`SelectiveExplainer.calibrate` sets t_alpha, the alpha-quantile of s on a
calibration split, so that a fraction alpha (the coverage) of inputs keeps A(x)
(s(x) <= t_alpha); alpha = 1 refines none, alpha = 0 refines every input. The others
get the explanation with initial guess

    SE(x) = lam A(x) + (1 - lam) MC_n(x),

MC_n the fallback's explanation (KernelShap or ShapleyValueSampling with ``n_samples =
n_fallback_samples`` at a fixed seed), lam fitted per uncertainty bin (quantiles of s
above t_alpha on the calibration split) in closed form, the least-squares weight

    lam = sum <HQ - MC, A - MC> / sum ||A - MC||^2, clipped to [0, 1].

A and MC_n are both efficient (sum_i phi_i = v(N) - v(empty)), so SE is too.

``combine="prior"`` is the second refinement: A(x) becomes the prior of KernelShap's
regression. The fallback's n coalitions (exactly those ``KernelShap(n_samples=n)``
draws, the game evaluated once) are solved with a ridge toward A(x),

    SE(x) = argmin_phi sum_r w_r (v(S_r) - v(empty) - z_r . phi)^2
            + rho * scale * ||phi - A(x)||^2  subject to  sum(phi) = v(N) - v(empty)

(:func:`xattr.ops.kernel_shap_solve` with ``prior=``, ``rho=``; ``scale`` makes rho
dimensionless), rho per uncertainty bin chosen on the calibration split from a log grid
with 0 (``rho_grid``) by the least squared error to the high-quality explanations. rho = 0
is KernelShap's own estimate where its coalitions determine every direction (and A(x)
fills the directions they leave free); rho -> inf gives A(x) moved onto the efficiency
plane. Unlike lam, the shrinkage acts per direction: the directions the coalitions
measure well follow the data, the others stay near A(x).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from xattr._core import validation
from xattr._core.progress import count_rows, row_progress, with_row_progress
from xattr._core.targets import TargetType
from xattr.amortized.explainer import AmortizedExplainer
from xattr.explainers.kernel_shap import KernelShap, SampledGame
from xattr.explainers.shapley_value_sampling import ShapleyValueSampling

UNCERTAINTIES = ("ensemble", "learned")
FALLBACKS = (KernelShap, ShapleyValueSampling)
COMBINES = ("lam", "prior")
# combine="prior": 0 and a log grid of half decades from 1e-3 to 1e4 (rho is relative to
# the Gram's mean eigenvalue, so the same grid suits any game).
RHO_GRID = (0.0, *(10.0 ** (k / 2) for k in range(-6, 9)))
# Seeds of the learned head's Philox-free streams (torch.Generator): seed xor this.
HEAD_SEED_SALT = 0x4EAD_5E1E


class SelectiveResult(NamedTuple):
    """What :meth:`SelectiveExplainer.attribute` returns.

    Attributes:
        attributions: [B, *F] (Captum's layout, as the amortized explainer returns) or
            [B, d] per feature with ``return_input_shape=False``; float64.
        refined: bool [B], True where the input got lam A + (1 - lam) MC_n.
        uncertainty: s(x), float64 [B].
        lam: float64 [B], the weight on A(x): 1 for the inputs that kept A(x); NaN
            for the refined inputs of ``combine="prior"`` (no weight there).
        rho: None for ``combine="lam"``; for ``"prior"`` float64 [B], the ridge strength
            toward A(x) of each refined input's bin, +inf for the inputs that kept A(x)
            (its limit).
    """

    attributions: Tensor
    refined: Tensor
    uncertainty: Tensor
    lam: Tensor
    rho: Tensor | None = None


def _split_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """kwargs -> (AmortizedExplainer's, fit's), by their signatures."""
    init_names = set(inspect.signature(AmortizedExplainer.__init__).parameters) - {"self"}
    fit_names = set(inspect.signature(AmortizedExplainer.fit).parameters) - {"self"}
    for name in ("seed", "model", "x_train"):
        if name in kwargs:
            raise TypeError(f"{name}: given by train_ensemble itself (seeds= sets the seeds)")
    init = {k: v for k, v in kwargs.items() if k in init_names}
    fit = {k: v for k, v in kwargs.items() if k in fit_names}
    unknown = set(kwargs) - set(init) - set(fit)
    if unknown:
        raise TypeError(
            f"train_ensemble: unknown argument(s) {sorted(unknown)}; expected "
            "AmortizedExplainer's or AmortizedExplainer.fit's"
        )
    return init, fit


@with_row_progress("train_ensemble")
def train_ensemble(
    model: Callable[..., Any],
    x_train: Tensor,
    k: int = 5,
    seeds: Sequence[int] | None = None,
    *,
    explainer_net: str | Callable[[int], nn.Module] = "mlp",
    show_progress: bool | None = None,
    **kwargs: Any,
) -> list[AmortizedExplainer]:
    """k amortized explainers of ``model`` trained on ``x_train`` with different seeds
    (initial weights and training draws), the deep ensemble of the ``"ensemble"``
    uncertainty.

    Args:
        model: the explained model.
        x_train: training inputs [N, *F].
        k: the number of members (default 5, at least 2).
        seeds: one seed per member (default 0, 1, ..., k - 1): each member's
            ``AmortizedExplainer(seed=...)``, hence its initial weights and its
            ``fit`` seed.
        explainer_net: a built-in backbone name (default ``"mlp"``) or a function
            seed -> ``nn.Module`` that builds each member's network (one per member:
            members must not share weights).
        **kwargs: the arguments of :class:`AmortizedExplainer` (``input_shape`` is
            required) and of :meth:`AmortizedExplainer.fit`, split by name.
        show_progress: None (default): a progress bar counting model rows appears once the
            call is projected to take more than about 2 s; True: from the start; False:
            never. One bar per call: calls made inside it count in it.

    Returns:
        The k trained explainers.

    Example:
        >>> import torch
        >>> model = lambda x: x @ torch.tensor([1.0, -2.0, 0.5])
        >>> members = train_ensemble(model, torch.randn(32, 3), k=2, input_shape=(3,),
        ...                          hidden=(8,), epochs=1, show_progress=False)
        >>> [m.seed for m in members]
        [0, 1]
    """
    k = validation.positive_int("k", k)
    if k < 2:
        raise ValueError(f"k: an ensemble needs at least 2 members, got {k}")
    if seeds is None:
        seeds = list(range(k))
    if not isinstance(seeds, Sequence) or len(seeds) != k:
        raise ValueError(f"seeds: expected {k} seeds (one per member), got {seeds!r}")
    seeds = [validation.seed(s) for s in seeds]
    if len(set(seeds)) != k:
        raise ValueError(f"seeds: members need different seeds, got {seeds}")
    if not (isinstance(explainer_net, str) or callable(explainer_net)) or isinstance(
        explainer_net, nn.Module
    ):
        raise TypeError(
            "explainer_net: expected a backbone name or a function seed -> nn.Module "
            f"(one network per member), got {type(explainer_net).__name__}"
        )
    init, fit = _split_kwargs(kwargs)
    members = []
    for s in seeds:
        net = explainer_net if isinstance(explainer_net, str) else explainer_net(s)
        member = AmortizedExplainer(model, net, seed=s, **init)
        members.append(member.fit(x_train, **fit))
    return members


def _check_rho_grid(rho_grid: Any) -> Tensor:
    """rho_grid -> float64 [G], sorted, distinct, finite and >= 0."""
    if isinstance(rho_grid, (str, bytes)) or not isinstance(rho_grid, (Sequence, Tensor)):
        raise TypeError(f"rho_grid: expected a sequence of numbers >= 0, got {rho_grid!r}")
    values = []
    for r in list(rho_grid):
        r = float(r) if isinstance(r, Tensor) and r.numel() == 1 else r
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < math.inf:
            raise ValueError(f"rho_grid: expected finite numbers >= 0, got {r!r}")
        values.append(float(r))
    if not values:
        raise ValueError("rho_grid: expected at least one ridge strength")
    return torch.tensor(sorted(set(values)), dtype=torch.float64)


def _rows(target: TargetType, keep: Tensor) -> TargetType:
    """The target of the inputs where ``keep`` (bool [B]) holds: a per-example target
    (a list, or a 1-D tensor of B entries) is subset, any other is shared."""
    if isinstance(target, Tensor) and target.numel() > 1:
        target = target.tolist()
    if isinstance(target, list):
        return [t for t, k in zip(target, keep.tolist()) if k]
    return target


def _check_members(amortized: Any) -> list[AmortizedExplainer]:
    members = list(amortized) if isinstance(amortized, (list, tuple)) else [amortized]
    if not members:
        raise ValueError("amortized: expected an AmortizedExplainer or a non-empty list of them")
    for i, m in enumerate(members):
        if not isinstance(m, AmortizedExplainer):
            raise TypeError(
                f"amortized: expected AmortizedExplainer(s), member {i} is {type(m).__name__}"
            )
        if not m.fitted:
            raise ValueError(f"amortized: member {i} is not trained; call fit() or load() first")
    first = members[0]
    for i, m in enumerate(members[1:], 1):
        if m.d != first.d:
            raise ValueError(
                f"amortized: member {i} predicts d = {m.d} features, member 0 d = {first.d}"
            )
        if m.input_shape != first.input_shape or not torch.equal(
            m.feature_mask, first.feature_mask
        ):
            raise ValueError(f"amortized: member {i} groups its inputs differently from member 0")
        same_baselines = (
            m.baselines is not None
            and first.baselines is not None
            and m.baselines.shape == first.baselines.shape
            and torch.equal(m.baselines.to(first.baselines.dtype), first.baselines)
        )
        if (
            not same_baselines
            or type(m.removal) is not type(first.removal)
            or m.target != first.target
            or m.n_classes != first.n_classes
            or m.model is not first.model
        ):
            raise ValueError(
                f"amortized: member {i} explains another game than member 0 (model, "
                "baselines, removal, target or n_classes differ)"
            )
    return members


class SelectiveExplainer:
    """Amortized explanations, refined with a Monte Carlo explanation where their
    uncertainty is high (see the module docstring).

    Args:
        amortized: a trained :class:`AmortizedExplainer` or a list of them (an
            ensemble: the explanation is their mean). The game (model, baselines,
            removal, feature mask) is theirs, and the fallback explains the same one.
        fallback: a ``KernelShap`` or ``ShapleyValueSampling`` of the same model
            (keyword-only, as everything after ``amortized``; default
            ``KernelShap(model)``).
        n_fallback_samples: the fallback's ``n_samples`` (default 32: coalitions for
            KernelShap, permutations for ShapleyValueSampling).
        coverage: alpha in [0, 1], the fraction of inputs that keeps A(x) (default 0.8).
        uncertainty: ``"ensemble"`` (default; needs at least 2 members) or
            ``"learned"`` (needs :meth:`fit_uncertainty` before :meth:`calibrate`).
        n_bins: uncertainty bins above t_alpha, each with its own lam (default 5).
        combine: how a refined input's explanation is made: ``"lam"`` (default)
            lam A(x) + (1 - lam) MC_n(x); ``"prior"``: KernelShap's regression on its n
            coalitions with a ridge toward A(x) (needs a KernelShap fallback).
        rho_grid: the ridge strengths ``"prior"`` chooses from per bin (finite, >= 0;
            default ``RHO_GRID``: 0 and 1e-3, 10^-2.5, ..., 1e4).

    Attributes:
        threshold: t_alpha after :meth:`calibrate` (+inf for alpha = 1, -inf for 0).
        edges: float64 [n_bins - 1], the bins' inner edges on s. lams: float64
        [n_bins] (``"lam"``). rhos: float64 [n_bins] (``"prior"``). d: the number of
        features.

    Example:
        >>> import torch
        >>> from xattr.explainers import ExactShapley
        >>> model = lambda x: torch.tanh(x).sum(1) + x[:, 0] * x[:, 1]
        >>> members = train_ensemble(model, torch.randn(64, 4), k=2, input_shape=(4,),
        ...                          hidden=(8,), epochs=2, show_progress=False)
        >>> x_cal = torch.randn(32, 4)
        >>> hq = ExactShapley(model).attribute(x_cal)
        >>> sel = SelectiveExplainer(members, coverage=0.5, n_fallback_samples=8)
        >>> sel = sel.calibrate(x_cal, hq)
        >>> out = sel.attribute(torch.randn(6, 4))
        >>> out.attributions.shape, out.refined.shape
        (torch.Size([6, 4]), torch.Size([6]))
        >>> bool(((out.lam >= 0) & (out.lam <= 1)).all())
        True
        >>> shrunk = SelectiveExplainer(members, coverage=0.5, n_fallback_samples=8,
        ...                             combine="prior").calibrate(x_cal, hq)
        >>> shrunk.rhos.shape, shrunk.attribute(torch.randn(6, 4)).rho.shape
        (torch.Size([5]), torch.Size([6]))
    """

    def __init__(
        self,
        amortized: AmortizedExplainer | Sequence[AmortizedExplainer],
        *,
        fallback: KernelShap | ShapleyValueSampling | None = None,
        n_fallback_samples: int = 32,
        coverage: float = 0.8,
        uncertainty: str = "ensemble",
        n_bins: int = 5,
        combine: str = "lam",
        rho_grid: Sequence[float] = RHO_GRID,
    ) -> None:
        self.members = _check_members(amortized)
        first = self.members[0]
        if uncertainty not in UNCERTAINTIES:
            raise ValueError(f"uncertainty: expected one of {UNCERTAINTIES}, got {uncertainty!r}")
        if uncertainty == "ensemble" and len(self.members) < 2:
            raise ValueError(
                "amortized: the 'ensemble' uncertainty needs at least 2 members (see "
                f"train_ensemble), got {len(self.members)}"
            )
        self.uncertainty = uncertainty
        if fallback is None:
            fallback = KernelShap(first.model)
        if not isinstance(fallback, FALLBACKS):
            raise TypeError(
                "fallback: expected a perturbation explainer with n_samples and seed "
                f"(KernelShap or ShapleyValueSampling), got {type(fallback).__name__}"
            )
        self.fallback = fallback
        if combine not in COMBINES:
            raise ValueError(f"combine: expected one of {COMBINES}, got {combine!r}")
        if combine == "prior" and not isinstance(fallback, KernelShap):
            raise ValueError(
                "combine: 'prior' shrinks KernelShap's regression toward A(x) and needs a "
                f"KernelShap fallback, got {type(fallback).__name__} (use combine='lam')"
            )
        self.combine = combine
        self.rho_grid = _check_rho_grid(rho_grid)
        self.n_fallback_samples = validation.positive_int("n_fallback_samples", n_fallback_samples)
        if (
            isinstance(coverage, bool)
            or not isinstance(coverage, (int, float))
            or not 0.0 <= coverage <= 1.0
        ):
            raise ValueError(f"coverage: expected a float in [0, 1], got {coverage!r}")
        self.coverage = float(coverage)
        self.n_bins = validation.positive_int("n_bins", n_bins)
        self.d = first.d
        self.input_shape = first.input_shape
        mask = first.feature_mask.reshape(-1)
        # the first element of each feature: reads per-feature values off Captum's layout
        pos = torch.full((self.d,), mask.numel(), dtype=torch.int64)
        self._first = pos.scatter_reduce(0, mask, torch.arange(mask.numel()), "amin")
        self._mask = mask
        self.head: nn.Module | None = None
        self.calibrated = False
        self.threshold = math.nan
        self.edges = torch.zeros(0, dtype=torch.float64)
        self.lams = torch.zeros(0, dtype=torch.float64)
        self.rhos = torch.zeros(0, dtype=torch.float64)

    # ------------------------------------------------------------ helpers
    def _check_x(self, x: Any, name: str) -> Tensor:
        """[B, *F] with the members' F (the amortized explainer's own check)."""
        return self.members[0]._check_inputs(x, name)

    def _check_hq(self, hq: Any, x: Tensor, name: str) -> Tensor:
        """High-quality attributions in Captum's layout [B, *F] -> per feature [B, d]."""
        if not isinstance(hq, Tensor):
            raise TypeError(f"{name}: expected a tensor, got {type(hq).__name__}")
        if tuple(hq.shape) != tuple(x.shape):
            raise ValueError(
                f"{name}: expected attributions shaped like the inputs {tuple(x.shape)} "
                f"(Captum's layout, e.g. ExactShapley(model).attribute(x)), got "
                f"{tuple(hq.shape)}"
            )
        return self._per_feature(hq)

    def _per_feature(self, phi: Tensor) -> Tensor:
        """[B, *F] -> [B, d] float64 (each feature's value, read at its first element)."""
        return phi.reshape(phi.shape[0], -1)[:, self._first.to(phi.device)].to(torch.float64)

    def _amortized(
        self, x: Tensor, target: TargetType, memory_budget: Any
    ) -> tuple[Tensor, Tensor]:
        """(A(x) [B, d], each member's [k, B, d]), float64: each member's attributions
        (as its ``attribute`` gives them) of the members' shared game, whose
        v(N) - v(empty) is computed once for all of them."""
        first = self.members[0]
        index, game_target = first._class_index(target, x.shape[0])
        if isinstance(game_target, str):
            raise ValueError(
                "target: the selective explainer explains one output per example "
                f"(an int or one int per example), got {target!r}"
            )
        gap, out_dtype = first._gap(x, index, game_target, first.feature_mask, memory_budget)
        each = [m._explain(x, gap, index, out_dtype)[:, 0] for m in self.members]
        stacked = torch.stack(each).to(torch.float64)
        return stacked.mean(0), stacked

    def _head_input(self, x: Tensor, a: Tensor) -> Tensor:
        z = torch.cat([x.reshape(x.shape[0], -1).to(torch.float64), a], 1)
        return ((z - self._z_mean) / self._z_std).to(torch.get_default_dtype())

    def _scores(self, x: Tensor, a: Tensor, each: Tensor) -> Tensor:
        """s(x) float64 [B]."""
        if self.uncertainty == "ensemble":
            return each.var(0, correction=0).mean(1)
        if self.head is None:
            raise ValueError(
                "fit_uncertainty: the 'learned' uncertainty needs its head trained first "
                "(call fit_uncertainty(x_train, hq_train))"
            )
        with torch.no_grad():
            out = self.head(self._head_input(x, a).to(self._z_mean.device))
        return nn.functional.softplus(out[:, 0]).to(torch.float64) * self._err_scale

    def _fallback_args(self, target: TargetType, seed: int, memory_budget: Any) -> dict:
        """The fallback's arguments for the members' game."""
        m = self.members[0]
        return {
            "baselines": m.baselines,
            "target": m.target if m.n_classes is None and target is None else target,
            "feature_mask": m.feature_mask,
            "n_samples": self.n_fallback_samples,
            "seed": seed,
            "removal": m.removal,
            "memory_budget": memory_budget,
        }

    def _mc(self, x: Tensor, target: TargetType, seed: int, memory_budget: Any) -> Tensor:
        """The fallback's explanation MC_n [B, d] float64 of the members' game."""
        phi = self.fallback.attribute(x, **self._fallback_args(target, seed, memory_budget))
        return self._per_feature(phi)

    def _sampled(self, x: Tensor, target: TargetType, seed: int, memory_budget: Any) -> SampledGame:
        """KernelShap's coalitions and the game's values on them (evaluated once), for
        :meth:`_shrunk` at any ridge strength."""
        fallback = self.fallback
        assert isinstance(fallback, KernelShap)
        return fallback._sample_game(x, **self._fallback_args(target, seed, memory_budget))

    def _shrunk(self, sampled: SampledGame, a: Tensor, rho: float | Tensor) -> Tensor:
        """KernelShap's solve of ``sampled`` with the prior A(x) [B, d] and the ridge
        ``rho`` (a number or one per input [B]): [B, d] float64 (exactly efficient)."""
        fallback = self.fallback
        assert isinstance(fallback, KernelShap)
        ids = sampled.setup.ids.to(a.device)  # the game's features, as the members' ids
        prior = a[:, ids].unsqueeze(1)
        phi, _ = fallback._solve(sampled, prior=prior, rho=rho)
        out = a.new_zeros(a.shape)
        out[:, ids] = phi[:, 0].to(a)
        return out

    def _bins(self, s: Tensor) -> Tensor:
        return torch.searchsorted(self.edges, s.contiguous())

    # ------------------------------------------------------------ learned uncertainty
    def fit_uncertainty(
        self,
        x_train: Tensor,
        hq_train: Tensor,
        *,
        target: TargetType = None,
        hidden: Sequence[int] = (64, 64),
        epochs: int = 200,
        batch_size: int = 64,
        lr: float = 1e-3,
        seed: int = 0,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> SelectiveExplainer:
        """Trains the ``"learned"`` uncertainty head: an MLP on (x, A(x)), both
        standardised on ``x_train``, with a softplus output that predicts
        ||A(x) - HQ(x)||^2 / d (Adam on the mean squared error, targets divided by their
        mean). Use inputs apart from the calibration split.

        Args:
            x_train: inputs [N, *F].
            hq_train: their high-quality attributions [N, *F] (Captum's layout, e.g.
                ``ExactShapley(model).attribute(x_train)`` with the members' game).
            target: the explained output (as in :meth:`attribute`).
            hidden: the head's hidden widths (default (64, 64)).
            epochs, batch_size, lr: Adam's training (defaults 200, 64, 1e-3).
            seed: seeds the initial weights and the shuffling (default 0); the same
                seed gives the same head, bit for bit, on the CPU.
            memory_budget: forward batches' memory for A(x).
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it. Counts the
                head's training rows.

        Returns:
            ``self``.
        """
        if self.uncertainty != "learned":
            raise ValueError("fit_uncertainty: only for uncertainty='learned'")
        x = self._check_x(x_train, "x_train")
        hq = self._check_hq(hq_train, x, "hq_train")
        if not isinstance(hidden, (tuple, list)):
            raise TypeError(f"hidden: expected a tuple of positive ints, got {hidden!r}")
        hidden = tuple(validation.positive_int("hidden", h) for h in hidden)
        epochs = validation.positive_int("epochs", epochs)
        batch_size = validation.positive_int("batch_size", batch_size)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"lr: expected a positive float, got {lr!r}")
        seed = validation.seed(seed)
        a, _ = self._amortized(x, target, memory_budget)
        err = ((a - hq.to(a.device)) ** 2).mean(1)
        z = torch.cat([x.reshape(x.shape[0], -1).to(torch.float64), a], 1)
        self._z_mean, self._z_std = z.mean(0), z.std(0, correction=0).clamp_min(1e-12)
        self._err_scale = float(err.mean()) or 1.0
        y = (err / self._err_scale).to(torch.get_default_dtype()).unsqueeze(1)
        inputs = self._head_input(x, a)
        gen = torch.Generator().manual_seed(seed ^ HEAD_SEED_SALT)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            widths = (inputs.shape[1], *hidden)
            layers: list[nn.Module] = []
            for a_in, a_out in zip(widths[:-1], widths[1:]):
                layers += [nn.Linear(a_in, a_out), nn.ReLU()]
            head = nn.Sequential(*layers, nn.Linear(widths[-1], 1))
        optimizer = torch.optim.Adam(head.parameters(), lr=float(lr))
        # the head's training rows: every input once per epoch
        with row_progress(epochs * x.shape[0], show_progress, "fit_uncertainty"):
            for _ in range(epochs):
                order = torch.randperm(x.shape[0], generator=gen)
                for b in range(0, x.shape[0], batch_size):
                    j = order[b : b + batch_size]
                    pred = nn.functional.softplus(head(inputs[j]))
                    count_rows(j.numel())
                    loss = ((pred - y[j]) ** 2).mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
        self.head = head.eval()
        self.calibrated = False
        return self

    # ------------------------------------------------------------ calibration
    @with_row_progress("SelectiveExplainer calibrate")
    def calibrate(
        self,
        x_cal: Tensor,
        hq_cal: Tensor,
        *,
        target: TargetType = None,
        seed: int = 0,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> SelectiveExplainer:
        """Sets t_alpha (the alpha-quantile of s on ``x_cal``: the ceil(alpha M)-th
        smallest; +inf for alpha = 1, -inf for alpha = 0), the bins (the quantiles j /
        n_bins of s over the calibration inputs above t_alpha) and lam per bin in
        closed form (a bin without calibration inputs, or where A = MC, gets the lam
        of every input above t_alpha). MC_n runs on the inputs above t_alpha only.
        With ``combine="prior"``, rho per bin instead: the fallback's game is evaluated
        once on those inputs and solved toward A(x) at every ``rho_grid`` value; each
        bin takes the value with the least squared error to ``hq_cal`` (a bin without
        inputs: the best over all of them; ties: the smaller rho).

        Args:
            x_cal: calibration inputs [M, *F] (apart from the members' training data).
            hq_cal: their high-quality attributions [M, *F] (Captum's layout, e.g.
                ``ExactShapley(model).attribute(x_cal)`` with the members' game).
            target: the explained output (as in :meth:`attribute`).
            seed: the fallback's seed (default 0).
            memory_budget: forward batches' memory.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.

        Returns:
            ``self``.
        """
        x = self._check_x(x_cal, "x_cal")
        hq = self._check_hq(hq_cal, x, "hq_cal")
        seed = validation.seed(seed)
        if x.shape[0] == 0:
            raise ValueError("x_cal: needs at least one calibration input")
        a, each = self._amortized(x, target, memory_budget)
        s = self._scores(x, a, each)
        M, alpha = s.numel(), self.coverage
        if alpha >= 1.0:
            threshold = math.inf
        elif alpha <= 0.0:
            threshold = -math.inf
        else:
            threshold = float(s.sort().values[math.ceil(alpha * M) - 1])
        above = s > threshold
        edges = lams = rhos = torch.zeros(0, dtype=torch.float64)
        if alpha < 1.0:
            if not bool(above.any()):
                raise ValueError(
                    f"x_cal: no calibration input has s(x) above t_alpha (coverage {alpha}, "
                    f"{M} inputs): give more calibration inputs to fit lam (or rho)"
                )
            s_r, a_r, hq_r = s[above], a[above], hq.to(a.device)[above]
            levels = torch.arange(1, self.n_bins, dtype=torch.float64) / self.n_bins
            edges = torch.quantile(s_r, levels.to(s_r.device)).cpu()
            self.edges = edges  # read by _bins
            bins = self._bins(s_r.cpu())
            x_r, t_r = x[above], _rows(target, above)
            if self.combine == "prior":
                rhos = self._fit_rhos(self._sampled(x_r, t_r, seed, memory_budget), a_r, hq_r, bins)
            else:
                mc = self._mc(x_r, t_r, seed, memory_budget).to(a.device)
                lams = self._fit_lams(mc, a_r, hq_r, bins)
        self.threshold, self.edges, self.lams, self.rhos = threshold, edges, lams, rhos
        self.calibrated = True
        return self

    def _fit_lams(self, mc: Tensor, a_r: Tensor, hq_r: Tensor, bins: Tensor) -> Tensor:
        """lam per bin in closed form for ``combine="lam"`` from MC_n, A and HQ [M, d] of
        the calibration inputs above t_alpha and their bins [M] (a bin without inputs,
        or where A = MC, gets the pooled lam), clipped to [0, 1]."""
        num_i = ((hq_r - mc) * (a_r - mc)).sum(1)
        den_i = ((a_r - mc) ** 2).sum(1)
        pooled = float(num_i.sum() / den_i.sum()) if float(den_i.sum()) > 0 else 1.0
        lams = torch.full((self.n_bins,), pooled, dtype=torch.float64)
        for b in range(self.n_bins):
            sel = (bins == b).to(num_i.device)
            den = float(den_i[sel].sum())
            if den > 0:
                lams[b] = float(num_i[sel].sum()) / den
        return lams.clamp(0.0, 1.0)

    def _fit_rhos(self, sampled: SampledGame, a_r: Tensor, hq_r: Tensor, bins: Tensor) -> Tensor:
        """rho per bin for ``combine="prior"``: the grid value with the least summed
        squared error to HQ over the bin's calibration inputs (a bin without any: over
        every input above t_alpha; ties: the smaller rho). The game is evaluated once;
        each grid value is one more solve of the same values."""
        grid = self.rho_grid
        err = torch.stack(
            [((self._shrunk(sampled, a_r, float(r)) - hq_r) ** 2).sum(1) for r in grid]
        ).cpu()  # [G, M_above]
        pooled = grid[int(err.sum(1).argmin())]
        rhos = torch.full((self.n_bins,), float(pooled), dtype=torch.float64)
        for b in range(self.n_bins):
            sel = bins == b
            if bool(sel.any()):
                rhos[b] = grid[int(err[:, sel].sum(1).argmin())]
        return rhos

    # ------------------------------------------------------------ explaining
    @with_row_progress("SelectiveExplainer attribute")
    def attribute(
        self,
        inputs: Tensor,
        target: TargetType = None,
        *,
        seed: int = 0,
        return_input_shape: bool = True,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> SelectiveResult:
        """Selective explanations: A(x) where s(x) <= t_alpha, else
        lam A(x) + (1 - lam) MC_n(x) with the lam of s(x)'s bin (``combine="lam"``) or
        KernelShap's regression on n coalitions shrunk toward A(x) with the rho of
        s(x)'s bin (``"prior"``, one model evaluation per coalition as MC_n); the
        fallback runs on the refined inputs only.

        Args:
            inputs: [B, *F].
            target: the explained output, one per example (None with the members'
                fixed target; with ``n_classes``: an int or a list of B ints).
            seed: the fallback's seed (default 0).
            return_input_shape: Captum's layout [B, *F] (default) or per feature [B, d].
            memory_budget: forward batches' memory.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.

        Returns:
            A :class:`SelectiveResult` (attributions float64, refined, uncertainty, lam,
            and rho for ``"prior"``).
        """
        if not self.calibrated:
            raise ValueError("attribute: the explainer is not calibrated; call calibrate() first")
        x = self._check_x(inputs, "inputs")
        validation.flag("return_input_shape", return_input_shape)
        seed = validation.seed(seed)
        a, each = self._amortized(x, target, memory_budget)
        s = self._scores(x, a, each)
        refined = s > self.threshold
        lam = torch.ones_like(s)
        out = a.clone()
        if self.combine == "prior":
            rho = torch.full_like(s, math.inf)
            if bool(refined.any()):
                rho[refined] = self.rhos[self._bins(s[refined].cpu())].to(rho.device)
                lam[refined] = math.nan
                sampled = self._sampled(x[refined], _rows(target, refined), seed, memory_budget)
                out[refined] = self._shrunk(sampled, a[refined], rho[refined].cpu())
            if return_input_shape:
                out = out[:, self._mask.to(out.device)].reshape(x.shape)
            return SelectiveResult(out, refined, s, lam, rho)
        if bool(refined.any()):
            lam[refined] = self.lams[self._bins(s[refined].cpu())].to(lam.device)
            mc = self._mc(x[refined], _rows(target, refined), seed, memory_budget)
            mc = mc.to(a.device)
            w = lam[refined].unsqueeze(1)
            out[refined] = w * a[refined] + (1 - w) * mc
        if return_input_shape:
            out = out[:, self._mask.to(out.device)].reshape(x.shape)
        return SelectiveResult(out, refined, s, lam)
