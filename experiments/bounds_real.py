"""Robustness bounds on real data: how far removal-based attributions move when the
input moves, next to the guaranteed bound (Lin, Covert & Lee, NeurIPS 2023, Sec. 6).

Three datasets that ship with scikit-learn, each model trained (seeded, full-batch or
mini-batch Adam) with increasing weight decay:

* wine (13 standardised features, 3 classes): MLP 13 -> 64 -> 64 -> 3, d = 13;
* breast cancer (30 standardised features, 2 classes): MLP 30 -> 64 -> 64 -> 2, with the
  30 columns grouped into the 10 measurements (mean, standard error, worst), d = 10;
* digits (8 x 8 images in [0, 1], 10 classes): CNN Conv(1 -> 8, 3 x 3) -> ReLU ->
  MaxPool(2) -> Linear(128 -> 10), 16 superpixels of 2 x 2 pixels, d = 16.

f is the probability of the class the model predicts for the explained input (softmax).
For held-out inputs we compute the exact game v(S) over all 2^d coalitions, under
baseline removal (baseline = the training mean: 0 for the standardised tables, the
black image for digits) and, for the tables, marginal removal (16 training rows as the
background), and four summaries of it (xattr.bounds.summary_matrix, checked against
ExactShapley, Banzhaf, FeatureAblation and MeanWhenIncluded on the first run): Shapley,
Banzhaf, leave-one-out (LOO) and mean-when-included (MWI). Each input then moves by
delta with ||delta||_2 = eps in two kinds of direction: random (the largest change over
4 seeded Gaussian directions) and the gradient direction (the input gradient of f, the
direction in which the prediction moves fastest). The measured change
||phi(x + delta) - phi(x)||_2 is reported next to the bound
``input_bound(summary, d, eps, lipschitz=L)`` with L = ``lipschitz_upper(model)`` (a
guaranteed upper bound of the probability vector's Lipschitz constant), with tightness =
measured / bound, and the gap between L and the empirical ``lipschitz_lower``.

Writes experiments/results/bounds_real.{json,md,png}. The script asserts that every
measured change is within its bound.

Run: .venv/bin/python -m experiments.bounds_real      (--quick: 1 decay, 2 inputs)
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
from sklearn.datasets import load_breast_cancer, load_wine
from torch import nn

from bench._harness import write_results
from experiments._digits import digits, superpixel_ids
from xattr import Banzhaf, ExactShapley, FeatureAblation, MeanWhenIncluded, ops
from xattr._core.game import Setup
from xattr._core.removal import BaselineRemoval, MarginalRemoval
from xattr.bounds import input_bound, lipschitz_lower, lipschitz_upper, summary_matrix

RESULTS = Path(__file__).resolve().parent / "results"
DECAYS = [0.0, 1e-3, 1e-2, 1e-1]
EPS = [0.03, 0.1, 0.3, 1.0]
SUMMARIES = {"Shapley": "shapley", "Banzhaf": "banzhaf", "LOO": "loo", "MWI": "mean_when_included"}
EXPLAINERS = {
    "Shapley": ExactShapley,
    "Banzhaf": Banzhaf,
    "LOO": FeatureAblation,
    "MWI": MeanWhenIncluded,
}
RANDOM_DIRECTIONS = 2
BACKGROUND = 8
F64 = torch.float64


class Data(NamedTuple):
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    groups: torch.Tensor  # feature ids [1, *F]
    removals: tuple[str, ...]
    examples: int  # held-out inputs explained (2^d games each, per perturbation)


def _table(name: str, x: Any, y: Any, groups: torch.Tensor) -> Data:
    x = torch.tensor(x, dtype=F64)
    y = torch.tensor(y)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    cut = int(0.7 * x.shape[0])
    train, test = perm[:cut], perm[cut:]
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-8)
    x = (x - mean) / std
    return Data(name, x[train], y[train], x[test], y[test], groups, ("baseline", "marginal"), 8)


def datasets() -> list[Data]:
    wine = load_wine()
    bc = load_breast_cancer()  # columns: 10 measurements x (mean, standard error, worst)
    xtr, ytr, xte, yte = digits(0)
    return [
        _table("wine", wine.data, wine.target, torch.arange(13)[None]),
        _table("breast_cancer", bc.data, bc.target, (torch.arange(30) % 10)[None]),
        Data("digits", xtr, ytr, xte, yte, superpixel_ids(), ("baseline",), 4),
    ]


def make_model(data: Data) -> nn.Module:
    classes = int(data.y_train.max()) + 1
    if data.name == "digits":
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 16, classes),
        )
    d_in = data.x_train.shape[1]
    return nn.Sequential(
        nn.Linear(d_in, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, classes)
    ).to(F64)


def train(data: Data, decay: float, epochs: int, seed: int = 0) -> nn.Module:
    """Adam (lr 1e-2, batches of 128) with L2 weight decay ``decay``; eval mode."""
    torch.manual_seed(seed)
    model = make_model(data)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=decay)
    g = torch.Generator().manual_seed(seed)
    n = data.x_train.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 128):
            idx = perm[i : i + 128]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            loss.backward()
            opt.step()
    return model.eval()


def probabilities(model: nn.Module) -> nn.Module:
    prob = nn.Sequential(model, nn.Softmax(dim=1)).eval()
    for p in prob.parameters():
        p.requires_grad_(False)
    return prob


def removal_of(kind: str, data: Data) -> Any:
    if kind == "marginal":
        return MarginalRemoval(data.x_train[:BACKGROUND])
    return BaselineRemoval()


def summaries_of(
    prob: nn.Module, x: torch.Tensor, target: torch.Tensor, data: Data, kind: str
) -> dict[str, torch.Tensor]:
    """Every summary [B, d] of the exact game over all 2^d coalitions."""
    setup = Setup(
        prob,
        x,
        baselines=torch.zeros_like(x[:1]),
        target=target,
        feature_mask=data.groups,
        removal=removal_of(kind, data),
    )
    v = setup.game(ops.enumerate_coalitions(setup.d))[:, :, 0]  # [B, 2^d]
    return {k: v @ summary_matrix(s, setup.d).T for k, s in SUMMARIES.items()}


def check_explainers(prob, x, target, data: Data, kind: str, phi: dict[str, torch.Tensor]) -> None:
    """The summaries of the enumerated game are what the explainers return."""
    from xattr._core.features import format_feature_mask, group_scores
    from xattr._core.inputs import format_inputs

    xs, _ = format_inputs(x)
    groups, ids = format_feature_mask(data.groups, xs)
    for k, cls in EXPLAINERS.items():
        out = cls(prob).attribute(
            x,
            baselines=torch.zeros_like(x[:1]),
            target=target,
            feature_mask=data.groups,
            removal=removal_of(kind, data),
        )
        got = group_scores((out,), groups, int(ids.numel()), "group")
        atol = 1e-10 if x.dtype == F64 else 1e-5  # the explainers return the input's dtype
        torch.testing.assert_close(got, phi[k], rtol=0.0, atol=atol)


def directions(prob, x: torch.Tensor, target: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """Unit directions [B, *F]: seeded random ones, and the input gradient of f."""
    g = torch.Generator().manual_seed(7)
    rand = []
    for _ in range(RANDOM_DIRECTIONS):
        u = torch.randn(x.shape, generator=g, dtype=x.dtype)
        rand.append(u / u.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1)))
    xg = x.clone().requires_grad_(True)
    out = prob(xg).gather(1, target[:, None]).sum()
    (grad,) = torch.autograd.grad(out, xg)
    norm = grad.flatten(1).norm(dim=1).clamp_min(1e-300).view(-1, *[1] * (x.dim() - 1))
    return {"random": rand, "gradient": [grad / norm]}


def run(data: Data, decays: list[float], eps_grid: list[float], quick: bool, epochs: int) -> dict:
    rows = []
    lips = []
    x = data.x_test[: 2 if quick else data.examples]
    d = int(data.groups.max()) + 1
    shape = tuple(x.shape[1:])
    for decay in decays:
        t0 = time.perf_counter()
        model = train(data, decay, epochs)
        prob = probabilities(model)
        with torch.no_grad():
            acc = float((model(data.x_test).argmax(1) == data.y_test).to(F64).mean())
            target = prob(x).argmax(1)
        upper = lipschitz_upper(prob, shape)
        lower = lipschitz_lower(prob, data.x_train[:256])
        lips.append({"decay": decay, "accuracy": acc, "upper": upper, "lower": lower})
        dirs = directions(prob, x, target)
        for kind in data.removals:
            base = summaries_of(prob, x, target, data, kind)
            if decay == decays[0]:
                check_explainers(prob, x, target, data, kind, base)
            for eps in eps_grid:
                moved = {
                    name: [summaries_of(prob, x + eps * u, target, data, kind) for u in us]
                    for name, us in dirs.items()
                }
                for k, s in SUMMARIES.items():
                    bound = float(input_bound(s, d, eps, lipschitz=upper).l2[0])
                    for name, phis in moved.items():
                        change = torch.stack([(p[k] - base[k]).norm(dim=1) for p in phis])
                        worst = change.amax(0)  # [B]: the largest over the directions
                        assert bool((worst <= bound * (1 + 1e-9)).all()), (data.name, k, eps)
                        rows.append(
                            {
                                "dataset": data.name,
                                "decay": decay,
                                "removal": kind,
                                "summary": k,
                                "eps": eps,
                                "direction": name,
                                "mean_change": float(worst.mean()),
                                "max_change": float(worst.max()),
                                "bound": bound,
                                "tightness": float(worst.max()) / bound,
                            }
                        )
        print(
            f"{data.name} decay {decay:g}: accuracy {acc:.3f}, L upper {upper:.3g} / lower "
            f"{lower:.3g}, {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    return {
        "dataset": data.name,
        "d": d,
        "examples": int(x.shape[0]),
        "lipschitz": lips,
        "rows": rows,
    }


def _largest(rows: list[dict], summary: str, decay: float, eps: float) -> float:
    return max(
        r["max_change"]
        for r in rows
        if r["summary"] == summary and r["decay"] == decay and r["eps"] == eps
    )


def findings(report: dict) -> list[str]:
    """What the table shows, computed from it: growth in eps, the effect of weight
    decay, and the summaries' changes relative to Shapley's."""
    out = []
    for ds in report["datasets"]:
        rows = ds["rows"]
        decays = [r["decay"] for r in ds["lipschitz"]]
        eps = sorted({r["eps"] for r in rows})
        sel = [
            r
            for r in rows
            if r["removal"] == "baseline" and r["direction"] == "random" and r["decay"] == decays[0]
        ]
        slopes = []
        for k in SUMMARIES:
            pts = sorted((r["eps"], r["mean_change"]) for r in sel if r["summary"] == k)
            if len(pts) > 1 and pts[0][1] > 0:
                slopes.append(math.log(pts[-1][1] / pts[0][1]) / math.log(pts[-1][0] / pts[0][0]))
        mid = eps[len(eps) // 2]
        shrink = ", ".join(
            f"{k} {_largest(rows, k, decays[0], mid) / _largest(rows, k, decays[-1], mid):.1f}x"
            for k in SUMMARIES
        )
        rel = {
            k: sum(
                r["max_change"] / s["max_change"]
                for r in rows
                for s in rows
                if r["summary"] == k
                and s["summary"] == "Shapley"
                and (r["decay"], r["removal"], r["eps"], r["direction"])
                == (s["decay"], s["removal"], s["eps"], s["direction"])
            )
            / sum(1 for r in rows if r["summary"] == k)
            for k in SUMMARIES
        }
        order = ", ".join(f"{k} {rel[k]:.2f}" for k in sorted(rel, key=rel.get))
        text = (
            f"- {ds['dataset']}: change vs eps, log-log slope {min(slopes):.2f}-"
            f"{max(slopes):.2f} (1 = linear; random directions, decay {decays[0]:g})"
            if slopes
            else f"- {ds['dataset']}:"
        )
        if len(decays) > 1:
            text += (
                f"; weight decay {decays[0]:g} -> {decays[-1]:g} shrinks the largest change "
                f"at eps = {mid:g} by {shrink}"
            )
        out.append(text + f"; change relative to Shapley's (mean over the table): {order}.")
    return out


def markdown(report: dict) -> str:
    lines = [
        "# Robustness bounds on real data",
        "",
        f"`{report['command']}` ({report['seconds']:.0f} s). Exact games over all 2^d "
        "coalitions; f = the predicted class's probability; measured change = the largest "
        "||phi(x + delta) - phi(x)||_2 over the directions of a kind, mean and max over the "
        "explained inputs; bound = input_bound(summary, d, eps, lipschitz=lipschitz_upper). "
        "Every measured change is within its bound (asserted).",
        "",
        "## Lipschitz constants of the probability vector",
        "",
        "| dataset | weight decay | test accuracy | upper (guaranteed) | lower (empirical) "
        "| upper / lower |",
        "|---|---|---|---|---|---|",
    ]
    for ds in report["datasets"]:
        for r in ds["lipschitz"]:
            lines.append(
                f"| {ds['dataset']} | {r['decay']:g} | {r['accuracy']:.3f} | {r['upper']:.3g} "
                f"| {r['lower']:.3g} | {r['upper'] / max(r['lower'], 1e-300):.1f} |"
            )
    lines += (
        ["", "## Findings", ""]
        + findings(report)
        + [
            "",
            "## Measured change and bound",
            "",
            "| dataset | decay | removal | eps | direction | Shapley | Banzhaf | LOO | MWI "
            "| bound Shapley / Banzhaf / LOO / MWI | tightness (max) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    )
    for ds in report["datasets"]:
        keyed: dict[tuple, dict[str, dict]] = {}
        for r in ds["rows"]:
            key = (r["decay"], r["removal"], r["eps"], r["direction"])
            keyed.setdefault(key, {})[r["summary"]] = r
        for (decay, kind, eps, direction), by in keyed.items():
            cells = [f"{by[k]['max_change']:.3g}" for k in SUMMARIES]
            bounds = " / ".join(f"{by[k]['bound']:.3g}" for k in SUMMARIES)
            tight = max(by[k]["tightness"] for k in SUMMARIES)
            lines.append(
                f"| {ds['dataset']} | {decay:g} | {kind} | {eps:g} | {direction} | "
                + " | ".join(cells)
                + f" | {bounds} | {tight:.3f} |"
            )
    lines += [
        "",
        "Changes are the max over the explained inputs. Per summary, the bound is "
        "g h eps with g = L (baseline and marginal removal) and h = min(h1, h2) of the "
        "summary (h = 2 for Banzhaf against 2 sqrt(d) for Shapley and LOO, whose bounds "
        "coincide; sqrt(d) for MWI).",
        "",
    ]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = report["datasets"]
    fig, axes = plt.subplots(2, len(sets), figsize=(4.6 * len(sets), 8), squeeze=False)
    colors = dict(zip(SUMMARIES, ["C0", "C1", "C2", "C3"]))
    for j, ds in enumerate(sets):
        rows = [r for r in ds["rows"] if r["removal"] == "baseline"]
        decay = ds["lipschitz"][0]["decay"]
        ax = axes[0, j]
        for k in SUMMARIES:
            for direction, style in (("random", "o-"), ("gradient", "s--")):
                pts = [
                    r
                    for r in rows
                    if r["summary"] == k and r["direction"] == direction and r["decay"] == decay
                ]
                ax.plot(
                    [r["eps"] for r in pts],
                    [r["max_change"] for r in pts],
                    style,
                    color=colors[k],
                    label=f"{k} ({direction})",
                    ms=4,
                )
            pts = [r for r in rows if r["summary"] == k and r["decay"] == decay]
            eps = sorted({r["eps"] for r in pts})
            bound = [next(r["bound"] for r in pts if r["eps"] == e) for e in eps]
            ax.plot(eps, bound, ":", color=colors[k], lw=1.5)
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="eps = ||delta||_2",
            ylabel="||phi(x+delta) - phi(x)||_2",
            title=f"{ds['dataset']} (decay {decay:g}; dotted: bounds, Shapley = LOO)",
        )
        if j == 0:
            ax.legend(fontsize=7)
        ax = axes[1, j]
        grid = sorted({r["eps"] for r in rows})
        eps = grid[len(grid) // 2]
        decays = [r["decay"] for r in ds["lipschitz"]]
        xs = [max(dc, 1e-4) for dc in decays]
        for k in SUMMARIES:
            meas = [_largest(rows, k, dc, eps) for dc in decays]
            bnd = [
                next(
                    r["bound"] for r in rows if (r["summary"], r["decay"], r["eps"]) == (k, dc, eps)
                )
                for dc in decays
            ]
            ax.plot(xs, meas, "o-", color=colors[k], label=k)
            ax.plot(xs, bnd, ":", color=colors[k])
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="weight decay (0 drawn at 1e-4)",
            ylabel=f"max change at eps = {eps:g}",
            title=f"{ds['dataset']}: change and bound vs regularisation",
        )
        if j == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="one decay, one eps, 2 inputs, no files"
    )
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    decays = DECAYS[:1] if args.quick else DECAYS
    eps_grid = EPS[1:2] if args.quick else EPS
    epochs = 5 if args.quick else args.epochs
    report: dict[str, Any] = {
        "command": "python -m experiments.bounds_real" + (" --quick" if args.quick else ""),
        "decays": decays,
        "eps": eps_grid,
        "datasets": [run(ds, decays, eps_grid, args.quick, epochs) for ds in datasets()],
    }
    report["seconds"] = time.perf_counter() - t0
    text = markdown(report)
    print(text)
    if not args.quick:
        write_results(RESULTS / "bounds_real", report, text)
        plot(report, RESULTS / "bounds_real.png")
        print(f"wrote {RESULTS / 'bounds_real.png'}")
    print(f"{report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
