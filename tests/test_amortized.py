"""xattr.amortized: AmortizedExplainer trained with FastSHAP or by regression.

The linear-model tests hold the mathematics: for f(x) = w.x + c under baseline removal
the game is additive, v(S) - v(empty) = sum_{i in S} w_i (x_i - b_i), so FastSHAP's loss
is exactly 0 at the Shapley values phi_i = w_i (x_i - b_i), whatever coalitions are
drawn; a network that can represent them (a linear map of x: the "mlp" backbone with
hidden=()) is then trained to them up to float32 optimisation error only.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests._helpers import F32, F64, gen
from xattr.amortized import AmortizedExplainer
from xattr.explainers import ExactShapley, KernelShap
from xattr.explainers.removal import BaselineRemoval, MarginalRemoval

D = 5


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The explainer networks here are tiny: many small steps, where a second thread
    only adds synchronisation (on a loaded machine, tenfold). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def linear_model(n_out: int = 0, d: int = D, seed: int = 1):
    """f(x) = x W' + c: [B, d] -> [B] (n_out = 0) or [B, n_out]; returns (f, W, c)."""
    g = gen(seed)
    W = torch.randn(max(n_out, 1), d, generator=g, dtype=F64)
    c = torch.randn(max(n_out, 1), generator=g, dtype=F64)

    def f(x: torch.Tensor) -> torch.Tensor:
        out = x @ W.T.to(x.dtype) + c.to(x.dtype)
        return out[:, 0] if n_out == 0 else out

    return f, W, c


def data(n: int, d: int = D, seed: int = 2, dtype=F32) -> torch.Tensor:
    return torch.randn(n, d, generator=gen(seed), dtype=F64).to(dtype)


def tanh_mlp(d: int, dtype=F32):
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, 1)).to(dtype).eval()
    return lambda x: net(x)[:, 0]


FIT = {"epochs": 40, "batch_size": 32, "lr": 3e-2, "n_coalitions": 4, "show_progress": False}


# ------------------------------------------------------------------ FastSHAP
def test_fastshap_linear_model_recovers_exact_shapley_values():
    f, W, _ = linear_model()
    b = torch.full((D,), 0.5)
    ae = AmortizedExplainer(f, "mlp", input_shape=(D,), hidden=())
    ae.fit(data(256), baselines=b, patience=None, **FIT)
    x = data(64, seed=7)
    exact = W[0].float() * (x - b)
    # the loss is 0 at the exact values and the linear net represents them: what is left
    # is float32 optimisation error (observed ~3e-7 against values of size ~2)
    torch.testing.assert_close(ae.attribute(x), exact, rtol=0, atol=1e-4)
    assert ae.history[ae.best_epoch]["val_loss"] < 1e-8


def test_fastshap_relu_mlp_close_to_exact_shapley_values():
    f, W, _ = linear_model()
    ae = AmortizedExplainer(f, "mlp", input_shape=(D,), hidden=(32,))
    ae.fit(data(512), patience=None, **{**FIT, "epochs": 30, "batch_size": 64, "lr": 1e-2})
    x = data(64, seed=7)
    exact = W[0].float() * x
    # ReLU layers approximate the linear map (observed max error ~4 % of max |phi|)
    assert (ae.attribute(x) - exact).abs().max() < 0.1 * exact.abs().max()


def test_fastshap_nonlinear_game_close_to_exact_shapley_values():
    # a 4-way interaction with two dummy features: the Shapley-kernel coalitions matter.
    # Observed relative MSE ~1.3 % on held-out inputs; paired uniform (Bernoulli 1/2)
    # coalitions instead give ~6 % (their efficient least-squares value is Banzhaf plus
    # an equal share of the efficiency gap, so the dummies get a share).
    d = 6

    def model(x: torch.Tensor) -> torch.Tensor:
        return 4 * torch.sigmoid(3 * x[:, :4]).prod(1)

    b = torch.full((1, d), -1.0)
    x_test = data(128, d=d, seed=5)
    exact = ExactShapley(model).attribute(x_test, baselines=b)
    ae = AmortizedExplainer(model, "mlp", input_shape=(d,), hidden=(64, 64))
    ae.fit(data(1024, d=d), baselines=b, epochs=30, batch_size=64, lr=3e-3, n_coalitions=8,
           show_progress=False, patience=None)  # fmt: skip
    rel = ((ae.attribute(x_test) - exact) ** 2).mean() / (exact**2).mean()
    assert rel < 0.03


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
def test_efficiency_exact_after_normalisation(dtype):
    f, _, _ = linear_model(seed=4)
    g = tanh_mlp(D, dtype)
    model = lambda x: f(x) + 3 * g(x)  # noqa: E731  (a nonlinear game)
    ae = AmortizedExplainer(model, "mlp", input_shape=(D,), hidden=(8,), dtype=dtype)
    ae.fit(data(32, dtype=dtype), epochs=1, batch_size=16, show_progress=False)
    x = data(16, seed=9, dtype=dtype)
    b = torch.full((1, D), -0.25, dtype=dtype)
    phi = ae.attribute(x, baselines=b)
    gap = (model(x) - model(b)).to(F64)
    tol = {F32: 1e-5, F64: 1e-10}[dtype]
    assert phi.dtype == dtype
    torch.testing.assert_close(phi.to(F64).sum(1), gap, rtol=0, atol=tol)


@pytest.mark.parametrize("objective", ["fastshap", "regression"])
def test_multiclass_head_recovers_every_class(objective):
    # regression: KernelShap's default 512 coalitions enumerate the 30 of d = 5 (exact)
    C = 3
    f, W, _ = linear_model(n_out=C, seed=5)
    ae = AmortizedExplainer(f, "mlp", input_shape=(D,), hidden=(), n_classes=C)
    ae.fit(data(256), objective=objective, patience=None, **FIT)
    x = data(32, seed=8)
    exact = W.float()[None] * x[:, None]  # [B, C, d]
    all_classes = ae.attribute(x, target="all")
    assert all_classes.shape == (32, C, D)
    torch.testing.assert_close(all_classes, exact, rtol=0, atol=1e-4)
    torch.testing.assert_close(ae.attribute(x, target=2), exact[:, 2], rtol=0, atol=1e-4)
    per_example = [i % C for i in range(32)]
    got = ae.attribute(x, target=per_example)
    torch.testing.assert_close(got, exact[torch.arange(32), per_example], rtol=0, atol=1e-4)
    torch.testing.assert_close(ae.attribute(x, target=-1), ae.attribute(x, target=2))


def test_feature_groups_and_marginal_removal():
    # players = 2 groups of a linear model under marginal removal: phi_g = sum_{i in g}
    # w_i (x_i - mean of the background)
    f, W, _ = linear_model(seed=6)
    mask = torch.tensor([0, 0, 1, 1, 1])
    bg = data(8, seed=11)
    ae = AmortizedExplainer(f, "mlp", input_shape=(D,), feature_mask=mask, hidden=())
    ae.fit(data(256), removal=MarginalRemoval(bg), patience=None, **FIT)
    x = data(16, seed=12)
    contrib = W[0].float() * (x - bg.mean(0))
    groups = torch.stack([contrib[:, :2].sum(1), contrib[:, 2:].sum(1)], 1)
    torch.testing.assert_close(ae.attribute(x), groups[:, mask], rtol=0, atol=1e-4)
    torch.testing.assert_close(ae.attribute(x, return_input_shape=False), groups, rtol=0, atol=1e-4)


def test_cnn_backbone_over_patches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval()
    patches = (torch.arange(8)[:, None] // 4 * 2 + torch.arange(8)[None] // 4).view(1, 8, 8)
    x = torch.randn(24, 1, 8, 8, generator=gen(0))
    ae = AmortizedExplainer(
        model, "cnn", input_shape=(1, 8, 8), feature_mask=patches, n_classes=4, channels=(4, 8)
    )
    assert ae.d == 4
    ae.fit(x, epochs=2, batch_size=8, show_progress=False)
    phi = ae.attribute(x[:3], target=1)
    assert phi.shape == (3, 1, 8, 8)
    per = ae.attribute(x[:3], target=1, return_input_shape=False)
    torch.testing.assert_close(phi[:, 0, :4, :4], per[:, :1, None].expand(3, 4, 4))
    gap = (model(x[:3]) - model(torch.zeros(1, 1, 8, 8)))[:, 1]
    torch.testing.assert_close(per.sum(1), gap, rtol=0, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 8, 8), (8, 8)], ids=["CHW", "HW"])
def test_cnn_backbone_learns_a_linear_model_over_patches(shape):
    # the game is additive: the exact Shapley value of a patch is the sum of w * x over
    # its pixels; the default (patch-stem) CNN learns it from FastSHAP's loss alone
    # (observed relative MSE 6e-3 after 20 epochs; ~0.7 after 1). [B, H, W] inputs too.
    W = torch.randn(8, 8, generator=gen(1), dtype=F64).float()
    model = lambda x: (x.reshape(-1, 8, 8) * W).flatten(1).sum(1)  # noqa: E731
    patches = (torch.arange(8)[:, None] // 4 * 2 + torch.arange(8)[None] // 4).view(shape)
    x = torch.randn(512, *shape, generator=gen(0))
    x_test = torch.randn(64, *shape, generator=gen(7))
    exact = torch.stack([(x_test * W.view(shape) * (patches == k)).flatten(1).sum(1)
                         for k in range(4)], 1)  # fmt: skip
    ae = AmortizedExplainer(model, "cnn", input_shape=shape, feature_mask=patches)
    ae.fit(x, epochs=20, batch_size=32, lr=1e-2, n_coalitions=4, patience=None,
           show_progress=False)  # fmt: skip
    phi = ae.attribute(x_test, return_input_shape=False)
    assert ((phi - exact) ** 2).mean() < 0.05 * (exact**2).mean()


class CountingModel:
    """A model that counts the rows it evaluates."""

    def __init__(self, f):
        self.f, self.rows = f, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return self.f(x)


class OwnRemoval(BaselineRemoval):
    """A removal written outside xattr (it could read the inputs): v(empty) per example."""


@pytest.mark.parametrize("n_classes", [None, 3])
def test_attribute_costs_one_model_row_per_input(n_classes):
    f, _, _ = linear_model(n_out=n_classes or 0, seed=3)
    model = CountingModel(f)
    ae = AmortizedExplainer(model, "mlp", input_shape=(D,), hidden=(8,), n_classes=n_classes)
    ae.fit(data(32), baselines=0.5, epochs=1, batch_size=16, show_progress=False)
    x = data(16, seed=4)
    target = None if n_classes is None else [i % 3 for i in range(16)]
    model.rows = 0
    phi = ae.attribute(x, target=target)
    assert model.rows == 16  # v(N) per input; v(empty) kept from fit
    model.rows = 0
    assert torch.equal(ae.attribute(x, target=target, baselines=torch.full((D,), 0.5)), phi)
    assert model.rows == 16  # the fit's baselines, given again: still kept
    model.rows = 0
    per_example = ae.attribute(x, target=target, removal=OwnRemoval())
    assert model.rows == 2 * 16
    assert torch.equal(phi, per_example)
    model.rows = 0
    other = ae.attribute(x, target=target, baselines=-1.0)
    assert model.rows == 16 + 1  # other baselines: v(empty) on one row
    # the game is additive: another baseline moves each feature's value by w_i * 1.5
    # only through the efficiency gap, shared equally
    t = 0 if n_classes is None else torch.tensor(target)
    shift = (f(torch.full((1, D), 0.5)) - f(torch.full((1, D), -1.0))).reshape(-1)
    shift = shift[t] if n_classes is not None else shift
    torch.testing.assert_close(other - phi, (shift / D).reshape(-1, 1).expand(16, D))


def test_kept_empty_value_equals_the_recomputed_one(tmp_path):
    # v(empty) kept at the end of fit (and after load) against v(empty) computed in
    # the call: a class head under marginal removal, whose v(empty) averages the
    # background rows
    f, _, _ = linear_model(n_out=3, seed=6)
    g = tanh_mlp(D)
    model = lambda x: f(x) + g(x)[:, None]  # noqa: E731
    background = data(5, seed=11)
    removal = MarginalRemoval(background)
    ae = AmortizedExplainer(model, "mlp", input_shape=(D,), hidden=(8,), n_classes=3)
    ae.fit(data(32), removal=removal, epochs=1, batch_size=16, show_progress=False)
    x = data(8, seed=12)
    kept = ae.attribute(x, target="all")
    recomputed = ae.attribute(x, target="all", removal=MarginalRemoval(background.clone()))
    torch.testing.assert_close(kept, recomputed, rtol=0, atol=1e-6)
    gap = model(x) - model(background).mean(0)
    torch.testing.assert_close(kept.sum(-1), gap.to(kept.dtype), rtol=0, atol=1e-5)
    ae.save(tmp_path / "m.pt")
    back = AmortizedExplainer.load(tmp_path / "m.pt", model, removal=removal)
    assert back._v_empty is not None
    torch.testing.assert_close(back._v_empty[0], ae._v_empty[0], rtol=0, atol=0)
    assert torch.equal(back.attribute(x, target="all"), kept)


# ------------------------------------------------------------------ regression
def test_regression_to_kernel_shap_targets():
    d = 6
    model = tanh_mlp(d)
    x, x_test = data(512, d=d), data(64, d=d, seed=5)
    ae = AmortizedExplainer(model, "mlp", input_shape=(d,), hidden=(64,))
    # 62 = 2^6 - 2 coalitions <= 64: KernelShap enumerates, the targets are exact
    ae.fit(x, objective="regression", target_samples=64, epochs=40, batch_size=64, lr=1e-2,
           show_progress=False, patience=None)  # fmt: skip
    assert len(ae._target_cache) == 2  # train and validation targets, computed once
    ref = KernelShap(model).attribute(x_test, n_samples=64, seed=0)
    # held-out error relative to the attributions' size (observed ~1 %): the network
    # generalises from 410 inputs; a net that ignored the targets is off by ~100 %
    rel = ((ae.attribute(x_test) - ref) ** 2).mean() / (ref**2).mean()
    assert rel < 0.1
    cached = dict(ae._target_cache)
    ae.fit(x, objective="regression", target_samples=64, epochs=1, show_progress=False)
    assert ae._target_cache.keys() == cached.keys()  # same data and settings: reused
    assert all(ae._target_cache[k] is cached[k] for k in cached)


def test_regression_with_shapley_value_sampling():
    f, W, _ = linear_model(seed=2)
    ae = AmortizedExplainer(f, "mlp", input_shape=(D,), hidden=())
    ae.fit(data(256), objective="regression", target_explainer="shapley_value_sampling",
           target_samples=2, patience=None, **FIT)  # fmt: skip
    x = data(16, seed=3)
    # permutation sampling is exact on an additive game: the targets are exact
    torch.testing.assert_close(ae.attribute(x), W[0].float() * x, rtol=0, atol=1e-4)


# ------------------------------------------------------------------ reproducibility
MODEL = tanh_mlp(D)


def _fitted(init_seed: int, **kw) -> AmortizedExplainer:
    ae = AmortizedExplainer(MODEL, "mlp", input_shape=(D,), hidden=(16,), seed=init_seed)
    return ae.fit(data(64), epochs=3, batch_size=16, show_progress=False, **kw)


def test_same_seed_bitwise_identical_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = _fitted(0), _fitted(0)
    assert torch.equal(torch.random.get_rng_state(), before)  # forked, then restored
    for (na, pa), (nb, pb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)
    x = data(8, seed=4)
    assert torch.equal(a.attribute(x), b.attribute(x))
    assert a.history == b.history


def test_different_seeds_differ():
    a, b = _fitted(0), _fitted(1)
    x = data(8, seed=4)
    assert not torch.equal(a.attribute(x), b.attribute(x))
    c = _fitted(0, seed=5)  # same initial weights, another training seed
    assert not torch.equal(a.attribute(x), c.attribute(x))


def test_save_load_round_trip(tmp_path):
    f, _, _ = linear_model(n_out=3, seed=5)
    ae = AmortizedExplainer(f, "mlp", input_shape=(D,), hidden=(8,), n_classes=3)
    ae.fit(data(32), baselines=0.25, epochs=2, batch_size=16, show_progress=False)
    path = tmp_path / "ae.pt"
    ae.save(path)
    back = AmortizedExplainer.load(path, f)
    x = data(8, seed=6)
    assert torch.equal(back.attribute(x, target="all"), ae.attribute(x, target="all"))
    assert back.config() == ae.config()
    with pytest.raises(ValueError, match=r"input_shape: the saved explainer takes inputs \(5,\)"):
        AmortizedExplainer.load(path, f, input_shape=(6,))
    with pytest.raises(ValueError, match="feature_mask: gives d = 2 features"):
        AmortizedExplainer.load(path, f, feature_mask=torch.tensor([0, 0, 1, 1, 1]))
    g, _, _ = linear_model(n_out=4)
    with pytest.raises(ValueError, match="predicts 3 output.*the model returns 4"):
        AmortizedExplainer.load(path, g)


def test_save_load_custom_network(tmp_path):
    model = tanh_mlp(D)

    def net() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, D))

    ae = AmortizedExplainer(model, net(), input_shape=(D,))
    ae.fit(data(32), epochs=2, batch_size=16, show_progress=False)
    ae.save(tmp_path / "c.pt")
    with pytest.raises(ValueError, match="explainer_net: the explainer was saved with a user"):
        AmortizedExplainer.load(tmp_path / "c.pt", model)
    fresh = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, D))
    back = AmortizedExplainer.load(tmp_path / "c.pt", model, explainer_net=fresh)
    x = data(4, seed=1)
    assert torch.equal(back.attribute(x), ae.attribute(x))


# ------------------------------------------------------------------ errors
def test_errors():
    f, _, _ = linear_model()
    x = data(16)
    with pytest.raises(ValueError, match="explainer_net: expected one of"):
        AmortizedExplainer(f, "resnet", input_shape=(D,))
    with pytest.raises(TypeError, match="explainer_net: expected one of"):
        AmortizedExplainer(f, 3, input_shape=(D,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="explainer_net: expected \\[B, 5\\]"):
        AmortizedExplainer(f, nn.Linear(D, 4), input_shape=(D,))
    with pytest.raises(ValueError, match="input_shape: the 'cnn' backbone needs images"):
        AmortizedExplainer(f, "cnn", input_shape=(D,))
    with pytest.raises(TypeError, match="input_shape: expected a tuple of positive ints"):
        AmortizedExplainer(f, input_shape=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="hidden: expected a tuple of positive ints"):
        AmortizedExplainer(f, input_shape=(D,), hidden=64)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_classes: expected a positive int, got 0"):
        AmortizedExplainer(f, input_shape=(D,), n_classes=0)
    ae = AmortizedExplainer(f, input_shape=(D,), hidden=(4,))
    with pytest.raises(ValueError, match="attribute: the explainer is not trained"):
        ae.attribute(x)
    with pytest.raises(ValueError, match="objective: expected one of"):
        ae.fit(x, objective="shap")
    with pytest.raises(ValueError, match="n_coalitions: expected a positive int, got 0"):
        ae.fit(x, n_coalitions=0)
    with pytest.raises(ValueError, match=r"x_train: expected \[B, 5\]"):
        ae.fit(data(16, d=4))
    with pytest.raises(ValueError, match="lr: expected a positive float"):
        ae.fit(x, lr=0.0)
    with pytest.raises(ValueError, match="val_fraction: expected a float in"):
        ae.fit(x, val_fraction=1.5)
    with pytest.raises(ValueError, match="target_explainer: expected one of"):
        ae.fit(x, objective="regression", target_explainer="lime")
    with pytest.raises(ValueError, match="baselines: the amortized explainer needs baselines"):
        ae.fit(x, baselines=torch.zeros(16, D))
    ae.fit(x, epochs=1, show_progress=False)
    with pytest.raises(ValueError, match=r"inputs: expected \[B, 5\]"):
        ae.attribute(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="inputs: the amortized explainer explains one input"):
        ae.attribute((x,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="feature_mask: gives d = 2 features, the explainer"):
        ae.attribute(x, feature_mask=torch.tensor([0, 0, 1, 1, 1]))
    with pytest.raises(ValueError, match="target: the network was trained for target=None"):
        ae.attribute(x, target=1)
    multi = AmortizedExplainer(linear_model(3)[0], input_shape=(D,), hidden=(4,), n_classes=3)
    with pytest.raises(ValueError, match="target: with n_classes the network learns"):
        multi.fit(x, target=0)
    multi.fit(x, epochs=1, show_progress=False)
    with pytest.raises(ValueError, match="target: index 3 out of range for n_classes = 3"):
        multi.attribute(x, target=3)
    with pytest.raises(ValueError, match="target: index -4 out of range"):
        multi.attribute(x, target=[0] * 15 + [-4])
    with pytest.raises(ValueError, match="target: the network predicts 3 classes"):
        multi.attribute(x)
    wrong = AmortizedExplainer(linear_model(4)[0], input_shape=(D,), hidden=(4,), n_classes=3)
    with pytest.raises(ValueError, match="n_classes: the explainer predicts 3 output.*returns 4"):
        wrong.fit(x)
