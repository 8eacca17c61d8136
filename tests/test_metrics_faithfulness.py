"""Deletion / insertion / target-class curves: closed forms on linear models, a brute-force
loop on a small CNN, baselines, batching independence and argument checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests._helpers import EXACT, F64, gen
from xattr.baselines import blur, channel_mean
from xattr.metrics.faithfulness import (
    deletion_curve,
    insertion_curve,
    step_counts,
    target_class_curve,
)


def _linear(d: int, T: int = 3, seed: int = 0):
    W = torch.randn(d, T, generator=gen(seed), dtype=F64)
    return W, (lambda x: x.reshape(x.shape[0], -1) @ W)


def _brute(f, x, base, order_scores, counts, insertion, target):
    """values[b, k] by an explicit loop over examples and steps (features = elements)."""
    B = x.shape[0]
    out = torch.zeros(B, len(counts), dtype=F64)
    for b in range(B):
        order = sorted(range(x[b].numel()), key=lambda j: -float(order_scores[b].flatten()[j]))
        for k, n in enumerate(counts.tolist()):
            chosen = torch.zeros(x[b].numel(), dtype=torch.bool)
            chosen[order[:n]] = True
            chosen = chosen.view(x[b].shape)
            keep = chosen if insertion else ~chosen
            xb = torch.where(keep, x[b], base[b] if base.shape[0] > 1 else base[0])
            t = target if isinstance(target, int) else target[b]
            out[b, k] = f(xb[None])[0, t].double()
    return out


def test_deletion_of_an_exact_explanation_of_a_linear_model():
    d, B = 7, 4
    W, f = _linear(d)
    x = torch.randn(B, d, generator=gen(1), dtype=F64)
    base = torch.randn(1, d, generator=gen(2), dtype=F64)
    target = [0, 2, 1, 1]
    phi = (x - base) * W[:, target].T  # exact: sums to f(x) - f(b)
    c = deletion_curve(f, x, phi, target=target, baselines=base, n_steps=None)
    assert c.fractions.tolist() == [k / d for k in range(d + 1)]
    # step k: f(x) minus the k largest contributions
    top = phi.sort(1, descending=True).values.cumsum(1)
    fx = (x @ W)[range(B), target]
    want = torch.cat([fx[:, None], fx[:, None] - top], 1)
    torch.testing.assert_close(c.values, want, **EXACT)
    torch.testing.assert_close(c.auc, torch.trapezoid(want, c.fractions, dim=1))
    # insertion, least relevant first, walks the same points backwards
    ins = insertion_curve(
        f, x, phi, target=target, baselines=base, n_steps=None, order="least_relevant_first"
    )
    torch.testing.assert_close(ins.values, want.flip(1), **EXACT)


@pytest.mark.parametrize("insertion", [False, True])
@pytest.mark.parametrize("n_steps", [5, None])
def test_curves_match_a_brute_force_loop_on_a_cnn(insertion, n_steps):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 36, 4)
    ).eval()
    x = torch.randn(3, 1, 6, 6, generator=gen(3))
    attr = torch.randn(3, 1, 6, 6, generator=gen(4))
    base = torch.randn(3, 1, 6, 6, generator=gen(5))  # per example (a counterfactual)
    target = torch.tensor([1, 3, 0])
    fn = insertion_curve if insertion else deletion_curve
    c = fn(model, x, attr, target=target, baselines=base, n_steps=n_steps)
    counts = step_counts(36, n_steps)
    want = _brute(model, x, base, attr, counts, insertion, target.tolist())
    torch.testing.assert_close(c.values.double(), want, rtol=0, atol=1e-5)
    # the answer does not depend on how rows are batched
    small = fn(model, x, attr, target=target, baselines=base, n_steps=n_steps, memory_budget=1)
    torch.testing.assert_close(small.values, c.values, rtol=0, atol=1e-6)


def test_feature_groups_rank_by_summed_attributions():
    W, f = _linear(6, T=1, seed=6)
    x = torch.ones(2, 6, dtype=F64)
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    attr = torch.tensor([[5.0, -4.0, 0.5, 0.4, 0.3, 0.3], [0.0, 0.0, 0.0, 1.0, 2.0, 0.0]])
    c = deletion_curve(f, x, attr.double(), target=0, feature_mask=groups, n_steps=None)
    assert c.values.shape == (2, 4)
    # example 0: group sums (1.0, 0.9, 0.6) -> order 0, 1, 2; example 1: (0, 1, 2) -> 2, 1, 0
    contrib = (x * W[:, 0]).view(2, 3, 2).sum(2)  # [B, 3]
    order = [[0, 1, 2], [2, 1, 0]]
    for b in range(2):
        acc = float((x[b] @ W)[0])
        want = [acc]
        for g in order[b]:
            acc -= float(contrib[b, g])
            want.append(acc)
        torch.testing.assert_close(c.values[b], torch.tensor(want, dtype=F64))


def test_named_baselines_equal_the_tensors_they_stand_for():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    x = torch.rand(2, 1, 8, 8, generator=gen(7))
    attr = torch.randn(2, 1, 8, 8, generator=gen(8))
    for name, tensor in [("blur", blur(x, sigma=2.0)), ("mean", channel_mean(x))]:
        a = deletion_curve(model, x, attr, target=1, baselines=name, blur_sigma=2.0)
        b = deletion_curve(model, x, attr, target=1, baselines=tensor)
        torch.testing.assert_close(a.values, b.values)


def test_several_targets_and_tuple_inputs():
    W, f = _linear(5, T=3, seed=9)

    def g(u, v):
        return f(torch.cat([u, v], 1))

    x = torch.randn(2, 5, generator=gen(10), dtype=F64)
    u, v = x[:, :2], x[:, 2:]
    phi = x[:, :, None] * W[None]  # [B, d, T]: exact per target
    c = deletion_curve(g, (u, v), (phi[:, :2, 0], phi[:, 2:, 0]), target="all", n_steps=None)
    assert c.values.shape == (2, 3, 6) and c.auc.shape == (2, 3)
    # target="all" is every target's own curve, in the order of the same attributions
    for t in range(3):
        single = deletion_curve(g, (u, v), (phi[:, :2, 0], phi[:, 2:, 0]), target=t, n_steps=None)
        torch.testing.assert_close(c.values[:, t], single.values)
        torch.testing.assert_close(c.auc[:, t], single.auc)


def test_target_class_curve_with_a_counterfactual_baseline():
    W, f = _linear(6, T=3, seed=11)
    x = torch.randn(3, 6, generator=gen(12), dtype=F64)
    cf = torch.randn(3, 6, generator=gen(13), dtype=F64)
    y, c = [0, 1, 2], [1, 2, 0]
    # exact "why y rather than c" attributions for a linear model
    phi = (x - cf) * (W[:, y] - W[:, c]).T
    r = target_class_curve(f, x, phi, y, c, cf, n_steps=None)
    top = phi.sort(1, descending=True).values.cumsum(1)
    gap = (x @ W)[range(3), c] - (x @ W)[range(3), y]
    want = torch.cat([gap[:, None], gap[:, None] + top], 1)
    torch.testing.assert_close(r.margin, want, **EXACT)
    # at the end the input is the counterfactual
    assert torch.equal(r.flipped[:, -1], (cf @ W).argmax(1) == torch.tensor(c))
    torch.testing.assert_close(r.margin[:, -1], (cf @ W)[range(3), c] - (cf @ W)[range(3), y])
    torch.testing.assert_close(r.auc, torch.trapezoid(want, r.fractions, dim=1))


def test_step_counts():
    assert step_counts(10, 4).tolist() == [0, 3, 5, 8, 10]
    assert step_counts(3, 20).tolist() == [0, 1, 2, 3]
    assert step_counts(5, None).tolist() == [0, 1, 2, 3, 4, 5]
    n = step_counts(784, 20)
    assert n[0] == 0 and n[-1] == 784 and bool((n.diff() > 0).all())


def test_bad_arguments_name_themselves():
    _, f = _linear(4, T=2)
    x = torch.ones(2, 4, dtype=F64)
    a = torch.ones(2, 4, dtype=F64)
    with pytest.raises(ValueError, match="attributions"):
        deletion_curve(f, x, a[:, :3], target=0)
    with pytest.raises(ValueError, match="attributions"):
        deletion_curve(f, x, a * float("nan"), target=0)
    with pytest.raises(TypeError, match="attributions"):
        deletion_curve(f, x, a.long(), target=0)
    with pytest.raises(ValueError, match="order"):
        deletion_curve(f, x, a, target=0, order="random")
    with pytest.raises(ValueError, match="n_steps"):
        insertion_curve(f, x, a, target=0, n_steps=0)
    with pytest.raises(ValueError, match="baselines"):
        deletion_curve(f, x, a, target=0, baselines="noise")
    with pytest.raises(ValueError, match="toward"):
        target_class_curve(f, x, a, 0, 5, 0.0)
    with pytest.raises(ValueError, match="target"):
        target_class_curve(f, x, a, [0, 1, 1], 1, 0.0)
    with pytest.raises(ValueError, match="target"):
        deletion_curve(f, x, a, target=7)


# ---------------------------------------------------------------------- ROAD
def _nli_scipy(img: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """ROAD's linear imputation of one [H, W] channel by a sparse direct solve."""
    sparse = pytest.importorskip("scipy.sparse")
    linalg = pytest.importorskip("scipy.sparse.linalg")
    H, W = img.shape
    idx = {(i, j): n for n, (i, j) in enumerate(removed.nonzero().tolist())}
    A = sparse.lil_matrix((len(idx), len(idx)))
    b = torch.zeros(len(idx), dtype=F64)
    for (i, j), n in idx.items():
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if (di, dj) == (0, 0) or not (0 <= i + di < H and 0 <= j + dj < W):
                    continue
                w = 1 / 12 if di and dj else 1 / 6
                A[n, n] += w
                if (i + di, j + dj) in idx:
                    A[n, idx[(i + di, j + dj)]] -= w
                else:
                    b[n] += w * float(img[i + di, j + dj])
    sol = linalg.spsolve(A.tocsc(), b.numpy())
    out = img.clone().double()
    for (i, j), n in idx.items():
        out[i, j] = float(sol[n])
    return out


def test_linear_imputation_solves_roads_system():
    from xattr.metrics.faithfulness import linear_imputation

    g = gen(20)
    x = torch.rand(3, 2, 9, 11, generator=g, dtype=F64)
    removed = torch.rand(3, 9, 11, generator=g) < torch.tensor([0.2, 0.5, 0.9]).view(3, 1, 1)
    got = linear_imputation(x, removed)
    for n in range(3):
        for c in range(2):
            want = _nli_scipy(x[n, c], removed[n])
            torch.testing.assert_close(got[n, c], want, rtol=0, atol=1e-8)
    # kept pixels are untouched, bit for bit
    assert torch.equal(
        got[~removed.unsqueeze(1).expand_as(x)], x[~removed.unsqueeze(1).expand_as(x)]
    )


def test_road_evaluates_the_imputed_images():
    from xattr.metrics.faithfulness import linear_imputation, road

    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 49, 3)).double().eval()
    x = torch.rand(2, 2, 7, 7, generator=gen(21), dtype=F64)
    attr = torch.randn(2, 2, 7, 7, generator=gen(22), dtype=F64)
    r = road(model, x, attr, target=[0, 2], fractions=(0.1, 0.5, 0.9), noise=0.0)
    score = attr.sum(1).reshape(2, -1)
    for k, p in enumerate((0.1, 0.5, 0.9)):
        n = int(p * 49)
        top = score.argsort(dim=1, descending=True, stable=True)[:, :n]
        hole = torch.zeros(2, 49, dtype=torch.bool)
        hole.scatter_(1, top, True)
        out = model(linear_imputation(x, hole.view(2, 7, 7)))
        torch.testing.assert_close(r.values[:, k], out[[0, 1], [0, 2]], rtol=0, atol=1e-10)
        assert torch.equal(r.correct[:, k], out.argmax(1) == torch.tensor([0, 2]))
    # seeded noise: reproducible, and it moves the values
    a = road(model, x, attr, target=[0, 2], noise=0.05, seed=3)
    b = road(model, x, attr, target=[0, 2], noise=0.05, seed=3)
    assert torch.equal(a.values, b.values)
    assert not torch.equal(a.values, road(model, x, attr, target=[0, 2], noise=0.0).values)


def test_road_bad_arguments():
    from xattr.metrics.faithfulness import road

    f = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).eval()
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="inputs"):
        road(f, x[:, 0], x, target=0)
    with pytest.raises(ValueError, match="attributions"):
        road(f, x, x[:, :, :3], target=0)
    with pytest.raises(ValueError, match="fractions"):
        road(f, x, x, target=0, fractions=(0.5, 1.5))
    with pytest.raises(ValueError, match="noise"):
        road(f, x, x, target=0, noise=-1)
    with pytest.raises(ValueError, match="target"):
        road(f, x, x, target=4)
    with pytest.raises(ValueError, match="order"):
        road(f, x, x, target=0, order="up")


def test_summaries():
    from xattr.metrics import summarize

    _, f = _linear(4, T=2)
    x = torch.randn(5, 4, generator=gen(30), dtype=F64)
    c = deletion_curve(f, x, x, target=1, n_steps=4)
    s = c.summary()
    assert s["auc"]["n"] == 5 and abs(s["auc"]["mean"] - float(c.auc.mean())) < 1e-12
    assert abs(s["auc"]["sem"] - float(c.auc.std() / 5**0.5)) < 1e-12
    torch.testing.assert_close(torch.tensor(s["mean_curve"], dtype=F64), c.values.mean(0))
    t = summarize(torch.tensor([3.0, float("nan"), 1.0]))
    assert (t["mean"], t["min"], t["max"], t["n"], t["nan"]) == (2.0, 1.0, 3.0, 2, 1)
    assert summarize(torch.tensor([float("nan")]))["n"] == 0
    with pytest.raises(TypeError, match="values"):
        summarize([1.0, 2.0])


# ------------------------------------------------------------------ layouts
def _two_features():
    """f = 3 x_0 + 0.5 (x_1 + ... + x_4) at x = 1 with baseline 0: feature 0 (one element)
    has Shapley value 3, feature 1 (four elements) 2. Outputs: f and the constant 2.5."""
    w = torch.tensor([3.0, 0.5, 0.5, 0.5, 0.5], dtype=F64)

    def f(x):
        s = x.reshape(x.shape[0], -1) @ w
        return torch.stack([s, torch.full_like(s, 2.5)], 1)

    return f, torch.ones(1, 5, dtype=F64), torch.tensor([0, 1, 1, 1, 1])


def _layouts(f, x, mask):
    """(group layout: ExactShapley's own output; element layout: IG's)."""
    import xattr

    group = xattr.ExactShapley(f).attribute(x, target=0, feature_mask=mask)
    element = xattr.IntegratedGradients(f).attribute(x, target=0)
    assert group.tolist() == [[3.0, 2.0, 2.0, 2.0, 2.0]]
    torch.testing.assert_close(element, torch.tensor([[3.0, 0.5, 0.5, 0.5, 0.5]], dtype=F64))
    return group, element


def test_both_layouts_give_the_right_order_where_sums_would_flip_it():
    f, x, mask = _two_features()
    group, element = _layouts(f, x, mask)
    kw = dict(target=0, feature_mask=mask, n_steps=None)
    for attr in (group, element):
        c = deletion_curve(f, x, attr, **kw)
        assert c.values.tolist() == [[5.0, 2.0, 0.0]] and c.auc.item() == 2.25
        assert insertion_curve(f, x, attr, **kw).values.tolist() == [[0.0, 3.0, 5.0]]
        t = target_class_curve(f, x, attr, 0, 1, 0.0, feature_mask=mask, n_steps=None)
        assert t.margin.tolist() == [[-2.5, 0.5, 2.5]]
        assert t.flipped.tolist() == [[False, True, True]]
    # explicit layouts; summing the group layout reverses the order (AUC 2.75)
    assert deletion_curve(f, x, group, **kw, layout="group").auc.item() == 2.25
    assert deletion_curve(f, x, element, **kw, layout="element").auc.item() == 2.25
    assert deletion_curve(f, x, group, **kw, layout="element").auc.item() == 2.75
    uneven = torch.tensor([[3.0, 0.2, 0.8, 0.5, 0.5]], dtype=F64)  # sums to 3 and 2
    assert deletion_curve(f, x, uneven, **kw).auc.item() == 2.25
    with pytest.raises(ValueError, match="layout: 'group' needs"):
        deletion_curve(f, x, uneven, **kw, layout="group")
    with pytest.raises(ValueError, match="layout"):
        deletion_curve(f, x, group, **kw, layout="sum")


def test_auto_layout_ambiguity_is_resolved_by_the_argument():
    """A per-element map constant within every feature reads as the group layout; the
    argument says otherwise. Group and element readings coincide for single elements."""
    from xattr._core.features import feature_scores

    f, x, mask = _two_features()
    _, element = _layouts(f, x, mask)  # IG's [3, 0.5, 0.5, 0.5, 0.5], marked per-element
    ids = (mask.view(1, 5),)
    assert element.xattr_layout == "element"
    close = torch.testing.assert_close
    close(feature_scores(element, (x,), ids, 2), torch.tensor([[3.0, 2.0]], dtype=F64))
    copy = element.clone()  # not marked: constant within each feature reads as the group layout
    close(feature_scores(copy, (x,), ids, 2), torch.tensor([[3.0, 0.5]], dtype=F64))
    close(feature_scores(copy, (x,), ids, 2, "element"), torch.tensor([[3.0, 2.0]], dtype=F64))
    flat = torch.tensor([[3.0, 1.0, 1.0, 1.0, 1.0]], dtype=F64)  # element shares 3 and 4
    assert feature_scores(flat, (x,), ids, 2).tolist() == [[3.0, 1.0]]
    assert feature_scores(flat, (x,), ids, 2, "element").tolist() == [[3.0, 4.0]]
    kw = dict(target=0, feature_mask=mask, n_steps=None)
    assert deletion_curve(f, x, flat, **kw, layout="element").values.tolist() == [[5.0, 3.0, 0.0]]
    # per-example masks, tuple inputs: a feature spanning both inputs, absent features 0
    a = (torch.tensor([[2.0, 2.0], [1.0, 5.0]]), torch.tensor([[2.0], [4.0]]))
    ids = (torch.tensor([[0, 0], [0, 1]]), torch.tensor([[0], [2]]))
    xs = (torch.zeros(2, 2), torch.zeros(2, 1))
    assert feature_scores(a, xs, ids, 3).tolist() == [[2.0, 0.0, 0.0], [1.0, 5.0, 4.0]]
    a[0][1, 1] = 7.0  # no longer one value per feature in example 0
    a[0][0, 1] = 3.0
    assert feature_scores(a, xs, ids, 3).tolist() == [[7.0, 0.0, 0.0], [1.0, 7.0, 4.0]]


def test_road_ranks_pixels_right_in_both_layouts():
    """ROAD ranks pixels (channels summed), not feature groups: a group-layout map gives
    every pixel of a feature its value, which keeps the features' order."""
    from xattr.metrics.faithfulness import road

    w = torch.zeros(1, 1, 4, 4, dtype=F64)
    w[0, 0, 0, 0] = 3.0
    w[0, 0, 3, :] = 0.5  # feature 1: the four pixels of the last row

    def f(x):
        s = (x * w).sum((1, 2, 3))
        return torch.stack([s, torch.full_like(s, 2.5)], 1)

    x = (w > 0).to(F64)  # f(x) = 5; imputed from zero neighbours, pixel (0, 0) becomes 0
    group = torch.zeros_like(x)
    group[0, 0, 0, 0], group[0, 0, 3, :] = 3.0, 2.0
    runs = [road(f, x, a, target=0, fractions=(1 / 16,), noise=0.0) for a in (group, w)]
    assert runs[0].values.tolist() == runs[1].values.tolist() == [[2.0]]
