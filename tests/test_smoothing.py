"""MuS: the Lipschitz inequality and certificate soundness, exhaustively for d <= 8, with
votes and with probabilities (also for a one-output binary classifier); radii that land
exactly on integers; lambda = 1 gives the base classifier; always_keep takes feature ids;
the warning when g's label is not h's; progress bars; determinism; argument checks."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from tests._helpers import EXACT, F64, gen, mlp
from xattr.smoothing import MuS, certified_radius, certify, columns, grid_patches

# Random models change their decisions under MuS noise; the warning has its own test.
pytestmark = pytest.mark.filterwarnings("ignore:MuS. the smoothed label:UserWarning")


def _all_alphas(d: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0, 1], repeat=d)), dtype=torch.bool)


def _table(g: MuS, x: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """g(x_b, alpha) for every example and every alpha: [B, 2^d, C]."""
    rows = []
    for b in range(x.shape[0]):
        xb = x[b : b + 1].expand(alphas.shape[0], *x.shape[1:])
        rows.append(g(xb, alphas))
    return torch.stack(rows)


CASES = [  # (d features, elements per feature, lambda, q, voting)
    (6, 2, 1 / 8, 16, True),
    (6, 2, 1 / 4, 8, False),
    (8, 1, 3 / 8, 16, True),
    (8, 1, 1 / 2, 16, False),
    (5, 3, 1 / 16, 16, True),
    (7, 1, 1.0, 4, False),
]


@pytest.mark.parametrize("d,per,lam,q,voting", CASES)
def test_lipschitz_and_certificates_exhaustively(d, per, lam, q, voting):
    C = 3
    model = mlp(d * per, 16, C, seed=d + q)
    with torch.no_grad():  # confident outputs, so that probabilities certify radii >= 1
        model[2].weight *= 6
    groups = torch.arange(d).repeat_interleave(per)
    g = MuS(model, lam, q=q, feature_mask=groups, voting=voting, output="logits", seed=7)
    x = torch.randn(3, d * per, generator=gen(d), dtype=F64) * 2
    alphas = _all_alphas(d)
    table = _table(g, x, alphas)  # [B, 2^d, C]
    dist = (alphas[:, None, :] != alphas[None, :, :]).sum(-1).to(F64)  # [2^d, 2^d]
    # the Lipschitz inequality over all pairs of alpha, for every class
    move = (table[:, :, None, :] - table[:, None, :, :]).abs().amax(-1)  # [B, 2^d, 2^d]
    assert bool((move <= g.lambda_ * dist + 1e-12).all())
    # certificate soundness: nothing within the certified radius changes the argmax
    scores = table * q if voting else table
    labels = table.argmax(-1)  # [B, 2^d]
    certified_some = False
    for b in range(x.shape[0]):
        label, gap, real, radius = certified_radius(scores[b], g.level, q, voting)
        assert torch.equal(label, labels[b])
        within = dist <= radius[:, None].to(F64)  # [2^d, 2^d]: alpha' within r of alpha
        same = labels[b][None, :] == labels[b][:, None]
        assert bool((same | ~within).all())
        certified_some |= bool((radius >= 1).any())
        # the real radius is the gap over 2 lambda, and the integer radius is below it
        torch.testing.assert_close(real, gap / (2 * g.lambda_))
        assert bool((radius.to(F64) < real + 1e-12).all() | (radius == -1).all())
    assert certified_some or lam > 0.25  # the soundness check is not vacuous


def test_radii_that_land_exactly_on_integers():
    # votes: q = 16, L = 4; n_A - n_B = 8 = 2L -> the ratio is exactly 1 -> r = 0
    counts = torch.tensor([[12.0, 4.0, 0.0], [13.0, 3.0, 0.0], [8.0, 8.0, 0.0]])
    _, gap, real, r = certified_radius(counts, 4, 16, True)
    assert r.tolist() == [0, 1, -1]
    assert real.tolist() == [1.0, 1.25, 0.0]
    # probabilities: 0.1 + 0.2 - 0.0 = 0.30000000000000004 over 2 * 0.05 is 3.0000000000000004
    # in floats; the exact ratio 3 certifies r = 2 (strict inequality), never 3
    p = torch.tensor([[0.1 + 0.2, 0.0], [0.5, 0.0], [0.75, 0.0], [0.25 + 1e-12, 0.0]], dtype=F64)
    _, _, real, r = certified_radius(p, 1, 20, False)  # lambda = 1/20 = 0.05
    assert r.tolist()[0] == 2
    _, _, _, r = certified_radius(p[1:], 4, 16, False)  # lambda = 0.25: ratios 1, 1.5, ~0.5
    assert r.tolist() == [0, 1, 0]


def test_lambda_one_is_the_base_classifier():
    model = mlp(6, 16, 4, seed=3)
    x = torch.randn(5, 6, generator=gen(4), dtype=F64)
    g = MuS(model, 1.0, q=8, voting=False, output="logits")
    torch.testing.assert_close(g(x), torch.softmax(model(x), 1), rtol=0, atol=1e-15)
    votes = MuS(model, 1.0, q=8, output="logits")
    assert torch.equal(votes(x).argmax(1), model(x).argmax(1))
    alpha = torch.tensor([1, 0, 1, 1, 0, 1])
    torch.testing.assert_close(g(x, alpha), torch.softmax(model(x * alpha), 1))


def test_votes_are_counts_and_results_are_deterministic():
    model = mlp(10, 16, 3, seed=5)
    x = torch.randn(4, 10, generator=gen(6), dtype=F64)
    g = MuS(model, 0.25, q=16, output="logits", seed=11)
    c = g.counts(x)
    assert torch.equal(c, c.round()) and bool((c.sum(1) == 16).all())
    assert torch.equal(g(x), MuS(model, 0.25, q=16, output="logits", seed=11)(x))
    other = MuS(model, 0.25, q=16, output="logits", seed=12)
    assert not torch.equal(g.noise(10), other.noise(10))
    assert bool((g.noise(10).sum(0) == 4).all())
    # the memory budget changes the batches, not the answer
    small = MuS(model, 0.25, q=16, output="logits", seed=11, memory_budget=1)
    assert torch.equal(small(x), g(x))


def test_certify_reports_consistency_and_both_radii():
    model = mlp(8, 16, 3, seed=8)
    x = torch.randn(6, 8, generator=gen(9), dtype=F64) * 3
    g = MuS(model, 1 / 8, q=16, output="logits")
    alpha = torch.zeros(6, 8, dtype=torch.bool)
    alpha[:, :5] = True
    c = certify(g, x, alpha)
    full = certify(g, x)
    assert torch.equal(c.full_label, full.label) and torch.equal(
        c.decremental_int, full.incremental_int
    )
    assert torch.equal(c.consistent, c.label == c.full_label)
    counts = g.counts(x, alpha)
    top = counts.topk(2, 1).values
    want = torch.div(top[:, 0] - top[:, 1] - 1, 2 * g.level, rounding_mode="floor").long()
    assert torch.equal(c.incremental_int, want.clamp_min(-1))
    assert torch.equal(
        c.stable(0), c.consistent & (c.incremental_int >= 0) & (c.decremental_int >= 0)
    )


def test_segmenters_always_keep_and_token_ids():
    ids = grid_patches(2)(torch.zeros(1, 1, 4, 6))
    assert ids[0, 0].tolist() == [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5]] + [
        [3, 3, 4, 4, 5, 5]
    ]
    assert columns()(torch.zeros(2, 3)).tolist() == [[0, 1, 2]]
    # feature 0 always kept: dropping it from alpha changes nothing
    model = mlp(4, 16, 2, seed=10)
    x = torch.randn(3, 4, generator=gen(11), dtype=F64)
    g = MuS(model, 0.5, q=8, voting=False, output="logits", always_keep=[0])
    on, off = torch.tensor([1, 1, 0, 1]), torch.tensor([0, 1, 0, 1])
    torch.testing.assert_close(g(x, on), g(x, off))
    # token ids are masked by replacement with the mask id

    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(12)
            self.emb, self.out = nn.Embedding(20, 4), nn.Linear(4, 2)

        def forward(self, t):
            return self.out(self.emb(t).mean(1))

    bag = Bag().eval()
    t = torch.randint(2, 20, (2, 5), generator=gen(13))
    gt = MuS(bag, 1.0, q=4, voting=False, output="logits", mask_value=1)
    alpha = torch.tensor([1, 0, 1, 0, 1])
    masked = torch.where(alpha.bool(), t, torch.ones_like(t))
    torch.testing.assert_close(gt(t, alpha), torch.softmax(bag(masked).double(), 1))


def test_bad_arguments_name_themselves():
    model = mlp(4, 16, 2, seed=0)
    x = torch.randn(2, 4, dtype=F64)
    with pytest.raises(ValueError, match="nearest valid values are 2/8"):
        MuS(model, 0.3, q=8, output="logits")
    with pytest.raises(ValueError, match="lambda_"):
        MuS(model, 0.0, q=8, output="logits")
    with pytest.raises(ValueError, match="output"):
        MuS(model, 0.5, q=8)
    with pytest.raises(ValueError, match="q"):
        MuS(model, 0.5, q=0, output="logits")
    with pytest.raises(TypeError, match="model"):
        MuS("model", 0.5, output="logits")
    with pytest.raises(TypeError, match="feature_mask"):
        MuS(model, 0.5, feature_mask=[0, 1], output="logits")
    with pytest.raises(TypeError, match="mask_value"):
        MuS(model, 0.5, mask_value="pad", output="logits")
    g = MuS(model, 0.5, q=8, output="logits")
    with pytest.raises(ValueError, match="alpha"):
        g(x, torch.ones(3))
    with pytest.raises(ValueError, match="alpha"):
        g(x, torch.full((4,), 0.5))
    with pytest.raises(ValueError, match="always_keep"):
        MuS(model, 0.5, q=8, output="logits", always_keep=[9])(x)
    with pytest.raises(ValueError, match="output"):
        MuS(lambda t: model(t) * 5, 0.5, q=8, voting=False, output="probs")(x)
    with pytest.raises(TypeError, match="smoothed"):
        certify(model, x)
    with pytest.raises(ValueError, match="inputs"):
        grid_patches(2)(torch.zeros(2, 4))


def test_gradients_of_g_with_probabilities():
    # g is the mean of h over the q masked copies, so its gradient is the mean of theirs
    model = mlp(6, 16, 3, seed=14)
    g = MuS(model, 0.25, q=8, voting=False, output="logits", seed=3)
    x = torch.randn(2, 6, generator=gen(15), dtype=F64, requires_grad=True)
    out = g(x)
    torch.testing.assert_close(out.detach(), g(x.detach()), rtol=0, atol=1e-15)
    (grad,) = torch.autograd.grad(out[:, 1].sum(), x)
    s = g.noise(6).to(F64)  # [q, d]
    want = torch.zeros_like(x)
    for j in range(8):
        xj = (x.detach() * s[j]).requires_grad_()
        (gj,) = torch.autograd.grad(torch.softmax(model(xj), 1)[:, 1].sum(), xj)
        want += gj * s[j] / 8
    torch.testing.assert_close(grad, want, rtol=0, atol=1e-14)
    # a gradient explainer explains g
    import xattr

    sal = xattr.Saliency(g).attribute(x.detach(), target=1, abs=False)
    torch.testing.assert_close(sal, want, rtol=0, atol=1e-14)


def _sound(g: MuS, x: torch.Tensor, d: int) -> bool:
    """Exhaustive soundness over every pair of masks; True when some radius is >= 1."""
    alphas = _all_alphas(d)
    table = _table(g, x, alphas)
    dist = (alphas[:, None, :] != alphas[None, :, :]).sum(-1).to(F64)
    labels = table.argmax(-1)
    certified_some = False
    for b in range(x.shape[0]):
        scores = table[b] * g.q if g.voting else table[b]
        label, _, _, radius = certified_radius(scores, g.level, g.q, g.voting)
        assert torch.equal(label, labels[b])
        within = dist <= radius[:, None].to(F64)
        assert bool(((labels[b][None, :] == labels[b][:, None]) | ~within).all())
        certified_some |= bool((radius >= 1).any())
    return certified_some


@pytest.mark.parametrize("output", ["logits", "probs"])
@pytest.mark.parametrize("voting", [True, False])
@pytest.mark.parametrize("shape", ["[B]", "[B, 1]"])
def test_one_output_is_a_binary_classifier_and_its_certificates_are_sound(output, voting, shape):
    d = 6
    torch.manual_seed(21)
    lin = nn.Linear(d, 1).double().eval()
    with torch.no_grad():
        lin.weight *= 8

    def model(t):
        z = lin(t)
        z = torch.sigmoid(z) if output == "probs" else z
        return z[:, 0] if shape == "[B]" else z

    g = MuS(model, 1 / 8, q=16, voting=voting, output=output, seed=3)
    x = torch.randn(4, d, generator=gen(22), dtype=F64) * 2
    out = g(x)
    assert out.shape == (4, 2)
    torch.testing.assert_close(out.sum(1), torch.ones(4, dtype=F64))
    # lambda = 1: g is h read as (1 - p, p)
    p = torch.sigmoid(lin(x))[:, 0]
    h = MuS(model, 1.0, q=8, voting=False, output=output)(x)
    torch.testing.assert_close(h, torch.stack([1 - p, p], 1), **EXACT)
    # the base model's decision flips under masking, and every certificate holds
    masked = model((x[:, None] * _all_alphas(d).to(F64)).reshape(-1, d)).reshape(4, -1)
    threshold = 0.5 if output == "probs" else 0.0
    assert bool((masked > threshold).any(1).all()) and bool((masked < threshold).any(1).all())
    assert _sound(g, x, d)  # not vacuous: some radius is >= 1
    c = certify(g, x)
    assert bool((c.incremental_int < 2**31).all()) and bool((c.decremental_int < 2**31).all())


def test_certified_radius_needs_two_classes():
    with pytest.raises(ValueError, match="scores: expected .* at least 2 classes"):
        certified_radius(torch.ones(3, 1), 1, 4, True)


def test_always_keep_takes_the_users_feature_ids():
    model = mlp(4, 16, 2, seed=10)
    x = torch.randn(3, 4, generator=gen(11), dtype=F64)
    ids = torch.tensor([1, 2, 3, 4])  # ids from 1: alpha's column j is the id ids[j]
    g = MuS(model, 0.5, q=8, voting=False, output="logits", feature_mask=ids, always_keep=[1])
    f = g.features(x)
    assert f.ids.tolist() == [1, 2, 3, 4] and f.kept == (0,) and f.d == 4
    on, off = torch.tensor([1, 1, 0, 1]), torch.tensor([0, 1, 0, 1])
    torch.testing.assert_close(g(x, on), g(x, off))  # id 1 (column 0) is kept
    assert not torch.allclose(g(x, on), g(x, torch.tensor([1, 0, 0, 1])))  # id 2 is not
    last = MuS(model, 0.5, q=8, voting=False, output="logits", feature_mask=ids, always_keep=[4])
    torch.testing.assert_close(last(x, torch.tensor([1, 1, 0, 0])), last(x, on))
    with pytest.raises(ValueError, match="always_keep: feature id 0 is not among"):
        MuS(model, 0.5, q=8, output="logits", feature_mask=ids, always_keep=[0])(x)
    with pytest.raises(TypeError, match="always_keep"):
        MuS(model, 0.5, q=8, output="logits", always_keep=1)
    # sparse ids: 10, 20, 30, 40 are columns 0..3
    sparse = MuS(
        model, 0.5, q=8, voting=False, output="logits", feature_mask=ids * 10, always_keep=[30]
    )
    assert sparse.features(x).kept == (2,)
    torch.testing.assert_close(
        sparse(x, torch.tensor([1, 1, 1, 0])), sparse(x, torch.tensor([1, 1, 0, 0]))
    )


def test_certify_warns_when_g_changes_the_base_models_label():
    """A model whose decision is a threshold on the sum of its inputs: at lambda = 1/2
    MuS keeps about half of them, so g's label is the other class."""

    def model(t):
        s = t.sum(1)
        return torch.stack([s - 3.0, torch.zeros_like(s)], 1)  # class 0 when the sum > 3

    x = torch.ones(2, 4, dtype=F64)  # sum 4: h says class 0
    g = MuS(model, 0.5, q=8, output="logits")
    with pytest.warns(UserWarning, match="differs from the base model's argmax h.x. on 2 of 2"):
        c = certify(g, x)
    assert c.full_label.tolist() == [1, 1] and bool(c.consistent.all())
    assert g.base_labels(x).tolist() == [0, 0]
    # lambda = 1, or a label that agrees: no warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        certify(MuS(model, 1.0, q=8, output="logits"), x)
        certify(MuS(model, 0.5, q=8, output="logits"), x * 4)  # sum 16: g keeps class 0


def test_progress_bars_on_every_evaluation(capsys):
    pytest.importorskip("tqdm")
    model = mlp(6, 16, 3, seed=30)
    x = torch.randn(2, 6, generator=gen(31), dtype=F64)
    quiet = MuS(model, 0.5, q=8, output="logits")
    loud = MuS(model, 0.5, q=8, output="logits", show_progress=True)
    assert torch.equal(quiet(x), loud(x))
    assert "MuS g(x, alpha)" in capsys.readouterr().err
    certify(quiet, x, show_progress=True)
    err = capsys.readouterr().err
    assert "MuS certify" in err and "MuS h(x)" not in err  # one bar for the call
    certify(quiet, x)
    assert capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="show_progress"):
        MuS(model, 0.5, q=8, output="logits", show_progress="yes")
