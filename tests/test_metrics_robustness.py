"""xattr.metrics.robustness: infidelity and sensitivity_max.

Closed forms (an exact explanation has infidelity 0 under the perturbations it is
exact for; a gradient that does not move has sensitivity 0), parity with
captum.metrics for the same random draws (torch's global generator seeded alike
before each call, with and without chunking), batching of the model calls,
determinism and argument errors.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests._helpers import F64, cnn, mlp, randn
from xattr import Saliency
from xattr.metrics.robustness import (
    default_perturb_func,
    infidelity,
    infidelity_perturb_func_decorator,
    sensitivity_max,
)

# Captum's gradient methods warn that they set requires_grad on our inputs; both
# libraries warn about a max_examples_per_batch below the batch size.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Input Tensor .* did not already require"),
    pytest.mark.filterwarnings("ignore:`max_examples_per_batch` must be"),
]


def _captum_metrics():
    return pytest.importorskip("captum.metrics")


W = torch.tensor([1.5, -2.0, 0.5, 3.0, -1.0], dtype=F64)
X = randn(6, 5, seed=1)
B_BASE = randn(6, 5, seed=2)


def linear(x: torch.Tensor) -> torch.Tensor:
    return x @ W


class TwoInputs(nn.Module):
    """f(x1, x2, scale) = mlp(cat(x1, x2)) * scale: two inputs and a per-example argument."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(7, 6), nn.Tanh(), nn.Linear(6, 3)).to(F64)
        self.eval()

    def forward(self, x1, x2, scale):
        return self.net(torch.cat([x1, x2.flatten(1)], 1)) * scale


def noise_perturb(x):
    """Local perturbations I ~ N(0, 0.1^2): (I, x - I); draws from the global generator."""
    if isinstance(x, tuple):
        noise = tuple(0.1 * torch.randn_like(t) for t in x)
        return noise, tuple(t - n for t, n in zip(x, noise))
    noise = 0.1 * torch.randn_like(x)
    return noise, x - noise


@infidelity_perturb_func_decorator(True)
def subset_perturb(x, baselines=None):
    """Global perturbations: a random subset of features set to the baseline (0 when none)."""
    keep = torch.rand(x.shape, dtype=x.dtype) < 0.5
    base = torch.zeros_like(x) if baselines is None else torch.as_tensor(baselines).to(x)
    return torch.where(keep, x, base)


@infidelity_perturb_func_decorator(False)
def local_perturb(x):
    return x - 0.3 * torch.randn_like(x)


def _both(ours, theirs, seed, *args, **kwargs):
    """The two functions on the same arguments after seeding the global generator alike."""
    torch.manual_seed(seed)
    a = ours(*args, **kwargs)
    torch.manual_seed(seed)
    b = theirs(*args, **kwargs)
    return a, b


# ------------------------------------------------------------------ closed forms
def test_global_attributions_of_a_linear_model_have_infidelity_0_under_subsets():
    # f(x) - f(x with S at 0) = sum_{i in S} w_i x_i = I . (w * x) with I = 1_S
    values = infidelity(linear, subset_perturb, X, W * X, n_perturb_samples=20)
    assert values.shape == (6,)
    assert values.abs().max() < 1e-24
    # with baselines: attributions w * (x - b) are exact for subsets set to b
    values = infidelity(linear, subset_perturb, X, W * (X - B_BASE), baselines=B_BASE)
    assert values.abs().max() < 1e-24
    # the gradient alone is not a global explanation: its infidelity is positive
    assert (infidelity(linear, subset_perturb, X, W.expand(6, 5)) > 1e-3).all()


def test_local_attributions_of_a_linear_model_have_infidelity_0_under_noise():
    values = infidelity(linear, local_perturb, X, W.expand(6, 5), n_perturb_samples=30)
    assert values.abs().max() < 1e-24
    values = infidelity(linear, noise_perturb, X, W.expand(6, 5), max_examples_per_batch=12)
    assert values.abs().max() < 1e-24


def test_infidelity_closed_form_for_scaled_attributions():
    # I = 1 for every draw: (c w . 1 - w . 1)^2 = (c - 1)^2 (sum w)^2 for every example
    def ones(x):
        return torch.ones_like(x), x - 1

    for c in (0.0, 0.5, 3.0):
        values = infidelity(linear, ones, X, c * W.expand(6, 5), n_perturb_samples=3)
        expected = torch.full((6,), (c - 1) ** 2 * float(W.sum()) ** 2, dtype=F64)
        torch.testing.assert_close(values, expected)
    # normalize=True: the optimal scale 1/c makes any multiple of the gradient exact
    # (up to the cancellation in beta^2 E[a^2] - 2 beta E[ab] + E[b^2], with E[b^2] ~ 0.1)
    values = infidelity(linear, noise_perturb, X, 3.0 * W.expand(6, 5), normalize=True)
    assert values.abs().max() < 1e-14
    # and a non-multiple still is not
    assert (infidelity(linear, noise_perturb, X, X, normalize=True) > 1e-4).all()


def test_sensitivity_closed_forms():
    # Saliency of a linear model is constant: sensitivity 0
    model = nn.Linear(5, 2).to(F64).eval()
    values = sensitivity_max(Saliency(model).attribute, X, target=1, n_perturb_samples=5)
    torch.testing.assert_close(values, torch.zeros(6, dtype=F64))
    # explanation = input, perturbation x + r (every element): ||r 1|| / ||x||
    r = 0.25
    values = sensitivity_max(lambda x: x, X, lambda x, radius: x + radius, r, 4)
    torch.testing.assert_close(values, r * 5**0.5 / X.norm(dim=1))

    # an explanation of norm 0 counts as norm 1: e(x') = x' - x = r 1 gives ||r 1||
    def shift(x):
        return x - X.repeat_interleave(x.shape[0] // 6, dim=0)

    values = sensitivity_max(shift, X, lambda x: x + r, n_perturb_samples=3)
    torch.testing.assert_close(values, torch.full((6,), r * 5**0.5, dtype=F64))
    # other norms: L-inf of r 1 over the L-inf norm of x
    values = sensitivity_max(lambda x: x, X, lambda x: x + r, norm_ord=float("inf"))
    torch.testing.assert_close(values, r / X.abs().amax(dim=1))


def test_sensitivity_max_is_the_max_over_samples():
    # perturbation k * 0.1 on the k-th call: the largest draw wins, whatever the chunking
    calls = []

    def growing(x):
        calls.append(x.shape[0])
        return x + 0.1 * len(calls)

    values = sensitivity_max(lambda x: x, X, growing, n_perturb_samples=5, max_examples_per_batch=6)
    assert calls == [6] * 5
    torch.testing.assert_close(values, 0.5 * 5**0.5 / X.norm(dim=1))


# ------------------------------------------------------------------ Captum parity
@pytest.mark.parametrize("mepb", [None, 18, 6, 4, 1000])
@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_matches_captum_on_a_cnn(mepb, normalize):
    cm = _captum_metrics()
    model = cnn(2, 4, 6, 3)
    x = randn(5, 2, 6, 6, seed=3, dtype=torch.float32)
    attr = randn(5, 2, 6, 6, seed=4, dtype=torch.float32)
    kwargs = dict(
        target=[0, 2, 1, 1, 0],
        n_perturb_samples=7,
        max_examples_per_batch=mepb,
        normalize=normalize,
    )
    torch.manual_seed(10)
    if mepb == 4:  # below the batch size: one sample per example per call, with a warning
        with pytest.warns(UserWarning, match="max_examples_per_batch"):
            ours = infidelity(model, noise_perturb, x, attr, **kwargs)
    else:
        ours = infidelity(model, noise_perturb, x, attr, **kwargs)
    torch.manual_seed(10)
    theirs = cm.infidelity(model, noise_perturb, x, attr, **kwargs)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-9)
    assert ours.shape == (5,) and (ours > 0).all()


def test_infidelity_matches_captum_with_baselines_args_and_two_inputs():
    cm = _captum_metrics()
    model = TwoInputs()
    x1, x2 = randn(4, 3, seed=5), randn(4, 2, 2, seed=6)
    a1, a2 = randn(4, 3, seed=7), randn(4, 2, 2, seed=8)
    b1, b2 = randn(4, 3, seed=9), 0.5  # per-example tensor and a number
    scale = torch.tensor([[1.0], [2.0], [0.5], [-1.0]], dtype=F64)

    def subsets(inputs, baselines):  # each element kept with probability 1/2, else b
        return tuple(
            torch.where(torch.rand(x.shape, dtype=x.dtype) < 0.5, x, torch.as_tensor(b).to(x))
            for x, b in zip(inputs, baselines)
        )

    ours_perturb = infidelity_perturb_func_decorator(True)(subsets)
    captum_perturb = cm.infidelity_perturb_func_decorator(True)(subsets)

    for mepb in (None, 8):
        for target in (2, torch.tensor([0, 1, 2, 0])):
            common = dict(
                baselines=(b1, b2),
                additional_forward_args=scale,
                target=target,
                n_perturb_samples=9,
                max_examples_per_batch=mepb,
            )
            torch.manual_seed(11)
            ours = infidelity(model, ours_perturb, (x1, x2), (a1, a2), **common)
            torch.manual_seed(11)
            theirs = cm.infidelity(model, captum_perturb, (x1, x2), (a1, a2), **common)
            torch.testing.assert_close(ours, theirs)


# One row of X costs 40 bytes; a tiny budget gives forward calls of budget // (40 * 16)
# rows: several examples per call, one example per call, or slices of one example's rows,
# with perturb_func calls grouped or not. The draws stay Captum's.
@pytest.mark.parametrize(
    "mepb, budget", [(24, 640 * 5), (6, 640 * 7), (12, 640 * 2), (30, 1), (60, None)]
)
def test_infidelity_parity_survives_small_model_batches(mepb, budget):
    cm = _captum_metrics()
    model = mlp(5, 8, 3)
    attr = randn(6, 5, seed=12)
    seen = []

    def counted(x):
        seen.append(x.shape[0])
        return model(x)

    kwargs = dict(target=[0, 1, 2, 2, 1, 0], n_perturb_samples=10, max_examples_per_batch=mepb)
    torch.manual_seed(13)
    ours = infidelity(counted, noise_perturb, X, attr, memory_budget=budget, **kwargs)
    torch.manual_seed(13)
    theirs = cm.infidelity(model, noise_perturb, X, attr, **kwargs)
    torch.testing.assert_close(ours, theirs)
    if budget is not None:
        assert max(seen) <= max(1, budget // 640)


def test_infidelity_default_chunk_follows_the_budget():
    # With max_examples_per_batch=None the draws are Captum's single call when everything
    # fits, else Captum's with max_examples_per_batch = B * k (k samples that fit).
    cm = _captum_metrics()
    model = mlp(5, 8, 3)
    attr = randn(6, 5, seed=14)
    row = 5 * 8 * 4  # bytes of one perturbed row times the 4 copies held
    for budget, k in ((None, 10), (row * 6 * 3, 3), (row * 6 * 3 + row * 5, 3), (1, 1)):
        torch.manual_seed(15)
        ours = infidelity(model, noise_perturb, X, attr, target=1, memory_budget=budget)
        torch.manual_seed(15)
        theirs = cm.infidelity(
            model, noise_perturb, X, attr, target=1, max_examples_per_batch=6 * k
        )
        torch.testing.assert_close(ours, theirs)


def test_decorator_matches_captum():
    cm = _captum_metrics()
    x = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, -1.0]], dtype=F64)
    base = torch.tensor([[0.0, 1.0, 0.0]], dtype=F64)

    def halve(inputs, baselines=None):
        return inputs * 0.5 + (0 if baselines is None else 0.25 * baselines)

    for mbi in (True, False):
        for b in (None, base, 1.0):
            ours = infidelity_perturb_func_decorator(mbi)(halve)(x, b)
            theirs = cm.infidelity_perturb_func_decorator(mbi)(halve)(x, b)
            assert len(ours) == len(theirs) == 2
            for o, t in zip(ours, theirs):
                assert isinstance(o, tuple)
                torch.testing.assert_close(o, tuple(t), rtol=0, atol=0)
    # zero denominators divide by 1 (x == baseline): perturbation x - x'
    pert, _ = infidelity_perturb_func_decorator(True)(halve)(x)
    assert pert[0][0, 0] == 0 and pert[0][1, 1] == 0 and pert[0][0, 1] == 0.5


def test_default_perturb_func_matches_captum():
    sens = pytest.importorskip("captum.metrics._core.sensitivity")
    x = (randn(3, 4, seed=16), randn(3, 2, dtype=torch.float32, seed=17))
    ours, theirs = _both(default_perturb_func, sens.default_perturb_func, 18, x, 0.3)
    for o, t in zip(ours, theirs):
        torch.testing.assert_close(o, t, rtol=0, atol=0)
        assert o.dtype == t.dtype
    assert all((o - xi).abs().max() <= 0.3 + 1e-7 for o, xi in zip(ours, x))
    assert (ours[0] - x[0]).abs().max() > 0.2  # the noise fills the ball


@pytest.mark.parametrize("mepb", [None, 12, 25])
@pytest.mark.parametrize("norm_ord", ["fro", 1, float("inf")])
def test_sensitivity_max_matches_captum(mepb, norm_ord):
    cm = _captum_metrics()
    ca = pytest.importorskip("captum.attr")
    model = mlp(5, 8, 3)
    kwargs = dict(
        n_perturb_samples=8,
        norm_ord=norm_ord,
        max_examples_per_batch=mepb,
        target=[0, 1, 2, 0, 1, 2],
        perturb_radius=0.3,
    )
    ours, theirs = _both(
        sensitivity_max, cm.sensitivity_max, 19, ca.Saliency(model).attribute, X, **kwargs
    )
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert (ours > 0).all()
    # xattr's Saliency gives the same numbers
    torch.manual_seed(19)
    ours = sensitivity_max(Saliency(model).attribute, X, **kwargs)
    torch.testing.assert_close(ours, theirs)


def test_sensitivity_max_matches_captum_with_kwargs_and_custom_perturbations():
    cm = _captum_metrics()
    ca = pytest.importorskip("captum.attr")
    model = TwoInputs()
    x = (randn(4, 3, seed=20), randn(4, 2, 2, seed=21))
    baselines = (randn(4, 3, seed=22), randn(4, 2, 2, seed=23))
    scale = torch.tensor([[1.0], [2.0], [0.5], [-1.0]], dtype=F64)
    ig = ca.IntegratedGradients(model)

    def gaussian(inputs):  # one parameter: called without the radius
        return tuple(t + 0.05 * torch.randn_like(t) for t in inputs)

    for perturb, mepb in ((gaussian, None), (gaussian, 12), (default_perturb_func, 8)):
        kwargs = dict(
            baselines=baselines,
            additional_forward_args=scale,
            target=torch.tensor([0, 2, 1, 0]),
            n_steps=8,
            n_perturb_samples=5,
            max_examples_per_batch=mepb,
        )
        torch.manual_seed(24)
        ours = sensitivity_max(ig.attribute, x, perturb, **kwargs)
        torch.manual_seed(24)
        theirs = cm.sensitivity_max(ig.attribute, x, perturb, **kwargs)
        torch.testing.assert_close(ours, theirs)
        assert (ours > 0).all()


def test_sensitivity_default_chunk_follows_the_budget():
    cm = _captum_metrics()
    model = mlp(5, 8, 3)
    expl = Saliency(model).attribute
    row = 5 * 8 * 16  # bytes of one perturbed row times the activation factor
    for budget, k in ((None, 10), (row * 6 * 4, 4), (1, 1)):
        torch.manual_seed(25)
        ours = sensitivity_max(expl, X, target=0, memory_budget=budget)
        torch.manual_seed(25)
        theirs = cm.sensitivity_max(expl, X, target=0, max_examples_per_batch=6 * k)
        torch.testing.assert_close(ours, theirs)


# ------------------------------------------------------------------ batching, determinism
def test_infidelity_batches_the_model_calls():
    model = mlp(5, 8, 3)
    attr = randn(6, 5, seed=26)
    seen = []

    def counted(x):
        seen.append(x.shape[0])
        return model(x)

    torch.manual_seed(27)
    a = infidelity(counted, noise_perturb, X, attr, target=0, n_perturb_samples=50)
    assert seen == [6, 300]  # the inputs once, then every perturbed row at once
    # Captum-sized chunks of one sample per example still reach the model together
    seen.clear()
    torch.manual_seed(27)
    b = infidelity(
        counted, noise_perturb, X, attr, target=0, n_perturb_samples=50, max_examples_per_batch=6
    )
    assert seen == [6, 300]
    assert not torch.equal(a, b)  # other draws: Captum's for 50 calls of 6 rows


def test_results_are_deterministic_and_shown_progress_changes_nothing():
    model = mlp(5, 8, 3)
    attr = randn(6, 5, seed=28)
    runs = []
    for show in (False, True, False):
        torch.manual_seed(29)
        inf = infidelity(model, noise_perturb, X, attr, target=2, show_progress=show)
        torch.manual_seed(29)
        sens = sensitivity_max(Saliency(model).attribute, X, target=2, show_progress=show)
        runs.append((inf, sens))
    for inf, sens in runs[1:]:
        assert torch.equal(inf, runs[0][0]) and torch.equal(sens, runs[0][1])
    torch.manual_seed(30)
    other = infidelity(model, noise_perturb, X, attr, target=2)
    assert not torch.equal(other, runs[0][0])


def test_float32_inputs_and_attributions():
    model = cnn(2, 4, 6, 3)
    x = randn(3, 2, 6, 6, seed=31, dtype=torch.float32)
    values = infidelity(model, noise_perturb, x, torch.zeros_like(x), target=1)
    assert values.dtype == torch.float32 and values.shape == (3,)
    # attributions 0: infidelity = mean of (f(x) - f(x - I))^2, positive
    assert (values > 0).all()


# ------------------------------------------------------------------ errors
def test_infidelity_argument_errors():
    attr = W.expand(6, 5)
    with pytest.raises(TypeError, match="forward_func"):
        infidelity(None, noise_perturb, X, attr)
    with pytest.raises(TypeError, match="perturb_func"):
        infidelity(linear, "noise", X, attr)
    with pytest.raises(TypeError, match="inputs"):
        infidelity(linear, noise_perturb, X.tolist(), attr)
    with pytest.raises(ValueError, match="attributions"):
        infidelity(linear, noise_perturb, X, attr[:, :4])
    with pytest.raises(ValueError, match="attributions"):
        infidelity(linear, noise_perturb, X, (attr, attr))
    with pytest.raises(ValueError, match="baselines"):
        infidelity(linear, noise_perturb, X, attr, baselines=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="n_perturb_samples"):
        infidelity(linear, noise_perturb, X, attr, n_perturb_samples=0)
    with pytest.raises(TypeError, match="n_perturb_samples"):
        infidelity(linear, noise_perturb, X, attr, n_perturb_samples=2.0)
    with pytest.raises(ValueError, match="max_examples_per_batch"):
        infidelity(linear, noise_perturb, X, attr, max_examples_per_batch=0)
    with pytest.raises(TypeError, match="normalize"):
        infidelity(linear, noise_perturb, X, attr, normalize=1)
    with pytest.raises(ValueError, match="memory_budget"):
        infidelity(linear, noise_perturb, X, attr, memory_budget="lots")
    with pytest.raises(TypeError, match="show_progress"):
        infidelity(linear, noise_perturb, X, attr, show_progress="yes")
    with pytest.raises(ValueError, match="target"):
        infidelity(mlp(5, 8, 3), noise_perturb, X, attr, target="all")
    with pytest.raises(ValueError, match="target"):
        infidelity(mlp(5, 8, 3), noise_perturb, X, attr)  # 3 outputs, no target
    with pytest.raises(ValueError, match="forward_func"):
        infidelity(lambda x: linear(x)[:1], noise_perturb, X, attr)
    with pytest.raises(TypeError, match="perturb_func.*decorate"):
        infidelity(linear, lambda x: x + 1, X, attr)
    with pytest.raises(ValueError, match="perturb_func"):
        infidelity(linear, lambda x: (x[:, :2], x), X, attr)
    with pytest.raises(TypeError, match="multiply_by_inputs"):
        infidelity_perturb_func_decorator("yes")


def test_sensitivity_argument_errors():
    expl = Saliency(nn.Linear(5, 2).to(F64).eval()).attribute
    with pytest.raises(TypeError, match="explanation_func"):
        sensitivity_max(None, X)
    with pytest.raises(TypeError, match="perturb_func"):
        sensitivity_max(expl, X, perturb_func=3)
    with pytest.raises(ValueError, match="perturb_radius"):
        sensitivity_max(expl, X, perturb_radius=-0.1, target=0)
    with pytest.raises(ValueError, match="n_perturb_samples"):
        sensitivity_max(expl, X, n_perturb_samples=-1, target=0)
    with pytest.raises(ValueError, match="norm_ord"):
        sensitivity_max(expl, X, norm_ord="nuc", target=0)
    with pytest.raises(TypeError, match="norm_ord"):
        sensitivity_max(expl, X, norm_ord=None, target=0)
    with pytest.raises(ValueError, match="max_examples_per_batch"):
        sensitivity_max(expl, X, max_examples_per_batch=-6, target=0)
    with pytest.raises(ValueError, match="perturb_func"):
        sensitivity_max(expl, X, perturb_func=lambda x: x[:1], target=0)
    with pytest.raises(TypeError, match="explanation_func"):
        sensitivity_max(lambda x: x.tolist(), X)
    with pytest.raises(ValueError, match="explanation_func"):
        sensitivity_max(lambda x: x[:1], X)
    with pytest.raises(ValueError, match="explanation_func"):  # changes shape when perturbed
        sensitivity_max(lambda x: x if x.shape[0] == 6 else x[:, :2], X)
    with pytest.raises(TypeError, match="show_progress"):
        sensitivity_max(expl, X, show_progress=1, target=0)
