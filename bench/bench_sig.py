"""Shapley Integrated Gradients speed: SIG against its bare gradient evaluations and
against the same IG paths run one coalition baseline at a time (Captum's and xattr's IG).

    .venv/bin/python -m bench.bench_sig            # writes bench/results/bench_sig.{json,md}
    .venv/bin/python -m bench.bench_sig --quick    # fewer rounds, prints only

On bench_explainers.py's models and inputs (``image_mlp`` and ``image_cnn`` with 49
superpixels of 4 x 4 pixels, ``tabular`` with 64 columns; fixed random weights), B
inputs, reference 0, target the predicted class (column 0 for ``tabular``), m
coalitions per size, n_steps Gauss-Legendre points, one torch thread, one process.
K is the number of unique coalitions that ``stratified_coalitions(d, m, seed=0)`` draws.

* (a) ``ShapleyIntegratedGradients(model).attribute(x, baselines=0, target=t,
  feature_mask=superpixels, n_coalitions_per_size=m, n_steps=n, seed=0)`` (normalised,
  the default);
* (b) the bare gradient evaluations: the same B * K * n_steps path points, read from a
  buffer built beforehand, through the model's forward and the backward of the target
  output w.r.t. the points, in the batch sizes the model saw (with gradients) during
  (a), recorded by a counting wrapper. The issue's target: (a)/(b) <= 1.15;
* (c) the user's way with Captum: ``captum.attr.IntegratedGradients`` called once per
  coalition baseline b_S (K calls, each on all B inputs, same n_steps, method
  "gausslegendre", internal_batch_size = SIG's rows per forward), the K attributions
  combined with ``combination_weights`` ("per_size"); checked against SIG's raw
  (``normalize=False``) output;
* (d) the same loop with xattr's own ``IntegratedGradients``: separates what SIG gains
  from batching the K paths from what the kernels gain.

Timing: a warm-up call of each, then rounds that run every variant once in a rotating
order; medians. (a), (b) and the breakdown run in one set of rounds, (a), (c) and (d)
in a second, shorter one. The breakdown times the stages of (a) on their own (argument
set-up, coalitions and weights, the baselines b_S with ``ops.mask_apply``, the weights
spread to elements, the path points, the path integration with its weights, the
finiteness checks, the normalisation's two forward passes), and the model's own
forward + backward time inside (a) and inside (b) (a timing wrapper, with autograd
marks around the model for the backward), to show where (a)'s time beyond (b) goes.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bench import bench_explainers as be
from bench._harness import interleaved, loadavg, machine_info, median, write_results
from xattr import IntegratedGradients, ShapleyIntegratedGradients, ops
from xattr._core import validation
from xattr._core.batching import batch_rows, expand_base
from xattr._core.features import format_feature_mask
from xattr._core.inputs import format_baselines, format_inputs
from xattr._core.targets import Targets
from xattr.baselines import resolve
from xattr.explainers._gradient import _blocks, _Carry, float_inputs
from xattr.explainers.shapley_integrated_gradients import (
    _Run,
    combination_weights,
    stratified_coalitions,
)

RESULTS = Path(__file__).resolve().parent / "results"
CASES = ("image_mlp", "image_cnn", "tabular")
TARGET_RATIO = 1.15  # (a) / (b), from the issue


class _Enter(torch.autograd.Function):
    """Identity on the model's input; its backward runs last: the backward ends."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, clock: Timed) -> Tensor:
        ctx.clock = clock
        return z.view_as(z)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
        c = ctx.clock
        c.bwd += time.perf_counter() - c.mark
        return g, None


class _Exit(torch.autograd.Function):
    """Identity on the model's output; its backward runs first: the backward starts."""

    @staticmethod
    def forward(ctx: Any, out: Tensor, clock: Timed) -> Tensor:
        ctx.clock = clock
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
        ctx.clock.mark = time.perf_counter()
        return g, None


class Timed:
    """The model with a clock: forward time of every call, and the time of the
    backward through the model (between the two autograd marks) when the call records
    a graph. ``reset`` starts a new total."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.fwd = self.bwd = self.mark = 0.0

    def reset(self) -> None:
        self.fwd = self.bwd = 0.0

    def __call__(self, z: Tensor) -> Tensor:
        t = time.perf_counter()
        if torch.is_grad_enabled() and z.requires_grad:
            out = _Exit.apply(self.model(_Enter.apply(z, self)), self)
        else:
            out = self.model(z)
        self.fwd += time.perf_counter() - t
        return out


class Case:
    """One model, its inputs, SIG's settings, and every variant."""

    def __init__(
        self, name: str, model: torch.nn.Module, x: Tensor, group: Tensor, args: argparse.Namespace
    ) -> None:
        self.name, self.model, self.x, self.group = name, model, x, group
        self.B, self.m, self.n_steps = x.shape[0], args.m, args.n_steps
        with torch.no_grad():
            out = model(x)
        # the predicted class, or column 0 of a one-output model (as bench_explainers)
        self.target: int | Tensor = 0 if out.shape[1] == 1 else out.argmax(1)
        self.d = int(group.max()) + 1
        self.S, self.counts = stratified_coalitions(self.d, self.m, 0)
        self.K = self.S.shape[0]
        self.w = combination_weights(self.S, self.counts, "per_size")
        self.kw = dict(
            baselines=0,
            target=self.target,
            feature_mask=group,
            n_coalitions_per_size=self.m,
            n_steps=self.n_steps,
            seed=0,
        )
        self.sig = ShapleyIntegratedGradients(model)
        # the batch sizes the model sees inside SIG, with and without gradients
        self.calls: list[tuple[int, bool]] = []

        def counting(t: Tensor) -> Tensor:
            self.calls.append((t.shape[0], torch.is_grad_enabled()))
            return model(t)

        ShapleyIntegratedGradients(counting).attribute(x, **self.kw)
        self.sizes = [n for n, grad in self.calls if grad]
        self.rows = batch_rows((x,), None, None)  # SIG's rows per forward
        # (b)'s buffer: every path point, example-major as SIG orders its rows
        alphas, _ = ops.quadrature("gausslegendre", self.n_steps, dtype=x.dtype)
        bases = ops.mask_apply(x, self.S, group, torch.zeros(1, *x.shape[1:]))  # [B, K, *F]
        xb = x.unsqueeze(1)
        pts = bases.unsqueeze(2) + alphas.view(1, 1, -1, *[1] * (x.dim() - 1)) * (
            xb.unsqueeze(2) - bases.unsqueeze(2)
        )
        self.buffer = pts.reshape(-1, *x.shape[1:]).contiguous()
        assert self.buffer.shape[0] == sum(self.sizes) == self.B * self.K * self.n_steps
        t = torch.as_tensor(self.target).reshape(-1)
        self.row_target = t.expand(self.B).repeat_interleave(self.K * self.n_steps)[:, None]
        # element weights and masks per coalition for the loops (c) and (d)
        self.timed = Timed(model)
        self.timed_sig = ShapleyIntegratedGradients(self.timed)
        self.in_model: dict[str, list[float]] = {"sig": [], "plain": []}

    # ------------------------------------------------------------------ variants
    def sig_call(self) -> Tensor:
        """(a)."""
        return self.sig.attribute(self.x, **self.kw)

    def _plain(self, model: Callable[[Tensor], Tensor]) -> None:
        a = 0
        for n in self.sizes:
            p = self.buffer[a : a + n].detach().requires_grad_()
            with torch.enable_grad():
                sel = model(p).gather(1, self.row_target[a : a + n])
                torch.autograd.grad(sel.sum(), p)
            a += n

    def plain(self) -> None:
        """(b): forward + backward over the prebuilt points, in SIG's batch sizes."""
        self._plain(self.model)

    def sig_timed_model(self) -> Tensor:
        """(a) with the model in a timing wrapper: its forward + backward total."""
        self.timed.reset()
        out = self.timed_sig.attribute(self.x, **self.kw)
        self.in_model["sig"].append(self.timed.fwd + self.timed.bwd)
        return out

    def plain_timed_model(self) -> None:
        """(b) through the same timing wrapper (like for like with the one above)."""
        self.timed.reset()
        self._plain(self.timed)
        self.in_model["plain"].append(self.timed.fwd + self.timed.bwd)

    def _loop(self, ig: Any, **extra: Any) -> Tensor:
        """One IG call per coalition baseline b_S on all B inputs, combined with SIG's
        per-feature weights, as a user would write it."""
        S, counts = stratified_coalitions(self.d, self.m, 0)
        w = combination_weights(S, counts, "per_size").to(self.x.dtype)
        acc = torch.zeros_like(self.x)
        for k in range(S.shape[0]):
            keep = S[k][self.group]  # [*F]: elements of the features in S
            base = torch.where(keep, self.x, torch.zeros((), dtype=self.x.dtype))
            a = ig.attribute(
                self.x,
                baselines=base,
                target=self.target,
                n_steps=self.n_steps,
                method="gausslegendre",
                internal_batch_size=self.rows,
                **extra,
            )
            acc += a * w[k][self.group]
        return acc

    def captum_loop(self) -> Tensor:
        """(c): K calls of Captum's IntegratedGradients."""
        from captum.attr import IntegratedGradients as CaptumIG

        return self._loop(CaptumIG(self.model))

    def xattr_loop(self) -> Tensor:
        """(d): K calls of xattr's IntegratedGradients."""
        return self._loop(IntegratedGradients(self.model))

    # ----------------------------------------------------------------- breakdown
    def stages(self) -> dict[str, Callable[[], Any]]:
        """ShapleyIntegratedGradients.attribute's stages on their own (mirrors
        xattr/explainers/shapley_integrated_gradients.py and _gradient.integrate_paths
        for one chunk of examples, as these cases have)."""
        x, model, B, J = self.x, self.model, self.B, self.n_steps

        def setup() -> tuple:
            xs, _ = format_inputs(x)
            float_inputs(xs)
            refs = format_baselines(resolve(0, xs[0], 5.0), xs)
            refs = tuple(expand_base(r, B).contiguous() for r in refs)
            groups, _ = format_feature_mask(self.group, xs)
            targets = Targets(self.target, B)
            rows = batch_rows(xs, None, None)
            return xs, refs, groups, targets, rows

        xs, refs, groups, targets, rows = setup()
        run = _Run(model, xs, refs, groups, (), targets, J, "gausslegendre", rows)
        S, w = self.S, self.w
        bases = run._baselines(S, 0, B)
        weights = run._weights(w, 0, B)
        E = x[0].numel()
        flat_x = x.reshape(B, -1).contiguous()
        flat_b = bases[0].reshape(B, self.K, -1).contiguous()
        alphas, qw = ops.quadrature("gausslegendre", J, dtype=x.dtype)
        K = self.K
        blocks = list(_blocks(B, K, J, rows))
        fake = [
            torch.randn(e - s, k1 - k0, j1 - j0, E, dtype=x.dtype)
            for s, e, k0, k1, j0, j1 in blocks
        ]
        attrs = (self.sig.attribute(x, **{**self.kw, "normalize": False}).unsqueeze(1),)
        pw = weights[0]
        summed = ops.path.REDUCTIONS.index("sum")

        def points() -> None:
            for s, e, k0, k1, j0, j1 in blocks:
                ops.path.points_flat(flat_x[s:e], flat_b[s:e, k0:k1], alphas[j0:j1])

        def integrate() -> None:
            # integrate_paths: one weighted, summed kernel call per block of whole
            # examples; the float64 carry (_Carry) for an example split across blocks
            carry = _Carry("sum", K, J, qw, True)
            for (s, e, k0, k1, j0, j1), g in zip(blocks, fake):
                p = pw if pw.shape[0] == 1 else pw[s:e]
                if k1 - k0 == K and j1 - j0 == J:
                    ops.path.integrate_flat(g, flat_x[s:e], flat_b[s:e], qw, summed, True, p)
                    continue
                carry.add(g, flat_x[s:e], flat_b[s:e, k0:k1], p[:, k0:k1], k0, j0, j1)
                if k1 == K and j1 == J:
                    carry.result()

        def checks() -> None:
            validation.finite("inputs", flat_x)
            validation.finite("baselines", flat_b)

        return {
            "argument set-up": setup,
            "coalitions + weights": lambda: combination_weights(
                *stratified_coalitions(self.d, self.m, 0), "per_size"
            ),
            "baselines (mask_apply)": lambda: run._baselines(S, 0, B),
            "weights to elements": lambda: run._weights(w, 0, B),
            "path points": points,
            "integrate + weigh (kernel)": integrate,
            "finite checks": checks,
            "normalisation": lambda: run.normalized(attrs),
        }


def run_case(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    """Times one case: (a) vs (b) with the breakdown, then the loops (c) and (d)."""
    sizes = case.sizes
    entry: dict[str, Any] = {
        "case": case.name,
        "B": case.B,
        "d": case.d,
        "m": case.m,
        "K": case.K,
        "n_steps": case.n_steps,
        "path_rows": case.B * case.K * case.n_steps,
        "elements": case.x[0].numel(),
        "rows_per_forward": case.rows,
        "grad_batches": sizes,
        "nograd_batches": [n for n, grad in case.calls if not grad],
    }
    # agreement: SIG's raw output against the two loops
    raw = case.sig.attribute(case.x, **{**case.kw, "normalize": False})
    scale = float(raw.abs().max())
    for name, f in (("captum", case.captum_loop), ("xattr_ig", case.xattr_loop)):
        diff = float((f() - raw).abs().max())
        entry[f"max_abs_diff_{name}"] = diff
        entry[f"max_rel_diff_{name}"] = diff / scale
    entry["max_abs_attribution"] = scale
    main = {
        "sig": case.sig_call,
        "plain": case.plain,
        "sig_timed_model": case.sig_timed_model,
        "plain_timed_model": case.plain_timed_model,
    }
    try:
        stages = case.stages()
    except Exception as e:  # the breakdown reads SIG's internals: report, don't fail
        stages = {}
        entry["breakdown_error"] = f"{type(e).__name__}: {e}"
    t = interleaved({**main, **stages}, args.rounds)
    sig_ms, plain_ms = 1e3 * t.median("sig"), 1e3 * t.median("plain")
    entry.update(
        sig_ms=sig_ms,
        plain_ms=plain_ms,
        ratio_sig_plain=sig_ms / plain_ms,
        target_ok=sig_ms / plain_ms <= TARGET_RATIO,
        rounds=args.rounds,
    )
    in_sig = 1e3 * median(case.in_model["sig"][1:])  # [0] is the warm-up call
    in_plain = 1e3 * median(case.in_model["plain"][1:])
    entry["model_fwd_bwd_in_sig_ms"] = in_sig
    entry["model_fwd_bwd_in_plain_ms"] = in_plain
    entry["sig_timed_ms"] = 1e3 * t.median("sig_timed_model")
    entry["plain_timed_ms"] = 1e3 * t.median("plain_timed_model")
    breakdown = {k: 1e3 * t.median(k) for k in stages}
    outside = sum(v for k, v in breakdown.items() if k != "argument set-up")
    breakdown["argument set-up"] = breakdown.get("argument set-up", 0.0)
    breakdown["model in (a) - model in (b)"] = in_sig - in_plain
    # (a) - (b) beyond the timed stages and the model's own difference
    breakdown["rest"] = (
        sig_ms - plain_ms - outside - breakdown["argument set-up"] - (in_sig - in_plain)
    )
    entry["breakdown_ms"] = breakdown
    t2 = interleaved(
        {"sig": case.sig_call, "captum_loop": case.captum_loop, "xattr_loop": case.xattr_loop},
        args.loop_rounds,
    )
    entry["sig_ms_loop_phase"] = 1e3 * t2.median("sig")
    for k in ("captum_loop", "xattr_loop"):
        entry[f"{k}_ms"] = 1e3 * t2.median(k)
        entry[f"ratio_{k}_sig"] = 1e3 * t2.median(k) / 1e3 * t2.median("sig")
    samples = {**t.seconds, **{f"{k}_loop_phase": v for k, v in t2.seconds.items()}}
    entry["samples_ms"] = {k: [round(v * 1e3, 4) for v in vs] for k, vs in samples.items()}
    return entry


def batches(sizes: list[int]) -> str:
    """Batch sizes as 'count x size' pairs."""
    out: dict[int, int] = {}
    for n in sizes:
        out[n] = out.get(n, 0) + 1
    return " + ".join(f"{c} x {n}" for n, c in sorted(out.items(), key=lambda kv: -kv[0]))


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page."""
    m, cfg = report["machine"], report["config"]
    lines = [
        "# Shapley Integrated Gradients benchmark",
        "",
        f"{m['date']}; torch {m['torch']}; captum {m['captum']}; {m['threads']} torch thread; "
        f"{m['cpu']} ({m['cpu_count']} CPUs); load {m['loadavg_before']} -> "
        f"{m['loadavg_after']}; total {m['total_s']:.0f} s.",
        "",
        f"B = {cfg['B']} inputs, m = {cfg['m']} coalitions per size, n_steps = "
        f"{cfg['n_steps']} (Gauss-Legendre), reference 0, target the predicted class "
        "(column 0 for tabular); bench_explainers.py's models (fixed random weights) and "
        f"inputs. Medians of {cfg['rounds']} interleaved rounds for (a), (b) and the "
        f"breakdown, {cfg['loop_rounds']} for the loops. (a) "
        "`ShapleyIntegratedGradients(model).attribute(x, baselines=0, target=t, "
        "feature_mask=..., n_coalitions_per_size=m, n_steps=n, seed=0)`; (b) forward + "
        "backward of the target output over the same B * K * n_steps path points from a "
        "prebuilt buffer, in the batch sizes the model saw with gradients in (a); (c) "
        "Captum's `IntegratedGradients` called once per coalition baseline (K calls on B "
        "inputs, same n_steps, internal_batch_size = SIG's rows), combined with "
        "`combination_weights`; (d) the same loop with xattr's `IntegratedGradients`. "
        f"Target (a)/(b) <= {TARGET_RATIO}. Max diff: |loop - SIG(normalize=False)| over "
        "all elements, relative to SIG's largest |attribution|.",
        "",
        "| model | d | K | path rows | grad batches in (a) | (a) SIG ms | (b) bare ms "
        "| (a)/(b) | target | (c) Captum loop ms | (c)/(a) | (d) xattr IG loop ms | (d)/(a) "
        "| max rel diff (c) | max rel diff (d) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in report["cases"]:
        if "error" in e:
            lines.append(f"| {e['case']} | FAILED: {e['error'][:100]} ||||||||||||||")
            continue
        cells = [
            e["case"],
            str(e["d"]),
            str(e["K"]),
            str(e["path_rows"]),
            batches(e["grad_batches"]),
            f"{e['sig_ms']:.1f}",
            f"{e['plain_ms']:.1f}",
            f"{e['ratio_sig_plain']:.3f}",
            "ok" if e["target_ok"] else "**missed**",
            f"{e['captum_loop_ms']:.1f}",
            f"{e['ratio_captum_loop_sig']:.2f}x",
            f"{e['xattr_loop_ms']:.1f}",
            f"{e['ratio_xattr_loop_sig']:.2f}x",
            f"{e['max_rel_diff_captum']:.1e}",
            f"{e['max_rel_diff_xattr_ig']:.1e}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    stage_names: list[str] = []
    for e in report["cases"]:
        for k in e.get("breakdown_ms", {}):
            if k not in stage_names:
                stage_names.append(k)
    lines += [
        "",
        "## Where (a)'s time beyond (b) goes",
        "",
        "Medians in ms. `model in (a)` / `model in (b)`: the model's own forward + backward "
        "time during (a) and (b) (the same timing wrapper in both; autograd marks around "
        "the model time the backward); the other columns are the stages of (a) timed on "
        "their own in the same rounds, on SIG's blocks of rows (path points = "
        "`ops.path.points_flat`; integrate + weigh (kernel) = `ops.path.integrate_flat` "
        "with the path weights and reduction 'sum' on stand-in gradients; normalisation = "
        "the two forward passes f(x), f(r) and the rescaling); `model in (a) - model in "
        "(b)` the difference of the two model times; "
        "`rest` = (a) - (b) minus all of these (the output checks and target selection, "
        "autograd set-up, gradient reshapes, accumulation, Python between the stages).",
        "",
        "| model | (a) | (b) | (a) - (b) | model in (a) | model in (b) | "
        + " | ".join(stage_names)
        + " |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(stage_names),
    ]
    for e in report["cases"]:
        if "breakdown_ms" not in e:
            continue
        b = e["breakdown_ms"]
        cells = [
            e["case"],
            f"{e['sig_ms']:.2f}",
            f"{e['plain_ms']:.2f}",
            f"{e['sig_ms'] - e['plain_ms']:.2f}",
            f"{e['model_fwd_bwd_in_sig_ms']:.2f}",
            f"{e['model_fwd_bwd_in_plain_ms']:.2f}",
        ]
        cells += [f"{b[k]:.3f}" if k in b else "-" for k in stage_names]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def notes(report: dict[str, Any]) -> list[str]:
    """What the numbers say, from the numbers."""
    out = []
    for e in report["cases"]:
        if "breakdown_ms" not in e:
            continue
        b = dict(e["breakdown_ms"])
        extra = e["sig_ms"] - e["plain_ms"]
        parts = sorted(b.items(), key=lambda kv: -kv[1])
        listing = ", ".join(f"{k} {v:.2f}" for k, v in parts)
        verdict = "meets" if e["target_ok"] else "misses"
        out.append(
            f"{e['case']}: (a)/(b) = {e['ratio_sig_plain']:.3f} {verdict} {TARGET_RATIO}; "
            f"(a) - (b) = {extra:.2f} ms; the model's forward + backward: "
            f"{e['model_fwd_bwd_in_sig_ms']:.2f} ms in (a), "
            f"{e['model_fwd_bwd_in_plain_ms']:.2f} ms in (b); the rest of (a) - (b) (ms): "
            f"{listing}. The Captum loop takes {e['ratio_captum_loop_sig']:.2f}x (a), the "
            f"xattr IG loop {e['ratio_xattr_loop_sig']:.2f}x."
        )
    m = report["machine"]
    load = m.get("loadavg_before") or [0.0]
    if load[0] > (m.get("cpu_count") or 1) / 2:
        out.append(
            f"The machine was shared: load average {load[0]:.1f} before and "
            f"{(m.get('loadavg_after') or [0.0])[0]:.1f} after the run on {m['cpu_count']} "
            "CPUs, so absolute times are inflated; the ratios come from interleaved rounds."
        )
    out += [
        "(b) takes gradients of the same rows in the same batch sizes as (a) but neither "
        "builds the points nor integrates them; the model's forward + backward dominates "
        "both, so (a)/(b) is SIG's overhead over the gradient evaluations alone.",
        "The loops (c) and (d) build each b_S with `torch.where` and combine the K IG "
        "attributions with the per-element weights of `combination_weights` inside the "
        "timed call; their B * n_steps rows per IG call fit one forward each.",
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few rounds, prints only")
    ap.add_argument("--inputs", type=int, default=8, help="B (default 8)")
    ap.add_argument("--m", type=int, default=2, help="coalitions per size (default 2)")
    ap.add_argument("--n-steps", type=int, default=16, help="quadrature points (default 16)")
    ap.add_argument("--rounds", type=int, default=None, help="(a), (b) rounds (default 21)")
    ap.add_argument("--loop-rounds", type=int, default=None, help="loop rounds (default 7)")
    ap.add_argument("--only", default=None, help="run cases whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true", help="tracebacks of failures")
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 21)
    args.loop_rounds = args.loop_rounds or (2 if args.quick else 7)
    torch.set_num_threads(1)

    t_start = time.perf_counter()
    machine = machine_info(libraries=("captum",))
    print(
        f"bench_sig: torch {machine['torch']}, 1 thread, {machine['cpu']}, "
        f"load {machine['loadavg_before']}; B {args.inputs}, m {args.m}, "
        f"n_steps {args.n_steps}, rounds {args.rounds} / {args.loop_rounds}",
        flush=True,
    )
    models, data = be.make_models(), be.load_inputs(args.inputs)
    cases = []
    for name in CASES:
        if args.only is not None and args.only not in name:
            continue
        try:
            x, _, group = data[name]
            entry = run_case(Case(name, models[name], x, group, args), args)
        except Exception as e:
            if args.verbose:
                traceback.print_exc()
            entry = {"case": name, "error": f"{type(e).__name__}: {e}"}
            print(f"  {name}: FAILED {entry['error']}", flush=True)
        else:
            print(
                f"  {name}: K {entry['K']}, (a) {entry['sig_ms']:.1f} ms, (b) "
                f"{entry['plain_ms']:.1f} ms, (a)/(b) {entry['ratio_sig_plain']:.3f}; Captum "
                f"loop {entry['ratio_captum_loop_sig']:.2f}x, xattr IG loop "
                f"{entry['ratio_xattr_loop_sig']:.2f}x; max rel diff vs Captum "
                f"{entry['max_rel_diff_captum']:.1e}",
                flush=True,
            )
        cases.append(entry)
    machine["loadavg_after"] = loadavg()
    machine["total_s"] = time.perf_counter() - t_start
    report = {
        "machine": machine,
        "config": {
            "B": args.inputs,
            "m": args.m,
            "n_steps": args.n_steps,
            "rounds": args.rounds,
            "loop_rounds": args.loop_rounds,
            "target_ratio": TARGET_RATIO,
        },
        "cases": cases,
    }
    report["notes"] = notes(report)
    missed = [e["case"] for e in cases if "error" in e or not e.get("target_ok", False)]
    print(f"total {machine['total_s']:.1f} s; (a)/(b) target missed: {missed or 'none'}")
    if args.quick or args.only is not None:
        print(markdown(report))
        return 0
    write_results(RESULTS / "bench_sig", report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
