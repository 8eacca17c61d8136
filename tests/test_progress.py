"""Progress bars: one bar per public call, counting the model rows it evaluates.

Every check reads what tqdm wrote to stderr (the bar's label, final count and total)
and compares the count with the rows a counting model saw. The clock that decides
whether a bar appears (show_progress=None) is replaced by a fake one: no test depends
on how fast this machine is.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import xattr
from xattr._core import progress
from xattr.metrics import deletion_curve, infidelity, sensitivity_max
from xattr.smoothing import MuS, certify
from xattr.smoothing.explain import explain_and_certify, min_stable_fraction

pytest.importorskip("tqdm")


class Counting(nn.Module):
    """A real model (Linear -> ReLU -> Linear) that counts the rows it is called on."""

    def __init__(self, d: int = 6, k: int = 3, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Linear(8, k))
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return self.net(x)


class FakeClock:
    """progress.clock's stand-in: every reading advances ``step`` seconds."""

    def __init__(self, step: float):
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def bars(err: str) -> list[tuple[str, int, int | None]]:
    """(label, final count, total) of every bar left on screen: each ends with a
    newline, its last carriage-return segment is its final state."""
    found = []
    for line in err.split("\n"):
        final = line.split("\r")[-1].strip()
        if not final:
            continue
        with_total = re.match(r"(.*?): +\d+%\|.*\| (\d+)/(\d+) \[", final)
        if with_total:
            found.append((with_total[1], int(with_total[2]), int(with_total[3])))
            continue
        without = re.match(r"(.*?): (\d+)\w+ \[", final)
        assert without, f"not a bar: {final!r}"
        found.append((without[1], int(without[2]), None))
    return found


def one_bar(capsys) -> tuple[str, int, int | None]:
    found = bars(capsys.readouterr().err)
    assert len(found) == 1, found
    return found[0]


X = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))


def _kernel_shap(m):
    xattr.KernelShap(m).attribute(X, target=0, n_samples=30, seed=0, show_progress=True)


def _feature_ablation(m):
    # per-example feature masks of two groups: several game calls
    xattr.FeatureAblation(m).attribute(X, target=1, perturbations_per_eval=2, show_progress=True)


def _integrated_gradients(m):
    # several forward batches, and the convergence delta's two extra evaluations
    xattr.IntegratedGradients(m).attribute(
        X, target=0, n_steps=9, internal_batch_size=7, return_convergence_delta=True,
        show_progress=True,
    )  # fmt: skip


def _deep_lift(m):
    xattr.DeepLift(m).attribute(X, baselines=X.mean(0, keepdim=True), target=2, show_progress=True)


def _deletion_curve(m):
    attr = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    deletion_curve(m, X, attr, target=0, n_steps=4, show_progress=True)


def _infidelity(m):
    torch.manual_seed(3)

    def perturb(x):
        noise = 0.1 * torch.randn_like(x)
        return noise, x - noise

    infidelity(m, perturb, X, X.clone(), target=0, n_perturb_samples=7, show_progress=True)


def _certify(m):
    g = MuS(m, 0.5, q=8, output="logits")
    certify(g, X, torch.ones(6, dtype=torch.bool), show_progress=True)


def _min_stable_fraction(m):
    # nested: MuS -> FeatureAblation of g -> g's games on the base model
    g = MuS(m, 0.5, q=8, output="logits")
    min_stable_fraction(g, xattr.FeatureAblation(g), X, r=0, show_progress=True)


METHODS = {
    "KernelShap": (_kernel_shap, "Kernel Shap attribution"),
    "FeatureAblation": (_feature_ablation, "Feature Ablation attribution"),
    "IntegratedGradients": (_integrated_gradients, "Integrated Gradients attribution"),
    "DeepLift": (_deep_lift, "Deep Lift attribution"),
    "deletion_curve": (_deletion_curve, "deletion_curve"),
    "infidelity": (_infidelity, "infidelity"),
    "MuS certify": (_certify, "MuS certify"),
    "min_stable_fraction": (_min_stable_fraction, "MuS min_stable_fraction"),
}


@pytest.mark.parametrize("name", list(METHODS))
def test_one_bar_counts_every_model_row(name: str, capsys) -> None:
    run, label = METHODS[name]
    model = Counting().eval()
    run(model)
    assert model.rows > 0
    # one bar, labelled for the call, whose count and total are the model's rows
    assert one_bar(capsys) == (label, model.rows, model.rows)


MORE = {
    "Lime": lambda m: xattr.Lime(m).attribute(X, target=0, n_samples=12, show_progress=True),
    "ShapleyValueSampling": lambda m: xattr.ShapleyValueSampling(m).attribute(
        X, target=0, n_samples=3, seed=0, show_progress=True
    ),
    "Occlusion": lambda m: xattr.Occlusion(m).attribute(
        X, sliding_window_shapes=(2,), target=0, show_progress=True
    ),
    "Saliency": lambda m: xattr.Saliency(m).attribute(X, target=0, show_progress=True),
    "LayerIntegratedGradients": lambda m: xattr.LayerIntegratedGradients(m, m.net[0]).attribute(
        X, target=0, n_steps=5, show_progress=True
    ),
    "DeepLiftShap": lambda m: xattr.DeepLiftShap(m).attribute(
        X, baselines=torch.zeros(3, 6), target=0, show_progress=True
    ),
    "NoiseTunnel": lambda m: xattr.NoiseTunnel(xattr.IntegratedGradients(m)).attribute(
        X, nt_samples=3, nt_samples_batch_size=1, target=0, n_steps=4, show_progress=True
    ),
}


@pytest.mark.parametrize("name", list(MORE))
def test_other_explainers_count_their_rows_in_one_bar(name: str, capsys) -> None:
    model = Counting().eval()
    MORE[name](model)
    label, n, total = one_bar(capsys)
    assert (n, total) == (model.rows, model.rows) and model.rows > 0
    assert label.endswith("attribution")


def test_explainer_of_a_smoothed_model_counts_the_base_model_rows(capsys) -> None:
    # g's rows are q rows of h each: the bar counts h's, the innermost model's
    model = Counting().eval()
    g = MuS(model, 0.25, q=16, output="logits")
    xattr.KernelShap(g).attribute(X[:2], n_samples=10, seed=0, target=0, show_progress=True)
    assert one_bar(capsys) == ("Kernel Shap attribution", model.rows, model.rows)
    assert model.rows == 2 * (10 + 2) * 16


def test_nested_metric_and_explainer_share_one_bar(capsys) -> None:
    model = Counting().eval()
    explain = xattr.IntegratedGradients(model).attribute
    sensitivity_max(explain, X, target=0, n_steps=5, n_perturb_samples=3, show_progress=True)
    # the explainer's calls (one per perturbation chunk) count in the metric's bar,
    # whose total is the sum of what they announced
    assert one_bar(capsys) == ("sensitivity_max", model.rows, model.rows)


def test_explain_and_certify_is_one_bar(capsys) -> None:
    model = Counting().eval()
    # probabilities: Saliency takes gradients through g's masked copies of x
    g = MuS(model, 0.5, q=8, output="logits", voting=False)
    explain_and_certify(g, xattr.Saliency(g), X, show_progress=True)
    assert one_bar(capsys) == ("MuS explain_and_certify", model.rows, model.rows)


def test_default_prints_nothing_for_a_fast_call(capfd, monkeypatch) -> None:
    monkeypatch.setattr(progress, "clock", FakeClock(0.0))  # no time passes
    model = Counting().eval()
    xattr.KernelShap(model).attribute(X, target=0, n_samples=200, seed=0)
    g = MuS(model, 0.5, q=8, output="logits")
    min_stable_fraction(g, xattr.FeatureAblation(g), X, r=0)
    assert model.rows > 500
    assert capfd.readouterr().err == ""


def test_default_shows_a_bar_for_a_slow_call(capsys, monkeypatch) -> None:
    monkeypatch.setattr(progress, "clock", FakeClock(10.0))  # every reading: 10 s later
    model = Counting().eval()
    xattr.KernelShap(model).attribute(X, target=0, n_samples=30, seed=0)
    assert one_bar(capsys) == ("Kernel Shap attribution", model.rows, model.rows)


def test_false_never_prints(capfd, monkeypatch) -> None:
    monkeypatch.setattr(progress, "clock", FakeClock(10.0))
    model = Counting().eval()
    xattr.KernelShap(model).attribute(X, target=0, n_samples=30, seed=0, show_progress=False)
    g = MuS(model, 0.5, q=8, output="logits", show_progress=False)
    certify(g, X)
    assert capfd.readouterr().err == ""


def _bar_after(monkeypatch, total: int | None, steps: list[tuple[float, int]]) -> bool:
    """Whether a show_progress=None bar of ``total`` rows is shown after ``steps``
    (time of the update, rows done)."""
    now = [0.0]
    monkeypatch.setattr(progress, "clock", lambda: now[0])
    with progress.row_progress(total, None, "t") as bar:
        for t, rows in steps:
            now[0] = t
            progress.count_rows(rows)
        return bar.shown


def test_the_decision_projects_the_time_from_the_rows_done(monkeypatch, capsys) -> None:
    # 10 of 100 rows after 0.6 s: about 6 s in all -> shown
    assert _bar_after(monkeypatch, 100, [(0.6, 10)])
    # half after 0.6 s, all after 1.2 s: about 1.2 s -> never shown
    assert not _bar_after(monkeypatch, 100, [(0.6, 50), (1.2, 50)])
    # 1 % after 0.1 s: too early to project from (first calls warm up)
    assert not _bar_after(monkeypatch, 100, [(0.1, 1)])
    # no total: shown once it has run 2 s
    assert not _bar_after(monkeypatch, None, [(1.0, 5)])
    assert _bar_after(monkeypatch, None, [(1.0, 5), (2.5, 5)])
    capsys.readouterr()


def test_a_search_that_stops_early_ends_at_its_rows(capsys) -> None:
    # an upper bound of 10 rows, 4 done: the finished bar says 4/4
    with progress.row_progress(None, True, "search"):
        with progress.row_progress(10, True, "inner"):
            with progress.model_rows(4):
                pass
    assert one_bar(capsys) == ("search", 4, 4)


def test_a_failed_call_closes_its_bar(capsys) -> None:
    def broken(x):
        raise RuntimeError("model broke")

    with pytest.raises(RuntimeError, match="model broke"):
        xattr.KernelShap(broken).attribute(X, n_samples=10, seed=0, show_progress=True)
    capsys.readouterr()
    model = Counting().eval()
    xattr.Saliency(model).attribute(X, target=0, show_progress=True)  # a bar of its own
    assert one_bar(capsys) == ("Saliency attribution", 4, 4)


@pytest.mark.parametrize("bad", ["yes", 1, 0])
def test_show_progress_must_be_none_or_a_bool(bad) -> None:
    with pytest.raises(TypeError, match="show_progress: expected None, True or False"):
        xattr.KernelShap(Counting()).attribute(X, n_samples=10, show_progress=bad)
    with pytest.raises(TypeError, match="show_progress"):
        MuS(Counting(), 0.5, q=8, output="logits", show_progress=bad)


def test_warnings_still_point_at_the_callers_line() -> None:
    # the bar's wrapper frame is skipped: a model left in training mode is reported
    # at the line that called the explainer, as before
    model = nn.Sequential(nn.Linear(6, 4), nn.Dropout(0.5), nn.Linear(4, 2))  # training
    with pytest.warns(UserWarning, match="training mode") as caught:
        xattr.FeatureAblation(model).attribute(X, target=0)
    assert [w.filename for w in caught] == [__file__]
    assert progress.warn_level(3) == 3  # no wrapper between here and pytest
