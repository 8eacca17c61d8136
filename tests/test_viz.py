"""xattr.viz: Captum's image plots pixel for pixel, xattr's own pictures, shap's
Explanation. Everything draws with the Agg backend and is closed after the test."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import itertools  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from captum.attr import visualization as captum_viz  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from skimage import data as skdata  # noqa: E402
from skimage.transform import resize  # noqa: E402

import xattr  # noqa: E402
from tests._helpers import cnn  # noqa: E402
from xattr.viz import visualization as viz  # noqa: E402

METHODS = ["heat_map", "blended_heat_map", "original_image", "masked_image", "alpha_scaling"]
SIGNS = ["all", "positive", "negative", "absolute_value"]
# what Captum draws: every method with every sign except the two that cannot show signs
SUPPORTED = [
    (m, s)
    for m, s in itertools.product(METHODS, SIGNS)
    if not (s == "all" and m in ("masked_image", "alpha_scaling"))
]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _photo(size: int = 24) -> torch.Tensor:
    """scikit-image's astronaut, downsampled: a real RGB image [1, 3, size, size] in [0, 1]."""
    img = resize(skdata.astronaut(), (size, size), anti_aliasing=True)
    return torch.from_numpy(img).permute(2, 0, 1)[None].float()


@pytest.fixture(scope="module")
def photo_attr() -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
    """(attr [H, W, 3], image [H, W, 3]) as numpy for Captum, and the tensors [3, H, W]:
    IntegratedGradients of a seeded CNN on the photo."""
    x = _photo()
    model = cnn(3, 4, 24, 5, padding=1, dtype=torch.float32)
    attr = xattr.IntegratedGradients(model).attribute(x, target=2, n_steps=16)[0].detach()
    return attr.permute(1, 2, 0).numpy(), x[0].permute(1, 2, 0).numpy(), attr, x[0]


def _pixels(fig) -> np.ndarray:
    if not hasattr(fig.canvas, "buffer_rgba"):  # a Figure made without pyplot
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()


def _assert_same_pixels(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    differ = np.abs(a.astype(int) - b.astype(int)).max(-1) > 0
    assert differ.mean() == 0.0, f"{differ.sum()} of {differ.size} pixels differ"


# ------------------------------------------------------------------ Captum parity
@pytest.mark.parametrize("method,sign", SUPPORTED)
@pytest.mark.parametrize("colorbar", [False, True], ids=["plain", "colorbar"])
def test_visualize_image_attr_draws_captums_pixels(photo_attr, method, sign, colorbar):
    attr, img, _, _ = photo_attr
    kw = dict(method=method, sign=sign, show_colorbar=colorbar, title=f"{method} {sign}")
    kw.update(fig_size=(3, 3), use_pyplot=False)
    theirs, _ = captum_viz.visualize_image_attr(attr, img, **kw)
    ours, ax = viz.visualize_image_attr(attr, img, **kw)
    assert ax.get_title() == f"{method} {sign}"
    _assert_same_pixels(_pixels(ours), _pixels(theirs))


def test_visualize_image_attr_options_match_captum(photo_attr):
    """Non-default outlier_perc, cmap, alpha, a 0..255 image, a 2-D map, given axes."""
    attr, img, _, _ = photo_attr
    img255 = (img * 255).astype(np.uint8)
    for kw in [
        dict(method="blended_heat_map", sign="all", outlier_perc=10, alpha_overlay=0.8),
        dict(method="heat_map", sign="positive", cmap="viridis", outlier_perc=0),
        dict(method="masked_image", sign="absolute_value", outlier_perc=25),
    ]:
        for image, a in [(img255, attr), (img, attr.sum(2))]:
            f1 = plt.figure(figsize=(3, 3))
            captum_viz.visualize_image_attr(
                a, image, plt_fig_axis=(f1, f1.subplots()), use_pyplot=False, **kw
            )
            f2 = plt.figure(figsize=(3, 3))
            fig, ax = viz.visualize_image_attr(
                a, image, plt_fig_axis=(f2, f2.subplots()), use_pyplot=False, **kw
            )
            assert fig is f2 and ax is f2.axes[0]
            _assert_same_pixels(_pixels(f2), _pixels(f1))


def test_visualize_image_attr_takes_tensors_channels_first(photo_attr):
    attr, img, attr_t, img_t = photo_attr
    kw = dict(method="blended_heat_map", sign="all", fig_size=(3, 3), use_pyplot=False)
    theirs, _ = captum_viz.visualize_image_attr(attr, img, **kw)
    for a, x in [(attr_t, img_t), (attr_t[None], img_t[None])]:
        ours, _ = viz.visualize_image_attr(a, x, **kw)
        _assert_same_pixels(_pixels(ours), _pixels(theirs))


def test_visualize_image_attr_with_pyplot_shows_like_captum(photo_attr):
    attr, img, _, _ = photo_attr
    kw = dict(method="heat_map", sign="positive", fig_size=(3, 3))
    theirs, _ = captum_viz.visualize_image_attr(attr, img, **kw)
    ours, _ = viz.visualize_image_attr(attr, img, **kw)
    assert plt.fignum_exists(ours.number)  # made by pyplot, as Captum does
    _assert_same_pixels(_pixels(ours), _pixels(theirs))


def test_visualize_image_attr_multiple_draws_captums_pixels(photo_attr):
    attr, img, _, _ = photo_attr
    methods = ["original_image", "heat_map", "blended_heat_map", "alpha_scaling"]
    signs = ["all", "all", "negative", "positive"]
    kw = dict(titles=["image", "IG", "IG -", "IG +"], show_colorbar=True, use_pyplot=False)
    theirs, their_axes = captum_viz.visualize_image_attr_multiple(attr, img, methods, signs, **kw)
    ours, axes = viz.visualize_image_attr_multiple(attr, img, methods, signs, **kw)
    assert isinstance(axes, list) and len(axes) == len(their_axes) == 4
    _assert_same_pixels(_pixels(ours), _pixels(theirs))
    one, ax = viz.visualize_image_attr_multiple(attr, img, ["heat_map"], ["all"], use_pyplot=False)
    assert ax is one.axes[0]


def test_visualize_image_attr_parity_fails_for_another_drawing(photo_attr):
    """The pixel comparison sees a difference: another outlier percentage."""
    attr, img, _, _ = photo_attr
    kw = dict(method="heat_map", sign="all", fig_size=(3, 3), use_pyplot=False)
    theirs, _ = captum_viz.visualize_image_attr(attr, img, **kw)
    ours, _ = viz.visualize_image_attr(attr, img, outlier_perc=20, **kw)
    with pytest.raises(AssertionError, match="pixels differ"):
        _assert_same_pixels(_pixels(ours), _pixels(theirs))


BAD = [
    # (args, kwargs): Captum's exception type for each
    ((None,), dict(method="heatmap")),  # unknown method, no image: KeyError
    (("img",), dict(method="heatmap")),  # unknown method: AssertionError
    (("img",), dict(sign="both")),  # unknown sign: KeyError
    (("img",), dict(method="masked_image", sign="all")),  # AssertionError
    (("img",), dict(method="alpha_scaling", sign="all")),  # AssertionError
    ((None,), dict(method="blended_heat_map")),  # ValueError: image needed
]


@pytest.mark.parametrize("args,kw", BAD)
def test_visualize_image_attr_raises_captums_errors(photo_attr, args, kw):
    attr, img, _, _ = photo_attr
    args = tuple(img if a == "img" else a for a in args)
    with pytest.raises(Exception) as theirs:
        captum_viz.visualize_image_attr(attr, *args, use_pyplot=False, **kw)
    with pytest.raises(theirs.type) as ours:  # code catching Captum's error keeps working
        viz.visualize_image_attr(attr, *args, use_pyplot=False, **kw)
    assert isinstance(ours.value, ValueError)
    assert str(ours.value)


def test_visualize_image_attr_multiple_raises_captums_errors(photo_attr):
    attr, img, _, _ = photo_attr
    for args in [(["heat_map"], ["all", "all"]), (["heat_map"], ["all"], ["a", "b"])]:
        with pytest.raises(AssertionError):
            captum_viz.visualize_image_attr_multiple(attr, img, *args, use_pyplot=False)
        with pytest.raises(AssertionError, match="lengths|length must match") as ours:
            viz.visualize_image_attr_multiple(attr, img, *args, use_pyplot=False)
        assert isinstance(ours.value, ValueError)


def test_visualize_image_attr_shape_errors(photo_attr):
    attr, img, attr_t, _ = photo_attr
    with pytest.raises(ValueError, match="original_image: its height and width"):
        viz.visualize_image_attr(attr, img[:10], "blended_heat_map", use_pyplot=False)
    with pytest.raises(ValueError, match=r"attr: expected a tensor \[C, H, W\]"):
        viz.visualize_image_attr(attr_t[None, None], use_pyplot=False)
    with pytest.raises(ValueError, match=r"attr: expected a numpy array \[H, W, C\]"):
        viz.visualize_image_attr(attr[None], use_pyplot=False)


def test_visualize_image_attr_all_zero_map_draws_zeros(photo_attr):
    """Captum fails an assertion (division by 0); xattr warns and draws zeros."""
    _, img, _, _ = photo_attr
    zeros = np.zeros(img.shape)
    with pytest.raises(AssertionError):
        captum_viz.visualize_image_attr(zeros, img, use_pyplot=False)
    with pytest.warns(UserWarning, match="no absolute value attribution"):
        _, ax = viz.visualize_image_attr(zeros, img, use_pyplot=False)
    assert np.all(np.asarray(ax.images[0].get_array()) == 0)


def test_visualize_image_attr_one_channel_images(photo_attr):
    """A grey image [H, W, 1] works in every method (Captum's masked_image and
    alpha_scaling cannot draw it)."""
    attr, img, _, _ = photo_attr
    grey = img.mean(2, keepdims=True)
    for method in ("blended_heat_map", "original_image", "masked_image", "alpha_scaling"):
        _, ax = viz.visualize_image_attr(attr, grey, method, "positive", use_pyplot=False)
        assert ax.images


def test_import_xattr_viz_does_not_import_matplotlib():
    code = "import sys, xattr.viz; print('matplotlib' in sys.modules, 'shap' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------ xattr's own pictures
from matplotlib.collections import LineCollection  # noqa: E402
from sklearn.datasets import load_digits, load_wine  # noqa: E402

from xattr.metrics import deletion_curve, insertion_curve  # noqa: E402
from xattr.smoothing import MuS, certify, explain_and_certify, min_stable_fraction  # noqa: E402
from xattr.viz import (  # noqa: E402
    certified_radii,
    curves,
    feature_bars,
    image_attributions,
    text_html,
    to_explanation,
)


def _fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> torch.nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8 x 8 digits [B, 1, 8, 8] in [0, 1], a softmax regression trained
    on them, 2 x 2 superpixels, and the attributions of three methods on 3 digits."""
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16
    y = torch.tensor(d.target)
    torch.manual_seed(0)  # module fixtures run before the per-test seeding
    model = _fit(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), x, y, 60)
    seg = (torch.arange(8)[:, None] // 2) * 4 + torch.arange(8)[None] // 2  # 16 superpixels
    xs = x[:3]
    t = model(xs).argmax(1)
    fm = seg[None, None]
    attr = {
        "IG": xattr.IntegratedGradients(model).attribute(xs, target=t, n_steps=16).detach(),
        "KernelShap": xattr.KernelShap(model).attribute(
            xs, target=t, feature_mask=fm, n_samples=100, seed=0
        ),
        "Occlusion": xattr.Occlusion(model).attribute(
            xs, target=t, sliding_window_shapes=(1, 2, 2), strides=(1, 2, 2)
        ),
    }
    return model, x, y, seg, attr


def _colorbar_limits(fig) -> tuple[float, float]:
    bar_ax = fig.axes[-1]
    return bar_ax.get_ylim()


def test_image_attributions_grid_and_shared_scale(digits):
    _, x, _, seg, attr = digits
    fig = image_attributions(attr, x[:3], segments=seg, titles=["a", "b", "c"])
    grid = fig.axes[:-1]
    assert len(grid) == 3 * 4
    assert [ax.get_title() for ax in grid[:4]] == ["image", "IG", "KernelShap", "Occlusion"]
    assert [grid[4 * r].get_ylabel() for r in range(3)] == ["a", "b", "c"]
    # one scale over every map of every method: the 99.5th percentile of |values|
    all_maps = np.concatenate([a.sum(1).abs().numpy().ravel() for a in attr.values()])
    lo, hi = _colorbar_limits(fig)
    assert hi == pytest.approx(np.percentile(all_maps, 99.5)) and lo == pytest.approx(-hi)
    # the colours: a map pixel at the scale's top is the positive colour, 0 is white
    fig = image_attributions({"m": torch.tensor([[hi, 0.0], [-hi, hi / 2]])}, sign="all")
    rgba = fig.axes[0].images[0].get_array()
    assert tuple(np.round(rgba[0, 0, :3], 3)) == (0.8, 0.1, 0.15)
    assert tuple(np.round(rgba[1, 0, :3], 3)) == (0.13, 0.4, 0.75)
    assert np.allclose(rgba[0, 1, :3], 1.0, atol=0.01)


def test_image_attributions_scale_follows_the_largest_method(digits):
    _, x, _, _, attr = digits
    lo1, hi1 = _colorbar_limits(image_attributions(attr, x[:3]))
    bigger = dict(attr, Occlusion=attr["Occlusion"] * 10)
    lo2, hi2 = _colorbar_limits(image_attributions(bigger, x[:3]))
    assert hi2 > 5 * hi1  # shared: one method's scale moves every map's colours
    _, hi3 = _colorbar_limits(image_attributions(bigger, x[:3], scale="per_method"))
    assert hi3 == pytest.approx(1.0, abs=0.05)


def test_image_attributions_signs_overlay_and_outlines(digits):
    _, x, _, seg, attr = digits
    fig = image_attributions(attr, x[:3], sign="absolute_value")
    assert _colorbar_limits(fig)[0] == 0 and fig.axes[-1].get_ylabel() == "|attribution|"
    fig = image_attributions(attr, x[:3], sign="negative")
    assert _colorbar_limits(fig)[1] == 0
    # 8 x 8 images sit beside the maps; a photo-sized one is overlaid
    assert len(image_attributions(attr, x[:3]).axes[1].images) == 1
    big = {k: v.repeat_interleave(4, 2).repeat_interleave(4, 3) for k, v in attr.items()}
    big_x = x[:3].repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert len(image_attributions(big, big_x).axes[1].images) == 2
    # outlines: one edge per pair of neighbouring pixels in different superpixels
    fig = image_attributions(attr, x[:3], segments=seg)
    lines = [c for c in fig.axes[1].collections if isinstance(c, LineCollection)]
    edges = int((seg[:, 1:] != seg[:, :-1]).sum() + (seg[1:] != seg[:-1]).sum())
    assert [len(c.get_segments()) for c in lines] == [edges, edges]
    # no image: the maps alone
    assert len(image_attributions(attr).axes) == 3 * 3 + 1


def test_image_attributions_errors(digits):
    _, x, _, seg, attr = digits
    with pytest.raises(TypeError, match="attributions: expected a non-empty dict"):
        image_attributions(attr["IG"])
    with pytest.raises(ValueError, match="every method must have the same shape"):
        image_attributions({"a": attr["IG"], "b": attr["IG"][:2]})
    with pytest.raises(ValueError, match=r"image: expected 3 image\(s\) of 8 x 8"):
        image_attributions(attr, x[:2])
    with pytest.raises(ValueError, match="segments: expected an integer map"):
        image_attributions(attr, x[:3], segments=seg[:4])
    with pytest.raises(ValueError, match="segments: expected integer segment ids"):
        image_attributions(attr, x[:3], segments=seg + 0.5)
    with pytest.raises(ValueError, match="sign: expected one of"):
        image_attributions(attr, sign="both")
    with pytest.raises(ValueError, match=r"attributions\['a'\]: expected \[B, C, H, W\]"):
        image_attributions({"a": torch.zeros(8)})
    with pytest.raises(ValueError, match="contains NaN or Inf"):
        image_attributions({"a": torch.full((8, 8), float("nan"))})
    with pytest.raises(ValueError, match="titles: expected 3 row labels"):
        image_attributions(attr, titles=["a"])
    with pytest.raises(ValueError, match="overlay: True needs the image"):
        image_attributions(attr, overlay=True)


def test_text_html_colours_escapes_and_legend():
    tokens = ["a", "<script>alert(1)</script>", "good", "&", "film"]
    values = torch.tensor([0.0, -2.0, 4.0, 1.0, -4.0])
    out = text_html(tokens, values, title="KernelShap <b>")
    assert "<script" not in out and "&lt;script&gt;" in out and "&amp;" in out
    assert "KernelShap &lt;b&gt;" in out
    spans = [s for s in out.split("<span")[1:] if "title=" in s]
    assert len(spans) == len(tokens)
    # strength |value| / max |value|; red for positive, blue for negative
    assert "rgba(204, 26, 38, 1.000)" in spans[2] and 'title="4"' in spans[2]
    assert "rgba(33, 102, 191, 0.500)" in spans[1]
    assert "rgba(204, 26, 38, 0.250)" in spans[3]
    assert "linear-gradient" in out and ">-4<" in out and ">4<" in out
    # a shared vmax: the same value, the same colour in every snippet
    assert "rgba(204, 26, 38, 0.500)" in text_html(["x"], [4.0], vmax=8.0)
    assert "linear-gradient" not in text_html(["x"], [1.0], legend=False)


def test_text_html_errors():
    with pytest.raises(ValueError, match=r"expected \[T\] or \[1, T\] values with T = 2"):
        text_html(["a", "b"], torch.zeros(3))
    with pytest.raises(TypeError, match="tokens: expected a list of strings"):
        text_html("ab", torch.zeros(2))
    with pytest.raises(TypeError, match="tokens: expected a list of strings"):
        text_html([1, 2], torch.zeros(2))
    with pytest.raises(ValueError, match="NaN or Inf"):
        text_html(["a"], torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="vmax: expected a positive number"):
        text_html(["a"], torch.ones(1), vmax=0)


@pytest.fixture(scope="module")
def wine():
    """The wine data (standardised), a softmax regression on them and the attributions
    of three methods for one example against the mean."""
    w = load_wine()
    X = torch.tensor(w.data, dtype=torch.float64)
    X = (X - X.mean(0)) / X.std(0)
    torch.manual_seed(0)  # module fixtures run before the per-test seeding
    model = _fit(torch.nn.Linear(13, 3).double(), X, torch.tensor(w.target), 200)
    base = X.mean(0, keepdim=True)
    attr = {
        "KernelShap": xattr.KernelShap(model).attribute(
            X[:1], target=0, baselines=base, n_samples=300, seed=0
        ),
        "Lime": xattr.Lime(model).attribute(X[:1], target=0, baselines=base, n_samples=300),
        "IG": xattr.IntegratedGradients(model).attribute(X[:1], target=0, baselines=base),
    }
    return w.feature_names, X, model, base, attr


def test_feature_bars_order_top_k_and_shared_axis(wine):
    names, _, _, _, attr = wine
    fig = feature_bars(attr, names, top_k=5, title="wine")
    assert len(fig.axes) == 3 and fig.get_suptitle() == "wine"
    mean_abs = np.mean([a[0].abs().detach().numpy() for a in attr.values()], axis=0)
    top = np.argsort(-mean_abs, kind="stable")[:5]
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [names[i] for i in top] + ["other (8)"]
    assert len({ax.get_xlim() for ax in fig.axes}) == 1  # one value axis
    for ax, a in zip(fig.axes, attr.values()):
        widths = [p.get_width() for p in ax.patches]
        v = a[0].detach().numpy()
        rest = np.setdiff1d(np.arange(13), top)
        assert widths == pytest.approx(list(v[top]) + [v[rest].sum()])
        colors = [p.get_facecolor()[:3] for p in ax.patches[:5]]
        assert all((c[0] > c[2]) == (x >= 0) for c, x in zip(colors, v[top]))
    one = feature_bars(attr["IG"], names, top_k=None)
    assert len(one.axes[0].patches) == 13


def test_feature_bars_errors(wine):
    names, X, _, _, attr = wine
    with pytest.raises(ValueError, match="pick one example"):
        feature_bars(X[:2], names)
    with pytest.raises(ValueError, match="with d = 12 feature names"):
        feature_bars(attr["IG"], names[:12])
    with pytest.raises(TypeError, match="feature_names: expected a list of strings"):
        feature_bars(attr["IG"], "alcohol")
    with pytest.raises(ValueError, match="top_k: expected a positive int"):
        feature_bars(attr["IG"], names, top_k=0)
    with pytest.raises(ValueError, match="at least one method"):
        feature_bars({}, names)


def test_curves_mean_band_and_auc_in_legend(digits):
    model, x, _, seg, attr = digits
    xs = x[:12]
    t = model(xs).argmax(1)
    ig = xattr.IntegratedGradients(model).attribute(xs, target=t, n_steps=16).detach()
    noise = torch.randn(xs.shape, generator=torch.Generator().manual_seed(0))
    fm = seg[None, None]
    res = {
        kind: {
            "IG": fn(model, xs, ig, target=t, feature_mask=fm),
            "random": fn(model, xs, noise, target=t, feature_mask=fm),
        }
        for kind, fn in (("Deletion", deletion_curve), ("Insertion", insertion_curve))
    }
    fig = curves(res, title="digits")
    assert [ax.get_title() for ax in fig.axes] == ["Deletion", "Insertion"]
    for ax, panel in zip(fig.axes, res.values()):
        lines = ax.get_lines()
        for line, (name, c) in zip(lines, panel.items()):
            assert line.get_ydata() == pytest.approx(c.values.mean(0).numpy())
            se = c.auc.std() / len(c.auc) ** 0.5
            assert line.get_label() == f"{name} (AUC {c.auc.mean():.3f} ± {se:.3f})"
        assert len(ax.collections) == 2  # the bands
    # one method keeps its colour in both panels
    assert fig.axes[0].get_lines()[1].get_color() == fig.axes[1].get_lines()[1].get_color()
    one = curves(res["Deletion"], band=False)
    assert len(one.axes) == 1 and not one.axes[0].collections


def test_curves_errors(digits):
    model, x, _, _, _ = digits
    c = deletion_curve(model, x[:2], x[:2], target="all", n_steps=4)  # 10 targets
    with pytest.raises(ValueError, match="several targets"):
        curves({"m": c})
    with pytest.raises(TypeError, match="expected a Curve"):
        curves({"m": torch.zeros(3)})
    with pytest.raises(TypeError, match="results: expected a non-empty dict"):
        curves({})
    with pytest.raises(TypeError, match="mix of curves and dicts"):
        curves({"a": {"m": c}, "b": c})


@pytest.fixture(scope="module")
def certificates():
    """MuS certificates of counting classifiers (class 0 while more than 8 lambda / 2 of
    the 8 features are on, in sum) on 12 binary inputs, at two lambdas."""

    def counter(lam):
        return lambda t: torch.stack([t.sum(1), torch.full_like(t[:, 0], 4 * lam)], 1)

    x = (torch.rand(12, 8, generator=torch.Generator().manual_seed(1)) < 0.7).double()
    with warnings.catch_warnings():  # g's labels are not h's on some inputs: by design
        warnings.simplefilter("ignore", UserWarning)
        return {
            f"lambda = {lam}": certify(MuS(counter(lam), lam, q=64, output="logits"), x)
            for lam in (1 / 8, 1 / 4)
        }


def test_certified_radii_fraction_matches_certificate(certificates):
    fig = certified_radii(certificates, title="toy")
    ax_ex, ax_frac = fig.axes
    for line, c in zip(ax_frac.get_lines(), certificates.values()):
        r = line.get_xdata()
        assert list(line.get_ydata()) == [float(c.stable(int(k)).double().mean()) for k in r]
    # the per-example markers: the radius of every certified example
    c = next(iter(certificates.values()))
    dots = ax_ex.get_lines()[0]
    r = np.minimum(c.incremental_int.numpy(), c.decremental_int.numpy())
    ok = c.consistent.numpy() & (r >= 0)
    assert list(dots.get_ydata()) == list(r[ok])
    for radius in ("incremental", "decremental"):
        fig = certified_radii(c, radius=radius)
        assert radius in fig.axes[0].get_title()


def test_certified_radii_takes_explained_results(certificates):
    def h(t):
        return torch.stack([t.sum(1), torch.full_like(t[:, 0], 3.0)], 1)

    g = MuS(h, 1 / 8, q=64, output="logits")
    x = torch.ones(4, 8, dtype=torch.float64)
    w = torch.arange(1.0, 9.0, dtype=torch.float64).expand(4, 8)
    explained = explain_and_certify(g, x, w, top_fraction=0.5)
    stable = min_stable_fraction(g, x, w, r=1)
    fig = certified_radii({"top half": explained, "min stable": stable})
    assert len(fig.axes[1].get_lines()) == 2
    with pytest.raises(ValueError, match="radius: expected one of"):
        certified_radii(explained, radius="both ways")
    with pytest.raises(TypeError, match="expected a Certificate"):
        certified_radii({"a": torch.zeros(3)})
    with pytest.raises(ValueError, match="the same examples"):
        certified_radii({"a": explained, "b": next(iter(certificates.values()))})


# ------------------------------------------------------------------ shap's Explanation
import shap  # noqa: E402


def test_to_explanation_kernelshap_is_efficient_and_waterfall_shows_f_x(wine):
    names, X, model, base, _ = wine
    x = X[:4]
    phi = xattr.KernelShap(model).attribute(x, target=2, baselines=base, n_samples=300, seed=0)
    e = to_explanation(phi, x, feature_names=names, forward_func=model, baselines=base, target=2)
    assert isinstance(e, shap.Explanation)
    assert e.values.shape == (4, 13) and e.base_values.shape == (4,) and e.data.shape == (4, 13)
    assert e.feature_names == list(names)
    fx = model(x)[:, 2].detach().numpy()
    np.testing.assert_allclose(e.base_values + e.values.sum(1), fx, rtol=0, atol=1e-10)
    np.testing.assert_allclose(e.base_values, np.repeat(model(base)[:, 2].detach().numpy(), 4))
    fig = shap.plots.waterfall(e[0], show=False).figure
    fig.canvas.draw()
    ticks = [t.get_text().replace("\u2212", "-") for a in fig.axes for t in a.get_xticklabels()]
    shown = [float(t[4:-1]) for t in ticks if t.startswith("$ = ")]  # shap's "f(x) = ..."
    assert len(shown) == 1 and shown[0] == pytest.approx(fx[0], abs=5e-4), ticks
    shap.plots.bar(e, show=False)
    shap.plots.beeswarm(e, show=False)


def test_to_explanation_base_values_forms(wine):
    names, X, model, base, attr = wine
    phi = attr["KernelShap"]
    for given in (0.5, torch.tensor([0.5]), np.array([0.5])):
        e = to_explanation(phi, X[:1], base_values=given)
        assert e.base_values.tolist() == [0.5]
    assert to_explanation(phi).base_values.tolist() == [0.0]
    with pytest.raises(ValueError, match="base_values: expected a number"):
        to_explanation(phi, X[:1], base_values=np.zeros(3))


def test_to_explanation_multi_target_and_tuple_inputs(wine):
    names, X, model, base, _ = wine
    x = X[:3]
    phi = xattr.KernelShap(model).attribute(x, target="all", baselines=base, n_samples=300, seed=0)
    assert phi.shape == (3, 3, 13)
    e = to_explanation(
        phi,
        x,
        feature_names=names,
        output_names=["c0", "c1", "c2"],
        forward_func=model,
        baselines=base,
        target="all",
    )
    assert e.values.shape == (3, 13, 3) and e.base_values.shape == (3, 3)
    np.testing.assert_allclose(
        e.base_values + e.values.sum(1), model(x).detach().numpy(), rtol=0, atol=1e-10
    )
    shap.plots.bar(e[:, :, 1], show=False)
    # a tuple: the inputs' features flattened and concatenated, named by input
    a, b = x[:, :5], x[:, 5:]
    parts = xattr.KernelShap(lambda u, v: model(torch.cat([u, v], 1))).attribute(
        (a, b), target=0, baselines=(base[:, :5], base[:, 5:]), n_samples=300, seed=0
    )
    e = to_explanation(parts, (a, b))
    assert e.values.shape == (3, 13) and e.feature_names[5] == "input1[0]"
    np.testing.assert_allclose(e.data, x.numpy())
    shap.plots.waterfall(e[1], show=False)


def test_to_explanation_feature_mask_groups(digits):
    model, x, _, seg, attr = digits
    xs = x[:3]
    e = to_explanation(attr["KernelShap"], xs, feature_mask=seg[None, None])
    assert e.values.shape == (3, 16) and e.feature_names[5] == "group 5"
    # Captum's group layout: every pixel of a superpixel carries its value
    ks = attr["KernelShap"][:, 0]
    assert e.values[:, 5] == pytest.approx(ks[:, 2, 2].numpy())
    assert e.data[:, 5] == pytest.approx(xs[:, 0, 2:4, 2:4].mean((1, 2)).numpy())
    # per-pixel shares (IG) are summed per superpixel
    ig = to_explanation(attr["IG"], xs, feature_mask=seg[None, None])
    assert ig.values.sum(1) == pytest.approx(attr["IG"].sum((1, 2, 3)).double().numpy())
    shap.plots.waterfall(ig[0], show=False)


def test_to_explanation_images_for_shap_image_plot(digits):
    model, x, _, _, attr = digits
    e = to_explanation(attr["IG"], x[:3], image=True)
    assert e.values.shape == (3, 8, 8, 1) and e.data.shape == (3, 8, 8, 1)
    np.testing.assert_allclose(e.values[..., 0], attr["IG"][:, 0].numpy())
    shap.image_plot(e, show=False)
    assert len(plt.gcf().axes) == 3 * 2 + 1  # image + one output per row, and a colour bar
    multi = xattr.IntegratedGradients(model).attribute(x[:2], target=[[1, 7], [0, 3]])
    em = to_explanation(multi.detach(), x[:2], image=True, output_names=["a", "b"])
    assert em.values.shape == (2, 8, 8, 1, 2)
    shap.image_plot(em, show=False)


def test_to_explanation_errors(wine):
    names, X, model, base, attr = wine
    phi = attr["KernelShap"]
    with pytest.raises(ValueError, match="feature_names: expected 13 names"):
        to_explanation(phi, X[:1], feature_names=names[:3])
    with pytest.raises(ValueError, match="inputs: expected 1 examples"):
        to_explanation(phi, X[:2])
    with pytest.raises(ValueError, match="has features"):
        to_explanation(phi, X[:1, :5])
    with pytest.raises(TypeError, match="attributions: expected a tensor"):
        to_explanation("phi")
    with pytest.raises(ValueError, match="target: the model has 3 outputs"):
        to_explanation(phi, X[:1], forward_func=model)
    with pytest.raises(ValueError, match="target: class index out of range"):
        to_explanation(phi, X[:1], forward_func=model, target=5)
    with pytest.raises(ValueError, match="baselines: input 0 needs a number or a tensor"):
        to_explanation(phi, X[:1], forward_func=model, target=0, baselines=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="image: expects one image input"):
        to_explanation(phi, X[:1], image=True)
    with pytest.raises(ValueError, match="output_names: expected 1 names"):
        to_explanation(phi, X[:1], output_names=["a", "b"])


def test_without_matplotlib_the_error_names_the_extra():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"  # as if it were not installed
        "import torch, xattr.viz as v\n"
        "from xattr.metrics import Curve\n"
        "c = Curve(torch.linspace(0, 1, 3), torch.zeros(1, 3), torch.zeros(1))\n"
        "calls = [lambda: v.feature_bars(torch.ones(2), ['a', 'b']),\n"
        "         lambda: v.image_attributions({'m': torch.ones(4, 4)}),\n"
        "         lambda: v.curves({'m': c}),\n"
        "         lambda: v.visualize_image_attr(torch.ones(4, 4), use_pyplot=False)]\n"
        "for call in calls:\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as e:\n"
        "        print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 4 and all('pip install "torch-xattr[demo]"' in x for x in lines), out
    # text_html needs no matplotlib
    code = "import sys; sys.modules['matplotlib'] = None\nimport xattr.viz as v\n"
    code += "print(len(v.text_html(['a'], [1.0])) > 0)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
