"""What the MuS experiments share: the lambdas and radii of the paper's figures and
the figure itself (certified accuracy against the radius per lambda; certified
explanations against lambda)."""

from __future__ import annotations

from pathlib import Path

import torch

from xattr.smoothing import explain_and_certify

LAMBDAS = (1.0, 1 / 2, 1 / 4, 1 / 8, 1 / 16)
RADII = tuple(range(0, 5))


def accuracy_row(cert, y: torch.Tensor) -> dict:
    """Smoothed and certified accuracy (at every radius of RADII, decremental: features
    that can be masked) of a ``certify`` result against labels y."""
    right = cert.full_label == y
    return {
        "smoothed_accuracy": float(right.float().mean()),
        "certified_accuracy": [
            float((right & (cert.decremental_int >= r)).float().mean()) for r in RADII
        ],
        "median_radius_correct": float(cert.decremental_int[right].float().median()),
    }


def stability_row(g, attributions: torch.Tensor, x: torch.Tensor) -> dict:
    """The fractions of top-25% explanations certified consistent, and consistent and
    incrementally stable at r >= 1, for the smoothed classifier g."""
    with torch.no_grad():
        cert = explain_and_certify(g, attributions, x, top_fraction=0.25).certificate
    return {
        "consistent": float(cert.consistent.float().mean()),
        "consistent_and_incremental_1": float(
            (cert.consistent & (cert.incremental_int >= 1)).float().mean()
        ),
    }


def explanation_table(report: dict) -> list[str]:
    """Markdown rows: per lambda, per explainer, "consistent / consistent and
    incrementally stable (r >= 1)"."""
    names = list(next(iter(report["explanations"].values())))
    lines = ["| lambda | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for lam, by_name in report["explanations"].items():
        cells = [
            f"{by_name[n]['consistent']:.2f} / {by_name[n]['consistent_and_incremental_1']:.2f}"
            for n in names
        ]
        lines.append(f"| {lam} | " + " | ".join(cells) + " |")
    return lines


def plot(report: dict, path: Path, unit: str, explained: str) -> None:
    """Two panels from a report with ``radii``, ``by_lambda[lam]["certified_accuracy"]``
    and ``explanations[lam][name]["consistent_and_incremental_1"]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for lam, row in report["by_lambda"].items():
        axes[0].plot(report["radii"], row["certified_accuracy"], marker="o", label=f"λ = {lam}")
    axes[0].set(
        title="certified accuracy (MuS, q = 64, voting)",
        xlabel=f"radius r ({unit} changed)",
        ylabel="accurate and certified",
    )
    axes[0].legend()
    lams = list(report["explanations"])
    for name in next(iter(report["explanations"].values())):
        ys = [report["explanations"][lam][name]["consistent_and_incremental_1"] for lam in lams]
        axes[1].plot(range(len(lams)), ys, marker="o", label=name)
    axes[1].set_xticks(range(len(lams)), [f"λ = {lam}" for lam in lams])
    axes[1].set(
        title=f"top-25% {explained} certified",
        ylabel="consistent and incrementally stable (r >= 1)",
    )
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
