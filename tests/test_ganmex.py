"""GANMEX (xattr.baselines.ganmex): the StarGAN generator and PatchGAN critic, the
frozen classifier head, the gradient penalty, scaling, determinism, checkpoints and
resume, save / load, the validity flag, a short training run on scikit-learn's digits
judged by an independent classifier, and argument errors."""

from __future__ import annotations

import functools
import os
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests._helpers import gen
from xattr.baselines import GANMEX, CounterfactualWarning
from xattr.baselines.ganmex import PatchDiscriminator, StarGenerator, gradient_penalty

K = 3
SHAPE = (1, 8, 8)


def classifier(seed: int = 0, batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv2d(1, 4, 3, padding=1)]
    if batchnorm:
        layers += [nn.BatchNorm2d(4)]
    layers += [nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 64, K)]
    return nn.Sequential(*layers)


def tiny(f: nn.Module, **kw) -> GANMEX:
    return GANMEX(f, K, SHAPE, **{"width": 4, "n_blocks": 1, "d_width": 4, "seed": 0, **kw})


def toy_data(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(n, *SHAPE, generator=gen(seed)), torch.randint(
        0, K, (n,), generator=gen(seed + 1)
    )


def weights(gm: GANMEX) -> dict[str, torch.Tensor]:
    sd = {f"G.{k}": v.clone() for k, v in gm.generator.state_dict().items()}
    sd.update({f"D.{k}": v.clone() for k, v in gm.discriminator.state_dict().items()})
    return sd


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ------------------------------------------------------------------ networks


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 10, 6), (2, 5, 5), (9, 9)])
def test_shapes_and_dtypes(shape):
    C, H, W = shape if len(shape) == 3 else (1,) + shape
    g = StarGenerator(C, K, width=4, n_blocks=2)
    z = torch.rand(3, C, H, W, generator=gen(0)) * 2 - 1
    out = g(z, torch.tensor([0, 1, 2]))
    assert out.shape == (3, C, H, W) and out.dtype == torch.float32
    assert bool((out.abs() <= 1).all())  # tanh
    assert PatchDiscriminator(C, width=4, image_size=(H, W))(z).shape == (3,)

    f = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, K))
    gm = GANMEX(f, K, shape, width=4, n_blocks=1, d_width=4, input_range=(-2.0, 3.0))
    x = torch.rand(4, *shape, generator=gen(1), dtype=torch.float64) * 5 - 2
    b = gm.baseline(x, torch.tensor([0, 1, 2, 0]), check=False)
    assert b.shape == x.shape and b.dtype == torch.float64
    assert bool((b >= -2).all() and (b <= 3).all())  # in the classifier's range
    b32, valid = gm.baseline(x.float(), 1, return_valid=True)
    assert b32.dtype == torch.float32 and valid.shape == (4,) and valid.dtype == torch.bool


def test_generator_is_conditioned_on_the_target():
    g = StarGenerator(1, K, width=4, n_blocks=1)
    z = torch.rand(2, 1, 8, 8, generator=gen(0))
    assert not torch.equal(g(z, torch.tensor([0, 0])), g(z, torch.tensor([1, 1])))
    # train and eval modes compute the same function (no running statistics)
    a = g.train()(z, torch.tensor([0, 2]))
    torch.testing.assert_close(g.eval()(z, torch.tensor([0, 2])), a, rtol=0, atol=0)


def test_discriminator_default_depth():
    convs = lambda d: sum(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in d.modules())  # noqa: E731
    assert convs(PatchDiscriminator(1, image_size=(8, 8))) == 2
    assert convs(PatchDiscriminator(1, image_size=(28, 28))) == 3
    assert convs(PatchDiscriminator(1, n_layers=1, image_size=(28, 28))) == 1
    leaky = [m for m in PatchDiscriminator(1).modules() if isinstance(m, nn.LeakyReLU)]
    assert leaky and all(m.negative_slope == 0.01 for m in leaky)


# ------------------------------------------------------------------ gradient penalty


def test_gradient_penalty_of_a_linear_critic_is_exact():
    # critic(z) = <w, z>: the gradient is w everywhere, the penalty (|w| - 1)^2
    w = torch.randn(2, 3, 4, generator=gen(0), dtype=torch.float64)
    real = torch.randn(5, 2, 3, 4, generator=gen(1), dtype=torch.float64)
    fake = torch.randn(5, 2, 3, 4, generator=gen(2), dtype=torch.float64)
    alpha = torch.rand(5, generator=gen(3), dtype=torch.float64)
    gp = gradient_penalty(lambda z: (z * w).flatten(1).sum(1), real, fake, alpha)
    torch.testing.assert_close(gp, (w.norm() - 1) ** 2, rtol=0, atol=1e-12)


def test_gradient_penalty_equals_per_example_autograd():
    torch.manual_seed(0)
    D = PatchDiscriminator(1, width=4, image_size=(8, 8)).double()
    real = torch.rand(4, 1, 8, 8, generator=gen(0), dtype=torch.float64)
    fake = torch.rand(4, 1, 8, 8, generator=gen(1), dtype=torch.float64)
    alpha = torch.rand(4, generator=gen(2), dtype=torch.float64)
    gp = gradient_penalty(D, real, fake, alpha)
    want = []
    for i in range(4):
        z = (alpha[i] * real[i] + (1 - alpha[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(D(z).sum(), z)
        want.append((g.norm() - 1) ** 2)
    torch.testing.assert_close(gp, torch.stack(want).mean(), rtol=0, atol=1e-12)
    # it keeps the graph: the critic's parameters get a gradient from it
    grads = torch.autograd.grad(gp, list(D.parameters()))
    assert any(float(g.abs().sum()) > 0 for g in grads)


# ------------------------------------------------------------------ scaling


@pytest.mark.parametrize("rng", [(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0), (-3.5, 2.0)])
def test_input_scaling_round_trip(rng):
    lo, hi = rng
    gm = GANMEX(nn.Flatten(), K, (8, 8), input_range=rng, width=4, n_blocks=1, d_width=4)
    x = lo + torch.rand(6, 8, 8, generator=gen(0), dtype=torch.float64) * (hi - lo)
    z = gm.to_gan(x)
    assert z.shape == (6, 1, 8, 8) and z.dtype == torch.float32  # a channel for (H, W)
    assert float(z.min()) >= -1 - 1e-6 and float(z.max()) <= 1 + 1e-6
    torch.testing.assert_close(
        gm.to_gan(torch.tensor([[lo] * 64, [hi] * 64]).view(2, 8, 8)),
        torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 1, 8, 8),
    )
    back = gm.to_classifier(z)
    assert back.shape == x.shape
    torch.testing.assert_close(back.double(), x, rtol=0, atol=1e-6 * (hi - lo))


# ------------------------------------------------------------------ training


def test_classifier_is_frozen_and_not_in_the_optimisers():
    f = classifier(batchnorm=True).train()  # BN and dropout: eval mode must be forced
    before = {k: v.clone() for k, v in f.state_dict().items()}
    gm = tiny(f)
    gm.fit(toy_data(), steps=3, batch_size=8, seed=0, show_progress=False)
    after = f.state_dict()
    for k in before:  # parameters and buffers (BN statistics) bitwise unchanged
        assert torch.equal(before[k], after[k]), k
    assert all(p.grad is None for p in f.parameters())
    assert f.training  # its own mode restored
    ids = {id(p) for p in f.parameters()}
    for opt in (gm.opt_g, gm.opt_d):
        held = {id(p) for group in opt.param_groups for p in group["params"]}
        assert not held & ids
        assert not {id(p) for p in opt.state} & ids
    # the generator and the critic did train
    assert len(gm.opt_g.state) == len(list(gm.generator.parameters()))
    assert gm.step == 3 and len(gm.history) == 3


def test_fit_is_deterministic_under_a_seed():
    data = toy_data()
    runs = []
    for seed in (7, 7, 8):
        gm = tiny(classifier())
        gm.fit(data, steps=3, batch_size=8, seed=seed, show_progress=False)
        runs.append(weights(gm))
    assert_same(runs[0], runs[1])
    assert any(not torch.equal(runs[0][k], runs[2][k]) for k in runs[0])
    # the global RNG is neither used nor disturbed by fit
    gm = tiny(classifier())
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    gm.fit(data, steps=1, batch_size=4, seed=0, show_progress=False)
    assert torch.equal(torch.rand(3), want)


def test_checkpoint_resume_equals_an_uninterrupted_run(tmp_path):
    data, f = toy_data(), classifier()
    full = tiny(f).fit(data, steps=6, batch_size=8, seed=3, show_progress=False)
    d = tmp_path / "ck"
    ck = {"batch_size": 8, "seed": 3, "checkpoint_dir": d, "checkpoint_every": 2}
    first = tiny(f).fit(data, steps=4, show_progress=False, **ck)
    assert sorted(os.listdir(d)) == ["ganmex-step2.pt", "ganmex-step4.pt"]
    assert first.step == 4
    # a fresh object picks up the latest checkpoint (optimiser states included)
    resumed = tiny(f).fit(data, steps=6, show_progress=False, **ck)
    assert resumed.step == 6 and "ganmex-step6.pt" in os.listdir(d)
    assert_same(weights(resumed), weights(full))
    # continuing in the same object is the same run too
    again = tiny(f).fit(data, steps=2, batch_size=8, seed=3, show_progress=False)
    again.fit(data, steps=6, batch_size=8, seed=3, show_progress=False)
    assert_same(weights(again), weights(full))
    # a run is continued with its own seed only, and from a checkpoint of the same settings
    with pytest.raises(ValueError, match="seed: the run being continued"):
        tiny(f).fit(data, steps=8, batch_size=8, seed=4, checkpoint_dir=d, show_progress=False)
    with pytest.raises(ValueError, match="other settings.*width"):
        tiny(f, width=5).fit(
            data, steps=8, batch_size=8, seed=3, checkpoint_dir=d, show_progress=False
        )


def test_save_load_round_trip(tmp_path):
    f = classifier()
    gm = tiny(f, input_range=(0.0, 2.0))
    x, y = toy_data()
    gm.fit((x * 2, y), steps=2, batch_size=8, seed=0, show_progress=False)
    p = tmp_path / "g.pt"
    gm.save(p)
    back = GANMEX.load(p, f)
    assert back.step == 2 and back.input_range == (0.0, 2.0)
    c = torch.arange(6) % K
    assert torch.equal(
        back.baseline(x[:6] * 2, c, check=False), gm.baseline(x[:6] * 2, c, check=False)
    )
    assert_same(weights(back), weights(gm))
    # training on from the loaded copy is training on from the original
    gm.fit((x * 2, y), steps=3, batch_size=8, seed=0, show_progress=False)
    back.fit((x * 2, y), steps=3, batch_size=8, seed=0, show_progress=False)
    assert_same(weights(back), weights(gm))
    torch.save({"config": '{"format": "other"}'}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a GANMEX file"):
        GANMEX.load(tmp_path / "bad.pt", f)


class Constant(nn.Module):
    """Always predicts class ``k`` (a function of x with zero gradient)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hot = F.one_hot(torch.full((x.shape[0],), self.k), K).to(x.dtype)
        return hot + 0 * x.flatten(1).sum(1, keepdim=True)  # differentiable in x


def test_invalid_baselines_are_flagged():
    gm = tiny(Constant(0))
    x = toy_data(5)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gm.baseline(x, 0)  # every baseline is classified as its target: no warning
        gm.baseline(x, 1, check=False)  # the check turned off explicitly
    with pytest.warns(CounterfactualWarning, match="5 of 5"):
        gm.baseline(x, 1)
    with pytest.warns(CounterfactualWarning, match="3 of 5"):
        gm.baseline(x, torch.tensor([0, 1, 2, 0, 1]))
    _, valid = gm.baseline(x, torch.tensor([0, 1, 2, 0, 1]), return_valid=True)
    assert valid.tolist() == [True, False, False, True, False]
    assert gm.validity(x, torch.tensor([0, 1, 2, 0, 1])) == pytest.approx(0.4)
    assert gm.validity(x, 2, judge=Constant(2)) == 1.0


# ------------------------------------------------------------------ one-vs-one attributions


@pytest.mark.parametrize("margin", [True, False])
def test_one_vs_one_on_a_linear_classifier_is_exact(margin):
    from xattr.baselines.ganmex import PairwiseMargins
    from xattr.explainers import IntegratedGradients, Occlusion

    torch.manual_seed(0)
    lin = nn.Linear(64, K).double()
    f = nn.Sequential(nn.Flatten(), lin)
    gm = tiny(f)
    x = torch.rand(4, *SHAPE, generator=gen(0), dtype=torch.float64)
    y, c = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 0, 2])
    calls = []
    gm.generator.register_forward_hook(lambda *a: calls.append(1))
    b = gm.baseline(x, c, check=False)
    w = lin.weight[y] - lin.weight[c] if margin else lin.weight[y]
    # a linear model: IG and one-pixel occlusion are both (x - b) * w, exactly
    want = (x - b) * w.view(4, *SHAPE)
    calls.clear()
    ig = gm.one_vs_one(IntegratedGradients, x, c, source=y, margin=margin, check=False)
    assert len(calls) == 1  # the cost over the plain explainer: one generator forward
    torch.testing.assert_close(ig, want, rtol=0, atol=1e-10)
    # and, with the validity check, one classifier forward more than the plain explainer
    f_calls = []
    f.register_forward_hook(lambda *a: f_calls.append(1))
    model = PairwiseMargins(f, K) if margin else f
    target = model.target(y, c) if margin else y
    IntegratedGradients(model).attribute(x, baselines=b, target=target)
    plain = len(f_calls)
    f_calls.clear()
    gm.one_vs_one(IntegratedGradients, x, c, source=y, margin=margin, check=True)
    assert len(f_calls) == plain + 1
    occ = gm.one_vs_one(
        Occlusion, x, c, source=y, margin=margin, check=False, sliding_window_shapes=(1, 1, 1)
    )
    torch.testing.assert_close(occ, want, rtol=0, atol=1e-10)
    # the default source is the classifier's prediction
    pred = f(x).argmax(1)
    torch.testing.assert_close(
        gm.one_vs_one(IntegratedGradients, x, c, margin=margin, check=False),
        gm.one_vs_one(IntegratedGradients, x, c, source=pred, margin=margin, check=False),
        rtol=0,
        atol=0,
    )


def test_pairwise_margins_and_one_vs_one_errors():
    from xattr.baselines.ganmex import PairwiseMargins
    from xattr.explainers import IntegratedGradients

    z = torch.randn(5, K, generator=gen(0))
    m = PairwiseMargins(lambda t: t, K)
    out = m(z)
    for i in range(K):
        for j in range(K):
            assert torch.equal(out[:, m.target(i, j)], z[:, i] - z[:, j])
    gm = tiny(Constant(0))
    x = toy_data(4)[0]
    with pytest.warns(CounterfactualWarning, match="4 of 4"):
        gm.one_vs_one(IntegratedGradients, x, 1, source=0, n_steps=2)
    with pytest.raises(TypeError, match="baselines: set by one_vs_one"):
        gm.one_vs_one(IntegratedGradients, x, 1, baselines=0.0)
    with pytest.raises(TypeError, match="explainer"):
        gm.one_vs_one(3, x, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source: classes must lie"):
        gm.one_vs_one(IntegratedGradients, x, 1, source=K)


# ------------------------------------------------------------------ a short run on digits


@functools.lru_cache(maxsize=1)
def digits() -> tuple:
    """scikit-learn's 8 x 8 digits in [0, 1], a classifier f (an MLP) and an
    independent judge (a CNN, another seed), both trained here (> 90% test accuracy),
    200 held-out inputs and a target class c != y for each."""
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    X = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    Y = torch.tensor(d.target)
    perm = torch.randperm(len(X), generator=gen(0))
    tr, te = perm[:1400], perm[1400:1600]

    def train(model: nn.Module, seed: int) -> nn.Module:
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        g = gen(seed)
        for _ in range(300):
            i = tr[torch.randint(0, len(tr), (64,), generator=g)]
            loss = F.cross_entropy(model(X[i]), Y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            assert float((model(X[te]).argmax(1) == Y[te]).float().mean()) > 0.9
        return model

    torch.manual_seed(1)
    f = train(nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)), 1)
    torch.manual_seed(2)
    judge = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 10)
    )
    judge = train(judge, 2)
    c = (Y[te] + 1 + torch.randint(0, 9, (len(te),), generator=gen(5))) % 10  # c != y
    return (X[tr], Y[tr]), f, judge, X[te], c


def test_short_run_on_digits_is_valid_under_an_independent_judge():
    train, f, judge, x, c = digits()
    gm = GANMEX(f, 10, (1, 8, 8), width=8, n_blocks=1, d_width=8, lr_g=3e-4, lr_d=3e-4, seed=0)
    before = gm.validity(x, c, judge)
    gm.fit(train, steps=150, batch_size=16, seed=0, show_progress=False)
    under_f, under_judge = gm.validity(x, c), gm.validity(x, c, judge)
    # measured: 0.10 before; after 150 steps 1.00 under f and 0.725 under the judge
    # (GANMEX seeds 0-4 for both the weights and the fit: 1.00 and 0.705-0.88)
    assert before < 0.25
    assert under_f > 0.9
    assert under_judge > 0.4  # chance is 0.1


@pytest.mark.slow
def test_default_sizes_on_digits():
    # the default widths, learning rates and weights: measured 1.00 under f, 1.00
    # under the judge after 400 steps of 32 (about 18 s on one thread)
    train, f, judge, x, c = digits()
    gm = GANMEX(f, 10, (1, 8, 8), seed=0)
    gm.fit(train, steps=400, batch_size=32, seed=0, show_progress=False)
    assert gm.validity(x, c) > 0.95
    assert gm.validity(x, c, judge) > 0.8


# ------------------------------------------------------------------ errors


def test_bad_arguments():
    f = classifier()
    with pytest.raises(TypeError, match="classifier"):
        GANMEX(3, K, SHAPE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes"):
        GANMEX(f, 1, SHAPE)
    with pytest.raises(TypeError, match="num_classes"):
        GANMEX(f, 2.0, SHAPE)  # type: ignore[arg-type]
    for shape in [(8,), (1, 1, 8, 8), (1, 0, 8), (1, 8.0, 8)]:
        with pytest.raises(ValueError, match="input_shape"):
            GANMEX(f, K, shape)
    with pytest.raises(TypeError, match="input_shape"):
        GANMEX(f, K, 8)  # type: ignore[arg-type]
    for rng in [(1.0, 1.0), (2.0, 0.0), (0.0, float("inf"))]:
        with pytest.raises(ValueError, match="input_range"):
            GANMEX(f, K, SHAPE, input_range=rng)
    with pytest.raises(TypeError, match="input_range"):
        GANMEX(f, K, SHAPE, input_range=(0.0, 1.0, 2.0))  # type: ignore[arg-type]
    for kw in [
        {"width": 0},
        {"n_blocks": -1},
        {"d_layers": 0},
        {"lambda_cls": -1.0},
        {"lr_g": 0.0},
        {"betas": (0.9, 1.0)},
        {"seed": -1},
    ]:
        with pytest.raises(ValueError, match=next(iter(kw))):
            GANMEX(f, K, SHAPE, **kw)

    gm = tiny(f)
    x, y = toy_data(8)
    with pytest.raises(ValueError, match="steps"):
        gm.fit((x, y), steps=0, show_progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        gm.fit((x, y), steps=1, batch_size=0, show_progress=False)
    with pytest.raises(ValueError, match="labels"):
        gm.fit(x, steps=1, show_progress=False)
    with pytest.raises(ValueError, match=r"data\[1\]"):
        gm.fit((x, y[:4]), steps=1, show_progress=False)
    with pytest.raises(ValueError, match=r"data\[1\]: classes must lie in \[0, 3\)"):
        gm.fit((x, y + K), steps=1, show_progress=False)
    with pytest.raises(TypeError, match=r"data\[1\]"):
        gm.fit((x, y.float()), steps=1, show_progress=False)
    with pytest.raises(ValueError, match=r"data\[0\]: values must lie in input_range"):
        gm.fit((x * 3, y), steps=1, show_progress=False)
    with pytest.raises(ValueError, match=r"data\[0\]: expected \[B, 1, 8, 8\]"):
        gm.fit((x[:, 0], y), steps=1, show_progress=False)
    with pytest.raises(TypeError, match="show_progress"):
        gm.fit((x, y), steps=1, show_progress=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target: classes must lie"):
        gm.baseline(x, K)
    with pytest.raises(ValueError, match="target: classes must lie"):
        gm.baseline(x, torch.full((8,), -1))
    with pytest.raises(ValueError, match=r"target: expected an int or \[B\]"):
        gm.baseline(x, torch.zeros(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="target"):
        gm.baseline(x, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="x: expected a float tensor"):
        gm.baseline(x.long(), 1)
    with pytest.raises(ValueError, match="x: has non-finite"):
        gm.baseline(torch.full_like(x, float("nan")), 1)
    with pytest.raises(TypeError, match="judge"):
        gm.validity(x, 1, judge=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"judge: expected logits \[B, num_classes\]"):
        gm.validity(x, 1, judge=nn.Sequential(nn.Flatten(), nn.Linear(64, K + 1)))
    bad = tiny(nn.Sequential(nn.Flatten(), nn.Linear(64, K + 2)))
    with pytest.raises(ValueError, match=r"classifier: expected logits"):
        bad.fit((x, y), steps=1, show_progress=False)


# ------------------------------------------------------------------ the simple baselines beside it


def test_uniform_noise():
    from xattr.baselines import uniform

    x = torch.zeros(50, 4, dtype=torch.float64)
    torch.manual_seed(0)
    want = torch.rand(2)
    torch.manual_seed(0)
    u = uniform(x, -2.0, 3.0, seed=4)
    assert torch.equal(torch.rand(2), want)  # the global RNG untouched
    assert u.shape == x.shape and u.dtype == torch.float64
    assert float(u.min()) >= -2 and float(u.max()) < 3 and float(u.max()) > 2.5
    assert torch.equal(u, uniform(x, -2.0, 3.0, seed=4))
    assert not torch.equal(u, uniform(x, -2.0, 3.0, seed=5))
    with pytest.raises(ValueError, match="high"):
        uniform(x, 1.0, 1.0)
    with pytest.raises(TypeError, match="inputs"):
        uniform(x.long())


def test_nearest_of_class_equals_brute_force():
    from xattr.baselines import nearest_of_class

    data = torch.rand(40, 2, 3, generator=gen(0))
    labels = torch.randint(0, 4, (40,), generator=gen(1))
    x = torch.rand(7, 2, 3, generator=gen(2))
    c = torch.randint(0, 4, (7,), generator=gen(3))
    got = nearest_of_class(x, c, data, labels)
    for i in range(7):
        rows = [j for j in range(40) if labels[j] == c[i]]
        best = min(rows, key=lambda j: float(((data[j] - x[i]).double() ** 2).sum()))
        assert torch.equal(got[i], data[best])
    assert torch.equal(nearest_of_class(data[:3], labels[:3], data, labels), data[:3])
    with pytest.raises(ValueError, match="target: no row of data has class 4"):
        nearest_of_class(x, 4, data, labels)
    with pytest.raises(ValueError, match="data"):
        nearest_of_class(x, 0, data[:, 0], labels)
    with pytest.raises(ValueError, match="labels"):
        nearest_of_class(x, 0, data, labels[:3])
    with pytest.raises(ValueError, match="target"):
        nearest_of_class(x, c[:3], data, labels)


def test_fit_with_a_float64_classifier():
    torch.manual_seed(0)
    f = nn.Sequential(nn.Flatten(), nn.Linear(64, K)).double()
    x, y = toy_data(8)
    gm = tiny(f).fit((x.double(), y), steps=2, batch_size=4, seed=0, show_progress=False)
    b, valid = gm.baseline(x.double(), 1, return_valid=True)
    assert b.dtype == torch.float64 and valid.shape == (8,)
