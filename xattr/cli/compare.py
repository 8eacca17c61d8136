"""``xattr compare``: xattr against the reference implementations (Captum, shap) on
the user's own model: wall time (median of repeats), model rows per example,
agreement with xattr's result and, where the number of features allows, the error
against exact Shapley values."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from xattr._core.features import feature_scores, format_feature_mask
from xattr.cli.common import (
    Job,
    add_explainer_arguments,
    add_model_arguments,
    add_report_argument,
    check_report_dir,
    describe,
    fmt,
    positive,
    prepare,
    table,
    target_list,
    write_report,
)
from xattr.cli.errors import RunError, UsageError, one_line
from xattr.cli.methods import Plan, make_plan, method_list, parameters, parse_options
from xattr.explainers.registry import EXPLAINERS
from xattr.metrics import relative_l2, spearman, top_k_intersection

LIBRARIES = ("captum", "shap")
# shap's explainer for each xattr method it has (on feature indicators).
SHAP_METHODS = {
    "KernelShap": "KernelExplainer",
    "ShapleyValueSampling": "PermutationExplainer",
    "ExactShapley": "ExactExplainer",
}
EXACT_MAX_D = 16  # exact Shapley values by default up to this many features
EXACT_LIMIT = 24  # and with --exact up to this many (2^d model rows per example)
CAPTUM_PER_EVAL = 256  # Captum's perturbations_per_eval when not given: its fast setting
TOP_K = 5

EXAMPLES = """\
examples:
  # xattr vs Captum and shap on a torch.export program, 8 features: exact errors too
  xattr compare model.pt2 x.npy --methods kernelshap,svs,ig --n-samples 200 --repeats 5

  # an image model from your own code, 7 x 7 superpixels, Captum only, results as JSON
  xattr compare mypkg.nets:make_cnn images/ --state-dict w.pt --image-size 28 \\
      --grayscale --patch 4 --methods ks,lime,fa --against captum --json compare.json

  # the table as an HTML page (compare-report/index.html)
  xattr compare model.pt2 x.npy --methods ks,ig --report compare-report/

Columns: time (median of --repeats runs, after one counted run), rows/ex (model
rows per example, counted by wrapping the model), the agreement of each reference
library's result with xattr's per feature (relative l2 distance, Spearman
correlation, overlap of the top 5 features by |value|; means over examples), the
relative l2 error against exact Shapley values (d <= 16 features, or --exact), and
speedup (the library's time / xattr's). Sampling methods draw different samples in
each library, so they agree only up to their sampling error. Captum runs with
perturbations_per_eval=256 unless --perturbations-per-eval is given (its fastest
practical setting); shap explains feature indicators (KernelShap: KernelExplainer,
ShapleyValueSampling: PermutationExplainer with xattr's model rows, ExactShapley:
ExactExplainer), one example at a time.
"""


def register(subparsers: Any) -> None:
    """Adds ``compare`` to the command line."""
    p = subparsers.add_parser(
        "compare",
        help="time xattr against Captum and shap on your model",
        description="Benchmark xattr's explainers against the reference implementations\n"
        "on your own model and inputs: time, model rows, agreement and error against\n"
        "exact Shapley values, as a table (and JSON with --json).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    p.add_argument(
        "--methods",
        required=True,
        help="comma-separated explainers (names or aliases), e.g. ig,kernelshap,svs",
    )
    p.add_argument(
        "--against",
        default="captum,shap",
        help="reference libraries, comma-separated, from: captum, shap (default both; "
        "'none' for xattr alone); each runs where installed and where it has the method",
    )
    add_explainer_arguments(p)
    p.add_argument(
        "--repeats",
        type=positive(),
        default=3,
        metavar="N",
        help="timed runs per method and library; the table shows the median (default 3)",
    )
    p.add_argument(
        "--exact",
        action="store_true",
        help=f"compute exact Shapley values even for d > {EXACT_MAX_D} features (2^d model "
        f"rows per example; at most d = {EXACT_LIMIT})",
    )
    p.add_argument("--no-exact", action="store_true", help="skip the exact Shapley values")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    add_report_argument(p)
    p.set_defaults(run=run)


class Counting(nn.Module):
    """The model, counting the rows and calls it is given (a module, so that the
    explainers that hook modules take it)."""

    def __init__(self, model: Callable[..., Tensor]) -> None:
        super().__init__()
        self.model = model
        self.rows = 0
        self.calls = 0

    def get_submodule(self, target: str) -> nn.Module:
        """The wrapped model's submodules under their own names (for --layer)."""
        return self.model.get_submodule(target) if target else self

    def forward(self, *args: Any) -> Tensor:
        self.rows += int(args[0].shape[0])
        self.calls += 1
        return self.model(*args)


def _libraries(text: str) -> list[str]:
    if text.strip().lower() == "none":
        return []
    libs = [s.strip().lower() for s in text.split(",") if s.strip()]
    for lib in libs:
        if lib not in LIBRARIES:
            raise UsageError(
                f"--against: unknown library {lib!r} (expected: {', '.join(LIBRARIES)} or none)"
            )
    return list(dict.fromkeys(libs))


def _installed(lib: str) -> bool:
    return importlib.util.find_spec(lib) is not None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(
    fn: Callable[[], Any], repeats: int, seed: int, device: torch.device
) -> tuple[list[float], Any]:
    """``repeats`` runs of fn, each after torch.manual_seed(seed): (seconds, last result)."""
    times, out = [], None
    for _ in range(repeats):
        torch.manual_seed(seed)
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times, out


class Features:
    """The features of the job: groups (positions 0..d-1 per input) and d."""

    def __init__(self, job: Job) -> None:
        self.inputs = job.inputs.tensors
        self.groups, ids = format_feature_mask(job.feature_mask, self.inputs)
        self.d = int(ids.numel())

    def scores(self, attributions: Any) -> Tensor:
        """Per-feature scores [B, d] float64 on the CPU (a layer method's attributions,
        shaped like its layer: every element)."""
        if isinstance(attributions, np.ndarray):
            return torch.from_numpy(attributions).double().reshape(attributions.shape[0], -1)
        a = attributions if isinstance(attributions, tuple) else (attributions,)
        a = tuple(t.detach() for t in a)
        if len(a) != len(self.inputs) or any(t.shape != x.shape for t, x in zip(a, self.inputs)):
            return torch.cat([t.reshape(t.shape[0], -1) for t in a], 1).double().cpu()
        return feature_scores(a[0] if len(a) == 1 else a, self.inputs, self.groups, self.d).cpu()


def _captum_runner(
    plan: Plan, model: nn.Module, x: Any, args: argparse.Namespace, notes: list[str]
) -> Callable[[], Any] | None:
    """Captum's class of the same name on ``model``, with the arguments it takes."""
    import captum.attr as ca

    cls = getattr(ca, plan.info.name, None)
    base = getattr(ca, plan.base.name, None) if plan.base is not None else None
    if cls is None or (plan.base is not None and base is None):
        _missing(notes, "captum", plan.name)
        return None
    init_ok = parameters((base or cls).__init__)
    init = {k: v for k, v in plan.init.items() if k in init_ok}
    if base is not None:
        explainer = cls(base(model, **init))
    elif plan.layer is not None:
        explainer = cls(model, model.get_submodule(plan.layer), **init)
    else:
        explainer = cls(model, **init)
    accepted = set(parameters(cls.attribute))
    if base is not None:
        accepted |= set(parameters(base.attribute))
    kwargs = {k: v for k, v in plan.kwargs.items() if k in accepted or k == "target"}
    skip = ("show_progress", "memory_budget", "seed")  # seed: torch.manual_seed before each run
    dropped = sorted(k for k in plan.kwargs if k not in kwargs and k not in skip)
    if dropped:
        _note(notes, f"captum {plan.name}: takes no {', '.join(dropped)}")
    if "perturbations_per_eval" in accepted and args.perturbations_per_eval is None:
        kwargs["perturbations_per_eval"] = CAPTUM_PER_EVAL
    kwargs.pop("show_progress", None)
    return lambda: explainer.attribute(x, **kwargs)


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def _missing(notes: list[str], lib: str, method: str) -> None:
    """Adds ``method`` to the note "<lib> has no A, B" (one note per library)."""
    head = f"{lib} has no "
    for i, n in enumerate(notes):
        if n.startswith(head):
            if method not in n[len(head) :].split(", "):
                notes[i] = f"{n}, {method}"
            return
    notes.append(head + method)


def _shap_runner(
    plan: Plan,
    job: Job,
    feats: Features,
    model: Callable,
    rows_per_example: float,
    notes: list[str],
) -> Callable[[], Any] | None:
    """shap on feature indicators z in {0, 1}^d per example (z = 0: the baseline)."""
    method = SHAP_METHODS.get(plan.info.name) if plan.base is None else None
    if method is None:
        _missing(notes, "shap", plan.name)
        return None
    if len(job.inputs.tensors) != 1:
        _note(notes, "shap: runs on models of one input only")
        return None
    import shap

    x = job.inputs.tensors[0]
    B, d = x.shape[0], feats.d
    groups = feats.groups[0].reshape(feats.groups[0].shape[0], -1)
    b = plan.kwargs.get("baselines")
    base = (
        torch.zeros_like(x)
        if b is None
        else torch.as_tensor(b, dtype=x.dtype, device=x.device).expand_as(x)
    )
    targets = target_list(plan.kwargs.get("target"), B)
    seed = int(plan.kwargs.get("seed", 0) or 0)

    def f_for(i: int) -> Callable[[np.ndarray], np.ndarray]:
        g = groups[0] if groups.shape[0] == 1 else groups[i]
        xi, bi, t = x[i : i + 1], base[i : i + 1], targets[i]

        def f(z: np.ndarray) -> np.ndarray:
            keep = torch.from_numpy(z > 0.5).to(x.device)[:, g].view(-1, *x.shape[1:])
            with torch.no_grad():
                out = model(torch.where(keep, xi, bi))
            out = out if out.dim() == 1 else out[:, 0 if t is None else t]
            return out.double().cpu().numpy()

        return f

    background, ones = np.zeros((1, d)), np.ones((1, d))
    default = parameters(plan.info.cls.attribute).get("n_samples")
    n_samples = int(plan.kwargs.get("n_samples", default.default if default else 25) or 25)
    max_evals = max(2 * d + 1, int(math.ceil(rows_per_example)))

    def run() -> np.ndarray:
        rows = []
        for i in range(B):
            f = f_for(i)
            if method == "KernelExplainer":
                ex = shap.KernelExplainer(f, background)
                v = ex.shap_values(ones, nsamples=n_samples, l1_reg=False, silent=True)
            elif method == "PermutationExplainer":
                explainer: Any = shap.PermutationExplainer(f, background, seed=seed)
                v = explainer(ones, max_evals=max_evals, silent=True).values
            else:
                v = shap.ExactExplainer(f, background)(ones).values
            rows.append(np.asarray(v, dtype=np.float64).reshape(1, d))
        return np.concatenate(rows)

    if method == "PermutationExplainer":
        _note(notes, f"shap PermutationExplainer: max_evals={max_evals} per example (xattr's rows)")
    return run


def _agreement(scores: Tensor, ref: Tensor) -> dict[str, float]:
    """Means over examples of the agreement of ``scores`` with ``ref`` ([B, d])."""
    k = min(TOP_K, scores.shape[1])

    def mean(t: Tensor) -> float:
        t = t[~torch.isnan(t)]
        return float(t.mean()) if t.numel() else math.nan

    return {
        "rel_l2": mean(relative_l2(scores, ref)),
        "spearman": mean(spearman(scores, ref)),
        "top_k": mean(top_k_intersection(scores, ref, k)),
        "k": k,
    }


def _exact_scores(job: Job, feats: Features, args: argparse.Namespace) -> Tensor | None:
    """Exact Shapley values [B, d] (xattr's ExactShapley, the job's baselines, feature
    mask and target)."""
    if args.no_exact or (feats.d > EXACT_MAX_D and not args.exact):
        return None
    if feats.d > EXACT_LIMIT:
        raise UsageError(
            f"--exact: {feats.d} features need 2^{feats.d} model rows per example; at most "
            f"{EXACT_LIMIT} (use --patch or --feature-mask for fewer features)"
        )
    info = EXPLAINERS["ExactShapley"]
    kw = {"target": job.target, "baselines": job.baselines, "feature_mask": job.feature_mask}
    if args.memory_budget is not None:
        kw["memory_budget"] = args.memory_budget
    x = job.inputs.tensors
    try:
        out = info.cls(job.model.module).attribute(x[0] if len(x) == 1 else x, **kw)
    except Exception as e:
        raise RunError(f"exact Shapley values failed: {one_line(e, 500)}") from e
    return feats.scores(out)


def run(args: argparse.Namespace) -> int:
    """Runs ``xattr compare``."""
    options = parse_options(args.option)
    infos = method_list(args.methods)
    libs = _libraries(args.against)
    if args.exact and args.no_exact:
        raise UsageError("--exact and --no-exact: give one of them")
    json_path = Path(args.json) if args.json else None
    if json_path is not None and not json_path.parent.exists():
        raise UsageError(f"--json: the folder {json_path.parent} does not exist")
    check_report_dir(args)
    job = prepare(args)
    feats = Features(job)
    device = job.inputs.tensors[0].device
    notes: list[str] = []
    for lib in libs:
        if not _installed(lib):
            notes.append(f"{lib} is not installed: skipped")
    libs = [lib for lib in libs if _installed(lib)]
    plans = []
    for info in infos:
        flags = job.flags(args, occlusion=info.name == "Occlusion")
        opts = {
            k: v
            for k, v in options.items()
            if k in parameters(info.cls.attribute) or k in parameters(info.cls.__init__)
        }
        plan = make_plan(
            info,
            job.model,
            flags,
            opts,
            base=args.base if info.name == "NoiseTunnel" else None,
            layer=args.layer if not info.standalone and info.kind != "wrapper" else None,
            strict=False,
        )
        plan.kwargs["target"] = job.target
        plans.append(plan)
    used = {k for p in plans for k in list(p.kwargs) + list(p.init)}
    unused = [k for k in options if k not in used]
    if unused:
        raise UsageError(
            f"--option {unused[0]}: none of the methods "
            f"({', '.join(p.name for p in plans)}) takes {unused[0]!r}"
        )
    seed = args.seed if args.seed is not None else 0
    exact = _exact_scores(job, feats, args)
    results: list[dict[str, Any]] = []
    steps = len(plans) * (1 + len(libs))
    # a bar over the (method, library) runs; the explainers inside run without bars of
    # their own (they are being timed)
    bar = tqdm(total=steps, desc="compare", unit="runs", disable=args.quiet, file=sys.stderr)
    x = job.inputs.tensors
    call_x = x[0] if len(x) == 1 else x
    for plan in plans:
        ref_scores: Tensor | None = None
        xattr_time: float | None = None
        xattr_rows = 0.0
        for lib in ["xattr", *libs]:
            row: dict[str, Any] = {"method": plan.name, "library": lib}
            counter = Counting(job.model.module)
            try:
                if lib == "xattr":
                    explainer = plan.build(counter)
                    kwargs = {k: v for k, v in plan.kwargs.items() if k != "show_progress"}
                    if "show_progress" in plan.accepted():
                        kwargs["show_progress"] = False
                    fresh = plan.build(job.model.module)
                    counted: Callable[[], Any] | None = partial(
                        explainer.attribute, call_x, **kwargs
                    )
                    timed_fn: Callable[[], Any] | None = partial(fresh.attribute, call_x, **kwargs)
                elif lib == "captum":
                    counted = _captum_runner(plan, counter, call_x, args, notes)
                    timed_fn = _captum_runner(plan, job.model.module, call_x, args, [])
                else:
                    counted = _shap_runner(plan, job, feats, counter, xattr_rows, notes)
                    timed_fn = _shap_runner(plan, job, feats, job.model.module, xattr_rows, [])
                if counted is None or timed_fn is None:
                    bar.update(1)
                    continue
                torch.manual_seed(seed)
                out = counted()
                if isinstance(out, tuple) and not isinstance(call_x, tuple):
                    out = out[0]
                times, _ = _timed(timed_fn, args.repeats, seed, device)
                scores = feats.scores(out)
            except UsageError:
                raise
            except Exception as e:
                if args.debug:
                    raise
                row["error"] = one_line(e)
                results.append(row)
                bar.update(1)
                continue
            row.update(
                time_s=statistics.median(times),
                times_s=times,
                rows=counter.rows,
                rows_per_example=counter.rows / job.inputs.batch,
                calls=counter.calls,
            )
            if lib == "xattr":
                ref_scores, xattr_time = scores, row["time_s"]
                xattr_rows = row["rows_per_example"]
            elif ref_scores is not None:
                row["agreement"] = _agreement(ref_scores, scores)
                if xattr_time:
                    row["speedup"] = row["time_s"] / xattr_time
            if exact is not None and scores.shape == exact.shape:  # not a layer's
                row["err_vs_exact"] = float(relative_l2(scores, exact).mean())
            results.append(row)
            bar.update(1)
    bar.close()
    headers, rows, lines = _print(results, notes, exact is not None, feats.d, args)
    if json_path is not None:
        _write_json(json_path, job, feats, args, plans, libs, results, notes)
    if args.report:
        from xattr.report import Report

        report = Report(
            "xattr compare",
            config={
                "model": job.model.source,
                "inputs": job.inputs.source,
                "input shapes": job.inputs.shapes,
                "methods": [p.name for p in plans],
                "against": libs,
                "repeats": args.repeats,
                "features d": feats.d,
                "versions": _versions(),
            },
        )
        report.add_table(
            "Time, model rows, agreement and error",
            rows,
            columns=headers,
            caption="time: median of the timed runs; rows/ex: model rows per example; "
            "agreement with xattr's result; error: relative L2 against exact Shapley values.",
        )
        report.add_text("\n".join(f"- {line}" for line in lines))
        write_report(report, args)
    return 0


def _print(
    results: list[dict[str, Any]], notes: list[str], exact: bool, d: int, args: argparse.Namespace
) -> tuple[list[str], list[list[str]], list[str]]:
    k = min(TOP_K, d)
    headers = ["method", "library", "time ms", "rows/ex", "rel-l2 vs xattr", "spearman", f"top-{k}"]
    headers += ["err vs exact"] if exact else []
    headers += ["speedup"]
    rows = []
    for r in results:
        if "error" in r:
            rows.append(
                [r["method"], r["library"], "failed (see below)"] + [""] * (len(headers) - 3)
            )
            continue
        a = r.get("agreement", {})
        row = [r["method"], r["library"], fmt(r["time_s"] * 1e3, 4), fmt(r["rows_per_example"], 5)]
        row += [fmt(a.get("rel_l2"), 3), fmt(a.get("spearman"), 3), fmt(a.get("top_k"), 3)]
        row += [fmt(r.get("err_vs_exact"), 3)] if exact else []
        row += [fmt(r.get("speedup"), 3) + "x" if "speedup" in r else "-"]
        rows.append(row)
    print(table(headers, rows))
    lines = [
        f"d = {d} features; time: median of {args.repeats} run(s)"
        + (
            ""
            if exact
            else "; no exact Shapley values (d > 16: --exact)"
            if d > EXACT_MAX_D
            else ""
        )
    ]
    for r in results:
        if "error" in r:
            lines.append(f"failed: {r['method']} [{r['library']}]: {r['error']}")
    if any(r["library"] == "captum" for r in results):
        lines.append(
            "note: captum takes no seed: torch.manual_seed(seed) runs before each of its runs"
        )
    lines += [f"note: {n}" for n in notes]
    for line in lines:
        print(line)
    return headers, rows, lines


def _versions() -> dict[str, str | None]:
    import xattr

    out: dict[str, str | None] = {"xattr": xattr.__version__, "torch": str(torch.__version__)}
    for lib in LIBRARIES:
        if _installed(lib):
            from importlib import metadata

            try:
                out[lib] = metadata.version(lib)
            except metadata.PackageNotFoundError:  # pragma: no cover
                out[lib] = None
    return out


def _write_json(
    path: Path,
    job: Job,
    feats: Features,
    args: argparse.Namespace,
    plans: list[Plan],
    libs: list[str],
    results: list[dict[str, Any]],
    notes: list[str],
) -> None:
    doc = {
        "model": job.model.source,
        "model_kind": job.model.kind,
        "inputs": job.inputs.source,
        "input_shapes": job.inputs.shapes,
        "d": feats.d,
        "repeats": args.repeats,
        "libraries": libs,
        "methods": {
            p.name: {k: describe(v) for k, v in p.kwargs.items() if k != "show_progress"}
            for p in plans
        },
        "versions": _versions(),
        "device": str(job.inputs.tensors[0].device),
        "results": results,
        "notes": notes,
    }
    try:
        path.write_text(json.dumps(doc, indent=2, allow_nan=True) + "\n")
    except OSError as e:
        raise UsageError(f"--json: cannot write {path} ({e.strerror or e})") from e
