"""Certified explanations from attributions: the scan's smallest stable k against a
brute-force loop of ``certify`` over k, binary search (stable, equal to the scan when
stability is monotone, different on a constructed non-monotone case), top-k alphas and
their certificates, xattr explainers on the smoothed model, the default target,
determinism under any memory budget, and argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import xattr
from tests._helpers import EXACT, F64, gen
from xattr.smoothing import MuS, certify, grid_patches
from xattr.smoothing.explain import (
    ExplainedCertificate,
    MinStable,
    explain_and_certify,
    min_stable_fraction,
)

# Random models change their decisions under MuS noise; the warning has its own test.
pytestmark = pytest.mark.filterwarnings("ignore:MuS. the smoothed label:UserWarning")


def _smoothed(d, per, lam, q, voting, scale, seed, **kwargs):
    """A confident linear classifier (3 classes) on d features of ``per`` elements each."""
    torch.manual_seed(seed)
    model = nn.Linear(d * per, 3).double().eval()
    with torch.no_grad():
        model.weight *= scale
        model.bias *= scale / 4
    mask = kwargs.pop("feature_mask", torch.arange(d).repeat_interleave(per))
    return MuS(
        model, lam, q=q, feature_mask=mask, voting=voting, output="logits", seed=7, **kwargs
    ).eval()


def _feature_scores(g: MuS, x: torch.Tensor, attr: torch.Tensor) -> list[list[float]]:
    groups, d = g.features(x)[:2]
    groups = groups.expand(x.shape[0], *groups.shape[1:]).reshape(x.shape[0], -1)
    flat = attr.reshape(x.shape[0], -1)
    return [[float(flat[b][groups[b] == j].sum()) for j in range(d)] for b in range(x.shape[0])]


def _top_alpha(scores: list[list[float]], k: int) -> torch.Tensor:
    """Top-k features per example, in plain Python: higher score first, then lower index."""
    alpha = torch.zeros(len(scores), len(scores[0]), dtype=torch.bool)
    for b, row in enumerate(scores):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        alpha[b, order[:k]] = True
    return alpha


def _stability_table(g: MuS, x: torch.Tensor, attr: torch.Tensor, r: int) -> torch.Tensor:
    """[B, d] bool: is the top-k alpha stable with radius r, for k = 1..d (``certify``)."""
    scores = _feature_scores(g, x, attr)
    d = len(scores[0])
    return torch.stack([certify(g, x, _top_alpha(scores, k)).stable(r) for k in range(1, d + 1)], 1)


def _first_stable(table: torch.Tensor) -> torch.Tensor:
    d = table.shape[1]
    return torch.where(table.any(1), table.to(torch.int8).argmax(1) + 1, d + 1)


def _assert_same_certificate(c, want, rows=None):
    for name in c._fields:
        got, ref = getattr(c, name), getattr(want, name)
        if rows is not None:
            got, ref = got[rows], ref[rows]
        if got.is_floating_point():
            torch.testing.assert_close(got, ref, **EXACT, msg=name)
        else:
            assert torch.equal(got, ref), name


def _certificate_at(g, x, attr, k):
    """certify at each example's top-k alpha (alpha = 1 for the sentinel d + 1)."""
    scores = _feature_scores(g, x, attr)
    d = len(scores[0])
    alpha = torch.stack([_top_alpha([s], min(int(kb), d))[0] for s, kb in zip(scores, k)])
    return certify(g, x, alpha)


CASES = [  # (d, elements per feature, lambda, q, voting, r, weight scale, seed)
    (8, 1, 1 / 4, 16, True, 0, 5, 0),
    (7, 1, 1 / 4, 8, False, 0, 5, 3),
    (8, 1, 1 / 16, 16, False, 1, 10, 4),
    (8, 1, 1 / 8, 16, True, 1, 5, 1),
    (6, 2, 1 / 8, 16, False, 1, 10, 2),
]


@pytest.mark.parametrize("d,per,lam,q,voting,r,scale,seed", CASES)
def test_scan_is_the_brute_force_smallest_k_and_binary_is_stable(
    d, per, lam, q, voting, r, scale, seed
):
    g = _smoothed(d, per, lam, q, voting, scale, seed)
    B = 16
    x = torch.randn(B, d * per, generator=gen(seed), dtype=F64)
    attr = torch.randn(B, d * per, generator=gen(seed + 1), dtype=F64)
    table = _stability_table(g, x, attr, r)  # [B, d]
    want = _first_stable(table)

    scan = min_stable_fraction(g, attr, x, r=r)
    assert isinstance(scan, MinStable)
    assert scan.k.dtype == torch.int64 and torch.equal(scan.k, want)
    torch.testing.assert_close(scan.fraction, want.to(F64) / d, rtol=0, atol=0)
    _assert_same_certificate(scan.certificate, _certificate_at(g, x, attr, scan.k))
    found = scan.k <= d
    assert torch.equal(scan.certificate.stable(r), found)
    # the sentinel d + 1 exactly when the full input is not certified to radius r
    assert torch.equal(found, certify(g, x).incremental_int >= r)

    binary = min_stable_fraction(g, attr, x, r=r, method="binary")
    _assert_same_certificate(binary.certificate, _certificate_at(g, x, attr, binary.k))
    assert torch.equal(binary.k > d, ~found)
    assert bool((binary.k >= scan.k).all())
    for b in found.nonzero().squeeze(1).tolist():
        assert bool(table[b, binary.k[b] - 1])  # binary search's k is stable
    # where the stable ks are upward closed, binary search finds the smallest
    monotone = (table.to(torch.int8).diff(dim=1) >= 0).all(1)
    assert torch.equal(binary.k[monotone], scan.k[monotone])
    # not vacuous: some examples need several features, some need none beyond one
    assert bool(((scan.k > 1) & found).any() | (~found).any())


def test_random_cases_hold_non_monotone_stability():
    # (8, 1, 1/4, 16, votes, r = 0, seed 0): stability is not monotone in k for some
    # example, and binary search returns a larger (still stable) k there
    g = _smoothed(8, 1, 1 / 4, 16, True, 5, 0)
    x = torch.randn(16, 8, generator=gen(0), dtype=F64)
    attr = torch.randn(16, 8, generator=gen(1), dtype=F64)
    table = _stability_table(g, x, attr, 0)
    monotone = (table.to(torch.int8).diff(dim=1) >= 0).all(1)
    assert not bool(monotone.all())
    scan = min_stable_fraction(g, attr, x, r=0)
    binary = min_stable_fraction(g, attr, x, r=0, method="binary")
    assert bool((binary.k != scan.k).any())


class _Count(nn.Module):
    """Class 0 when the number of present (non-zero) features is in ``keep``, else 1;
    counts its forward rows."""

    def __init__(self, keep):
        super().__init__()
        self.keep = torch.tensor(keep, dtype=F64)
        self.rows = 0

    def forward(self, t):
        self.rows += t.shape[0]
        on = torch.isin((t != 0).sum(1).to(F64), self.keep).to(F64)
        return torch.stack([on, 1 - on], 1)


def test_binary_search_misses_the_smallest_k_when_stability_is_not_monotone():
    # lambda = 1: g = h, radius 0, so with r = 0 stable means consistent. Features ranked
    # 0, 1, ..., 7; the top-k alpha keeps k features, stable for k in {2, 6, 7, 8}.
    x = torch.ones(1, 8, dtype=F64)
    ranking = torch.arange(8, 0, -1, dtype=F64).view(1, 8)
    model = _Count([2, 6, 7, 8])
    g = MuS(model, 1.0, q=1, output="probs")
    scan = min_stable_fraction(g, ranking, x, r=0)
    assert scan.k.tolist() == [2] and scan.fraction.tolist() == [0.25]
    model.rows = 0
    binary = min_stable_fraction(g, ranking, x, r=0, method="binary")
    # 1..8: mid 4 unstable -> 5..8: mid 6 stable -> 5..6: mid 5 unstable -> 6
    assert binary.k.tolist() == [6] and bool(binary.certificate.stable(0).all())
    assert model.rows == 1 + math.ceil(math.log2(8))  # g(x, 1), then one alpha per step
    # monotone stability (k >= 5): both find the smallest k
    g5 = MuS(_Count([5, 6, 7, 8]), 1.0, q=1, output="probs")
    for method in ("scan", "binary"):
        assert min_stable_fraction(g5, ranking, x, r=0, method=method).k.tolist() == [5]
    # a radius beyond the full input's: no k, the sentinel d + 1 with alpha = 1's certificate
    none = min_stable_fraction(g, ranking, x, r=1)
    assert none.k.tolist() == [9] and none.fraction.tolist() == [9 / 8]
    _assert_same_certificate(none.certificate, certify(g, x))


@pytest.mark.parametrize("voting", [True, False])
def test_explain_and_certify_keeps_the_top_fraction_and_certifies_it(voting):
    d, per = 10, 2
    g = _smoothed(d, per, 1 / 8, 16, voting, 5, 11)
    x = torch.randn(6, d * per, generator=gen(12), dtype=F64)
    attr = torch.randn(6, d * per, generator=gen(13), dtype=F64)
    scores = _feature_scores(g, x, attr)  # features are pairs of elements: sums
    for frac, k in [(0.25, 3), (0.3, 3), (0.5, 5), (0.01, 1), (1, 10), (0.95, 10)]:
        out = explain_and_certify(g, attr, x, top_fraction=frac)
        assert isinstance(out, ExplainedCertificate) and out.attributions is attr
        assert k == max(1, math.ceil(round(frac * d, 9)))
        assert out.alpha.dtype == torch.bool and out.alpha.shape == (6, d)
        assert out.alpha.sum(1).tolist() == [k] * 6
        assert torch.equal(out.alpha, _top_alpha(scores, k))
        _assert_same_certificate(out.certificate, certify(g, x, out.alpha))


def test_ties_go_to_the_lower_feature_index():
    g = _smoothed(6, 1, 1 / 4, 8, True, 5, 14)
    x = torch.randn(2, 6, generator=gen(15), dtype=F64)
    attr = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 0.0, 2.0, 5.0, 0.0]], dtype=F64)
    out = explain_and_certify(g, attr, x, top_fraction=0.5)
    assert out.alpha.tolist() == [[True] * 3 + [False] * 3, [False, True, False, True, True, False]]
    out = explain_and_certify(g, attr, x, top_fraction=4 / 6)
    assert out.alpha[1].tolist() == [True, True, False, True, True, False]


def test_xattr_explainers_on_the_smoothed_model():
    d = 6
    g = _smoothed(d, 1, 1 / 4, 8, False, 5, 16)
    x = torch.randn(4, d, generator=gen(17), dtype=F64)
    mask = g.features(x)[0]
    pred = g(x).argmax(1)
    ablation = xattr.FeatureAblation(g)
    out = explain_and_certify(g, ablation, x, top_fraction=0.5, feature_mask=mask)
    direct = ablation.attribute(x, target=pred, feature_mask=mask)
    torch.testing.assert_close(out.attributions, direct, rtol=0, atol=0)
    assert torch.equal(out.alpha, explain_and_certify(g, direct, x, top_fraction=0.5).alpha)
    _assert_same_certificate(out.certificate, certify(g, x, out.alpha))
    m = min_stable_fraction(g, ablation, x, r=0, feature_mask=mask)
    assert torch.equal(m.k, min_stable_fraction(g, direct, x, r=0).k)

    shap = xattr.KernelShap(g)
    kw = dict(feature_mask=mask, n_samples=24, seed=0)
    out = explain_and_certify(g, shap, x, top_fraction=0.5, **kw)
    assert out.attributions.shape == x.shape and out.alpha.sum(1).tolist() == [3] * 4
    assert torch.equal(out.alpha, explain_and_certify(g, shap, x, top_fraction=0.5, **kw).alpha)
    _assert_same_certificate(out.certificate, certify(g, x, out.alpha))


def test_the_target_defaults_to_the_smoothed_prediction():
    g = _smoothed(5, 1, 1 / 5, 10, True, 5, 18)
    x = torch.randn(5, 5, generator=gen(19), dtype=F64)
    seen = []

    def explainer(inputs, target, scale=1.0):
        seen.append(target)
        return inputs * scale

    out = explain_and_certify(g, explainer, x)
    assert torch.equal(seen[-1].cpu(), g(x).argmax(1))
    assert torch.equal(out.certificate.full_label, g(x).argmax(1))
    explain_and_certify(g, explainer, x, target=2, scale=-1.0)
    assert seen[-1] == 2
    min_stable_fraction(g, explainer, x)
    assert torch.equal(seen[-1].cpu(), g(x).argmax(1))

    class WithAttribute:
        def attribute(self, inputs, target=None):
            seen.append(target)
            return inputs.abs()

    min_stable_fraction(g, WithAttribute(), x, target=[0, 1, 2, 0, 1], method="binary")
    assert seen[-1] == [0, 1, 2, 0, 1]


def test_per_example_feature_masks_and_image_patches():
    # every example numbers its features differently: evaluations on repeated rows keep
    # each example's own feature ids
    d, B = 6, 5
    perms = torch.stack([torch.randperm(d, generator=gen(20 + b)) for b in range(B)])
    g = _smoothed(d, 1, 1 / 3, 12, True, 5, 21, feature_mask=perms)
    x = torch.randn(B, d, generator=gen(22), dtype=F64)
    attr = torch.randn(B, d, generator=gen(23), dtype=F64)
    for r in (0, 1):
        table = _stability_table(g, x, attr, r)
        scan = min_stable_fraction(g, attr, x, r=r, memory_budget=1)
        assert torch.equal(scan.k, _first_stable(table))
        _assert_same_certificate(scan.certificate, _certificate_at(g, x, attr, scan.k))
    # 2 x 2 patches of 1 x 4 x 4 images: d = 4
    torch.manual_seed(24)
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3)).double().eval()
    gi = MuS(cnn, 1 / 4, q=8, feature_mask=grid_patches(2), output="logits").eval()
    xi = torch.randn(3, 1, 4, 4, generator=gen(25), dtype=F64) * 3
    ai = torch.randn(3, 1, 4, 4, generator=gen(26), dtype=F64)
    scan = min_stable_fraction(gi, ai, xi, r=0)
    assert torch.equal(scan.k, _first_stable(_stability_table(gi, xi, ai, 0)))
    out = explain_and_certify(gi, ai, xi, top_fraction=0.5)
    assert out.alpha.shape == (3, 4) and out.alpha.sum(1).tolist() == [2] * 3


def test_grouped_attributions_keep_the_right_feature():
    """h = (s, 2.5), s = 3 x_0 + 0.5 (x_1 + ... + x_4), at x = 1 with features {0} and
    {1, 2, 3, 4}: keeping feature 0 alone keeps class 0 (s = 3), keeping feature 1 alone
    does not (s = 2). Every explainer's own output must keep feature 0."""
    w = torch.tensor([3.0, 0.5, 0.5, 0.5, 0.5], dtype=F64)

    def h(t):
        s = t @ w
        return torch.stack([s, torch.full_like(s, 2.5)], 1)

    mask = torch.tensor([0, 1, 1, 1, 1])
    x = torch.ones(1, 5, dtype=F64)
    g = MuS(h, 1.0, q=1, feature_mask=mask, voting=False, output="logits").eval()
    group = xattr.ExactShapley(h).attribute(x, target=0, feature_mask=mask)  # [3, 2, 2, 2, 2]
    element = xattr.IntegratedGradients(h).attribute(x, target=0)  # [3, .5, .5, .5, .5]
    for attr in (group, element):
        out = explain_and_certify(g, attr, x, top_fraction=0.5)
        assert out.alpha.tolist() == [[True, False]] and out.certificate.consistent.item()
        assert min_stable_fraction(g, attr, x, r=0).k.tolist() == [1]
    # explainers of g itself, with g's features: a perturbation explainer's group layout
    for explainer in (xattr.ExactShapley(g), xattr.KernelShap(g), xattr.FeatureAblation(g)):
        out = explain_and_certify(g, explainer, x, top_fraction=0.5, feature_mask=mask)
        assert out.alpha.tolist() == [[True, False]], type(explainer).__name__
        assert min_stable_fraction(g, explainer, x, r=0, feature_mask=mask).k.tolist() == [1]
    # summed, the group layout keeps the wrong feature: inconsistent, and k = 2
    wrong = explain_and_certify(g, group, x, top_fraction=0.5, layout="element")
    assert wrong.alpha.tolist() == [[False, True]] and not wrong.certificate.consistent.item()
    assert min_stable_fraction(g, group, x, r=0, layout="element").k.tolist() == [2]
    with pytest.raises(ValueError, match="layout"):
        explain_and_certify(g, group, x, layout="sums")
    with pytest.raises(ValueError, match="layout"):
        min_stable_fraction(g, group, x, layout=None)


def test_explanations_warn_about_gs_label_and_show_progress(capsys):
    pytest.importorskip("tqdm")

    def model(t):
        s = t.sum(1)
        return torch.stack([s - 3.0, torch.zeros_like(s)], 1)  # class 0 when the sum > 3

    x = torch.ones(1, 4, dtype=F64)  # h says class 0; g at lambda = 1/2 says class 1
    g = MuS(model, 0.5, q=8, output="logits")
    attr = torch.tensor([[4.0, 3.0, 2.0, 1.0]], dtype=F64)
    with pytest.warns(UserWarning, match="differs from the base model's argmax h.x. on 1 of 1"):
        explain_and_certify(g, attr, x)
    with pytest.warns(UserWarning, match="differs from the base model's"):
        min_stable_fraction(g, attr, x, r=0)
    capsys.readouterr()
    for method in ("scan", "binary"):
        with pytest.warns(UserWarning):
            min_stable_fraction(
                g, xattr.FeatureAblation(g), x, 0, method=method, show_progress=True
            )
        err = capsys.readouterr().err
        # one bar for the whole call: g, h's labels, the explainer and the search in it
        assert "MuS min_stable_fraction" in err
        assert "MuS g(x, alpha)" not in err and "MuS h(x)" not in err
        assert "Feature Ablation" not in err
    with pytest.warns(UserWarning):
        explain_and_certify(g, xattr.FeatureAblation(g), x, show_progress=True)
    err = capsys.readouterr().err
    assert "MuS explain_and_certify" in err
    assert "MuS g(x, alpha)" not in err and "Feature Ablation" not in err
    loud = MuS(model, 0.5, q=8, output="logits", show_progress=True)
    with pytest.warns(UserWarning):
        explain_and_certify(loud, attr, x)
    assert "MuS explain_and_certify" in capsys.readouterr().err
    with pytest.warns(UserWarning):
        explain_and_certify(loud, attr, x, show_progress=False)
    assert capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="show_progress"):
        explain_and_certify(g, attr, x, show_progress="yes")


def test_results_are_deterministic_under_any_memory_budget(capsys):
    g = _smoothed(8, 1, 1 / 4, 16, False, 5, 3)
    x = torch.randn(12, 8, generator=gen(27), dtype=F64)
    attr = torch.randn(12, 8, generator=gen(28), dtype=F64)
    for method in ("scan", "binary"):
        ref = min_stable_fraction(g, attr, x, r=0, method=method)
        for budget in (1, 50_000, "1GB"):
            again = min_stable_fraction(g, attr, x, r=0, method=method, memory_budget=budget)
            assert torch.equal(again.k, ref.k)
            _assert_same_certificate(again.certificate, ref.certificate)
        shown = min_stable_fraction(g, attr, x, r=0, method=method, show_progress=True)
        assert torch.equal(shown.k, ref.k)
    a = explain_and_certify(g, attr, x, top_fraction=0.4)
    b = explain_and_certify(g, attr, x, top_fraction=0.4)
    assert torch.equal(a.alpha, b.alpha)
    _assert_same_certificate(a.certificate, b.certificate)


def test_bad_arguments_name_themselves():
    g = _smoothed(4, 1, 1 / 2, 4, True, 5, 29)
    x = torch.randn(2, 4, dtype=F64)
    attr = torch.randn(2, 4, dtype=F64)
    with pytest.raises(TypeError, match="smoothed"):
        explain_and_certify(g.model, attr, x)
    with pytest.raises(TypeError, match="smoothed"):
        min_stable_fraction(g.model, attr, x)
    with pytest.raises(TypeError, match="x"):
        explain_and_certify(g, attr, x.tolist())
    for bad in (0, 0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="top_fraction"):
            explain_and_certify(g, attr, x, top_fraction=bad)
    for bad in ("0.5", True, None):
        with pytest.raises(TypeError, match="top_fraction"):
            explain_and_certify(g, attr, x, top_fraction=bad)
    with pytest.raises(ValueError, match="r"):
        min_stable_fraction(g, attr, x, r=-1)
    with pytest.raises(TypeError, match="r: "):
        min_stable_fraction(g, attr, x, r=1.0)
    with pytest.raises(ValueError, match="method"):
        min_stable_fraction(g, attr, x, method="linear")
    with pytest.raises(TypeError, match="show_progress"):
        min_stable_fraction(g, attr, x, show_progress=1)
    with pytest.raises(ValueError, match="memory_budget"):
        min_stable_fraction(g, attr, x, memory_budget="lots")
    with pytest.raises(TypeError, match="explainer_or_attributions"):
        min_stable_fraction(g, 3, x)
    with pytest.raises(TypeError, match="explainer"):
        explain_and_certify(g, "saliency", x)
    with pytest.raises(ValueError, match="attributions"):
        explain_and_certify(g, attr[:, :3], x)
    with pytest.raises(ValueError, match="attributions"):
        min_stable_fraction(g, lambda t, target: t.unsqueeze(1), x)
    with pytest.raises(TypeError, match="attributions"):
        explain_and_certify(g, attr.long(), x)
    with pytest.raises(TypeError, match="n_samples"):
        explain_and_certify(g, attr, x, n_samples=4)
    with pytest.raises(ValueError, match="target"):
        min_stable_fraction(g, attr, x, target=0)
