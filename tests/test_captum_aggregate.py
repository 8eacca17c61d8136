"""Captum's aggregate mode (a model that returns one value, or one row, for the whole
batch) and models that return ``torch.futures.Future`` (``attribute_future``), in the
perturbation explainers: exact equivalences, parity with Captum, the errors Captum
raises (AssertionError) and the cost (one model call of B rows per coalition)."""

from __future__ import annotations

import warnings

import pytest
import torch

import xattr

ca = pytest.importorskip("captum.attr")

NAMES = ["FeatureAblation", "ShapleyValueSampling", "ShapleyValues", "KernelShap", "Lime"]
KW = {"ShapleyValueSampling": {"n_samples": 6}, "KernelShap": {"n_samples": 30}}
KW["Lime"] = {"n_samples": 30}
SEEDED = {"ShapleyValueSampling", "KernelShap", "Lime"}


def _net() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)
    ).double()


X = torch.tensor([[2.0, 1.0, 3.0], [-1.0, 0.5, 0.25], [0.5, -2.0, 1.0]], dtype=torch.float64)
MASK = torch.tensor([[0, 0, 1]])


def _kw(name: str) -> dict:
    kw = dict(KW.get(name, {}), feature_mask=MASK)
    if name in SEEDED:
        kw["seed"] = 7
    return kw


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("form", ["0d", "float", "1d", "row"])
def test_aggregate_is_the_game_of_the_batch_as_one_example(name: str, form: str) -> None:
    # Aggregate mode is exactly the explanation of one example made of the whole batch
    # (its feature mask repeated per example) under the model f'(x') = f(x' as a batch):
    # the same game, the same draws, so equal attributions (to float64 rounding)
    net = _net()
    agg = {
        "0d": lambda x: net(x).sum(),
        "float": lambda x: float(net(x).sum()),
        "1d": lambda x: net(x).sum().reshape(1),
        "row": lambda x: net(x)[:, :1].sum(0, keepdim=True),  # one row [1, 1]
    }[form]
    B, F = X.shape

    def one(x: torch.Tensor) -> torch.Tensor:  # [n, B * F] -> [n]
        outs = [torch.as_tensor(agg(r.reshape(B, F)), dtype=torch.float64) for r in x]
        return torch.stack([o.reshape(()) for o in outs])

    got = getattr(xattr, name)(agg).attribute(X, **_kw(name))
    kw = _kw(name)
    kw["feature_mask"] = MASK.repeat(1, B)
    want = getattr(xattr, name)(one).attribute(X.reshape(1, B * F), **kw)
    # Captum's layouts: the output's shape for the Shapley classes ([1, 1] -> [1, 1, F]),
    # its number of elements for the others ([1, F])
    shaped = form == "row" and name in ("ShapleyValueSampling", "ShapleyValues")
    assert got.shape == ((1, 1, F) if shaped else (1, F))
    got = got.reshape(1, F)
    torch.testing.assert_close(got.double(), want[:, :F].double(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["FeatureAblation", "ShapleyValues"])
def test_aggregate_matches_captum(name: str) -> None:
    # deterministic methods: Captum's values and shapes, scalar and several outputs
    net = _net()
    forms = [
        lambda x: net(x).sum(),
        lambda x: float(net(x).sum()),
        lambda x: net(x).sum(0),  # [2] for the batch: two outputs
        lambda x: net(x).sum(0, keepdim=True),  # [1, 2]
    ]
    for f in forms:
        ours = getattr(xattr, name)(f).attribute(X, feature_mask=MASK)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = getattr(ca, name)(f).attribute(X, feature_mask=MASK)
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours.double(), theirs.double(), rtol=1e-6, atol=1e-6)


def test_aggregate_target_selects_in_the_batch_output() -> None:
    # a [1, K] output with target k: Captum selects column k of the batch's row
    net = _net()
    f = lambda x: net(x).sum(0, keepdim=True)  # noqa: E731
    ours = xattr.FeatureAblation(f).attribute(X, target=1, feature_mask=MASK)
    theirs = ca.FeatureAblation(f).attribute(X, target=1, feature_mask=MASK)
    torch.testing.assert_close(ours.double(), theirs.double())
    with pytest.raises(ValueError, match="per-example targets"):
        xattr.FeatureAblation(f).attribute(X, target=[0, 1, 0], feature_mask=MASK)


def test_aggregate_costs_one_call_of_b_rows_per_coalition() -> None:
    # FeatureAblation over d features: d + 1 coalitions, each one model call of the B
    # rows, plus the first call (rows of several coalitions) that revealed the mode
    net = _net()
    rows = []

    def f(x: torch.Tensor) -> torch.Tensor:
        rows.append(x.shape[0])
        return net(x).sum()

    xattr.FeatureAblation(f).attribute(X)
    d, B = X.shape[1], X.shape[0]
    assert rows[0] > B and rows[1:] == [B] * (d + 1)


def test_aggregate_of_one_example_matches_captum() -> None:
    # B = 1: one row cannot tell one value per row from one per batch, so the first call
    # holds several coalitions (and reveals aggregate mode), as before
    net = _net()
    for f in (lambda x: net(x).sum(), lambda x: float(net(x).sum()), lambda x: net(x).sum(0)):
        ours = xattr.FeatureAblation(f).attribute(X[:1], feature_mask=MASK)
        theirs = ca.FeatureAblation(f).attribute(X[:1], feature_mask=MASK)
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours.double(), theirs.double(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["FeatureAblation", "ShapleyValueSampling"])
def test_aggregate_refuses_perturbations_per_eval_above_one(name: str) -> None:
    net = _net()
    with pytest.raises(AssertionError, match="perturbations_per_eval"):
        getattr(xattr, name)(lambda x: net(x).sum()).attribute(X, perturbations_per_eval=2)
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        getattr(xattr, name)(lambda x: net(x).sum()).attribute(X, perturbations_per_eval=2)


def test_aggregate_needs_one_mask_for_the_batch() -> None:
    net = _net()
    per_example = torch.tensor([[0, 0, 1], [0, 1, 1], [0, 0, 1]])
    with pytest.raises(AssertionError, match="feature_mask"):
        xattr.FeatureAblation(lambda x: net(x).sum()).attribute(X, feature_mask=per_example)


def _future_model(net: torch.nn.Module):
    def f(x: torch.Tensor) -> torch.futures.Future:
        fut: torch.futures.Future = torch.futures.Future()
        fut.set_result(net(x)[:, 0])
        return fut

    return f


@pytest.mark.parametrize("name", ["FeatureAblation", "ShapleyValueSampling", "ShapleyValues"])
def test_attribute_future_equals_attribute(name: str) -> None:
    net = _net()
    kw = {"seed": 5} if name in SEEDED else {}
    fut = getattr(xattr, name)(_future_model(net)).attribute_future(X, **kw)
    assert type(fut) is torch.Future  # the C++ future, as Captum's (its tests check)
    want = getattr(xattr, name)(lambda x: net(x)[:, 0]).attribute(X, **kw)
    torch.testing.assert_close(fut.wait(), want, rtol=0, atol=0)


def test_attribute_future_matches_captum() -> None:
    net = _net()
    ours = xattr.FeatureAblation(_future_model(net)).attribute_future(X).wait()
    theirs = ca.FeatureAblation(_future_model(net)).attribute_future(X).wait()
    torch.testing.assert_close(ours, theirs)


def test_future_misuse_is_an_assertion_error_as_in_captum() -> None:
    net = _net()
    with pytest.raises(AssertionError, match="attribute_future"):
        xattr.FeatureAblation(_future_model(net)).attribute(X)
    with pytest.raises(TypeError, match="Future"):
        xattr.FeatureAblation(lambda x: net(x)[:, 0]).attribute_future(X)
    with pytest.raises(AssertionError):
        xattr.ShapleyValueSampling(lambda x: net(x)[:, 0]).attribute_future(X)


@pytest.mark.parametrize("name", ["KernelShap", "Lime", "Occlusion", "Saliency"])
def test_attribute_future_not_implemented_elsewhere(name: str) -> None:
    with pytest.raises(NotImplementedError, match="attribute_future"):
        getattr(xattr, name)(lambda x: x.sum(1)).attribute_future(X)


@pytest.mark.parametrize(
    "name", ["FeatureAblation", "KernelShap", "Lime", "ShapleyValueSampling", "ShapleyValues"]
)
def test_progress_bars_are_labelled_as_captums(name: str, capsys) -> None:
    # Captum's tests (and users' logs) look for "<Name In Words> attribution: 100%"
    getattr(xattr, name)(lambda x: x.sum(1)).attribute(X, show_progress=True)
    words = getattr(ca, name).get_name()
    assert xattr.EXPLAINERS[name].cls.get_name() == words
    assert f"{words} attribution: 100%" in capsys.readouterr().err
