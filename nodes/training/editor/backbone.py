"""ComfyUI's MODEL, VAE and CLIP as the EmoEditor trainer's parts (``emo_core.training.editor.task``).

* ``ComfyEditorBackbone``: the EditorBackbone protocol over an InstructPix2Pix MODEL (SD 1.5: the released editor
  from Load EmoEditor or an ip2p checkpoint; SDXL ip2p: extension). The trainer calls ComfyUI's own UNetModel with
  the emotion tokens as context, the concat latent after ``process_ip2p_image_in`` (what ComfyUI does when it
  samples) and, on SDXL, the ADM vector from the model's own ``encode_adm`` (pooled embedding + the training
  image's size, uncropped). The input MODEL never changes: both modes train a copy of its UNet (``unet_copy``).
* ``vae_image_encoder``: images in [-1, 1] -> the VAE posterior (mean, std). ComfyUI's ``VAE.encode`` returns only
  the mode, so for a KL VAE the moments are read from its own encoder and ``quant_conv`` (the mean equals
  ``VAE.encode``); a deterministic VAE (e.g. TAESD) has std 0.
* ``clip_text_encoder``: instructions -> (N, 77, D): SD 1.5's text-encoder last hidden state (after the final
  layer norm: ComfyUI's default "last" layer, as published), or SDXL's 77x2048 embedding; Set CLIP Last Layer is
  ignored, prompt-weight brackets are escaped (EmoPair instructions are plain text), longer prompts keep their
  first 77 tokens (the published truncation).
* ``trained_model``: the trained MODEL as ComfyUI patches on a clone of the input (LoRA: ComfyUI's own LoRA
  loading, as the stock LoraLoader does; full: "set" patches of the trained weights).
"""

from __future__ import annotations

import copy

import comfy.latent_formats
import comfy.lora
import comfy.model_base
import comfy.model_management as mm
import comfy.model_sampling
import comfy.sd
import comfy.utils
import torch
from comfy.ldm.models.autoencoder import DiagonalGaussianRegularizer
from comfy.ldm.modules.attention import SpatialTransformer
from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock

from ....emo_core.training.editor.ldm_parts import alphas_cumprod_from_sigmas, ldm_to_diffusers, posterior_mean_std
from ....emo_core.training.lora import lora_state_dict
from ...shared.editing import require_ip2p

SDXL_POOLED = 1280
CHUNK = 77


def check_trainable_editor(model) -> tuple[bool, int]:
    """(is SDXL, token width) of an InstructPix2Pix epsilon MODEL, or a ValueError saying what it is instead."""
    base = require_ip2p(model, "model: EmoEditor trains")
    sampling = base.model_sampling
    sigmas = getattr(sampling, "sigmas", torch.empty(0))
    if not isinstance(sampling, comfy.model_sampling.EPS) or sigmas.numel() != 1000:
        raise ValueError("model: the EmoEditor objective trains a noise (epsilon) predictor on the 1000-step "
                         f"discrete schedule; this MODEL samples with {type(sampling).__name__}")
    return isinstance(base, comfy.model_base.SDXL), int(base.model_config.unet_config["context_dim"])


class ComfyEditorBackbone:
    """EditorBackbone over a ComfyUI ip2p UNetModel (``unet``: the module being trained)."""

    def __init__(self, model, unet: torch.nn.Module, image_size: tuple[int, int], vae=None):
        self.base = model.model
        self.is_sdxl, self.token_width = check_trainable_editor(model)
        self.pooled_width = SDXL_POOLED if self.is_sdxl else 0
        self.latent_scale = float(self.base.latent_format.scale_factor)
        self.unet, self.image_size, self.vae = unet, image_size, vae

    def compute_dtype(self) -> torch.dtype:
        """The dtype the UNet runs in: its input conv's (never a LoRA target), or ComfyUI's manual-cast dtype."""
        dtype = self.unet.input_blocks[0][0].weight.dtype
        if self.unet is self.base.diffusion_model and self.base.manual_cast_dtype is not None:
            dtype = self.base.manual_cast_dtype
        return dtype

    def adm(self, pooled: torch.Tensor) -> torch.Tensor:
        """SDXL's ADM vector by the model's own encode_adm: pooled (B, 1280) + six size embeddings."""
        height, width = self.image_size
        return self.base.encode_adm(pooled_output=pooled, width=width, height=height, crop_w=0, crop_h=0,
                                    target_width=width, target_height=height).to(pooled.device)

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor,
                      pooled: torch.Tensor | None) -> torch.Tensor:
        dtype = self.compute_dtype()
        channels = x.shape[1] // 2
        x = torch.cat([x[:, :channels], self.base.process_ip2p_image_in(x[:, channels:])], dim=1)
        y = None
        if self.is_sdxl:
            if pooled is None:
                raise ValueError("an SDXL editor needs the encoder's pooled embedding")
            y = self.adm(pooled).to(dtype)
        return self.unet(x.to(dtype), timesteps=t.float(), context=tokens.to(dtype), y=y)

    def alphas_cumprod(self) -> torch.Tensor:
        return alphas_cumprod_from_sigmas(self.base.model_sampling.sigmas.cpu())

    def enable_gradient_checkpointing(self) -> None:
        from ....emo_core.training.editor.precision import checkpoint_modules

        checkpoint_modules([m for m in self.unet.modules() if isinstance(m, (ResBlock, SpatialTransformer))])

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        return lora_state_dict(self.unet, "diffusion_model.")

    def editor_state_dict(self) -> dict[str, torch.Tensor]:
        """The "full" file. SD 1.5: ``unet.*`` in diffusers names + ``auto_encoder.*`` (the VAE), as Load EmoEditor
        reads the released model_ip2p.pt. SDXL (no EmoEditor file exists): ``model.diffusion_model.*``, which
        ComfyUI's Load Diffusion Model reads."""
        state = {k: v.detach().cpu().contiguous() for k, v in self.unet.state_dict().items()}
        if self.is_sdxl:
            return {f"model.diffusion_model.{k}": v for k, v in state.items()}
        names = comfy.utils.unet_to_diffusers(self.base.model_config.unet_config)
        out = {f"unet.{k}": v for k, v in ldm_to_diffusers(state, names, "the trained UNet").items()}
        if self.vae is None:
            raise ValueError("the SD 1.5 editor file needs the VAE")
        out |= {f"auto_encoder.{k}": v.detach().cpu().contiguous()
                for k, v in self.vae.first_stage_model.state_dict().items()}
        return out


def unet_copy(model) -> torch.nn.Module:
    """A trainable copy of the MODEL's UNet on the torch device, with the MODEL's patches (e.g. a LoRA loaded before)
    applied, in the model's dtype. Both modes train a copy: the input MODEL never changes, and ComfyUI builds its
    weights under inference mode, as tensors autograd cannot save for the backward pass (a LoRA's gradient flows
    through the frozen weights too)."""
    mm.load_models_gpu([model], force_full_load=True)
    with torch.inference_mode(False):
        return copy.deepcopy(model.model.diffusion_model).requires_grad_(False)


def trained_model(model, mode: str, trained: dict[str, torch.Tensor]):
    """A clone of ``model`` carrying the training result as patches. ``trained``: the LoRA state dict
    (``diffusion_model.*.lora_*``; applied by ComfyUI's own LoRA loading, exactly what LoraLoader does with the
    saved file) or, for "full", the trained UNet's state dict (module names)."""
    if mode == "lora":
        patched, _ = comfy.sd.load_lora_for_models(model, None, trained, 1.0, 0.0)
        return patched
    patched = model.clone()
    dtype = model.model.get_dtype()
    patches = {f"diffusion_model.{k}": ("set", (v.detach().to("cpu", dtype),)) for k, v in trained.items()}
    missing = set(patches) - set(patched.add_patches(patches, 1.0))
    if missing:
        raise RuntimeError(f"{len(missing)} trained weights did not match the model, e.g. {sorted(missing)[:3]}")
    return patched


# --- the frozen encoders ---------------------------------------------------------------------------------------


def vae_image_encoder(vae, batch: int = 8):
    """images (B, 3, H, W) in [-1, 1] -> posterior (mean, std), float32 on the CPU, unscaled latents."""
    first_stage = vae.first_stage_model
    is_kl = isinstance(getattr(first_stage, "regularization", None), DiagonalGaussianRegularizer) and \
        hasattr(first_stage, "encoder")

    def encode(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        means, stds = [], []
        for start in range(0, images.shape[0], batch):
            mm.throw_exception_if_processing_interrupted()
            chunk = images[start:start + batch]
            if not is_kl:  # deterministic (TAESD and the like): ComfyUI's encode is the latent itself
                mean = vae.encode(((chunk + 1) / 2).clamp(0, 1).movedim(1, -1)).float().cpu()
                means.append(mean)
                stds.append(torch.zeros_like(mean))
                continue
            mm.load_models_gpu([vae.patcher])
            with torch.no_grad():
                moments = first_stage.encoder(chunk.to(vae.device, vae.vae_dtype))
                if getattr(first_stage, "quant_conv", None) is not None:
                    moments = first_stage.quant_conv(moments)
            mean, std = posterior_mean_std(moments)
            means.append(mean.cpu())
            stds.append(std.cpu())
        return torch.cat(means), torch.cat(stds)

    return encode


def clip_text_encoder(clip, width: int):
    """instructions -> (N, 77, width) float32 on the CPU (see the module docstring)."""
    clip = clip.clone()
    clip.clip_layer(None)  # the model's default layer: SD 1.5 "last" (= the published last hidden state)

    def encode(prompts: list[str]) -> torch.Tensor:
        out = []
        for prompt in prompts:
            mm.throw_exception_if_processing_interrupted()
            text = prompt.replace("(", "\\(").replace(")", "\\)")
            cond = clip.encode_from_tokens(clip.tokenize(text))
            if cond.shape[-1] != width:
                raise ValueError(f"clip: this text encoder gives {cond.shape[-1]}-wide embeddings but the model's "
                                 f"cross-attention expects {width} (use the text encoder of the same model family: "
                                 "SD 1.5 CLIP-L for the SD 1.5 editor, SDXL's for an SDXL ip2p model)")
            out.append(cond[:, :CHUNK].float().cpu())
        return torch.cat(out)

    return encode
