"""A tiny, fast diffusers InstructPix2Pix (SD 1.5 architecture family) for the editor-trainer tests.

The UNet is the tiny SD 1.5 ip2p of ``diffusers_tiny_ip2p`` (8 input channels, context 768); the VAE is a narrow
AutoencoderKL (4 levels: 8x downsampling, widths 8/16/16/16) whose posterior log-variance is pinned low, so latents
are a deterministic function of the image (a random VAE would otherwise bury it in posterior noise); the text
encoder a 2-layer CLIP at SD 1.5's width 768 with ComfyUI's bundled CLIP tokenizer. ``save_folder`` writes them in
the diffusers ip2p folder layout the command line reads. Test tooling only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers_tiny_ip2p import PUBLISHED_DDIM, TINY_IP2P_UNET
from diffusers_tiny_sdxl import TOKENIZER_DIR, seeded_fill
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

SMALL_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 8,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (8, 16, 16, 16), "sample_size": 64, "scaling_factor": 1.4,  # ~unit-variance latents
}


def build(seed: int = 7) -> dict:
    generator = torch.Generator().manual_seed(seed)
    unet = UNet2DConditionModel(**TINY_IP2P_UNET)
    vae = AutoencoderKL(**SMALL_VAE)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=12, max_position_embeddings=77, bos_token_id=0,
                                        eos_token_id=2, pad_token_id=1))
    for part in (unet, vae, text):
        seeded_fill(part, generator)
    with torch.no_grad():
        vae.quant_conv.weight[4:].zero_()  # log-variance channels: a fixed, small posterior std
        vae.quant_conv.bias[4:].fill_(-8.0)
    vae.eval().requires_grad_(False)
    text.eval().requires_grad_(False)
    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER_DIR, model_max_length=77, local_files_only=True)
    return {"unet": unet, "vae": vae, "text_encoder": text, "tokenizer": tokenizer}


def save_folder(parts: dict, folder: Path) -> Path:
    """The diffusers InstructPix2Pix folder layout (unet/ vae/ text_encoder/ tokenizer/ scheduler/)."""
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        parts[name].save_pretrained(folder / name)
    DDIMScheduler(**PUBLISHED_DDIM).save_pretrained(folder / "scheduler")
    return folder


def pair_features(parts: dict, info: dict, size: int = 64):
    """The trainer's frozen VAE/CLIP features of a synthetic pair set (editor_pairs_synth) under these models."""
    from emo_core.training.editor.data import read_editor_pairs
    from emo_core.training.editor.diffusers_backbone import clip_text_encoder, vae_encoder
    from emo_core.training.editor.features import build_editor_features

    train = read_editor_pairs(info["train_json"], info["root"])
    val = read_editor_pairs(info["val_json"], info["root"])
    return build_editor_features(train, vae_encoder(parts["vae"]),
                                 clip_text_encoder(parts["tokenizer"], parts["text_encoder"]), val_set=val, size=size)
