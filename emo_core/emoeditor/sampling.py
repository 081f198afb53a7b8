"""The arithmetic of the EmoEditor edit on a k-diffusion sampler, host-independent (the ComfyUI side, which maps
timesteps to sigmas through the model and drives the host's guider, is ``nodes/emoeditor/sampling.py``).

The published edit ([EE ip2p.py], classifier-free guidance removed) runs n DDIM steps (eta 0) over the timesteps
t_k = k*floor(T/n) + 1, k = n-1..0 (schedule.edit_timesteps), and its last step lands on alphas_cumprod[0]
(sigma(0) ~ 0.0292), not on a clean sample. Euler on an epsilon model over sigma(t_k) is DDIM with eta 0, so the
sigma list sigma(t_(n-1)), ..., sigma(t_0), sigma(0) (the sigmas of ``timesteps_with_final``) reproduces the DDIM
trajectory. k-diffusion latents live at the scale x / sqrt(alphas_cumprod); DDIM's final sample is at the
variance-preserving scale, so the result is multiplied by sqrt(alphas_cumprod[0]) = 1 / sqrt(1 + sigma(0)^2) once
at the end (``vp_rescale``).

Several IEI attempts from one init image run as one batch, and every attempt draws its own T, so every batch item
has its own sigma schedule: ``per_item_sigmas`` stacks them (steps + 1, batch) and ``euler_per_item`` runs the
Euler step with sigma as a column per item, the same operations in the same order as the host's single-schedule
Euler (one model call per step, x += (x - denoised) / sigma * dt). A batch of one reproduces the single edit bit for
bit. A larger batch computes the same formulas, but not the same bits: convolution and matrix kernels pick other
algorithms and summation orders for other batch sizes (measured on the CPU: ComfyUI's first UNet convolution
already differs by ~5e-7 between batch 1 and 2), so items agree with their batch-of-one edits to float rounding
(~1e-6), not exactly. No kernel library promises batch-invariant results, on the CPU or on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def timesteps_with_final(timesteps: list[int]) -> torch.Tensor:
    """The timesteps whose sigmas the edit runs over, as float32: t_(n-1), ..., t_0, then 0 (DDIM's final step
    lands on alphas_cumprod[0])."""
    return torch.tensor([*timesteps, 0], dtype=torch.float32)


def sigma_column(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """One sigma per batch item, shaped to broadcast over (batch, ...) tensors of ``ndim`` dimensions."""
    return values.reshape(-1, *([1] * (ndim - 1)))


def per_item_sigmas(schedules: list[torch.Tensor]) -> torch.Tensor:
    """(steps + 1, batch): the sigma schedule of every batch item, one column each."""
    return torch.stack(schedules, dim=1)


def is_max_denoise(sigma: float, sigma_max: float) -> bool:
    """The host sampler's test for a start at (or above) the model's largest sigma (pure noise: no init latent)."""
    return math.isclose(sigma_max, sigma, rel_tol=1e-05) or sigma > sigma_max


def euler_per_item(denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                   sigmas: torch.Tensor, callback=None) -> torch.Tensor:
    """Euler over ``sigmas`` shaped (steps + 1, batch), starting from the noised ``x``; ``denoise(x, sigma)`` is one
    model call with the (batch,) sigmas of a step. ``callback(step, denoised, x, steps)`` after every model call."""
    steps = sigmas.shape[0] - 1
    for i in range(steps):
        sigma = sigmas[i]
        denoised = denoise(x, sigma)
        d = (x - denoised) / sigma_column(sigma, x.ndim)
        if callback is not None:
            callback(i, denoised, x, steps)
        x = x + d * sigma_column(sigmas[i + 1] - sigma, x.ndim)
    return x


def vp_rescale(samples: torch.Tensor, final_sigma: torch.Tensor) -> torch.Tensor:
    """Samples at the k-diffusion scale -> DDIM's variance-preserving scale: divided by sqrt(1 + sigma^2) at the
    last sigma, one sigma for the batch (0-d) or one per item ((batch,))."""
    sigma = final_sigma.to(samples)
    if sigma.ndim:
        sigma = sigma_column(sigma, samples.ndim)
    return samples / torch.sqrt(1.0 + sigma ** 2)


def masked_start(init_latent: torch.Tensor, source_latent: torch.Tensor, latent_mask: torch.Tensor) -> torch.Tensor:
    """Where a regional edit starts: the init latent inside the mask (1), the source latent outside (0), so that
    the unmasked part is the source's from the first step on (ComfyUI's noise-mask sampling then holds it on the
    source's noised trajectory). Exactly ``init_latent`` where the mask is 1, ``source_latent`` where it is 0."""
    return init_latent * latent_mask + source_latent * (1.0 - latent_mask)
