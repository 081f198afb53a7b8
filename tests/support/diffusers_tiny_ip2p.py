"""A tiny seeded EmoEditor editor in diffusers format, saved in the published ``model_ip2p.pt`` layout.

``unet.*``: an 8-input-channel UNet2DConditionModel (context 768) in the layout the host registration
``TinySD15InstructPix2Pix`` detects (32/64 channels, one res block per level, cross-attention on the first level,
2 heads); ``auto_encoder.*``: an AutoencoderKL with the SD 1.5 VAE widths (ComfyUI builds every diffusers-format KL
VAE at those widths). fp16 pickle, as published. Weights are fp16-exact, so the file and the fp32 diffusers
modules hold the same numbers. Also the published DDIM scheduler. Test tooling only.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers_tiny_sdxl import seeded_fill

SEED = 4321
SD_VAE_SCALE = 0.18215

TINY_IP2P_UNET = {
    "sample_size": 28, "in_channels": 8, "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"), "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (32, 64), "layers_per_block": 1, "cross_attention_dim": 768,
    "attention_head_dim": 2,  # diffusers reads this as the head count (SD 1.5's 8 would not divide 32 channels)
}

SD_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512), "sample_size": 256, "scaling_factor": SD_VAE_SCALE,
}

# CompVis/stable-diffusion-v1-4 scheduler config, as EmoEditor's ip2p.py loads it into DDIMScheduler
PUBLISHED_DDIM = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1, "timestep_spacing": "leading",
    "prediction_type": "epsilon",
}


def build(seed: int = SEED) -> tuple[UNet2DConditionModel, AutoencoderKL]:
    generator = torch.Generator().manual_seed(seed)
    unet, vae = UNet2DConditionModel(**TINY_IP2P_UNET), AutoencoderKL(**SD_VAE)
    for part in (unet, vae):
        seeded_fill(part, generator)
        part.eval().requires_grad_(False)
    with torch.no_grad():  # keep the random decoder's output mostly inside [-1, 1], so the image is not all clamped
        vae.decoder.conv_out.weight.mul_(0.5)
        vae.decoder.conv_out.bias.zero_()
    return unet, vae


def published_state_dict(unet: UNet2DConditionModel, vae: AutoencoderKL) -> OrderedDict:
    """The editor module's state dict after ``.half()``: ``unet.*`` and ``auto_encoder.*`` in diffusers names."""
    state = OrderedDict((f"unet.{k}", v) for k, v in unet.state_dict().items())
    state.update((f"auto_encoder.{k}", v) for k, v in vae.state_dict().items())
    return OrderedDict((k, v.detach().to(torch.float16).contiguous()) for k, v in state.items())


def save_editor(unet: UNet2DConditionModel, vae: AutoencoderKL, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(published_state_dict(unet, vae), tmp)
    tmp.replace(path)
    return path


def published_scheduler(T: int) -> DDIMScheduler:
    """ip2p.py's strength mechanism: the 1000-step betas stay, ``num_train_timesteps`` is overwritten by T before
    ``set_timesteps``, so "leading" spacing spreads the n steps over [1, T]."""
    scheduler = DDIMScheduler(**PUBLISHED_DDIM)
    scheduler.config.num_train_timesteps = T  # FrozenDict: the attribute, as ip2p.py sets it
    return scheduler
