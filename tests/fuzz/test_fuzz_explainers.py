"""Fuzzing the explainers: random argument forms (tuple inputs, float32 / float64, empty
batches, shared and per-example feature masks with arbitrary id sets, every target and
baseline form, small budgets) on a small seeded model.

Every call must either raise a ValueError / TypeError whose message starts with the
argument it blames, or return attributions of the documented structure, shape and dtype
that are finite and hold the method's exact invariants: efficiency of ExactShapley and
KernelShap per example (features an example does not have get exactly 0), and the
same result for the same seed under another memory budget. The number of examples
comes from the hypothesis profile (tests/fuzz/conftest.py: a short derandomised run by
default, ``XATTR_FUZZ=long`` for a long one).
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import torch
from hypothesis import strategies as st
from torch import Tensor, nn

import xattr
from tests._helpers import GRADIENT_EXPLAINERS, PERTURBATION_EXPLAINERS

PERTURBATION, GRADIENT = PERTURBATION_EXPLAINERS, GRADIENT_EXPLAINERS
SEEDED = {
    "KernelShap",
    "Lime",
    "ShapleyValueSampling",
    "ShapleyIntegratedGradients",
    "GradientShap",
}
# An error names its argument first: "target: ...", "baselines[0]: ...".
ARG_FIRST = re.compile(r"^[a-z_]+(\[\d+\])*: ")
C = 3  # model outputs


class Model(nn.Module):
    """tanh of a fixed linear map of all inputs, flattened: [B, C]. Built from elementwise
    operations only, so a row's output has the same bits in any batch (a BLAS matrix
    product may round differently for different batch sizes)."""

    def __init__(self, sizes: tuple[int, ...], dtype: torch.dtype) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(sum(sizes), C, generator=g, dtype=dtype) * 0.5)

    def forward(self, *xs: Tensor) -> Tensor:
        flat = torch.cat([x.reshape(x.shape[0], math.prod(x.shape[1:])) for x in xs], 1)
        acc = torch.zeros(flat.shape[0], C, dtype=flat.dtype)
        for j in range(flat.shape[1]):
            acc = acc + flat[:, j : j + 1] * self.w[j]
        return torch.tanh(acc)


@dataclass
class Config:
    name: str
    inputs: tuple[Tensor, ...]
    kw: dict[str, Any] = field(default_factory=dict)
    masks: tuple[Tensor, ...] | None = None


@st.composite
def configs(draw, names: tuple[str, ...] = (), efficiency: bool = False) -> Config:
    """An explainer (one of ``names``, default all) and its arguments; ``efficiency``:
    one target per example and the default (zero) baselines."""
    name = draw(st.sampled_from(list(names or PERTURBATION + GRADIENT)))
    B = draw(st.integers(0, 3))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    shapes = draw(st.lists(st.sampled_from([(3,), (2, 2), (1, 2, 3), ()]), min_size=1, max_size=2))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    inputs = tuple(torch.randn(B, *s, generator=g, dtype=dtype) for s in shapes)
    cfg = Config(name, inputs)
    kw = cfg.kw
    # targets: the model has C outputs, so None is an error the explainer must name
    kinds = ["int", "per_example"] + ([] if efficiency else ["all", "lists", "none"])
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        kw["target"] = draw(st.integers(-C, C - 1))
    elif kind == "per_example":
        kw["target"] = [draw(st.integers(0, C - 1)) for _ in range(B)]
    elif kind == "all":
        kw["target"] = "all"
    elif kind == "lists":
        kw["target"] = [[0, 2] for _ in range(B)]
    params = set(inspect.signature(getattr(xattr, name).attribute).parameters)
    # baselines (GradientShap takes a distribution [N, *F])
    if "baselines" not in params or efficiency:
        pass
    elif name in ("GradientShap", "DeepLiftShap"):  # a distribution of N = 2 rows
        kw["baselines"] = tuple(torch.zeros(2, *x.shape[1:], dtype=dtype) for x in inputs)
    else:
        form = draw(st.sampled_from(["none", "number", "shared", "per_example"]))
        if form == "number":
            kw["baselines"] = tuple(0.25 for _ in inputs)
        elif form == "shared":
            kw["baselines"] = tuple(
                torch.full((1, *x.shape[1:]), -0.5, dtype=dtype) for x in inputs
            )
        elif form == "per_example":
            kw["baselines"] = tuple(torch.randn(x.shape, generator=g, dtype=dtype) for x in inputs)
    # feature masks: ids from a small range (negative ones included), shared or per example
    kinds = ["none", "shared", "per_example"] if "feature_mask" in params else ["none"]
    if efficiency:  # per-example masks with different id sets are where it can break
        kinds = ["per_example", "per_example", "shared", "none"]
    mask = draw(st.sampled_from(kinds))
    if mask != "none":
        lead = 1 if mask == "shared" else B
        lo = draw(st.integers(-3, 2))
        cfg.masks = tuple(
            torch.randint(lo, lo + 5, (lead, *x.shape[1:]), generator=g) for x in inputs
        )
        kw["feature_mask"] = cfg.masks
    if name == "Occlusion":
        kw["sliding_window_shapes"] = tuple((1,) * (x.dim() - 1) for x in inputs)
    if name in ("KernelShap", "Lime", "ShapleyValueSampling"):
        kw["n_samples"] = draw(st.integers(1, 40))
    if "return_input_shape" in params and draw(st.booleans()):
        kw["return_input_shape"] = False
    if name in SEEDED:
        kw["seed"] = draw(st.integers(0, 2**63 - 1))
    if name in ("IntegratedGradients", "ShapleyIntegratedGradients"):
        kw["n_steps"] = draw(st.integers(1, 6))
    if name == "ShapleyIntegratedGradients":
        kw["n_coalitions_per_size"] = draw(st.integers(1, 3))
    if "return_convergence_delta" in params and draw(st.booleans()):
        kw["return_convergence_delta"] = True
    return cfg


def _call(cfg: Config, **extra: Any) -> Any:
    sizes = tuple(math.prod(x.shape[1:]) for x in cfg.inputs)
    model = Model(sizes, cfg.inputs[0].dtype).eval()
    explainer = getattr(xattr, cfg.name)(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return explainer.attribute(cfg.inputs, **cfg.kw, **extra), model


# Captum's Shapley methods read target None on several outputs as every output
NONE_AS_ALL = ("ExactShapley", "ShapleyValues", "ShapleyValueSampling")


def _n_targets(cfg: Config) -> int | None:
    t = cfg.kw.get("target")
    if t is None and cfg.name in NONE_AS_ALL and cfg.inputs[0].shape[0]:
        return C
    return C if t == "all" else 2 if isinstance(t, list) and t and isinstance(t[0], list) else None


# Tiny models make cheap examples: 4x the profile's number of examples.
MORE = hypothesis.settings(max_examples=4 * hypothesis.settings().max_examples)


@MORE
@hypothesis.given(cfg=configs())
def test_explainers_answer_or_name_the_argument(cfg: Config) -> None:
    try:
        out, model = _call(cfg)
    except (ValueError, TypeError) as e:
        assert ARG_FIRST.match(str(e)), f"{cfg.name}: an error that names no argument: {e}"
        hypothesis.event(f"refused: {str(e).split(':')[0]}")
        return
    hypothesis.event("answered")
    delta = None
    if cfg.kw.get("return_convergence_delta"):
        out, delta = out
    B = cfg.inputs[0].shape[0]
    T = _n_targets(cfg)
    if cfg.kw.get("return_input_shape") is False:
        ids = torch.cat([m.reshape(-1) for m in cfg.masks]) if cfg.masks else None
        if ids is None:
            D = sum(math.prod(x.shape[1:]) for x in cfg.inputs)
        else:  # Captum's columns; no id at all (an empty batch): one empty feature
            D = int(ids.max() - ids.min() + 1) if ids.numel() else 1
        assert out.shape == ((B, T, D) if T else (B, D))
        attrs = (out,)
    else:
        assert isinstance(out, tuple) and len(out) == len(cfg.inputs)
        for a, x in zip(out, cfg.inputs):
            want = (B, T, *x.shape[1:]) if T else tuple(x.shape)
            assert tuple(a.shape) == want, (cfg.name, a.shape, want)
            assert a.dtype == x.dtype
        attrs = out
    for a in attrs:
        assert torch.isfinite(a).all()
    if delta is not None:
        # one per example (GradientShap: one per sample, B * n_samples, as Captum;
        # DeepLiftShap: one per (example, baseline) pair, B * N)
        assert delta.shape[0] == B * {"GradientShap": 5, "DeepLiftShap": 2}.get(cfg.name, 1)
        tol = 1e-4 if cfg.inputs[0].dtype == torch.float32 else 1e-9
        if cfg.name == "ExactShapley":
            assert delta.abs().max().item() <= tol if delta.numel() else True


@MORE
@hypothesis.given(
    cfg=configs(("KernelShap", "ShapleyValueSampling", "ShapleyValues"), efficiency=True)
)
def test_exact_efficiency_per_example(cfg: Config) -> None:
    """KernelShap (efficiency held exactly, as documented), ShapleyValueSampling and
    ShapleyValues: each example's own features sum to f(x) - f(0) and a feature the
    example does not have gets exactly 0 (per-example masks with different id sets
    included)."""
    cfg.kw["return_input_shape"] = True
    if cfg.name == "ShapleyValues":
        cfg.kw.pop("return_input_shape")
    try:
        out, model = _call(cfg)
    except (ValueError, TypeError) as e:
        assert ARG_FIRST.match(str(e)), str(e)
        hypothesis.event(f"refused: {str(e).split(':')[0]}")
        return
    hypothesis.event("checked")
    B = cfg.inputs[0].shape[0]
    sizes = [math.prod(x.shape[1:]) for x in cfg.inputs]
    masks = cfg.masks or tuple(
        torch.arange(sum(sizes[:i]), sum(sizes[: i + 1])).view(1, *x.shape[1:])
        for i, x in enumerate(cfg.inputs)
    )
    all_ids = torch.cat([m.reshape(-1) for m in masks])
    if all_ids.numel() == 0:  # an empty batch with per-example masks: nothing to sum
        assert all(a.numel() == 0 for a in out)
        return
    lo, D = int(all_ids.min()), int(all_ids.max() - all_ids.min()) + 1
    # every element of a feature carries the feature's value (Captum's layout)
    phi = torch.zeros(B, D, dtype=torch.float64)
    for a, m in zip(out, masks):
        idx = (m.expand(B, *m.shape[1:]) - lo).reshape(B, math.prod(m.shape[1:]))
        phi.scatter_(1, idx, a.reshape(B, idx.shape[1]).double())
    with torch.no_grad():
        t = cfg.kw["target"]
        idx = torch.tensor(t if isinstance(t, list) else [t] * B, dtype=torch.long)
        fx = model(*cfg.inputs)[torch.arange(B), idx]
        fb = model(*(torch.zeros_like(x) for x in cfg.inputs))[torch.arange(B), idx]
    tol = 1e-4 if cfg.inputs[0].dtype == torch.float32 else 1e-9
    torch.testing.assert_close(phi.sum(1), (fx - fb).double(), atol=tol, rtol=0)
    for b in range(B):
        own = torch.cat([m[min(b, m.shape[0] - 1)].reshape(-1) for m in masks])
        absent = torch.ones(D, dtype=torch.bool)
        absent[torch.unique(own) - lo] = False
        assert (phi[b, absent] == 0).all(), (b, phi[b], own)


def _flat(out: Any) -> list[Tensor]:
    """Every tensor of a result (attributions, tuples of them, delta)."""
    if isinstance(out, Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


@MORE
@hypothesis.given(cfg=configs())
def test_results_do_not_depend_on_the_memory_budget(cfg: Config) -> None:
    try:
        ref, _ = _call(cfg)
    except (ValueError, TypeError):
        return
    small, _ = _call(cfg, memory_budget=4096)
    for a, b in zip(_flat(ref), _flat(small)):
        # NaN where a value does not exist (SIG's deltas of paths an example lacks)
        assert torch.equal(a.isnan(), b.isnan()), cfg.name
        assert torch.equal(a.nan_to_num(), b.nan_to_num()), (cfg.name, (a - b).abs().max())
