"""The one picture style of every emo-nodes chart (Pillow only, no matplotlib): colours, fonts, margins, a blank
canvas, and the conversion of finished pictures to ComfyUI IMAGE tensors."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

Colour = tuple[int, int, int]

# --- colours -----------------------------------------------------------------------------------------------------
BACKGROUND: Colour = (255, 255, 255)
INK: Colour = (20, 20, 20)  # all text
GRID: Colour = (225, 225, 225)  # grid lines, empty cells, faint links
AXIS: Colour = (60, 60, 60)  # frames, zero axes, neutral marks (accepted/rejected attempts)
PRIMARY: Colour = (31, 119, 180)  # the first series: train MSE, SSIM, the critic's predictions
SECONDARY: Colour = (255, 127, 14)  # the second series: val MSE, the steered EIT input
MUTED: Colour = (170, 170, 170)  # what is out of the running (under the CLIPScore floor)
POSITIVE: Colour = (86, 156, 214)  # the positive-valence emotion classes
NEGATIVE: Colour = (214, 110, 86)  # the negative-valence emotion classes
BEST: Colour = (44, 160, 44)  # the best / chosen result: ringed or filled green
TARGET_MARK: Colour = (148, 40, 160)  # the target: its class row, its point, its threshold
BAND: Colour = (222, 238, 222)  # an accepted range (the IEI SSIM band, the V-A tolerance circle)

# --- fonts and spacing -------------------------------------------------------------------------------------------
TEXT = 12  # chart text: titles, legends, tick labels
SMALL = 11  # dense labels: attempt numbers, heat-map axes
LARGE = 14  # the emotion bar chart's rows
LINE = 16  # height of one line of text
MARGIN = 8  # blank border around a picture's text
TICK = 4  # gap between a plot's frame and its tick labels


@lru_cache(maxsize=8)
def font(size: int = TEXT) -> ImageFont.ImageFont:
    """Pillow's built-in scalable font at ``size`` pixels (the same face in every chart)."""
    return ImageFont.load_default(size=size)


def canvas(width: int, height: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A blank RGB picture in the background colour and its drawing context."""
    image = Image.new("RGB", (int(width), int(height)), BACKGROUND)
    return image, ImageDraw.Draw(image)


def to_array(picture: Image.Image) -> np.ndarray:
    """A Pillow picture -> (H, W, 3) uint8."""
    return np.asarray(picture.convert("RGB"), dtype=np.uint8)


def as_image(picture: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> ComfyUI IMAGE (1, H, W, 3) in [0, 1]."""
    return torch.from_numpy(np.asarray(picture).astype(np.float32) / 255.0)[None]


def as_batch(pictures: Iterable[np.ndarray | Image.Image]) -> torch.Tensor:
    """Equal-sized pictures ((H, W, 3) uint8 arrays or Pillow pictures) -> ComfyUI IMAGE (B, H, W, 3) in [0, 1]."""
    return torch.cat([as_image(np.asarray(p, dtype=np.uint8)) for p in pictures])
