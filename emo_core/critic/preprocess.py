"""CLIP's standard image preprocessing for the critic: resize the short side to 224 (bicubic), centre-crop 224x224,
normalise with CLIP's mean and std.

This is OpenAI CLIP's ``preprocess`` (torchvision ``Resize(224, BICUBIC)``, ``CenterCrop(224)``, ``ToTensor``,
``Normalize``) on a PIL image, as an evaluation over saved PNGs runs it. Its sizes: the long side becomes
int(224 · long / short) (truncated), the crop starts at round((side − 224) / 2).

``resize="pil"`` (default, the published pixels): the float image is rounded to 8 bits (as a saved PNG is) and
resized by Pillow, exactly that pipeline. ``resize="torch"``: torch's antialiased bicubic on the images' device,
float throughout (no 8-bit rounding); within about one 8-bit step of the PIL pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..images import rgb_images

SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESIZE_METHODS = ("pil", "torch")
MAX_ASPECT = 16  # a longer strip would be resized to a huge picture of which the crop keeps a sliver


def resized_size(height: int, width: int, size: int = SIZE) -> tuple[int, int]:
    """(h, w) with the short side ``size`` and the long side int(size · long / short), as torchvision's Resize."""
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def crop_origin(height: int, width: int, size: int = SIZE) -> tuple[int, int]:
    """(top, left) of torchvision's CenterCrop."""
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CLIP_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std


def _crop(pixels: torch.Tensor) -> torch.Tensor:
    top, left = crop_origin(*pixels.shape[-2:])
    return pixels[..., top:top + SIZE, left:left + SIZE]


def _pil_pixels(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H', W') float in [0, 1], resized by Pillow (bicubic)."""
    height, width = image.shape[:2]
    new_h, new_w = resized_size(height, width)
    picture = Image.fromarray(image)
    if (new_h, new_w) != (height, width):
        picture = picture.resize((new_w, new_h), Image.BICUBIC)
    return torch.from_numpy(np.array(picture, dtype=np.uint8)).permute(2, 0, 1).float().div(255)


def clip_pixels(images: torch.Tensor, resize: str = "pil", name: str = "images") -> torch.Tensor:
    """ComfyUI IMAGE (B, H, W, 3) float in [0, 1] (RGBA and grey are used as RGB) -> (B, 3, 224, 224) float32
    CLIP pixel values, on the images' device."""
    if resize not in RESIZE_METHODS:
        raise ValueError(f"resize: {resize!r} is not one of {', '.join(RESIZE_METHODS)}")
    images = rgb_images(images, name)
    if not images.is_floating_point():
        raise ValueError(f"{name}: expected float images in [0, 1], got {images.dtype} {tuple(images.shape)}")
    height, width = images.shape[1:3]
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise ValueError(f"{name}: a {width}x{height} image is too elongated for CLIP's centre crop (at most "
                         f"{MAX_ASPECT}:1); crop it first")
    if resize == "pil":
        u8 = images.detach().float().mul(255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        pixels = torch.stack([_crop(_pil_pixels(image)) for image in u8]).to(images.device)
    else:
        pixels = images.detach().float().movedim(-1, 1)
        size = resized_size(*pixels.shape[-2:])
        if tuple(pixels.shape[-2:]) != size:
            pixels = F.interpolate(pixels, size=size, mode="bicubic", align_corners=False, antialias=True)
        pixels = _crop(pixels.clamp(0, 1))
    return _normalise(pixels.contiguous())
