"""The published edit's DDIM sampler ([EE ip2p.py], classifier-free guidance removed) on any editor backbone with
``alphas_cumprod()`` and ``predict_noise`` (the trainer's previews and the tests' reference; inside ComfyUI the edit
runs on ComfyUI's own sampler, ``nodes/emoeditor/sampling.py``)."""

from __future__ import annotations

import torch


@torch.no_grad()
def ddim_edit(backbone, tokens: torch.Tensor, pooled, source_latent: torch.Tensor,
              init_latent: torch.Tensor, T: int = 800, steps: int = 20, seed: int = 0) -> torch.Tensor:
    """The published edit's sampler (no CFG, eta 0): ``init_latent`` (scaled) noised at the first of the timesteps
    k·⌊T/n⌋ + 1, n DDIM steps conditioned on ``tokens`` and the unscaled ``source_latent``; returns the final
    clean latent (scaled)."""
    alphas = backbone.alphas_cumprod().float()
    stride = T // steps
    timesteps = [k * stride + 1 for k in range(steps - 1, -1, -1)]
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(init_latent.shape, generator=generator).to(init_latent)
    a0 = alphas[timesteps[0]]
    x = a0.sqrt() * init_latent + (1 - a0).sqrt() * noise
    dtype = next(backbone.unet.parameters()).dtype
    for i, t in enumerate(timesteps):
        a_t = alphas[t]
        a_prev = alphas[timesteps[i + 1]] if i + 1 < len(timesteps) else alphas[0]
        inp = torch.cat([x, source_latent], dim=1).to(dtype)
        eps = backbone.predict_noise(inp, torch.full((len(x),), t, dtype=torch.int64, device=x.device),
                                     tokens.to(dtype), pooled.to(dtype) if pooled is not None else None).float()
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x0
