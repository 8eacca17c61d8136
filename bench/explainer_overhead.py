"""Where an explainer's time goes, beside the model: wall time split into time inside
model calls and the rest, the same run with a no-op model (what xattr itself costs),
and the bare model's ideal time (as bench_explainers.py measures it).

    .venv/bin/python -m bench.explainer_overhead
    .venv/bin/python -m bench.explainer_overhead --cases image_mlp --methods KernelShap,Lime

Prints a Markdown table (medians of --repeats runs, one torch thread).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from bench import bench_explainers as be
from bench._harness import interleaved, median

METHODS = "KernelShap,Lime,ShapleyValueSampling,FeatureAblation,IntegratedGradients,Saliency"


class TimedModel:
    """The model, with the time spent inside its calls."""

    def __init__(self, model: Callable[..., Tensor]):
        self.model, self.seconds = model, 0.0

    def __call__(self, x: Tensor, *args: Any) -> Tensor:
        t = time.perf_counter()
        out = self.model(x, *args)
        self.seconds += time.perf_counter() - t
        return out


def measure(case: be.Case, method: str, repeats: int) -> dict[str, float] | None:
    if be.applicable(method, case) or method not in METHODS.split(","):
        return None
    sz = be.method_sizes(method, case, {"n_samples": 512, "n_steps": 50})
    timed = TimedModel(case.model)
    run = be.xattr_runner(method, case, sz, timed)
    gradient = method in ("IntegratedGradients", "Saliency")
    n_out = case.model(case.x).shape[1]

    def noop(z: Tensor, *args: Any) -> Tensor:  # same output shape, no work
        return torch.zeros(z.shape[0], n_out)

    bare = None if gradient else be.xattr_runner(method, case, sz, noop)
    counter = be.Counter(case.model)
    be.xattr_runner(method, case, sz, counter)(case.x, case.target)
    rows = counter.rows
    bs = be.ideal_batch(case, rows, gradient, (64, 256, 1024, 4096))
    ideal = be.ideal_runner(case, rows, gradient, bs)
    inside: list[float] = []

    def wall() -> None:  # the explainer, with the time inside its model calls
        timed.seconds = 0.0
        run(case.x, case.target)
        inside.append(timed.seconds)

    fns = {"wall": wall, "ideal": ideal}
    if bare is not None:
        fns["noop"] = lambda: bare(case.x, case.target)
    s = interleaved(fns, repeats, warmup=2)
    w, model = s.median("wall"), median(inside[2:])  # [:2]: the warm-up calls
    return {
        "wall": w,
        "model": model,
        "rest": w - model,
        "noop": s.median("noop") if bare is not None else float("nan"),
        "ideal": s.median("ideal"),
        "overhead": 1 - s.median("ideal") / w,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="tabular,image_mlp,image_cnn,text")
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--inputs", type=int, default=16)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    models, data = be.make_models(), be.load_inputs(args.inputs)
    cols = ["case", "method", "wall ms", "in model calls", "rest", "rest, no-op model"]
    print("| " + " | ".join([*cols, "ideal", "overhead"]) + " |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.cases.split(","):
        x, base, group = data[name]
        case = be.Case(name, models[name], x, base, group)
        for method in args.methods.split(","):
            r = measure(case, method, args.repeats)
            if r is None:
                continue
            ms = {k: f"{v * 1e3:.2f}" for k, v in r.items() if k != "overhead"}
            print(
                f"| {name} | {method} | {ms['wall']} | {ms['model']} | {ms['rest']} | "
                f"{ms['noop']} | {ms['ideal']} | {r['overhead']:.0%} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
