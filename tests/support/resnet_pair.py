"""torchvision's ResNet-18 (pytorch-grad-cam's reference model) and the EmoEditor predictor with the same seeded
weights, and smooth seeded test images: shared by the ESMI and emotion-region tests."""

import numpy as np
import torch
import torchvision
from PIL import Image

from emo_core.emoeditor.predictor import EmotionPredictor


def models(seed: int):
    """(torchvision ResNet-18, our predictor) with the same seeded weights, BN statistics moved off their defaults
    so the maps are not trivial."""
    torch.manual_seed(seed)
    tv = torchvision.models.resnet18(weights=None, num_classes=8)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buffer in tv.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=g) + 0.5)
    tv.eval()
    ours = EmotionPredictor()
    ours.load_state_dict(tv.state_dict())
    return tv, ours.eval().requires_grad_(False)


def smooth_image(seed: int, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8: coarse random colours upsampled, plus noise."""
    g = np.random.RandomState(seed)
    coarse = Image.fromarray(g.randint(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size[::-1], Image.BILINEAR)
    noisy = np.asarray(coarse, dtype=np.int16) + g.randint(-20, 21, (*size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def comfy(*pictures: np.ndarray) -> torch.Tensor:
    """uint8 pictures as one ComfyUI IMAGE batch."""
    return torch.stack([torch.from_numpy(p).float() / 255 for p in pictures])
