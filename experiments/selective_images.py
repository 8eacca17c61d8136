"""Selective explanations on images: amortized (FastSHAP) vs Monte Carlo vs selective.

Two image sets, each with a small CNN trained here (seeded) and 16 square patches as
the players (baseline removal to 0, black):

* scikit-learn's 8 x 8 digits (experiments/_digits.py's split: 1,400 train, 397
  held-out digits), patches of 2 x 2 pixels;
* Fashion-MNIST (28 x 28, read from Debian's ``dataset-fashion-mnist``, which
  ``make experiments-install`` installs: /usr/share/datasets/fashion-mnist), patches
  of 7 x 7 pixels; a subsample (the CNN trains on 12,000 images, FastSHAP on 1,400).
  Without the package the data set is skipped (said on the console and in the JSON).

The CNNs are smaller than experiments/_digits.py's (8 and 16 channels) so that the
thousands of masked evaluations per explained image fit a few minutes on this CPU.
Explained: each image's predicted class probability; the amortized explainers learn
every class at once (xattr's "cnn" backbone with a [10, d] head).

HQ explanations: ExactShapley over the 16 patches (2^16 masked images per input, about
0.25 s each here on one thread).

experiments/_selective.py trains a FastSHAP ensemble (k = 5), the selective explainers
with the ensemble and the learned uncertainty (Paes, Wei & Calmon 2024) and the
fallback KernelShap at n = 32 and at n = 256, and reports on a held-out test split,
against HQ: MSE and Spearman vs coverage alpha in {0, 0.1, ..., 1}; MSE vs model
evaluations per input (KernelShap at n = 16 ... 2048); and the FastSHAP paper's ratio.

Writes experiments/results/selective_images.{json,md,png}.

Run: .venv/bin/python -m experiments.selective_images   (about 6 min on 2 shared CPU
cores, one torch thread; --quick: seconds, writes nothing)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from experiments import _selective as selective
from experiments._digits import Probabilities, digits
from experiments._images import FASHION, fashion_mnist, patches, train_cnn

RESULTS = Path(__file__).resolve().parent / "results"


def image_task(
    name: str,
    about: str,
    data: tuple[torch.Tensor, ...],
    patch: int,
    args: argparse.Namespace,
    model_train: int,
    model_epochs: int,
) -> selective.Task:
    x_tr, y_tr, x_te, y_te = data
    gen = torch.Generator().manual_seed(args.seed)
    tr = torch.randperm(x_tr.shape[0], generator=gen)[:model_train]
    model = train_cnn(x_tr[tr], y_tr[tr], model_epochs, args.seed)
    with torch.no_grad():
        acc = float((model(x_te).argmax(1) == y_te).float().mean())
    te = torch.randperm(x_te.shape[0], generator=gen)
    s = args.split
    size = x_tr.shape[-1]
    return selective.Task(
        name=name,
        model=Probabilities(model).eval(),
        input_shape=(1, size, size),
        feature_mask=patches(size, patch),
        baselines=0.0,
        x_train=x_tr[tr[: args.train]],
        x_unc=x_te[te[:s]],
        x_cal=x_te[te[s : 2 * s]],
        x_test=x_te[te[2 * s : 3 * s]],
        target="predicted",
        n_classes=10,
        hq=args.hq if args.hq == "exact" else int(args.hq),
        net="cnn",
        net_kwargs={"channels": (16, 32)},
        fit_kwargs=selective.fit_settings(args.epochs, n_coalitions=args.coalitions, patience=10),
        info={
            "about": f"{about}; small CNN, held-out accuracy {acc:.3f}; {patch} x {patch} "
            "patches; explained: the predicted class's probability.",
            "model_test_accuracy": acc,
        },
    )


def main(argv: list[str] | None = None) -> int:
    ap = selective.arguments(__doc__.splitlines()[0], RESULTS)
    ap.add_argument("--epochs", type=int, default=50, help="FastSHAP epochs (early stopping)")
    ap.add_argument("--coalitions", type=int, default=8, help="FastSHAP coalition pairs / step")
    ap.add_argument("--train", type=int, default=1400, help="FastSHAP training images")
    ap.add_argument("--split", type=int, default=100, help="unc / cal / test images")
    ap.add_argument("--hq", default="exact", help="HQ: 'exact' (ExactShapley) or KernelShap's n")
    args = ap.parse_args(argv)
    if args.quick:
        args.k, args.epochs, args.train, args.split, args.hq = 2, 2, 64, 16, "256"
    x_tr, y_tr, x_te, y_te = digits(args.seed)
    makers = [
        lambda: image_task(
            "digits (8 x 8)",
            "scikit-learn's digits (1,400 train, 397 held out)",
            (x_tr, y_tr, x_te, y_te),
            2,
            args,
            1400,
            3 if args.quick else 60,
        )
    ]
    skipped = {}
    fashion = fashion_mnist()
    if fashion is None:
        msg = (
            f"Fashion-MNIST: {FASHION} has no data; install Debian's dataset-fashion-mnist "
            "(make experiments-install). Skipped."
        )
        print(msg)
        skipped["Fashion-MNIST"] = msg
    else:
        makers.append(
            lambda: image_task(
                "Fashion-MNIST (28 x 28)",
                "Fashion-MNIST (Debian's dataset-fashion-mnist; the CNN trained on 12,000 "
                "of the 60,000 training images)",
                fashion,
                7,
                args,
                2000 if args.quick else 12000,
                1 if args.quick else 4,
            )
        )
    return selective.main(
        makers, args, "Selective explanations on images", "selective_images", skipped
    )


if __name__ == "__main__":
    raise SystemExit(main())
