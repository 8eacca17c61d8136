"""xattr.bounds.lipschitz: the upper bound is exact where the maths is (one Linear, linear
networks, BatchNorm folded, Softmax, Sigmoid, overlapping max pooling), >= the true constant
found by dense search on 1-D and 2-D inputs, >= the exact norm of every convolution and
pooling it bounds without unrolling, and >= the empirical lower bound on every network."""

import math

import pytest
import torch
from torch import nn

import xattr.bounds.lipschitz as lip
from tests._helpers import F64, cnn, gen, mlp
from xattr.bounds.lipschitz import lipschitz_lower, lipschitz_upper


def _exact_linear_norm(fn, shape) -> float:
    """||J||_2 of a linear map (its Jacobian at 0), by autograd: independent of the
    module's unrolling."""
    jac = torch.autograd.functional.jacobian(
        lambda x: fn(x[None]).flatten(), torch.zeros(shape, dtype=F64), vectorize=True
    )
    return float(torch.linalg.matrix_norm(jac.reshape(jac.shape[0], -1), ord=2))


def _no_unroll(monkeypatch):
    """Force the per-layer proven bounds (no exact unrolled matrices)."""
    monkeypatch.setattr(lip, "UNROLL_MAX_INPUT", 0)


def _jacobian_norms(model, x, target=None) -> torch.Tensor:
    """[B] spectral norm of the Jacobian at each row (or the gradient norm of output
    ``target``), by autograd."""
    x = x.detach().requires_grad_()
    y = model(x).reshape(x.shape[0], -1)
    outputs = [target] if target is not None else range(y.shape[1])
    rows = [torch.autograd.grad(y[:, k].sum(), x, retain_graph=True)[0] for k in outputs]
    jac = torch.stack(rows, 1).reshape(x.shape[0], len(rows), -1)
    return torch.linalg.matrix_norm(jac, ord=2)


def _set(layer: nn.Linear, weight, bias=None) -> nn.Linear:
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
        if bias is not None:
            layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
    return layer


# ------------------------------------------------------------------ exact cases
@pytest.mark.parametrize("shape", [(3, 5), (40, 7), (1, 9), (30, 5000), (300, 400)])
def test_one_linear_is_its_spectral_norm(shape):
    torch.manual_seed(shape[1])
    layer = nn.Linear(shape[1], shape[0]).double()
    exact = float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2))
    assert lipschitz_upper(layer, (shape[1],)) == pytest.approx(exact, rel=1e-12)
    assert lipschitz_upper(nn.Sequential(layer), (shape[1],)) == pytest.approx(exact, rel=1e-12)
    # row j alone: ||W_j||
    row = float(layer.weight.detach()[2 % shape[0]].norm())
    assert lipschitz_upper(layer, (shape[1],), target=2 % shape[0]) == pytest.approx(row, rel=1e-12)


def test_one_linear_on_a_sequence_acts_row_wise():
    torch.manual_seed(1)
    layer = nn.Linear(4, 3).double()
    exact = float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2))
    assert lipschitz_upper(layer, (6, 4)) == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("unroll", [True, False])
def test_linear_networks(unroll, monkeypatch):
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(6, 9), nn.Linear(9, 4), nn.Flatten(), nn.Linear(4, 3)).double()
    product = net[3].weight @ net[1].weight @ net[0].weight
    exact = float(torch.linalg.matrix_norm(product.detach(), ord=2))
    layers = math.prod(
        float(torch.linalg.matrix_norm(net[i].weight.detach(), ord=2)) for i in (0, 1, 3)
    )
    if not unroll:
        _no_unroll(monkeypatch)
        assert lipschitz_upper(net, (6,)) == pytest.approx(layers, rel=1e-12)
        assert layers >= exact
    else:  # the run is unrolled: the product's exact norm
        assert lipschitz_upper(net, (6,)) == pytest.approx(exact, rel=1e-10)


def test_linear_conv_network_is_exact():
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv1d(2, 3, 3, padding=1), nn.Conv1d(3, 2, 2, stride=2), nn.Flatten(), nn.Linear(16, 2)
    ).double()
    exact = _exact_linear_norm(net, (2, 16))
    assert lipschitz_upper(net, (2, 16)) == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("unroll", [True, False])
def test_batchnorm_folds_into_the_linear_map(unroll, monkeypatch):
    torch.manual_seed(4)
    bn = nn.BatchNorm1d(5)
    with torch.no_grad():
        bn.running_var.uniform_(0.1, 3.0)
        bn.running_mean.normal_()
        bn.weight.normal_()
    net = nn.Sequential(nn.Linear(7, 5), bn).double().eval()
    exact = _exact_linear_norm(net, (7,))
    if not unroll:
        _no_unroll(monkeypatch)
    assert lipschitz_upper(net, (7,)) == pytest.approx(exact, rel=1e-10)
    # BatchNorm with no affine map before it: the largest |scale|
    s = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    assert lipschitz_upper(nn.Sequential(bn), (5,)) == pytest.approx(
        float(s.abs().max()), rel=1e-12
    )


def test_softmax_and_sigmoid_bounds_are_attained():
    """Softmax of 2 logits at z1 = z2: Jacobian norm 1/2, one probability's gradient
    sqrt(2)/4; the sigmoid's slope at 0: 1/4. Dense search finds them."""
    z = torch.linspace(-3, 3, 301, dtype=F64)
    grid = torch.cartesian_prod(z, z)
    soft = nn.Sequential(nn.Softmax(dim=1))
    assert lipschitz_upper(soft, (2,)) == 0.5
    assert lipschitz_upper(soft, (2,), target=0) == pytest.approx(math.sqrt(2) / 4, rel=1e-15)
    assert float(_jacobian_norms(soft, grid).max()) == pytest.approx(0.5, rel=1e-12)
    assert float(_jacobian_norms(soft, grid, 0).max()) == pytest.approx(math.sqrt(2) / 4, rel=1e-12)
    sig = nn.Sequential(nn.Sigmoid())
    assert lipschitz_upper(sig, (1,)) == 0.25
    assert float(_jacobian_norms(sig, z[:, None]).max()) == pytest.approx(0.25, rel=1e-12)


@pytest.mark.parametrize(
    ("pool", "shape", "count"),
    [
        (nn.MaxPool1d(3, stride=1), (1, 7), 3),
        (nn.MaxPool1d(2), (2, 8), 1),
        (nn.MaxPool2d(3, stride=2, padding=1), (1, 7, 7), 4),
        (nn.MaxPool2d(2, stride=1, dilation=2), (1, 6, 6), 4),
        (nn.AdaptiveMaxPool1d(4), (1, 6), 2),
    ],
)
def test_max_pooling_counts_overlapping_windows(pool, shape, count):
    """sqrt(K), K the most windows an element falls in; attained by a spike there."""
    bound = lipschitz_upper(nn.Sequential(pool), shape)
    assert bound == pytest.approx(math.sqrt(count), rel=1e-15)
    spikes = torch.eye(math.prod(shape), dtype=F64).reshape(-1, *shape)
    ratios = pool(spikes).reshape(spikes.shape[0], -1).norm(dim=1)  # f(e_i) - f(0), ||e_i|| = 1
    assert float(ratios.max()) == pytest.approx(bound, rel=1e-12)


# ------------------------------------------------------------------ dense search
def _one_d(act: nn.Module, aligned: bool, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(1, 6), act, nn.Linear(6, 1)).double().eval()
    if aligned:  # w2 parallel to w1, every unit at its steepest at x = 0
        w1 = torch.rand(6, 1, generator=gen(seed), dtype=F64) + 0.5
        _set(net[0], w1, torch.zeros(6) if not isinstance(act, nn.ReLU) else torch.ones(6))
        _set(net[2], 0.7 * w1.T)
    return net


@pytest.mark.parametrize("act", [nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.LeakyReLU(-1.5)])
@pytest.mark.parametrize("aligned", [False, True])
def test_upper_holds_on_one_dimensional_inputs(act, aligned):
    net = _one_d(act, aligned, seed=5)
    x = torch.linspace(-8, 8, 16001, dtype=F64)[:, None]
    with torch.no_grad():
        y = net(x)[:, 0]
    secants = float(((y[1:] - y[:-1]).abs() / (x[1:, 0] - x[:-1, 0])).max())
    slopes = float(_jacobian_norms(net, x).max())
    bound = lipschitz_upper(net, (1,))
    assert bound >= slopes * (1 - 1e-12)
    assert bound >= secants * (1 - 1e-9)  # secants over steps of 1e-3: rounding ~1e-11
    if aligned and not isinstance(act, nn.LeakyReLU):  # the product of norms is attained
        assert bound == pytest.approx(slopes, rel=1e-9)


@pytest.mark.parametrize("act", [nn.ReLU(), nn.Tanh(), nn.Sigmoid()])
def test_upper_holds_on_two_dimensional_inputs(act):
    torch.manual_seed(6)
    net = nn.Sequential(nn.Linear(2, 5), act, nn.Linear(5, 3), nn.Softmax(dim=1)).double().eval()
    z = torch.linspace(-4, 4, 161, dtype=F64)
    grid = torch.cartesian_prod(z, z)
    assert lipschitz_upper(net, (2,)) >= float(_jacobian_norms(net, grid).max())
    for j in range(3):
        assert lipschitz_upper(net, (2,), target=j) >= float(_jacobian_norms(net, grid, j).max())
        assert lipschitz_upper(net, (2,), target=j) <= lipschitz_upper(net, (2,))


# ------------------------------------------------------------------ proven bounds
def _conv_cases():
    yield nn.Conv1d(2, 3, 3, padding=1), (2, 11)
    yield nn.Conv1d(4, 4, 3, stride=2, padding=2, dilation=2, groups=2), (4, 13)
    yield nn.Conv1d(3, 2, 4, padding="same"), (3, 9)
    yield nn.Conv2d(2, 4, 3, stride=2, padding=1), (2, 9, 8)
    yield (
        nn.Conv2d(3, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=3),
        (3, 7, 9),
    )
    yield nn.Conv2d(1, 2, 5, stride=3), (1, 16, 16)
    yield nn.Conv2d(4, 2, 3, padding="same", dilation=2), (4, 6, 6)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("case", range(7))
def test_conv_bounds_cover_the_exact_norm(case):
    torch.manual_seed(case)
    conv, shape = list(_conv_cases())[case]
    conv = conv.double()
    exact = _exact_linear_norm(lambda x: conv._conv_forward(x, conv.weight, None), shape)
    layer = lip._read(nn.Sequential(conv), shape, "test")[0]
    w = conv.weight.detach()
    left, total = lip._conv_padding(conv)
    fft = lip._conv_fft_bound(w, shape[1:], total, conv.dilation, conv.groups)
    window = lip._conv_window_bound(
        w, shape[1:], layer.shape_out[2:], conv.stride, left, conv.dilation, conv.groups
    )
    assert fft is not None and fft >= exact * (1 - 1e-12)
    assert window >= exact * (1 - 1e-12)
    # the small case is unrolled: exact
    assert lipschitz_upper(conv, shape) == pytest.approx(exact, rel=1e-10)


def test_fourier_bound_is_tight_for_a_large_stride_one_conv():
    """Without stride the circular embedding loses little on a large input."""
    torch.manual_seed(8)
    conv = nn.Conv1d(2, 2, 3, padding=1).double()
    exact = _exact_linear_norm(lambda x: conv._conv_forward(x, conv.weight, None), (2, 200))
    fft = lip._conv_fft_bound(conv.weight.detach(), (200,), (2,), conv.dilation, 1)
    assert fft is not None and exact <= fft <= exact * 1.01


@pytest.mark.parametrize(
    ("pool", "shape"),
    [
        (nn.AvgPool2d(3, stride=2, padding=1), (2, 9, 9)),
        (nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), (1, 6, 7)),
        (nn.AvgPool1d(4, stride=3, ceil_mode=True), (2, 14)),
        (nn.AdaptiveAvgPool2d((3, 2)), (2, 7, 5)),
    ],
)
def test_average_pooling(pool, shape, monkeypatch):
    exact = _exact_linear_norm(pool, shape)
    assert lipschitz_upper(nn.Sequential(pool), shape) == pytest.approx(exact, rel=1e-10)
    _no_unroll(monkeypatch)  # the Schur test
    lip._CACHE.clear()
    assert lipschitz_upper(nn.Sequential(pool), shape) >= exact * (1 - 1e-12)


# ------------------------------------------------------------------ upper >= lower
def _bn(c: int, seed: int, two_d: bool) -> nn.Module:
    bn = nn.BatchNorm2d(c) if two_d else nn.BatchNorm1d(c)
    g = gen(seed)
    with torch.no_grad():
        bn.running_var.copy_(torch.rand(c, generator=g) + 0.2)
        bn.running_mean.copy_(torch.randn(c, generator=g))
        bn.weight.copy_(torch.randn(c, generator=g))
    return bn


def _networks():
    yield "mlp", mlp(5, 16, 3), (5,)
    yield "cnn", cnn(1, 4, 8, 3, dtype=F64), (1, 8, 8)
    yield "cnn-pool", cnn(2, 3, 10, 4, padding=1, pool=2, dtype=F64), (2, 10, 10)
    torch.manual_seed(9)
    yield (
        "bn-pools",
        nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1),
            _bn(4, 1, True),
            nn.LeakyReLU(0.1),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(4, 4, 3, groups=2, dilation=2, padding=2),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Dropout(0.3),
            nn.Sequential(nn.Flatten(), nn.Linear(4 * 3 * 3, 6), _bn(6, 2, False)),
            nn.Tanh(),
            nn.Linear(6, 4),
            nn.Softmax(dim=-1),
        ),
        (2, 11, 11),
    )
    torch.manual_seed(10)
    yield (
        "conv1d",
        nn.Sequential(
            nn.Conv1d(1, 3, 5, stride=2),
            nn.Sigmoid(),
            nn.AdaptiveAvgPool1d(4),
            nn.Conv1d(3, 2, 2),
            nn.AdaptiveMaxPool1d(2),
            nn.Flatten(),
            nn.Linear(4, 2),
        ),
        (1, 23),
    )


@pytest.mark.parametrize("case", range(5))
def test_upper_is_at_least_the_lower_bound(case, monkeypatch):
    name, net, shape = list(_networks())[case]
    net = net.double().eval()
    data = torch.randn((6, *shape), generator=gen(case), dtype=F64)
    upper = lipschitz_upper(net, shape)
    lower = lipschitz_lower(net, data, n_random=4, adversarial_steps=3)
    assert 0 < lower <= upper, name
    n_out = net(data[:1]).numel()
    for j in range(n_out):
        row_upper = lipschitz_upper(net, shape, target=j)
        assert lipschitz_lower(net, data, target=j, n_random=4, adversarial_steps=0) <= row_upper
        assert row_upper <= upper * (1 + 1e-12)
    # the per-layer proven bounds are >= the exact unrolled runs, stage by stage
    _no_unroll(monkeypatch)
    assert lipschitz_upper(net, shape) >= upper * (1 - 1e-12), name


def test_runs_too_large_to_unroll_multiply_their_units(monkeypatch):
    """conv1 + BatchNorm fits the unrolling limit alone, the whole run does not: the
    run's bound is the exact norm of the folded conv1 times conv2's own bound."""
    torch.manual_seed(13)
    conv1, bn, conv2 = nn.Conv2d(1, 2, 3, padding=1), _bn(2, 3, True), nn.Conv2d(2, 8, 3, padding=1)
    run = nn.Sequential(conv1, bn, conv2).double().eval()
    side = 6
    monkeypatch.setattr(lip, "UNROLL_MAX_ENTRIES", side**2 * 2 * side**2)
    first = _exact_linear_norm(lambda x: run[1](run[0](x)) - run[1](run[0](0 * x)), (1, side, side))
    second = lipschitz_upper(nn.Sequential(run[2]), (2, side, side))
    assert lipschitz_upper(run, (1, side, side)) == pytest.approx(first * second, rel=1e-10)
    # conv2's own bound is a proven one, >= its exact norm
    exact2 = _exact_linear_norm(
        lambda x: conv2.double()._conv_forward(x, conv2.weight, None), (2, side, side)
    )
    assert second >= exact2 * (1 - 1e-12)


def test_rows_of_a_convolution(monkeypatch):
    """Output j of a conv is <kernel of its channel, patch>: its norm is <= the kernel's
    Frobenius norm, with equality for windows inside the input."""
    torch.manual_seed(14)
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    exact_rows = (
        torch.autograd.functional.jacobian(
            lambda x: conv._conv_forward(x[None], conv.weight, None).flatten(),
            torch.zeros((2, 5, 5), dtype=F64),
        )
        .reshape(75, -1)
        .norm(dim=1)
    )
    _no_unroll(monkeypatch)
    for j in (0, 12, 37, 62, 74):  # corners and centres of the three channels
        bound = lipschitz_upper(conv, (2, 5, 5), target=j)
        assert bound >= float(exact_rows[j]) * (1 - 1e-12)
        if j in (12, 37, 62):  # the centre pixel's window is inside
            assert bound == pytest.approx(float(exact_rows[j]), rel=1e-12)


def test_large_cnn_uses_the_proven_bounds():
    """A 3 x 40 x 40 input (4800 elements) is not unrolled: the conv gets the Fourier or
    window bound; it still covers the lower bound and the exact first-layer norm."""
    net = cnn(3, 4, 40, 5, padding=1, pool=2, dtype=F64)
    upper = lipschitz_upper(net, (3, 40, 40))
    data = torch.randn((3, 3, 40, 40), generator=gen(11), dtype=F64)
    assert lipschitz_lower(net, data, n_random=2, adversarial_steps=0) <= upper


# ------------------------------------------------------------------ lower bound
def test_lower_bound_is_exact_for_a_linear_map_and_deterministic():
    torch.manual_seed(12)
    layer = nn.Linear(4, 3).double()
    data = torch.randn((5, 4), generator=gen(12), dtype=F64)
    exact = float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2))
    assert lipschitz_lower(layer, data) == pytest.approx(exact, rel=1e-12)
    assert lipschitz_lower(layer, data, target=1) == pytest.approx(
        float(layer.weight.detach()[1].norm()), rel=1e-12
    )
    net = mlp(4, 8, 2)
    a = lipschitz_lower(net, data, seed=3)
    assert a == lipschitz_lower(net, data, seed=3)
    assert a != lipschitz_lower(net, data, seed=4)  # the seed draws the perturbations


def test_gradient_ascent_finds_the_steepest_point():
    """Aligned tanh net: steepest at x = 0, where the upper bound is attained; from a
    row at 0.8 the rows alone see about half of it, 20 ascent steps nearly all."""
    net = _one_d(nn.Tanh(), True, seed=5)
    upper = lipschitz_upper(net, (1,))
    data = torch.tensor([[0.8]], dtype=F64)
    rows_only = lipschitz_lower(net, data, n_random=0, adversarial_steps=0)
    ascent = lipschitz_lower(net, data, n_random=0, radius=1.0, adversarial_steps=20)
    assert rows_only < 0.6 * upper
    assert 0.99 * upper < ascent <= upper


def test_lower_bound_uses_secants_where_gradients_vanish():
    """Hardtanh saturates at -2 and 2 (gradient 0 there); the secant between the two
    rows, (1 - (-1)) / 4 = 1/2, is still a lower bound."""
    net = nn.Sequential(nn.Hardtanh())
    data = torch.tensor([[-2.0], [2.0]], dtype=F64)
    assert lipschitz_lower(net, data, n_random=0, adversarial_steps=0) == 0.5
    assert lipschitz_lower(net, data[:1], n_random=0, adversarial_steps=0) == 0.0
    assert lipschitz_lower(net, data) <= lipschitz_upper(net, (1,)) == 1.0


# ------------------------------------------------------------------ cache
def test_cache_is_reused_and_invalidated(monkeypatch):
    net = mlp(5, 16, 3)
    first = lipschitz_upper(net, (5,))
    calls = []
    real = lip._bound
    monkeypatch.setattr(lip, "_bound", lambda *a: calls.append(1) or real(*a))
    assert lipschitz_upper(net, (5,)) == first
    assert calls == []  # served from the cache
    with torch.no_grad():
        net[2].weight.mul_(2)  # in place: same storage, new version
    assert lipschitz_upper(net, (5,)) == pytest.approx(2 * first, rel=1e-12)
    assert calls == [1]
    assert lipschitz_upper(net, (5,), target=1) <= 2 * first  # its own key
    assert calls == [1, 1]
    net[1] = nn.Sigmoid().eval()  # a layer replaced: no parameter or mode changes
    assert lipschitz_upper(net, (5,)) == pytest.approx(first / 2, rel=1e-12)
    net[1] = nn.LeakyReLU(2.0).eval()
    assert lipschitz_upper(net, (5,)) == pytest.approx(4 * first, rel=1e-12)
    net[1].negative_slope = -3.0  # a hyperparameter changed in place
    assert lipschitz_upper(net, (5,)) == pytest.approx(6 * first, rel=1e-12)


# ------------------------------------------------------------------ errors
class _Custom(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (nn.Sequential(nn.Linear(3, 3), nn.GELU()), r"unsupported layer 1 \(GELU\)"),
        (nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU(), nn.ELU())), r"layer 1\.1 \(ELU\)"),
        (nn.Sequential(_Custom()), r"layer 0 \(_Custom\)"),
        (nn.LSTM(3, 3), r"\(LSTM\)"),
        (
            nn.Sequential(nn.Linear(3, 3), nn.Dropout()).train(),
            r"layer 1 \(Dropout\).*model\.eval\(\)",
        ),
        (nn.Sequential(nn.BatchNorm1d(3)).train(), r"model\.eval\(\)"),
        (nn.Sequential(nn.BatchNorm1d(3, track_running_stats=False)).eval(), "running statistics"),
        (nn.Sequential(nn.Linear(4, 3)), "input_shape: layer 0 \\(Linear\\)"),
        (nn.Sequential(nn.Softmax(dim=0)), "batch"),
    ],
)
def test_unsupported_models_are_named(model, match):
    with pytest.raises(ValueError, match=match):
        lipschitz_upper(model, (3,))


def test_bad_arguments():
    net = mlp(3, 4, 2)
    conv = nn.Conv1d(1, 1, 3, padding=1, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode='reflect'"):
        lipschitz_upper(conv, (1, 5))
    with pytest.raises(TypeError, match="model"):
        lipschitz_upper(lambda x: x, (3,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="input_shape"):
        lipschitz_upper(net, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_shape"):
        lipschitz_upper(net, (0,))
    with pytest.raises(ValueError, match="target"):
        lipschitz_upper(net, (3,), target=2)
    with pytest.raises(TypeError, match="target"):
        lipschitz_upper(net, (3,), target=1.0)  # type: ignore[arg-type]
    data = torch.randn(4, 3, dtype=F64)
    with pytest.raises(ValueError, match="radius"):
        lipschitz_lower(net, data, radius=-1.0)
    with pytest.raises(ValueError, match="data"):
        lipschitz_lower(net, data[0])
    with pytest.raises(ValueError, match="n_random"):
        lipschitz_lower(net, data, n_random=-1)
    with pytest.raises(ValueError, match="target"):
        lipschitz_lower(net, data, target=5)
    with pytest.raises(ValueError, match=r"model\.eval\(\)"):
        lipschitz_lower(nn.Sequential(nn.Linear(3, 3), nn.Dropout()).train(), data)


def test_cache_sees_writes_through_data_numpy_and_attributes():
    # version counters miss writes through .data and numpy: the fingerprint hashes values
    net = nn.Sequential(nn.Linear(3, 3)).to(F64).eval()
    first = lipschitz_upper(net, (3,))
    nn.init.normal_(net[0].weight.data, std=10.0)
    exact = float(torch.linalg.matrix_norm(net[0].weight.detach(), ord=2))
    assert lipschitz_upper(net, (3,)) == pytest.approx(exact, rel=1e-12) != first
    net[0].weight.detach().numpy()[:] *= 2.0
    assert lipschitz_upper(net, (3,)) == pytest.approx(2 * exact, rel=1e-12)
    pool = nn.AvgPool2d(2, 1)  # divisor_override is not in AvgPool's repr
    model = nn.Sequential(pool)
    before = lipschitz_upper(model, (1, 4, 4))
    pool.divisor_override = 1
    assert lipschitz_upper(model, (1, 4, 4)) == pytest.approx(4 * before, rel=1e-12)


def test_hooks_and_indices_are_refused():
    net = nn.Sequential(nn.Linear(3, 3), nn.Tanh()).eval()
    handle = net[1].register_forward_hook(lambda m, i, o: 100 * o)
    with pytest.raises(ValueError, match=r"layer 1 \(Tanh\) has forward hooks"):
        lipschitz_upper(net, (3,))
    handle.remove()
    lipschitz_upper(net, (3,))
    net.register_forward_pre_hook(lambda m, i: (10 * i[0],))
    with pytest.raises(ValueError, match="forward hooks"):
        lipschitz_upper(net, (3,))
    with pytest.raises(ValueError, match="return_indices"):
        lipschitz_upper(nn.Sequential(nn.MaxPool1d(2, return_indices=True)), (1, 4))
    with pytest.raises(ValueError, match=r"data: the model cannot take rows of shape \(5,\)"):
        lipschitz_lower(nn.Linear(3, 2), torch.randn(4, 5, generator=gen(0)))
