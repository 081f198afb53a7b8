"""Several IEI attempts from one init image as one batch on ComfyUI's sampler.

Every attempt draws its own T, so every batch item has its own timesteps t_k = k*floor(T/n) + 1 and its own sigma
schedule. ComfyUI's samplers take one schedule for the whole batch, so PerSampleEuler runs ComfyUI's "euler" step
with a schedule per item: the same operations, in the same order, as KSAMPLER.sample + sample_euler (noise
scaling, one conditional model call per step through the guider, x += (x - denoised) / sigma * dt), with sigma a
column per item. A batch of one reproduces the single edit of emoeditor_sampling.Editor.edit bit for bit.

A larger batch computes the same formulas, but not the same bits: convolution and matrix kernels pick other
algorithms and summation orders for other batch sizes (measured on the CPU: ComfyUI's first UNet convolution already
differs by ~5e-7 between batch 1 and 2), so items agree with their batch-of-one edits to float rounding (~1e-6), not
exactly. No kernel library promises batch-invariant results, on the CPU or on a GPU.
"""

from __future__ import annotations

import math

import comfy.model_management as mm
import comfy.samplers
import torch

from ...emo_core.emoeditor.attempt_rng import AttemptDraws
from ...emo_core.emoeditor.schedule import EditInfo, edit_timesteps
from .sampling import Editor, edit_sigmas, emotion_conditioning, encode_direction


def _column(values: torch.Tensor, ndim: int) -> torch.Tensor:
    return values.reshape(-1, *([1] * (ndim - 1)))


class PerSampleEuler(comfy.samplers.Sampler):
    """Euler over ``sigmas`` shaped (steps + 1, batch): one schedule per batch item."""

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        model_sampling = model_wrap.inner_model.model_sampling
        sigma_max = float(model_sampling.sigma_max)
        x = torch.cat([  # KSAMPLER.sample's noise scaling, with its max_denoise test, item by item
            model_sampling.noise_scaling(sigmas[0, i], noise[i:i + 1], latent_image[i:i + 1],
                                         math.isclose(sigma_max, float(sigmas[0, i]), rel_tol=1e-05)
                                         or float(sigmas[0, i]) > sigma_max)
            for i in range(noise.shape[0])])
        options = {"model_options": extra_args["model_options"], "seed": extra_args.get("seed")}
        steps = sigmas.shape[0] - 1
        for i in range(steps):
            sigma = sigmas[i]
            denoised = model_wrap(x, sigma, **options)
            d = (x - denoised) / _column(sigma, x.ndim)
            if callback is not None:
                callback(i, denoised, x, steps)
            x = x + d * _column(sigmas[i + 1] - sigma, x.ndim)
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
    sigmas = torch.stack([edit_sigmas(editor.model, ts) for ts in timesteps], dim=1)  # (steps + 1, batch)
    noise = torch.cat([n for _, n in drawn])
    size = tuple(editor.source.shape[1:3]) if editor.is_sdxl else None
    conditioning = emotion_conditioning(encoded, editor.source_latent, size)
    guider = comfy.samplers.CFGGuider(editor.model)
    guider.inner_set_conds({"positive": conditioning})  # cfg 1: one conditional pass, as the single edit
    guider.set_cfg(1.0)
    latents = guider.sample(noise, init_latent.expand(len(attempts), *init_latent.shape[1:]), PerSampleEuler(),
                            sigmas, callback=callback, disable_pbar=True, seed=editor.seed)
    latents = latents.to(mm.intermediate_device())
    latents = latents / torch.sqrt(1.0 + _column(sigmas[-1].to(latents), latents.ndim) ** 2)
    images = editor.vae.decode(latents).float()
    images = images.reshape(-1, *images.shape[-3:])
    return [(images[i:i + 1], EditInfo(T, ts)) for i, ((T, _), ts) in enumerate(zip(drawn, timesteps, strict=True))]
