"""LIME: a weighted linear surrogate of the model on random coalitions.

The game is v(S) = f(x with the features off S removed) (see
:mod:`xattr.explainers.removal`; by default features off S take the
``baselines``, Captum's interpretable-to-input transform). LIME (Ribeiro et al.,
2016) draws binary interpretable samples S, weighs each by the similarity of the
perturbed input to the original, and fits ``v(S) ~ b + sum_{i in S} c_i``; the
coefficients c are the attributions.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union, cast, overload

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from xattr import ops
from xattr._core import validation
from xattr._core.attribution import PerturbationAttribution
from xattr._core.game import Setup
from xattr._core.inputs import BaselineType, TensorOrTupleGeneric, n_elements
from xattr._core.progress import with_row_progress
from xattr._core.removal import Removal
from xattr._core.targets import TargetType
from xattr._core.validation import flag, positive_int
from xattr.explainers.registry import register


@dataclass(frozen=True)
class LinearSurrogate:
    """The interpretable model: a weighted linear fit with an unpenalised intercept.

    Args:
        method: "lasso" (default, scikit-learn's ``Lasso``, Captum's default) or
            "ridge" (``Ridge``, closed form).
        alpha: penalty (default 0.01, Captum's).
        max_iter, tol: coordinate-descent limits for lasso (see
            :func:`xattr.ops.linear_fit`); the defaults (1000, 1e-4) are
            scikit-learn's, so the default fit is Captum's to float precision. A
            smaller ``tol`` converges further (closer to the exact lasso optimum).

    Example:
        >>> LinearSurrogate("ridge", alpha=1.0).method
        'ridge'
    """

    method: str = "lasso"
    alpha: float = 0.01
    max_iter: int = 1000
    tol: float = 1e-4

    def __post_init__(self) -> None:
        if self.method not in ("lasso", "ridge"):
            raise ValueError(
                f"interpretable_model: method must be 'lasso' or 'ridge', got {self.method!r}"
            )
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)):
            raise TypeError(
                f"interpretable_model: alpha must be a number, got {type(self.alpha).__name__}"
            )
        if not self.alpha >= 0:
            raise ValueError(f"interpretable_model: alpha must be >= 0, got {self.alpha}")


InterpretableModel = Union[None, str, LinearSurrogate, Any]

# Captum's scikit-learn wrappers (captum._utils.models.linear_model), read by their
# class name and constructor arguments: method and default alpha.
_CAPTUM_MODELS = {
    "SkLearnLasso": ("lasso", 1.0),
    "SkLearnRidge": ("ridge", 1.0),
    "SkLearnLinearRegression": ("ridge", 0.0),
}


def _from_captum(model: Any) -> LinearSurrogate:
    """The LinearSurrogate equal to one of Captum's SkLearn* interpretable models."""
    method, alpha = _CAPTUM_MODELS[type(model).__name__]
    kw = dict(getattr(model, "construct_kwargs", {}) or {})
    alpha = kw.pop("alpha", alpha)
    max_iter, tol = kw.pop("max_iter", 1000), kw.pop("tol", 1e-4)
    if kw.pop("fit_intercept", True) is not True or kw:
        extra = sorted(kw) or ["fit_intercept"]
        raise ValueError(
            f"interpretable_model: {type(model).__name__} options {extra} are not supported "
            "(xattr fits with an intercept and alpha, max_iter, tol only)"
        )
    if method == "ridge":
        return LinearSurrogate(method, alpha=alpha)
    return LinearSurrogate(method, alpha=alpha, max_iter=max_iter, tol=tol)


def _surrogate(model: InterpretableModel) -> Any:
    if model is None:
        return LinearSurrogate()
    if isinstance(model, str):
        if model not in ("lasso", "ridge"):
            raise ValueError(
                f"interpretable_model: expected 'lasso', 'ridge' or a LinearSurrogate, "
                f"got {model!r}"
            )
        return LinearSurrogate(model)
    if isinstance(model, LinearSurrogate):
        return model
    if type(model).__name__ in _CAPTUM_MODELS and hasattr(model, "construct_kwargs"):
        return _from_captum(model)
    if _is_model(model):
        return model
    raise TypeError(
        "interpretable_model: expected None, 'lasso', 'ridge', a LinearSurrogate or a model "
        "with Captum's Model interface (fit(DataLoader), representation(), e.g. SGDLasso), "
        f"got {type(model).__name__}"
    )


def _is_model(model: Any) -> bool:
    """Captum's ``Model`` interface (captum._utils.models.model.Model), by duck typing so
    that xattr never imports Captum: ``fit(train_data: DataLoader, **kwargs)`` and
    ``representation()`` (``bias()`` is not read)."""
    return callable(getattr(model, "fit", None)) and callable(
        getattr(model, "representation", None)
    )


def _fit_model(model: Any, masks: Tensor, weights: Tensor, values: Tensor) -> Tensor:
    """Coefficients [b, T, d] (float64) from a model with Captum's ``Model`` interface,
    fitted as Captum's Lime fits it: once per example (and target here), on one
    DataLoader batch of the float32 (interpretable samples [n, d], outputs [n],
    similarities [n]); masks bool [n, d] (shared) or [b, n, d], weights [b, n], values
    [b, n, T]. A Python loop over examples and targets, as Captum's: the batched kernels
    serve the built-in surrogates only."""
    b, n, T = values.shape
    d = masks.shape[-1]
    out = torch.zeros((b, T, d), dtype=torch.float64)
    for e in range(b):
        x = (masks if masks.dim() == 2 else masks[e]).to(torch.float32)
        for t in range(T):
            data = TensorDataset(x, values[e, :, t].float(), weights[e].float())
            model.fit(DataLoader(data, batch_size=max(1, n)))
            rep = torch.as_tensor(model.representation()).detach().reshape(-1)
            if rep.numel() != d:
                raise ValueError(
                    f"interpretable_model: representation() has {rep.numel()} values for "
                    f"{d} interpretable features"
                )
            out[e, t] = rep.to(device="cpu", dtype=torch.float64)
    return out


def _cosine_kernel(setup: Any, masks: Tensor, kernel_width: float = 1.0) -> Tensor:
    """Captum's default similarity, exp(-(1 - cos(x, x'))^2 / (2 w^2)), for every
    example and sample without materialising the perturbed inputs x' (which take x
    on the features in S and the baseline elsewhere).

    masks [S, d] or [B, S, d] -> weights float64 [B, S].
    """
    B, d = setup.B, setup.d
    xx = torch.zeros((B, d), dtype=torch.float64)
    xb = torch.zeros((B, d), dtype=torch.float64)
    bb = torch.zeros((B, d), dtype=torch.float64)
    for x, g, b in zip(setup.inputs, setup.groups, setup.baselines):
        xf = x.reshape(B, n_elements(x)).to(torch.float64).cpu()
        bf = b.reshape(b.shape[0], n_elements(x)).to(torch.float64).cpu().expand_as(xf)
        gf = g.reshape(g.shape[0], n_elements(x)).cpu().expand_as(xf)
        xx.scatter_add_(1, gf, xf * xf)
        xb.scatter_add_(1, gf, xf * bf)
        bb.scatter_add_(1, gf, bf * bf)
    if setup.game.aggregate:  # the model reads the batch as one example: so does x
        xx, xb, bb = (t.sum(0, keepdim=True).expand(B, d) for t in (xx, xb, bb))
    # With m the 0/1 mask: dot(x, x') = xb + m . (xx - xb), |x'|^2 = bb + m . (xx - bb).
    m = masks.to(torch.float64).cpu()
    dx, dp = xx - xb, xx - bb  # [B, d]
    if m.dim() == 2:  # shared masks: one [S, d] x [d, B] product each
        on_x, on_p = (m @ dx.T).T, (m @ dp.T).T
    else:
        on_x, on_p = (m @ dx[:, :, None])[..., 0], (m @ dp[:, :, None])[..., 0]
    dot = xb.sum(1, keepdim=True) + on_x
    pn2 = bb.sum(1, keepdim=True) + on_p
    eps = 1e-8
    nx = xx.sum(1, keepdim=True).sqrt().clamp_min(eps)
    npert = pn2.clamp_min(0).sqrt().clamp_min(eps)
    dist = 1.0 - dot / (nx * npert)
    return torch.exp(-(dist**2) / (2 * kernel_width**2))


def _lime_bytes(sets: list[tuple[Tensor, Tensor]], n: int, B: int, T: int, d: int) -> int:
    """Peak bytes of Lime's samples, values, weights and fits (per-example weights: one
    Gram matrix of min(n, d_g)^2 doubles per example; see xattr.ops.linear_fit)."""
    total = (B if len(sets) > 1 else 1) * n * d + 8 * B * n * (T + 1) + 8 * B * T * d
    for ex, feats in sets:
        dg, b = len(feats), len(ex)
        q = min(n, dg)
        per = dg + 2 * n if n < dg else 3 * dg
        total += n * dg + 8 * (b * (q * q + q + dg + 1) + b * T * per) + 4 * b * (2 * q + 1)
    return total


@register(captum=True)
class Lime(PerturbationAttribution):
    """LIME (Captum-compatible) on xattr's batched game and linear-fit kernel.

    Defaults follow Captum's ``Lime``: interpretable samples are Bernoulli(1/2)
    over the d features, the similarity is Captum's
    ``get_exp_kernel_similarity_function("cosine", kernel_width=1.0)`` on the
    flattened original and perturbed inputs, and the interpretable model is
    ``Lasso(alpha=0.01)`` (:func:`xattr.ops.linear_fit`). Given the same binary
    samples, the result is Captum's.

    Args:
        forward_func: the model.
        interpretable_model: None (lasso, alpha 0.01), "lasso", "ridge", a
            :class:`LinearSurrogate` (method, alpha, max_iter, tol), Captum's SkLearnLasso
            / SkLearnRidge / SkLearnLinearRegression (read as LinearSurrogate: the batched
            kernel fits them), or any model with Captum's ``Model`` interface
            (``fit(DataLoader)``, ``representation()``, e.g. Captum's ``SGDLasso``),
            fitted as Captum's Lime fits it: once per example and target, in a Python
            loop, on one batch of float32 (samples, outputs, similarities).
        similarity_func: Captum's signature ``f(original_inp, perturbed_inp,
            interpretable_sample, **kwargs) -> float``, called per sample (the
            default is computed in closed form for the whole batch).
        perturb_func: Captum's signature ``f(original_inp, **kwargs) -> [1, d]``
            binary tensor (or a generator function yielding them), called
            ``n_samples`` times per example, example after example; the default
            draws Bernoulli(1/2) masks from ``seed`` shared by the batch.

    A model that returns one value (or one row) for the whole batch, Captum's "aggregate
    mode" (e.g. a batch loss), is explained as Captum does: every example is perturbed alike
    and the attributions are the batch's, [1, *F] per input for one value (the similarity of
    a sample is taken over the whole batch, as Captum's). That cannot be batched: each
    coalition costs one model call of the B rows (instead of sharing calls of many rows),
    plus the first call, which reveals the mode; the examples must share one feature mask,
    and perturbations_per_eval must be 1.

    Example:
        >>> import torch
        >>> f = lambda x: x.sum(1)
        >>> a = Lime(f, "ridge").attribute(torch.ones(1, 3), n_samples=50, seed=0)
        >>> a.shape
        torch.Size([1, 3])
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        interpretable_model: InterpretableModel = None,
        similarity_func: Callable[..., float] | None = None,
        perturb_func: Callable[..., Tensor] | None = None,
    ):
        super().__init__(forward_func)
        if similarity_func is not None and not callable(similarity_func):
            raise TypeError(
                f"similarity_func: expected a callable, got {type(similarity_func).__name__}"
            )
        if perturb_func is not None and not callable(perturb_func):
            raise TypeError(f"perturb_func: expected a callable, got {type(perturb_func).__name__}")
        self.interpretable_model = _surrogate(interpretable_model)
        self.similarity_func = similarity_func
        self.perturb_func = perturb_func

    def _user_samples(self, setup: Any, n_samples: int) -> Tensor:
        """Per-example binary samples [B, n, d] from the user's perturb_func."""
        out = []
        for b in range(setup.B):
            inp, kw = self._example(setup, b)
            if inspect.isgeneratorfunction(self.perturb_func):
                gen = self.perturb_func(inp, **kw)
                rows = [next(gen) for _ in range(n_samples)]
            else:
                perturb = cast(Callable[..., Tensor], self.perturb_func)
                rows = [perturb(inp, **kw) for _ in range(n_samples)]
            rows_t = []
            for r in rows:
                if not isinstance(r, Tensor) or r.numel() != setup.d:
                    raise ValueError(
                        f"perturb_func: expected a binary tensor with {setup.d} entries, got "
                        f"{tuple(r.shape) if isinstance(r, Tensor) else type(r).__name__}"
                    )
                rows_t.append(r.reshape(-1).cpu() != 0)
            out.append(torch.stack(rows_t))
        return torch.stack(out)

    @staticmethod
    def _example(setup: Any, b: int) -> tuple[Any, dict]:
        inp = tuple(x[b : b + 1] for x in setup.inputs)
        base = tuple(t[b : b + 1] if t.shape[0] > 1 else t for t in setup.baselines)
        fm = tuple(g[b : b + 1] if g.shape[0] > 1 else g for g in setup.groups)
        one = (lambda t: t) if setup.is_tuple else (lambda t: t[0])
        kw = {"num_interp_features": setup.d, "baselines": one(base), "feature_mask": one(fm)}
        return one(inp), kw

    def _user_similarity(self, setup: Any, masks: Tensor) -> Tensor:
        """Weights [B, n] from the user's similarity_func, one call per sample."""
        B, n = masks.shape[0], masks.shape[1]
        w = torch.empty((B, n), dtype=torch.float64)
        for b in range(B):
            inp, kw = self._example(setup, b)
            inp_t = inp if setup.is_tuple else (inp,)
            for i in range(n):
                m = masks[b, i]
                pert = tuple(
                    torch.where(m.to(x.device)[g], x, bl)  # any dtype, as the game
                    for x, g, bl in zip(
                        inp_t,
                        kw["feature_mask"] if setup.is_tuple else (kw["feature_mask"],),
                        kw["baselines"] if setup.is_tuple else (kw["baselines"],),
                    )
                )
                pert_out = pert if setup.is_tuple else pert[0]
                similarity = cast(Callable[..., float], self.similarity_func)
                sim = similarity(inp, pert_out, m.long()[None], **kw)
                sim = float(sim.item() if isinstance(sim, Tensor) else sim)
                if not math.isfinite(sim) or sim < 0:
                    raise ValueError(
                        f"similarity_func: must return a finite number >= 0, got {sim}"
                    )
                w[b, i] = sim
        return w

    @property
    def multiplies_by_inputs(self) -> bool:
        """False, as in Captum: the attributions are a surrogate's coefficients."""
        return False

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        return_input_shape: Literal[True] = True,
        show_progress: bool | None = None,
        *,
        seed: int | None = None,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
    ) -> TensorOrTupleGeneric: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        return_input_shape: bool = True,
        show_progress: bool | None = None,
        *,
        seed: int | None = None,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
    ) -> TensorOrTupleGeneric | Tensor: ...

    @with_row_progress()
    def attribute(
        self,
        inputs: TensorOrTupleGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        return_input_shape: bool = True,
        show_progress: bool | None = None,
        *,
        seed: int | None = None,
        removal: Removal | None = None,
        memory_budget: int | str | None = None,
    ) -> TensorOrTupleGeneric | Tensor:
        """LIME coefficients.

        Args:
            inputs: [B, *F] tensor or tuple of them.
            baselines: Captum's forms (None = zeros): what removed features take
                (also in the similarity's perturbed inputs, whatever ``removal``).
            target: None, int, tuple, list of B ints, list of B lists of T ints or
                "all" (several targets share the evaluations and the fit's Gram).
            additional_forward_args: extra arguments for the model.
            feature_mask: int tensor(s) grouping elements into d features.
            n_samples: interpretable samples per input (default 25, Captum's
                ``Lime.attribute`` default and argument order).
            perturbations_per_eval: Captum's batching argument (default 1): each
                forward call holds at least this many perturbations of the whole batch,
                more where xattr's own choice is larger, never more than
                ``memory_budget`` allows (README, "Batching"). Results do not depend on it.
            return_input_shape: True: coefficients spread to the inputs' shapes;
                False: [B, D] ([B, T, D] for several targets), Captum's interpretable
                space: column k for feature id min_id + k, D = max_id - min_id + 1.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.
            seed: 64-bit seed for the default sampler (None: torch's generator).
            removal: the game's removal (``BaselineRemoval`` by default).
            memory_budget: bytes (or "2GB") for one forward call; given (here or with
                ``xattr.set_memory_budget``) it sizes the calls; default 1 GiB, under
                which xattr picks the size it measured fastest.

        Returns:
            coefficients shaped like the inputs ([B, *F] or [B, T, *F]) or per feature.
        """
        n_samples = positive_int("n_samples", n_samples)
        flag("return_input_shape", return_input_shape)
        s = validation.seed(seed)
        setup = Setup(
            self.forward_func,
            inputs,
            baselines=baselines,
            target=target,
            additional_forward_args=additional_forward_args,
            feature_mask=feature_mask,
            removal=removal,
            perturbations_per_eval=perturbations_per_eval,
            memory_budget=memory_budget,
            show_progress=show_progress,
            desc=f"{self.get_name()} attribution",
            aggregate_layout="flat",  # Captum: one value for the batch, [1, *F]
        )
        game, d, B = setup.game, setup.d, setup.B
        dev = setup.inputs[0].device
        sets = setup.example_sets()
        # before anything is drawn (one output; checked again once the outputs are known)
        setup.check_solver_memory("Lime", _lime_bytes(sets, n_samples, B, 1, d), n_samples)
        if self.perturb_func is None:
            # Bernoulli(1/2) over each set's own features: the samples an example of the
            # set would get if explained alone (one shared draw when all have all d).
            designs = [ops.bernoulli_masks(n_samples, len(f), 0.5, seed=s) for _, f in sets]
            if len(sets) == 1:
                masks = designs[0]
            else:
                masks = torch.zeros((B, n_samples, d), dtype=torch.bool)
                for (ex, feats), m in zip(sets, designs):
                    block = torch.zeros((n_samples, d), dtype=torch.bool)
                    block[:, feats] = m
                    masks[ex] = block
        else:
            masks = self._user_samples(setup, n_samples)
            designs = [masks[ex][:, :, feats] for ex, feats in sets]
        values = game(masks.to(dev)).cpu()
        T = values.shape[2]
        setup.check_solver_memory("Lime", _lime_bytes(sets, n_samples, B, T, d), n_samples)
        if self.similarity_func is None:
            weights = _cosine_kernel(setup, masks)
        else:
            m3 = masks.unsqueeze(0).expand(setup.B, -1, -1) if masks.dim() == 2 else masks
            weights = self._user_similarity(setup, m3)
        cfg = self.interpretable_model
        coef = torch.zeros((B, T, d), dtype=values.dtype)
        for (ex, feats), m in zip(sets, designs):
            if not isinstance(cfg, LinearSurrogate):  # a model with Captum's interface
                c = _fit_model(cfg, m.cpu(), weights[ex], values[ex]).to(values.dtype)
            else:
                c, _ = ops.linear_fit(  # over the set's own features only
                    m,
                    weights[ex],
                    values[ex],
                    alpha=float(cfg.alpha),
                    method=cfg.method,
                    max_iter=cfg.max_iter,
                    tol=cfg.tol,
                )
            full = torch.zeros((ex.numel(), T, d), dtype=values.dtype)
            full[:, :, feats] = c
            coef[ex] = full
        coef = coef.to(dev)
        return setup.result(coef, input_shape=return_input_shape)
