"""Data-dependent baselines: Gaussian blur against scipy, per-channel means."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests._helpers import EXACT, gen
from xattr.baselines import blur, channel_mean


@pytest.mark.parametrize("sigma", [0.8, 1.0, 2.5])
def test_blur_matches_scipy(sigma):
    ndimage = pytest.importorskip("scipy.ndimage")
    x = torch.rand(2, 3, 17, 13, generator=gen(0), dtype=torch.float64)
    got = blur(x, sigma=sigma)
    for b in range(2):
        for c in range(3):
            # torch's "reflect" padding is scipy's "mirror"; same radius ceil(3 sigma)
            want = ndimage.gaussian_filter(
                x[b, c].numpy(), sigma, mode="mirror", truncate=np.ceil(3 * sigma) / sigma
            )
            np.testing.assert_allclose(got[b, c].numpy(), want, **EXACT)
    # [B, H, W] images are one-channel images: the same blur
    torch.testing.assert_close(blur(x[:, 0], sigma=sigma), got[:, 0], rtol=0, atol=0)


def test_blur_small_images_and_errors():
    x = torch.rand(1, 1, 3, 3)
    y = blur(x, sigma=5.0)  # the window is cut to the image; borders replicated
    # a blur averages (non-negative weights summing to 1): within the image's range,
    # and a constant image stays constant
    assert y.shape == x.shape
    assert bool((y >= x.min() - 1e-6).all() and (y <= x.max() + 1e-6).all())
    torch.testing.assert_close(
        blur(torch.full((1, 2, 5, 4), 0.7), sigma=1.5), torch.full((1, 2, 5, 4), 0.7)
    )
    with pytest.raises(ValueError, match="inputs"):
        blur(torch.rand(2, 5))
    with pytest.raises(ValueError, match="sigma"):
        blur(x, sigma=0)
    with pytest.raises(ValueError, match="kernel_size"):
        blur(x, kernel_size=4)
    with pytest.raises(TypeError, match="inputs"):
        blur(x.long())


def test_channel_mean():
    x = torch.arange(24.0).view(2, 3, 2, 2)
    m = channel_mean(x)
    # every pixel of a channel holds that channel's mean
    torch.testing.assert_close(m, x.mean((2, 3), keepdim=True).expand_as(x))
    torch.testing.assert_close(
        channel_mean(torch.tensor([[1.0, 2.0, 6.0]])), torch.full((1, 3), 3.0)
    )
    with pytest.raises(ValueError, match="inputs"):
        channel_mean(torch.ones(3))
