"""Models and inputs from files, as the command line names them.

MODEL: a ``torch.export`` program (``.pt2``), a TorchScript file, or
``package.module:factory`` (a callable returning an ``nn.Module``, with an optional
state dict). INPUTS: a ``.pt`` / ``.npy`` / ``.npz`` file or a folder of images.
Every mistake is a :class:`~xattr.cli.errors.UsageError` naming the file and what was
expected.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from xattr._core.progress import progress
from xattr.cli.errors import UsageError, one_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
MODEL_FORMS = (
    "a torch.export program (.pt2), a TorchScript file, or package.module:factory "
    "(a callable returning an nn.Module)"
)


# ------------------------------------------------------------------ models
@dataclass
class Model:
    """A loaded model.

    Attributes:
        module: the model to call, ``module(*inputs) -> [B, C]`` (or [B]).
        kind: "export", "torchscript" or "factory".
        source: what the user named (a path or ``package.module:factory``).
        batch: the fixed batch size of a program exported with a static batch
            dimension (the model is called in chunks of it), else None.
        expects: a program's input shapes ("*" for a dynamic size), else None.
    """

    module: nn.Module
    kind: str
    source: str
    batch: int | None = None
    expects: list[list[Any]] | None = None

    @property
    def kind_name(self) -> str:
        """The kind in words."""
        return {"export": "torch.export program", "torchscript": "TorchScript model"}.get(
            self.kind, "model"
        )

    @property
    def python(self) -> bool:
        """Whether the model runs its own Python code (a factory's module): the
        explainers that replace the gradients of the operations a model calls
        (DeepLift, GuidedBackprop, ...) and the layer methods need that."""
        return self.kind == "factory"


class Program(nn.Module):
    """A loaded ``torch.export`` program as a module. A program runs as it was exported
    (export the model in eval mode): ``train()`` / ``eval()`` only set this wrapper's
    flag (the program itself refuses them), so wrappers such as MuS can hold it.

    With ``batch`` (a program exported with a static batch size) any number of rows is
    called in chunks of ``batch`` rows, the last one padded with copies of its last
    row (their outputs dropped); differentiable, so gradient explainers work through it.
    """

    def __init__(self, program: nn.Module, batch: int | None = None) -> None:
        super().__init__()
        self.program = program
        self.batch = batch
        self.training = False

    def train(self, mode: bool = True) -> Program:
        self.training = mode
        return self

    def forward(self, *inputs: Tensor) -> Tensor:
        if self.batch is None:
            return self.program(*inputs)
        n = inputs[0].shape[0]
        outs = []
        for start in range(0, n, self.batch):
            part = [x[start : start + self.batch] for x in inputs]
            pad = self.batch - part[0].shape[0]
            if pad:
                part = [torch.cat([p, p[-1:].expand(pad, *p.shape[1:])]) for p in part]
            out = self.program(*part)
            outs.append(out[: self.batch - pad] if pad else out)
        return torch.cat(outs)


def _program_shapes(program: Any) -> list[list[Any]] | None:
    """The shapes of a program's user inputs, symbols (dynamic sizes) as "*"."""
    try:
        names = list(program.graph_signature.user_inputs)
        vals = {n.name: n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"}
        return [[d if isinstance(d, int) else "*" for d in vals[n].shape] for n in names]
    except (AttributeError, KeyError):  # pragma: no cover - another program layout
        return None


def _static_batch(program: Any) -> int | None:
    """The batch size a ``torch.export`` program was exported with, when its first user
    input's first dimension is a plain integer (not a symbol), else None."""
    try:
        names = set(program.graph_signature.user_inputs)
        for node in program.graph.nodes:
            if node.op == "placeholder" and node.name in names:
                val = node.meta.get("val")
                shape = getattr(val, "shape", None)
                if shape is not None and len(shape) and isinstance(shape[0], int):
                    return int(shape[0])
                return None
    except AttributeError:  # pragma: no cover - a program without the usual signature
        return None
    return None


def _is_program(path: Path) -> bool:
    """Whether ``path`` is a torch.export archive (a zip with an archive_format entry)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("archive_format") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _load_export(path: Path) -> Model:
    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # its own traceback of a failed load, on stderr
    try:
        program = torch.export.load(str(path))
    except Exception as e:
        raise UsageError(
            f"MODEL: cannot load {path} as a torch.export program ({one_line(e)})"
        ) from e
    finally:
        logger.setLevel(level)
    batch = _static_batch(program)
    model = Model(Program(program.module(), batch), "export", str(path), batch)
    model.expects = _program_shapes(program)
    return model


def _load_torchscript(path: Path, device: str) -> Model:
    load = getattr(getattr(torch, "jit", None), "load", None)
    if load is None:
        raise UsageError(
            f"MODEL: {path} is not a torch.export program and this torch "
            f"({torch.__version__}) cannot load TorchScript files; export the model "
            "with torch.export.save, or give package.module:factory"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            module = load(str(path), map_location=device)
        except Exception as e:
            raise UsageError(_not_a_model(path, e)) from e
    return Model(module.eval(), "torchscript", str(path))


def _not_a_model(path: Path, e: BaseException) -> str:
    """The message for a file that is neither a program nor TorchScript: says so, and
    names a state dict for what it is."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        obj = None
    if isinstance(obj, dict) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        return (
            f"MODEL: {path} holds a state dict (weights only); give the architecture as "
            f"package.module:factory and the file as --state-dict {path}"
        )
    return f"MODEL: cannot load {path}: expected {MODEL_FORMS} ({one_line(e)[:120]})"


def _load_factory(spec: str, state_dict: str | None) -> Model:
    module_name, _, attr = spec.partition(":")
    if "" not in sys.path and "." not in sys.path:  # the current folder, as python -m has it
        sys.path.insert(0, "")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"MODEL: cannot import {module_name!r} for {spec} ({one_line(e)})") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"MODEL: {module_name} has no {attr!r} (from {spec})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"MODEL: {spec} is a {type(obj).__name__}, not a callable factory")
    try:
        module = obj() if not isinstance(obj, nn.Module) else obj
    except Exception as e:
        raise UsageError(f"MODEL: the factory {spec}() failed ({one_line(e)})") from e
    if not isinstance(module, nn.Module):
        raise UsageError(
            f"MODEL: the factory {spec}() returned a {type(module).__name__}, expected an nn.Module"
        )
    if state_dict is not None:
        load_state(module, state_dict)
    return Model(module.eval(), "factory", spec)


def load_state(module: nn.Module, path_str: str) -> None:
    """Loads a state dict file (``torch.save(model.state_dict())``, or a dict with it
    under "state_dict") into ``module``, strictly."""
    path = Path(path_str)
    if not path.is_file():
        raise UsageError(f"--state-dict: no such file: {path}")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise UsageError(f"--state-dict: cannot read {path} ({one_line(e)})") from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsageError(f"--state-dict: {path} holds a {type(state).__name__}, not a state dict")
    try:
        module.load_state_dict(state)
    except Exception as e:
        raise UsageError(
            f"--state-dict: {path} does not fit the model ({one_line(e)[:300]})"
        ) from e


def load_model(spec: str, state_dict: str | None = None, device: str = "cpu") -> Model:
    """The model named by ``spec`` on ``device``, in eval mode, its parameters frozen
    (explanations need gradients to the inputs only).

    Args:
        spec: a ``.pt2`` file (``torch.export.save``; a program exported with a fixed
            batch size is called in chunks of it), a TorchScript file
            (``torch.jit.save``), or ``package.module:factory`` (imported from the
            current folder or the installed packages; ``factory()`` returns the
            ``nn.Module``; an ``nn.Module`` object itself is taken as it is).
        state_dict: a file of weights for a factory's module (strict loading).
        device: where the model runs ("cpu", "cuda", "cuda:1").

    Example:
        >>> m = load_model("torch.nn:Identity")
        >>> m.kind, m.module.training
        ('factory', False)
    """
    path = Path(spec)
    if path.exists() or not FACTORY.match(spec):
        if not path.exists():
            raise UsageError(f"MODEL: no such file: {spec} (expected {MODEL_FORMS})")
        if path.is_dir():
            raise UsageError(f"MODEL: {spec} is a folder (expected {MODEL_FORMS})")
        if state_dict is not None:
            raise UsageError(
                "--state-dict: only for a package.module:factory model (a program or a "
                "TorchScript file holds its weights)"
            )
        model = _load_export(path) if path.suffix == ".pt2" else _load_any(path, device)
    else:
        model = _load_factory(spec, state_dict)
    try:
        model.module.to(device)
    except Exception as e:
        raise UsageError(f"--device: cannot move the model to {device} ({one_line(e)})") from e
    for p in model.module.parameters():
        p.requires_grad_(False)
    return model


def _load_any(path: Path, device: str) -> Model:
    """A program saved under another suffix, or TorchScript."""
    if _is_program(path):
        return _load_export(path)
    if not zipfile.is_zipfile(path):
        raise UsageError(f"MODEL: {path} is not a model file: expected {MODEL_FORMS}")
    return _load_torchscript(path, device)


# ------------------------------------------------------------------ inputs
@dataclass
class Inputs:
    """Loaded inputs.

    Attributes:
        tensors: one [B, *F] tensor per model input.
        source: the path given.
        names: one name per example (image file names), or None.
    """

    tensors: tuple[Tensor, ...]
    source: str
    names: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def batch(self) -> int:
        return int(self.tensors[0].shape[0])

    @property
    def shapes(self) -> list[list[int]]:
        return [list(t.shape) for t in self.tensors]


def _pick(named: dict[str, Any], key: str | None, path: Path) -> list[Any]:
    """The entries named by ``key`` (comma-separated for several model inputs), or the
    only entry."""
    if key is None:
        if len(named) == 1:
            return list(named.values())
        raise UsageError(
            f"INPUTS: {path} holds {len(named)} arrays ({', '.join(sorted(named))}); choose "
            "one with --key NAME (or several, for a model of several inputs: --key a,b)"
        )
    out = []
    for k in key.split(","):
        if k not in named:
            raise UsageError(
                f"--key: {path} has no array {k!r} (it has: {', '.join(sorted(named))})"
            )
        out.append(named[k])
    return out


def _as_tensor(obj: Any, what: str) -> Tensor:
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        if obj.dtype == object or obj.dtype.kind not in "biuf":
            raise UsageError(f"INPUTS: {what} has dtype {obj.dtype}; expected numbers")
        return torch.from_numpy(np.ascontiguousarray(obj))
    raise UsageError(f"INPUTS: {what} is a {type(obj).__name__}, expected a tensor or an array")


def load_tensor_file(path: Path, what: str, key: str | None = None) -> list[Tensor]:
    """The tensors of a ``.pt`` (a tensor, a tuple / list of tensors, or a dict of them),
    ``.npy`` or ``.npz`` file (``key`` chooses in a dict or an ``.npz``)."""
    if not path.is_file():
        raise UsageError(f"{what}: no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            raw: Any = np.load(str(path), allow_pickle=False)
        elif suffix == ".npz":
            with np.load(str(path), allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        elif suffix in (".pt", ".pth"):
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            raise UsageError(f"{what}: {path}: expected a .pt, .npy or .npz file")
    except UsageError:
        raise
    except Exception as e:
        raise UsageError(f"{what}: cannot read {path} ({one_line(e)})") from e
    if isinstance(raw, dict):
        if not raw:
            raise UsageError(f"{what}: {path} holds no arrays")
        items = _pick(raw, key, path)
    elif key is not None:
        raise UsageError(f"--key: {path} holds no named arrays (a .npz or a dict in a .pt)")
    elif isinstance(raw, (tuple, list)):
        items = list(raw)
    else:
        items = [raw]
    if not items:
        raise UsageError(f"{what}: {path} holds an empty list")
    return [_as_tensor(t, f"{path}") for t in items]


def _pair(text: str, name: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        vals = [int(p) for p in parts if p.strip()]
    except ValueError:
        vals = []
    if len(vals) == 1:
        vals *= 2
    if len(vals) != 2 or min(vals) < 1:
        raise UsageError(f"{name}: expected a positive size N or HxW, got {text!r}")
    return vals[0], vals[1]


def numbers(text: str, name: str) -> list[float]:
    """Comma-separated numbers ("0.5" or "0.485,0.456,0.406")."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{name}: expected numbers separated by commas, got {text!r}") from None


def load_images(
    folder: Path,
    image_size: str | None = None,
    mean: str | None = None,
    std: str | None = None,
    grayscale: bool = False,
    show_progress: bool = False,
) -> tuple[Tensor, list[str]]:
    """The PNG / JPEG files of ``folder`` (sorted by name) as one float32 batch
    [B, C, H, W] in [0, 1] (C = 3, or 1 with ``grayscale``), resized to ``image_size``
    ("N" or "HxW", bilinear) when given, then normalised per channel: (x - mean) / std.
    Read with Pillow (a dependency of matplotlib); ``show_progress``: a bar over the
    files when there are more than 100."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"INPUTS: the folder {folder} holds no PNG or JPEG images")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        raise UsageError(
            'INPUTS: reading images needs Pillow: pip install "torch-xattr[demo]"'
        ) from None
    size = _pair(image_size, "--image-size") if image_size else None
    arrays = []
    bar = progress(len(files), show_progress and len(files) > 100, "images")
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert("L" if grayscale else "RGB")
                if size is not None:
                    im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                arrays.append(np.asarray(im, dtype=np.float32) / 255.0)
            bar.update(1)
        except Exception as e:
            raise UsageError(f"INPUTS: cannot read the image {f} ({one_line(e)})") from e
    bar.close()
    shapes = sorted({a.shape[:2] for a in arrays})
    if len(shapes) > 1:
        raise UsageError(
            f"INPUTS: the images of {folder} differ in size "
            f"({', '.join(f'{h}x{w}' for h, w in shapes)}); give --image-size HxW"
        )
    x = torch.from_numpy(np.stack(arrays))
    x = x.unsqueeze(1) if grayscale else x.permute(0, 3, 1, 2).contiguous()
    C = x.shape[1]
    for name, text, default in (("--mean", mean, 0.0), ("--std", std, 1.0)):
        vals = numbers(text, name) if text else [default]
        if len(vals) not in (1, C):
            raise UsageError(f"{name}: expected 1 or {C} values (one per channel), got {len(vals)}")
        if name == "--std" and min(vals) <= 0:
            raise UsageError(f"--std: expected positive values, got {text}")
        v = torch.tensor(vals, dtype=torch.float32).view(1, -1, 1, 1)
        x = x - v if name == "--mean" else x / v
    return x, [f.name for f in files]


def load_inputs(
    spec: str,
    key: str | None = None,
    image_size: str | None = None,
    mean: str | None = None,
    std: str | None = None,
    grayscale: bool = False,
    limit: int | None = None,
    show_progress: bool = False,
) -> Inputs:
    """The inputs named by ``spec``: a folder of images (see :func:`load_images`) or a
    tensor file (see :func:`load_tensor_file`), the first ``limit`` examples when given.

    Example:
        >>> import tempfile, numpy as np
        >>> with tempfile.TemporaryDirectory() as d:
        ...     np.save(f"{d}/x.npy", np.zeros((3, 4), dtype=np.float32))
        ...     load_inputs(f"{d}/x.npy").shapes
        [[3, 4]]
    """
    path = Path(spec)
    if not path.exists():
        raise UsageError(f"INPUTS: no such file or folder: {spec}")
    image_opts = image_size is not None or mean is not None or std is not None or grayscale
    if path.is_dir():
        if key is not None:
            raise UsageError(
                "--key: only for .npz files and dicts in .pt files, not an image folder"
            )
        x, names = load_images(path, image_size, mean, std, grayscale, show_progress)
        tensors: tuple[Tensor, ...] = (x,)
    else:
        if image_opts:
            raise UsageError(
                "--image-size, --mean, --std and --grayscale are for a folder of images; "
                f"{spec} is a file"
            )
        tensors, names = tuple(load_tensor_file(path, "INPUTS", key)), None
    for i, t in enumerate(tensors):
        if t.dim() < 1 or t.shape[0] == 0:
            raise UsageError(
                f"INPUTS: tensor {i} has shape {list(t.shape)}; expected a batch [B, ...] "
                "with at least one example"
            )
        if t.shape[0] != tensors[0].shape[0]:
            raise UsageError(
                f"INPUTS: the tensors have different batch sizes "
                f"({', '.join(str(u.shape[0]) for u in tensors)})"
            )
    if limit is not None:
        tensors = tuple(t[:limit] for t in tensors)
        names = names[:limit] if names else names
    return Inputs(tensors, spec, names)


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating parameter or buffer (None if it has none)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def prepare_inputs(inputs: Inputs, model: Model, device: str) -> None:
    """Moves the inputs to ``device`` and gives floating inputs the model's floating
    dtype (a float64 .npy for a float32 model), in place."""
    dtype = model_dtype(model.module)
    out = []
    for t in inputs.tensors:
        if t.is_floating_point() and dtype is not None and t.dtype != dtype:
            inputs.notes.append(f"inputs converted from {t.dtype} to the model's {dtype}")
            t = t.to(dtype)
        out.append(t.to(device))
    inputs.tensors = tuple(out)


def probe(model: Model, inputs: Inputs) -> Tensor:
    """The model's outputs on the inputs (no gradients), checked: a tensor with one row
    per example, [B] or [B, C]. Raises UsageError with the model's own message when it
    fails on them."""
    shapes = " and ".join(str(s) for s in inputs.shapes)
    try:
        with torch.no_grad():
            out = model.module(*inputs.tensors)
    except Exception as e:
        hint = ""
        if model.expects is not None:
            hint = f"; it was exported for {' and '.join(str(s) for s in model.expects)}"
        hint = hint.replace("'*'", "*")
        raise UsageError(
            f"the model failed on the inputs of shape {shapes}{hint} ({one_line(e)})"
        ) from e
    if not isinstance(out, Tensor):
        raise UsageError(
            f"the model returned a {type(out).__name__}; expected a tensor [B, C] of outputs"
        )
    if out.dim() == 0 or out.shape[0] != inputs.batch:
        raise UsageError(
            f"the model returned shape {list(out.shape)} for {inputs.batch} example(s) of shape "
            f"{shapes}; expected one row per example, [B] or [B, C]"
        )
    if out.dim() > 2:
        raise UsageError(
            f"the model returned shape {list(out.shape)}; expected [B] or [B, C] (one output "
            "vector per example)"
        )
    if not bool(torch.isfinite(out).all()):
        raise UsageError("the model's outputs on the inputs contain NaN or inf")
    return out
