"""Which explainer is faithful on a real model? xattr.metrics on handwritten digits.

A small CNN is trained on scikit-learn's bundled 8 x 8 digits (seeded, a few seconds
on a CPU). For held-out digits, attributing the predicted class probability:
Saliency, InputXGradient, IntegratedGradients, KernelShap and ExactShapley (both on
16 superpixels of 2 x 2 pixels) and random attributions as a control. Each is scored
with the metrics module:

* deletion and insertion AUC (most relevant pixels first, baseline 0; lower deletion
  and higher insertion AUC are better),
* ROAD accuracy after imputing the top 50% of pixels (lower is better),
* max-sensitivity to uniform noise of radius 0.05 (lower is more stable; not for
  ExactShapley, whose 2^16 coalitions per digit are too many to repeat),
* agreement with exact Shapley values on the superpixels (Spearman, top-4),
* cascading model randomisation (Spearman of the attributions after re-initialising
  the layers from the output backwards; an explanation that stays similar does not
  depend on what the model learned).

Writes experiments/results/metrics_digits.{json,md} and metrics_digits.png.

Run: .venv/bin/python -m experiments.metrics_digits
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import xattr
from bench._harness import write_results
from experiments._digits import Probabilities, explained_digits, superpixel_ids
from xattr import metrics

RESULTS = Path(__file__).resolve().parent / "results"


def explainers(superpixels: torch.Tensor, seed: int) -> dict:
    """name -> explain(model, x, target): attributions [B, 1, 8, 8]."""

    def random(model, x, target):
        g = torch.Generator().manual_seed(seed)
        return torch.rand(x.shape, generator=g)

    return {
        "Saliency": lambda m, x, t: xattr.Saliency(m).attribute(x, target=t),
        "InputXGradient": lambda m, x, t: xattr.InputXGradient(m).attribute(x, target=t),
        "IntegratedGradients": lambda m, x, t: xattr.IntegratedGradients(m).attribute(
            x, target=t, n_steps=32
        ),
        "KernelShap (16 superpixels)": lambda m, x, t: xattr.KernelShap(m).attribute(
            x, target=t, feature_mask=superpixels, n_samples=200, seed=seed
        ),
        "ExactShapley (16 superpixels)": lambda m, x, t: xattr.ExactShapley(m).attribute(
            x, target=t, feature_mask=superpixels
        ),
        "random": random,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=32, help="held-out digits explained")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()

    model, prob, x, target, accuracy = explained_digits(args.seed, args.examples)
    superpixels = superpixel_ids()

    table, curves = {}, {}
    explain = explainers(superpixels, args.seed)
    exact = explain["ExactShapley (16 superpixels)"](prob, x, target)
    for name, fn in explain.items():
        a = fn(prob, x, target).detach()
        deletion = metrics.deletion_curve(prob, x, a, target=target, n_steps=32)
        insertion = metrics.insertion_curve(prob, x, a, target=target, n_steps=32)
        road = metrics.road(prob, x, a, target=target, fractions=(0.5,), seed=args.seed)
        nan = float("nan")
        sens, sanity = torch.tensor([nan]), None
        if not name.startswith("ExactShapley"):  # 2^16 coalitions per digit: too many to repeat
            sens = metrics.sensitivity_max(
                lambda inp, target, fn=fn: fn(prob, inp, target),
                x,
                perturb_radius=0.05,
                n_perturb_samples=8,
                target=target,
            )
            sanity = metrics.cascading_randomization(
                model,
                lambda m, inp, t, fn=fn: fn(Probabilities(m).eval(), inp, t),
                x[:16],
                target[:16],
                win_size=7,
            )
        table[name] = {
            "deletion_auc": float(deletion.auc.mean()),
            "insertion_auc": float(insertion.auc.mean()),
            "road_accuracy_50": float(road.correct.float().mean()),
            "max_sensitivity": float(sens.mean()),
            "spearman_vs_exact": float(
                metrics.spearman(a, exact, feature_mask=superpixels).nanmean()
            ),
            "top4_vs_exact": float(
                metrics.top_k_intersection(a, exact, 4, feature_mask=superpixels).mean()
            ),
            "spearman_after_randomising_all_layers": (
                float(sanity.spearman[-1].nanmean()) if sanity else nan
            ),
        }
        curves[name] = {
            "fractions": deletion.fractions.tolist(),
            "deletion": deletion.values.mean(0).tolist(),
            "insertion": insertion.values.mean(0).tolist(),
            "randomisation_layers": ["none", *sanity.layers] if sanity else [],
            "randomisation_spearman": sanity.spearman.nanmean(1).tolist() if sanity else [],
        }
        print(name, {k: round(v, 3) for k, v in table[name].items()}, flush=True)

    report = {
        "model": "CNN on sklearn digits (8 x 8)",
        "test_accuracy": accuracy,
        "examples": int(x.shape[0]),
        "seconds": time.perf_counter() - t0,
        "metrics": table,
        "curves": curves,
    }
    write_results(args.out / "metrics_digits", report, markdown(report))
    plot(curves, args.out / "metrics_digits.png")
    print(f"test accuracy {accuracy:.3f}; wrote {args.out}/metrics_digits.png")
    return 0


def markdown(report: dict) -> str:
    cols = [
        ("deletion_auc", "deletion AUC (lower)"),
        ("insertion_auc", "insertion AUC (higher)"),
        ("road_accuracy_50", "ROAD acc. @50% (lower)"),
        ("max_sensitivity", "max-sensitivity (lower)"),
        ("spearman_vs_exact", "Spearman vs exact"),
        ("top4_vs_exact", "top-4 vs exact"),
        ("spearman_after_randomising_all_layers", "Spearman after randomisation (lower)"),
    ]
    lines = [
        "# Metrics on digits (experiments/metrics_digits.py)",
        "",
        f"{report['model']}, test accuracy {report['test_accuracy']:.3f}; "
        f"{report['examples']} held-out digits, predicted-class probability; "
        f"{report['seconds']:.0f} s in all on this machine.",
        "",
        "| explainer | " + " | ".join(c[1] for c in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for name, row in report["metrics"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k, _ in cols) + " |")
    lines += ["", "![curves](metrics_digits.png)", ""]
    return "\n".join(lines)


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, c in curves.items():
        style = ":" if name == "random" else "-"
        axes[0].plot(c["fractions"], c["deletion"], style, label=name)
        axes[1].plot(c["fractions"], c["insertion"], style, label=name)
        if c["randomisation_spearman"]:
            y = c["randomisation_spearman"]
            axes[2].plot(range(len(y)), y, style, label=name)
    axes[0].set(title="deletion (most relevant first)", xlabel="fraction of pixels removed")
    axes[1].set(title="insertion (most relevant first)", xlabel="fraction of pixels inserted")
    axes[0].set_ylabel("probability of the predicted class")
    layers = next(iter(curves.values()))["randomisation_layers"]  # Saliency's
    axes[2].set(
        title="cascading randomisation",
        xlabel="layers re-initialised (from the output)",
        ylabel="Spearman to the original attributions",
    )
    axes[2].set_xticks(range(len(layers)), layers)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
