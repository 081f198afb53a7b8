"""The Emotion Region picture: per image, the predictor's Grad-CAM as a heat map over the image and the mask the
node returns, titled with the class the map is for and the predictor's probability of it."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..emoeditor.emotions import EMOTIONS
from .style import INK, LINE, MARGIN, TARGET_MARK, TEXT, as_batch, canvas, font

PANEL = 256  # longer side of each panel, in pixels
GAP = 8
ALPHA = 0.55  # weight of the heat colours over the image

# A perceptual blue -> yellow -> red ramp (cold = ignored, hot = where the emotion is seen).
RAMP = np.array([(49, 54, 149), (69, 117, 180), (171, 217, 233), (254, 224, 144), (244, 109, 67), (165, 0, 38)],
                dtype=np.float64)


def heat_colours(values: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) float colours of the ramp, linearly interpolated."""
    position = np.clip(values, 0, 1) * (len(RAMP) - 1)
    low = np.floor(position).astype(int).clip(0, len(RAMP) - 2)
    frac = (position - low)[..., None]
    return RAMP[low] * (1 - frac) + RAMP[low + 1] * frac


def panel_size(height: int, width: int) -> tuple[int, int]:
    scale = PANEL / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def overlay(image: np.ndarray, region: np.ndarray) -> Image.Image:
    """(H, W, 3) float image in [0, 1] with the (H, W) map in heat colours over it."""
    mixed = (1 - ALPHA) * 255 * np.clip(image, 0, 1) + ALPHA * heat_colours(region)
    picture = Image.fromarray(np.clip(mixed, 0, 255).astype(np.uint8))
    return picture.resize(panel_size(*region.shape), Image.BILINEAR)


def grey(mask: np.ndarray) -> Image.Image:
    picture = Image.fromarray((255 * np.clip(mask, 0, 1)).astype(np.uint8)).convert("RGB")
    return picture.resize(panel_size(*mask.shape), Image.BILINEAR)


def region_picture(image: np.ndarray, region: np.ndarray, mask: np.ndarray, cls: int, probability: float,
                   chosen: str) -> Image.Image:
    """One image: heat map over the image, then the mask; ``chosen`` says how the class was picked."""
    left, right = overlay(image, region), grey(mask)
    width = max(left.width + GAP + right.width + 2 * MARGIN, 420)
    top = MARGIN + 2 * LINE
    picture, draw = canvas(width, top + LINE + max(left.height, right.height) + MARGIN)
    text = font(TEXT)
    draw.text((MARGIN, MARGIN), f"emotion region of {EMOTIONS[cls]} ({chosen}): p({EMOTIONS[cls]}) "
                                f"{probability:.1%}", fill=TARGET_MARK, font=text)
    draw.text((MARGIN, MARGIN + LINE), f"Grad-CAM of the predictor, layer4[-1]; mask: {mask.mean():.0%} of the "
                                       "picture (white = edit)", fill=INK, font=text)
    x = (width - left.width - GAP - right.width) // 2
    draw.text((x, top), "heat map (red = seen)", fill=INK, font=text)
    draw.text((x + left.width + GAP, top), "mask", fill=INK, font=text)
    picture.paste(left, (x, top + LINE))
    picture.paste(right, (x + left.width + GAP, top + LINE))
    return picture


def region_pictures(images: torch.Tensor, regions: torch.Tensor, masks: torch.Tensor, classes: torch.Tensor,
                    distribution: torch.Tensor, chosen: str) -> torch.Tensor:
    """Every image of a batch -> ComfyUI IMAGE (B, H, W, 3) (pictures of one size when the images are)."""
    return as_batch(region_picture(images[k].float().cpu().numpy(), regions[k].numpy(), masks[k].float().numpy(),
                                   int(classes[k]), float(distribution[k, int(classes[k])]), chosen)
                    for k in range(images.shape[0]))
