"""emotion_region against pytorch-grad-cam (seeded random ResNet-18s), its resize to other sizes, the mask shaping
(threshold, grow, feather, invert) and the regional-edit mask checks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM
from resnet_pair import comfy, models, smooth_image

import emo_core
from emo_core.emoeditor.emotions import EMOTIONS
from emo_core.emoeditor.predictor import preprocess
from emo_core.emoeditor.region import check_mask, composite, edit_masks, is_empty, shape_mask


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("target", [None, "awe", 6])
def test_equals_grad_cam_at_224(seed, target):
    tv, ours = models(seed)
    images = comfy(smooth_image(seed, (224, 224)), smooth_image(seed + 10, (224, 224)))
    region = emo_core.emotion_region(ours, images, target)
    index = EMOTIONS.index(target) if isinstance(target, str) else target
    targets = None if index is None else [lambda out, i=index: out[..., i]] * 2
    with GradCAM(model=tv, target_layers=[tv.layer4[-1]]) as cam:
        reference = cam(input_tensor=images.permute(0, 3, 1, 2).contiguous(), targets=targets)
    assert region.shape == (2, 224, 224) and region.dtype == torch.float32
    assert np.abs(region.numpy() - reference).max() <= 1e-5


@pytest.mark.parametrize("size", [(300, 451), (100, 150), (512, 384)])
def test_other_sizes_resize_the_224_map(size):
    _, ours = models(3)
    image = comfy(smooth_image(3, size))
    at_224 = emo_core.emotion_region(ours, torch.from_numpy(preprocess(image, resize="pil").permute(0, 2, 3, 1)
                                                             .numpy()), "fear")
    expected = F.interpolate(at_224[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)
    region = emo_core.emotion_region(ours, image, "fear")
    assert region.shape == (1, *size)
    assert torch.equal(region, expected)
    assert 0 <= region.min() and region.max() <= 1


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_constant_image_is_defined(value):
    _, ours = models(4)
    region = emo_core.emotion_region(ours, torch.full((1, 64, 80, 3), value))
    assert region.shape == (1, 64, 80) and torch.isfinite(region).all()
    assert 0 <= region.min() and region.max() <= 1


def test_bad_target_is_named():
    _, ours = models(0)
    with pytest.raises(ValueError, match="not one of"):
        emo_core.emotion_region(ours, torch.rand(1, 32, 32, 3), "joy")
    with pytest.raises(ValueError, match="0..7"):
        emo_core.emotion_region(ours, torch.rand(1, 32, 32, 3), 8)


def ramp() -> torch.Tensor:
    return torch.linspace(0, 1, 40).reshape(1, 1, 40).expand(1, 30, 40).clone()


def test_threshold_zero_is_the_soft_map_and_above_zero_binarises():
    region = ramp()
    assert torch.equal(shape_mask(region), region)
    binary = shape_mask(region, threshold=0.5)
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(binary, (region > 0.5).float())
    assert torch.equal(shape_mask(region, threshold=0.5, invert=True), 1 - binary)


def test_grow_dilates_and_negative_grow_erodes():
    mask = torch.zeros(1, 21, 21)
    mask[0, 8:13, 8:13] = 1
    grown = shape_mask(mask, threshold=0.5, grow=3)
    assert grown.sum() == 11 * 11 and grown[0, 5:16, 5:16].all()
    shrunk = shape_mask(mask, threshold=0.5, grow=-2)
    assert shrunk.sum() == 1 and shrunk[0, 10, 10] == 1


def test_feather_blurs_within_its_radius_only():
    mask = torch.zeros(1, 41, 41)
    mask[0, 15:26, 15:26] = 1
    soft = shape_mask(mask, threshold=0.5, feather=4)
    assert soft[0, 20, 20] == pytest.approx(1.0, abs=1e-6)
    assert 0 < soft[0, 20, 15] < 1  # the edge is soft
    assert (soft[0, :11] == 0).all() and (soft[0, :, :11] == 0).all()  # nothing farther than the radius
    assert torch.isclose(soft.sum(), mask.sum(), rtol=1e-4)


def test_edit_masks_check_batch_nan_and_resize():
    one = torch.ones(16, 16)
    assert [m.shape for m in edit_masks(one, 3, (8, 8))] == [(1, 8, 8)] * 3
    per_image = edit_masks(torch.stack([torch.zeros(16, 16), torch.ones(16, 16)]), 2, (8, 8))
    assert is_empty(per_image[0]) and not is_empty(per_image[1])
    with pytest.raises(ValueError, match="holds 2 masks but the source batch has 3"):
        check_mask(torch.ones(2, 8, 8), 3)
    bad = torch.ones(1, 8, 8)
    bad[0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        check_mask(bad, 1)
    assert edit_masks(None, 2, (8, 8)) == [None, None]


def test_composite_is_exact_where_the_mask_is_0_or_1():
    edit, source = torch.rand(1, 6, 6, 3), torch.rand(1, 6, 6, 3)
    mask = torch.zeros(1, 6, 6)
    mask[0, :, :3] = 1
    mask[0, 0, 4] = 0.5
    out = composite(edit, source, mask)
    assert torch.equal(out[0, :, :3], edit[0, :, :3])
    assert torch.equal(out[0, 1:, 3:], source[0, 1:, 3:])
    assert torch.allclose(out[0, 0, 4], (edit[0, 0, 4] + source[0, 0, 4]) / 2)
