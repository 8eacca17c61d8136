"""Selective explanations: the two refinements of issue 14 side by side.

``combine="lam"``: SE = lam A + (1 - lam) MC_n, lam per uncertainty bin in closed form;
``combine="prior"``: KernelShap's regression on the same n coalitions, shrunk toward A(x)
with a ridge rho per bin (chosen from a log grid with 0 on the calibration split). Both
spend n model rows per refined input (plus v(N), v(empty)); both are efficient.

MC_n's error is not monotone in n: it peaks near n = 2(d - 1) = 58, where KernelShap's
paired design (one equation per complementary pair under efficiency) reaches its
interpolation threshold and the regression is ill-conditioned (issue 14's closing note).

Setting: scikit-learn's breast cancer table (569 inputs, 30 standardised features, every
feature a player, d = 30), an MLP 30 -> 64 -> 64 -> 2 (Adam, 200 epochs) explained on
P(malignant) with baseline 0 (the training mean); a 5-member FastSHAP ensemble (xattr
``train_ensemble``, "mlp" backbone, 16 coalition pairs per input per step) on a 40%
training split; the other inputs are cut into two halves that take turns as the
calibration and the test split (each input is tested once: 2-fold cross-fitting, the
per-input errors pooled). High quality: KernelShap with 4096 coalitions (seed 12345,
independent of the fallback's seeds). Uncertainty: the ensemble's; 3 bins.

Reported per (n, coverage): the mean over the test inputs of ||phi - HQ||^2 / d for
A alone, MC_n = KernelShap(n) alone, lam and prior, and the paired difference prior - lam
with its standard error over the inputs; the chosen rho and lam per bin (first fold).

Writes experiments/results/selective_prior_vs_lam.{json,md,png} (the PNG: MSE against n
at each coverage, for A, MC_n, lam and prior).

Run: .venv/bin/python -m experiments.selective_prior_vs_lam   (a few minutes on 2 cores)
     ... --quick: one n, one coverage, a small ensemble; prints, writes nothing.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from sklearn.datasets import load_breast_cancer
from torch import nn

from bench._harness import write_results
from xattr import KernelShap
from xattr.amortized import SelectiveExplainer, train_ensemble

RESULTS = Path(__file__).resolve().parent / "results"
F32, F64 = torch.float32, torch.float64
NS = (16, 32, 64, 128)
COVERAGES = (0.0, 0.5, 0.8)
HQ_SAMPLES = 4096


def data() -> tuple[torch.Tensor, torch.Tensor]:
    bc = load_breast_cancer()
    x = torch.tensor(bc.data, dtype=F64)
    y = torch.tensor(bc.target)
    return x, 1 - y  # sklearn: 1 = benign; explain P(malignant)


def train_model(x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                        nn.Linear(64, 2))  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x.to(F32)), y).backward()
        opt.step()
    return net.eval()


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    covs = sorted({r["coverage"] for r in rows})
    fig, axes = plt.subplots(1, len(covs), figsize=(4.2 * len(covs), 3.6), squeeze=False)
    for ax, cov in zip(axes[0], covs):
        rs = [r for r in rows if r["coverage"] == cov]
        ns = [r["n"] for r in rs]
        for key, label in (
            ("A", "amortized A"),
            ("MC", "MC_n (KernelShap)"),
            ("lam", "lam A + (1 - lam) MC_n"),
            ("prior", "prior (ridge to A)"),
        ):
            ax.plot(ns, [r[f"mse_{key}"] for r in rs], marker="o", label=label)
        ax.set(xscale="log", yscale="log", xlabel="n (fallback coalitions)",
               title=f"coverage {cov}")  # fmt: skip
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0][0].set_ylabel("MSE to HQ")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny run, prints only")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args(argv)
    t0 = time.time()
    torch.set_num_threads(args.threads)
    ns, coverages = ((32,), (0.0,)) if args.quick else (NS, COVERAGES)
    k, epochs, hq_samples = (2, 5, 512) if args.quick else (5, 200, HQ_SAMPLES)
    x, y = data()
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    cut = int(0.4 * x.shape[0])
    tr, rest = perm[:cut], perm[cut:]
    mean, std = x[tr].mean(0), x[tr].std(0).clamp_min(1e-8)
    x = ((x - mean) / std).to(F32)
    net = train_model(x[tr], y[tr])
    for p in net.parameters():
        p.requires_grad_(False)

    def model(z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(net(z.to(F32)), 1)[:, 1]

    acc = float((net(x[rest]).argmax(1) == y[rest]).double().mean())
    members = train_ensemble(
        model, x[tr], k=k, input_shape=(30,), hidden=(128, 128), epochs=epochs, lr=1e-3,
        n_coalitions=16, show_progress=False,
    )  # fmt: skip
    half = rest.numel() // 2
    folds = [(rest[:half], rest[half:]), (rest[half:], rest[:half])]
    hq = KernelShap(model).attribute(x[rest], n_samples=hq_samples, seed=12345).to(F64)
    # HQ's own noise: half the mean squared gap to a second HQ run (another seed)
    hq2 = KernelShap(model).attribute(x[rest], n_samples=hq_samples, seed=54321).to(F64)
    hq_noise = float(((hq - hq2) ** 2).mean()) / 2
    hq_scale = float((hq**2).mean())
    hq_of = dict(zip(rest.tolist(), hq))
    HQ = lambda idx: torch.stack([hq_of[i] for i in idx.tolist()])  # noqa: E731
    err = lambda phi, idx: ((phi.to(F64) - HQ(idx)) ** 2).mean(1)  # noqa: E731
    print(f"model test accuracy {acc:.3f}; HQ scale {hq_scale:.3g}, noise {hq_noise:.3g}",
          flush=True)  # fmt: skip

    rows = []
    for n in ns:
        for cov in coverages:
            e = {k: [] for k in ("A", "MC", "lam", "prior")}
            chosen = {}
            for f, (cal, test) in enumerate(folds):
                out = {}
                for combine in ("lam", "prior"):
                    sel = SelectiveExplainer(members, n_fallback_samples=n, coverage=cov,
                                             n_bins=3, combine=combine)  # fmt: skip
                    sel.calibrate(x[cal], HQ(cal).to(F32))
                    out[combine] = sel.attribute(x[test], seed=1 + f)
                    if f == 0:
                        chosen[combine] = (sel.lams if combine == "lam" else sel.rhos).tolist()
                e["lam"].append(err(out["lam"].attributions, test))
                e["prior"].append(err(out["prior"].attributions, test))
                a = torch.stack([m.attribute(x[test]).to(F64) for m in members]).mean(0)
                e["A"].append(err(a, test))
                e["MC"].append(err(KernelShap(model).attribute(x[test], n_samples=n,
                                                               seed=1 + f), test))  # fmt: skip
                refined = float(out["prior"].refined.double().mean())
            pooled = {k: torch.cat(v) for k, v in e.items()}
            diff = pooled["prior"] - pooled["lam"]
            row = {
                "n": n,
                "coverage": cov,
                "refined_share": refined,
                **{f"mse_{k}": float(v.mean()) for k, v in pooled.items()},
                "prior_minus_lam": float(diff.mean()),
                "prior_minus_lam_se": float(diff.std() / math.sqrt(diff.numel())),
                "lams_fold0": chosen["lam"],
                "rhos_fold0": chosen["prior"],
                "inputs": int(diff.numel()),
            }
            rows.append(row)
            print(row, flush=True)

    s = 1e5
    lines = [
        "# Selective explanations: lam vs prior (breast cancer, d = 30)",
        "",
        f"Written by `experiments/selective_prior_vs_lam.py` ({time.time() - t0:.0f} s). MSE =",
        f"mean over test inputs of ||phi - HQ||^2 / d (x 1e-5), HQ = KernelShap({hq_samples});",
        f"{rows[0]['inputs']} test inputs (2-fold cross-fitting); model accuracy {acc:.3f};",
        f"mean HQ^2 per feature {s * hq_scale:.1f}, HQ's own noise (MSE) {s * hq_noise:.3f}.",
        "",
        "| n | coverage | A | MC_n | lam | prior | prior - lam (+- s.e.) | rho per bin "
        "| lam per bin |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rho = ", ".join(f"{v:g}" for v in r["rhos_fold0"])
        lam = ", ".join(f"{v:.2f}" for v in r["lams_fold0"])
        lines.append(
            f"| {r['n']} | {r['coverage']} | {s * r['mse_A']:.2f} | {s * r['mse_MC']:.2f} | "
            f"{s * r['mse_lam']:.2f} | {s * r['mse_prior']:.2f} | "
            f"{s * r['prior_minus_lam']:+.2f} +- {s * r['prior_minus_lam_se']:.2f} | "
            f"{rho} | {lam} |"
        )
    if args.quick:
        print("\n".join(lines))
        print(f"quick run: {time.time() - t0:.0f} s, nothing written")
        return 0
    report = {"rows": rows, "accuracy": acc, "hq_scale": hq_scale, "hq_noise": hq_noise}
    write_results(RESULTS / "selective_prior_vs_lam", report, "\n".join(lines) + "\n")
    plot(rows, RESULTS / "selective_prior_vs_lam.png")
    print(f"wrote {RESULTS / 'selective_prior_vs_lam.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
