"""SSIM (against scikit-image when installed, a scipy.ndimage reference and closed
forms) and the cascading model-randomisation test (Adebayo et al., 2018)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

import xattr
from tests._helpers import gen, randn
from xattr.metrics.agreement import spearman
from xattr.metrics.sanity import RandomizationResult, cascading_randomization, ssim

F32, F64 = torch.float32, torch.float64


def _ssim_reference(a: np.ndarray, b: np.ndarray, R: float, sigma: float = 1.5) -> float:
    """Wang et al. (2004) with scipy's Gaussian filter (truncate 3.5), edges cropped."""
    f = {"sigma": sigma, "truncate": 3.5, "mode": "reflect"}
    ux, uy = ndimage.gaussian_filter(a, **f), ndimage.gaussian_filter(b, **f)
    vx = ndimage.gaussian_filter(a * a, **f) - ux * ux
    vy = ndimage.gaussian_filter(b * b, **f) - uy * uy
    vxy = ndimage.gaussian_filter(a * b, **f) - ux * uy
    c1, c2 = (0.01 * R) ** 2, (0.03 * R) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    r = int(3.5 * sigma + 0.5)
    return float(s[r:-r, r:-r].mean())


def _pair(*shape, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.rand(shape, generator=gen(seed), dtype=F64)
    return a, a + 0.4 * torch.rand(shape, generator=gen(seed + 1), dtype=F64)


# ------------------------------------------------------------------ SSIM
def test_ssim_matches_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    a, b = _pair(3, 20, 17, seed=1)
    kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    got = ssim(a, b, data_range=1.4)
    want = [
        metrics.structural_similarity(x.numpy(), y.numpy(), data_range=1.4, **kw)
        for x, y in zip(a, b)
    ]
    assert torch.allclose(got, torch.tensor(want, dtype=F64), atol=1e-12)
    a4, b4 = _pair(2, 3, 16, 16, seed=2)
    got = ssim(a4, b4, data_range=1.0)
    want = [
        metrics.structural_similarity(x.numpy(), y.numpy(), data_range=1.0, channel_axis=0, **kw)
        for x, y in zip(a4, b4)
    ]
    assert torch.allclose(got, torch.tensor(want, dtype=F64), atol=1e-12)


@pytest.mark.parametrize("sigma", [1.5, 1.0])
def test_ssim_matches_scipy_reference(sigma):
    a, b = _pair(4, 24, 19, seed=3)
    got = ssim(a, b, data_range=1.4, sigma=sigma)
    want = [_ssim_reference(x.numpy(), y.numpy(), 1.4, sigma) for x, y in zip(a, b)]
    assert torch.allclose(got, torch.tensor(want, dtype=F64), atol=1e-12)


def test_ssim_of_identical_maps_is_one():
    a = randn(3, 2, 15, 13, seed=4)
    assert ssim(a, a).tolist() == [1.0] * 3
    assert ssim(a.float(), a.float(), data_range=2.0).tolist() == [1.0] * 3
    const = torch.full((2, 12, 12), 0.3)
    assert ssim(const, const).tolist() == [1.0, 1.0]  # data range 0 from the pair


def test_ssim_closed_form_for_constant_maps():
    """Constant maps c, e: the variances vanish and SSIM = (2ce + C1) / (c^2 + e^2 + C1)."""
    c, e, R = 0.2, 0.7, 1.0
    got = ssim(
        torch.full((1, 12, 12), c, dtype=F64), torch.full((1, 12, 12), e, dtype=F64), data_range=R
    )
    c1 = (0.01 * R) ** 2
    assert got.item() == pytest.approx((2 * c * e + c1) / (c * c + e * e + c1), abs=1e-12)


def test_ssim_data_range_from_the_pair_and_channels():
    a, b = _pair(3, 2, 14, 14, seed=5)
    b[1] *= 3  # different ranges per example
    R = torch.maximum(a.amax(dim=(1, 2, 3)), b.amax(dim=(1, 2, 3))) - torch.minimum(
        a.amin(dim=(1, 2, 3)), b.amin(dim=(1, 2, 3))
    )
    got = ssim(a, b)
    for i in range(3):
        assert got[i] == pytest.approx(
            ssim(a[i : i + 1], b[i : i + 1], data_range=float(R[i])).item()
        )
        per_channel = [
            ssim(a[i : i + 1, c], b[i : i + 1, c], data_range=float(R[i])).item() for c in range(2)
        ]
        assert got[i].item() == pytest.approx(sum(per_channel) / 2)
    assert torch.allclose(ssim(a, b), ssim(b, a))  # symmetric
    assert bool((ssim(a, a.flip(-1)) < 0.5).all())  # a different map scores lower


def test_ssim_argument_checks():
    a = torch.rand(2, 12, 12, generator=gen(6))
    with pytest.raises(ValueError, match="^b"):
        ssim(a, a[:, :11])
    with pytest.raises(ValueError, match="^a"):
        ssim(a[0], a[0])
    with pytest.raises(TypeError, match="^a"):
        ssim(a.long(), a)
    with pytest.raises(TypeError, match="^b"):
        ssim(a, a.numpy())
    with pytest.raises(ValueError, match="^win_size"):
        ssim(a[:, :10, :10], a[:, :10, :10])
    with pytest.raises(ValueError, match="^win_size"):
        ssim(a, a, win_size=4)
    with pytest.raises(ValueError, match="^data_range"):
        ssim(a, a, data_range=0.0)
    with pytest.raises(ValueError, match="^sigma"):
        ssim(a, a, sigma=-1.0)
    assert ssim(a[:, :10, :10], a[:, :10, :10], win_size=7).tolist() == [1.0, 1.0]


# ------------------------------------------------------------------ cascading randomisation
def _cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 16 * 16, 4),
    ).eval()


def _images(seed: int = 0) -> torch.Tensor:
    return torch.randn(6, 1, 16, 16, generator=gen(seed))


def _saliency(m, x, t):
    return xattr.Saliency(m).attribute(x, target=t)


def test_row_zero_is_one_and_shapes():
    r = cascading_randomization(_cnn(), _saliency, _images(), target=1)
    assert isinstance(r, RandomizationResult)
    assert r.layers == ["5", "2", "0"]  # layers with parameters, from the output back
    assert r.ssim.shape == r.spearman.shape == (4, 6)
    assert r.ssim[0].tolist() == [1.0] * 6
    assert r.spearman[0].tolist() == [1.0] * 6
    assert bool((r.ssim <= 1).all() and (r.spearman <= 1).all())


def test_randomising_the_last_layer_lowers_similarity():
    """Gradients of a CNN depend on its last layer: after re-initialising it, every
    example's map is far from the original (observed below 0.35 over seeds)."""
    for seed in range(3):
        r = cascading_randomization(_cnn(seed), _saliency, _images(seed), target=0, seed=seed)
        assert bool((r.ssim[1:] < 0.6).all()), r.ssim
        assert bool((r.spearman[1:] < 0.6).all()), r.spearman


def test_model_independent_explanation_stays_identical():
    """The paper's edge-detector analogy: an explanation that ignores the model passes
    through the randomisation unchanged (the test flags it)."""
    r = cascading_randomization(_cnn(), lambda m, x, t: x.abs() * 2, _images(), target=0)
    assert r.ssim.tolist() == [[1.0] * 6] * 4
    assert r.spearman.tolist() == [[1.0] * 6] * 4


def test_deterministic_under_the_seed_and_leaves_rng_alone():
    model, x = _cnn(), _images()
    state = torch.get_rng_state()
    r1 = cascading_randomization(model, _saliency, x, target=2, seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is not consumed
    torch.manual_seed(123)  # the global state does not matter
    r2 = cascading_randomization(model, _saliency, x, target=2, seed=5)
    r3 = cascading_randomization(model, _saliency, x, target=2, seed=6)
    assert torch.equal(r1.ssim, r2.ssim) and torch.equal(r1.spearman, r2.spearman)
    assert not torch.equal(r1.spearman, r3.spearman)


def test_model_is_unchanged():
    model = _cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def explain(m, x, t):
        seen.append(m)
        return _saliency(m, x, t)

    cascading_randomization(model, explain, _images(), target=0)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert seen[0] is model and all(m is not model for m in seen[1:])
    assert not model.training


def test_steps_randomise_cumulatively():
    """Step k re-initialises layers[:k]: the parameters seen by explain change layer by
    layer, from the output backwards, and earlier layers stay randomised."""
    model = _cnn()
    snapshots = []

    def explain(m, x, t):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return _saliency(m, x, t)

    r = cascading_randomization(model, explain, _images(), target=0, layers=["5", "0"])
    assert r.layers == ["5", "0"] and r.ssim.shape == (3, 6)
    orig, step1, step2 = snapshots
    changed = lambda s: {k.split(".")[0] for k in s if not torch.equal(s[k], orig[k])}  # noqa: E731
    assert changed(step1) == {"5"}
    assert changed(step2) == {"5", "0"}
    assert torch.equal(step1["5.weight"], step2["5.weight"])


def test_blocks_and_custom_parameters():
    """A block name randomises everything under it; a module without
    reset_parameters gets a normal draw of its own scale."""

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.full((4,), 2.0) + torch.arange(4.0))

        def forward(self, x):
            return x * self.w

    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), Scale())
    model = nn.Sequential(block, nn.Linear(4, 2)).eval()
    x = randn(8, 5, dtype=F32, seed=7)
    seen = []

    def explain(m, x, t):
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return xattr.IntegratedGradients(m).attribute(x, target=t, n_steps=8)

    default = cascading_randomization(model, explain, x, target=0)
    assert default.layers == ["1", "0.2", "0.0"]
    assert torch.isnan(default.ssim[1:]).all()  # tabular attributions: no SSIM
    seen.clear()
    r = cascading_randomization(model, explain, x, target=0, layers=["0"])
    assert r.layers == ["0"]
    orig, after = seen
    assert not torch.equal(orig["0.2.w"], after["0.2.w"])
    assert not torch.equal(orig["0.0.weight"], after["0.0.weight"])
    assert torch.equal(orig["1.weight"], after["1.weight"])


def test_spearman_absolute_and_signed():
    """Row k is agreement.spearman between the original and step-k attributions, of
    their absolute values by default and of the signed values with absolute=False."""
    model, x = _cnn(), _images()
    outs = []

    def signed(m, x, t):
        outs.append(xattr.Saliency(m).attribute(x, target=t, abs=False))
        return outs[-1]

    r_abs = cascading_randomization(model, signed, x, target=0, layers=["5"])
    r_signed = cascading_randomization(model, signed, x, target=0, layers=["5"], absolute=False)
    a0, a1 = outs[:2]
    assert torch.equal(outs[2], a0) and torch.equal(outs[3], a1)
    assert torch.allclose(r_abs.spearman[1], spearman(a0.abs(), a1.abs()))
    assert torch.allclose(r_signed.spearman[1], spearman(a0, a1))
    assert not torch.allclose(r_abs.spearman[1], r_signed.spearman[1])
    assert torch.equal(r_abs.ssim, r_signed.ssim)  # SSIM always uses |attributions|


def test_normalisation_per_example():
    """SSIM and Spearman compare per-example normalised maps: scaling each example's
    attributions by a positive factor changes nothing."""
    model, x = _cnn(), _images()
    factor = torch.tensor([1.0, 10.0, 0.1, 3.0, 1e3, 1e-3]).view(6, 1, 1, 1)
    r1 = cascading_randomization(model, _saliency, x, target=0)
    r2 = cascading_randomization(model, lambda m, x, t: _saliency(m, x, t) * factor, x, target=0)
    assert torch.allclose(r1.ssim, r2.ssim, atol=1e-5)
    assert torch.allclose(r1.spearman, r2.spearman, atol=1e-6)


def test_tuple_inputs_and_small_maps():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 3), nn.Linear(2, 3)

        def forward(self, x, y):
            return self.a(x) * self.b(y)

    torch.manual_seed(0)
    model = Two().eval()
    xs = (randn(4, 6, dtype=F32, seed=8), randn(4, 2, dtype=F32, seed=9))
    r = cascading_randomization(
        model, lambda m, x, t: xattr.Saliency(m).attribute(x, target=t), xs, target=1
    )
    assert r.layers == ["b", "a"] and r.spearman.shape == (3, 4)
    assert torch.isnan(r.ssim[1:]).all() and r.ssim[0].tolist() == [1.0] * 4
    # 8 x 8 maps need a smaller window than 11
    torch.manual_seed(0)
    small = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Flatten(), nn.Linear(128, 2)).eval()
    xi = torch.randn(3, 3, 8, 8, generator=gen(10))
    with pytest.raises(ValueError, match="win_size"):
        cascading_randomization(small, _saliency, xi, target=0)
    r = cascading_randomization(small, _saliency, xi, target=0, win_size=5)
    assert r.ssim.shape == (3, 3) and bool(torch.isfinite(r.ssim).all())


def test_plot_writes_a_png(tmp_path):
    r = cascading_randomization(_cnn(), _saliency, _images(), target=0, show_progress=True)
    path = tmp_path / "cascade.png"
    r.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_layer_and_argument_errors():
    model, x = _cnn(), _images()
    with pytest.raises(ValueError, match="^layers.*'nope'"):
        cascading_randomization(model, _saliency, x, 0, layers=["5", "nope"])
    with pytest.raises(ValueError, match="^layers.*no parameters"):
        cascading_randomization(model, _saliency, x, 0, layers=["1"])  # a ReLU
    with pytest.raises(ValueError, match="^layers.*distinct"):
        cascading_randomization(model, _saliency, x, 0, layers=["5", "5"])
    with pytest.raises(ValueError, match="^layers"):
        cascading_randomization(model, _saliency, x, 0, layers=[])
    with pytest.raises(TypeError, match="^layers"):
        cascading_randomization(model, _saliency, x, 0, layers="5")
    with pytest.raises(TypeError, match="^layers"):
        cascading_randomization(model, _saliency, x, 0, layers=[5])
    with pytest.raises(ValueError, match="^layers"):
        cascading_randomization(nn.ReLU(), _saliency, x, 0)
    with pytest.raises(TypeError, match="^model"):
        cascading_randomization(lambda x: x, _saliency, x, 0)
    with pytest.raises(TypeError, match="^explain"):
        cascading_randomization(model, "saliency", x, 0)
    with pytest.raises(TypeError, match="^explain"):
        cascading_randomization(model, lambda m, x, t: 1.0, x, 0)
    with pytest.raises(TypeError, match="^seed"):
        cascading_randomization(model, _saliency, x, 0, seed=1.5)
    with pytest.raises(TypeError, match="^show_progress"):
        cascading_randomization(model, _saliency, x, 0, show_progress=1)
