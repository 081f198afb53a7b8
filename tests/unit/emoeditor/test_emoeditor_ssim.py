import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from emo_core.emoeditor.ssim import critic_ssim, rgb_to_gray_u8, ssim_gray, to_uint8_truncate


@pytest.fixture(scope="module")
def ssim_golden(golden):
    folder = golden / "emoeditor"
    return load_file(folder / "ssim_golden.safetensors"), json.loads((folder / "ssim_golden.json").read_text())


def _hwc(chw: torch.Tensor) -> torch.Tensor:
    return chw.permute(1, 2, 0)


@pytest.mark.parametrize("precision", ["f32", "f16"])
def test_uint8_truncation_and_opencv_gray_are_bit_exact(ssim_golden, precision):
    g, _ = ssim_golden
    for i, image in enumerate(g[f"images_{precision}"]):
        rgb = to_uint8_truncate(_hwc(image))
        np.testing.assert_array_equal(rgb, g[f"rgb_u8_from_{precision}"][i].numpy())
        np.testing.assert_array_equal(rgb_to_gray_u8(rgb), g[f"gray_u8_from_{precision}"][i].numpy())


@pytest.mark.parametrize("precision", ["f32", "f16"])
def test_ssim_matches_the_official_cal_ssim(ssim_golden, precision):
    g, meta = ssim_golden
    expected = g[f"ssim_f32_{precision}"].tolist()
    assert expected == [pair[f"ssim_f32_{precision}"] for pair in meta["pairs"]]
    # test.py: the source is float32; in the f16 case the decoded edit is float16.
    ours = [critic_ssim(_hwc(g["images_f32"][a]), _hwc(g[f"images_{precision}"][b]))
            for a, b in g["pair_index"].tolist()]
    errors = [abs(x - y) for x, y in zip(ours, expected, strict=True)]
    assert max(errors) <= 1e-9, list(zip(ours, expected, strict=True))


def test_truncation_in_the_images_own_dtype_matters(ssim_golden):
    g, _ = ssim_golden
    src, darker = _hwc(g["images_f32"][0]), g["images_f32"][6]  # pair (0, 6): astronaut vs astronaut - 1e-6
    assert critic_ssim(src, _hwc(darker)) == pytest.approx(0.9999569, abs=1e-7)
    assert critic_ssim(src, _hwc(darker.half())) == pytest.approx(0.9999976, abs=1e-7)


def test_identical_and_constant_images_give_exactly_one(ssim_golden):
    g, _ = ssim_golden
    image = _hwc(g["images_f32"][3])
    assert critic_ssim(image, image.clone()) == 1.0
    assert critic_ssim(image[None], image) == 1.0  # a batch of one (ComfyUI IMAGE) is accepted
    grey = np.full((60, 70), 128, np.uint8)
    assert ssim_gray(grey, grey.copy()) == 1.0


def test_rejects_mismatched_or_too_small_images():
    with pytest.raises(ValueError, match="same"):
        critic_ssim(torch.zeros(64, 64, 3), torch.zeros(64, 65, 3))
    with pytest.raises(ValueError, match="win_size"):
        critic_ssim(torch.zeros(40, 64, 3), torch.zeros(40, 64, 3))
    with pytest.raises(ValueError, match="channels last"):
        critic_ssim(torch.zeros(3, 64, 64, 2), torch.zeros(3, 64, 64, 2))
