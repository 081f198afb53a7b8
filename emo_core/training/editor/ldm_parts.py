"""Host-independent arithmetic of the ComfyUI editor glue (nodes/training/editor/backbone): the VAE posterior from its
moments, the training schedule from a sampler's sigmas, and LDM -> diffusers UNet names for the editor file.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

LOGVAR_RANGE = (-30.0, 20.0)  # the clamp of diffusers' (and LDM's) DiagonalGaussianDistribution


def posterior_mean_std(moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A KL VAE's ``quant_conv`` output (B, 2C, h, w) -> posterior (mean, std), float32: the first C channels are the
    mean, the rest the log-variance, clamped as diffusers does before ``std = exp(logvar / 2)``."""
    if moments.dim() != 4 or moments.shape[1] % 2:
        raise ValueError(f"VAE moments must be (B, 2C, h, w), got {tuple(moments.shape)}")
    mean, logvar = moments.float().chunk(2, dim=1)
    return mean, torch.exp(0.5 * logvar.clamp(*LOGVAR_RANGE))


def alphas_cumprod_from_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """alphas_cumprod (float64) of a discrete epsilon schedule from its k-diffusion sigmas:
    sigma = sqrt((1 - a) / a)  <=>  a = 1 / (1 + sigma^2)."""
    return 1.0 / (1.0 + sigmas.double() ** 2)


def ldm_to_diffusers(state: Mapping[str, torch.Tensor], diffusers_to_ldm: Mapping[str, str],
                     source: str = "UNet") -> dict[str, torch.Tensor]:
    """Rename an LDM-key UNet state dict to diffusers names with the inverse of a ``{diffusers: ldm}`` table
    (ComfyUI's ``unet_to_diffusers``); every key must be covered."""
    inverse: dict[str, str] = {}
    for diffusers_name, ldm_name in diffusers_to_ldm.items():
        inverse.setdefault(ldm_name, diffusers_name)  # aliases (e.g. SDXL's class / add embedding): the first wins
    unmapped = sorted(k for k in state if k not in inverse)
    if unmapped:
        raise ValueError(f"{source}: {len(unmapped)} weights have no diffusers name, e.g. {unmapped[:3]}")
    return {inverse[k]: v for k, v in state.items()}
