"""xattr.metrics against Quantus (and Captum) on the same model, inputs and attributions.

    .venv/bin/python bench/bench_metrics.py            # writes bench/results/bench_metrics.*
    .venv/bin/python bench/bench_metrics.py --quick    # tiny sizes, prints only

The model is bench_explainers.py's small CNN on 28 x 28 digits; attributions are
xattr's Saliency for the predicted class. For each metric: the values of both
libraries (equal where the definitions coincide, with the largest difference) and
the time of each, as medians of repeated runs in one process, one torch thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_explainers as be
import numpy as np
import torch

import xattr
from xattr.metrics import deletion_curve, road

RESULTS = Path(__file__).resolve().parent / "results"


def median_time(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    out = fn()  # warm-up, and the value reported
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2], out


def pixel_flipping(model, x, y, a, step: int, runs: int, quantus_runs: int) -> dict[str, Any]:
    """Quantus PixelFlipping (baseline 0, raw outputs, no normalisation) vs
    deletion_curve over pixels, ``step`` pixels per step."""
    import quantus

    d = x[0].numel()
    metric = quantus.PixelFlipping(
        features_in_step=step,
        perturb_baseline=0.0,
        normalise=False,
        abs=False,
        disable_warnings=True,
    )

    def q() -> np.ndarray:
        return np.array(
            metric(
                model=model,
                x_batch=x.numpy(),
                y_batch=y.numpy(),
                a_batch=a.numpy(),
                device="cpu",
                softmax=False,
                channel_first=True,
                batch_size=x.shape[0],
            )
        )

    def ours() -> torch.Tensor:
        # Quantus's curve starts after the first step; ours includes the input itself
        return deletion_curve(model, x, a, target=y, n_steps=d // step).values[:, 1:]

    tq, vq = median_time(q, quantus_runs)
    tx, vx = median_time(ours, runs)
    return {
        "metric": f"PixelFlipping, {step} pixel(s) per step ({d // step} steps)",
        "quantus_ms": tq * 1e3,
        "xattr_ms": tx * 1e3,
        "speedup": tq / tx,
        "max_abs_diff": float(np.abs(vq - vx.numpy()).max()),
        "equal_by_definition": True,
    }


def road_case(model, x, y, a, runs: int, quantus_runs: int) -> dict[str, Any]:
    """Quantus ROAD vs xattr.metrics.road, 10%..90%: accuracy curves compared without
    noise (the noise draws differ by library), timed with ROAD's noise 0.01."""
    import quantus

    pct = list(range(10, 100, 10))

    def q(noise: float) -> np.ndarray:
        metric = quantus.ROAD(percentages=pct, noise=noise, normalise=False, disable_warnings=True)
        res = metric(
            model=model,
            x_batch=x.numpy(),
            y_batch=y.numpy(),
            a_batch=a.numpy(),
            device="cpu",
            softmax=False,
            channel_first=True,
            batch_size=x.shape[0],
        )
        return np.array([res[p] for p in pct])

    def ours(noise: float) -> torch.Tensor:
        return road(model, x, a, target=y, noise=noise, seed=0).correct.double().mean(0)

    same = float(np.abs(q(0.0) - ours(0.0).numpy()).max())
    tq, _ = median_time(lambda: q(0.01), quantus_runs)
    tx, _ = median_time(lambda: ours(0.01), runs)
    return {
        "metric": "ROAD, 10%..90% removed, noisy linear imputation",
        "quantus_ms": tq * 1e3,
        "xattr_ms": tx * 1e3,
        "speedup": tq / tx,
        "max_abs_diff": same,
        "equal_by_definition": True,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Metrics benchmark",
        "",
        f"{report['when']}; {report['machine']}; torch {report['torch']}, quantus "
        f"{report['quantus']}; one torch thread; {report['inputs']} digits (28 x 28) "
        "through bench_explainers.py's small CNN, Saliency attributions for the "
        "predicted class. Times are medians of repeated runs in one process.",
        "",
        "| metric | Quantus ms | xattr ms | speed-up | max abs difference |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in report["cases"]:
        lines.append(
            f"| {r['metric']} | {r['quantus_ms']:.1f} | {r['xattr_ms']:.1f} | "
            f"{r['speedup']:.1f}x | {r['max_abs_diff']:.2e} |"
        )
    lines += [
        "",
        "Definitions: PixelFlipping = `deletion_curve` over pixels with baseline 0 and the "
        "model's raw target output (Quantus: `perturb_baseline=0.0, normalise=False, "
        "softmax=False`; its curve starts after the first step). ROAD = `road`: the "
        "accuracy after removing the top p% pixels with noisy linear imputation, compared "
        "with noise 0 (the libraries draw different noise) and timed with noise 0.01.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 inputs, one run, prints only")
    ap.add_argument("--inputs", type=int, default=16)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quantus-runs", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    n = 4 if args.quick else args.inputs
    runs, qruns = (1, 1) if args.quick else (args.runs, args.quantus_runs)
    models, data = be.make_models(), be.load_inputs(n)
    x = data["image_cnn"][0]
    model = models["image_cnn"]
    with torch.no_grad():
        y = model(x).argmax(1)
    a = xattr.Saliency(model).attribute(x, target=y)
    cases = []
    for step in (28, 1):
        cases.append(pixel_flipping(model, x, y, a, step, runs, qruns))
        print(cases[-1], flush=True)
    cases.append(road_case(model, x, y, a, runs, qruns))
    print(cases[-1], flush=True)
    import quantus

    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{be.cpu_name()} ({platform.machine()})",
        "torch": torch.__version__,
        "quantus": quantus.__version__,
        "inputs": n,
        "cases": cases,
    }
    if args.quick:
        print(markdown(report))
        return 0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / "bench_metrics.md").write_text(markdown(report))
    print(f"wrote {RESULTS / 'bench_metrics.json'} and {RESULTS / 'bench_metrics.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
