"""Amortized explanations: latency and throughput of ``AmortizedExplainer.attribute``
next to one forward pass of the explained model and to KernelShap (issue 14's target:
the amortized path costs <= 2x one forward pass on the same batch).

    .venv/bin/python -m bench.bench_amortized          # bench/results/bench_amortized.{json,md}
    .venv/bin/python -m bench.bench_amortized --quick  # fewer rounds, prints only

On bench_explainers.py's models and inputs (``tabular``: MLP over 64 features;
``image_mlp`` and ``image_cnn``: 49 superpixels of 4 x 4 pixels; fixed random weights),
target 0, baseline 0, one torch thread. The explainer network ("mlp" for the MLPs,
"cnn" for the CNN, default widths) is trained for a few epochs with FastSHAP: its
timing does not depend on how well it is trained. For batches of 1 and 256 inputs,
interleaved medians of:

* forward: ``model(x)`` under no_grad;
* amortized: ``explainer.attribute(x, target=0)`` (the network and v(N); v(empty) was
  kept by fit);
* KernelShap: ``KernelShap(model).attribute(x, target=0, baselines=0,
  feature_mask=groups, n_samples=512, seed=0)`` (batch 1 only at full size: one input
  costs 512 model rows).

The selective path (issue 14's second target: at the coverage where selective matches
KernelShap(n = 512)'s MSE, it is >= 10x faster per input than KernelShap alone) on
breast cancer (d = 30, standardised; baseline 0): an MLP classifier (its logit)
trained with a fixed seed, an ensemble of FastSHAP explainers trained on the training
split (with jittered copies: FastSHAP needs no labels), high-quality explanations from
KernelShap at a large budget, the fallback KernelShap at ``n_fallback_samples``;
calibration on one split, MSE to the high-quality explanations and time per input on
another, at a grid of coverages.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import nn

from bench import bench_explainers as be
from bench._harness import interleaved, machine_info, write_results
from xattr import KernelShap
from xattr.amortized import AmortizedExplainer, SelectiveExplainer, train_ensemble

RESULTS = be.RESULTS / "bench_amortized"
TARGET = 2.0
SELECTIVE_TARGET = 10.0
COVERAGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


def run_case(name: str, model: Any, x: Any, group: Any, repeats: int, epochs: int) -> list[dict]:
    net = "cnn" if name == "image_cnn" else "mlp"
    explainer = AmortizedExplainer(
        model, net, input_shape=tuple(x.shape[1:]), feature_mask=group, seed=0
    )
    explainer.fit(x[:64], target=0, epochs=epochs, show_progress=False)
    kernel = KernelShap(model)
    zero = torch.zeros_like(x[:1])
    rows = []
    for B in (1, 256):
        xb = x[:B]
        fns = {
            "forward": lambda xb=xb: model(xb),
            "amortized": lambda xb=xb: explainer.attribute(xb, target=0),
            "network": lambda xb=xb: explainer.net(xb),
        }
        if B == 1:
            fns["kernel_shap"] = lambda xb=xb: kernel.attribute(
                xb, target=0, baselines=zero, feature_mask=group, n_samples=512, seed=0
            )
        with torch.no_grad():
            s = interleaved(fns, repeats)
        row = {
            "model": name,
            "batch": B,
            "forward_ms": 1e3 * s.median("forward"),
            "amortized_ms": 1e3 * s.median("amortized"),
            "ratio": s.median("amortized") / s.median("forward"),
            "per_input_us": 1e6 * s.median("amortized") / B,
            "network_ms": 1e3 * s.median("network"),
            "floor": (s.median("forward") + s.median("network")) / s.median("forward"),
        }
        if "kernel_shap" in fns:
            row["kernel_shap_ms"] = 1e3 * s.median("kernel_shap")
        rows.append(row)
        print(row, flush=True)
    return rows


def breast_cancer_model() -> tuple[nn.Module, torch.Tensor]:
    """(an MLP classifier [B, 30] -> logit [B, 1], trained full-batch on the first 300
    inputs; the standardised inputs in a seeded order)."""
    from sklearn.datasets import load_breast_cancer

    bc = load_breast_cancer()
    X = torch.tensor(bc.data, dtype=torch.float32)
    y = torch.tensor(bc.target, dtype=torch.float32)
    X = (X - X.mean(0)) / X.std(0)
    perm = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(0))
    X, y = X[perm], y[perm]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)
        )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(200):
        loss = nn.functional.binary_cross_entropy_with_logits(net(X[:300])[:, 0], y[:300])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, X


OUTPUTS = {
    "probability": lambda net: lambda x: torch.sigmoid(net(x)[:, 0]),
    "logit": lambda net: lambda x: net(x)[:, 0],
}


def run_selective(quick: bool, repeats: int, output: str) -> dict:
    """MSE to high-quality explanations and time per input: selective at a grid of
    coverages against KernelShap(n = 512) alone, explaining the classifier's
    ``output`` ("probability", as the FastSHAP paper explains classifiers, or
    "logit")."""
    hq_n, k, epochs, n_fb = (2048, 3, 2, 64) if quick else (16384, 4, 30, 64)
    net, X = breast_cancer_model()
    model = OUTPUTS[output](net)
    x_train, x_cal, x_test = X[:300], X[300:430], X[430:]
    jitter = torch.Generator().manual_seed(5)
    n_copies = 0 if quick else 9
    copies = [x_train + 0.3 * torch.randn(x_train.shape, generator=jitter) for _ in range(n_copies)]
    kernel = KernelShap(model)
    hq_cal = kernel.attribute(x_cal, baselines=0.0, n_samples=hq_n, seed=101)
    hq_test = kernel.attribute(x_test, baselines=0.0, n_samples=hq_n, seed=102)

    def mse(phi: torch.Tensor) -> float:
        return float(((phi.double() - hq_test.double()) ** 2).mean())

    members = train_ensemble(
        model, torch.cat([x_train, *copies]), k=k, input_shape=(30,),
        epochs=epochs, batch_size=32, lr=1e-3, n_coalitions=32, patience=None,
        baselines=0.0, show_progress=False,
    )  # fmt: skip
    ks512 = mse(kernel.attribute(x_test, baselines=0.0, n_samples=512, seed=0))
    grid = []
    for alpha in COVERAGES:
        sel = SelectiveExplainer(
            members, fallback=KernelShap(model), n_fallback_samples=n_fb, coverage=alpha
        ).calibrate(x_cal, hq_cal)
        out = sel.attribute(x_test)
        grid.append(
            {"coverage": alpha, "mse": mse(out.attributions),
             "refined": float(out.refined.double().mean())}
        )  # fmt: skip
    matched = [g for g in grid if g["mse"] <= ks512]
    if matched:  # the largest coverage that matches, else the lowest MSE
        chosen = max(matched, key=lambda g: g["coverage"])
    else:
        chosen = min(grid, key=lambda g: g["mse"])
    sel = SelectiveExplainer(
        members, fallback=KernelShap(model), n_fallback_samples=n_fb, coverage=chosen["coverage"]
    ).calibrate(x_cal, hq_cal)
    fns = {
        "kernel_shap": lambda: kernel.attribute(x_test, baselines=0.0, n_samples=512, seed=0),
        "selective": lambda: sel.attribute(x_test),
    }
    with torch.no_grad():
        s = interleaved(fns, repeats)
    B = x_test.shape[0]
    row = {
        "output": output, "d": 30, "members": k, "epochs": epochs, "hq_samples": hq_n,
        "n_fallback_samples": n_fb, "test_inputs": B, "kernel_shap_512_mse": ks512,
        "amortized_mse": grid[-1]["mse"],
        "mc_mse": mse(kernel.attribute(x_test, baselines=0.0, n_samples=n_fb, seed=0)),
        "hq_signal": float((hq_test.double() ** 2).mean()),
        "grid": grid, "matched": bool(matched), "coverage": chosen["coverage"],
        "selective_mse": chosen["mse"],
        "kernel_shap_us_per_input": 1e6 * s.median("kernel_shap") / B,
        "selective_us_per_input": 1e6 * s.median("selective") / B,
        "speedup": s.median("kernel_shap") / s.median("selective"),
    }  # fmt: skip
    print({key: v for key, v in row.items() if key != "grid"}, flush=True)
    return row


def markdown(report: dict) -> str:
    rows = report["rows"]
    lines = [
        "# Amortized explanations: cost next to one forward pass",
        "",
        f"`{report['command']}`; {report['machine']['cpu']}, one thread, medians of "
        f"{report['repeats']} interleaved rounds. Target: amortized <= {TARGET:g}x one "
        "forward pass on the same batch.",
        "",
        "| model | batch | forward (ms) | amortized (ms) | amortized / forward | network (ms) "
        "| (forward + network) / forward | per input (us) "
        "| KernelShap n=512 (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ks = f"{r['kernel_shap_ms']:.1f}" if "kernel_shap_ms" in r else ""
        verdict = "met" if r["ratio"] <= TARGET else "NOT met"
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['forward_ms']:.3f} | {r['amortized_ms']:.3f} | "
            f"{r['ratio']:.2f} ({verdict}) | {r['network_ms']:.3f} | {r['floor']:.2f} | "
            f"{r['per_input_us']:.1f} | {ks} |"
        )
    lines += [
        "",
        "The amortized path is the explainer network and one model call on the batch "
        "(v(N): every feature present replaces nothing), v(empty) kept from fit, and the "
        "efficiency normalisation and layout (a few tensor ops). It costs at least the "
        "network plus the forward pass: at batch 1, where both are Python-bound (a few "
        "microseconds per layer), the default 'mlp' network costs about one forward pass "
        "of these models by itself, so 2x cannot be met there (the column (forward + "
        "network) / forward is the floor with no other cost); at batch 256 the networks "
        "cost less than the models.",
        "",
    ]
    for sel in report.get("selective", []):
        lines += selective_markdown(sel)
    return "\n".join(lines)


def selective_markdown(r: dict) -> list[str]:
    met = r["matched"] and r["speedup"] >= SELECTIVE_TARGET
    where = (
        f"the largest coverage whose MSE is at most KernelShap(512)'s is {r['coverage']:g}"
        if r["matched"]
        else "no coverage matches KernelShap(512)'s MSE (not even 0); timed at the "
        f"coverage with the lowest MSE, {r['coverage']:g}"
    )
    lines = [
        f"## Selective explanations against KernelShap(n = 512): {r['output']}",
        "",
        f"Breast cancer (d = {r['d']}), an MLP classifier's {r['output']}, baseline 0; "
        "an ensemble "
        f"of {r['members']} FastSHAP explainers ({r['epochs']} epochs); high-quality "
        f"explanations: KernelShap with {r['hq_samples']} coalitions; fallback KernelShap "
        f"with {r['n_fallback_samples']}; {r['test_inputs']} held-out inputs (mean "
        f"squared HQ attribution {r['hq_signal']:.3g}). Target: >= {SELECTIVE_TARGET:g}x "
        "faster per input than KernelShap(512) at the coverage where selective matches "
        "its MSE.",
        "",
        f"MSE to HQ: KernelShap(512) {r['kernel_shap_512_mse']:.4g}; amortized alone "
        f"{r['amortized_mse']:.4g}; KernelShap({r['n_fallback_samples']}) alone "
        f"{r['mc_mse']:.4g}.",
        "",
        "| coverage | refined share | selective MSE |",
        "|---|---|---|",
    ]
    lines += [f"| {g['coverage']:g} | {g['refined']:.2f} | {g['mse']:.4g} |" for g in r["grid"]]
    lines += [
        "",
        f"{where}: selective {r['selective_us_per_input']:.1f} us per input (MSE "
        f"{r['selective_mse']:.4g}), KernelShap(512) {r['kernel_shap_us_per_input']:.1f} us "
        f"per input: {r['speedup']:.1f}x ({'met' if met else 'NOT met'}).",
        "",
        "The refined inputs get lam A + (1 - lam) MC_n; with MC_n far worse than A, lam "
        "is near 1 and they stay near A, so selective matches KernelShap(512) only where "
        "the amortized explanation itself does (then at coverage 1, the ensemble alone). "
        "KernelShap is exact on additive games: on the nearly additive logit its error "
        "at n = 512 is about 0.1% of the signal, below the network's; on the saturating "
        "probability it is larger than the ensemble's.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, 1 epoch, no files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats, epochs = (3, 1) if args.quick else (15, 5)
    models = be.make_models()
    data = be.load_inputs(256)
    rows = []
    for name in ("tabular", "image_mlp", "image_cnn"):
        x, _, group = data[name]
        rows += run_case(name, models[name], x, group.unsqueeze(0), repeats, epochs)
    report = {
        "command": "python -m bench.bench_amortized" + (" --quick" if args.quick else ""),
        "machine": machine_info(),
        "repeats": repeats,
        "target": TARGET,
        "rows": rows,
        "selective": [run_selective(args.quick, repeats, out) for out in OUTPUTS],
    }
    text = markdown(report)
    print(text)
    if not args.quick:
        write_results(RESULTS, report, text)


if __name__ == "__main__":
    main()
