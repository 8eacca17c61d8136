"""What the subcommands share: the model / inputs / explainer arguments, loading them
into a :class:`Job`, number formats and tables."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from xattr.cli.errors import UsageError
from xattr.cli.loading import Inputs, Model, load_inputs, load_model, prepare_inputs, probe
from xattr.cli.methods import baselines_value, feature_mask_value, target_value


def positive(kind: type = int) -> Any:
    """An argparse type: a positive int (or float)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            msg = f"expected a positive {kind.__name__}, got {text!r}"
            raise argparse.ArgumentTypeError(msg) from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """MODEL, INPUTS and how to read them."""
    p.add_argument(
        "model",
        metavar="MODEL",
        help="the model: a torch.export program (.pt2, saved by torch.export.save; export "
        "it in eval mode, with a dynamic batch dimension or it is called in chunks of "
        "its batch), a TorchScript file (torch.jit.save), or package.module:factory "
        "(a callable returning an nn.Module, imported from the current folder or the "
        "installed packages)",
    )
    p.add_argument(
        "inputs",
        metavar="INPUTS",
        help="the examples to explain, batch first: a .pt file (a tensor, a tuple of "
        "tensors for a model of several inputs, or a dict: see --key), a .npy or .npz "
        "file, or a folder of PNG / JPEG images (see --image-size, --mean, --std)",
    )
    g = p.add_argument_group("model and inputs")
    g.add_argument(
        "--state-dict",
        metavar="FILE",
        help="weights for a package.module:factory model (torch.save(model.state_dict()))",
    )
    g.add_argument(
        "--device", default="cpu", help="where the model runs: cpu, cuda, cuda:1 (default cpu)"
    )
    g.add_argument(
        "--key",
        help="the array of a .npz file (or a dict in a .pt file) to explain; a,b for a "
        "model of two inputs (default: the only array)",
    )
    g.add_argument(
        "--limit", type=positive(), metavar="N", help="explain the first N examples only"
    )
    g.add_argument(
        "--image-size",
        metavar="N|HxW",
        help="image folders: resize every image to N x N or H x W (bilinear); "
        "required when the images differ in size",
    )
    g.add_argument(
        "--mean",
        metavar="M[,M,M]",
        help="image folders: subtract per channel after scaling to [0, 1], e.g. 0.485,0.456,0.406",
    )
    g.add_argument(
        "--std",
        metavar="S[,S,S]",
        help="image folders: divide per channel after --mean, e.g. 0.229,0.224,0.225",
    )
    g.add_argument(
        "--grayscale", action="store_true", help="image folders: one channel instead of RGB"
    )


def add_explainer_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments every explainer shares (each passed only to methods that take it)."""
    g = p.add_argument_group("explainer arguments (passed to attribute(); see also --option)")
    g.add_argument(
        "--target",
        help="the output to explain: an index, 'pred' (each example's predicted class; "
        "the default for a model with several outputs), 'none' (a model with one "
        "output) or a .pt / .npy file of one index per example",
    )
    g.add_argument(
        "--baselines",
        help="the reference input: a number, 'zero', 'mean' (each example's per-channel "
        "mean), 'blur' (Gaussian blur) or a .pt / .npy file broadcastable to the inputs "
        "(default: the method's, usually 0)",
    )
    g.add_argument(
        "--feature-mask",
        metavar="FILE",
        help="integer feature ids per input element, [*F] or [1 or B, *F] (.pt / .npy); "
        "elements with one id are one feature",
    )
    g.add_argument(
        "--patch",
        type=int,
        metavar="N",
        help="images: N x N squares of all channels are the features (Occlusion: its "
        "sliding window and stride)",
    )
    g.add_argument(
        "--n-samples",
        type=positive(),
        metavar="N",
        help="samples (KernelShap, Lime: coalitions; ShapleyValueSampling: permutations; "
        "GradientShap: draws)",
    )
    g.add_argument(
        "--n-steps",
        type=positive(),
        metavar="N",
        help="integration steps (IntegratedGradients, ShapleyIntegratedGradients)",
    )
    g.add_argument(
        "--seed",
        type=int,
        help="seed of the sampling methods (default 0: every run gives the same result)",
    )
    g.add_argument(
        "--perturbations-per-eval",
        type=positive(),
        metavar="N",
        help="perturbed inputs per model call (default: sized by the memory budget)",
    )
    g.add_argument(
        "--internal-batch-size",
        type=positive(),
        metavar="N",
        help="rows per model call of the gradient methods",
    )
    g.add_argument(
        "--memory-budget", metavar="BYTES", help="memory for one batch of model rows, e.g. 512MB"
    )
    g.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="any other argument of the method's attribute() or constructor, as a Python "
        "literal (repeatable): --option method=riemann_trapezoid --option "
        "multiply_by_inputs=False; an unknown key lists the method's arguments",
    )
    g.add_argument(
        "--layer",
        help="layer methods (LayerGradCam, LayerIntegratedGradients, GuidedGradCam): the "
        "module name, as model.named_modules() lists it (a package.module:factory model)",
    )
    g.add_argument(
        "--base", metavar="METHOD", help="NoiseTunnel: the explainer it wraps, e.g. saliency"
    )


@dataclass
class Job:
    """A loaded model, its inputs and the explainer arguments that depend on them."""

    model: Model
    inputs: Inputs
    outputs: Tensor
    target: Any
    baselines: Any
    feature_mask: Any

    def flags(self, args: argparse.Namespace, occlusion: bool = False) -> dict[str, Any]:
        """The common attribute arguments by name (None where not given). Occlusion
        takes --patch as its window and stride instead of a feature mask."""
        flags: dict[str, Any] = {
            "baselines": self.baselines,
            "feature_mask": self.feature_mask,
            "n_samples": args.n_samples,
            "n_steps": args.n_steps,
            "seed": args.seed,
            "perturbations_per_eval": args.perturbations_per_eval,
            "internal_batch_size": args.internal_batch_size,
            "memory_budget": args.memory_budget,
        }
        if occlusion and args.patch is not None:
            C = self.inputs.tensors[0].shape[1]
            flags["feature_mask"] = None
            flags["sliding_window_shapes"] = (C, args.patch, args.patch)
            flags["strides"] = (C, args.patch, args.patch)
        return flags


def prepare(args: argparse.Namespace) -> Job:
    """Loads the model and the inputs, runs the model once on them (its outputs pick
    the targets) and reads the target, baselines and feature mask."""
    check_device(args.device)
    model = load_model(args.model, args.state_dict, args.device)
    inputs = load_inputs(
        args.inputs,
        args.key,
        args.image_size,
        args.mean,
        args.std,
        args.grayscale,
        args.limit,
        show_progress=False if args.quiet else None,
    )
    prepare_inputs(inputs, model, args.device)
    outputs = probe(model, inputs)
    target = target_value(args.target, outputs)
    baselines = baselines_value(args.baselines, inputs)
    mask = feature_mask_value(args.feature_mask, args.patch, inputs)
    return Job(model, inputs, outputs, target, baselines, mask)


def fmt(v: Any, digits: int = 4) -> str:
    """A number for a table: general format, "-" for None, "nan" kept."""
    if v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with aligned columns (numbers right-aligned)."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        out = []
        for c, w in zip(cells, widths):
            numeric = c.replace(".", "", 1).replace("-", "", 1).replace("e", "", 1).isdigit()
            out.append(c.rjust(w) if numeric else c.ljust(w))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def describe(value: Any) -> Any:
    """An argument as it is written into results (tensors by shape and dtype)."""
    if isinstance(value, Tensor):
        if value.numel() <= 16:
            return value.tolist()
        return f"tensor{list(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, (tuple, list)):
        return [describe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def target_list(target: Any, B: int) -> list[int | None]:
    """One target index per example (None for a model with one output)."""
    if isinstance(target, Tensor):
        return [int(t) for t in target.reshape(-1).tolist()]
    return [target] * B


def check_device(device: str) -> None:
    """A usable ``--device``."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device: expected cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device: CUDA is not available on this machine")


def add_report_argument(p: argparse.ArgumentParser) -> None:
    """``--report DIR``: the HTML report of the run (xattr.report)."""
    p.add_argument(
        "--report",
        metavar="DIR",
        help="also write an HTML report of the run into DIR (DIR/index.html and PNG "
        "figures; static, opens offline)",
    )


def check_report_dir(args: argparse.Namespace) -> None:
    """A ``--report`` that names a file is a mistake found before any work is done."""
    from pathlib import Path

    if getattr(args, "report", None) and Path(args.report).is_file():
        raise UsageError(f"--report: {args.report} is a file; give a folder")


def write_report(report: Any, args: argparse.Namespace) -> None:
    """Writes ``report`` (an xattr.report.Report) into ``--report`` and says where."""
    import sys

    try:
        path = report.write(args.report)
    except OSError as e:
        raise UsageError(f"--report: cannot write into {args.report} ({e})") from e
    if not args.quiet:
        print(f"wrote the report {path}", file=sys.stderr)
