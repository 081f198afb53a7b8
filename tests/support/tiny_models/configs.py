"""Tiny model configurations built from ComfyUI's real SDXL classes.

Real tokenizer, real text widths (768/1280), real UNet layout (ADM 2816, context 2048) and the SDXL latent
format, but few layers and channels, so a whole text-to-image graph runs on a CPU in about a second.
"""

import comfy.supported_models
from comfy import sdxl_clip, supported_models_base

# Three layers is the least that works: the SDXL text encoders read layer -2.
TINY_TEXT_ENCODER = {"num_hidden_layers": 3, "intermediate_size": 64}


class TinySDXLClipModel(sdxl_clip.SDXLClipModel):
    def __init__(self, device="cpu", dtype=None, model_options=None):
        model_options = {
            **(model_options or {}),
            "clip_l_model_config": TINY_TEXT_ENCODER,
            "clip_g_model_config": TINY_TEXT_ENCODER,
        }
        super().__init__(device=device, dtype=dtype, model_options=model_options)


class TinySDXL(comfy.supported_models.SDXL):
    # Detection keys: matched against what ComfyUI reads off a checkpoint's UNet.
    unet_config = {
        "model_channels": 32,
        "use_linear_in_transformer": True,
        "transformer_depth": [0, 1, 1],
        "context_dim": 2048,
        "adm_in_channels": 2816,
        "use_temporal_attention": False,
    }
    # 32 channels per head: SDXL's 64 would leave the first level with zero heads.
    unet_extra_config = {"num_heads": -1, "num_head_channels": 32}

    def clip_target(self, state_dict=None):
        return supported_models_base.ClipTarget(sdxl_clip.SDXLTokenizer, TinySDXLClipModel)


# The full UNet layout the generator builds; detection recovers exactly this from the saved weights.
TINY_SDXL_UNET = {
    **TinySDXL.unet_config,
    "use_checkpoint": False,
    "image_size": 32,
    "use_spatial_transformer": True,
    "legacy": False,
    "num_classes": "sequential",
    "in_channels": 4,
    "out_channels": 4,
    "num_res_blocks": [1, 1, 1],
    "channel_mult": [1, 2, 4],
    "transformer_depth_output": [0, 0, 1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "use_temporal_resblock": False,
}


class TinySD15InstructPix2Pix(comfy.supported_models.SD15_instructpix2pix):
    """EmoEditor's editor family (SD 1.5 InstructPix2Pix: 8 input channels, context 768) at a tiny width.

    ``model_base.SD15_instructpix2pix`` (concat of the source latent), EPS and the SD 1.5 latent format come from the
    parent; only the detection keys and the head count differ.
    """

    unet_config = {
        "context_dim": 768,
        "model_channels": 32,
        "use_linear_in_transformer": False,
        "adm_in_channels": None,
        "use_temporal_attention": False,
        "in_channels": 8,
    }
    # The diffusers model below has 2 heads in every block (its ``attention_head_dim`` counts heads, as in SD 1.5).
    unet_extra_config = {"num_heads": 2, "num_head_channels": -1}


# The diffusers UNet2DConditionModel the generator builds for ``emo_tiny_ip2p.pt`` (published ``unet.*`` layout).
TINY_IP2P_DIFFUSERS_UNET = {
    "sample_size": 28,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 768,
    "attention_head_dim": TinySD15InstructPix2Pix.unet_extra_config["num_heads"],
}

# The same layout in ComfyUI's LDM terms (what detection reads off the converted keys); the generator also writes an
# LDM-layout checkpoint with it, as CheckpointLoaderSimple would load an SD 1.5 InstructPix2Pix checkpoint.
TINY_IP2P_UNET = {
    **TinySD15InstructPix2Pix.unet_config,
    "use_checkpoint": False,
    "image_size": 32,
    "use_spatial_transformer": True,
    "legacy": False,
    "out_channels": 4,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 2],
    "transformer_depth": [1, 0],
    "transformer_depth_output": [1, 1, 0, 0],
    "transformer_depth_middle": 1,
    "use_temporal_resblock": False,
}


class TinySDXLInstructPix2Pix(comfy.supported_models.SDXL_instructpix2pix):
    """EXTENSION test model: the TinySDXL UNet with 8 input channels (``model_base.SDXL_instructpix2pix``)."""

    unet_config = {**TinySDXL.unet_config, "in_channels": 8}
    unet_extra_config = TinySDXL.unet_extra_config


TINY_SDXL_IP2P_UNET = {**TINY_SDXL_UNET, "in_channels": 8}

# TinySDXL names no in_channels, so it would also claim the 8-channel variant: the ip2p config goes first.
TINY_CONFIGS = (TinySDXLInstructPix2Pix, TinySDXL, TinySD15InstructPix2Pix)


def register() -> None:
    """Put the tiny configurations first, so detection tries them before the full-size ones."""
    models = comfy.supported_models.models
    for config in reversed(TINY_CONFIGS):
        if config not in models:
            models.insert(0, config)
