"""What the image experiments share: Fashion-MNIST read from Debian's
``dataset-fashion-mnist`` package (``make experiments-install`` installs it), square
patches as features, and a small seeded CNN that trains in seconds on 8 x 8 digits or
in about a minute on 12,000 Fashion-MNIST images."""

from __future__ import annotations

import torch
from torch import nn

from xattr import datasets
from xattr.datasets import FASHION_CLASSES as FASHION_CLASSES
from xattr.datasets import FASHION_MNIST_DIR, fashion_mnist_available

FASHION = FASHION_MNIST_DIR


def patches(size: int, patch: int) -> torch.Tensor:
    """Feature ids [1, 1, size, size]: (size / patch)^2 square patches, row-major."""
    r = torch.arange(size) // patch
    return (r[:, None] * (size // patch) + r[None, :]).view(1, 1, size, size)


def small_cnn(size: int) -> nn.Sequential:
    """8 x 8: a stride-2 3 x 3 convolution; 28 x 28: a 4 x 4 stride-4 one; then a
    3 x 3 convolution (stride 2 for 28 x 28) and a linear layer over 4 x 4 x 16."""
    first = nn.Conv2d(1, 8, 3, padding=1, stride=2) if size == 8 else nn.Conv2d(1, 8, 4, stride=4)
    return nn.Sequential(
        first,
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=1 if size == 8 else 2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 16, 10),
    )


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int, lr: float):
    """Trains ``model`` in place on (x, y): Adam, cross-entropy, shuffled batches of 128
    drawn from a generator seeded by ``seed``; returns it in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], 128):
            j = order[i : i + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[j]), y[j]).backward()
            opt.step()
    return model.eval()


def train_cnn(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> nn.Module:
    """:func:`small_cnn` for x's image size, seeded by ``seed``, trained with lr 3e-3."""
    torch.manual_seed(seed)
    return fit(small_cnn(x.shape[-1]), x, y, epochs, seed, lr=3e-3)


def fashion_mnist() -> tuple[torch.Tensor, ...] | None:
    """(x_train [60000, 1, 28, 28] in [0, 1], y_train, x_test [10000, ...], y_test), or
    None when the Debian package's files are missing (read by
    :func:`xattr.datasets.fashion_mnist`)."""
    if not fashion_mnist_available():
        return None
    data = datasets.fashion_mnist()
    return data.x_train, data.y_train, data.x_test, data.y_test
