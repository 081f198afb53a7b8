"""The EmoEditor trainer on diffusers models (the command line, and tests): an ``EditorBackbone`` around a
``UNet2DConditionModel``, the frozen VAE / CLIP text encoder as feature encoders, and a plain DDIM edit.

A diffusers InstructPix2Pix folder (``timbrooks/instruct-pix2pix`` layout: ``unet/``, ``vae/``, ``text_encoder/``,
``tokenizer/``, ``scheduler/``) is read with ``from_pretrained(local_files_only=True)``; the published editor file
(``unet.*`` + ``auto_encoder.*``) can replace its UNet and VAE weights (strictly: same keys and shapes).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ...emoeditor.unet_layout import split_editor_checkpoint
from ...errors import CheckpointError
from ...weights import read_weights

SD15_SCALE = 0.18215


def scaled_linear_alphas(beta_start: float = 0.00085, beta_end: float = 0.012, steps: int = 1000) -> torch.Tensor:
    """ᾱ_t of SD's "scaled_linear" schedule (the published DDIM config), float64."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


class DiffusersEditorBackbone:
    """``EditorBackbone`` for a diffusers ip2p UNet (8 input channels; SD 1.5, or SDXL with the text_time ADM)."""

    def __init__(self, unet, vae=None, alphas: torch.Tensor | None = None, latent_scale: float | None = None):
        self.unet, self.vae = unet, vae
        config = unet.config
        if config.in_channels != 8:
            raise ValueError(f"the UNet takes {config.in_channels} input channels; an InstructPix2Pix UNet takes 8 "
                             "(noisy latent + source latent)")
        self.token_width = int(config.cross_attention_dim)
        self.pooled_width = 0
        if config.addition_embed_type == "text_time":
            self.pooled_width = int(config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim)
        scale = latent_scale or (vae.config.scaling_factor if vae is not None else None) or SD15_SCALE
        self.latent_scale = float(scale)
        self._alphas = alphas if alphas is not None else scaled_linear_alphas()

    def predict_noise(self, x, t, tokens, pooled):
        added = None
        if self.pooled_width:
            h, w = x.shape[-2] * 8, x.shape[-1] * 8  # SDXL size conditioning: original = target size, no crop
            time_ids = torch.tensor([h, w, 0, 0, h, w], dtype=x.dtype, device=x.device).expand(len(x), 6)
            added = {"text_embeds": pooled, "time_ids": time_ids}
        return self.unet(x, t, encoder_hidden_states=tokens, added_cond_kwargs=added, return_dict=False)[0]

    def alphas_cumprod(self) -> torch.Tensor:
        return self._alphas

    def enable_gradient_checkpointing(self) -> None:
        self.unet.enable_gradient_checkpointing()

    def editor_state_dict(self) -> dict[str, torch.Tensor]:
        """The published editor layout: ``unet.*`` and ``auto_encoder.*`` (diffusers names)."""
        if self.vae is None:
            raise ValueError("a full editor file holds the VAE too: this backbone was built without one")
        state = {f"unet.{k}": v for k, v in self.unet.state_dict().items() if ".lora_" not in k}
        state.update((f"auto_encoder.{k}", v) for k, v in self.vae.state_dict().items())
        return state

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        """Adapters under ComfyUI's ``lora_unet_<diffusers name with _>`` keys (its LoraLoader maps them)."""
        from ..lora import lora_state_dict

        out = {}
        for key, value in lora_state_dict(self.unet, key_prefix="").items():
            module, _, suffix = key.rpartition(".lora_") if ".lora_" in key else key.rpartition(".")
            suffix = f"lora_{suffix}" if ".lora_" in key else suffix
            out[f"lora_unet_{module.replace('.', '_')}.{suffix}"] = value
        return out


def vae_encoder(vae):
    """``encode_image`` of ``build_editor_features``: images in [−1, 1] -> (posterior mean, std), unscaled."""
    device, dtype = next(vae.parameters()).device, next(vae.parameters()).dtype

    def encode(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posterior = vae.encode(images.to(device, dtype)).latent_dist
        return posterior.mean.float(), posterior.std.float()

    return encode


def clip_text_encoder(tokenizer, text_encoder):
    """``encode_text``: the last hidden state (N, 77, width) of the padded instructions (ip2p's E_text)."""
    device = next(text_encoder.parameters()).device

    def encode(prompts: list[str]) -> torch.Tensor:
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(device)
        return text_encoder(ids)[0].float()

    return encode


def load_ip2p_folder(folder: str | os.PathLike, editor_file: str | os.PathLike | None = None) -> dict:
    """The parts of a diffusers InstructPix2Pix folder (frozen, eval mode, fp32), optionally with the UNet and VAE
    weights of a published-layout editor file."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    for part in ("unet", "vae", "text_encoder", "tokenizer"):
        if not (folder / part).is_dir():
            raise FileNotFoundError(f"{folder}: not a diffusers InstructPix2Pix folder (no {part}/ subfolder)")
    kw = {"local_files_only": True}
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", **kw).float()
    vae = AutoencoderKL.from_pretrained(folder / "vae", **kw).float().eval().requires_grad_(False)
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", **kw).float().eval().requires_grad_(False)
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", **kw)
    alphas = None
    scheduler = folder / "scheduler" / "scheduler_config.json"
    if scheduler.is_file():
        import json

        cfg = json.loads(scheduler.read_text())
        if cfg.get("beta_schedule", "scaled_linear") != "scaled_linear":
            raise ValueError(f"{scheduler}: only the scaled_linear schedule of SD is supported")
        alphas = scaled_linear_alphas(cfg.get("beta_start", 0.00085), cfg.get("beta_end", 0.012),
                                      cfg.get("num_train_timesteps", 1000))
    if editor_file is not None:
        state, _ = read_weights(editor_file)
        unet_state, vae_state = split_editor_checkpoint(state, str(editor_file))
        for name, module, part in (("unet", unet, unet_state), ("auto_encoder", vae, vae_state)):
            try:
                module.load_state_dict({k: v.float() for k, v in part.items()}, strict=True)
            except RuntimeError as exc:
                raise CheckpointError(f"{editor_file}: its {name}.* weights do not fit the {folder} model: "
                                      f"{str(exc).splitlines()[0]}") from None
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "alphas": alphas}
