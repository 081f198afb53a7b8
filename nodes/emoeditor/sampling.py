"""One EmoEditor edit on ComfyUI's sampler.

The published edit (ip2p.py, classifier-free guidance removed):

* T ~ U{700..980} per edit; the scheduler's train-step count is replaced by T and DDIM picks n timesteps
  t_k = k*floor(T/n) + 1, k = n-1..0; the init latent is noised at t_(n-1); n DDIM steps (eta 0) run down to t = 1
  and the last step lands on alphas_cumprod[0] (sigma(0) ~ 0.0292), not on a clean sample.
* UNet input = concat(noisy latent, source latent), source latent = VAE posterior mode, unscaled (ComfyUI's IP2P
  model does the concat from ``concat_latent_image``); the emotion tokens are the only cross-attention context;
  one conditional UNet call per step (cfg 1).

Here: Euler on an epsilon model over sigma(t_k) is DDIM with eta 0, so the sigma list sigma(t_(n-1)), ...,
sigma(t_0), sigma(0) with ComfyUI's "euler" reproduces the DDIM trajectory. ComfyUI's latents live at the
k-diffusion scale x / sqrt(alphas_cumprod); DDIM's final sample is at the variance-preserving scale, so the result is
multiplied by sqrt(alphas_cumprod[0]) = 1 / sqrt(1 + sigma(0)^2) once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import comfy.model_base
import comfy.model_management as mm
import comfy.samplers
import torch

from ...emo_core.emoeditor.schedule import EditInfo, EditSettings, draw_T, edit_timesteps
from ..shared.editing import require_ip2p


def edit_sigmas(model, timesteps: list[int]) -> torch.Tensor:
    """sigma(t_k) for each timestep, then sigma(0): DDIM's final step lands on alphas_cumprod[0]."""
    model_sampling = model.get_model_object("model_sampling")
    return model_sampling.sigma(torch.tensor([*timesteps, 0], dtype=torch.float32)).float().cpu()


# --- the models --------------------------------------------------------------------------------------------------


def check_editor_model(model, token_width: int, has_pooled: bool) -> bool:
    """Raise a clear error unless ``model`` is an InstructPix2Pix MODEL the encoder can condition.

    Returns True for an SDXL InstructPix2Pix model (extension: needs pooled output and size keys)."""
    base = require_ip2p(model)
    context = base.model_config.unet_config.get("context_dim")
    if context != token_width:
        raise ValueError(f"the emotion encoder produces tokens of width {token_width} but this model's "
                         f"cross-attention expects {context}: use the SD 1.5 editor with the published encoder "
                         "(768), or an SDXL-width encoder (2048) with an SDXL InstructPix2Pix model")
    is_sdxl = isinstance(base, comfy.model_base.SDXL)
    if is_sdxl and not has_pooled:
        raise ValueError("an SDXL InstructPix2Pix model (extension) also needs a pooled emotion embedding: use an "
                         "SDXL-width encoder with a pooled head")
    return is_sdxl


def encode_direction(encoder, direction: torch.Tensor):
    """(8,) direction -> emo_core EncoderOutput (tokens (1, 77, W), pooled or None), on the intermediate device.

    A 1-D direction runs as 1-D, like test.py (float32 GEMV)."""
    mm.load_models_gpu([encoder])
    network = encoder.model
    param = next(network.parameters())
    out = network.encode(direction.to(param.device, param.dtype))
    out.tokens = out.tokens.to(mm.intermediate_device())
    if out.pooled is not None:
        out.pooled = out.pooled.to(mm.intermediate_device())
    return out


def emotion_conditioning(encoded, source_latent: torch.Tensor, pixel_size: tuple[int, int] | None) -> list:
    """ComfyUI CONDITIONING: the emotion tokens as the only context, the source latent for IP2P's concat; for SDXL
    (extension) the pooled embedding and the size keys of an uncropped image."""
    meta = {"concat_latent_image": source_latent}
    if pixel_size is not None:
        height, width = pixel_size
        meta |= {"pooled_output": encoded.pooled, "width": width, "height": height, "crop_w": 0, "crop_h": 0,
                 "target_width": width, "target_height": height}
    return [[encoded.tokens, meta]]


def denoise(model, conditioning: list, init_latent: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor,
            seed: int, callback=None) -> torch.Tensor:
    """Noise ``init_latent`` (unscaled VAE latent) at sigmas[0] and run Euler (= DDIM, eta 0) with one conditional
    pass per step; returns the unscaled latent at DDIM's variance-preserving scale. ``callback(step, x0, x, total)``
    is called after every step (progress and previews: nodes/shared/progress.py); the console bar stays off."""
    guider = comfy.samplers.CFGGuider(model)
    guider.inner_set_conds({"positive": conditioning})  # no negative: cfg 1 is a single conditional pass
    guider.set_cfg(1.0)
    sampler = comfy.samplers.ksampler("euler")
    samples = guider.sample(noise, init_latent, sampler, sigmas, callback=callback, disable_pbar=True, seed=seed)
    samples = samples.to(mm.intermediate_device())
    return samples / torch.sqrt(1.0 + sigmas[-1].to(samples) ** 2)


@dataclass
class Editor:
    """Everything one source needs for repeated edits (IEI): the models, the 224-px source and its latent."""

    model: object
    vae: object
    encoder: object
    source: torch.Tensor  # (1, H, W, 3) at the edit size
    settings: EditSettings
    generator: torch.Generator
    seed: int
    source_latent: torch.Tensor | None = None
    is_sdxl: bool = False

    def prepare(self, token_width: int, has_pooled: bool) -> Editor:
        self.settings.check()
        self.is_sdxl = check_editor_model(self.model, token_width, has_pooled)
        self.source_latent = self.vae.encode(self.source)  # posterior mode, unscaled: the ip2p concat latent
        return self

    def edit(self, init: torch.Tensor, direction: torch.Tensor, callback=None) -> tuple[torch.Tensor, EditInfo]:
        """One edit of ``init`` (1, H, W, 3) driven by the (8,) direction, conditioned on the source; ``callback``
        as for ``denoise``.

        RNG, from the one seeded generator in the published order: T, then the noise. (The published init latent
        is a posterior sample, an extra draw in between; ComfyUI's VAE gives the mode.)"""
        T = draw_T(self.generator, self.settings)
        timesteps = edit_timesteps(T, self.settings.steps)
        encoded = encode_direction(self.encoder, direction)
        init_latent = self.vae.encode(init)
        noise = torch.randn(init_latent.shape, generator=self.generator, dtype=torch.float32)
        size = tuple(self.source.shape[1:3]) if self.is_sdxl else None
        conditioning = emotion_conditioning(encoded, self.source_latent, size)
        latent = denoise(self.model, conditioning, init_latent, noise, edit_sigmas(self.model, timesteps), self.seed,
                         callback)
        image = self.vae.decode(latent).float()
        return image.reshape(1, *image.shape[-3:]), EditInfo(T, timesteps)


def encoder_width(encoder) -> tuple[int, bool]:
    """(token width, has pooled head) of an emotion-encoder patcher."""
    config = encoder.model.config
    return config.width, bool(config.pooled_width)
