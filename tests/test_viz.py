"""xattr.viz: Captum's image plots pixel for pixel, xattr's own pictures, shap's
Explanation. Everything draws with the Agg backend and is closed after the test."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import itertools  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

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
