"""Shapley Integrated Gradients against Integrated Gradients on handwritten digits.

A small CNN is trained on scikit-learn's bundled 8 x 8 digits (experiments/_digits.py,
seeded, a few seconds on a CPU). For held-out digits we explain the probability of the
predicted class (softmax output, not logits), with features = 16 superpixels of 2 x 2
pixels (d = 16), by:

* SIG (``xattr.ShapleyIntegratedGradients``), combine "per_size" and "shared", reference
  r = 0 and r = "blur" (Gaussian, sigma 1 pixel, suited to 8 x 8 images), m = 2 and 8
  coalitions per size; one coalition draw (seeded) is shared by all digits of a run;
* IG (``xattr.IntegratedGradients``) from a zero, a blurred (sigma 1) and a uniform-noise
  baseline (IG averaged over 4 seeded U(0, 1) baselines per digit);
* KernelShap (2^13 samples, close to convergence) and ExactShapley (all 2^16 coalitions)
  on the superpixels with reference 0, the game SIG r = 0 estimates; ExactShapley with
  the blurred reference on the first 8 digits, the game SIG r = blur estimates;
* random attributions, as a control.

Every method uses n_steps = 32 where it integrates. Scores (xattr.metrics): deletion and
insertion AUC over the 16 superpixels (most relevant first, one superpixel per step,
baseline 0 for every method; lower deletion and higher insertion are better), and
agreement of the per-superpixel sums with the Shapley values (Spearman, top-4
intersection by absolute value). Each explainer is timed on the whole batch and its
model rows per digit are counted (gradient rows = paths x n_steps; forward-only rows).

Writes experiments/results/sig_digits.{json,md,png}.

Run: .venv/bin/python -m experiments.sig_digits
(76 s on a 2-core CPU, about 4.5 min when the CPU is shared with other jobs; most of it
is ExactShapley; --examples, --kernel-samples and --blur-exact-examples trade time)
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import xattr
from bench._harness import timed, write_results
from experiments._digits import explained_digits, superpixel_ids
from xattr import metrics
from xattr.explainers.shapley_integrated_gradients import stratified_coalitions

RESULTS = Path(__file__).resolve().parent / "results"
N_STEPS = 32
BLUR_SIGMA = 1.0
UNIFORM_DRAWS = 4
TOP_K = 4
D = 16


def sig_name(combine: str, ref: str, m: int) -> str:
    return f"SIG {combine} r={ref} m={m}"


def explainers(prob, superpixels: torch.Tensor, args) -> dict:
    """name -> (explain(x, target) -> [B, 1, 8, 8], gradient rows, forward rows per digit)."""
    seed = args.seed
    out = {}
    for ref in ("0", "blur"):
        for m in (2, 8):
            K = int(stratified_coalitions(D, m, seed)[0].shape[0])  # the unique paths
            for combine in ("per_size", "shared"):

                def sig(x, t, combine=combine, ref=ref, m=m):
                    return xattr.ShapleyIntegratedGradients(prob).attribute(
                        x,
                        baselines=None if ref == "0" else "blur",
                        blur_sigma=BLUR_SIGMA,
                        target=t,
                        feature_mask=superpixels,
                        n_coalitions_per_size=m,
                        n_steps=N_STEPS,
                        seed=seed,
                        combine=combine,
                    )

                # + 2 forward rows: f(x) and f(r) for normalize=True
                out[sig_name(combine, ref, m)] = (sig, K * N_STEPS, 2)

    ig = xattr.IntegratedGradients(prob)

    def ig_uniform(x, t):
        g = torch.Generator().manual_seed(seed)
        total = torch.zeros_like(x)
        for _ in range(UNIFORM_DRAWS):
            base = torch.rand(x.shape, generator=g)
            total += ig.attribute(x, baselines=base, target=t, n_steps=N_STEPS)
        return total / UNIFORM_DRAWS

    out["IG zero"] = (lambda x, t: ig.attribute(x, target=t, n_steps=N_STEPS), N_STEPS, 0)
    out["IG blur"] = (
        lambda x, t: ig.attribute(
            x, baselines=xattr.baselines.blur(x, BLUR_SIGMA), target=t, n_steps=N_STEPS
        ),
        N_STEPS,
        0,
    )
    out[f"IG uniform ({UNIFORM_DRAWS} draws)"] = (ig_uniform, UNIFORM_DRAWS * N_STEPS, 0)
    out[f"KernelShap r=0 (2^{int(math.log2(args.kernel_samples))})"] = (
        lambda x, t: xattr.KernelShap(prob).attribute(
            x, target=t, feature_mask=superpixels, n_samples=args.kernel_samples, seed=seed
        ),
        0,
        args.kernel_samples,
    )
    out["ExactShapley r=0"] = (
        lambda x, t: xattr.ExactShapley(prob).attribute(x, target=t, feature_mask=superpixels),
        0,
        2**D,
    )

    def random(x, t):
        return torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))

    out["random"] = (random, 0, 0)
    return out


def mean_se(v: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error over the finite entries of v."""
    v = v[torch.isfinite(v)].double()
    n = v.numel()
    if n == 0:
        return float("nan"), float("nan")
    se = float(v.std() / math.sqrt(n)) if n > 1 else float("nan")
    return float(v.mean()), se


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=32, help="held-out digits explained")
    ap.add_argument("--kernel-samples", type=int, default=2**13, help="KernelShap coalitions")
    ap.add_argument(
        "--blur-exact-examples",
        type=int,
        default=8,
        help="digits (the first ones) that get ExactShapley with the blurred reference",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()

    _, prob, x, target, accuracy = explained_digits(args.seed, args.examples)
    superpixels = superpixel_ids()
    xattr.IntegratedGradients(prob).attribute(x[:2], target=target[:2], n_steps=4)  # warm-up

    attrs, timing = {}, {}
    for name, (fn, grad_rows, fwd_rows) in explainers(prob, superpixels, args).items():
        seconds, attr = timed(lambda fn=fn: fn(x, target))
        attrs[name] = attr.detach()
        if grad_rows:  # cheap: best of 2 runs, less sensitive to other load on the CPU
            seconds = min(seconds, timed(lambda fn=fn: fn(x, target))[0])
        timing[name] = {
            "seconds_per_batch": seconds,
            "ms_per_digit": 1000 * seconds / x.shape[0],
            "gradient_rows_per_digit": grad_rows,
            "forward_rows_per_digit": fwd_rows,
        }
        print(f"{name}: {seconds:.2f} s", flush=True)

    nb = min(args.blur_exact_examples, x.shape[0])
    blur_seconds, exact_blur = timed(
        lambda: xattr.ExactShapley(prob).attribute(
            x[:nb],
            baselines=xattr.baselines.blur(x[:nb], BLUR_SIGMA),
            target=target[:nb],
            feature_mask=superpixels,
        )
    )
    print(f"ExactShapley r=blur on {nb} digits: {blur_seconds:.2f} s", flush=True)

    exact = attrs["ExactShapley r=0"]
    ks_name = next(n for n in attrs if n.startswith("KernelShap"))
    kernel = attrs[ks_name]
    table, per_digit, curves = {}, {}, {}
    for name, a in attrs.items():
        deletion = metrics.deletion_curve(
            prob, x, a, target=target, feature_mask=superpixels, n_steps=None
        )
        insertion = metrics.insertion_curve(
            prob, x, a, target=target, feature_mask=superpixels, n_steps=None
        )
        rows = {
            "deletion_auc": deletion.auc,
            "insertion_auc": insertion.auc,
            "spearman_vs_exact": metrics.spearman(a, exact, feature_mask=superpixels),
            "top4_vs_exact": metrics.top_k_intersection(a, exact, TOP_K, feature_mask=superpixels),
            "spearman_vs_kernelshap": metrics.spearman(a, kernel, feature_mask=superpixels),
            "top4_vs_kernelshap": metrics.top_k_intersection(
                a, kernel, TOP_K, feature_mask=superpixels
            ),
            "spearman_vs_exact_blur": metrics.spearman(
                a[:nb], exact_blur, feature_mask=superpixels
            ),
            "top4_vs_exact_blur": metrics.top_k_intersection(
                a[:nb], exact_blur, TOP_K, feature_mask=superpixels
            ),
        }
        per_digit[name] = {k: v.double() for k, v in rows.items()}
        row = {}
        for k, v in rows.items():
            row[k], row[k + "_se"] = mean_se(v)
        table[name] = {**row, **timing[name]}
        curves[name] = {
            "fractions": deletion.fractions.tolist(),
            "deletion": deletion.values.mean(0).tolist(),
            "insertion": insertion.values.mean(0).tolist(),
        }

    comparisons = compare(per_digit)
    report = {
        "config": {
            "model": "CNN on sklearn digits (8 x 8), explaining softmax probabilities",
            "target": "predicted class",
            "examples": int(x.shape[0]),
            "features": f"{D} superpixels of 2 x 2 pixels",
            "n_steps": N_STEPS,
            "blur_sigma": BLUR_SIGMA,
            "uniform_baseline_draws": UNIFORM_DRAWS,
            "kernel_samples": args.kernel_samples,
            "blur_exact_examples": nb,
            "curve_baseline": 0.0,
            "curve_steps": "one superpixel per step (16 steps), most relevant first",
            "top_k": TOP_K,
            "seed": args.seed,
            "sig_paths": {
                str(m): int(stratified_coalitions(D, m, args.seed)[0].shape[0]) for m in (2, 8)
            },
        },
        "test_accuracy": accuracy,
        "exact_blur_seconds": blur_seconds,
        "metrics": table,
        "per_size_minus_shared": comparisons,
        "curves": curves,
        "seconds": time.perf_counter() - t0,
    }
    report["reading"] = reading(report, ks_name)
    write_results(args.out / "sig_digits", report, markdown(report))
    plot(x, attrs, report, args.out / "sig_digits.png")
    print(markdown(report))
    print(f"wrote {args.out}/sig_digits.png in {report['seconds']:.0f} s")
    return 0


def compare(per_digit: dict) -> dict:
    """Paired per-digit differences per_size - shared for every reference and m."""
    out = {}
    for ref in ("0", "blur"):
        for m in (2, 8):
            a, b = per_digit[sig_name("per_size", ref, m)], per_digit[sig_name("shared", ref, m)]
            entry = {}
            for k in (
                "deletion_auc",
                "insertion_auc",
                "spearman_vs_exact",
                "spearman_vs_exact_blur",
            ):
                entry[k], entry[k + "_se"] = mean_se(a[k] - b[k])
            out[f"r={ref} m={m}"] = entry
    return out


def _fmt_diff(mean: float, se: float) -> str:
    verdict = "beyond 2 SE" if abs(mean) > 2 * se else "within 2 SE"
    return f"{mean:+.3f} (SE {se:.3f}, {verdict})"


def reading(report: dict, ks_name: str) -> list[str]:
    """Sentences computed from the numbers."""
    t, cmp_ = report["metrics"], report["per_size_minus_shared"]
    methods = [n for n in t if n != "random" and not n.startswith(("ExactShapley", "KernelShap"))]
    lines = []
    best_del = min(methods, key=lambda n: t[n]["deletion_auc"])
    best_ins = max(methods, key=lambda n: t[n]["insertion_auc"])
    best_sp = max(methods, key=lambda n: t[n]["spearman_vs_exact"])
    lines.append(
        f"Among the gradient methods, {best_del} has the lowest deletion AUC "
        f"({t[best_del]['deletion_auc']:.3f}), {best_ins} the highest insertion AUC "
        f"({t[best_ins]['insertion_auc']:.3f}), and {best_sp} the highest Spearman to exact "
        f"Shapley values with reference 0 ({t[best_sp]['spearman_vs_exact']:.3f}). "
        f"ExactShapley itself scores {t['ExactShapley r=0']['deletion_auc']:.3f} / "
        f"{t['ExactShapley r=0']['insertion_auc']:.3f}, random "
        f"{t['random']['deletion_auc']:.3f} / {t['random']['insertion_auc']:.3f} "
        "(deletion / insertion)."
    )
    for key, label, better in (
        ("deletion_auc", "deletion AUC", "lower"),
        ("insertion_auc", "insertion AUC", "higher"),
        ("spearman_vs_exact", "Spearman to ExactShapley r=0", "higher"),
    ):
        wins = sum((c[key] < 0) if better == "lower" else (c[key] > 0) for c in cmp_.values())
        parts = "; ".join(f"{cfg}: {_fmt_diff(c[key], c[key + '_se'])}" for cfg, c in cmp_.items())
        lines.append(
            f"per_size minus shared, {label} ({better} is better): per_size is better in "
            f"{wins} of {len(cmp_)} settings. {parts}."
        )
    c = cmp_
    lines.append(
        "Against the game of its own reference (ExactShapley r=blur, first "
        f"{report['config']['blur_exact_examples']} digits), per_size minus shared Spearman is "
        + "; ".join(
            f"{cfg}: {_fmt_diff(v['spearman_vs_exact_blur'], v['spearman_vs_exact_blur_se'])}"
            for cfg, v in c.items()
            if cfg.startswith("r=blur")
        )
        + "."
    )
    for ref, ig in (("0", "IG zero"), ("blur", "IG blur")):
        s8 = sig_name("per_size", ref, 8)
        own = "spearman_vs_exact" if ref == "0" else "spearman_vs_exact_blur"
        lines.append(
            f"Same reference r={ref}: {s8} vs {ig}: Spearman to its own game's Shapley values "
            f"{t[s8][own]:.3f} vs {t[ig][own]:.3f}, deletion AUC {t[s8]['deletion_auc']:.3f} vs "
            f"{t[ig]['deletion_auc']:.3f}, insertion AUC {t[s8]['insertion_auc']:.3f} vs "
            f"{t[ig]['insertion_auc']:.3f}, at {t[s8]['gradient_rows_per_digit']} vs "
            f"{t[ig]['gradient_rows_per_digit']} gradient rows per digit "
            f"({t[s8]['ms_per_digit']:.1f} vs {t[ig]['ms_per_digit']:.1f} ms per digit)."
        )
    for ref in ("0", "blur"):
        s2, s8 = sig_name("per_size", ref, 2), sig_name("per_size", ref, 8)
        own = "spearman_vs_exact" if ref == "0" else "spearman_vs_exact_blur"
        lines.append(
            f"per_size r={ref}: m=2 -> m=8 moves Spearman to its own game's Shapley values "
            f"from {t[s2][own]:.3f} to {t[s8][own]:.3f}."
        )
    lines.append(
        f"{ks_name} reaches Spearman {t[ks_name]['spearman_vs_exact']:.3f} and top-{TOP_K} "
        f"{t[ks_name]['top4_vs_exact']:.3f} against ExactShapley r=0, so it is "
        + (
            "converged for ranking purposes."
            if t[ks_name]["spearman_vs_exact"] > 0.98
            else "not fully converged; the exact values are the reference."
        )
    )
    ex = t["ExactShapley r=0"]
    lines.append(
        f"ExactShapley r=0 against ExactShapley r=blur (first "
        f"{report['config']['blur_exact_examples']} digits): Spearman "
        f"{ex['spearman_vs_exact_blur']:.3f}; the reference changes the target ranking by that "
        "much."
    )
    return lines


COLS = [
    ("deletion_auc", "deletion AUC (lower)"),
    ("insertion_auc", "insertion AUC (higher)"),
    ("spearman_vs_exact", "Spearman vs Exact r=0"),
    ("top4_vs_exact", "top-4 vs Exact r=0"),
    ("spearman_vs_kernelshap", "Spearman vs KernelShap"),
    ("spearman_vs_exact_blur", "Spearman vs Exact r=blur*"),
    ("top4_vs_exact_blur", "top-4 vs Exact r=blur*"),
]


def markdown(report: dict) -> str:
    cfg = report["config"]
    lines = [
        "# Shapley Integrated Gradients on digits (experiments/sig_digits.py)",
        "",
        f"{cfg['model']}, test accuracy {report['test_accuracy']:.3f}; {cfg['examples']} "
        f"held-out digits, {cfg['target']}; {cfg['features']}; n_steps {cfg['n_steps']}; "
        f"blur sigma {cfg['blur_sigma']}; IG uniform averages {cfg['uniform_baseline_draws']} "
        f"U(0,1) baselines; SIG paths per digit (unique coalitions, seed {cfg['seed']}): "
        f"m=2 -> {cfg['sig_paths']['2']}, m=8 -> {cfg['sig_paths']['8']}. Curves: "
        f"{cfg['curve_steps']}, baseline {cfg['curve_baseline']}. "
        f"{report['seconds']:.0f} s in all on this machine.",
        "",
        "Mean over digits (standard error in the JSON). Times: one run of the whole batch, "
        "best of 2 for the gradient methods (the CPU was shared with other jobs, so they are "
        "noisy). *: the first "
        f"{cfg['blur_exact_examples']} digits only (ExactShapley with the blurred reference "
        f"took {report['exact_blur_seconds']:.0f} s for them).",
        "",
        "| method | "
        + " | ".join(c[1] for c in COLS)
        + " | s / batch | ms / digit | grad rows / digit | fwd rows / digit |",
        "|---|" + "---:|" * (len(COLS) + 4),
    ]
    for name, row in report["metrics"].items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{row[k]:.3f}" for k, _ in COLS)
            + f" | {row['seconds_per_batch']:.2f} | {row['ms_per_digit']:.1f} | "
            f"{row['gradient_rows_per_digit']} | {row['forward_rows_per_digit']} |"
        )
    lines += [
        "",
        "## per_size minus shared (paired over digits, mean and SE)",
        "",
        "| setting | deletion AUC | insertion AUC | Spearman vs Exact r=0 | "
        "Spearman vs Exact r=blur* |",
        "|---|---:|---:|---:|---:|",
    ]
    for setting, c in report["per_size_minus_shared"].items():
        lines.append(
            f"| {setting} | "
            + " | ".join(
                f"{c[k]:+.3f} ({c[k + '_se']:.3f})"
                for k in (
                    "deletion_auc",
                    "insertion_auc",
                    "spearman_vs_exact",
                    "spearman_vs_exact_blur",
                )
            )
            + " |"
        )
    lines += ["", "## Reading", ""]
    lines += [f"- {s}" for s in report["reading"]]
    lines += ["", "![heatmaps and scores](sig_digits.png)", ""]
    return "\n".join(lines)


def plot(x: torch.Tensor, attrs: dict, report: dict, path: Path, n_show: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [
        sig_name("per_size", "0", 8),
        sig_name("shared", "0", 8),
        "IG zero",
        "IG blur",
        next(n for n in attrs if n.startswith("IG uniform")),
        "ExactShapley r=0",
    ]
    n_show = min(n_show, x.shape[0])
    ncol = len(shown) + 1
    fig = plt.figure(figsize=(2.0 * ncol, 2.0 * n_show + 4.5))
    gs = fig.add_gridspec(n_show + 2, ncol, height_ratios=[1] * n_show + [1.1, 1.1])
    for i in range(n_show):
        ax = fig.add_subplot(gs[i, 0])
        ax.imshow(x[i, 0], cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0:
            ax.set_title("input", fontsize=8)
        for j, name in enumerate(shown, start=1):
            a = attrs[name][i, 0]
            lim = float(a.abs().max()) or 1.0
            ax = fig.add_subplot(gs[i, j])
            ax.imshow(a, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name.replace(" r=", "\nr="), fontsize=8)
    t = report["metrics"]
    names = list(t)
    pos = range(len(names))
    ax = fig.add_subplot(gs[n_show:, : ncol // 2 + 1])
    ax.bar([p - 0.2 for p in pos], [t[n]["deletion_auc"] for n in names], 0.4, label="deletion")
    ax.bar([p + 0.2 for p in pos], [t[n]["insertion_auc"] for n in names], 0.4, label="insertion")
    ax.set_xticks(list(pos), names, rotation=70, ha="right", fontsize=7)
    ax.set(title="AUC over 16 superpixels (MoRF, baseline 0)", ylabel="AUC")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(gs[n_show:, ncol // 2 + 1 :])
    ax.bar(list(pos), [t[n]["spearman_vs_exact"] for n in names], 0.6)
    ax.set_xticks(list(pos), names, rotation=70, ha="right", fontsize=7)
    ax.set(title="Spearman to ExactShapley r=0", ylim=(-0.2, 1.05))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
