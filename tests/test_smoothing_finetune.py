"""finetune: masked training restores the accuracy of a MuS classifier on held-out digits
(more than the same amount of clean training does); the two keep levels, feature ids,
mask values and always-kept features of the masks; determinism under the seed (dropout
and a shuffling DataLoader included) without touching the caller's RNG; argument checks."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests._helpers import gen
from xattr.smoothing import MuS, tokens
from xattr.smoothing.finetune import finetune, keep_probabilities, masked_batch

LAMBDA = 1 / 4


@pytest.fixture(scope="module")
def digits():
    """sklearn's 8 x 8 digits in [0, 1] (64 features), a seeded 1200 / 597 split and
    an MLP trained briefly on the clean training digits (about 95% held-out accuracy)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    perm = torch.randperm(len(y), generator=gen(0))
    tr, te = perm[:1200], perm[1200:]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):  # full-batch steps
        opt.zero_grad()
        F.cross_entropy(model(x[tr]), y[tr]).backward()
        opt.step()
    model.eval()
    return x[tr], y[tr], x[te], y[te], model


def _smoothed_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    g = MuS(model, LAMBDA, q=64, output="logits", voting=True)
    return float((g(x).argmax(1) == y).double().mean())


def _clean_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def test_finetuning_restores_smoothed_accuracy_on_digits(digits):
    xtr, ytr, xte, yte, model = digits
    assert _clean_accuracy(model, xte, yte) > 0.9
    before = _smoothed_accuracy(model, xte, yte)  # about 0.72: masking 3/4 of the pixels hurts
    tuned = copy.deepcopy(model)
    out = finetune(tuned, (xtr, ytr), LAMBDA, epochs=20, batch_size=64, lr=3e-3, seed=0)
    assert out is tuned and not tuned.training
    after = _smoothed_accuracy(tuned, xte, yte)  # about 0.85
    assert after >= before + 0.08, (before, after)
    assert _clean_accuracy(tuned, xte, yte) > 0.8  # still a digits classifier
    # the same optimizer, steps and shuffling on clean inputs does not help the smoothed
    # classifier: the masks do
    clean = copy.deepcopy(model).train()
    opt = torch.optim.Adam(clean.parameters(), lr=3e-3)
    g = gen(0)
    for _ in range(20):
        order = torch.randperm(len(ytr), generator=g)
        for a in range(0, len(ytr), 64):
            i = order[a : a + 64]
            opt.zero_grad()
            F.cross_entropy(clean(xtr[i]), ytr[i]).backward()
            opt.step()
    assert after >= _smoothed_accuracy(clean.eval(), xte, yte) + 0.08


class Recorder(nn.Module):
    """Identity that keeps every batch it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return x


def test_masks_mix_two_levels_and_follow_feature_ids():
    # 256 examples [2, 32]; feature j = column j in both rows (d = 32); column 0 (its
    # feature id is 100) always kept
    x = torch.ones(256, 2, 32)
    y = torch.randint(0, 3, (256,), generator=gen(1))
    ids = torch.arange(100, 132).expand(2, 32)  # any integers, as in MuS
    rec = Recorder()
    model = nn.Sequential(rec, nn.Flatten(), nn.Linear(64, 3))
    finetune(
        model,
        (x, y),
        0.5,
        feature_mask=ids,
        mask_value=-1.0,
        always_keep=[100],
        batch_size=64,
        shuffle=False,
        seed=2,
    )
    seen = torch.stack(rec.seen)  # [4 batches, 64, 2, 32]
    assert seen.shape == (4, 64, 2, 32)
    assert bool(((seen == 1) | (seen == -1)).all())  # kept, or mask_value
    assert torch.equal(seen[:, :, 0], seen[:, :, 1])  # a feature's elements go together
    assert bool((seen[..., 0] == 1).all())  # always_keep
    kept = (seen[..., 1:] == 1).double()
    even, odd = kept[:, 0::2].mean(), kept[:, 1::2].mean()  # 3968 draws each
    assert abs(float(even) - 0.5) < 0.03 and abs(float(odd) - 0.25) < 0.03, (even, odd)
    assert keep_probabilities(5, 0.5).tolist() == [0.5, 0.25, 0.5, 0.25, 0.5]


def test_token_ids_with_a_segmenter_and_a_dataloader():
    class Bag(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rec, self.emb, self.out = Recorder(), nn.Embedding(50, 8), nn.Linear(8, 2)

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.out(self.emb(self.rec(t)).mean(1))

    torch.manual_seed(3)
    bag = Bag()
    t = torch.randint(2, 50, (48, 12), generator=gen(4))
    y = torch.randint(0, 2, (48,), generator=gen(5))
    loader = DataLoader(TensorDataset(t, y), batch_size=16, shuffle=False)
    w0 = bag.emb.weight.detach().clone()
    finetune(bag, loader, 0.5, feature_mask=tokens(), mask_value=1, epochs=2, lr=1e-2, seed=6)
    assert len(bag.rec.seen) == 6  # 3 batches x 2 epochs
    seen = torch.cat(bag.rec.seen[:3])
    assert seen.dtype == torch.int64
    assert bool(((seen == t) | (seen == 1)).all()) and bool((seen == 1).any())
    assert not torch.equal(bag.emb.weight, w0)
    # the masks are the ones masked_batch draws from the same generator
    g = gen(6)
    first = masked_batch(t[:16], 0.5, g, tokens(), 1)
    assert torch.equal(bag.rec.seen[0], first)


def _dropout_mlp() -> nn.Module:
    torch.manual_seed(7)
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


def test_same_seed_same_weights_and_the_global_rng_is_untouched():
    x = torch.randn(96, 10, generator=gen(8))
    y = torch.randint(0, 3, (96,), generator=gen(9))
    base = _dropout_mlp()

    def run(seed: int, data) -> dict:
        m = finetune(copy.deepcopy(base), data, 0.25, epochs=3, batch_size=16, lr=1e-2, seed=seed)
        return m.state_dict()

    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b, c = run(0, (x, y)), run(0, (x, y)), run(1, (x, y))
    assert torch.equal(torch.get_rng_state(), state)  # dropout drew from a forked RNG
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], c[k]) for k in a)

    # a shuffling DataLoader draws from the (forked, seeded) global RNG: reproducible too
    def loader_run(seed: int) -> dict:
        loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
        m = finetune(copy.deepcopy(base), loader, 0.25, epochs=2, lr=1e-2, seed=seed)
        return m.state_dict()

    d, e = loader_run(5), loader_run(5)
    assert all(torch.equal(d[k], e[k]) for k in d)


def test_custom_optimizer_loss_and_progress():
    x = torch.randn(32, 6, generator=gen(10))
    y = torch.randint(0, 3, (32,), generator=gen(11))
    torch.manual_seed(12)
    model = nn.Linear(6, 3)
    w0 = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    calls = []

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append(out.shape[0])
        return F.nll_loss(F.log_softmax(out, 1), target)

    batches = [(x[:20], y[:20]), (x[20:], y[20:])]
    finetune(model, batches, 0.5, optimizer=opt, loss_fn=loss_fn, show_progress=True)
    assert calls == [20, 12] and not torch.equal(model.weight, w0)


def test_bad_arguments_name_themselves():
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    model = nn.Linear(4, 2)

    def call(**kw):
        m = kw.pop("model", model)
        return finetune(m, kw.pop("data", (x, y)), kw.pop("lambda_", 0.5), **kw)

    cases = [
        (TypeError, "model", {"model": lambda t: t}),
        (ValueError, "lambda_", {"lambda_": 0.0}),
        (ValueError, "lambda_", {"lambda_": 1.5}),
        (TypeError, "lambda_", {"lambda_": "half"}),
        (ValueError, "epochs", {"epochs": 0}),
        (TypeError, "epochs", {"epochs": 1.0}),
        (ValueError, "lr", {"lr": -1.0}),
        (TypeError, "lr", {"lr": "fast"}),
        (ValueError, "lr", {"lr": 1e-3, "optimizer": torch.optim.SGD(model.parameters(), 0.1)}),
        (TypeError, "optimizer", {"optimizer": "adam"}),
        (TypeError, "loss_fn", {"loss_fn": "ce"}),
        (TypeError, "feature_mask", {"feature_mask": [0, 1, 2, 3]}),
        (ValueError, "feature_mask", {"feature_mask": torch.arange(5)}),
        (TypeError, "mask_value", {"mask_value": "pad"}),
        (TypeError, "always_keep", {"always_keep": 0}),
        (ValueError, "always_keep", {"always_keep": [4]}),
        (ValueError, "always_keep", {"always_keep": [-1]}),
        (TypeError, "seed", {"seed": 1.5}),
        (TypeError, "shuffle", {"shuffle": 1}),
        (TypeError, "show_progress", {"show_progress": "yes"}),
        (ValueError, "batch_size", {"batch_size": 0}),
        (ValueError, "data", {"data": (x, y[:5])}),
        (TypeError, "data", {"data": x}),
        (TypeError, "data", {"data": iter([(x, y)])}),
        (TypeError, "data", {"data": [(x, y, y)]}),
        (ValueError, "batch_size", {"data": [(x, y)], "batch_size": 4}),
        (ValueError, "loss_fn", {"loss_fn": lambda o, t: F.cross_entropy(o, t, reduction="none")}),
    ]
    for exc, name, kw in cases:
        with pytest.raises(exc, match=name):
            call(**kw)
    frozen = nn.Linear(4, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="model"):
        finetune(frozen, (x, y), 0.5)
