"""Shapes, sizes and settings are checked before any editing work, with messages that name what is wrong."""

import math

import pytest
import torch

from emo_core.emoeditor.iei import check_settings, run_iei
from emo_core.emoeditor.schedule import check_min_side, check_resolution, edit_size
from emo_core.images import rgb_images


def test_rgba_and_grey_become_rgb():
    rgba = torch.rand(2, 8, 9, 4)
    assert torch.equal(rgb_images(rgba), rgba[..., :3])
    grey = torch.rand(1, 8, 9, 1)
    out = rgb_images(grey)
    assert out.shape == (1, 8, 9, 3) and torch.equal(out[..., 2], grey[..., 0])
    assert rgb_images(torch.rand(1, 8, 9, 2)).shape == (1, 8, 9, 3)


@pytest.mark.parametrize("images,expected", [
    (torch.rand(1, 8, 8, 5), "5 channels"),
    (torch.rand(8, 8, 3), "shaped (B, H, W, channels)"),
    (torch.rand(0, 8, 8, 3), "empty"),
    (torch.full((1, 8, 8, 3), math.nan), "NaN"),
])
def test_unusable_images_are_refused_by_name(images, expected):
    with pytest.raises(ValueError, match=r"^source: .*" + expected.replace("(", r"\(").replace(")", r"\)")):
        rgb_images(images, "source")


def test_resolution_must_be_a_multiple_of_eight():
    assert check_resolution(224) == 224
    with pytest.raises(ValueError, match="resolution: 100 is not a multiple of 8.*use 96 or 104"):
        check_resolution(100)
    with pytest.raises(ValueError, match="resolution: 4096"):
        check_resolution(4096)


def test_a_sliver_is_refused_before_the_ssim_fails():
    size = edit_size(1, 2048, 224, keep_aspect=True)
    with pytest.raises(ValueError, match="2048x1 image gives a 224x8 edit.*at least 51 pixels"):
        check_min_side(size, 51, "SSIM", (1, 2048))
    check_min_side(edit_size(1, 2048, 224, keep_aspect=False), 51, "SSIM", (1, 2048))


@pytest.mark.parametrize("kwargs,expected", [
    ({"confidence": math.nan}, "confidence: nan is not a finite number"),
    ({"confidence": 1.5}, "confidence: 1.5 is not a probability"),
    ({"ssim_band": (0.5, math.inf)}, "ssim_high: inf is not a finite number"),
    ({"ssim_band": (0.8, 0.5)}, "ssim_low/ssim_high"),
    ({"max_accepted": 0}, "max_accepted"),
    ({"max_attempts": 0}, "max_attempts"),
])
def test_iei_refuses_settings_it_cannot_honour(kwargs, expected):
    settings = {"max_attempts": 3, "max_accepted": 30, "confidence": 0.6, "ssim_band": (0.5, 0.8)} | kwargs
    with pytest.raises(ValueError, match=expected.replace("(", r"\(")):
        check_settings(**settings)
    with pytest.raises(ValueError, match=expected.replace("(", r"\(")):  # run_iei checks before any edit
        run_iei(torch.zeros(1, 64, 64, 3), "awe", edit=None, predict=None, **settings)


def test_iei_refuses_a_nan_prediction_instead_of_a_misleading_status():
    source = torch.rand(1, 64, 64, 3)
    uniform = torch.full((8,), 1 / 8)
    with pytest.raises(ValueError, match="NaN or infinite probabilities"):
        run_iei(source, "awe", edit=lambda image, d, a: image, predict=lambda image: torch.full((8,), math.nan),
                source_prediction=uniform, max_attempts=2)
