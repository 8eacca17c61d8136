"""KernelSHAP accuracy per model evaluation: xattr against Captum and shap, by budget.

For random MLPs (and, as a sanity family, linear models) on d features, the ground
truth is the exact Shapley value of the baseline game v(S) = f(x_S, 0_rest), by
enumerating all 2^d coalitions. Each library estimates it with ``n_samples``
coalitions (its own meaning of the argument: xattr and shap spend n_samples model rows
besides f(x) and f(baseline); Captum's n_samples includes those two) over several
seeds, and the table reports the mean squared error per feature, averaged over the
models, the seeds and the features, with its standard error over (model, seed) runs.

* xattr: ``xattr.KernelShap(f).attribute(x, n_samples=n, seed=s)`` (distinct
  coalitions in complementary pairs, efficiency exact, minimum-norm solve);
* Captum: ``captum.attr.KernelShap(f).attribute(x, n_samples=n)`` after
  ``torch.manual_seed(s)`` (Shapley-kernel draws, unpaired, linear regression with
  the empty and full coalitions weighted 1e6);
* shap: ``shap.KernelExplainer(f, zeros).shap_values(x, nsamples=n)`` after
  ``np.random.seed(s)`` (its defaults, so its l1_reg="num_features(10)" selection).

Families (3 models each, one input each, x ~ N(0, 2^2), baseline 0):
``relu``: Linear(d, 64)-ReLU-Linear(64, 64)-ReLU-Linear(64, 1), torch's default
initialisation, inputs scaled by 3; ``tanh``: Linear(d, 32)-tanh-Linear(32, 1) with
N(0, 4/d) and N(0, 9/32) weights; ``linear``: w . x (KernelSHAP is exact for it as
soon as the design has full rank).

Writes experiments/results/kernel_shap_accuracy.{json,md}.

Run: .venv/bin/python -m experiments.kernel_shap_accuracy   (about 15 minutes on 2
CPU cores; needs shap: pip install "shap>=0.42"; --quick for a small grid)
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import xattr
from bench._harness import write_results

RESULTS = Path(__file__).resolve().parent / "results"
GRID = [(6, 20), (10, 25), (10, 50), (10, 100), (10, 400), (16, 25), (16, 40), (16, 100), (16, 400)]
QUICK_GRID = [(10, 25), (10, 100)]


def relu_mlp(d: int, seed: int):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(d, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    ).double()
    net.eval()

    def f(x):
        with torch.no_grad():
            return net(3.0 * x)

    return f


def tanh_mlp(d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    W1 = torch.randn(d, 32, generator=g, dtype=torch.float64) * 2 / math.sqrt(d)
    b1 = torch.randn(32, generator=g, dtype=torch.float64) * 0.5
    W2 = torch.randn(32, 1, generator=g, dtype=torch.float64) * 3 / math.sqrt(32)
    return lambda x: torch.tanh(x @ W1 + b1) @ W2


def linear(d: int, seed: int):
    w = torch.randn(d, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return lambda x: x @ w


FAMILIES = {"relu": relu_mlp, "tanh": tanh_mlp, "linear": linear}


def problem(family: str, d: int, model: int):
    """(f, x [1, d], exact Shapley values [d]) of one model of a family."""
    f = FAMILIES[family](d, 100 + model)
    x = 2.0 * torch.randn(1, d, generator=torch.Generator().manual_seed(1000 + model))
    x = x.double()
    exact = xattr.ExactShapley(f).attribute(x, baselines=0.0)[0]
    return f, x, exact


def estimate(lib: str, f, x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    if lib == "xattr":
        return xattr.KernelShap(f).attribute(x, baselines=0.0, n_samples=n, seed=seed)[0]
    if lib == "captum":
        from captum.attr import KernelShap

        torch.manual_seed(seed)
        return KernelShap(f).attribute(x, baselines=0.0, n_samples=n)[0]
    import shap

    np.random.seed(seed)  # noqa: NPY002 (shap draws from the global numpy generator)
    fn = lambda a: f(torch.from_numpy(np.asarray(a, dtype=np.float64)))[:, 0].numpy()  # noqa: E731
    e = shap.KernelExplainer(fn, np.zeros((1, x.shape[1])))
    out = e.shap_values(x.numpy(), nsamples=n, silent=True)
    return torch.from_numpy(np.asarray(out, dtype=np.float64)).reshape(-1)


def mse_table(
    family: str, d: int, n: int, libs: list[str], models: int, seeds: int
) -> dict[str, tuple[float, float]]:
    """{lib: (mean squared error per feature, its standard error over the runs)}."""
    errs: dict[str, list[float]] = {lib: [] for lib in libs}
    for model in range(models):
        f, x, exact = problem(family, d, model)
        for seed in range(seeds):
            for lib in libs:
                a = estimate(lib, f, x, n, seed)
                errs[lib].append(float((a - exact).square().mean()))
    return {
        lib: (float(np.mean(v)), float(np.std(v) / math.sqrt(len(v)))) for lib, v in errs.items()
    }


def markdown(rows: list[dict], meta: dict) -> str:
    """The table of the JSON results; "xattr best" allows ties at rounding level (all
    three exact on linear models)."""
    libs = meta["libraries"]
    exact = 1e-20  # mean squared errors below this are rounding: exact
    head = "| family | d | n_samples | " + " | ".join(libs) + " | xattr best |"
    lines = [
        "# KernelSHAP: mean squared error per feature against exact Shapley values",
        "",
        f"{meta['models']} models per family x {meta['seeds']} seeds; mean ± standard error "
        "over the runs (experiments/kernel_shap_accuracy.py). xattr and shap spend "
        "n_samples model rows besides f(x) and f(baseline); Captum's n_samples includes "
        "those two.",
        "",
        head,
        "|" + "---|" * (len(libs) + 4),
    ]
    for r in rows:
        best = all(r["xattr"][0] <= max(r[lib][0], exact) for lib in libs)
        cells = " | ".join(f"{r[lib][0]:.3g} ± {r[lib][1]:.2g}" for lib in libs)
        lines.append(
            f"| {r['family']} | {r['d']} | {r['n_samples']} | {cells} | {'yes' if best else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small grid, printed only")
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=60)
    ap.add_argument("--libs", default="xattr,captum,shap", help="comma-separated")
    ap.add_argument("--grid", default=None, help="d,n pairs, e.g. 10,25;16,40 (printed only)")
    ap.add_argument(
        "--markdown-only", action="store_true", help="rewrite the .md from the saved .json"
    )
    args = ap.parse_args()
    if args.markdown_only:
        saved = json.loads((RESULTS / "kernel_shap_accuracy.json").read_text())
        write_results(RESULTS / "kernel_shap_accuracy", saved, markdown(**saved))
        return
    warnings.filterwarnings("ignore")
    libs = args.libs.split(",")
    try:
        import shap  # noqa: F401
    except ImportError:
        libs = [lib for lib in libs if lib != "shap"]
    grid = QUICK_GRID if args.quick else GRID
    printed_only = args.quick or args.grid is not None or libs != ["xattr", "captum", "shap"]
    if args.grid:
        grid = [tuple(int(v) for v in pair.split(",")) for pair in args.grid.split(";")]
    seeds = 5 if args.quick else args.seeds
    rows = []
    start = time.time()
    for d, n in grid:
        for family in FAMILIES:
            res = mse_table(family, d, n, libs, args.models, seeds)
            rows.append({"family": family, "d": d, "n_samples": n, **res})
            cells = "  ".join(f"{lib} {m:.3g} ± {s:.2g}" for lib, (m, s) in res.items())
            print(f"d={d:3d} n={n:4d} {family:6s}  {cells}", flush=True)
    if printed_only:
        return
    meta = {
        "models": args.models,
        "seeds": seeds,
        "libraries": libs,
        "seconds": round(time.time() - start),
        "torch": torch.__version__,
    }
    write_results(
        RESULTS / "kernel_shap_accuracy", {"meta": meta, "rows": rows}, markdown(rows, meta)
    )


if __name__ == "__main__":
    main()
