"""ComfyUI IMAGE tensors, host-independent: RGB from any channel count, resizing. Used by every method and the
critic."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rgb_images(images: torch.Tensor, name: str = "image") -> torch.Tensor:
    """A ComfyUI IMAGE as (B, H, W, 3) RGB: RGBA loses its alpha (as Load Image does, which puts it in a MASK),
    grey (1 channel) and grey + alpha (2) become three equal channels. Anything else, an empty image, or NaN/inf
    pixels are refused with what was given."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name}: expected an IMAGE batch shaped (B, H, W, channels), got {shape}")
    batch, height, width, channels = images.shape
    if not batch or not height or not width:
        raise ValueError(f"{name}: the image is empty (shape {tuple(images.shape)})")
    if channels not in (1, 2, 3, 4):
        raise ValueError(f"{name}: expected RGB (3 channels), RGBA (4) or grey (1 or 2), got {channels} channels "
                         f"(shape {tuple(images.shape)})")
    if channels in (1, 2):
        images = images[..., :1].expand(-1, -1, -1, 3)
    images = images[..., :3]
    if images.is_floating_point() and not torch.isfinite(images).all():
        raise ValueError(f"{name}: the image holds NaN or infinite pixel values")
    return images


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, H, W, 3) in [0, 1] -> (B, h, w, 3), antialiased bilinear (torchvision's Resize on tensors; within about
    1/255 of its PIL path used by [EE test.py])."""
    if tuple(images.shape[1:3]) == tuple(size):
        return images.float()
    pixels = images.movedim(-1, 1).float()
    pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=True)
    return pixels.clamp(0, 1).movedim(1, -1)
