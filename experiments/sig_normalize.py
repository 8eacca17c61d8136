"""SIG's normalisation: how close to exact Shapley values, normalised or not.

``ShapleyIntegratedGradients(normalize=...)`` can make each example's attributions sum
to f(x) - f(r), as Shapley values do. Rescaling by (f(x) - f(r)) / sum(raw) explodes
when the raw sum is small next to f(x) - f(r) (a review found factors up to 117x on
random MLPs). This script measures, against exact Shapley values of the same baseline
game (``xattr.ExactShapley``), the relative l2 error ||a - phi|| / ||phi|| per example
(magnitudes count, unlike the proportions and ranks of sig_gridworld.py / sig_digits.py)
and the Spearman correlation with phi per example, of these ways to treat the raw SIG
map a (sum A, target sum G = f(x) - f(r)):

* raw: a as it is (``normalize=False``);
* scale: a G / A, where that factor is positive and A is not ~0 (the old default);
* scale clipped b: the factor limited to [1/b, b], b = 2, 4, 8 (``normalize=True`` is
  one of them, see NORMALIZE_BOUND);
* scale or raw: a G / A when the factor is in [1/2, 2], else a;
* spread: a + (G - A) |a| / sum|a|, the residual spread over the elements in
  proportion to their magnitude (exact efficiency, a bounded change, zeros stay 0;
  unlike the others it can change the ranking).

on three test beds: random MLPs (20 networks x 32 inputs, d = 8 features, reference 0
and a random reference), the GridWorld of sig_gridworld.py (32 grids, d = 12) and the
digits CNN of sig_digits.py (probabilities, 16 superpixels; 32 digits with reference 0,
the first 8 with the blurred reference, sigma 1);
SIG combines per_size and shared, m = 1, 2, 4, 8 coalitions per size (seeded). The
candidates are computed from the raw map; the library's own ``normalize=True`` is run
as well and must equal the candidate it implements (checked and reported).

Writes experiments/results/sig_normalize.{json,md}.

Run: .venv/bin/python -m experiments.sig_normalize   (about 2 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch

import xattr
from bench._harness import write_results
from experiments._digits import explained_digits, superpixel_ids
from experiments.sig_gridworld import gridworld, random_grids
from xattr import metrics
from xattr.baselines import blur
from xattr.explainers.shapley_integrated_gradients import NORMALIZE_BOUND

RESULTS = Path(__file__).resolve().parent / "results"
MS = (1, 2, 4, 8)
COMBINES = ("per_size", "shared")
N_STEPS = 32
BLUR_SIGMA = 1.0  # sig_digits.py's
D_MLP = 8
BOUND = NORMALIZE_BOUND  # the clipped / conditional factors stay in [1 / BOUND, BOUND]
CLIPS = (2.0, 4.0, 8.0)  # bounds of the clipped factor compared
CANDIDATES = ("raw", "scale", *(f"scale clipped {b:g}" for b in CLIPS), "scale or raw", "spread")
LIBRARY = f"scale clipped {NORMALIZE_BOUND:g}"  # what normalize=True does now


def mlp(seed: int) -> torch.nn.Module:
    """One of four seeded architectures (width, depth, activation) -> one output."""
    width, depth, act = [
        (32, 2, torch.nn.Tanh),
        (64, 3, torch.nn.ReLU),
        (16, 1, torch.nn.Sigmoid),
        (32, 2, torch.nn.GELU),
    ][seed % 4]
    torch.manual_seed(seed)
    layers, w = [], D_MLP
    for _ in range(depth):
        layers += [torch.nn.Linear(w, width), act()]
        w = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(w, 1)).double().eval()


def candidates(a: torch.Tensor, gap: torch.Tensor) -> dict[str, torch.Tensor]:
    """The candidate maps from the raw map a [B, E] and the target sums gap [B]."""
    total, size = a.sum(1), a.abs().sum(1)
    ok = (total.abs() > 1e-6 * size) & (total * gap > 0)
    factor = torch.where(ok, gap / torch.where(ok, total, 1.0), 1.0)
    inside = (factor >= 1 / BOUND) & (factor <= BOUND)
    spread = a + ((gap - total) / torch.where(size > 0, size, 1.0))[:, None] * a.abs()
    return {
        "raw": a,
        "scale": a * factor[:, None],
        **{f"scale clipped {b:g}": a * factor.clamp(1 / b, b)[:, None] for b in CLIPS},
        "scale or raw": a * torch.where(inside, factor, 1.0)[:, None],
        "spread": torch.where((size > 0)[:, None], spread, a),
    }, factor


def beds(args) -> dict:
    """name -> (model, x [B, ...], reference [1 or B, ...], target, feature_mask, phi [B, d])."""
    out = {}
    for ref in ("0", "random"):
        xs, refs, models = [], [], []
        for s in range(args.networks):
            g = torch.Generator().manual_seed(100 + s)
            x = torch.randn(args.inputs, D_MLP, generator=g, dtype=torch.float64)
            r = torch.zeros(1, D_MLP, dtype=torch.float64)
            if ref == "random":
                r = torch.randn(1, D_MLP, generator=g, dtype=torch.float64)
            xs.append(x), refs.append(r), models.append(mlp(s))
        out[f"random MLPs, r={ref}"] = (models, xs, refs)
    return out


def run_mlps(name: str, models, xs, refs, args, rows: dict) -> None:
    raw: dict = {}
    lib: dict = {}
    phis, gaps = [], []
    for s, (model, x, r) in enumerate(zip(models, xs, refs)):
        phi = xattr.ExactShapley(model).attribute(x, baselines=r, target=0).detach()
        with torch.no_grad():
            gaps.append((model(x) - model(r))[:, 0])
        phis.append(phi)
        sig = xattr.ShapleyIntegratedGradients(model)
        for combine in COMBINES:
            for m in MS:
                kw = dict(baselines=r, target=0, n_coalitions_per_size=m, seed=s, combine=combine)
                a = sig.attribute(x, normalize=False, n_steps=N_STEPS, **kw).detach()
                b = sig.attribute(x, normalize=True, n_steps=N_STEPS, **kw).detach()
                raw.setdefault((combine, m), []).append(a)
                lib.setdefault((combine, m), []).append(b)
    phi, gap = torch.cat(phis), torch.cat(gaps)
    for key in raw:
        score(name, key, torch.cat(raw[key]), torch.cat(lib[key]), phi, gap, None, rows)


def score(name, key, a, lib, phi, gap, mask, rows) -> None:
    B = a.shape[0]
    flat = a.reshape(B, -1)
    maps, factor = candidates(flat, gap)
    layout = ("element", "group")

    def err(t: torch.Tensor) -> torch.Tensor:
        return metrics.relative_l2(t.reshape(a.shape), phi, feature_mask=mask, layout=layout)

    def rho(t: torch.Tensor) -> torch.Tensor:
        return metrics.spearman(t.reshape(a.shape), phi, feature_mask=mask, layout=layout)

    far = (factor > 3) | (factor < 1 / 3)
    entry = {
        "examples": B,
        "factor": {"min": float(factor.min()), "max": float(factor.max())},
        "far_fraction": float(far.float().mean()),
        "library_matches": float((lib.reshape(B, -1) - maps[LIBRARY]).abs().max()),
    }
    for cand, t in maps.items():
        e = err(t)
        entry[cand] = {
            "median": float(e.median()),
            "mean": float(e.mean()),
            "p90": float(e.quantile(0.9)),
            "max": float(e.max()),
            "far_median": float(e[far].median()) if bool(far.any()) else float("nan"),
            "spearman": float(rho(t).nanmean()),
        }
    rows.setdefault(name, {})[f"{key[0]} m={key[1]}"] = entry
    print(
        f"{name:22s} {key[0]:8s} m={key[1]}: "
        + "  ".join(f"{c} {entry[c]['median']:.3f}/{entry[c]['mean']:.3f}" for c in CANDIDATES)
        + f"  far {entry['far_fraction']:.3f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=20, help="random MLPs per reference")
    ap.add_argument("--inputs", type=int, default=32, help="inputs per MLP")
    ap.add_argument("--grids", type=int, default=32)
    ap.add_argument("--digits", type=int, default=32)
    ap.add_argument("--blur-digits", type=int, default=8, help="digits with the blurred reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message="normalize:")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows: dict = {}

    for name, (models, xs, refs) in beds(args).items():
        run_mlps(name, models, xs, refs, args, rows)

    x = random_grids(args.grids, args.seed)
    r = torch.zeros_like(x)
    phi = xattr.ExactShapley(gridworld).attribute(x, baselines=r, target=0).detach()
    with torch.no_grad():
        gap = (gridworld(x) - gridworld(r))[:, 0]
    sig = xattr.ShapleyIntegratedGradients(gridworld)
    for combine in COMBINES:
        for m in MS:
            kw = dict(baselines=r, target=0, n_coalitions_per_size=m, seed=args.seed)
            a = sig.attribute(x, normalize=False, combine=combine, n_steps=N_STEPS, **kw)
            b = sig.attribute(x, normalize=True, combine=combine, n_steps=N_STEPS, **kw)
            score("GridWorld", (combine, m), a.detach(), b.detach(), phi, gap, None, rows)

    _, prob, x_all, target_all, _ = explained_digits(args.seed, args.digits)
    mask = superpixel_ids()
    for ref, n in (("0", args.digits), ("blur", args.blur_digits)):
        x, target = x_all[:n], target_all[:n]
        r = torch.zeros_like(x) if ref == "0" else blur(x, BLUR_SIGMA)
        phi = xattr.ExactShapley(prob).attribute(x, r, target=target, feature_mask=mask)
        with torch.no_grad():
            gap = (prob(x) - prob(r)).gather(1, target[:, None])[:, 0].double()
        sig = xattr.ShapleyIntegratedGradients(prob)
        for combine in COMBINES:
            for m in MS:
                kw = dict(target=target, feature_mask=mask, n_coalitions_per_size=m, seed=args.seed)
                kw.update(baselines=r, combine=combine, n_steps=N_STEPS)
                a = sig.attribute(x, normalize=False, **kw).detach()
                b = sig.attribute(x, normalize=True, **kw).detach()
                score(f"digits, r={ref}", (combine, m), a, b, phi, gap, mask, rows)

    report = {
        "config": {
            "mlp": {"networks": args.networks, "inputs": args.inputs, "features": D_MLP},
            "grids": args.grids,
            "digits": args.digits,
            "blur_digits": args.blur_digits,
            "m_values": list(MS),
            "combines": list(COMBINES),
            "n_steps": N_STEPS,
            "bound": BOUND,
            "library_normalize_true": LIBRARY,
            "seed": args.seed,
            "threads": args.threads,
            "error": "||a - phi|| / ||phi|| per example (superpixel sums for digits)",
        },
        "rows": rows,
        "seconds": time.perf_counter() - t0,
    }
    report["reading"] = reading(report)
    write_results(args.out / "sig_normalize", report, markdown(report))
    print("\n".join(report["reading"]))
    print(f"{report['seconds']:.0f} s in all")
    return 0


def reading(report: dict) -> list[str]:
    """Sentences computed from the numbers."""
    rows = report["rows"]
    out = []
    for combine in COMBINES:
        cells = [
            (bed, k, v) for bed, r in rows.items() for k, v in r.items() if k.startswith(combine)
        ]
        n = len(cells)
        best = {
            c: sum(min(CANDIDATES, key=lambda c2: v[c2]["median"]) == c for _, _, v in cells)
            for c in CANDIDATES
        }
        beats_raw = {
            c: sum(v[c]["median"] < v["raw"]["median"] for _, _, v in cells) for c in CANDIDATES
        }
        mean_beats = {
            c: sum(v[c]["mean"] < v["raw"]["mean"] for _, _, v in cells) for c in CANDIDATES
        }
        worst = {c: max(v[c]["max"] for _, _, v in cells) for c in CANDIDATES}
        out.append(
            f"- {combine}: over {n} (test bed, m) cells the lowest median error is "
            + ", ".join(f"{c} {best[c]}x" for c in CANDIDATES if best[c])
            + "; median below raw's: "
            + ", ".join(f"{c} {beats_raw[c]}/{n}" for c in CANDIDATES if c != "raw")
            + "; mean below raw's: "
            + ", ".join(f"{c} {mean_beats[c]}/{n}" for c in CANDIDATES if c != "raw")
            + "; worst single error: "
            + ", ".join(f"{c} {worst[c]:.3g}" for c in CANDIDATES)
            + "."
        )
    far = [(bed, k, v) for bed, r in rows.items() for k, v in r.items() if v["far_fraction"] > 0]
    fmax = max(v["factor"]["max"] for r in rows.values() for v in r.values())
    fmin = min(v["factor"]["min"] for r in rows.values() for v in r.values())
    share = sum(v["far_fraction"] * v["examples"] for _, _, v in far) / sum(
        v["examples"] for r in rows.values() for v in r.values()
    )
    med = {
        c: torch.tensor([v[c]["far_median"] for _, _, v in far]).nanmedian().item()
        for c in CANDIDATES
    }
    out.append(
        f"- The factor (f(x) - f(r)) / sum(raw) ranged from {fmin:.3g} to {fmax:.3g}; "
        f"{share:.1%} of the examples needed more than 3x or less than 1/3. On those, the "
        "median (over cells) of the median error is "
        + ", ".join(f"{c} {med[c]:.3f}" for c in CANDIDATES)
        + "."
    )
    ratio = {c: [] for c in CANDIDATES}
    for r in rows.values():
        for v in r.values():
            best = min(v[c]["median"] for c in CANDIDATES)
            for c in CANDIDATES:
                ratio[c].append(v[c]["median"] / best)
    out.append(
        "- Median error over the best candidate's, averaged over all cells (1 = always the "
        "best): " + ", ".join(f"{c} {sum(v) / len(v):.2f}" for c, v in ratio.items()) + "."
    )
    sp = {
        c: [v[c]["spearman"] - v["raw"]["spearman"] for r in rows.values() for v in r.values()]
        for c in CANDIDATES
    }
    out.append(
        "- Mean Spearman to exact Shapley minus raw's, worst cell: "
        + ", ".join(f"{c} {min(v):+.3f}" for c, v in sp.items() if c != "raw")
        + " (a positive factor keeps the ranking; the spread can change it)."
    )
    diff = max(v["library_matches"] for r in rows.values() for v in r.values())
    out.append(
        f"- The library's normalize=True is the '{report['config']['library_normalize_true']}' "
        f"candidate: max |difference| {diff:.1e} over every cell."
    )
    return out


def markdown(report: dict) -> str:
    c = report["config"]
    lines = [
        "# SIG's normalisation against exact Shapley values (experiments/sig_normalize.py)",
        "",
        f"Relative l2 error ||a - phi|| / ||phi|| per example against ExactShapley of the "
        f"same baseline game; median / mean (p90, max) over the examples of each cell. Test "
        f"beds: random MLPs ({c['mlp']['networks']} networks x {c['mlp']['inputs']} inputs, "
        f"d = {c['mlp']['features']}), GridWorld ({c['grids']} grids, d = 12), digits "
        f"({c['digits']} digits with r = 0, {c['blur_digits']} with r = blur; 16 superpixels, "
        f"probabilities); SIG n_steps = {c['n_steps']}. "
        f"'far': the fraction of examples whose factor (f(x) - f(r)) / sum(raw) is above 3 "
        f"or below 1/3. 'scale or raw' keeps the factor when it is within "
        f"[1/{c['bound']:g}, {c['bound']:g}]; normalize=True is "
        f"'{c['library_normalize_true']}'. "
        f"{report['seconds']:.0f} s in all on this machine.",
        "",
        "| test bed | SIG | far | " + " | ".join(CANDIDATES) + " |",
        "|---|---|---:|" + "---:|" * len(CANDIDATES),
    ]
    lines.insert(-2, "## Relative l2 error: median / mean (p90, max)")
    lines.insert(-2, "")
    for bed, r in report["rows"].items():
        for key, v in r.items():
            cells = [
                f"{v[x]['median']:.3f} / {v[x]['mean']:.3f} ({v[x]['p90']:.2f}, {v[x]['max']:.3g})"
                for x in CANDIDATES
            ]
            lines.append(f"| {bed} | {key} | {v['far_fraction']:.3f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Mean Spearman to exact Shapley (higher is better)",
        "",
        "| test bed | SIG | " + " | ".join(CANDIDATES) + " |",
        "|---|---|" + "---:|" * len(CANDIDATES),
    ]
    for bed, r in report["rows"].items():
        for key, v in r.items():
            cells = [f"{v[x]['spearman']:.3f}" for x in CANDIDATES]
            lines.append(f"| {bed} | {key} | " + " | ".join(cells) + " |")
    lines += ["", "## Reading", "", *report["reading"], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
