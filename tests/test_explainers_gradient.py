"""Gradient explainers: parity with Captum, exactness, targets, seeds and input checks.

Captum rounds its IG step weights (and Riemann nodes) to float32, so float64 answers are
compared at 1e-10 with a float64 re-implementation of Captum's algorithm, and with
Captum itself at a tolerance that covers that rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum import attr as ca
from torch import nn

from tests._helpers import EXACT, F64, cnn, gen, mlp, randn
from xattr import ops
from xattr.explainers.gradient_shap import GradientShap
from xattr.explainers.input_x_gradient import InputXGradient
from xattr.explainers.integrated_gradients import IntegratedGradients
from xattr.explainers.layer_integrated_gradients import LayerIntegratedGradients
from xattr.explainers.noise_tunnel import NoiseTunnel
from xattr.explainers.saliency import Saliency

METHODS = ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre"]

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor:UserWarning")


class TupleModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.a = torch.nn.Linear(4, 3)
        self.b = torch.nn.Linear(6, 3)

    def forward(self, x1, x2, scale, shift=0.0):
        return torch.tanh(self.a(x1) * scale + self.b(x2.flatten(1))) + shift


class EmbModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.emb = torch.nn.Embedding(20, 6)
        self.lin = torch.nn.Linear(6, 3)

    def forward(self, ids):
        return self.lin(torch.tanh(self.emb(ids)).mean(1))


def ref_ig(model, x, b, target, method, n, mult=True, args=()):
    """Captum's IG algorithm in float64 throughout (one example at a time)."""
    alphas, weights = ops.quadrature(method, n)
    B = x.shape[0]
    b = b.expand_as(x)
    out = torch.zeros_like(x)
    for i in range(B):
        t = target[i] if isinstance(target, list) else target
        total = torch.zeros_like(x[i])
        for a, w in zip(alphas.tolist(), weights.tolist()):
            p = (b[i] + a * (x[i] - b[i])).unsqueeze(0).requires_grad_()
            extra = tuple(e[i : i + 1] if torch.is_tensor(e) else e for e in args)
            y = model(p, *extra)[0, t]
            (g,) = torch.autograd.grad(y, p)
            total += w * g[0]
        out[i] = total * (x[i] - b[i]) if mult else total
    return out


# ------------------------------------------------------------------ IG parity
@pytest.mark.parametrize("method", METHODS)
def test_ig_methods_match_reference_and_captum(method):
    m = mlp(5, 8, 3)
    x, b = randn(4, 5, seed=1), randn(4, 5, seed=2)
    tgt = [0, 1, 2, 0]
    ours, delta = IntegratedGradients(m).attribute(
        x, b, target=tgt, method=method, n_steps=12, return_convergence_delta=True
    )
    ref = ref_ig(m, x, b, tgt, method, 12)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
    theirs, cdelta = ca.IntegratedGradients(m).attribute(
        x, b, target=tgt, method=method, n_steps=12, return_convergence_delta=True
    )
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(delta, cdelta, atol=1e-6, rtol=1e-6)
    fx = m(x)[range(4), tgt]
    fb = m(b)[range(4), tgt]
    torch.testing.assert_close(delta, ours.sum(1) - (fx - fb), atol=1e-10, rtol=0)


@pytest.mark.parametrize("ibs", [None, 1, 3, 7, 12, 1000])
@pytest.mark.parametrize("target", [1, torch.tensor([0, 2, 1, 1]), [2, 0, 1, 0]])
def test_ig_batch_sizes_and_targets(ibs, target):
    m = mlp(5, 8, 3)
    x = randn(4, 5, seed=3)
    b = randn(1, 5, seed=4)  # broadcast baseline
    ours = IntegratedGradients(m).attribute(x, b, target=target, n_steps=6, internal_batch_size=ibs)
    tl = target.tolist() if torch.is_tensor(target) else target
    torch.testing.assert_close(ours, ref_ig(m, x, b, tl, "gausslegendre", 6), atol=1e-10, rtol=0)


def test_ig_multiply_by_inputs_false_and_baseline_forms():
    m = mlp(5, 8, 3)
    x = randn(3, 5, seed=5)
    b1 = randn(5, seed=6)
    bB = randn(3, 5, seed=7)
    # (ours, Captum's equivalent form, dense [B, F] baseline)
    cases = [
        (None, None, torch.zeros(3, 5, dtype=F64)),
        (0.5, 0.5, torch.full((3, 5), 0.5, dtype=F64)),
        (b1, b1.unsqueeze(0), b1.expand(3, 5)),
        (b1.unsqueeze(0), b1.unsqueeze(0), b1.expand(3, 5)),
        (bB, bB, bB),
    ]
    for mult in (False, True):
        for ours_b, their_b, dense in cases:
            ours = IntegratedGradients(m, multiply_by_inputs=mult).attribute(x, ours_b, target=2)
            theirs = ca.IntegratedGradients(m, multiply_by_inputs=mult).attribute(
                x, their_b, target=2
            )
            torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
            ref = ref_ig(m, x, dense, 2, "gausslegendre", 50, mult)
            torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)


def test_cnn_float32_parity():
    m = cnn(1, 3, 8, 4, activation=torch.nn.Softplus)
    x = randn(3, 1, 8, 8, dtype=torch.float32, seed=8)
    tgt = [0, 3, 1]
    for ours, theirs in [
        (
            IntegratedGradients(m).attribute(x, target=tgt, n_steps=20, internal_batch_size=9),
            ca.IntegratedGradients(m).attribute(x, target=tgt, n_steps=20),
        ),
        (Saliency(m).attribute(x, target=tgt), ca.Saliency(m).attribute(x, target=tgt)),
        (
            Saliency(m).attribute(x, target=2, abs=False),
            ca.Saliency(m).attribute(x, target=2, abs=False),
        ),
        (InputXGradient(m).attribute(x, target=tgt), ca.InputXGradient(m).attribute(x, target=tgt)),
    ]:
        assert ours.dtype == torch.float32 and ours.shape == x.shape
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_tuple_inputs_and_additional_args():
    m = TupleModel().double().eval()
    x1, x2 = randn(3, 4, seed=9), randn(3, 2, 3, seed=10)
    scale = randn(3, 1, seed=11)
    args = (scale, 0.5)
    for expl, cexpl, kw in [
        (IntegratedGradients, ca.IntegratedGradients, dict(n_steps=10, internal_batch_size=4)),
        (Saliency, ca.Saliency, {}),
        (InputXGradient, ca.InputXGradient, {}),
    ]:
        ours = expl(m).attribute((x1, x2), target=1, additional_forward_args=args, **kw)
        kw.pop("internal_batch_size", None)
        theirs = cexpl(m).attribute((x1, x2), target=1, additional_forward_args=args, **kw)
        assert isinstance(ours, tuple) and len(ours) == 2
        for o, t in zip(ours, theirs):
            torch.testing.assert_close(o, t, atol=1e-6, rtol=1e-6)


def test_ig_exact_on_linear_and_complete():
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 2).double().eval()
    x, b = randn(4, 6, seed=12), randn(4, 6, seed=13)
    for method in METHODS:
        a = IntegratedGradients(lin).attribute(x, b, target=1, method=method, n_steps=4)
        w = 1.0 - 1.0 / 4 if method == "riemann_trapezoid" else 1.0
        torch.testing.assert_close(a, w * (x - b) * lin.weight[1].detach(), **EXACT)
    m = mlp(5, 8, 3)
    deltas = [
        IntegratedGradients(m)
        .attribute(
            x[:, :5],
            b[:, :5],
            target=0,
            n_steps=n,
            method="riemann_middle",
            return_convergence_delta=True,
        )[1]
        .abs()
        .max()
        .item()
        for n in (4, 16, 64)
    ]
    assert deltas[0] > deltas[1] > deltas[2] and deltas[2] < 1e-4
    _, d = IntegratedGradients(m).attribute(
        x[:, :5], target=0, n_steps=40, return_convergence_delta=True
    )
    assert d.abs().max() < 1e-10


# ------------------------------------------------------------- several targets
def test_several_targets_equal_per_target_runs():
    m = mlp(5, 8, 3)
    x = randn(4, 5, seed=14)
    idx = [[0, 2], [1, 0], [2, 2], [1, 1]]
    ig = IntegratedGradients(m)
    a, d = ig.attribute(
        x, target=idx, n_steps=8, internal_batch_size=5, return_convergence_delta=True
    )
    assert a.shape == (4, 2, 5) and d.shape == (4, 2)
    for t in range(2):
        col = [r[t] for r in idx]
        at, dt = ig.attribute(x, target=col, n_steps=8, return_convergence_delta=True)
        torch.testing.assert_close(a[:, t], at, **EXACT)
        torch.testing.assert_close(d[:, t], dt, **EXACT)
    allt = Saliency(m).attribute(x, target="all", abs=False)
    assert allt.shape == (4, 3, 5)
    for t in range(3):
        torch.testing.assert_close(allt[:, t], Saliency(m).attribute(x, target=t, abs=False))
    nt = NoiseTunnel(IntegratedGradients(m)).attribute(
        x, nt_samples=3, stdevs=0.1, target="all", n_steps=5, seed=3
    )
    nt1 = NoiseTunnel(IntegratedGradients(m)).attribute(
        x, nt_samples=3, stdevs=0.1, target=1, n_steps=5, seed=3
    )
    torch.testing.assert_close(nt[:, 1], nt1, **EXACT)


# ------------------------------------------------------ NoiseTunnel / GradientShap
def test_noise_tunnel_zero_noise_is_the_method():
    m = mlp(5, 8, 3)
    x = randn(3, 5, seed=15)
    ig = IntegratedGradients(m)
    base = ig.attribute(x, target=[0, 1, 2], n_steps=7)
    nt = NoiseTunnel(ig)
    for typ, want in [("smoothgrad", base), ("smoothgrad_sq", base * base), ("vargrad", 0 * base)]:
        got = nt.attribute(
            x,
            nt_type=typ,
            nt_samples=4,
            nt_samples_batch_size=3,
            stdevs=0.0,
            target=[0, 1, 2],
            n_steps=7,
        )
        torch.testing.assert_close(got, want, **EXACT)
    got, d = nt.attribute(
        x,
        nt_samples=2,
        stdevs=0.0,
        target=1,
        return_convergence_delta=True,
        baselines=randn(3, 5, seed=16),
    )
    assert d.shape == (6,)


def test_seeds_are_deterministic():
    m = mlp(5, 8, 3)
    x, bd = randn(3, 5, seed=17), randn(6, 5, seed=18)
    nt = NoiseTunnel(Saliency(m))
    a1 = nt.attribute(x, nt_samples=4, stdevs=0.3, target=0, seed=5)
    a2 = nt.attribute(x, nt_samples=4, stdevs=0.3, target=0, seed=5)
    a3 = nt.attribute(x, nt_samples=4, stdevs=0.3, target=0, seed=6)
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)
    gs = GradientShap(m)
    g1 = gs.attribute(x, bd, n_samples=4, stdevs=0.2, target=1, seed=1)
    assert torch.equal(g1, gs.attribute(x, bd, n_samples=4, stdevs=0.2, target=1, seed=1))
    torch.manual_seed(9)
    g2 = gs.attribute(x, bd, target=1)
    torch.manual_seed(9)
    assert torch.equal(g2, gs.attribute(x, bd, target=1))


def test_gradient_shap_exact_cases():
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 2).double().eval()
    x, b = randn(3, 5, seed=19), randn(1, 5, seed=20)
    # Linear model, one baseline, no noise: the random alphas do not matter.
    a, d = GradientShap(lin).attribute(
        x, b, n_samples=3, target=0, seed=0, return_convergence_delta=True
    )
    torch.testing.assert_close(a, (x - b) * lin.weight[0].detach(), **EXACT)
    assert d.shape == (9,) and d.abs().max() < 1e-12
    m = mlp(5, 8, 3)
    g = GradientShap(m, multiply_by_inputs=False).attribute(x, b, n_samples=2, target=0, seed=0)
    assert g.shape == x.shape


def test_expectations_match_captum():
    m = mlp(5, 8, 3)
    x, bd = randn(2, 5, seed=21), randn(5, 5, seed=22)
    n = 3000
    ours = GradientShap(m).attribute(x, bd, n_samples=n, stdevs=0.2, target=1, seed=0)
    np.random.seed(0)  # noqa: NPY002  (Captum draws from numpy's global generator)
    torch.manual_seed(0)
    theirs = ca.GradientShap(m).attribute(x, bd, n_samples=n, stdevs=0.2, target=1)
    assert (ours - theirs).abs().max() < 0.03
    ours = NoiseTunnel(Saliency(m)).attribute(x, nt_samples=n, stdevs=0.5, target=2, seed=0)
    theirs = ca.NoiseTunnel(ca.Saliency(m)).attribute(x, nt_samples=n, stdevs=0.5, target=2)
    assert (ours - theirs).abs().max() < 0.02


# ------------------------------------------------------------------------ LayerIG
def test_layer_ig_embedding_parity():
    m = EmbModel().double().eval()
    ids = torch.randint(1, 20, (4, 7), generator=gen(0))
    tgt = [0, 1, 2, 0]
    lig = LayerIntegratedGradients(m, m.emb)
    a, d = lig.attribute(
        ids,
        baselines=0,
        target=tgt,
        n_steps=15,
        internal_batch_size=11,
        return_convergence_delta=True,
    )
    c, cd = ca.LayerIntegratedGradients(m, m.emb).attribute(
        ids, baselines=0, target=tgt, n_steps=15, return_convergence_delta=True
    )
    assert a.shape == (4, 7, 6)
    torch.testing.assert_close(a, c, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(d, cd, atol=1e-6, rtol=1e-6)
    # Exactly IG on the embedding output, in float64.
    with torch.no_grad():
        ex, eb = m.emb(ids), m.emb(torch.zeros_like(ids))

    def head(e):
        return m.lin(torch.tanh(e).mean(1))

    torch.testing.assert_close(
        a, IntegratedGradients(head).attribute(ex, eb, target=tgt, n_steps=15), **EXACT
    )
    with torch.no_grad():
        fx, fb = m(ids)[range(4), tgt], m(torch.zeros_like(ids))[range(4), tgt]
    torch.testing.assert_close(d, a.sum((1, 2)) - (fx - fb), atol=1e-10, rtol=0)
    ai = lig.attribute(ids, target=1, attribute_to_layer_input=False, n_steps=5)
    ci = ca.LayerIntegratedGradients(m, m.lin).attribute(
        ids, target=1, n_steps=5, attribute_to_layer_input=True
    )
    ours_in = LayerIntegratedGradients(m, m.lin).attribute(
        ids, target=1, n_steps=5, attribute_to_layer_input=True
    )
    torch.testing.assert_close(ours_in, ci, atol=1e-6, rtol=1e-6)
    multi = lig.attribute(ids, target="all", n_steps=5)
    torch.testing.assert_close(multi[:, 1], ai, **EXACT)


class _TwoWay(nn.Module):
    """A layer with two inputs and two outputs inside a small model."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(5, 4), nn.Linear(5, 4)

    def forward(self, u, v):
        return torch.tanh(self.a(u)), self.b(v) * u[:, :4]


class _TwoWayModel(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(8)
        self.pre, self.mid, self.out = nn.Linear(5, 5), _TwoWay(), nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.pre(x))
        p, q = self.mid(h, x)
        return self.out(torch.cat([p, q], 1))


@pytest.mark.filterwarnings("ignore:Multiple layers provided")
@pytest.mark.parametrize("to_input", [False, True])
def test_layer_ig_lists_of_layers_and_tuple_activations_match_captum(to_input):
    m = _TwoWayModel().double().eval()
    x = randn(3, 5, seed=31)
    kw = dict(target=[0, 2, 1], n_steps=12, attribute_to_layer_input=to_input)
    # float64, to 1e-8: Captum rounds its step weights to float32 (test_ig_methods_...)
    # one layer with two inputs / two outputs -> a tuple
    ours = LayerIntegratedGradients(m, m.mid).attribute(x, **kw)
    theirs = ca.LayerIntegratedGradients(m, m.mid).attribute(x, **kw)
    assert isinstance(ours, tuple) and len(ours) == 2
    for o, t in zip(ours, theirs):
        torch.testing.assert_close(o, t, atol=1e-8, rtol=0)
    # a list of (parallel) layers -> a list, all moved along their paths together
    layers = [m.mid.a, m.mid.b]
    ours, od = LayerIntegratedGradients(m, layers).attribute(x, return_convergence_delta=True, **kw)
    theirs, td = ca.LayerIntegratedGradients(m, layers).attribute(
        x, return_convergence_delta=True, **kw
    )
    assert isinstance(ours, list) and len(ours) == 2
    for o, t in zip(ours, theirs):
        torch.testing.assert_close(o, t, atol=1e-8, rtol=0)
    torch.testing.assert_close(od, td, atol=1e-8, rtol=0)


# ------------------------------------------------------------------- checks
def test_training_mode_warns():
    m = torch.nn.Sequential(mlp(5, 8, 3), torch.nn.Dropout(0.1)).train()
    with pytest.warns(UserWarning, match="training mode"):
        IntegratedGradients(m).attribute(randn(2, 5), target=0, n_steps=2)
    with pytest.warns(UserWarning, match="training mode"):
        Saliency(m).attribute(randn(2, 5), target=0)


def test_bad_inputs_name_the_argument():
    m = mlp(5, 8, 3)
    x = randn(3, 5)
    ig = IntegratedGradients(m)
    with pytest.raises(ValueError, match="baselines"):
        ig.attribute(x, randn(2, 4), target=0)
    with pytest.raises(ValueError, match="n_steps"):
        ig.attribute(x, target=0, n_steps=0)
    with pytest.raises(TypeError, match="n_steps"):
        ig.attribute(x, target=0, n_steps=2.5)
    with pytest.raises(ValueError, match="method"):
        ig.attribute(x, target=0, method="simpson")
    with pytest.raises(ValueError, match="target"):
        ig.attribute(x, target=3)
    with pytest.raises(ValueError, match="target"):
        ig.attribute(x, target=[0, 5, 1])
    with pytest.raises(ValueError, match="target"):
        ig.attribute(x)  # three outputs, no target
    with pytest.raises(ValueError, match="internal_batch_size"):
        ig.attribute(x, target=0, internal_batch_size=0)
    with pytest.raises(ValueError, match="forward_func"):
        IntegratedGradients(lambda t: m(t)[:1]).attribute(x, target=0)
    with pytest.raises(ValueError, match="forward_func"):
        Saliency(lambda t: m(t) * float("nan")).attribute(x, target=0)
    with pytest.raises(TypeError, match="inputs"):
        Saliency(m).attribute(x.long(), target=0)  # IG takes ints (float path points)
    with pytest.raises(ValueError, match="nt_type"):
        NoiseTunnel(Saliency(m)).attribute(x, nt_type="smooth", target=0)
    with pytest.raises(ValueError, match="nt_samples"):
        NoiseTunnel(Saliency(m)).attribute(x, nt_samples=0, target=0)
    with pytest.raises(ValueError, match="baselines"):
        GradientShap(m).attribute(x, randn(4, 3), target=0)
    with pytest.raises(TypeError, match="seed"):
        GradientShap(m).attribute(x, randn(4, 5), target=0, seed="a")
    with pytest.raises(TypeError, match="layer"):
        LayerIntegratedGradients(m, [])
    with pytest.raises(TypeError, match="layer"):
        LayerIntegratedGradients(m, "fc")


def test_memory_budget_and_progress_do_not_change_answers():
    m = mlp(5, 8, 3)
    x = randn(4, 5, seed=23)
    want = IntegratedGradients(m).attribute(x, target=1, n_steps=9)
    for budget in (1, "2KB", "1GB"):
        got = IntegratedGradients(m).attribute(
            x, target=1, n_steps=9, memory_budget=budget, show_progress=True
        )
        torch.testing.assert_close(got, want, **EXACT)
    sal = Saliency(m).attribute(x, target=1, memory_budget=1)
    torch.testing.assert_close(sal, Saliency(m).attribute(x, target=1), atol=1e-14, rtol=0)


def test_multiple_baselines_path_integration_is_the_mean():
    from xattr._core.targets import Targets
    from xattr.explainers._gradient import integrate_paths

    m = mlp(5, 8, 3)
    x = randn(3, 5, seed=24)
    bk = randn(3, 4, 5, seed=25)  # K = 4 baselines per example
    tg = Targets([0, 2, 1], 3)
    for rows in (1, 5, 100):
        (got,), T, _ = integrate_paths(m, (x,), (bk,), (), tg, "gausslegendre", 6, rows)
        assert T == 1 and got.shape == (3, 1, 5)
        want = torch.stack(
            [
                IntegratedGradients(m).attribute(x, bk[:, k], target=[0, 2, 1], n_steps=6)
                for k in range(4)
            ]
        ).mean(0)
        torch.testing.assert_close(got[:, 0], want, **EXACT)


def test_tuple_inputs_noise_tunnel_and_gradient_shap():
    m = TupleModel().double().eval()
    x1, x2 = randn(3, 4, seed=26), randn(3, 2, 3, seed=27)
    args = (randn(3, 1, seed=28),)
    base = (randn(5, 4, seed=29), randn(5, 2, 3, seed=30))
    a = GradientShap(m).attribute(
        (x1, x2), base, n_samples=3, target=0, additional_forward_args=args, seed=0
    )
    assert isinstance(a, tuple) and a[0].shape == x1.shape and a[1].shape == x2.shape
    nt = NoiseTunnel(InputXGradient(m)).attribute(
        (x1, x2), stdevs=(0.0, 0.0), target=2, additional_forward_args=args, seed=0
    )
    want = InputXGradient(m).attribute((x1, x2), target=2, additional_forward_args=args)
    for o, w in zip(nt, want):
        torch.testing.assert_close(o, w, **EXACT)
    with pytest.raises(ValueError, match="return_convergence_delta"):
        NoiseTunnel(Saliency(m)).attribute(
            (x1, x2), target=0, additional_forward_args=args, return_convergence_delta=True
        )
    with pytest.raises(ValueError, match="stdevs"):
        NoiseTunnel(Saliency(m)).attribute(
            (x1, x2), target=0, additional_forward_args=args, stdevs=(0.1,)
        )


def test_gradient_shap_is_the_expected_gradients_formula():
    """With the draws reproduced (copy by copy: the noise of every example, then its
    baseline rows; then the alphas; from one generator seeded with ``seed``),
    GradientShap is exactly the mean over samples of ``(x' - b) * grad f(b + alpha (x' - b))``."""
    m = mlp(5, 8, 3)
    x, bd = randn(2, 5, seed=31), randn(3, 5, seed=32)
    n, sd = 4, 0.3
    got = GradientShap(m).attribute(x, bd, n_samples=n, stdevs=sd, target=[1, 2], seed=7)
    g = gen(7)
    draws = [
        (torch.randn(2, 5, generator=g, dtype=F64), torch.randint(0, 3, (2,), generator=g))
        for _ in range(n)
    ]
    noise = torch.stack([z for z, _ in draws], 1).reshape(2 * n, 5)  # example-major
    xn = x.repeat_interleave(n, 0) + sd * noise
    b = bd[torch.stack([r for _, r in draws], 1).reshape(2 * n)]
    alpha = torch.rand(2 * n, generator=g, dtype=F64).view(-1, 1)
    p = (b + alpha * (xn - b)).requires_grad_()
    tg = torch.tensor([1, 2]).repeat_interleave(n)
    (grad,) = torch.autograd.grad(m(p)[range(2 * n), tg].sum(), p)
    want = ((xn - b) * grad).view(2, n, 5).mean(1)
    torch.testing.assert_close(got, want, **EXACT)


def test_layer_ig_checks():
    m = EmbModel().double().eval()
    ids = torch.randint(1, 20, (2, 3), generator=gen(1))
    unused = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="layer"):
        LayerIntegratedGradients(m, unused).attribute(ids, target=0)
    with pytest.raises(ValueError, match="n_steps"):
        LayerIntegratedGradients(m, m.emb).attribute(ids, target=0, n_steps=0)
    with pytest.raises(ValueError, match="target"):
        LayerIntegratedGradients(m, m.emb).attribute(ids, target=7)


def test_layer_integrated_gradients_takes_grad_kwargs(monkeypatch):
    """Captum's ``grad_kwargs`` reach torch.autograd.grad (e.g. materialize_grads for a
    layer the output does not use: zeros, as without it); a non-dict is refused."""
    from xattr import LayerIntegratedGradients

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)

        def forward(self, x):
            self.unused(x)
            return self.used(x)

    net, x = Net().eval(), torch.randn(4, 3)
    lig = LayerIntegratedGradients(net, [net.used, net.unused])
    plain = lig.attribute(x, target=0)
    calls = []
    grad = torch.autograd.grad

    def spy(*a, **k):
        calls.append(k)
        return grad(*a, **k)

    monkeypatch.setattr(torch.autograd, "grad", spy)
    kw = lig.attribute(x, target=0, grad_kwargs={"materialize_grads": True})
    assert calls and all(k.get("materialize_grads") is True for k in calls)
    for a, b in zip(plain, kw):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert bool((kw[1] == 0).all())
    with pytest.raises(TypeError, match="grad_kwargs"):
        lig.attribute(x, target=0, grad_kwargs=[("materialize_grads", True)])
