"""The EmoEditor edit on ComfyUI's sampler: the one adapter between emo_core's edit arithmetic
(``emo_core/emoeditor/sampling.py``: why Euler over these sigmas is the published DDIM edit, the final rescale, the
per-item schedules of a batch) and the host's models, guider and sampler.

The published edit ([EE ip2p.py], classifier-free guidance removed):

* T ~ U{700..980} per edit; the scheduler's train-step count is replaced by T and DDIM picks n timesteps
  t_k = k*floor(T/n) + 1, k = n-1..0; the init latent is noised at t_(n-1); n DDIM steps (eta 0) run down to t = 1
  and the last step lands on alphas_cumprod[0] (sigma(0) ~ 0.0292), not on a clean sample.
* UNet input = concat(noisy latent, source latent), source latent = VAE posterior mode, unscaled (ComfyUI's IP2P
  model does the concat from ``concat_latent_image``); the emotion tokens are the only cross-attention context;
  one conditional UNet call per step (cfg 1).

Here: ``edit_sigmas`` maps the timesteps to sigmas with the model's own model_sampling, ``denoise`` runs ComfyUI's
"euler" over them and rescales the result to DDIM's variance-preserving scale. ``edit_attempts`` runs several IEI
attempts from one init image as one batch: ComfyUI's samplers take one schedule for the whole batch, so
PerSampleEuler repeats KSAMPLER.sample + sample_euler (noise scaling item by item, one conditional model call per
step through the guider) with one schedule per item; a batch of one reproduces ``Editor.edit`` bit for bit, a
larger batch agrees to float rounding (see emo_core's module).

Regional edits (a ``mask`` on the Editor, 1 = edit, 0 = keep): ComfyUI's own noise-mask sampling. The pixel mask at
the edit size goes to the guider as ``denoise_mask`` (ComfyUI reshapes it to the latent, bilinear, as for Set
Latent Noise Mask), and every model call goes through ``comfy.samplers.KSamplerX0Inpaint``: outside the mask the
model sees the source latent noised with the edit's noise at the step's sigma, and its output there is the source
latent. The start latent is the init latent inside the mask and the source latent outside
(``emo_core.emoeditor.sampling.masked_start``), so the unmasked part follows the source's noised trajectory even
when the init is another image (IEI's later attempts). The decoded image is composited over the source with the
mask (``emo_core.emoeditor.region.composite``): unmasked pixels are exactly the source's at the edit size. A mask
of ones gives the unmasked edit bit for bit; no mask runs the code paths above unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import comfy.model_base
import comfy.model_management as mm
import comfy.sampler_helpers
import comfy.samplers
import torch

from ...emo_core.emoeditor.attempt_rng import AttemptDraws
from ...emo_core.emoeditor.region import composite, is_empty
from ...emo_core.emoeditor.sampling import (
    euler_per_item,
    is_max_denoise,
    masked_start,
    per_item_sigmas,
    timesteps_with_final,
    vp_rescale,
)
from ...emo_core.emoeditor.schedule import EditInfo, EditSettings, draw_T, edit_timesteps
from ..shared.editing import require_ip2p


def edit_sigmas(model, timesteps: list[int]) -> torch.Tensor:
    """sigma(t_k) for each timestep, then sigma(0): DDIM's final step lands on alphas_cumprod[0]."""
    model_sampling = model.get_model_object("model_sampling")
    return model_sampling.sigma(timesteps_with_final(timesteps)).float().cpu()


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

    A 1-D direction runs as 1-D, like [EE test.py] (float32 GEMV)."""
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
            seed: int, callback=None, denoise_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Noise ``init_latent`` (unscaled VAE latent) at sigmas[0] and run Euler (= DDIM, eta 0) with one conditional
    pass per step; returns the unscaled latent at DDIM's variance-preserving scale. ``callback(step, x0, x, total)``
    is called after every step (progress and previews: nodes/shared/progress.py); the console bar stays off.
    ``denoise_mask`` (1, 1, H, W), optional: ComfyUI's noise-mask sampling, ``init_latent`` held outside it."""
    sampler = comfy.samplers.ksampler("euler")
    extra = {} if denoise_mask is None else {"denoise_mask": denoise_mask}
    samples = conditional_guider(model, conditioning).sample(noise, init_latent, sampler, sigmas, callback=callback,
                                                             disable_pbar=True, seed=seed, **extra)
    return vp_rescale(samples.to(mm.intermediate_device()), sigmas[-1])


def conditional_guider(model, conditioning: list) -> comfy.samplers.CFGGuider:
    """ComfyUI's guider for one conditional pass per step: no negative, cfg 1."""
    guider = comfy.samplers.CFGGuider(model)
    guider.inner_set_conds({"positive": conditioning})
    guider.set_cfg(1.0)
    return guider


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
    mask: torch.Tensor | None = None  # (1, H, W) at the edit size: 1 = edit, 0 = keep the source (regional edit)

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
        if is_empty(self.mask):  # nothing to edit: the source, with the same draws (later images are unaffected)
            torch.randn(self.source_latent.shape, generator=self.generator, dtype=torch.float32)
            return self.source.float().clone(), EditInfo(T, timesteps)
        encoded = encode_direction(self.encoder, direction)
        init_latent = self.vae.encode(init)
        noise = torch.randn(init_latent.shape, generator=self.generator, dtype=torch.float32)
        size = tuple(self.source.shape[1:3]) if self.is_sdxl else None
        conditioning = emotion_conditioning(encoded, self.source_latent, size)
        sigmas = edit_sigmas(self.model, timesteps)
        if self.mask is None:
            latent = denoise(self.model, conditioning, init_latent, noise, sigmas, self.seed, callback)
        else:
            latent = denoise(self.model, conditioning, self.start_latent(init_latent), noise, sigmas, self.seed,
                             callback, self.pixel_mask())
        image = self.vae.decode(latent).float()
        return self.composited(image.reshape(1, *image.shape[-3:])), EditInfo(T, timesteps)

    def pixel_mask(self) -> torch.Tensor:
        """The regional mask as ComfyUI's Set Latent Noise Mask stores it: (1, 1, H, W)."""
        return self.mask.reshape(1, 1, *self.mask.shape[-2:]).float()

    def start_latent(self, init_latent: torch.Tensor) -> torch.Tensor:
        """The init latent inside the mask, the source latent outside (the mask reshaped to the latent by ComfyUI's
        ``prepare_mask``, as the sampler will)."""
        latent_mask = comfy.sampler_helpers.prepare_mask(self.pixel_mask(), init_latent.shape, init_latent.device)
        return masked_start(init_latent, self.source_latent.to(init_latent), latent_mask.to(init_latent))

    def composited(self, images: torch.Tensor) -> torch.Tensor:
        """Decoded edits (B, H, W, 3) over the source with the mask (unchanged without one)."""
        return images if self.mask is None else composite(images, self.source, self.mask)


def encoder_width(encoder) -> tuple[int, bool]:
    """(token width, has pooled head) of an emotion-encoder patcher."""
    config = encoder.model.config
    return config.width, bool(config.pooled_width)


# --- several IEI attempts as one batch ---------------------------------------------------------------------------


class PerSampleEuler(comfy.samplers.Sampler):
    """ComfyUI's "euler" over ``sigmas`` shaped (steps + 1, batch): one schedule per batch item."""

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        model_sampling = model_wrap.inner_model.model_sampling
        sigma_max = float(model_sampling.sigma_max)
        x = torch.cat([  # KSAMPLER.sample's noise scaling, with its max_denoise test, item by item
            model_sampling.noise_scaling(sigmas[0, i], noise[i:i + 1], latent_image[i:i + 1],
                                         is_max_denoise(float(sigmas[0, i]), sigma_max))
            for i in range(noise.shape[0])])
        options = {"model_options": extra_args["model_options"], "seed": extra_args.get("seed")}
        if denoise_mask is not None:  # regional edit: ComfyUI's noise-mask model wrapper, per-item sigmas
            model_k = comfy.samplers.KSamplerX0Inpaint(model_wrap, sigmas)
            model_k.latent_image, model_k.noise = latent_image, noise
            options["denoise_mask"] = denoise_mask
            model_wrap = model_k
        x = euler_per_item(lambda latent, sigma: model_wrap(latent, sigma, **options), x, sigmas, callback)
        return model_sampling.inverse_noise_scaling(sigmas[-1], x)


def edit_attempts(editor: Editor, draws: AttemptDraws, init: torch.Tensor, direction: torch.Tensor,
                  attempts: list[int], callback=None) -> list[tuple[torch.Tensor, EditInfo]]:
    """Attempts ``attempts`` of IEI, all from ``init`` (1, H, W, 3) with the (8,) ``direction``, as one batch:
    each with its own T and noise from ``draws``. Returns (image (1, H, W, 3), EditInfo) per attempt, in order.
    ``callback(step, x0, x, total)`` as for a single edit."""
    encoded = encode_direction(editor.encoder, direction)
    init_latent = editor.vae.encode(init)  # posterior mode, once for the whole batch
    drawn = [draws.draw(k, tuple(init_latent.shape)) for k in attempts]
    timesteps = [edit_timesteps(T, editor.settings.steps) for T, _ in drawn]
    sigmas = per_item_sigmas([edit_sigmas(editor.model, ts) for ts in timesteps])  # (steps + 1, batch)
    noise = torch.cat([n for _, n in drawn])
    size = tuple(editor.source.shape[1:3]) if editor.is_sdxl else None
    conditioning = emotion_conditioning(encoded, editor.source_latent, size)
    extra = {}
    if editor.mask is not None:  # regional edit (see the module's docstring)
        init_latent, extra = editor.start_latent(init_latent), {"denoise_mask": editor.pixel_mask()}
    latents = conditional_guider(editor.model, conditioning).sample(
        noise, init_latent.expand(len(attempts), *init_latent.shape[1:]), PerSampleEuler(), sigmas,
        callback=callback, disable_pbar=True, seed=editor.seed, **extra)
    latents = vp_rescale(latents.to(mm.intermediate_device()), sigmas[-1])
    images = editor.vae.decode(latents).float()
    images = editor.composited(images.reshape(-1, *images.shape[-3:]))
    return [(images[i:i + 1], EditInfo(T, ts)) for i, ((T, _), ts) in enumerate(zip(drawn, timesteps, strict=True))]
