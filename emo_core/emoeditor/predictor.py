"""EmoEditor's emotion predictor (the IEI critic): torchvision's ResNet-18 with an 8-way ``fc``, in plain torch.

Module names follow torchvision exactly, so the 122 state-dict keys (``conv1.weight``, ``bn1.*``,
``layer1.0.conv1.weight``, ..., ``layerN.0.downsample.{0,1}.*``, ``fc.weight`` 8x512, ``fc.bias``) load the published
``emo_predictor.pt`` unchanged. The network is built in eval mode and :meth:`EmotionPredictor.predict` always runs
it in eval mode: the BN running statistics must be used, never batch statistics.

Preprocessing is the published one: resize to 224x224 ignoring the aspect ratio, values in [0, 1], **no** ImageNet
mean/std normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .emotions import EMOTIONS, NUM_EMOTIONS

INPUT_SIZE = 224
ResizeMethod = Literal["torch", "pil"]


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (two 3x3 convs + identity or 1x1-conv shortcut), same attribute names."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class EmotionPrediction(NamedTuple):
    distribution: torch.Tensor  # (B, 8) softmax, alphabetical class order
    labels: torch.Tensor        # (B,) int64 argmax (lowest index on ties)
    logits: torch.Tensor        # (B, 8)

    @property
    def label_names(self) -> list[str]:
        return [EMOTIONS[int(i)] for i in self.labels]


class EmotionPredictor(nn.Module):
    """ResNet-18, fc = Linear(512, 8). ``forward`` takes preprocessed (B, 3, 224, 224) pixels and returns logits."""

    def __init__(self, num_classes: int = NUM_EMOTIONS):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64, 1), BasicBlock(64, 64, 1))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128, 1))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256, 1))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512, 1))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        self.eval()

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 512) flattened avgpool output."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(pixels))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(pixels))

    @torch.no_grad()
    def predict(self, images, *, resize: ResizeMethod = "torch") -> EmotionPrediction:
        """Preprocess ``images`` (see :func:`preprocess`), run the critic in eval mode, softmax over the 8 classes."""
        if self.training:
            self.eval()
        param = next(self.parameters())
        pixels = preprocess(images, resize=resize).to(device=param.device, dtype=param.dtype)
        logits = self(pixels)
        return EmotionPrediction(torch.softmax(logits, dim=1), logits.argmax(dim=1), logits)


# --- preprocessing ---------------------------------------------------------------------------------------------


def _pil_to_pixels(image: Image.Image) -> torch.Tensor:
    """[EE test.py]'s pipeline: convert("RGB") -> torchvision Resize((224, 224)) on a PIL image, which is Pillow's
    BILINEAR resize of the uint8 image (antialiased by Pillow) -> ToTensor (float32, /255). Returns (3, 224, 224)."""
    image = image.convert("RGB")
    if image.size != (INPUT_SIZE, INPUT_SIZE):
        image = image.resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
    array = np.array(image, dtype=np.uint8)  # a writable copy
    return torch.from_numpy(array).permute(2, 0, 1).float().div(255)


def _tensor_to_pixels(images: torch.Tensor, resize: ResizeMethod) -> torch.Tensor:
    """(B, H, W, 3) or (H, W, 3) float in [0, 1] (ComfyUI IMAGE layout) -> (B, 3, 224, 224) float32."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected images shaped (B, H, W, 3) or (H, W, 3), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"expected float images in [0, 1], got dtype {images.dtype}")
    if resize == "pil":
        # Exact [EE test.py] pixels for images that came from 8-bit files: back to uint8, then Pillow.
        u8 = images.detach().float().mul(255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return torch.stack([_pil_to_pixels(Image.fromarray(a)) for a in u8]).to(images.device)
    if resize != "torch":
        raise ValueError(f"resize must be 'torch' or 'pil', got {resize!r}")
    pixels = images.permute(0, 3, 1, 2).float()
    if pixels.shape[-2:] == (INPUT_SIZE, INPUT_SIZE):
        return pixels.contiguous()  # edits are already 224 px and go to the critic untouched, as in [EE test.py]
    # torch's antialiased bilinear follows Pillow's filter but keeps float values (no uint8 rounding); it differs
    # from the PIL path by at most about 1/255 per pixel.
    pixels = F.interpolate(pixels, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                           antialias=True)
    return pixels.clamp(0, 1)


def preprocess(images, *, resize: ResizeMethod = "torch") -> torch.Tensor:
    """Images -> (B, 3, 224, 224) float32 pixels in [0, 1], aspect ratio not kept, no normalisation.

    ``images`` is a PIL image, a sequence of PIL images (exactly [EE test.py]'s PIL pipeline, whatever ``resize`` says),
    or a float tensor (B, H, W, 3) / (H, W, 3) in [0, 1] like a ComfyUI IMAGE. For tensors, ``resize="torch"``
    uses torch's antialiased bilinear interpolation (differentiable, stays on the device, <= ~1/255 off the
    published pixels); ``resize="pil"`` rounds to uint8 and uses Pillow, which reproduces [EE test.py] exactly for
    images loaded from 8-bit files. Images already 224x224 pass through the tensor path unchanged.
    """
    if isinstance(images, Image.Image):
        return _pil_to_pixels(images).unsqueeze(0)
    if isinstance(images, torch.Tensor):
        return _tensor_to_pixels(images, resize)
    if isinstance(images, Sequence) and images and all(isinstance(im, Image.Image) for im in images):
        return torch.stack([_pil_to_pixels(im) for im in images])
    raise TypeError(f"expected a PIL image, a list of PIL images or a (B, H, W, 3) tensor, got {type(images)}")
