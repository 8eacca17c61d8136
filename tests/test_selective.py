"""xattr.amortized.selective: SelectiveExplainer and train_ensemble.

One setting throughout: a small tanh MLP on d = 6 tabular features, whose exact Shapley
values (ExactShapley, 64 coalitions) are the high-quality explanations; a 4-member
FastSHAP ensemble trained briefly (so that A(x) is good but not exact); KernelShap with
8 coalitions or ShapleyValueSampling with 1 permutation pair as the fallback (noisy).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests._helpers import F32, F64, gen
from xattr.amortized import AmortizedExplainer, SelectiveExplainer, train_ensemble
from xattr.explainers import ExactShapley, KernelShap, Occlusion, ShapleyValueSampling

D = 6


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks: a second thread only adds synchronisation. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(D, 16), nn.Tanh(), nn.Linear(16, 1)).eval()


NET = _net()


def model(x: torch.Tensor) -> torch.Tensor:
    return NET(x.to(F32))[:, 0]


def data(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, D, generator=gen(seed), dtype=F64).to(F32)


TRAIN = {"input_shape": (D,), "hidden": (32,), "epochs": 10, "batch_size": 64, "lr": 1e-2,
         "n_coalitions": 4, "show_progress": False}  # fmt: skip


@pytest.fixture(scope="module")
def members() -> list[AmortizedExplainer]:
    return train_ensemble(model, data(512, 0), k=4, **TRAIN)


@pytest.fixture(scope="module")
def splits():
    """(x_cal, hq_cal, x_test, hq_test): exact Shapley values, 400 inputs each."""
    exact = ExactShapley(model)
    x_cal, x_test = data(400, 1), data(400, 2)
    return x_cal, exact.attribute(x_cal), x_test, exact.attribute(x_test)


def mc(fallback, x, n, seed):
    return fallback.attribute(x, n_samples=n, seed=seed).to(F64)


def same(a, b) -> bool:
    """Two SelectiveResults field by field, bit for bit, NaN equal to NaN (lam of
    combine='prior'); rho is None for combine='lam'."""

    def eq(u, v):
        if u is None or v is None:
            return u is v
        return u.shape == v.shape and bool(((u == v) | (u.isnan() & v.isnan())).all())

    return all(eq(u, v) for u, v in zip(a, b))


FALLBACKS = {"kernel_shap": (KernelShap, 8), "shapley_value_sampling": (ShapleyValueSampling, 1)}


# ------------------------------------------------------------------ selection
@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.8])
def test_realised_coverage_on_held_out_data(members, splits, alpha):
    x_cal, hq_cal, x_test, _ = splits
    sel = SelectiveExplainer(members, coverage=alpha, n_fallback_samples=8).calibrate(x_cal, hq_cal)
    out = sel.attribute(x_test)
    kept = 1 - out.refined.double().mean().item()
    n = m = 400
    # the kept share of new inputs is binomial around P(s <= t_alpha), itself within
    # sampling error of alpha for the empirical quantile of m calibration inputs
    tol = 3 * math.sqrt(alpha * (1 - alpha) * (1 / n + 1 / m)) + 1 / m
    assert abs(kept - alpha) <= tol
    assert torch.equal(out.refined, out.uncertainty > sel.threshold)


def test_coverage_one_returns_amortized_exactly_and_zero_refines_all(members, splits):
    x_cal, hq_cal, x_test, _ = splits
    mean = torch.stack([m.attribute(x_test).to(F64) for m in members]).mean(0)
    keep = SelectiveExplainer(members, coverage=1.0).calibrate(x_cal, hq_cal)
    out = keep.attribute(x_test)
    assert not out.refined.any() and torch.equal(out.lam, torch.ones(400, dtype=F64))
    assert torch.equal(out.attributions, mean)
    # inputs far from the data (4 x): more uncertain than any calibration input, kept
    far = keep.attribute(4 * x_test)
    assert far.uncertainty.max() > keep.attribute(x_cal).uncertainty.max()
    assert not far.refined.any()
    everything = SelectiveExplainer(members, coverage=0.0, n_fallback_samples=8)
    out = everything.calibrate(x_cal, hq_cal).attribute(x_test, seed=3)
    assert out.refined.all()
    assert everything.attribute(x_cal).refined.all()  # the least uncertain too
    lam = out.lam.unsqueeze(1)
    expected = lam * mean + (1 - lam) * mc(KernelShap(model), x_test, 8, 3)
    torch.testing.assert_close(out.attributions, expected, rtol=0, atol=1e-12)


def test_ensemble_uncertainty_is_the_population_variance(members, splits):
    x_cal, hq_cal, x_test, _ = splits
    each = torch.stack([m.attribute(x_test).to(F64) for m in members])
    sel = SelectiveExplainer(members, coverage=0.5).calibrate(x_cal, hq_cal)
    out = sel.attribute(x_test)
    torch.testing.assert_close(out.uncertainty, each.var(0, correction=0).mean(1))
    assert out.uncertainty.dtype == F64 and out.uncertainty.shape == (400,)


class Counting:
    """The model, counting its calls and rows."""

    def __init__(self):
        self.calls = self.rows = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls, self.rows = self.calls + 1, self.rows + x.shape[0]
        return model(x)


def test_ensemble_calls_the_model_once_per_call():
    # the members share the game: v(N) is computed once (one model call on the batch),
    # v(empty) was kept at fit; each member's attributions are those its own attribute
    # gives, and their sums are v(N) - v(empty)
    counting = Counting()
    ens = train_ensemble(counting, data(64, 0), k=3, **TRAIN)
    x_cal, x = data(32, 1), data(16, 2)
    hq_cal = ExactShapley(model).attribute(x_cal)
    sel = SelectiveExplainer(ens, coverage=1.0).calibrate(x_cal, hq_cal)
    counting.calls = counting.rows = 0
    out = sel.attribute(x)
    assert (counting.calls, counting.rows) == (1, 16)
    each = torch.stack([m.attribute(x).to(F64) for m in ens])
    assert torch.equal(out.attributions, each.mean(0))
    assert torch.equal(out.uncertainty, each.var(0, correction=0).mean(1))
    gap = (model(x) - model(torch.zeros(1, D))).to(F64)
    torch.testing.assert_close(out.attributions.sum(1), gap, rtol=0, atol=1e-5)


# ------------------------------------------------------------------ lam
@pytest.mark.parametrize(("weight", "lam"), [(0.3, 0.3), (3.0, 1.0), (-1.0, 0.0)])
def test_lam_closed_form_and_clipped_to_unit_interval(members, splits, weight, lam):
    # HQ = w A + (1 - w) MC on the calibration inputs: the least-squares lam is w in
    # every bin, clipped to [0, 1]
    x_cal, _, x_test, _ = splits
    A = torch.stack([m.attribute(x_cal).to(F64) for m in members]).mean(0)
    MC = mc(KernelShap(model), x_cal, 8, 0)
    hq = weight * A + (1 - weight) * MC
    sel = SelectiveExplainer(members, coverage=0.0, n_fallback_samples=8, n_bins=4)
    sel.calibrate(x_cal, hq)
    torch.testing.assert_close(sel.lams, torch.full((4,), lam, dtype=F64), rtol=0, atol=1e-9)
    out = sel.attribute(x_test)
    assert ((out.lam >= 0) & (out.lam <= 1)).all()


def test_lam_per_bin_from_the_calibration_split(members, splits):
    x_cal, hq_cal, x_test, _ = splits
    sel = SelectiveExplainer(members, coverage=0.4, n_fallback_samples=8, n_bins=3)
    out = sel.calibrate(x_cal, hq_cal).attribute(x_test)
    assert sel.edges.shape == (2,) and sel.lams.shape == (3,)
    assert ((sel.lams >= 0) & (sel.lams <= 1)).all()
    bins = torch.searchsorted(sel.edges, out.uncertainty[out.refined])
    assert torch.equal(out.lam[out.refined], sel.lams[bins])
    assert torch.equal(out.lam[~out.refined], torch.ones(int((~out.refined).sum()), dtype=F64))


@pytest.mark.parametrize("name", list(FALLBACKS))
def test_combination_no_worse_than_the_better_of_amortized_and_monte_carlo(members, splits, name):
    # on the held-out split (lam was fitted on the calibration split), per-input squared
    # errors to the exact Shapley values, compared pairwise: observed mean differences
    # -5.9 (KernelShap, 8 coalitions) and -9.1 (one permutation pair) standard errors
    x_cal, hq_cal, x_test, hq_test = splits
    cls, n = FALLBACKS[name]
    sel = SelectiveExplainer(members, fallback=cls(model), n_fallback_samples=n, coverage=0.0)
    out = sel.calibrate(x_cal, hq_cal).attribute(x_test, seed=1)
    hq = hq_test.to(F64)
    err = lambda phi: ((phi - hq) ** 2).mean(1)  # noqa: E731
    e_sel = err(out.attributions)
    e_a = err(torch.stack([m.attribute(x_test).to(F64) for m in members]).mean(0))
    e_mc = err(mc(cls(model), x_test, n, 1))
    best = e_a if e_a.mean() < e_mc.mean() else e_mc
    diff = e_sel - best
    assert diff.mean() <= 2 * diff.std() / math.sqrt(diff.numel())


# ------------------------------------------------------------------ combine="prior"
def amortized_mean(members, x):
    return torch.stack([m.attribute(x).to(F64) for m in members]).mean(0)


def test_prior_rho_per_bin_from_the_grid(members, splits):
    x_cal, hq_cal, x_test, _ = splits
    grid = (0.0, 0.1, 1.0, 10.0, 100.0)
    sel = SelectiveExplainer(members, coverage=0.4, n_fallback_samples=8, n_bins=3,
                             combine="prior", rho_grid=grid)  # fmt: skip
    out = sel.calibrate(x_cal, hq_cal).attribute(x_test)
    assert sel.rhos.shape == (3,) and all(float(r) in grid for r in sel.rhos)
    assert sel.lams.numel() == 0
    r = out.refined
    assert 0 < int(r.sum()) < 400
    bins = torch.searchsorted(sel.edges, out.uncertainty[r])
    assert torch.equal(out.rho[r], sel.rhos[bins])
    assert torch.isinf(out.rho[~r]).all() and torch.isnan(out.lam[r]).all()
    assert torch.equal(out.lam[~r], torch.ones(int((~r).sum()), dtype=F64))
    assert torch.equal(out.attributions[~r], amortized_mean(members, x_test)[~r])
    gap = (model(x_test) - model(torch.zeros(1, D))).to(F64)
    torch.testing.assert_close(out.attributions.sum(1), gap, rtol=0, atol=1e-5)


def test_prior_rho_is_the_grid_value_with_least_calibration_error(members, splits):
    # one bin: the chosen rho is the grid value whose refined calibration inputs are
    # closest to HQ, checked by calibrating on each grid value alone (same coalitions:
    # the calibration seed is attribute's seed)
    x_cal, hq_cal, _, _ = splits
    x, hq = x_cal[:200], hq_cal[:200].to(F64)
    grid = (0.0, 0.03, 0.3, 3.0, 30.0)
    kw = {"coverage": 0.0, "n_fallback_samples": 8, "n_bins": 1, "combine": "prior"}
    sel = SelectiveExplainer(members, rho_grid=grid, **kw).calibrate(x, hq)
    errs = []
    for r in grid:
        alone = SelectiveExplainer(members, rho_grid=(r,), **kw).calibrate(x, hq)
        errs.append(float(((alone.attribute(x, seed=0).attributions - hq) ** 2).sum()))
    assert float(sel.rhos[0]) == grid[errs.index(min(errs))]
    assert max(errs) > 1.05 * min(errs)  # the choice matters here


def test_prior_no_worse_than_the_better_of_amortized_and_monte_carlo(members, splits):
    # as the lam test: held-out split, per-input squared errors compared pairwise
    x_cal, hq_cal, x_test, hq_test = splits
    sel = SelectiveExplainer(members, n_fallback_samples=8, coverage=0.0, combine="prior")
    out = sel.calibrate(x_cal, hq_cal).attribute(x_test, seed=1)
    hq = hq_test.to(F64)
    err = lambda phi: ((phi - hq) ** 2).mean(1)  # noqa: E731
    e_sel = err(out.attributions)
    e_a = err(amortized_mean(members, x_test))
    e_mc = err(mc(KernelShap(model), x_test, 8, 1))
    best = e_a if e_a.mean() < e_mc.mean() else e_mc
    diff = e_sel - best
    assert diff.mean() <= 2 * diff.std() / math.sqrt(diff.numel())


def test_prior_limits_amortized_and_kernel_shap(members, splits):
    x_cal, hq_cal, x_test, _ = splits
    x = x_test[:100]
    A = amortized_mean(members, x)
    # a huge rho: A(x) itself (A is efficient, so its projection is A)
    huge = SelectiveExplainer(members, coverage=0.0, n_fallback_samples=8, combine="prior",
                              rho_grid=(1e12,)).calibrate(x_cal, hq_cal)  # fmt: skip
    out = huge.attribute(x, seed=2)
    assert out.refined.all() and torch.equal(out.rho, torch.full((100,), 1e12, dtype=F64))
    torch.testing.assert_close(out.attributions, A, rtol=0, atol=1e-5)
    gap = (model(x) - model(torch.zeros(1, D))).to(F64)
    torch.testing.assert_close(out.attributions.sum(1), gap, rtol=0, atol=1e-5)
    # rho = 0 with n >= d coalitions: KernelShap(n)'s own estimate, not A
    zero = SelectiveExplainer(members, coverage=0.0, n_fallback_samples=16, combine="prior",
                              rho_grid=(0.0,)).calibrate(x_cal, hq_cal)  # fmt: skip
    got = zero.attribute(x, seed=2).attributions
    torch.testing.assert_close(got, mc(KernelShap(model), x, 16, 2), rtol=0, atol=1e-5)
    assert (got - A).abs().max() > 1e-2


def test_prior_evaluates_the_fallback_game_once(members, splits):
    # calibration over a whole grid costs the model rows of one KernelShap call
    x_cal, hq_cal, _, _ = splits
    rows = {"n": 0}

    def counted(x):
        rows["n"] += x.shape[0]
        return model(x)

    for combine in ("lam", "prior"):
        rows["n"] = 0
        sel = SelectiveExplainer(members, fallback=KernelShap(counted), coverage=0.0,
                                 n_fallback_samples=8, combine=combine)  # fmt: skip
        sel.calibrate(x_cal[:50], hq_cal[:50])
        calibrated = rows["n"]
        rows["n"] = 0
        KernelShap(counted).attribute(x_cal[:50], n_samples=8, seed=0)
        assert calibrated == rows["n"] > 0, combine


def test_prior_determinism_under_seed(members, splits):
    x_cal, hq_cal, x_test, _ = splits
    kw = {"coverage": 0.5, "n_fallback_samples": 8, "combine": "prior"}
    sel = SelectiveExplainer(members, **kw).calibrate(x_cal, hq_cal)
    a, b = sel.attribute(x_test, seed=5), sel.attribute(x_test, seed=5)
    assert same(a, b)
    c = sel.attribute(x_test, seed=6)
    assert not torch.equal(a.attributions, c.attributions)
    again = SelectiveExplainer(members, **kw).calibrate(x_cal, hq_cal)
    assert torch.equal(sel.rhos, again.rhos) and same(a, again.attribute(x_test, seed=5))


def test_prior_errors(members):
    with pytest.raises(ValueError, match="combine: 'prior' shrinks KernelShap's regression"):
        SelectiveExplainer(members, fallback=ShapleyValueSampling(model), combine="prior")
    with pytest.raises(ValueError, match="combine: expected one of"):
        SelectiveExplainer(members, combine="mean")
    with pytest.raises(ValueError, match="rho_grid: expected finite numbers >= 0"):
        SelectiveExplainer(members, combine="prior", rho_grid=(0.0, -1.0))
    with pytest.raises(ValueError, match="rho_grid: expected finite numbers >= 0"):
        SelectiveExplainer(members, combine="prior", rho_grid=(math.nan,))
    with pytest.raises(ValueError, match="rho_grid: expected at least one"):
        SelectiveExplainer(members, combine="prior", rho_grid=())
    with pytest.raises(TypeError, match="rho_grid: expected a sequence"):
        SelectiveExplainer(members, combine="prior", rho_grid=1.0)  # type: ignore[arg-type]


# ------------------------------------------------------------------ efficiency
@pytest.mark.parametrize("name", list(FALLBACKS))
def test_efficiency_exact(members, splits, name):
    x_cal, hq_cal, x_test, _ = splits
    cls, n = FALLBACKS[name]
    sel = SelectiveExplainer(members, fallback=cls(model), n_fallback_samples=n, coverage=0.5)
    out = sel.calibrate(x_cal, hq_cal).attribute(x_test)
    assert 0 < int(out.refined.sum()) < 400
    gap = (model(x_test) - model(torch.zeros(1, D))).to(F64)
    torch.testing.assert_close(out.attributions.sum(1), gap, rtol=0, atol=1e-5)


# ------------------------------------------------------------------ learned uncertainty
def test_learned_uncertainty_ranks_the_amortized_error(members, splits):
    # trained on its own split; on held-out inputs the kept ones (low predicted error)
    # have a smaller amortized error than the refined ones (observed ratio 0.35)
    x_cal, hq_cal, x_test, hq_test = splits
    x_tr = data(600, 4)
    hq_tr = ExactShapley(model).attribute(x_tr)
    sel = SelectiveExplainer(members[0], uncertainty="learned", coverage=0.5,
                             n_fallback_samples=8)  # fmt: skip
    with pytest.raises(ValueError, match="fit_uncertainty: the 'learned' uncertainty needs"):
        sel.calibrate(x_cal, hq_cal)
    sel.fit_uncertainty(x_tr, hq_tr, epochs=60, seed=0)
    out = sel.calibrate(x_cal, hq_cal).attribute(x_test)
    err = ((members[0].attribute(x_test).to(F64) - hq_test.to(F64)) ** 2).mean(1)
    assert err[~out.refined].mean() < 0.6 * err[out.refined].mean()
    again = SelectiveExplainer(members[0], uncertainty="learned", coverage=0.5,
                               n_fallback_samples=8)  # fmt: skip
    again.fit_uncertainty(x_tr, hq_tr, epochs=60, seed=0)
    assert torch.equal(again.calibrate(x_cal, hq_cal).attribute(x_test).uncertainty,
                       out.uncertainty)  # fmt: skip


# ------------------------------------------------------------------ determinism
def test_determinism_under_seed(members, splits):
    x_cal, hq_cal, x_test, _ = splits
    sel = SelectiveExplainer(members, coverage=0.5, n_fallback_samples=8).calibrate(x_cal, hq_cal)
    a, b = sel.attribute(x_test, seed=5), sel.attribute(x_test, seed=5)
    assert same(a, b) and a.rho is None
    c = sel.attribute(x_test, seed=6)
    assert not torch.equal(a.attributions, c.attributions)
    assert torch.equal(a.attributions[~a.refined], c.attributions[~c.refined])
    rebuilt = train_ensemble(model, data(512, 0), k=4, **TRAIN)
    sel2 = SelectiveExplainer(rebuilt, coverage=0.5, n_fallback_samples=8).calibrate(x_cal, hq_cal)
    assert same(a, sel2.attribute(x_test, seed=5))
    assert torch.equal(sel.lams, sel2.lams)


def test_per_feature_layout_and_feature_groups():
    mask = torch.tensor([0, 0, 1, 1, 2, 2])
    x = data(64, 7)
    ens = train_ensemble(model, x, k=2, seeds=[3, 9], feature_mask=mask, **TRAIN)
    assert [m.seed for m in ens] == [3, 9]
    hq = ExactShapley(model).attribute(x, feature_mask=mask)
    sel = SelectiveExplainer(ens, coverage=0.5, n_fallback_samples=4).calibrate(x, hq)
    out = sel.attribute(x[:8])
    per = sel.attribute(x[:8], return_input_shape=False).attributions
    assert out.attributions.shape == (8, D) and per.shape == (8, 3)
    torch.testing.assert_close(out.attributions, per[:, mask], rtol=0, atol=0)
    mean = torch.stack([m.attribute(x[:8], return_input_shape=False).to(F64) for m in ens])
    mean = mean.mean(0)
    kept = ~out.refined
    assert 0 < int(kept.sum()) < 8
    torch.testing.assert_close(per[kept], mean[kept], rtol=0, atol=0)
    gap = (model(x[:8]) - model(torch.zeros(1, D))).to(F64)
    torch.testing.assert_close(per.sum(1), gap, rtol=0, atol=1e-5)


# ------------------------------------------------------------------ errors
def test_errors(members, splits):
    x_cal, hq_cal, _, _ = splits
    with pytest.raises(ValueError, match=r"coverage: expected a float in \[0, 1\], got 1.5"):
        SelectiveExplainer(members, coverage=1.5)
    with pytest.raises(ValueError, match="coverage: expected a float in"):
        SelectiveExplainer(members, coverage=-0.1)
    with pytest.raises(TypeError, match="fallback: expected a perturbation explainer with"):
        SelectiveExplainer(members, fallback=Occlusion(model))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="amortized: the 'ensemble' uncertainty needs at least 2"):
        SelectiveExplainer(members[0])
    with pytest.raises(ValueError, match="uncertainty: expected one of"):
        SelectiveExplainer(members, uncertainty="dropout")
    other = AmortizedExplainer(model, input_shape=(D,), hidden=(4,),
                               feature_mask=torch.tensor([0, 0, 1, 1, 2, 2]))  # fmt: skip
    other.fit(data(32, 0), epochs=1, show_progress=False)
    with pytest.raises(ValueError, match="amortized: member 1 predicts d = 3 features, member 0"):
        SelectiveExplainer([members[0], other])
    untrained = AmortizedExplainer(model, input_shape=(D,), hidden=(4,))
    with pytest.raises(ValueError, match="amortized: member 1 is not trained"):
        SelectiveExplainer([members[0], untrained])
    shifted = AmortizedExplainer(model, input_shape=(D,), hidden=(4,))
    shifted.fit(data(32, 0), baselines=1.0, epochs=1, show_progress=False)
    with pytest.raises(ValueError, match="amortized: member 1 explains another game"):
        SelectiveExplainer([members[0], shifted])
    sel = SelectiveExplainer(members, coverage=0.5)
    with pytest.raises(ValueError, match="attribute: the explainer is not calibrated"):
        sel.attribute(x_cal)
    with pytest.raises(ValueError, match=r"x_cal: expected \[B, 6\]"):
        sel.calibrate(x_cal[:, :5], hq_cal[:, :5])
    with pytest.raises(ValueError, match="hq_cal: expected attributions shaped like the inputs"):
        sel.calibrate(x_cal, hq_cal[:10])
    with pytest.raises(ValueError, match="fit_uncertainty: only for uncertainty='learned'"):
        sel.fit_uncertainty(x_cal, hq_cal)
    learned = SelectiveExplainer(members, uncertainty="learned")
    with pytest.raises(TypeError, match="hidden: expected a tuple of positive ints"):
        learned.fit_uncertainty(x_cal, hq_cal, hidden=8)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hq_train: expected attributions shaped like"):
        learned.fit_uncertainty(x_cal, hq_cal[:, :3])
    sel.calibrate(x_cal, hq_cal)
    with pytest.raises(ValueError, match=r"inputs: expected \[B, 6\]"):
        sel.attribute(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="inputs: the amortized explainer explains one input"):
        sel.attribute((x_cal,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x_cal: no calibration input has s"):
        SelectiveExplainer(members, coverage=0.9).calibrate(x_cal[:3], hq_cal[:3])
    with pytest.raises(ValueError, match="k: an ensemble needs at least 2 members"):
        train_ensemble(model, data(32, 0), k=1, input_shape=(D,))
    with pytest.raises(ValueError, match="seeds: expected 2 seeds"):
        train_ensemble(model, data(32, 0), k=2, seeds=[1], input_shape=(D,))
    with pytest.raises(TypeError, match=r"train_ensemble: unknown argument\(s\) \['hiden'\]"):
        train_ensemble(model, data(32, 0), k=2, input_shape=(D,), hiden=(4,))


def test_per_example_classes_with_a_class_head():
    # a [C, d] head: target= one class per example; the fallback explains the refined
    # inputs' own classes
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    f = lambda x: net(x.to(F32))  # noqa: E731
    x = data(64, 8)
    ens = train_ensemble(f, x, k=2, n_classes=3, **TRAIN)
    target = [i % 3 for i in range(64)]
    hq = ExactShapley(f).attribute(x, target=target)
    sel = SelectiveExplainer(ens, coverage=0.5, n_fallback_samples=8)
    sel.calibrate(x, hq, target=target)
    t = [2 - i % 3 for i in range(16)]
    out = sel.attribute(x[:16], target=t, seed=2)
    r = out.refined
    assert 0 < int(r.sum()) < 16
    A = torch.stack([m.attribute(x[:16], target=t).to(F64) for m in ens]).mean(0)
    t_r = [c for c, k in zip(t, r.tolist()) if k]
    MC = KernelShap(f).attribute(x[:16][r], target=t_r, n_samples=8, seed=2)
    lam = out.lam[r].unsqueeze(1)
    expected = lam * A[r] + (1 - lam) * MC.to(F64)
    torch.testing.assert_close(out.attributions[r], expected, rtol=0, atol=1e-12)
    assert torch.equal(out.attributions[~r], A[~r])
    with pytest.raises(ValueError, match="target: the selective explainer explains one output"):
        sel.attribute(x[:4], target="all")
