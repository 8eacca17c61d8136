"""GANMEX on images: which baseline answers "why y and not c?".

Two image sets, each with a small CNN f trained here (seeded) and an independent
judge (an MLP of another seed, trained on other images):

* scikit-learn's 8 x 8 digits (experiments/_digits.py's split: 1,400 train, 397
  held out);
* Fashion-MNIST (28 x 28, Debian's ``dataset-fashion-mnist``, which ``make
  experiments-install`` installs; f, the judge and the GAN train on 12,000 of its
  60,000 training images). Without the package the data set is skipped (said on the
  console and in the JSON).

GANMEX (xattr.baselines.GANMEX) is trained against f. For held-out images of
predicted class y, the contrast class c is f's runner-up (the alternative a user asks
about). Five baselines: zero, uniform noise, blur, the nearest training image of class
c, and GANMEX's G(x, c). Three explainers, each explaining the margin f_y - f_c with
each baseline: IntegratedGradients (32 steps), Occlusion (one patch at a time) and
KernelShap (16 patches, 256 coalitions). Random attributions are the control.

1. ``xattr.metrics.target_class_curve``: the top-k pixels take a replacement
   reference's values; the margin f_c - f_y is tracked as k grows (AUC over the
   fraction replaced: higher is a faster move toward c). References: each method's
   own baseline; G(x, c) for every method (favours GANMEX: its attributions were
   computed against exactly those values); and the fair one, a real image of class
   c that no method used (the nearest held-out image of class c, from images that
   are not explained).
2. ``xattr.metrics.cascading_randomization``: SSIM between the attribution maps of f
   and of f with its layers re-initialised from the output backwards (lower after
   randomisation = the map depends on what f learned).
3. Validity: how often f and the judge put each baseline in class c, and its mean
   L1 distance to x.
4. A figure of inputs, counterfactuals and attribution maps side by side.

Speed: baselines per second (one batched generator forward) and the cost of
``GANMEX.one_vs_one`` over the plain explainer given the same baseline.

Writes experiments/results/ganmex_images.{json,md,png} and ganmex_images_maps.png.

Run: .venv/bin/python -m experiments.ganmex_images   (about 10 min on an idle 2-core
machine, one torch thread, most of it GAN training: 5 x 1,000 steps on 8 x 8 digits,
1,000 on 28 x 28 Fashion-MNIST; --quick: seconds, writes nothing unless --out is given)
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

import xattr
from bench._harness import interleaved, median_time, write_results
from experiments._digits import digits
from experiments._images import (
    FASHION,
    FASHION_CLASSES,
    fashion_mnist,
    fit,
    patches,
    train_cnn,
)
from xattr import metrics
from xattr.baselines import GANMEX, CounterfactualWarning, blur, nearest_of_class, uniform
from xattr.baselines.ganmex import PairwiseMargins

RESULTS = Path(__file__).resolve().parent / "results"
BASELINES = ("zero", "uniform", "blur", "nearest", "GANMEX")
REFERENCES = ("own", "G(x, c)", "real c (fair)")
SHORT = {"IntegratedGradients": "IG", "KernelShap": "KS"}


@dataclass
class Data:
    name: str
    x_train: torch.Tensor  # what f, the judge and the GAN train on
    y_train: torch.Tensor
    x_test: torch.Tensor  # held out: the explained images, then the fair references' pool
    y_test: torch.Tensor
    classes: tuple[str, ...]
    patch: int  # Occlusion's window and KernelShap's patches
    cnn_epochs: int
    gan_steps: int
    ssim_window: int
    sweep: bool = False  # the lambda_sim sweep (digits: cheap to train)


def train_judge(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> nn.Module:
    """The independent judge: an MLP (another architecture than f's CNN), its own seed."""
    torch.manual_seed(seed + 1)
    judge = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 256), nn.ReLU(), nn.Linear(256, 10))
    return fit(judge, x, y, epochs, seed + 1, lr=1e-3)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def explainers(data: Data, seed: int) -> dict[str, Callable[..., torch.Tensor]]:
    """name -> explain(model, x, baselines, target): [B, *F] attributions of ``model``."""
    mask = patches(data.x_test.shape[-1], data.patch)
    window = (1, data.patch, data.patch)
    return {
        "IntegratedGradients": lambda m, x, b, t: xattr.IntegratedGradients(m).attribute(
            x, baselines=b, target=t, n_steps=32
        ),
        "Occlusion": lambda m, x, b, t: xattr.Occlusion(m).attribute(
            x, sliding_window_shapes=window, strides=window, baselines=b, target=t
        ),
        "KernelShap": lambda m, x, b, t: xattr.KernelShap(m).attribute(
            x, baselines=b, target=t, feature_mask=mask, n_samples=256, seed=seed
        ),
    }


def speed(gm: GANMEX, f: nn.Module, x: torch.Tensor, c: torch.Tensor, repeats: int) -> dict:
    """Baselines per second at batch 256, and one_vs_one's cost over the plain
    explainer given the same baseline (IntegratedGradients, 32 steps)."""
    xb = x.repeat((256 + x.shape[0] - 1) // x.shape[0], 1, 1, 1)[:256]
    cb = c.repeat((256 + c.shape[0] - 1) // c.shape[0])[:256]
    gen_s, _ = median_time(lambda: gm.generate(xb, cb), repeats)
    with torch.no_grad():
        y = f(x).argmax(1)
    margins = PairwiseMargins(f, 10)
    t = margins.target(y, c)
    b = gm.generate(x, c)
    ig = xattr.IntegratedGradients

    def plain() -> Any:
        return ig(margins).attribute(x, baselines=b, target=t, n_steps=32)

    def ovo(check: bool) -> Any:
        with warnings.catch_warnings():  # the check's warning: its cost is what is timed
            warnings.simplefilter("ignore", CounterfactualWarning)
            return gm.one_vs_one(ig, x, c, source=y, check=check, n_steps=32)

    # side by side, interleaved: the machine's load hits each alike
    s = interleaved(
        {
            "plain": plain,
            "ovo": lambda: ovo(False),
            "ovo_check": lambda: ovo(True),
            "forward": lambda: gm.generate(x, c),
        },
        repeats,
        1,
    )
    plain_s, ovo_s, ovo_check_s, forward_s = map(s.median, ("plain", "ovo", "ovo_check", "forward"))
    return {
        "baselines_per_second_batch_256": 256 / gen_s,
        "explained_batch": int(x.shape[0]),
        "ig_seconds": plain_s,
        "one_vs_one_seconds": ovo_s,
        "one_vs_one_checked_seconds": ovo_check_s,
        "generator_forward_seconds": forward_s,
        "overhead_over_generator_forward": (ovo_s - plain_s) / forward_s,
    }


def judged(gm: GANMEX, x: torch.Tensor, c: torch.Tensor, judge: nn.Module) -> dict[str, float]:
    """G(x, c)'s validity under f and under the judge, and its mean L1 distance to x."""
    return {
        "f": gm.validity(x, c),
        "judge": gm.validity(x, c, judge),
        "l1_to_x": float((gm.generate(x, c) - x).abs().mean()),
    }


def lambda_sim_sweep(
    data: Data,
    f: nn.Module,
    judge: nn.Module,
    x: torch.Tensor,
    c: torch.Tensor,
    args: argparse.Namespace,
) -> list[dict[str, float]]:
    """GANMEX trained with each lambda_sim in ``args.sweep`` (``args.sweep_steps`` steps):
    validity under f and the judge, and the counterfactuals' mean L1 distance to x."""
    rows = []
    for lam in args.sweep:
        gm = GANMEX(f, 10, tuple(x.shape[1:]), lambda_sim=lam, seed=args.seed)
        gm.fit(
            (data.x_train, data.y_train),
            steps=args.sweep_steps,
            seed=args.seed,
            show_progress=not args.quiet,
        )
        rows.append({"lambda_sim": lam, **judged(gm, x, c, judge)})
        print(f"lambda_sim sweep: {rows[-1]}", flush=True)
    return rows


def run(data: Data, args: argparse.Namespace) -> tuple[dict, dict]:
    t0 = time.perf_counter()
    n = args.examples
    f = train_cnn(data.x_train, data.y_train, data.cnn_epochs, args.seed)
    judge = train_judge(data.x_train, data.y_train, data.cnn_epochs, args.seed)
    x_ex, x_pool, y_pool = data.x_test[:n], data.x_test[n:], data.y_test[n:]
    with torch.no_grad():
        logits = f(x_ex)
    y = logits.argmax(1)
    c = logits.scatter(1, y[:, None], -torch.inf).argmax(1)  # f's runner-up
    print(
        f"{data.name}: f {accuracy(f, data.x_test, data.y_test):.3f}, judge "
        f"{accuracy(judge, data.x_test, data.y_test):.3f} held-out accuracy",
        flush=True,
    )

    t = time.perf_counter()
    gm = GANMEX(f, 10, tuple(data.x_train.shape[1:]), lambda_sim=args.lambda_sim, seed=args.seed)
    by_step = []
    for k in range(1, 5):  # in four stages (fit resumes exactly), judged after each
        gm.fit(
            (data.x_train, data.y_train),
            steps=max(1, data.gan_steps * k // 4),
            batch_size=32,
            seed=args.seed,
            checkpoint_dir=None if args.checkpoints is None else args.checkpoints / data.name,
            show_progress=not args.quiet,
        )
        by_step.append({"step": gm.step, **judged(gm, x_ex, c, judge)})
    gan_seconds = time.perf_counter() - t
    sweep = lambda_sim_sweep(data, f, judge, x_ex, c, args) if data.sweep else []

    g_x, valid = gm.baseline(x_ex, c, return_valid=True)
    base = {
        "zero": torch.zeros_like(x_ex),
        "uniform": uniform(x_ex, seed=args.seed),
        "blur": blur(x_ex, sigma=data.x_test.shape[-1] / 4),
        "nearest": nearest_of_class(x_ex, c, data.x_train, data.y_train),
        "GANMEX": g_x,
    }
    fair = nearest_of_class(x_ex, c, x_pool, y_pool)
    with torch.no_grad():
        validity = {
            name: {
                "f": float((f(b).argmax(1) == c).float().mean()),
                "judge": float((judge(b).argmax(1) == c).float().mean()),
                "l1_to_x": float((b - x_ex).abs().mean()),
            }
            for name, b in {**base, "real c (fair reference)": fair}.items()
        }
    others = torch.stack([(y + k) % 10 for k in range(1, 10)], 1).flatten()  # every c != y
    x_rep = x_ex.repeat_interleave(9, 0)
    all_pairs = {"f": gm.validity(x_rep, others), "judge": gm.validity(x_rep, others, judge)}

    margins = PairwiseMargins(f, 10)
    target = margins.target(y, c)
    explain = explainers(data, args.seed)
    attrs: dict[tuple[str, str], torch.Tensor] = {}
    for method, fn in explain.items():
        for bname, b in base.items():
            attrs[method, bname] = fn(margins, x_ex, b, target).detach()
    rand = torch.rand(x_ex.shape, generator=torch.Generator().manual_seed(args.seed))

    curves: dict[str, dict[str, Any]] = {}
    table: dict[str, dict[str, float]] = {}
    for ref in REFERENCES:
        for (method, bname), a in [*attrs.items(), (("random", "-"), rand)]:
            if ref == "own":
                r = base.get(bname)
                if r is None:
                    continue
            else:
                r = g_x if ref == "G(x, c)" else fair
            curve = metrics.target_class_curve(f, x_ex, a, y, c, r, n_steps=20)
            key = f"{method} | {bname} | {ref}"
            k10 = int(torch.searchsorted(curve.fractions, torch.tensor(0.1)))
            table[key] = {
                "auc": float(curve.auc.mean()),
                "flipped_at_10pct": float(curve.flipped[:, k10].float().mean()),
                "flipped_at_end": float(curve.flipped[:, -1].float().mean()),
            }
            curves[key] = {
                "fractions": curve.fractions.tolist(),
                "margin": curve.margin.mean(0).tolist(),
            }

    sanity = {}
    m = min(args.sanity_examples, n)
    for method, bname in attrs:
        fn, b = explain[method], base[bname][:m]
        result = metrics.cascading_randomization(
            f,
            lambda model, x, t, fn=fn, b=b: fn(PairwiseMargins(model, 10), x, b, t),
            x_ex[:m],
            target[:m],
            seed=args.seed,
            win_size=data.ssim_window,
        )
        sanity[f"{method} | {bname}"] = {
            "layers": ["none", *result.layers],
            "ssim": result.ssim.nanmean(1).tolist(),
        }

    report = {
        "data": data.name,
        "train_images": int(data.x_train.shape[0]),
        "explained": n,
        "f_accuracy": accuracy(f, data.x_test, data.y_test),
        "judge_accuracy": accuracy(judge, data.x_test, data.y_test),
        "gan": {
            "steps": data.gan_steps,
            "batch_size": 32,
            "lambda_sim": args.lambda_sim,
            "seconds": gan_seconds,
            "explained_baselines_valid_under_f": float(valid.float().mean()),
            "by_step": by_step,
        },
        "validity": validity,
        "lambda_sim_sweep": sweep,
        "ganmex_validity_all_pairs": all_pairs,
        "target_class_curve": table,
        "target_class_curves": curves,
        "cascading_randomization": sanity,
        "speed": speed(gm, f, x_ex[:16], c[:16], 3 if args.quick else 7),
        "seconds": time.perf_counter() - t0,
    }
    figure = {
        "x": x_ex[:4],
        "y": y[:4],
        "c": c[:4],
        "nearest": base["nearest"][:4],
        "G": g_x[:4],
        "maps": {k: v[:4] for k, v in attrs.items()},
    }
    return report, figure


def markdown(reports: list[dict], skipped: dict[str, str]) -> str:
    out = ['# GANMEX on images: which baseline answers "why y and not c?"', ""]
    out += [
        "Run: `.venv/bin/python -m experiments.ganmex_images`. Explained: the logit "
        "margin f_y - f_c, y = f's prediction, c = f's runner-up.",
        "",
    ]
    for name, msg in skipped.items():
        out += [f"- {name}: {msg}", ""]
    for rep in reports:
        g = rep["gan"]
        out += [
            f"## {rep['data']}",
            "",
            f"f's held-out accuracy {rep['f_accuracy']:.3f}, the judge's "
            f"{rep['judge_accuracy']:.3f}; GANMEX: {g['steps']} steps of {g['batch_size']}, "
            f"lambda_sim {g['lambda_sim']:g}, {g['seconds']:.0f} s; {rep['explained']} "
            "images explained.",
            "",
            "### Validity: how often each baseline is of class c, and its distance to x",
            "",
            "| baseline | class c under f | under the judge | mean L1 to x |",
            "|---|---|---|---|",
        ]
        for b, v in rep["validity"].items():
            out.append(f"| {b} | {v['f']:.3f} | {v['judge']:.3f} | {v['l1_to_x']:.3f} |")
        ap = rep["ganmex_validity_all_pairs"]
        out += [
            "",
            f"GANMEX over every c != y (9 per image): valid under f {ap['f']:.3f}, under "
            f"the judge {ap['judge']:.3f}.",
            "",
        ]
        out += [
            "### GANMEX's counterfactuals during training (the explained images)",
            "",
            "| step | class c under f | under the judge | mean L1 to x |",
            "|---|---|---|---|",
        ]
        out += [
            f"| {r['step']} | {r['f']:.3f} | {r['judge']:.3f} | {r['l1_to_x']:.3f} |"
            for r in g["by_step"]
        ]
        out.append("")
        if rep["lambda_sim_sweep"]:
            out += [
                "### lambda_sim (the L1 closeness weight) on its own: a shorter run each",
                "",
                "| lambda_sim | class c under f | under the judge | mean L1 to x |",
                "|---|---|---|---|",
            ]
            out += [
                f"| {r['lambda_sim']:g} | {r['f']:.3f} | {r['judge']:.3f} | {r['l1_to_x']:.3f} |"
                for r in rep["lambda_sim_sweep"]
            ]
            out.append("")
        out += [
            "### Target-class curves: margin f_c - f_y AUC as the top pixels are replaced",
            "",
            "Higher AUC = the prediction moves toward c after fewer pixels. Columns are the "
            'replacement reference; "real c (fair)" is the only one no method used.',
            "",
            "| method | baseline | " + " | ".join(REFERENCES) + " |",
            "|---|---|" + "---|" * len(REFERENCES),
        ]
        table = rep["target_class_curve"]
        rows = sorted({k.rsplit(" | ", 1)[0] for k in table})
        for row in rows:
            cells = [
                f"{table[f'{row} | {ref}']['auc']:.2f}" if f"{row} | {ref}" in table else "-"
                for ref in REFERENCES
            ]
            out.append(f"| {row} | " + " | ".join(cells) + " |")
        out += [
            "",
            "### Cascading randomisation: SSIM to the original map after all layers",
            "",
            "Lower = the map depends more on what f learned.",
            "",
            "| method | " + " | ".join(BASELINES) + " |",
            "|---|" + "---|" * len(BASELINES),
        ]
        san = rep["cascading_randomization"]
        for method in sorted({k.split(" | ")[0] for k in san}):
            cells = [f"{san[f'{method} | {b}']['ssim'][-1]:.3f}" for b in BASELINES]
            out.append(f"| {method} | " + " | ".join(cells) + " |")
        s = rep["speed"]
        out += [
            "",
            "### Speed (one torch thread)",
            "",
            f"- {s['baselines_per_second_batch_256']:,.0f} baselines per second (batch 256).",
            f"- IntegratedGradients (32 steps) on {s['explained_batch']} images: "
            f"{s['ig_seconds'] * 1e3:.1f} ms given the baselines; one_vs_one "
            f"{s['one_vs_one_seconds'] * 1e3:.1f} ms ({s['one_vs_one_checked_seconds'] * 1e3:.1f}"
            f" ms with the validity check); the generator forward alone "
            f"{s['generator_forward_seconds'] * 1e3:.1f} ms. Overhead / generator forward: "
            f"{s['overhead_over_generator_forward']:.2f}.",
            "",
        ]
    return "\n".join(out)


def plot(reports: list[dict], figures: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the curves: IntegratedGradients per baseline, one panel per (data set, reference)
    fig, axes = plt.subplots(
        len(reports),
        len(REFERENCES),
        figsize=(5 * len(REFERENCES), 3.8 * len(reports)),
        squeeze=False,
    )
    for i, rep in enumerate(reports):
        for j, ref in enumerate(REFERENCES):
            ax = axes[i, j]
            for b in (*BASELINES, "-"):
                method = "random" if b == "-" else "IntegratedGradients"
                key = f"{method} | {b} | {ref}"
                if key not in rep["target_class_curves"]:
                    continue
                c = rep["target_class_curves"][key]
                ax.plot(
                    c["fractions"],
                    c["margin"],
                    ":" if b == "-" else "-",
                    label="random" if b == "-" else b,
                )
            ax.axhline(0, color="grey", lw=0.5)
            ax.set(title=f"{rep['data']}: reference {ref}", xlabel="fraction of pixels replaced")
            if j == 0:
                ax.set_ylabel("mean margin f_c - f_y (IG maps)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

    # the maps: x, G(x, c), nearest, then IG and KernelShap maps per baseline
    cols = ["zero", "blur", "nearest", "GANMEX"]
    methods = ("IntegratedGradients", "KernelShap")
    rows = sum(f["x"].shape[0] for f in figures)
    ncol = 3 + len(cols) * len(methods)
    fig, axes = plt.subplots(rows, ncol, figsize=(1.5 * ncol, 1.6 * rows), squeeze=False)
    r = 0
    for rep, figd in zip(reports, figures):
        names = rep["classes"]
        for i in range(figd["x"].shape[0]):
            y, c = int(figd["y"][i]), int(figd["c"][i])
            panels = [
                (figd["x"][i], f"x: {names[y]}", "gray"),
                (figd["G"][i], f"G(x, c): {names[c]}", "gray"),
                (figd["nearest"][i], f"nearest {names[c]}", "gray"),
            ]
            for method in methods:
                for b in cols:
                    panels.append((figd["maps"][method, b][i], f"{SHORT[method]} {b}", "bwr"))
            for j, (img, title, cmap) in enumerate(panels):
                ax = axes[r, j]
                img = (img[0] if img.dim() == 3 else img).numpy()
                if cmap == "gray":
                    ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
                else:
                    v = float(abs(img).max()) or 1.0
                    ax.imshow(img, cmap=cmap, vmin=-v, vmax=v)
                ax.set_title(title, fontsize=7)
                ax.set_axis_off()
            r += 1
    fig.suptitle(
        "why y and not c: red = for y, blue = for c (IG = IntegratedGradients, KS = KernelShap; "
        "one colour scale per map)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path.with_name(path.stem + "_maps.png"), dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=64, help="held-out images explained")
    ap.add_argument("--sanity-examples", type=int, default=16, help="for the randomisation")
    ap.add_argument("--digits-steps", type=int, default=1000, help="GAN steps, digits")
    ap.add_argument("--fashion-steps", type=int, default=1000, help="GAN steps, Fashion-MNIST")
    ap.add_argument("--lambda-sim", type=float, default=400.0, help="GANMEX's lambda_sim")
    ap.add_argument(
        "--sweep",
        type=float,
        nargs="*",
        default=[20.0, 100.0, 400.0, 1000.0],
        help="lambda_sim values tried on digits (none: no sweep)",
    )
    ap.add_argument("--sweep-steps", type=int, default=1000, help="GAN steps per sweep value")
    ap.add_argument("--checkpoints", type=Path, default=None, help="GAN checkpoints (resume)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--quick", action="store_true", help="tiny settings, writes nothing")
    ap.add_argument(
        "--out", type=Path, default=None, help=f"default {RESULTS}; --quick writes only here"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.examples, args.sanity_examples = 6, 2
        args.digits_steps = args.fashion_steps = args.sweep_steps = 20
        args.sweep = args.sweep[:2]
    x_tr, y_tr, x_te, y_te = digits(args.seed)
    sets = [
        Data(
            "digits (8 x 8)",
            x_tr,
            y_tr,
            x_te,
            y_te,
            tuple(map(str, range(10))),
            2,
            3 if args.quick else 60,
            args.digits_steps,
            5,
            sweep=True,
        ),
    ]
    skipped = {}
    fashion = fashion_mnist()
    if fashion is None:
        skipped["Fashion-MNIST"] = (
            f"{FASHION} has no data; install Debian's dataset-fashion-mnist (make "
            "experiments-install). Skipped."
        )
        print(skipped["Fashion-MNIST"])
    else:
        fx, fy, fxt, fyt = fashion
        g = torch.Generator().manual_seed(args.seed)
        tr = torch.randperm(fx.shape[0], generator=g)[: 2000 if args.quick else 12000]
        te = torch.randperm(fxt.shape[0], generator=g)[: 200 if args.quick else 2000]
        sets.append(
            Data(
                "Fashion-MNIST (28 x 28)",
                fx[tr],
                fy[tr],
                fxt[te],
                fyt[te],
                FASHION_CLASSES,
                7,
                1 if args.quick else 8,
                args.fashion_steps,
                11,
            )
        )
    reports, figures = [], []
    for data in sets:
        rep, fig = run(data, args)
        rep["classes"] = list(data.classes)
        reports.append(rep)
        figures.append(fig)
    if args.quick:
        print(markdown(reports, skipped))
        if args.out is None:
            return 0
    out = RESULTS if args.out is None else args.out
    report = {"lambda_sim": args.lambda_sim, "seed": args.seed, "sets": reports, "skipped": skipped}
    write_results(out / "ganmex_images", report, markdown(reports, skipped))
    plot(reports, figures, out / "ganmex_images.png")
    print(f"wrote {out}/ganmex_images.png and ganmex_images_maps.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
