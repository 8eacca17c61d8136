"""Explainers by name and their arguments from the command line: method names and
aliases (case-insensitive), the common options as flags, ``--option key=value`` for
the rest (checked against the method's signature), targets, baselines and feature
masks from numbers, names and files."""

from __future__ import annotations

import ast
import difflib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from xattr import baselines as named_baselines
from xattr.cli.errors import UsageError
from xattr.cli.loading import Inputs, Model, load_tensor_file
from xattr.explainers.registry import EXPLAINERS, ExplainerInfo
from xattr.smoothing import grid_patches

# Short names people use for the registered explainers (the registered names work
# too, in any case, with or without "_" / "-").
ALIASES = {
    "ig": "IntegratedGradients",
    "ks": "KernelShap",
    "shap": "KernelShap",
    "svs": "ShapleyValueSampling",
    "sampling": "ShapleyValueSampling",
    "shapleysampling": "ShapleyValueSampling",
    "exact": "ExactShapley",
    "ablation": "FeatureAblation",
    "fa": "FeatureAblation",
    "permutation": "FeaturePermutation",
    "mwi": "MeanWhenIncluded",
    "grad": "Saliency",
    "gradient": "Saliency",
    "ixg": "InputXGradient",
    "gradshap": "GradientShap",
    "sig": "ShapleyIntegratedGradients",
    "gbp": "GuidedBackprop",
    "deconv": "Deconvolution",
    "gradcam": "LayerGradCam",
    "lig": "LayerIntegratedGradients",
    "nt": "NoiseTunnel",
    "smoothgrad": "NoiseTunnel",
}
# These replace the gradients of the operations the model calls as it runs (its
# Python code): a TorchScript or torch.export model runs none, so they would return
# plain gradients (or fail); they need a package.module:factory model.
NEEDS_PYTHON = ("DeepLift", "DeepLiftShap", "GuidedBackprop", "Deconvolution", "GuidedGradCam")
# The explainer itself: not arguments of attribute that a user gives.
RESERVED = ("self", "inputs", "forward_func", "model", "layer", "attribution_method")


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def resolve_method(name: str, flag: str = "--method") -> ExplainerInfo:
    """The registered explainer called ``name``: its class name or an alias of
    :data:`ALIASES`, in any case, "_" and "-" ignored.

    Example:
        >>> resolve_method("kernel_shap").name, resolve_method("IG").name
        ('KernelShap', 'IntegratedGradients')
    """
    by_key = {_key(n): n for n in EXPLAINERS}
    by_key.update({a: n for a, n in ALIASES.items()})
    found = by_key.get(_key(name))
    if found is None:
        close = difflib.get_close_matches(_key(name), list(by_key), n=1)
        hint = f"; did you mean {by_key[close[0]]}?" if close else ""
        raise UsageError(
            f"{flag}: unknown method {name!r}{hint} (methods: {', '.join(EXPLAINERS)}; "
            f"aliases: {', '.join(sorted(ALIASES))})"
        )
    return EXPLAINERS[found]


def method_list(text: str) -> list[ExplainerInfo]:
    """Comma-separated method names, resolved, without repeats."""
    out: list[ExplainerInfo] = []
    for part in text.split(","):
        if part.strip():
            info = resolve_method(part.strip(), "--methods")
            if info not in out:
                out.append(info)
    if not out:
        raise UsageError("--methods: expected one or more method names, e.g. ig,kernelshap")
    return out


def parameters(fn: Any) -> dict[str, inspect.Parameter]:
    """The named parameters of ``fn`` (its ``**kwargs`` left out)."""
    return {
        n: p
        for n, p in inspect.signature(fn).parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def literal(text: str) -> Any:
    """A value from the command line: a Python literal (1, 0.5, (1, 4, 4), True, None,
    'x') or, when it is none, the text itself (so ``method=riemann_trapezoid`` needs
    no quotes)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``--option key=value`` items as a dict (values by :func:`literal`)."""
    out: dict[str, Any] = {}
    for item in items or ():
        k, sep, v = item.partition("=")
        if not sep or not k.strip().isidentifier():
            raise UsageError(f"--option: expected key=value, e.g. n_steps=32, got {item!r}")
        out[k.strip()] = literal(v.strip())
    return out


# ------------------------------------------------------------------ values
def _tensor_file(spec: str, what: str) -> Tensor:
    tensors = load_tensor_file(Path(spec), what)
    if len(tensors) != 1:
        raise UsageError(f"{what}: {spec} holds {len(tensors)} tensors, expected one")
    return tensors[0]


def target_value(spec: str | None, outputs: Tensor) -> Any:
    """``--target``: None (the default: the predicted class of a model with several
    outputs, else its one output), "pred", "none", an output index, or a file of B
    indices. Checked against the model's outputs [B] or [B, C]."""
    B = outputs.shape[0]
    C = 1 if outputs.dim() == 1 else outputs.shape[1]
    if spec is None:
        spec = "pred" if C > 1 else "none"
    if spec == "none":
        if C > 1:
            raise UsageError(
                f"--target: the model has {C} outputs per example; give one (an index, "
                "'pred' or a file)"
            )
        return None if outputs.dim() == 1 else 0
    if spec == "pred":
        return None if outputs.dim() == 1 else (outputs.argmax(1) if C > 1 else 0)
    try:
        t: Any = int(spec)
    except ValueError:
        t = None
    if t is None:
        if not Path(spec).suffix:
            raise UsageError(
                f"--target: expected an output index, 'pred', 'none' or a file, got {spec!r}"
            )
        t = _tensor_file(spec, "--target").reshape(-1)
        if t.is_floating_point() or t.numel() != B:
            raise UsageError(
                f"--target: {spec} must hold {B} integer indices (one per example), got "
                f"{t.numel()} of {t.dtype}"
            )
        t = t.to(torch.int64).to(outputs.device)
        bad = (t < 0) | (t >= C)
        if bool(bad.any()):
            raise UsageError(
                f"--target: index {int(t[bad][0])} in {spec} is out of range for a model "
                f"with {C} outputs"
            )
        return t
    if not 0 <= t < C:
        raise UsageError(f"--target: {t} is out of range for a model with {C} outputs (0..{C - 1})")
    return None if outputs.dim() == 1 else t


def baselines_value(spec: str | None, inputs: Inputs) -> Any:
    """``--baselines``: a number, "zero", "mean" (each example's mean per channel),
    "blur" (Gaussian blur), or a file of a tensor broadcastable to the inputs."""
    if spec is None:
        return None
    xs = inputs.tensors
    if spec == "zero":
        return 0.0
    if spec in ("mean", "blur"):
        if not all(x.is_floating_point() for x in xs):
            raise UsageError(f"--baselines: {spec!r} needs floating-point inputs")
        try:
            return named_baselines.resolve(spec if len(xs) == 1 else (spec,) * len(xs), _one(xs))
        except (ValueError, TypeError) as e:
            raise UsageError(f"--baselines: {e}") from e
    try:
        return float(spec)
    except ValueError:
        pass
    if not Path(spec).suffix:
        raise UsageError(
            f"--baselines: expected a number, 'zero', 'mean', 'blur' or a file, got {spec!r}"
        )
    tensors = load_tensor_file(Path(spec), "--baselines")
    if len(tensors) != len(xs):
        raise UsageError(
            f"--baselines: {spec} holds {len(tensors)} tensor(s), the inputs {len(xs)}"
        )
    out = []
    for b, x in zip(tensors, xs):
        try:  # the batch: 1, B, or a distribution of baselines (GradientShap, DeepLiftShap)
            same = b.dim() == x.dim()
            torch.broadcast_shapes(
                b.shape[1:] if same else b.shape, x.shape[1:] if same else x.shape
            )
        except RuntimeError:
            raise UsageError(
                f"--baselines: shape {list(b.shape)} in {spec} does not broadcast to the "
                f"inputs' {list(x.shape)}"
            ) from None
        out.append(b.to(x.device, x.dtype if x.is_floating_point() else b.dtype))
    return _one(tuple(out))


def _one(xs: tuple[Any, ...]) -> Any:
    return xs[0] if len(xs) == 1 else xs


def feature_mask_value(spec: str | None, patch: int | None, inputs: Inputs) -> Any:
    """``--feature-mask FILE`` (integer ids, [*F] or [1 or B, *F] per input) or
    ``--patch N`` (images [B, C, H, W]: N x N squares, all channels together)."""
    xs = inputs.tensors
    if spec is not None and patch is not None:
        raise UsageError("--feature-mask and --patch: give one of them")
    if patch is not None:
        if patch < 1:
            raise UsageError(f"--patch: expected a positive size, got {patch}")
        if len(xs) != 1 or xs[0].dim() != 4:
            raise UsageError(
                f"--patch: for images [B, C, H, W]; the inputs have shape(s) {inputs.shapes}"
            )
        return grid_patches(patch)(xs[0])
    if spec is None:
        return None
    masks = load_tensor_file(Path(spec), "--feature-mask")
    if len(masks) != len(xs):
        raise UsageError(f"--feature-mask: {spec} holds {len(masks)} mask(s), the inputs {len(xs)}")
    out = []
    for m, x in zip(masks, xs):
        if m.is_floating_point() and not bool((m == m.round()).all()):
            raise UsageError(f"--feature-mask: {spec} must hold integer feature ids")
        m = m.to(torch.int64)
        if m.dim() == x.dim() - 1:
            m = m.unsqueeze(0)
        if m.dim() != x.dim() or m.shape[1:] != x.shape[1:] or m.shape[0] not in (1, x.shape[0]):
            raise UsageError(
                f"--feature-mask: shape {list(m.shape)} in {spec} does not fit the inputs "
                f"{list(x.shape)} (expected [*F] or [1 or B, *F])"
            )
        out.append(m.to(x.device))
    return _one(tuple(out))


# ------------------------------------------------------------------ explainers
@dataclass
class Plan:
    """How to build and call one explainer.

    Attributes:
        info: the registered explainer.
        init: constructor arguments (beyond the model, the layer, the wrapped explainer).
        kwargs: ``attribute`` arguments, the inputs excepted.
        base: the explainer NoiseTunnel wraps.
        layer: the layer of a layer method (a dotted module name).
    """

    info: ExplainerInfo
    init: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    base: ExplainerInfo | None = None
    layer: str | None = None

    @property
    def name(self) -> str:
        return self.info.name if self.base is None else f"{self.info.name}({self.base.name})"

    def accepted(self) -> dict[str, inspect.Parameter]:
        """The ``attribute`` arguments the explainer takes (NoiseTunnel: its own and its
        explainer's)."""
        params = parameters(self.info.cls.attribute)
        if self.base is not None:
            params = {**parameters(self.base.cls.attribute), **params}
        return {n: p for n, p in params.items() if n not in RESERVED}

    def init_accepted(self) -> dict[str, inspect.Parameter]:
        cls = self.base.cls if self.base is not None else self.info.cls
        return {n: p for n, p in parameters(cls.__init__).items() if n not in RESERVED}

    def build(self, model: Any) -> Any:
        """The explainer on ``model``."""
        if self.base is not None:
            return self.info.cls(self.base.cls(model, **self.init))
        if self.layer is not None:
            return self.info.cls(model, find_layer(model, self.layer), **self.init)
        return self.info.cls(model, **self.init)


def find_layer(model: Any, name: str) -> torch.nn.Module:
    """The submodule ``name`` (dotted, as ``model.named_modules()`` lists it)."""
    try:
        return model.get_submodule(name)
    except (AttributeError, TypeError):
        names = (
            [n for n, _ in model.named_modules() if n] if hasattr(model, "named_modules") else []
        )
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise UsageError(
            f"--layer: the model has no module {name!r} (its modules: {shown})"
        ) from None


def make_plan(
    info: ExplainerInfo,
    model: Model,
    flags: dict[str, Any],
    options: dict[str, Any],
    *,
    base: str | None = None,
    layer: str | None = None,
    strict: bool = True,
) -> Plan:
    """The explainer ``info`` with its arguments: ``flags`` (the common options, by
    argument name, None where not given) and ``options`` (``--option``; a key of the
    constructor goes there). With ``strict``, a flag the method does not take is an
    error; otherwise it is left out (``compare``, where one set of flags serves
    several methods)."""
    plan = Plan(info)
    if info.name == "NoiseTunnel":
        if base is None:
            raise UsageError(
                "--method NoiseTunnel: name the explainer it wraps with --base, e.g. "
                "--base saliency"
            )
        plan.base = resolve_method(base, "--base")
        if not plan.base.standalone:
            raise UsageError(
                f"--base: {plan.base.name} cannot be wrapped (it needs more than the model)"
            )
    elif base is not None:
        raise UsageError("--base: only for --method NoiseTunnel")
    needs_layer = not info.standalone and info.kind != "wrapper"
    if needs_layer:
        if layer is None:
            raise UsageError(
                f"--method {info.name}: name the layer to attribute with --layer NAME (a module "
                "name of model.named_modules(), e.g. --layer features.3)"
            )
        plan.layer = layer
    elif layer is not None:
        raise UsageError(f"--layer: {info.name} takes no layer")
    inner = plan.base.name if plan.base is not None else info.name
    if (inner in NEEDS_PYTHON or needs_layer) and not model.python:
        raise UsageError(
            f"--method {inner}: needs the model's Python code (it changes the gradients of the "
            f"operations the model calls, or hooks its layers), which a {model.kind_name} does "
            "not run; give the model as package.module:factory (with --state-dict)"
        )
    accepted = plan.accepted()
    init_accepted = plan.init_accepted()
    for name, value in flags.items():
        if value is None:
            continue
        if name in accepted:
            plan.kwargs[name] = value
        elif strict:
            flag = "--" + name.replace("_", "-")
            raise UsageError(
                f"{FLAG_NAMES.get(name, flag)}: {plan.name} does not take {name} (its arguments: "
                f"{', '.join(accepted)})"
            )
    for name, value in options.items():
        if name in accepted:
            plan.kwargs[name] = value
        elif name in init_accepted:
            plan.init[name] = value
        else:
            raise UsageError(
                f"--option {name}: {plan.name} has no argument {name!r} (attribute takes: "
                f"{', '.join(accepted)}; the constructor: {', '.join(init_accepted) or 'nothing'})"
            )
    if "seed" in accepted and "seed" not in plan.kwargs:
        plan.kwargs["seed"] = 0
    missing = [
        n
        for n, p in accepted.items()
        if p.default is inspect.Parameter.empty and n not in plan.kwargs
    ]
    if missing:
        hint = {
            "baselines": "--baselines",
            "sliding_window_shapes": "--patch N or --option sliding_window_shapes=(1,4,4)",
        }
        needs = ", ".join(hint.get(n, f"--option {n}=...") for n in missing)
        raise UsageError(f"--method {plan.name}: needs {needs}")
    return plan


# The flag of each common argument, for messages.
FLAG_NAMES = {
    "baselines": "--baselines",
    "feature_mask": "--feature-mask/--patch",
    "n_samples": "--n-samples",
    "n_steps": "--n-steps",
    "seed": "--seed",
    "perturbations_per_eval": "--perturbations-per-eval",
    "internal_batch_size": "--internal-batch-size",
    "memory_budget": "--memory-budget",
}
