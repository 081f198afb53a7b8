"""Where the emotion lives: the emotion predictor's Grad-CAM as a region of the image, and the masks of a regional
edit.

* :func:`emotion_region`: the Grad-CAM of ``layer4[-1]`` (gradcam.py, equal to pytorch-grad-cam's ``GradCAM``) on
  the predictor's published input (test.py's 224x224 Pillow bilinear squash of the 8-bit image), for a chosen class
  or each image's top class, resized back to the image's size with torch's bilinear filter (half-pixel centres,
  ``align_corners=False``; no antialiasing, so a 224-pixel image gets the 224 map unchanged). (B, H, W) in [0, 1].
* :func:`shape_mask`: threshold (0 keeps the soft map), grow (negative: shrink), feather, invert, in that order.
* :func:`edit_masks`: a MASK checked (finite, batch of one or one per image) and resized to the edit size.
* :func:`composite`: the decoded edit over the source, ``edit * m + source * (1 - m)``: where m is 0 the result is
  the source's pixels exactly, where m is 1 the edit's pixels exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .emotions import EMOTIONS
from .gradcam import grad_cam
from .predictor import EmotionPredictor, preprocess


def target_index(target: str | int | None) -> int | None:
    """A class name or index -> index; None stays None (each image's top class)."""
    if target is None:
        return None
    if isinstance(target, str):
        if target not in EMOTIONS:
            raise ValueError(f"target: {target!r} is not one of EmoEditor's classes ({', '.join(EMOTIONS)})")
        return EMOTIONS.index(target)
    if int(target) != target or not 0 <= int(target) < len(EMOTIONS):
        raise ValueError(f"target: class index {target!r} is not in 0..{len(EMOTIONS) - 1}")
    return int(target)


def resize_map(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) -> (B, H, W): bilinear, half-pixel centres (the resize the Grad-CAM itself uses), clamped to
    [0, 1]; unchanged at the same size."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    resized = F.interpolate(maps[:, None].float(), size=tuple(size), mode="bilinear", align_corners=False)
    return resized[:, 0].clamp(0, 1)


def region_and_logits(predictor: EmotionPredictor, images: torch.Tensor,
                      target: str | int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(region (B, H, W), logits (B, 8), the classes mapped (B,)) for a ComfyUI IMAGE (B, H, W, 3) in [0, 1]."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images: expected an IMAGE batch shaped (B, H, W, 3), got {shape}")
    index = target_index(target)
    pixels = preprocess(images.float(), resize="pil")  # test.py's 224x224 input
    cam, logits = grad_cam(predictor, pixels, index, return_logits=True)
    classes = logits.argmax(dim=1).cpu() if index is None else torch.full((images.shape[0],), index)
    cam = torch.nan_to_num(cam, nan=0.0)  # defined for any input (a constant image gives a flat map, not NaN)
    return resize_map(cam, tuple(images.shape[1:3])), logits.float().cpu(), classes


def emotion_region(predictor: EmotionPredictor, images: torch.Tensor, target: str | int | None = None) -> torch.Tensor:
    """Where the predictor sees ``target`` (a class name or index; None = each image's top class) in ComfyUI IMAGEs
    (B, H, W, 3): the Grad-CAM of ``layer4[-1]`` on the published 224x224 input, resized to (H, W) (bilinear).
    Returns (B, H, W) float32 in [0, 1]."""
    return region_and_logits(predictor, images, target)[0]


# --- shaping a mask ---------------------------------------------------------------------------------------------


def grow_mask(masks: torch.Tensor, pixels: int) -> torch.Tensor:
    """Grey dilation (``pixels`` > 0) or erosion (< 0) with a square of side 2|pixels| + 1; edges do not count."""
    if pixels == 0:
        return masks
    radius = abs(int(pixels))
    sign = 1.0 if pixels > 0 else -1.0
    grown = F.max_pool2d(sign * masks[:, None], 2 * radius + 1, stride=1, padding=radius)
    return sign * grown[:, 0]


def gaussian_kernel(radius: int) -> torch.Tensor:
    """A normalised 1-D Gaussian of σ = radius / 3 on [-radius, radius] (zero beyond: pixels farther than the
    radius from the mask stay exactly 0)."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / (radius / 3.0)) ** 2)
    return (kernel / kernel.sum()).float()


def feather_mask(masks: torch.Tensor, pixels: int) -> torch.Tensor:
    """Gaussian blur of radius ``pixels`` (σ = pixels / 3), separable, edges replicated."""
    if pixels <= 0:
        return masks
    radius = int(pixels)
    kernel = gaussian_kernel(radius)
    x = masks[:, None].float()
    x = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    x = F.conv2d(x, kernel.reshape(1, 1, 1, -1))
    x = F.pad(x, (0, 0, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.reshape(1, 1, -1, 1))
    return x[:, 0].clamp(0, 1)


def shape_mask(region: torch.Tensor, threshold: float = 0.0, grow: int = 0, feather: int = 0,
               invert: bool = False) -> torch.Tensor:
    """(B, H, W) map in [0, 1] -> MASK: ``threshold`` > 0 binarises (value > threshold -> 1, else 0; 0 keeps the
    soft map), ``grow`` pixels of dilation (negative: erosion), ``feather`` pixels of Gaussian blur, ``invert``
    (1 - m). In this order."""
    if not 0.0 <= float(threshold) <= 1.0 or math.isnan(float(threshold)):
        raise ValueError(f"threshold: {threshold} must be within [0, 1] (0 = the soft map)")
    if int(feather) < 0:
        raise ValueError(f"feather: {feather} must be 0 or more pixels")
    masks = region.float()
    if threshold > 0:
        masks = (masks > threshold).float()
    masks = feather_mask(grow_mask(masks, int(grow)), int(feather))
    return 1.0 - masks if invert else masks


# --- the masks of a regional edit ---------------------------------------------------------------------------------


def check_mask(mask: torch.Tensor, count: int) -> torch.Tensor:
    """A ComfyUI MASK ((H, W) or (B, H, W), any size) as (B, H, W) float32 clamped to [0, 1]: one mask for every
    image or one per image; NaN/inf refused."""
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3) or 0 in mask.shape:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask: expected a MASK shaped (H, W) or (B, H, W), got {shape}")
    mask = mask.reshape(-1, *mask.shape[-2:]).float().cpu()
    if mask.shape[0] not in (1, count):
        raise ValueError(f"mask: the batch holds {mask.shape[0]} masks but the source batch has {count} images: give "
                         "one mask for all, or one per image")
    if not torch.isfinite(mask).all():
        raise ValueError("mask: it holds NaN or infinite values (a mask must be finite, from 0 = keep the source to "
                         "1 = edit)")
    return mask.clamp(0, 1)


def edit_masks(mask: torch.Tensor | None, count: int, size: tuple[int, int]) -> list[torch.Tensor | None]:
    """One (1, H, W) mask at the edit size per image (None for every image when ``mask`` is None). The mask is
    resized as the source is (to the edit size, bilinear): it covers the whole image in both resize modes."""
    if mask is None:
        return [None] * count
    masks = resize_map(check_mask(mask, count), size)
    return [masks[i if masks.shape[0] > 1 else 0].unsqueeze(0) for i in range(count)]


def is_empty(mask: torch.Tensor | None) -> bool:
    """True for a mask that is 0 everywhere (a regional edit that may change nothing)."""
    return mask is not None and not bool((mask > 0).any())


def composite(edit: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``edit * m + source * (1 - m)`` for IMAGEs (B, H, W, 3) and a (B or 1, H, W) mask at their size: exactly
    the source where m = 0, exactly the edit where m = 1."""
    m = mask.to(edit.device, edit.dtype)[..., None]
    return edit * m + source.to(edit.device, edit.dtype) * (1.0 - m)
