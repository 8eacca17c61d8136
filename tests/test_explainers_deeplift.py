"""DeepLift and DeepLiftShap: Captum's results where Captum is right, completeness
(sum of attributions = f(x) - f(baseline)) on every supported network, the right answer
where Captum is wrong (a ReLU module used twice, functional nonlinearities, max pooling
next to a nonlinearity), and a clear error for what has no rule."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xattr
from xattr import DeepLift, DeepLiftShap

ca = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings(
    "ignore:Input Tensor .* did not already require", "ignore:Setting forward, backward hooks"
)
D = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _x(*shape: int, seed: int = 1, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=D) * scale


def _mlp(act: type[nn.Module] = nn.ReLU, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return (
        nn.Sequential(nn.Linear(5, 8), act(), nn.Linear(8, 6), nn.Sigmoid(), nn.Linear(6, 3))
        .to(D)
        .eval()
    )


def _cnn(seed: int = 0, softmax: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(4, 3),
    ]
    if softmax:
        layers.append(nn.Softmax(1))
    return nn.Sequential(*layers).to(D).eval()


def _captum(cls, model, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(ca, cls)(model).attribute(*args, **kw)


def _complete(model, x, base, target, attrs, tol=1e-12):
    """sum(attributions) = f(x) - f(base) per example, the outputs computed directly."""
    with torch.no_grad():
        gap = model(x)[:, target] - model(base.expand_as(x))[:, target]
    total = attrs.reshape(x.shape[0], -1).sum(1)
    torch.testing.assert_close(total, gap, rtol=0, atol=tol)


# ------------------------------------------------------------------- Captum's results
@pytest.mark.parametrize("act", [nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Softplus, nn.Tanh])
@pytest.mark.parametrize("baselines", ["none", "scalar", "one", "per_example"])
def test_mlp_matches_captum(act, baselines):
    model = _mlp(act)
    x = _x(4, 5)
    base = {
        "none": None,
        "scalar": 0.3,
        "one": _x(1, 5, seed=2),
        "per_example": _x(4, 5, seed=3),
    }[baselines]
    ours, delta = DeepLift(model).attribute(x, base, target=1, return_convergence_delta=True)
    theirs, their_delta = _captum(
        "DeepLift", model, x, base, target=1, return_convergence_delta=True
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    assert delta.shape == their_delta.shape == (4,)
    assert delta.abs().max() < 1e-12


def test_flags_and_options_match_captum():
    model = _mlp()
    x, base = _x(3, 5), _x(3, 5, seed=4)
    for mbi in (True, False):
        ours = DeepLift(model, multiply_by_inputs=mbi)
        theirs = ca.DeepLift(model, multiply_by_inputs=mbi)
        assert ours.multiplies_by_inputs == theirs.multiplies_by_inputs == mbi
        assert ours.has_convergence_delta() and theirs.has_convergence_delta()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = theirs.attribute(x, base, target=2)
        torch.testing.assert_close(ours.attribute(x, base, target=2), want, rtol=1e-10, atol=1e-12)

    def one(m):
        return tuple(2 * t for t in m)

    def two(m, inputs):
        return tuple(t * i for t, i in zip(m, inputs))

    def three(m, inputs, bases):
        return tuple(t * (i - b) ** 2 for t, i, b in zip(m, inputs, bases))

    for f in (one, two, three):
        ours = DeepLift(model).attribute(x, base, target=0, custom_attribution_func=f)
        theirs = _captum("DeepLift", model, x, base, target=0, custom_attribution_func=f)
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("B", [1, 3])
def test_cnn_with_max_pooling_matches_captum(B):
    model = _cnn()
    x = _x(B, 1, 6, 6)
    ours, delta = DeepLift(model).attribute(x, target=2, return_convergence_delta=True)
    theirs = _captum("DeepLift", model, x, target=2)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    assert delta.abs().max() < 1e-12


def test_softmax_matches_captum_for_one_example():
    """Captum subtracts the multipliers' mean over the whole batch; per example here, so
    the two agree for one example (and Captum's result for an example changes with the
    other examples of its batch, ours does not)."""
    model = _cnn(softmax=True)
    x = _x(3, 1, 6, 6)
    ours = DeepLift(model).attribute(x, target=1)
    for i in range(3):
        theirs = _captum("DeepLift", model, x[i : i + 1], target=1)
        torch.testing.assert_close(ours[i : i + 1], theirs, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(_captum("DeepLift", model, x, target=1), ours, atol=1e-6)


def test_tuple_inputs_and_additional_args_match_captum():
    torch.manual_seed(3)
    lin_a, lin_b, out = nn.Linear(4, 6).double(), nn.Linear(3, 6).double(), nn.Linear(6, 2).double()

    def f(a, b, scale):
        return out(torch.relu(lin_a(a) + lin_b(b)) * scale)

    a, b = _x(4, 4), _x(4, 3, seed=5)
    scale = _x(4, 1, seed=6).abs() + 0.5
    bases = (_x(1, 4, seed=7), 0.2)
    ours, delta = DeepLift(f).attribute(
        (a, b), bases, target=1, additional_forward_args=(scale,), return_convergence_delta=True
    )
    lifted = _LiftedModule(f)
    theirs = _captum("DeepLift", lifted, (a, b), bases, target=1, additional_forward_args=(scale,))
    for o, t in zip(ours, theirs):
        torch.testing.assert_close(o, t, rtol=1e-10, atol=1e-12)
    assert delta.abs().max() < 1e-12


class _LiftedModule(nn.Module):
    """The function ``f`` of the test above as Captum needs it: a module with a hooked
    ReLU module (Captum misses ``torch.relu``)."""

    def __init__(self, f):
        super().__init__()
        self.f = f
        self.relu = nn.ReLU()

    def forward(self, a, b, scale):
        cells = self.f.__code__.co_freevars  # lin_a, lin_b, out
        lin_a, lin_b, out = (c.cell_contents for c in self.f.__closure__)
        assert cells == ("lin_a", "lin_b", "out")
        return out(self.relu(lin_a(a) + lin_b(b)) * scale)


def test_deeplift_shap_matches_captum():
    model = _mlp()
    x, bases = _x(4, 5), _x(3, 5, seed=8)
    ours, delta = DeepLiftShap(model).attribute(x, bases, target=2, return_convergence_delta=True)
    theirs, their_delta = _captum(
        "DeepLiftShap", model, x, bases, target=2, return_convergence_delta=True
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    assert delta.shape == their_delta.shape == (12,)
    torch.testing.assert_close(delta, their_delta, rtol=0, atol=1e-12)
    # a callable baseline, as Captum takes it
    again = DeepLiftShap(model).attribute(x, lambda: bases, target=2)
    torch.testing.assert_close(again, ours, rtol=0, atol=1e-14)
    assert DeepLiftShap(model).multiplies_by_inputs and DeepLiftShap(model).has_convergence_delta()


# ------------------------------------------------------------------------ completeness
class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.a, self.b, self.c = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, 3)
        self.relu = nn.ReLU()  # called three times

    def forward(self, x):
        h = self.relu(self.a(x))
        h = h + self.relu(self.b(h))
        return self.c(self.relu(h))


class _Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.a, self.b, self.c = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, 3)
        self.d, self.e = nn.Linear(6, 6), nn.Linear(6, 6)

    def forward(self, x):
        h = F.relu(self.a(x))
        h = torch.sigmoid(self.b(h)) + self.e(h).relu()
        return self.c(self.d(F.leaky_relu(h - 0.5, 0.1)).tanh())


class _Distinct(nn.Module):
    """_Functional with a module per call and no two nonlinear modules in a row:
    Captum's rules apply to it (its delta is 0)."""

    def __init__(self, f: _Functional) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d, self.e = f.a, f.b, f.c, f.d, f.e
        self.r1, self.r2, self.s = nn.ReLU(), nn.ReLU(), nn.Sigmoid()
        self.lr, self.t = nn.LeakyReLU(0.1), nn.Tanh()

    def forward(self, x):
        h = self.r1(self.a(x))
        h = self.s(self.b(h)) + self.r2(self.e(h))
        return self.c(self.t(self.d(self.lr(h - 0.5))))


class _PoolNet(nn.Module):
    """Overlapping max-pool windows, functional pooling, in-place ReLU, an average pool."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv, self.conv2 = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(3, 2, 2)
        self.lin = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x):
        h = F.max_pool2d(self.conv(x), 3, stride=1)  # overlapping windows
        h = F.relu(h, inplace=True)
        h = F.avg_pool2d(torch.sigmoid(self.conv2(h)), 2)
        h = nn.functional.adaptive_max_pool2d(h, 2)
        return self.lin(h.flatten(1))


@pytest.mark.parametrize("make", [_mlp, _cnn, _Residual, _Functional, _PoolNet])
def test_completeness_to_rounding(make):
    model = make().to(D).eval()
    shape = {_cnn: (3, 1, 6, 6), _PoolNet: (3, 2, 6, 6)}.get(make, (3, 5))
    x = _x(*shape)
    for base in (
        torch.zeros(1, *shape[1:], dtype=D),
        _x(1, *shape[1:], seed=9),
        _x(*shape, seed=9),
    ):
        a, delta = DeepLift(model).attribute(x, base, target=2, return_convergence_delta=True)
        _complete(model, x, base, 2, a)
        assert delta.abs().max() < 1e-12
    bases = _x(4, *shape[1:], seed=10)
    a, delta = DeepLiftShap(model).attribute(x, bases, target=0, return_convergence_delta=True)
    assert delta.abs().max() < 1e-12
    per_base = torch.stack(
        [DeepLift(model).attribute(x, bases[j : j + 1], target=0) for j in range(4)]
    )
    torch.testing.assert_close(a, per_base.mean(0), rtol=0, atol=1e-13)


# ------------------------------------------------------------------ where Captum is wrong
def test_functional_nonlinearities_are_intercepted_where_captum_misses_them():
    f = _Functional().to(D).eval()
    x, base = _x(4, 5), _x(4, 5, seed=11, scale=0.5)
    ours = DeepLift(f).attribute(x, base, target=1)
    reference, delta = _captum(
        "DeepLift", _Distinct(f), x, base, target=1, return_convergence_delta=True
    )
    assert delta.abs().max() < 1e-12  # Captum is right on the module version
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    captum_functional = _captum("DeepLift", f, x, base, target=1)
    assert (captum_functional - reference).abs().max() > 1e-3  # Captum: plain gradients


def test_a_relu_module_used_three_times():
    model = _Residual().to(D).eval()
    distinct = nn.Module()
    r1, r2, r3 = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(x):
        h = r1(model.a(x))
        h = h + r2(model.b(h))
        return model.c(r3(h))

    distinct.forward = forward  # type: ignore[method-assign]
    for r in (r1, r2, r3):
        distinct.add_module(f"r{id(r)}", r)
    x, base = _x(4, 5), _x(4, 5, seed=12, scale=0.5)
    ours = DeepLift(model).attribute(x, base, target=0)
    reference = _captum("DeepLift", distinct, x, base, target=0)
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    try:  # Captum refuses the reused module, or gets it wrong
        theirs = _captum("DeepLift", model, x, base, target=0)
    except RuntimeError:
        return
    assert (theirs - reference).abs().max() > 1e-3


def test_nonlinear_modules_in_a_row_with_a_baseline():
    """Two hooked modules in a row (ReLU -> MaxPool, LeakyReLU -> Tanh): Captum's hooks
    lose completeness there (its delta is far from 0); ours keep it."""
    model = _cnn()
    x, base = _x(2, 1, 6, 6), _x(2, 1, 6, 6, seed=13)
    a, delta = DeepLift(model).attribute(x, base, target=2, return_convergence_delta=True)
    _complete(model, x, base, 2, a)
    _, their_delta = _captum("DeepLift", model, x, base, target=2, return_convergence_delta=True)
    assert their_delta.abs().max() > 1e-3 and delta.abs().max() < 1e-12
    f = _Functional().to(D).eval()
    chained = nn.Sequential(f.a, nn.ReLU(), f.d, nn.LeakyReLU(0.1), nn.Tanh(), f.c).eval()
    x, base = _x(4, 5), _x(4, 5, seed=14)
    a, delta = DeepLift(chained).attribute(x, base, target=1, return_convergence_delta=True)
    _complete(chained, x, base, 1, a)
    _, their_delta = _captum("DeepLift", chained, x, base, target=1, return_convergence_delta=True)
    assert their_delta.abs().max() > 1e-3 and delta.abs().max() < 1e-12


# ------------------------------------------------------------------------------ errors
class _Op(nn.Module):
    def __init__(self, op) -> None:
        super().__init__()
        self.lin, self.op = nn.Linear(5, 3).double(), op

    def forward(self, x):
        return self.op(self.lin(x))


@pytest.mark.parametrize(
    "op, name",
    [
        (lambda h: h * h, "Tensor.mul"),
        (lambda h: F.layer_norm(h, (3,)), "torch.nn.functional.layer_norm"),
        (lambda h: torch.where(h > 0, h, 0.0), "Tensor.gt"),
        (lambda h: h.max(1, keepdim=True).values.expand(-1, 3), "Tensor.max"),
        (lambda h: 1 / h, "Tensor.__rdiv__"),
        (lambda h: F.log_softmax(h, 1), "torch.nn.functional.log_softmax"),
        (lambda h: h.detach(), "Tensor.detach"),
        (lambda h: torch.cat([h, h]).view(2, -1, 3).sum(0), "torch.cat"),  # mixes the rows
        (lambda h: torch.stack([h, h]).sum(0), "torch.stack"),
        (lambda h: sum(h.chunk(2)).repeat(2, 1)[: h.shape[0]], "Tensor.chunk"),
    ],
)
def test_unsupported_operations_are_named(op, name):
    with pytest.raises(ValueError, match=rf"DeepLift: unsupported operation {name}"):
        DeepLift(_Op(op).eval()).attribute(_x(2, 5), target=0)


def test_training_mode_batch_norm_and_dropout_are_refused():
    for layer in (nn.BatchNorm1d(3), nn.Dropout(0.5)):
        model = nn.Sequential(nn.Linear(5, 3), layer, nn.ReLU()).double().train()
        with pytest.raises(ValueError, match="training mode"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            DeepLift(model).attribute(_x(2, 5), target=0)
        DeepLift(model.eval()).attribute(_x(2, 5), target=0)  # eval: affine, fine


def test_argument_errors():
    model = _mlp()
    with pytest.raises(ValueError, match="eps"):
        DeepLift(model, eps=-1.0)
    with pytest.raises(ValueError, match="N >= 2"):
        DeepLiftShap(model).attribute(_x(2, 5), _x(1, 5), target=0)
    with pytest.raises(ValueError, match=r"baselines\[0\]: expected \[N, \*F\]"):
        DeepLiftShap(model).attribute(_x(2, 5), _x(3, 4), target=0)
    with pytest.raises(ValueError, match="custom_attribution_func: must take 1 to 3"):
        DeepLift(model).attribute(_x(2, 5), target=0, custom_attribution_func=lambda a, b, c, d: a)
    with pytest.raises(TypeError, match="expected a floating tensor"):
        DeepLift(model).attribute(torch.ones(2, 5, dtype=torch.long), target=0)

    def batch_last(x):  # the batch moved away from dimension 0
        return torch.relu(model[0](x).t()).t()

    with pytest.raises(ValueError, match=r"Tensor.t: it moves, joins or splits the batch"):
        DeepLift(batch_last).attribute(_x(3, 5), target=0)


# ---------------------------------------------------------------------- the rest
def test_several_targets_and_batching():
    model = _cnn()
    x, base = _x(5, 1, 6, 6), _x(5, 1, 6, 6, seed=14)
    every, delta = DeepLift(model).attribute(x, base, target="all", return_convergence_delta=True)
    assert every.shape == (5, 3, 1, 6, 6) and delta.shape == (5, 3)
    for t in range(3):
        one = DeepLift(model).attribute(x, base, target=t, memory_budget=1)
        torch.testing.assert_close(every[:, t], one, rtol=0, atol=1e-13)
    shap = DeepLiftShap(model).attribute(x, base[:3], target="all")
    assert shap.shape == (5, 3, 1, 6, 6)


def test_a_shared_baseline_runs_once_per_forward():
    calls = []
    model = _mlp()

    def f(x):
        calls.append(x.shape[0])
        return model(x)

    DeepLift(f).attribute(_x(6, 5), target=0)
    assert calls == [7]  # 6 inputs + 1 shared baseline (Captum: 12)
    calls.clear()
    DeepLiftShap(f).attribute(_x(6, 5), _x(4, 5), target=0)
    assert calls == [6 * 4 + 4]  # (Captum: 48)


def test_inputs_that_require_grad_and_empty_batches():
    model = _mlp()
    x = _x(3, 5).requires_grad_()
    a = DeepLift(model).attribute(x, target=0)
    assert x.grad is None and not a.requires_grad
    empty = DeepLift(model).attribute(_x(0, 5), target=0)
    assert empty.shape == (0, 5)
    assert xattr.EXPLAINERS["DeepLift"].kind == "gradient"
