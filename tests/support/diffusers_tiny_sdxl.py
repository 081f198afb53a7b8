"""Tiny seeded SDXL components in diffusers format: the published-inference side of the pipeline-parity tests.

The layout is the one the tiny-SDXL host registration (``tiny_models/configs.py``) detects: UNet 32 channels,
mult [1, 2, 4], one res block per level, transformers [0, 1, 1] (middle 1), linear projections, context 2048,
``text_time`` ADM 2816, 32 channels per head; CLIP-L / bigG text encoders at their real widths with 3 layers
(layer -2 is read) and intermediate size 64; a TAESD-architecture VAE (``AutoencoderTiny``).

Every weight is rounded to an fp16-representable value: ComfyUI keeps text-encoder weights in fp16 on the CPU
(computing in fp32), so only fp16-exact weights are the same weights on both sides. Test tooling only.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from diffusers import AutoencoderTiny, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

ROOT = Path(__file__).resolve().parents[2]
# ComfyUI bundles the CLIP BPE (vocab + merges); both sides read the same files, nothing comes from a hub.
TOKENIZER_DIR = ROOT / ".host" / "comfyui" / "comfy" / "sd1_tokenizer"
SEED = 1234
COMPONENT_FILES = ("unet", "text_encoder", "text_encoder_2", "vae")

# stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json (the published default scheduler)
SDXL_BASE_SCHEDULER = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon", "timestep_spacing": "leading", "steps_offset": 1, "interpolation_type": "linear",
    "use_karras_sigmas": False, "clip_sample": False, "sample_max_value": 1.0, "set_alpha_to_one": False,
    "skip_prk_steps": True,
}


def tiny_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4,
        block_out_channels=(32, 64, 128), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=1,
        attention_head_dim=(1, 2, 4),  # diffusers reads this as the head count: 32 channels per head
        use_linear_projection=True, cross_attention_dim=2048,
        addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,  # 1280 pooled + 6 size/crop ids x 256
    )


def _text_config(width: int, heads: int, act: str, projection: int | None = None) -> CLIPTextConfig:
    # bos/eos/pad ids as in the published SDXL text-encoder configs (eos_token_id 2 selects the pooled token
    # by argmax of the ids, i.e. the first end-of-text token)
    extra = {"projection_dim": projection} if projection else {}
    return CLIPTextConfig(vocab_size=49408, hidden_size=width, intermediate_size=64, num_hidden_layers=3,
                          num_attention_heads=heads, max_position_embeddings=77, hidden_act=act,
                          layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1, **extra)


def tiny_text_encoders() -> tuple[CLIPTextModel, CLIPTextModelWithProjection]:
    clip_l = CLIPTextModel(_text_config(768, 12, "quick_gelu"))
    clip_g = CLIPTextModelWithProjection(_text_config(1280, 20, "gelu", projection=1280))
    return clip_l, clip_g


def tiny_vae() -> AutoencoderTiny:
    # TAESD layout; scaling factor 1 as for taesdxl: the decoder reads the diffusion-space latent directly
    return AutoencoderTiny(latent_channels=4, scaling_factor=1.0)


def tokenizers() -> tuple[CLIPTokenizer, CLIPTokenizer]:
    """SDXL's two tokenizers: CLIP-L pads with end-of-text, bigG with "!" (id 0)."""
    clip_l = CLIPTokenizer.from_pretrained(TOKENIZER_DIR, model_max_length=77, local_files_only=True)
    clip_g = CLIPTokenizer.from_pretrained(TOKENIZER_DIR, model_max_length=77, pad_token="!", local_files_only=True)
    return clip_l, clip_g


def sdxl_base_scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler.from_config(SDXL_BASE_SCHEDULER)


def seeded_fill(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Deterministic, fp16-exact weights. Norm gains and all biases are perturbed too, so a swapped or dropped
    norm/bias tensor changes the output (a unit gain and zero bias would hide it)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1:
                base = 1.0 if name.endswith("weight") else 0.0  # 1-d weights are norm gains
                value = base + 0.1 * torch.randn(p.shape, generator=generator)
            else:
                value = torch.randn(p.shape, generator=generator) / math.sqrt(p[0].numel())
            p.copy_(value.to(torch.float16).to(p.dtype))


def build(seed: int = SEED) -> dict:
    """The SDXL pipeline components (diffusers/transformers objects, fp32, eval mode)."""
    generator = torch.Generator().manual_seed(seed)
    unet = tiny_unet()
    text_encoder, text_encoder_2 = tiny_text_encoders()
    vae = tiny_vae()
    for part in (unet, text_encoder, text_encoder_2, vae):
        seeded_fill(part, generator)
        part.eval().requires_grad_(False)
    with torch.no_grad():  # keep the random decoder's output mostly inside [0, 1], so the image is not all clamped
        last = vae.decoder.layers[-1]
        last.weight.mul_(0.125)
        last.bias.fill_(0.5)
    tokenizer, tokenizer_2 = tokenizers()
    return {"unet": unet, "text_encoder": text_encoder, "text_encoder_2": text_encoder_2, "vae": vae,
            "tokenizer": tokenizer, "tokenizer_2": tokenizer_2, "scheduler": sdxl_base_scheduler()}


def pipeline(parts: dict) -> StableDiffusionXLPipeline:
    """The published pipeline class; SDXL base sets force_zeros_for_empty_prompt (zero negative cond and pooled)."""
    pipe = StableDiffusionXLPipeline(**parts, force_zeros_for_empty_prompt=True, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def published_names(name: str, state: dict) -> dict:
    """Key names as in the published SDXL files: transformers 5 drops the ``text_model.`` level of CLIPTextModel
    in memory, the files on the hub (and ComfyUI's maps) keep it."""
    if not name.startswith("text_encoder"):
        return state
    keep = ("text_model.", "text_projection.")
    return {(k if k.startswith(keep) else f"text_model.{k}"): v for k, v in state.items()}


def save_state_dicts(parts: dict, folder: Path) -> Path:
    """Each network's state dict under its published diffusers/transformers names (what the converter reads)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for name in COMPONENT_FILES:
        state = published_names(name, parts[name].state_dict())
        # fp16 halves the file and loses nothing: every weight is fp16-exact
        tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}
        save_file(tensors, str(folder / f"{name}.safetensors"))
    return folder
