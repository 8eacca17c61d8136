"""xattr.metrics against Quantus (and Captum) on the same model, inputs and attributions.

    .venv/bin/python -m bench.bench_metrics            # writes bench/results/bench_metrics.*
    .venv/bin/python -m bench.bench_metrics --quick    # tiny sizes, prints only

The model is bench_explainers.py's small CNN on 28 x 28 digits; attributions are
xattr's Saliency for the predicted class. For each metric: the values of both
libraries (equal where the definitions coincide, with the largest difference) and
the time of each, as medians of repeated runs in one process, one torch thread.
"""

from __future__ import annotations

import argparse
import platform
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import xattr
from bench import bench_explainers as be
from bench._harness import installed, machine_info, median_time, require, write_results
from xattr.metrics import deletion_curve, infidelity, road, sensitivity_max

RESULTS = Path(__file__).resolve().parent / "results"
HAVE_QUANTUS = installed("quantus")


def quantus_time(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """median_time of a Quantus call; (nan, None) where Quantus is not installed (a
    --quick run then times xattr alone)."""
    return median_time(fn, runs) if HAVE_QUANTUS else (float("nan"), None)


def max_abs_diff(theirs: np.ndarray | None, ours: torch.Tensor) -> float:
    """Largest difference between the two libraries' values (nan without theirs)."""
    if theirs is None:
        return float("nan")
    return float(np.abs(theirs - ours.double().numpy()).max())


def pixel_flipping(model, x, y, a, step: int, runs: int, quantus_runs: int) -> dict[str, Any]:
    """Quantus PixelFlipping (baseline 0, raw outputs, no normalisation) vs
    deletion_curve over pixels, ``step`` pixels per step."""
    d = x[0].numel()

    def q() -> np.ndarray:
        import quantus

        metric = quantus.PixelFlipping(
            features_in_step=step,
            perturb_baseline=0.0,
            normalise=False,
            abs=False,
            disable_warnings=True,
        )
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

    tq, vq = quantus_time(q, quantus_runs)
    tx, vx = median_time(ours, runs)
    return {
        "metric": f"PixelFlipping, {step} pixel(s) per step ({d // step} steps)",
        "quantus_ms": tq * 1e3,
        "xattr_ms": tx * 1e3,
        "speedup": tq / tx,
        "max_abs_diff": max_abs_diff(vq, vx),
        "equal_by_definition": True,
    }


def road_case(model, x, y, a, runs: int, quantus_runs: int) -> dict[str, Any]:
    """Quantus ROAD vs xattr.metrics.road, 10%..90%: accuracy curves compared without
    noise (the noise draws differ by library), timed with ROAD's noise 0.01."""
    pct = list(range(10, 100, 10))

    def q(noise: float) -> np.ndarray:
        import quantus

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

    same = max_abs_diff(q(0.0) if HAVE_QUANTUS else None, ours(0.0))
    tq, _ = quantus_time(lambda: q(0.01), quantus_runs)
    tx, _ = median_time(lambda: ours(0.01), runs)
    return {
        "metric": "ROAD, 10%..90% removed, noisy linear imputation",
        "quantus_ms": tq * 1e3,
        "xattr_ms": tx * 1e3,
        "speedup": tq / tx,
        "max_abs_diff": same,
        "equal_by_definition": True,
    }


def max_sensitivity(model, x, y, a, n: int, runs: int, quantus_runs: int) -> dict[str, Any]:
    """Quantus MaxSensitivity vs xattr.metrics.sensitivity_max (Captum's definition:
    max over samples of ||a(x + u) - a(x)|| / ||a(x)||, u uniform in [-r, r]), both
    explaining with xattr's Saliency. Values compared on the same noise draws; timed
    with each library's own sampler."""
    r = 0.2
    g = torch.Generator().manual_seed(0)
    noise = [torch.empty_like(x).uniform_(-r, r, generator=g) for _ in range(n)]

    def explain(model, inputs, targets, **kwargs) -> np.ndarray:
        inp, t = torch.as_tensor(inputs), torch.as_tensor(targets)
        return xattr.Saliency(model).attribute(inp, target=t).detach().numpy()

    def ours_explain(inputs, target):
        return xattr.Saliency(model).attribute(inputs, target=target)

    def quantus_metric(perturb_func=None) -> np.ndarray:
        import quantus

        kw = {} if perturb_func is None else {"perturb_func": perturb_func}
        metric = quantus.MaxSensitivity(
            nr_samples=n, lower_bound=r, disable_warnings=True, normalise=False, **kw
        )
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
                explain_func=explain,
            )
        )

    # the same draws in both: sample j of every example is x + noise[j]
    step = {"q": 0, "x": 0}

    def q_perturb(arr, indices, **kwargs):
        j = step["q"] % n
        step["q"] += 1
        return arr + noise[j].reshape(arr.shape).numpy()

    def x_perturb(inputs, perturb_radius=r):
        j = step["x"] % n
        step["x"] += 1
        return inputs + noise[j]

    same_q = quantus_metric(q_perturb) if HAVE_QUANTUS else None
    same_x = sensitivity_max(
        ours_explain,
        x,
        x_perturb,
        n_perturb_samples=n,
        max_examples_per_batch=x.shape[0],
        target=y,
    )
    tq, _ = quantus_time(quantus_metric, quantus_runs)
    tx, _ = median_time(
        lambda: sensitivity_max(ours_explain, x, perturb_radius=r, n_perturb_samples=n, target=y),
        runs,
    )
    return {
        "metric": f"MaxSensitivity / sensitivity_max, {n} samples, Saliency",
        "quantus_ms": tq * 1e3,
        "xattr_ms": tx * 1e3,
        "speedup": tq / tx,
        "max_abs_diff": max_abs_diff(same_q, same_x),
        "equal_by_definition": True,
    }


def captum_infidelity(model, x, y, a, n: int, runs: int) -> dict[str, Any]:
    """Captum's infidelity vs ours: the same perturbation function and draws."""
    from captum.metrics import infidelity as captum_infidelity_fn

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.1
        return noise, inputs - noise

    def run(fn) -> torch.Tensor:
        torch.manual_seed(0)
        return fn(model, perturb, x, a, target=y, n_perturb_samples=n)

    tc, vc = median_time(lambda: run(captum_infidelity_fn), runs)
    tx, vx = median_time(lambda: run(infidelity), runs)
    return {
        "metric": f"infidelity (vs Captum), {n} samples",
        "quantus_ms": float("nan"),
        "captum_ms": tc * 1e3,
        "xattr_ms": tx * 1e3,
        "speedup": tc / tx,
        "max_abs_diff": float((vc - vx).abs().max()),
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
        "| metric | Quantus ms | Captum ms | xattr ms | speed-up | max abs difference |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def fmt(v: float, spec: str, unit: str = "") -> str:  # nan: the library was not run
        return "-" if v != v else format(v, spec) + unit

    for r in report["cases"]:
        q, c = r.get("quantus_ms", float("nan")), r.get("captum_ms", float("nan"))
        lines.append(
            f"| {r['metric']} | {fmt(q, '.1f')} | {fmt(c, '.1f')} | {r['xattr_ms']:.1f} | "
            f"{fmt(r['speedup'], '.1f', 'x')} | {fmt(r['max_abs_diff'], '.2e')} |"
        )
    lines += [
        "",
        "Definitions: PixelFlipping = `deletion_curve` over pixels with baseline 0 and the "
        "model's raw target output (Quantus: `perturb_baseline=0.0, normalise=False, "
        "softmax=False`; its curve starts after the first step). ROAD = `road`: the "
        "accuracy after removing the top p% pixels with noisy linear imputation, compared "
        "with noise 0 (the libraries draw different noise) and timed with noise 0.01. "
        "MaxSensitivity = `sensitivity_max` (Captum's definition, the same as Quantus's "
        "with uniform noise of radius 0.2 and Frobenius norms), compared on the same "
        "noise draws and timed with each library's sampler; both explain with xattr's "
        "Saliency. infidelity: Captum's function and ours on the same draws. Speed-up: "
        "against Quantus, or Captum where Quantus has no counterpart.",
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
    if not args.quick:
        require(["quantus"])
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
    cases.append(max_sensitivity(model, x, y, a, 10 if args.quick else 50, runs, qruns))
    print(cases[-1], flush=True)
    cases.append(captum_infidelity(model, x, y, a, 10 if args.quick else 100, runs))
    print(cases[-1], flush=True)
    m = machine_info(("quantus",))
    report = {
        "when": m["date"],
        "machine": f"{m['cpu']} ({platform.machine()})",
        "torch": m["torch"],
        "quantus": m["quantus"],
        "inputs": n,
        "cases": cases,
    }
    if args.quick:
        print(markdown(report))
        return 0
    write_results(RESULTS / "bench_metrics", report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
