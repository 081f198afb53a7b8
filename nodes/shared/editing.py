"""What the EmoEditor nodes and the editor trainer's nodes both need from ComfyUI: the InstructPix2Pix check and a
predictor call through model management."""

from __future__ import annotations

import comfy.model_base
import comfy.model_management as mm
import torch


def require_ip2p(model, what: str = "EmoEditor needs"):
    """The model's ComfyUI BaseModel when it is InstructPix2Pix, else a ValueError saying what it is instead."""
    base = model.model
    if not isinstance(base, comfy.model_base.IP2P):
        raise ValueError(f"{what} an InstructPix2Pix MODEL (8 input channels: noisy latent + source latent), e.g. "
                         f"from 'Load EmoEditor' or an SD 1.5 / SDXL ip2p checkpoint; this MODEL is "
                         f"{type(base).__name__} with {base.model_config.unet_config.get('in_channels')} input "
                         "channels")
    return base


def predict(predictor, images: torch.Tensor, resize: str = "torch"):
    """emo_core EmotionPrediction for (B, H, W, 3) images, with the predictor loaded by ComfyUI."""
    mm.load_models_gpu([predictor])
    return predictor.model.predict(images, resize=resize)
