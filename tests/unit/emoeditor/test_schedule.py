"""The edit schedule and sizes: T per edit, the DDIM timesteps it implies, the edit size, the resize."""

import pytest
import torch

from emo_core.emoeditor.schedule import (
    PUBLISHED_T_RANGE,
    EditInfo,
    EditSettings,
    draw_T,
    edit_size,
    edit_timesteps,
)
from emo_core.images import resize_images


def test_published_timesteps_are_leading_spacing_with_offset_one():
    steps = edit_timesteps(700, 30)  # floor(700 / 30) = 23
    assert steps[0] == 29 * 23 + 1 and steps[-1] == 1 and len(steps) == 30
    assert all(a - b == 23 for a, b in zip(steps, steps[1:], strict=False))
    assert edit_timesteps(980, 30)[0] == 29 * 32 + 1
    assert edit_timesteps(851, 1) == [1]
    assert EditInfo(980, edit_timesteps(980, 30)).strength == pytest.approx(0.929)


def test_T_is_drawn_in_range_and_reproducibly():
    settings = EditSettings()
    draws = [draw_T(torch.Generator().manual_seed(s), settings) for s in range(200)]
    assert min(draws) >= PUBLISHED_T_RANGE[0] and max(draws) <= PUBLISHED_T_RANGE[1]
    assert len(set(draws)) > 50
    assert draws[7] == draw_T(torch.Generator().manual_seed(7), settings)
    assert draw_T(torch.Generator().manual_seed(0), EditSettings(30, 850, 850)) == 850


@pytest.mark.parametrize(("settings", "message"), [
    (EditSettings(30, 900, 800), "t_min <= t_max"),
    (EditSettings(30, 0, 800), "t_min <= t_max"),
    (EditSettings(30, 700, 1000), "t_min <= t_max <= 999"),
    (EditSettings(40, 30, 800), "steps must be between 1 and t_min"),
    (EditSettings(0, 700, 980), "steps must be between 1 and t_min"),
])
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        settings.check()


def test_edit_size_squash_and_keep_aspect():
    assert edit_size(480, 640, 224, keep_aspect=False) == (224, 224)
    assert edit_size(480, 640, 224, keep_aspect=True) == (168, 224)
    assert edit_size(640, 480, 512, keep_aspect=True) == (512, 384)
    h, w = edit_size(1, 2048, 224, keep_aspect=True)  # a sliver keeps at least one latent pixel
    assert (h, w) == (8, 224)


def test_resize_images():
    images = torch.rand(2, 30, 40, 3, generator=torch.Generator().manual_seed(0))
    out = resize_images(images, (15, 20))
    assert out.shape == (2, 15, 20, 3) and out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out.mean(dim=(1, 2)), images.mean(dim=(1, 2)), atol=0.02)
    same = resize_images(images.double(), (30, 40))
    assert same.dtype == torch.float32 and torch.equal(same, images)
