"""What the digits experiments share: scikit-learn's bundled 8 x 8 digits, a fixed
train / test split, a small CNN trained on them (seeded, a few seconds on a CPU), its
probabilities on held-out digits and the 16 superpixels the explainers group."""

from __future__ import annotations

from typing import NamedTuple

import torch
from sklearn.datasets import load_digits
from torch import nn


def digits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train [1400, 1, 8, 8], y_train, x_test [397, 1, 8, 8], y_test), pixels in [0, 1]."""
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    train, test = perm[:1400], perm[1400:]
    return x[train], y[train], x[test], y[test]


def train_cnn(x: torch.Tensor, y: torch.Tensor, epochs: int = 60, seed: int = 0) -> nn.Module:
    """A two-convolution CNN trained with Adam on (x, y); returned in eval mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 16, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for i in range(0, x.shape[0], 128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 128]), y[i : i + 128]).backward()
            opt.step()
    return model.eval()


class Probabilities(nn.Module):
    """The model's class probabilities (what the curves and KernelShap explain)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def superpixel_ids() -> torch.Tensor:
    """Feature ids [1, 1, 8, 8]: 16 superpixels of 2 x 2 pixels, row-major."""
    r = torch.arange(8) // 2
    return (r[:, None] * 4 + r[None, :]).view(1, 1, 8, 8)


class Explained(NamedTuple):
    model: nn.Module  # the CNN (logits)
    prob: nn.Module  # its probabilities, in eval mode
    x: torch.Tensor  # the first held-out digits [n, 1, 8, 8]
    target: torch.Tensor  # their predicted classes [n]
    accuracy: float  # the CNN's accuracy on all held-out digits


def explained_digits(seed: int, examples: int) -> Explained:
    """The CNN trained with ``seed`` and the first ``examples`` held-out digits, with
    the classes it predicts for them."""
    x_train, y_train, x_test, y_test = digits(seed)
    model = train_cnn(x_train, y_train)
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
        prob = Probabilities(model).eval()
        x = x_test[:examples]
        target = prob(x).argmax(1)
    return Explained(model, prob, x, target, accuracy)
