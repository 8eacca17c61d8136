"""``xattr explain``: one explainer on the user's model and inputs, written to a .pt
file, with a summary table (and MuS certificates with ``--smooth``)."""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

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
from xattr.cli.methods import Plan, make_plan, parameters, parse_options, resolve_method
from xattr.smoothing import MuS, columns, explain_and_certify, grid_patches

EXAMPLES = """\
examples:
  # KernelShap on a torch.export program, 4 x 4 superpixels, 200 coalitions
  xattr explain model.pt2 images/ --method kernelshap --patch 4 --n-samples 200 \\
      --image-size 28 --grayscale --out attributions.pt

  # IntegratedGradients of class 3 on a model from your own code and weights
  xattr explain mypkg.models:make_net x.npy --state-dict weights.pt \\
      --method ig --target 3 --baselines zero --n-steps 64 --out ig.pt

  # any other argument of the method: --option (Python literals)
  xattr explain model.pt2 x.npz --key test --method ig --option method=riemann_trapezoid

  # explain the MuS-smoothed model (lambda = 1/4) and certify its top quarter of features
  xattr explain model.pt2 x.pt --method fa --patch 7 --smooth 0.25 --out certified.pt

  # the same results as an HTML page too (report/index.html and its figures)
  xattr explain model.pt2 x.npy --method ig --out ig.pt --report report/

The output file: torch.load(path, weights_only=True) gives a dict with "attributions"
(shaped like the inputs, a tuple for several inputs), "target", "outputs" (the model's
outputs on the inputs), "scores" (per feature, [B, d]), "metadata" and, with --smooth,
"certificate".
"""


def register(subparsers: Any) -> None:
    """Adds ``explain`` to the command line."""
    p = subparsers.add_parser(
        "explain",
        help="explain a model's outputs on inputs with one method",
        description="Attributions of one explainer (any of xattr's, by name or alias)\n"
        "for a model's outputs on the given inputs, written to a .pt file, with a table\n"
        "per example: the target, the model's output at it, the sum of the attributions\n"
        "(per feature) and the top features by |attribution|.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    p.add_argument(
        "--method",
        "-m",
        required=True,
        help="the explainer: a class name (KernelShap, IntegratedGradients, ...) or an "
        "alias (ig, kernelshap, lime, svs, occlusion, deeplift, saliency, ...), any case",
    )
    add_explainer_arguments(p)
    s = p.add_argument_group("MuS smoothing and certificates")
    s.add_argument(
        "--smooth",
        type=float,
        metavar="LAMBDA",
        help="explain the MuS-smoothed model g (keep probability LAMBDA, a multiple of "
        "1/q in (0, 1]) and certify its top features (--top-fraction); the features "
        "are --patch squares, --feature-mask groups, or the columns of [B, d] inputs; "
        "the default target is g's prediction; g votes for perturbation methods and "
        "averages probabilities for gradient methods",
    )
    s.add_argument(
        "--smooth-q",
        type=positive(),
        default=64,
        metavar="Q",
        help="MuS noise rows = forward passes per input (default 64)",
    )
    s.add_argument(
        "--smooth-output",
        choices=("logits", "probs"),
        default="logits",
        help="what the model returns, for MuS (default logits)",
    )
    s.add_argument(
        "--top-fraction",
        type=float,
        metavar="F",
        default=0.25,
        help="the fraction of features the certified explanation keeps (default 0.25)",
    )
    p.add_argument(
        "--out", "-o", required=True, metavar="FILE", help="where to write the results (.pt)"
    )
    p.add_argument(
        "--top", type=int, default=3, metavar="K", help="top features shown per example (default 3)"
    )
    add_report_argument(p)
    p.set_defaults(run=run)


def _split_extras(result: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(attributions, extra outputs by name): delta / std follow the attributions when
    asked for (in that order)."""
    extras = [
        n
        for n, k in (("delta", "return_convergence_delta"), ("std", "return_std"))
        if kwargs.get(k)
    ]
    if not extras:
        return result, {}
    parts = list(result)
    return parts[0], dict(zip(extras, parts[1:]))


def _scores(attributions: Any, job: Job, mask: Any) -> Tensor:
    """Per-feature scores [B, d] (a group's value, or the sum of its elements)."""
    xs = job.inputs.tensors
    attrs = attributions if isinstance(attributions, tuple) else (attributions,)
    shapes_match = len(attrs) == len(xs) and all(a.shape == x.shape for a, x in zip(attrs, xs))
    if not shapes_match:  # a layer method: the layer's shape, every element a feature
        return torch.cat([a.reshape(a.shape[0], -1) for a in attrs], 1).double()
    groups, _ = format_feature_mask(mask, xs)
    d = int(max(int(g.max()) for g in groups)) + 1
    return feature_scores(attrs[0] if len(attrs) == 1 else attrs, xs, groups, d)


def _smooth(
    plan: Plan, job: Job, args: argparse.Namespace, show: bool | None
) -> tuple[Any, dict[str, Any], Any]:
    """Explains g = MuS(model) and certifies its top features."""
    if len(job.inputs.tensors) != 1:
        raise UsageError("--smooth: for models of one input")
    x = job.inputs.tensors[0]
    if args.patch is not None:
        segmenter: Any = grid_patches(args.patch)
    elif job.feature_mask is not None:
        segmenter = job.feature_mask
    elif x.dim() == 2:
        segmenter = columns()
    else:
        segmenter = None
    try:
        smoothed = MuS(
            job.model.module,
            args.smooth,
            q=args.smooth_q,
            feature_mask=segmenter,
            voting=plan.info.kind != "gradient",  # gradients need probabilities
            output=args.smooth_output,
            show_progress=show,
        ).eval()
    except (ValueError, TypeError) as e:
        raise UsageError(f"--smooth: {e}") from e
    explainer = plan.build(smoothed)
    kwargs = {k: v for k, v in plan.kwargs.items() if k != "show_progress"}
    target = None if args.target in (None, "pred") else kwargs.get("target")
    kwargs.pop("target", None)
    out = explain_and_certify(
        smoothed, explainer, x, args.top_fraction, target, show_progress=show, **kwargs
    )
    cert = {k: v.cpu() for k, v in out.certificate._asdict().items()}
    cert.update(
        alpha=out.alpha.cpu(),
        lambda_=smoothed.lambda_,
        q=smoothed.q,
        top_fraction=args.top_fraction,
        voting=smoothed.voting,
    )
    used_target = out.certificate.full_label if target is None else target
    return out.attributions, cert, used_target


def run(args: argparse.Namespace) -> int:
    """Runs ``xattr explain``."""
    options = parse_options(args.option)
    info = resolve_method(args.method)
    if args.smooth is not None and not 0 < args.smooth <= 1:
        raise UsageError(f"--smooth: expected lambda in (0, 1], got {args.smooth}")
    if not 0 < args.top_fraction <= 1:
        raise UsageError(f"--top-fraction: expected a fraction in (0, 1], got {args.top_fraction}")
    if args.top < 1:
        raise UsageError(f"--top: expected a positive number of features, got {args.top}")
    out_path = Path(args.out)
    if out_path.parent and not out_path.parent.exists():
        raise UsageError(f"--out: the folder {out_path.parent} does not exist")
    check_report_dir(args)
    job = prepare(args)
    flags = job.flags(args, occlusion=info.name == "Occlusion")
    if args.smooth is not None and "feature_mask" not in parameters(info.cls.attribute):
        flags["feature_mask"] = None  # the features of g alone (a gradient method)
    plan = make_plan(info, job.model, flags, options, base=args.base, layer=args.layer)
    show = False if args.quiet else None  # None: a bar when the call runs long
    if "show_progress" in plan.accepted() and "show_progress" not in options:
        plan.kwargs["show_progress"] = show
    plan.kwargs["target"] = job.target
    certificate = None
    torch.manual_seed(plan.kwargs.get("seed", 0) or 0)
    try:
        if args.smooth is not None:
            attributions, certificate, target = _smooth(plan, job, args, show)
            extras: dict[str, Any] = {}
        else:
            explainer = plan.build(job.model.module)
            x = job.inputs.tensors
            result = explainer.attribute(x[0] if len(x) == 1 else x, **plan.kwargs)
            attributions, extras = _split_extras(result, plan.kwargs)
            target = job.target
    except UsageError:
        raise
    except Exception as e:
        raise RunError(f"{plan.name} failed: {one_line(e, 500)}") from e
    attributions = (
        tuple(a.detach().cpu() for a in attributions)
        if isinstance(attributions, tuple)
        else attributions.detach().cpu()
    )
    scores = _scores(attributions, job, job.feature_mask)
    _write(out_path, args, job, plan, attributions, scores, target, extras, certificate)
    headers, rows = _print_summary(job, scores, target, certificate, args)
    if not args.quiet:
        print(f"wrote {out_path}", file=sys.stderr)
    if args.report:
        _report(args, job, plan, attributions, scores, headers, rows)
    return 0


def _report(
    args: argparse.Namespace,
    job: Job,
    plan: Plan,
    attributions: Any,
    scores: Tensor,
    headers: list[str],
    rows: list[list[str]],
) -> None:
    """``--report``: the configuration, the per-example table and a picture (the maps of
    image inputs on one colour scale, else bars of the first examples' features)."""
    from xattr import viz
    from xattr.report import Report

    report = Report(
        f"xattr explain: {plan.name}",
        config={
            "method": plan.name,
            "options": {k: describe(v) for k, v in plan.kwargs.items() if k != "show_progress"},
            "model": job.model.source,
            "inputs": job.inputs.source,
            "input shapes": job.inputs.shapes,
            "target": args.target or "default",
            "smooth (MuS lambda)": args.smooth,
        },
    )
    report.add_table("Per example", rows, columns=headers)
    attrs = attributions if isinstance(attributions, tuple) else (attributions,)
    x = job.inputs.tensors
    try:
        if len(attrs) == 1 and attrs[0].dim() == 4 and x[0].dim() == 4:
            fig = viz.image_attributions(
                {plan.name: attrs[0][:8]}, image=x[0][:8].detach().cpu(), segments=None
            )
            caption = "Attributions of the first examples (red: for the target; blue: against)."
        else:
            names = [str(j) for j in range(scores.shape[1])]
            fig = viz.feature_bars(scores[0], names, title="example 0")
            caption = "Example 0's features by |attribution| (per feature group)."
        report.add_figure("Attributions", fig, caption=caption)
    except (ImportError, ValueError) as e:  # no matplotlib, or a shape viz cannot draw
        report.add_text(f"No picture: {one_line(e)}")
    write_report(report, args)


def _write(
    path: Path,
    args: argparse.Namespace,
    job: Job,
    plan: Plan,
    attributions: Any,
    scores: Tensor,
    target: Any,
    extras: dict[str, Any],
    certificate: Any,
) -> None:
    import xattr

    attrs = attributions if isinstance(attributions, tuple) else (attributions,)
    metadata = {
        "method": plan.name,
        "options": {k: describe(v) for k, v in plan.kwargs.items() if k != "show_progress"},
        "init": {k: describe(v) for k, v in plan.init.items()},
        "target": describe(target),
        "target_spec": args.target or "default",
        "model": job.model.source,
        "model_kind": job.model.kind,
        "inputs": job.inputs.source,
        "input_shapes": job.inputs.shapes,
        "attribution_shapes": [list(a.shape) for a in attrs],
        "names": job.inputs.names,
        "notes": job.inputs.notes,
        "xattr_version": xattr.__version__,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "command": ["xattr", *sys.argv[1:]]
        if sys.argv and "xattr" in Path(sys.argv[0]).name
        else None,
    }
    data: dict[str, Any] = {
        "attributions": attributions,
        "target": target.cpu() if isinstance(target, Tensor) else target,
        "outputs": job.outputs.detach().cpu(),
        "scores": scores,
        "metadata": metadata,
    }
    data.update({k: (v.detach().cpu() if isinstance(v, Tensor) else v) for k, v in extras.items()})
    if certificate is not None:
        data["certificate"] = certificate
    try:
        torch.save(data, str(path))
    except OSError as e:
        raise UsageError(f"--out: cannot write {path} ({e.strerror or e})") from e


def _print_summary(
    job: Job, scores: Tensor, target: Any, certificate: Any, args: argparse.Namespace
) -> tuple[list[str], list[list[str]]]:
    B = scores.shape[0]
    targets = target_list(target, B)
    out = job.outputs.detach().cpu().double()
    headers = (
        ["#"]
        + (["file"] if job.inputs.names else [])
        + ["target", "output", "sum attr", f"top {args.top} features (id: score)"]
    )
    if certificate is not None:
        headers += ["consistent", "+radius", "-radius"]
    rows = []
    k = min(args.top, scores.shape[1])
    for i in range(B):
        t = targets[i]
        o = out[i] if out.dim() == 1 else out[i, t if t is not None else 0]
        top = scores[i].abs().topk(k).indices.tolist()
        row = [str(i)] + ([job.inputs.names[i]] if job.inputs.names else [])
        row += [
            fmt(t),
            fmt(float(o)),
            fmt(float(scores[i].sum())),
            ", ".join(f"{j}: {float(scores[i, j]):+.3g}" for j in top),
        ]
        if certificate is not None:
            row += [
                str(bool(certificate["consistent"][i])),
                str(int(certificate["incremental_int"][i])),
                str(int(certificate["decremental_int"][i])),
            ]
        rows.append(row)
    print(table(headers, rows))
    return headers, rows
