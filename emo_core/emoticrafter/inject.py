"""Emotion injection into SDXL prompt embeddings: strength blending and long-prompt chunking around the EIT."""

from __future__ import annotations

from collections.abc import Callable

import torch

SDXL_WIDTH = 2048  # CLIP-L (768) ‖ CLIP-G (1280) penultimate features
CHUNK = 77  # the EIT was trained on single 77-token CLIP windows
LONG_PROMPT = ("per_chunk", "truncate")


def inject(network, embeds: torch.Tensor, valence: torch.Tensor, arousal: torch.Tensor, strength: float = 1.0,
           long_prompt: str = "per_chunk", check_cancel: Callable[[], None] | None = None) -> torch.Tensor:
    """embeds (B, L, 2048) with B = 1 or the number of points → (N, L', 2048) emotional embeds.

    ``per_chunk`` runs the EIT on every 77-token window with positions restarted (nothing dropped); ``truncate``
    keeps the first window only, as the published diffusers pipeline does. Strength s gives f + s·(EIT(f) − f);
    s = 1 is the published behaviour, s = 0 the neutral embeddings."""
    if long_prompt not in LONG_PROMPT:
        raise ValueError(f"long_prompt must be one of {', '.join(LONG_PROMPT)}, got {long_prompt!r}")
    windows = [embeds[:, :CHUNK]] if long_prompt == "truncate" else list(embeds.split(CHUNK, dim=1))
    out = []
    for window in windows:
        if check_cancel is not None:
            check_cancel()
        emotional = network(window, valence=valence, arousal=arousal)
        if strength != 1.0:
            emotional = window + strength * (emotional - window)
        out.append(emotional)
    return torch.cat(out, dim=1)


def check_sdxl_conditioning(embeds: torch.Tensor, count: int) -> None:
    """Refuse, with what was expected, embeddings the EIT cannot take or a batch that does not match the points."""
    if embeds.ndim != 3 or embeds.shape[-1] != SDXL_WIDTH:
        raise ValueError(f"Emotion Injection needs SDXL text conditioning (tokens x {SDXL_WIDTH}, from "
                         f"CLIPTextEncode on an SDXL checkpoint); got a tensor of shape {tuple(embeds.shape)}. "
                         "SD1.5/SD2/Flux conditionings cannot be used with EmotiCrafter.")
    if embeds.shape[1] % CHUNK:
        raise ValueError(f"expected whole {CHUNK}-token CLIP windows, got {embeds.shape[1]} tokens")
    if embeds.shape[0] not in (1, count):
        raise ValueError(f"the conditioning holds {embeds.shape[0]} prompts but the V-A input has {count} points; "
                         "give one prompt, or one V-A point per prompt")
