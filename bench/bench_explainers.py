"""End-to-end explainer benchmark: xattr vs Captum vs shap vs a plain-torch KernelSHAP.

Same run, same models, same inputs, the same number of model evaluations per
input (the rows each library pushed through the model are counted and printed),
on four models:

* ``tabular``: MLP 64 -> 256 -> 256 -> 1 over 64 features (breast-cancer data,
  standardised, padded with standard-normal columns), baseline 0;
* ``image_mlp``: MLP 784 -> 256 -> 10 on 1x28x28 digits (sklearn's load_digits
  upsampled), 49 superpixels (7x7 grid of 4x4 patches), baseline 0;
* ``image_cnn``: a small CNN on the same images and superpixels;
* ``text``: Embedding + mean + MLP over 16 token ids; features are token
  positions, removal replaces a token by the pad id 0.

Weights are fixed random (seeded): timing does not depend on training.

Methods: KernelShap, Lime, ShapleyValueSampling, FeatureAblation,
IntegratedGradients (n_steps=50), Saliency. Captum runs at its fastest setting
(``perturbations_per_eval`` = every perturbation of an input in one call);
shap runs KernelExplainer (one-row background = the baseline, ``l1_reg=False``)
for KernelShap and PermutationExplainer for ShapleyValueSampling; "torch" is
the vectorised KernelSHAP in :func:`torch_kernel_shap`.

"ideal" is the time the bare model takes for the rows xattr evaluated
(forward only under no_grad for perturbation methods, forward + backward for
gradient methods) at the fastest batch size of {64, 256, 1024, 4096};
overhead = 1 - ideal / wall.

    .venv/bin/python -m bench.bench_explainers             # full run, writes bench/results/
    .venv/bin/python -m bench.bench_explainers --quick     # tiny sizes, smoke (prints only)
    .venv/bin/python -m bench.bench_explainers --only tabular/KernelShap --repeats 9
"""

from __future__ import annotations

import argparse
import importlib
import math
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench._harness import (
    installed,
    interleaved,
    loadavg,
    machine_info,
    median,
    require,
    set_malloc,
    timed,
    write_results,
)
from xattr import ops

RESULTS = Path(__file__).resolve().parent / "results"
IDEAL_BATCHES = (64, 256, 1024, 4096)
PERTURBATION = ("KernelShap", "Lime", "ShapleyValueSampling", "FeatureAblation")
PERTURBATION += ("FeaturePermutation",)
GRADIENT = ("IntegratedGradients", "Saliency")
GRADIENT += ("DeepLift", "DeepLiftShap", "GuidedBackprop", "Deconvolution")  # issue 16
GRADIENT += ("LayerGradCam", "GuidedGradCam")
LAYERED = ("LayerGradCam", "GuidedGradCam")  # built from the model and cam_layer(case)
METHODS = PERTURBATION + GRADIENT
XATTR_MODULES = {
    "KernelShap": "kernel_shap",
    "Lime": "lime",
    "ShapleyValueSampling": "shapley_value_sampling",
    "FeatureAblation": "feature_ablation",
    "FeaturePermutation": "feature_permutation",
    "IntegratedGradients": "integrated_gradients",
    "Saliency": "saliency",
    "LayerGradCam": "layer_grad_cam",
    "GuidedGradCam": "guided_grad_cam",
}
XATTR_MODULES.update(
    DeepLift="deep_lift",
    DeepLiftShap="deep_lift",
    GuidedBackprop="guided_backprop",
    Deconvolution="guided_backprop",
)
# one forward + backward of the batch is the yardstick of these (ideal = that)
ONE_PASS = ("Saliency", "DeepLift", "GuidedBackprop", "Deconvolution", "LayerGradCam")
DEEPLIFT_SHAP_BASELINES = 8  # the distribution: the first inputs of the case
# Targets from the issue (checked and printed next to the numbers).
MAX_OVERHEAD = 0.10
MAX_SALIENCY_RATIO = 1.2
MIN_VS_CAPTUM = 20.0
MIN_VS_SHAP = 5.0
TARGET_MODELS = ("tabular", "image_mlp", "image_cnn")
# issue 16's methods: at least as fast as Captum on every model
AS_FAST_AS_CAPTUM = ("LayerGradCam", "FeaturePermutation", "GuidedGradCam")


# ----------------------------------------------------------------------------- models
class TextClassifier(nn.Module):
    """Embedding (pad id 0 -> zero vector) + mean over positions + MLP -> 2 classes.
    Float inputs (Captum's and shap's interpolated masks) are rounded to token ids."""

    def __init__(self, vocab: int = 5000, dim: int = 64, hidden: int = 128):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        with torch.no_grad():  # token effects of a trained model's size (~0.1-1 logit)
            self.emb.weight.mul_(16.0)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, 2)

    def forward(self, x: Tensor) -> Tensor:
        if x.is_floating_point():
            x = x.round().long()
        return self.fc2(torch.relu(self.fc1(self.emb(x).mean(1))))


def make_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    models = {
        "tabular": nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1)
        ),
        "image_mlp": nn.Sequential(
            nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)
        ),
        "image_cnn": nn.Sequential(  # ~0.2 MFLOP per image
            nn.Conv2d(1, 8, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * 7 * 7, 10),
        ),
        "text": TextClassifier(),
    }
    for m in models.values():
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
    return models


class Case:
    """One model with its inputs, baseline, feature groups and target."""

    def __init__(self, name: str, model: nn.Module, x: Tensor, baseline: Tensor, group: Tensor):
        self.name, self.model, self.x, self.baseline = name, model, x, baseline
        self.group = group  # int64 [*F]: feature id of every element
        self.d = int(group.max()) + 1
        self.differentiable = x.is_floating_point()
        with torch.no_grad():
            out = model(x)
        # one output per input: column 0 of a one-output model, else the predicted class
        self.target: int | Tensor = 0 if out.shape[1] == 1 else out.argmax(1)
        self.exact: Tensor | None = None  # exact Shapley values [B, d] where d allows

    @property
    def feature_mask(self) -> Tensor:
        return self.group.unsqueeze(0)

    def select(self, out: Tensor, per_example: int) -> Tensor:
        """Target outputs of rows ordered (example, copy) -> [rows]."""
        if isinstance(self.target, int):
            return out[:, self.target]
        t = self.target.repeat_interleave(per_example)
        return out.gather(1, t[:, None])[:, 0]

    def target_of(self, i: int) -> int:
        return self.target if isinstance(self.target, int) else int(self.target[i])


def cam_layer(case: Case) -> nn.Module:
    """The layer LayerGradCam attributes: the last hidden layer (the second convolution of
    the CNN, the embedding of the text model, whose token-id inputs need no gradient)."""
    m = case.model
    if case.name == "text":
        return m.emb
    return m[1] if case.name == "image_mlp" else m[2]


def load_inputs(n: int) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
    """(inputs, baseline [1, *F], feature groups [*F]) per model: real-looking data."""
    from sklearn.datasets import load_breast_cancer, load_digits

    g = torch.Generator().manual_seed(1)
    bc = torch.tensor(load_breast_cancer().data[:n], dtype=torch.float32)
    bc = (bc - bc.mean(0)) / bc.std(0).clamp_min(1e-6)
    tab = torch.cat([bc, torch.randn(bc.shape[0], 64 - bc.shape[1], generator=g)], 1)
    digits = torch.tensor(load_digits().images[:n], dtype=torch.float32) / 16.0
    img = F.interpolate(digits[:, None], size=(28, 28), mode="bilinear", align_corners=False)
    img = (img - 0.1307) / 0.3081
    r = torch.arange(28) // 4
    superpixels = (r[:, None] * 7 + r[None, :]).view(1, 28, 28)
    tokens = torch.randint(1, 5000, (n, 16), generator=g)
    return {
        "tabular": (tab, torch.zeros(1, 64), torch.arange(64)),
        "image_mlp": (img, torch.zeros(1, 1, 28, 28), superpixels),
        "image_cnn": (img, torch.zeros(1, 1, 28, 28), superpixels),
        "text": (tokens, torch.zeros(1, 16, dtype=torch.long), torch.arange(16)),
    }


def exact_shapley_values(case: Case, chunk: int = 16384) -> Tensor:
    """Exact Shapley values [B, d] from all 2^d coalitions (xattr.ops enumeration)."""
    masks = ops.enumerate_coalitions(case.d)
    vals = []
    with torch.no_grad():
        for i in range(case.x.shape[0]):
            xi, parts = case.x[i : i + 1], []
            for s in range(0, masks.shape[0], chunk):
                pert = ops.mask_apply(xi, masks[s : s + chunk], case.group, case.baseline)[0]
                parts.append(case.model(pert)[:, case.target_of(i)])
            vals.append(torch.cat(parts))
    return ops.exact_shapley(torch.stack(vals).double())


# ----------------------------------------------------------------------------- plain torch
def torch_kernel_shap(case: Case, x: Tensor, target: Any, n_samples: int, seed: int) -> Tensor:
    """Vectorised KernelSHAP in plain torch: n_samples paired Shapley-kernel coalitions
    shared by the batch, one masking op, one forward, one constrained least squares."""
    B, d, feat = x.shape[0], case.d, x.shape[1:]
    gen = torch.Generator().manual_seed(seed)
    k = torch.arange(1, d, dtype=torch.float64)
    p_size = (d - 1) / (k * (d - k))
    half = n_samples // 2
    sizes = torch.multinomial(p_size / p_size.sum(), half, replacement=True, generator=gen) + 1
    ranks = torch.rand(half, d, generator=gen).argsort(1).argsort(1)
    m = ranks < sizes[:, None]  # uniform subsets of the drawn sizes
    full, empty = torch.ones(1, d, dtype=torch.bool), torch.zeros(1, d, dtype=torch.bool)
    masks = torch.cat([m, ~m, full, empty])  # paired complements, then v(N), v(0)
    S = masks.shape[0]
    bits = masks[:, case.group.reshape(-1)].view(1, S, *feat)  # feature id -> element
    pert = torch.where(bits, x[:, None], case.baseline[:, None])  # [B, S, *F]
    with torch.no_grad():
        out = case.model(pert.reshape(B * S, *feat))
    if isinstance(target, int):
        v = out[:, target]
    else:
        v = out.gather(1, target.repeat_interleave(S)[:, None])[:, 0]
    v = v.view(B, S).double()
    v_full, v_empty, v = v[:, -2], v[:, -1], v[:, :-2]
    z = masks[:-2].double()
    w = torch.ones(z.shape[0], dtype=torch.float64)  # sampled from the kernel: equal weights
    # efficiency: phi_d = v(N) - v(0) - sum(phi_<d); eliminate the last feature
    y = v - v_empty[:, None] - z[:, -1:].T * (v_full - v_empty)[:, None]  # [B, S]
    X = z[:, :-1] - z[:, -1:]  # [S, d-1]
    sw = w.sqrt()[:, None]
    head = torch.linalg.lstsq(X * sw, (y.T * sw)).solution.T  # [B, d-1]
    last = (v_full - v_empty) - head.sum(1)
    phi = torch.cat([head, last[:, None]], 1)  # [B, d]
    return phi[:, case.group.reshape(-1)].view(B, *feat)


# ----------------------------------------------------------------------------- helpers
class Counter(nn.Module):
    """Wraps a model and counts the rows it is called on (a module, so that Captum's
    module-hooking methods, DeepLift and GuidedBackprop, take it)."""

    def __init__(self, model: Callable):
        super().__init__()
        self.model, self.rows, self.calls = model, 0, 0

    def forward(self, x: Tensor, *args: Any) -> Tensor:
        self.rows += x.shape[0]
        self.calls += 1
        return self.model(x, *args)


def as_features(attr: Any, case: Case) -> Tensor:
    """Per-element attributions [B, *F] -> per-feature values [B, d] (first element of
    each feature; every explainer here spreads one value over a feature's elements)."""
    a = torch.as_tensor(np.asarray(attr) if not isinstance(attr, Tensor) else attr)
    a = a.reshape(a.shape[0], -1).double()
    flat = case.group.reshape(-1)
    first = torch.full((case.d,), -1, dtype=torch.long)
    idx = torch.arange(flat.numel())
    first.scatter_reduce_(0, flat, idx, reduce="amin", include_self=False)
    return a[:, first]


def rel_error(phi: Tensor, exact: Tensor) -> float:
    """Mean over inputs of ||phi - exact|| / ||exact||."""
    num = (phi - exact).norm(dim=1)
    den = exact.norm(dim=1).clamp_min(1e-12)
    return float((num / den).mean())


def ideal_runner(case: Case, rows: int, gradient: bool, bs: int) -> Callable[[], None]:
    """The bare model over ``rows`` rows in batches of ``bs`` (forward only under no_grad,
    or forward + backward to the inputs), on a buffer of real inputs."""
    reps = math.ceil(bs / case.x.shape[0])
    src = case.x.repeat(reps, *([1] * (case.x.dim() - 1)))[:bs].contiguous()
    if gradient:
        src.requires_grad_(True)

    def run() -> None:
        left = rows
        while left > 0:
            n = min(bs, left)
            if gradient:
                xb = src[:n]
                torch.autograd.grad(case.model(xb)[:, 0].sum(), xb)
            else:
                with torch.no_grad():
                    case.model(src[:n])
            left -= n

    return run


def ideal_batch(case: Case, rows: int, gradient: bool, batches: tuple[int, ...]) -> int:
    """The fastest batch size of ``batches`` (capped at ``rows``) for ``rows`` rows."""
    best = (float("inf"), 0)
    for bs in sorted({min(b, rows) for b in batches}):
        run = ideal_runner(case, rows, gradient, bs)
        run()  # warm-up
        t = min(timed(run)[0] for _ in range(2))
        best = min(best, (t, bs))
    return best[1]


# ----------------------------------------------------------------------------- runners
def xattr_class(method: str) -> tuple[Any, str | None]:
    module = f"xattr.explainers.{XATTR_MODULES[method]}"
    try:
        return getattr(importlib.import_module(module), method), None
    except ModuleNotFoundError as e:
        if e.name == module:
            return None, f"{module} is not there yet"
        return None, f"{module}: import failed: {e}"
    except (ImportError, AttributeError) as e:
        return None, f"{module}: {type(e).__name__}: {e}"


def method_sizes(method: str, case: Case, cfg: dict[str, int]) -> dict[str, int]:
    """Per-method budgets, chosen so every library does the same model evaluations."""
    n = cfg["n_samples"]
    if method == "ShapleyValueSampling":
        # ~n_samples evaluations per input: n_perm permutations of d+... rows each
        n_perm = max(2, 2 * round(n / case.d / 2))
        return {"n_perm": n_perm}
    if method == "IntegratedGradients":
        return {"n_steps": cfg["n_steps"]}
    return {"n_samples": n}


def xattr_runner(method: str, case: Case, sz: dict[str, int], model: Callable) -> Callable:
    cls, _ = xattr_class(method)
    expl = cls(model, cam_layer(case)) if method in LAYERED else cls(model)
    kw: dict[str, Any] = {"target": case.target}
    if method in PERTURBATION:
        kw.update(baselines=case.baseline, feature_mask=case.feature_mask)
    if method == "FeaturePermutation":  # no baselines: features take permuted values
        kw.pop("baselines")
        kw.update(seed=0)
    if method in ("KernelShap", "Lime"):
        kw.update(n_samples=sz["n_samples"], seed=0)
    elif method == "ShapleyValueSampling":
        kw.update(n_samples=sz["n_perm"], seed=0)
    elif method == "IntegratedGradients":
        kw.update(baselines=case.baseline, n_steps=sz["n_steps"])
    kw.update(deeplift_baselines(method, case))
    return lambda x, t: expl.attribute(x, **{**kw, "target": t})


def captum_runner(method: str, case: Case, sz: dict[str, int], model: Callable) -> Callable:
    import captum.attr as ca

    cls = getattr(ca, method)
    expl = cls(model, cam_layer(case)) if method in LAYERED else cls(model)
    kw: dict[str, Any] = {}
    if method in PERTURBATION:
        kw.update(baselines=case.baseline, feature_mask=case.feature_mask)
    if method in ("KernelShap", "Lime"):
        kw.update(n_samples=sz["n_samples"], perturbations_per_eval=sz["n_samples"])
    elif method == "ShapleyValueSampling":
        kw.update(n_samples=sz["n_perm"], perturbations_per_eval=sz["n_perm"] * case.d)
    elif method == "FeatureAblation":
        kw.update(perturbations_per_eval=case.d)
    elif method == "FeaturePermutation":
        kw.pop("baselines")
        kw.update(perturbations_per_eval=case.d)
    elif method == "IntegratedGradients":
        kw.update(baselines=case.baseline, n_steps=sz["n_steps"])
    kw.update(deeplift_baselines(method, case))
    return lambda x, t: expl.attribute(x, target=t, **kw)


def deeplift_baselines(method: str, case: Case) -> dict[str, Tensor]:
    """DeepLift: the case's baseline; DeepLiftShap: a distribution of the first inputs."""
    if method == "DeepLift":
        return {"baselines": case.baseline}
    if method == "DeepLiftShap":
        return {"baselines": case.x[:DEEPLIFT_SHAP_BASELINES]}
    return {}


def torch_runner(method: str, case: Case, sz: dict[str, int], model: Callable) -> Callable:
    sub = Case.__new__(Case)
    sub.__dict__.update(case.__dict__)
    sub.model = model
    return lambda x, t: torch_kernel_shap(sub, x, t, sz["n_samples"], seed=0)


def shap_runner(method: str, case: Case, sz: dict[str, int], model: Callable) -> Callable:
    """shap on the rows it is given. ``tabular`` and ``text`` explain the features
    directly (background = the baseline row); images explain superpixel indicators
    z in {0,1}^49 per input (background z = 0, i.e. the baseline)."""
    import shap

    d = case.d
    direct = case.group.numel() == d
    feat = case.x.shape[1:]
    dtype = case.x.dtype
    if method == "ShapleyValueSampling":
        max_evals = (sz["n_perm"] // 2) * (2 * d + 1)  # n_perm/2 antithetic pairs

    def f_direct(t: int) -> Callable:
        def f(z: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                out = model(torch.from_numpy(np.ascontiguousarray(z)).to(dtype))
            return out[:, t].double().numpy()

        return f

    def f_masked(xi: Tensor, t: int) -> Callable:
        def f(z: np.ndarray) -> np.ndarray:
            bits = torch.from_numpy(z > 0.5)[:, case.group.reshape(-1)].view(-1, *feat)
            with torch.no_grad():
                out = model(torch.where(bits, xi, case.baseline))
            return out[:, t].double().numpy()

        return f

    def run(x: Tensor, target: Any) -> np.ndarray:
        rows = []
        per_t = not isinstance(target, int)
        groups: list[tuple[Callable, np.ndarray, np.ndarray]] = []
        if direct and not per_t:
            bg = case.baseline.reshape(1, -1).numpy()
            groups.append((f_direct(target), bg, x.reshape(x.shape[0], -1).numpy()))
        else:
            for i in range(x.shape[0]):
                t = int(target[i]) if per_t else target
                if direct:
                    bg = case.baseline.reshape(1, -1).numpy()
                    groups.append((f_direct(t), bg, x[i : i + 1].reshape(1, -1).numpy()))
                else:
                    groups.append((f_masked(x[i : i + 1], t), np.zeros((1, d)), np.ones((1, d))))
        for f, bg, data in groups:
            if method == "KernelShap":
                ex = shap.KernelExplainer(f, bg)
                rows.append(
                    np.asarray(
                        ex.shap_values(data, nsamples=sz["n_samples"], l1_reg=False, silent=True)
                    )
                )
            else:
                ex = shap.PermutationExplainer(f, bg, seed=0)
                rows.append(np.asarray(ex(data, max_evals=max_evals, silent=True).values))
        return np.concatenate([r.reshape(r.shape[0], -1) for r in rows])

    return run


RUNNERS = {"xattr": xattr_runner, "captum": captum_runner, "shap": shap_runner}
RUNNERS["torch"] = torch_runner


def libraries(method: str) -> list[str]:
    libs = ["xattr", "captum"]
    if method in ("KernelShap", "ShapleyValueSampling"):
        libs.append("shap")
    if method == "KernelShap":
        libs.append("torch")
    return [lib for lib in libs if lib in ("xattr", "torch") or installed(lib)]


def applicable(method: str, case: Case) -> str | None:
    if method in GRADIENT and method != "LayerGradCam" and not case.differentiable:
        return "token-id inputs are not differentiable"
    if method == "GuidedGradCam" and case.name != "image_cnn":
        return "no convolution whose map upsamples to the input"
    return None


# ----------------------------------------------------------------------------- one case
def run_library(
    lib: str,
    method: str,
    case: Case,
    sz: dict[str, int],
    repeats: int,
    warm_n: int,
    budget_s: float,
) -> dict[str, Any]:
    """Counted warm-up (on ``warm_n`` inputs), then up to ``repeats`` timed runs on the
    bare model (fewer once ``budget_s`` is spent, at least min(3, repeats)). For xattr,
    the ideal (the bare model over the same rows) is timed interleaved with it, so that
    both see the same machine load."""
    B = case.x.shape[0]
    counter = Counter(case.model)
    warm = RUNNERS[lib](method, case, sz, counter)
    xw = case.x[:warm_n]
    tw = case.target if isinstance(case.target, int) else case.target[:warm_n]
    warm(xw, tw)
    rows_per_input = counter.rows / warm_n
    fn = RUNNERS[lib](method, case, sz, case.model)
    ideal = None
    res: dict[str, Any] = {"library": lib}
    if lib == "xattr":
        gradient = method in GRADIENT and case.differentiable  # text: forward only
        if method in ONE_PASS:  # the target: one forward+backward of the batch
            rows, batches = B, (B,)
        else:
            rows, batches = int(round(rows_per_input * B)), IDEAL_BATCHES
        bs = ideal_batch(case, rows, gradient, batches)
        ideal = ideal_runner(case, rows, gradient, bs)
        res.update(ideal_batch=bs, ideal_rows=rows, ideal_samples_s=[])
    samples, out, spent = [], None, 0.0
    for i in range(repeats):
        if i >= min(3, repeats) and spent > budget_s:
            break
        t, out = timed(lambda: fn(case.x, case.target))
        samples.append(t)
        spent += t
        if ideal is not None:
            res["ideal_samples_s"].append(timed(ideal)[0])
    res.update(
        wall_s=median(samples),
        samples_s=samples,
        repeats=len(samples),
        rows_per_input=rows_per_input,
        rows=rows_per_input * B,
        forward_calls_warmup=counter.calls,
        rows_per_call=counter.rows / max(1, counter.calls),
        warmup_inputs=warm_n,
    )
    if ideal is not None:
        res["ideal_s"] = median(res["ideal_samples_s"])
    if case.exact is not None and method in PERTURBATION and out is not None:
        res["err_vs_exact"] = rel_error(as_features(out, case), case.exact)
    return res


def run_case(
    method: str, case: Case, cfg: dict[str, int], args: argparse.Namespace
) -> dict[str, Any] | None:
    name = f"{case.name}/{method}"
    reason = applicable(method, case)
    if reason:
        print(f"  {name}: n/a ({reason})", flush=True)
        return None
    sz = method_sizes(method, case, cfg)
    entry: dict[str, Any] = {"case": name, "model": case.name, "method": method, "sizes": sz}
    entry["d"] = case.d
    entry["results"] = {}
    entry["notes"] = []
    B = case.x.shape[0]
    for lib in libraries(method):
        if lib == "xattr":
            cls, why = xattr_class(method)
            if cls is None:
                print(f"  {name} [xattr]: skipped ({why})", flush=True)
                entry["notes"].append(f"xattr skipped: {why}")
                continue
            repeats, warm_n = args.repeats, B
        elif lib == "torch":
            repeats, warm_n = args.repeats, B
        elif lib == "captum":
            repeats, warm_n = min(args.repeats, args.captum_repeats), min(2, B)
        else:
            repeats, warm_n = min(args.repeats, args.shap_repeats), 1
        try:
            r = run_library(lib, method, case, sz, repeats, warm_n, args.case_budget)
        except Exception as e:  # an explainer in progress must not stop the run
            msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            print(f"  {name} [{lib}]: FAILED ({msg})", flush=True)
            if args.verbose:
                traceback.print_exc()
            entry["results"][lib] = {"library": lib, "error": msg}
            continue
        entry["results"][lib] = r
        err = f"  err {r['err_vs_exact']:.2e}" if "err_vs_exact" in r else ""
        print(
            f"  {name} [{lib}]: {r['wall_s'] * 1e3:9.1f} ms  (median of {r['repeats']})  "
            f"{r['rows_per_input']:.0f} rows/input{err}",
            flush=True,
        )
    x = entry["results"].get("xattr")
    if x and "wall_s" in x:
        t = x["ideal_s"]
        entry["ideal_s"], entry["ideal_batch"] = t, x["ideal_batch"]
        for r in entry["results"].values():
            if "wall_s" in r:
                r["overhead"] = 1.0 - t / r["wall_s"]
        entry["checks"] = checks(entry)
        line = ", ".join(
            f"{k}: {v['value']} ({'ok' if v['ok'] else 'MISSED'})"
            for k, v in entry["checks"].items()
        )
        print(
            f"  {name}: ideal {t * 1e3:.1f} ms (batch {x['ideal_batch']}, timed interleaved "
            f"with xattr); targets: {line or '-'}",
            flush=True,
        )
    return entry


def run_interleaved(method: str, case: Case, cfg: dict[str, int], repeats: int) -> str | None:
    """xattr and Captum timed in alternating rounds (bench._harness.interleaved: loops
    of >= 50 ms, medians), so that the load of a shared machine hits both alike: the
    ratio of calls too short for the sequential runs to compare. Returns the line."""
    if applicable(method, case) or "captum" not in libraries(method):
        return None
    sz = method_sizes(method, case, cfg)
    x, t = case.x, case.target
    fx = xattr_runner(method, case, sz, case.model)
    fc = captum_runner(method, case, sz, case.model)
    s = interleaved(
        {"xattr": lambda: fx(x, t), "captum": lambda: fc(x, t)},
        repeats=repeats,
        warmup=2,
        min_time=0.05,
    )
    a, b = s.median("xattr"), s.median("captum")
    return (
        f"  {case.name}/{method} interleaved: xattr {a * 1e3:.2f} ms, captum {b * 1e3:.2f} ms, "
        f"{b / a:.2f}x Captum (median of {repeats} rounds)"
    )


def ratio(entry: dict[str, Any], lib: str, other: str) -> float | None:
    a, b = entry["results"].get(lib, {}), entry["results"].get(other, {})
    if "wall_s" in a and "wall_s" in b:
        return b["wall_s"] / a["wall_s"]
    return None


def checks(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's targets for xattr on this case."""
    out: dict[str, dict[str, Any]] = {}
    x = entry["results"].get("xattr", {})
    if "wall_s" not in x:
        return out
    model, method = entry["model"], entry["method"]
    if model in TARGET_MODELS and method in PERTURBATION + ("IntegratedGradients",):
        ov = x["overhead"]
        out["overhead<=10%"] = {"value": f"{ov:.1%}", "ok": ov <= MAX_OVERHEAD}
    if method in ("Saliency", "DeepLift"):
        r = x["wall_s"] / entry["ideal_s"]
        out["<=1.2x fwd+bwd"] = {"value": f"{r:.2f}x", "ok": r <= MAX_SALIENCY_RATIO}
    if method in AS_FAST_AS_CAPTUM:
        c = ratio(entry, "xattr", "captum")
        if c is not None:
            out[">=1x Captum"] = {"value": f"{c:.2f}x", "ok": c >= 1.0}
    if model == "tabular" and method in ("KernelShap", "Lime"):
        c = ratio(entry, "xattr", "captum")
        if c is not None:
            out[">=20x Captum"] = {"value": f"{c:.1f}x", "ok": c >= MIN_VS_CAPTUM}
        s = ratio(entry, "xattr", "shap")
        if s is not None:
            out[">=5x shap"] = {"value": f"{s:.1f}x", "ok": s >= MIN_VS_SHAP}
    return out


# ----------------------------------------------------------------------------- latency
def run_latency(case: Case, cfg: dict[str, int], args: argparse.Namespace) -> dict[str, Any]:
    """One input explained alone: KernelShap on ``case``, p50 / p99 over runs."""
    sz = {"n_samples": cfg["n_samples"]}
    x1 = case.x[:1]
    t1 = case.target if isinstance(case.target, int) else case.target[:1]
    out: dict[str, Any] = {"case": f"latency/{case.name}/KernelShap", "results": {}, "notes": []}
    for lib, runs in (
        ("xattr", args.latency_runs),
        ("captum", args.latency_runs),
        ("shap", max(1, args.latency_runs // 2)),
        ("torch", args.latency_runs),
    ):
        if lib not in libraries("KernelShap"):
            continue
        if lib == "xattr" and xattr_class("KernelShap")[0] is None:
            print(f"  latency [xattr]: skipped ({xattr_class('KernelShap')[1]})", flush=True)
            out["notes"].append("xattr skipped: KernelShap not there yet")
            continue
        try:
            fn = RUNNERS[lib]("KernelShap", case, sz, case.model)
            fn(x1, t1)  # warm-up
            samples = [timed(lambda fn=fn: fn(x1, t1))[0] for _ in range(runs)]
        except Exception as e:
            msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            print(f"  latency [{lib}]: FAILED ({msg})", flush=True)
            out["results"][lib] = {"library": lib, "error": msg}
            continue
        p50, p99 = np.percentile(samples, [50, 99])
        out["results"][lib] = {
            "library": lib,
            "p50_s": float(p50),
            "p99_s": float(p99),
            "runs": runs,
            "samples_s": samples,
        }
        print(
            f"  latency {case.name}/KernelShap [{lib}]: p50 {p50 * 1e3:.2f} ms, "
            f"p99 {p99 * 1e3:.2f} ms ({runs} runs)",
            flush=True,
        )
    return out


# ------------------------------------------------------------------- one-pass sweep
SWEEP_BATCHES = (16, 256, 2048)


def sweep_row(case: Case, B: int, repeats: int) -> dict[str, Any]:
    """One batch size of :func:`run_one_pass_sweep`: each method's wall time over one bare
    forward + backward of the same B rows."""
    import captum.attr as ca

    from xattr.explainers.deep_lift import DeepLift
    from xattr.explainers.saliency import Saliency

    x = case.x.repeat(math.ceil(B / case.x.shape[0]), *([1] * (case.x.dim() - 1)))[:B]
    with torch.no_grad():
        out = case.model(x)
    t: int | Tensor = 0 if out.shape[1] == 1 else out.argmax(1)
    src = x.clone().requires_grad_(True)

    def bare() -> None:
        torch.autograd.grad(case.model(src)[:, 0].sum(), src)

    xattr_fns = {
        "xattr Saliency": lambda: Saliency(case.model).attribute(x, target=t),
        "xattr DeepLift": lambda: DeepLift(case.model).attribute(
            x, baselines=case.baseline, target=t
        ),
    }
    captum_fns = {
        "captum DeepLift": lambda: ca.DeepLift(case.model).attribute(
            x, baselines=case.baseline, target=t
        )
    }
    row: dict[str, Any] = {"batch": B}
    # each library against bare runs of its own, so that neither's garbage (Captum's
    # hooks and copies) lands on the other's timings
    for fns in (xattr_fns, captum_fns):
        smp = interleaved({"bare": bare, **fns}, repeats, warmup=2, min_time=0.02)
        row.setdefault("bare_s", smp.median("bare"))
        row.update({k: smp.median(k) / smp.median("bare") for k in fns})
    print(
        f"  sweep {case.name} B={B}: bare {row['bare_s'] * 1e3:.2f} ms; "
        + ", ".join(f"{k} {row[k]:.2f}x" for k in (*xattr_fns, *captum_fns)),
        flush=True,
    )
    return row


def run_one_pass_sweep(case: Case, batches: tuple[int, ...], repeats: int) -> dict[str, Any]:
    """Saliency and DeepLift (xattr, Captum) against one bare forward + backward of the
    same batch, for growing batches: the fixed Python cost of a call fades and the ratio
    approaches what the method adds per row (DeepLift: the reference row and one rule
    pass per nonlinearity). Timed interleaved; medians."""
    return {"model": case.name, "rows": [sweep_row(case, B, repeats) for B in batches]}


# ----------------------------------------------------------------------------- report
def fmt_ms(s: float | None) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    return f"{s * 1e3:.2f}" if s < 0.1 else f"{s * 1e3:.1f}"


def fmt_x(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}x" if v >= 10 else f"{v:.2f}x"


def markdown(report: dict[str, Any]) -> str:
    m, cfg = report["machine"], report["config"]
    lines = [
        "# Explainer benchmark",
        "",
        f"{m['date']}; torch {m['torch']}, captum {m['captum']}, shap {m['shap']}; "
        f"{m['threads']} thread(s); {m['cpu']} ({m['cpu_count']} CPUs); malloc "
        f"{m.get('malloc', 'system')}; "
        f"load {m.get('loadavg_before')} -> {m.get('loadavg_after')}.",
        "",
        f"{cfg['inputs']} inputs per case, n_samples = {cfg['n_samples']}, IG n_steps = "
        f"{cfg['n_steps']}. Wall = median of `runs` runs: up to {cfg['repeats']} for xattr and "
        f"torch (at least 3, fewer once {cfg['case_budget']:.0f} s of a case are spent), at most "
        f"{cfg['captum_repeats']} for Captum and {cfg['shap_repeats']} for shap "
        "(they are slow; their runs are capped). `xN` columns: how many times faster this "
        "row is than Captum / shap / plain torch. ideal: the bare model over xattr's rows "
        "at its fastest batch size of {64, 256, 1024, 4096} (Saliency: one forward+backward "
        "of the batch), timed interleaved with xattr's runs (median); overhead = 1 - ideal / "
        "wall. err: mean relative L2 error against "
        "exact Shapley values (text model only, 2^16 coalitions; Lime and FeatureAblation "
        "are not Shapley estimators, their error is shown for reference).",
        "",
        "| case | library | rows/input | rows/fwd | wall ms | runs | x Captum | x shap | x torch "
        "| ideal ms | overhead | err vs exact | targets (xattr) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for e in report["cases"]:
        for lib, r in e["results"].items():
            if "error" in r:
                lines.append(f"| {e['case']} | {lib} | FAILED: {r['error'][:80]} ||||||||||")
                continue
            err = r.get("err_vs_exact")
            tg = ""
            if lib == "xattr":
                tg = "; ".join(
                    f"{k} {v['value']} {'ok' if v['ok'] else '**missed**'}"
                    for k, v in e.get("checks", {}).items()
                )
            cells = [
                e["case"],
                lib,
                f"{r['rows_per_input']:.0f}",
                f"{r['rows_per_call']:.0f}",
                fmt_ms(r["wall_s"]),
                str(r["repeats"]),
                fmt_x(ratio(e, lib, "captum")),
                fmt_x(ratio(e, lib, "shap")),
                fmt_x(ratio(e, lib, "torch")),
                fmt_ms(e.get("ideal_s")),
                f"{r['overhead']:.0%}" if "overhead" in r else "-",
                "n/a" if err is None else f"{err:.2e}",
                tg,
            ]
            lines.append("| " + " | ".join(cells) + " |")
        for note in e.get("notes", []):
            lines.append(f"| {e['case']} | - | {note} ||||||||||")
    for lat in report.get("latency", []):
        lines += [
            "",
            f"## Latency: {lat['case']} (one input explained alone)",
            "",
            "| library | p50 ms | p99 ms | runs |",
            "|---|---:|---:|---:|",
        ]
        for lib, r in lat["results"].items():
            if "error" in r:
                lines.append(f"| {lib} | FAILED: {r['error'][:80]} | | |")
            else:
                lines.append(
                    f"| {lib} | {fmt_ms(r['p50_s'])} | {fmt_ms(r['p99_s'])} | {r['runs']} |"
                )
    if report.get("sweep"):
        lines += [
            "",
            "## Saliency and DeepLift over one bare forward + backward, by batch size",
            "",
            "Each figure is the method's wall time over one forward + backward of the bare "
            "model on the same batch (interleaved, medians); the target is <= "
            f"{MAX_SALIENCY_RATIO}x.",
            "",
            "| model | batch | bare fwd+bwd ms | xattr Saliency | xattr DeepLift | "
            "captum DeepLift |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for sw in report["sweep"]:
            for r in sw["rows"]:
                lines.append(
                    f"| {sw['model']} | {r['batch']} | {fmt_ms(r['bare_s'])} | "
                    f"{r['xattr Saliency']:.2f}x | {r['xattr DeepLift']:.2f}x | "
                    f"{r['captum DeepLift']:.2f}x |"
                )
    lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, smoke run (no files)")
    ap.add_argument("--only", default=None, help="run cases whose name contains this")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs (xattr, torch)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--inputs", type=int, default=None, help="inputs per case (default 16)")
    ap.add_argument("--n-samples", type=int, default=None, help="default 512")
    ap.add_argument("--captum-repeats", type=int, default=3, help="cap on Captum's runs")
    ap.add_argument("--shap-repeats", type=int, default=2, help="cap on shap's runs")
    ap.add_argument("--latency-runs", type=int, default=None, help="default 30")
    ap.add_argument(
        "--case-budget",
        type=float,
        default=None,
        help="seconds of timed runs per library and case before repeats stop (default 6)",
    )
    ap.add_argument(
        "--malloc",
        choices=("system", "reuse"),
        default="system",
        help="system: glibc's defaults (default); reuse: keep freed memory (see set_malloc)",
    )
    ap.add_argument(
        "--write", action="store_true", help="write results even with --quick or --only"
    )
    ap.add_argument("--out", default=str(RESULTS), help="results folder")
    ap.add_argument("-v", "--verbose", action="store_true", help="tracebacks of failures")
    ap.add_argument(
        "--interleave",
        action="store_true",
        help="only time xattr against Captum in alternating rounds (prints the ratios)",
    )
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    malloc = set_malloc(args.malloc)
    # numpy / scipy / scikit-learn BLAS (Captum's Lasso and linear regression, shap's
    # solves) get the same thread count: left alone they spin on every core.
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(args.threads)
        blas = sorted({f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info()})
    except ImportError:  # pragma: no cover
        blas = ["threadpoolctl not installed: BLAS threads not limited"]
    q = args.quick
    if not q:
        require(["captum", "shap"])
    cfg = {
        "inputs": args.inputs or (4 if q else 16),
        "n_samples": args.n_samples or (32 if q else 512),
        "n_steps": 8 if q else 50,
    }
    args.repeats = args.repeats or (1 if q else 7)
    args.case_budget = args.case_budget if args.case_budget is not None else 6.0
    args.latency_runs = args.latency_runs or (3 if q else 30)
    cfg.update(
        repeats=args.repeats,
        captum_repeats=min(args.repeats, args.captum_repeats),
        shap_repeats=min(args.repeats, args.shap_repeats),
        latency_runs=args.latency_runs,
        case_budget=args.case_budget,
    )

    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    info = machine_info(("captum", "shap"))
    info["blas_threads"] = blas
    info["malloc"] = malloc
    print(
        f"bench_explainers: torch {info['torch']}, captum {info['captum']}, shap {info['shap']}, "
        f"{info['threads']} thread(s) (BLAS {', '.join(blas)}), {info['cpu']}, "
        f"load {info['loadavg_before']}, malloc {malloc}",
        flush=True,
    )
    print(
        f"  {cfg['inputs']} inputs, n_samples {cfg['n_samples']}, IG n_steps {cfg['n_steps']}, "
        f"repeats {args.repeats} (Captum <= {cfg['captum_repeats']}, shap <= "
        f"{cfg['shap_repeats']}: capped, they are slow)",
        flush=True,
    )
    print(
        "  targets: overhead <= 10% (perturbation methods and IG on tabular/image_mlp/"
        "image_cnn); Saliency <= 1.2x one bare forward+backward; tabular KernelShap and "
        "Lime >= 20x faster than Captum and >= 5x faster than shap",
        flush=True,
    )

    t_start = time.perf_counter()
    models = make_models()
    data = load_inputs(cfg["inputs"])
    cases = [Case(n, models[n], *data[n]) for n in models]
    report: dict[str, Any] = {"machine": info, "config": cfg, "cases": [], "latency": []}
    report["notes"] = [
        "Same model, inputs and baselines for every library; models have fixed random "
        "(seeded) weights, inputs are real data (breast cancer, digits) or random token ids.",
        "ShapleyValueSampling: n_perm = n_samples / d permutations (rounded to even) so each "
        "input costs about n_samples evaluations; shap's PermutationExplainer gets "
        "max_evals = (n_perm/2) * (2d + 1), i.e. the same n_perm permutations (antithetic).",
        "Captum runs at its fastest setting: perturbations_per_eval = all of an input's "
        "perturbations (n_samples; n_perm * d for ShapleyValueSampling; d for "
        "FeatureAblation), IntegratedGradients with internal_batch_size=None.",
        "shap: KernelExplainer(l1_reg=False) with a one-row background equal to the "
        "baseline; images are explained over superpixel indicators (one explainer per "
        "input); Lime and FeatureAblation have no shap counterpart.",
        "Gradient methods do not apply to the text model (token-id inputs).",
        "Sampling methods run with seed=0; xattr's KernelShap keeps its coalition design "
        "per (d, n_samples, seed), so only the warm-up run builds it (about 3 ms at d = 64, "
        "n_samples = 512; a call with a new seed pays it).",
        f"Threads: torch {args.threads}; numpy/scipy/sklearn BLAS limited to the same through "
        f"threadpoolctl. malloc: {malloc} (system = glibc's defaults: activations over its "
        "mmap threshold, at most 32 MiB, are fresh pages each call and pay page faults; "
        "reuse = freed memory kept, as a caching allocator would).",
        "rows/input counts the model rows each library evaluated (counted in a warm-up "
        "run on the first inputs: all for xattr and torch, 2 for Captum, 1 for shap).",
    ]

    def want(name: str) -> bool:
        return args.only is None or args.only in name

    if args.interleave:
        for case in cases:
            for method in METHODS:
                line = want(f"{case.name}/{method}") and run_interleaved(
                    method, case, cfg, args.repeats
                )
                if line:
                    print(line, flush=True)
        return 0

    text = next(c for c in cases if c.name == "text")
    if any(want(f"text/{m}") for m in PERTURBATION):
        t, text.exact = timed(lambda: exact_shapley_values(text))
        print(f"  exact Shapley for text (2^{text.d} coalitions x {text.x.shape[0]}): {t:.1f} s")

    for case in cases:
        for method in METHODS:
            if not want(f"{case.name}/{method}"):
                continue
            print(f"[{case.name}/{method}]", flush=True)
            entry = run_case(method, case, cfg, args)
            if entry is not None:
                report["cases"].append(entry)

    tab = next(c for c in cases if c.name == "tabular")
    if want("latency/tabular/KernelShap"):
        print("[latency/tabular/KernelShap]", flush=True)
        report["latency"].append(run_latency(tab, cfg, args))

    report["sweep"] = []
    for case in cases:
        if case.differentiable and want(f"sweep/{case.name}"):
            print(f"[sweep/{case.name}]", flush=True)
            batches = (4, 16) if q else SWEEP_BATCHES
            report["sweep"].append(run_one_pass_sweep(case, batches, 3 if q else args.repeats))

    info["loadavg_after"] = loadavg()
    info["total_s"] = time.perf_counter() - t_start
    print(f"total {info['total_s']:.1f} s", flush=True)
    missed = [
        f"{e['case']}: {k} = {v['value']}"
        for e in report["cases"]
        for k, v in e.get("checks", {}).items()
        if not v["ok"]
    ]
    print("targets missed: " + ("; ".join(missed) if missed else "none"), flush=True)
    # Partial runs (--quick, --only) print their table instead of replacing the full one.
    if (not q and args.only is None) or args.write:
        write_results(Path(args.out) / "bench_explainers", report, markdown(report))
    else:
        print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
