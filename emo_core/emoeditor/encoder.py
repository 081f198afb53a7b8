"""EmoEditor's emotion-direction encoder: an 8-vector direction -> the token sequence that replaces the CLIP text
embedding in every cross-attention of the editing UNet.

Published layout (SD 1.5): Linear(8,256) ReLU Linear(256,512) ReLU Linear(512,768) ReLU Linear(768, 77*768), state-dict
keys ``fc.0``, ``fc.2``, ``fc.4``, ``fc.6``; output (B, 77, 768).

EXTENSION (not in EmoEditor): other token widths, e.g. 77x2048 for an SDXL-width editor, and an optional pooled head
``pooled`` = Linear(768, pooled_width) on the last hidden layer (SDXL's 1280-d pooled embedding). No published weights
exist for these; they only make a retrained variant loadable by the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .emotions import NUM_EMOTIONS

HIDDEN_SIZES = (256, 512, 768)
DEFAULT_TOKENS = 77   # CLIP context length; fixed by the UNet's cross-attention, not by the encoder
DEFAULT_WIDTH = 768   # SD 1.5 cross-attention width


@dataclass(frozen=True)
class EncoderConfig:
    tokens: int = DEFAULT_TOKENS
    width: int = DEFAULT_WIDTH
    pooled_width: int = 0  # EXTENSION: 0 = the published encoder, no pooled head

    @property
    def is_published_layout(self) -> bool:
        return (self.tokens, self.width, self.pooled_width) == (DEFAULT_TOKENS, DEFAULT_WIDTH, 0)


def expected_shapes(config: EncoderConfig = EncoderConfig()) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of an encoder with this config, in module order, with its shape."""
    sizes = (NUM_EMOTIONS, *HIDDEN_SIZES, config.tokens * config.width)
    shapes: dict[str, tuple[int, ...]] = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        shapes[f"fc.{2 * layer}.weight"] = (fan_out, fan_in)
        shapes[f"fc.{2 * layer}.bias"] = (fan_out,)
    if config.pooled_width:
        shapes["pooled.weight"] = (config.pooled_width, HIDDEN_SIZES[-1])
        shapes["pooled.bias"] = (config.pooled_width,)
    return shapes


def config_from_shapes(shapes: Mapping[str, tuple[int, ...]], tokens: int = DEFAULT_TOKENS) -> EncoderConfig:
    """Derive width (and the extension's pooled width) from the last layer's shape.

    ``fc.6`` produces tokens*width values, so the token count cannot be read from it alone: ``tokens`` is given
    (77 for every Stable Diffusion UNet). Raises ValueError when the output size is not a multiple of ``tokens``.
    """
    out_features = shapes["fc.6.weight"][0]
    if tokens <= 0 or out_features % tokens:
        raise ValueError(f"fc.6 outputs {out_features} values, which is not a multiple of {tokens} tokens")
    pooled = shapes.get("pooled.weight", (0,))[0]
    return EncoderConfig(tokens=tokens, width=out_features // tokens, pooled_width=pooled)


@dataclass
class EncoderOutput:
    tokens: torch.Tensor                # (B, tokens, width)
    pooled: torch.Tensor | None = None  # (B, pooled_width), EXTENSION only


class EmotionEncoder(nn.Module):
    """Emotion direction (8,) or (B, 8) -> tokens (B, 77, 768) with the default (published) layout."""

    def __init__(self, tokens: int = DEFAULT_TOKENS, width: int = DEFAULT_WIDTH, pooled_width: int = 0):
        super().__init__()
        if tokens <= 0 or width <= 0 or pooled_width < 0:
            raise ValueError(f"bad encoder size tokens={tokens} width={width} pooled_width={pooled_width}")
        self.config = EncoderConfig(tokens, width, pooled_width)
        h1, h2, h3 = HIDDEN_SIZES
        self.fc = nn.Sequential(
            nn.Linear(NUM_EMOTIONS, h1), nn.ReLU(),
            nn.Linear(h1, h2), nn.ReLU(),
            nn.Linear(h2, h3), nn.ReLU(),
            nn.Linear(h3, tokens * width),
        )
        self.pooled = nn.Linear(h3, pooled_width) if pooled_width else None

    @classmethod
    def from_config(cls, config: EncoderConfig) -> EmotionEncoder:
        return cls(config.tokens, config.width, config.pooled_width)

    def encode(self, direction: torch.Tensor) -> EncoderOutput:
        if direction.shape[-1:] != (NUM_EMOTIONS,) or direction.dim() not in (1, 2):
            raise ValueError(f"direction must have shape (8,) or (B, 8), got {tuple(direction.shape)}")
        # A 1-D input runs as 1-D (float32 GEMV, bit-identical to the official call) and becomes a batch of one
        # through the official view(-1, 77, 768).
        hidden = self.fc[:-1](direction)
        tokens = self.fc[-1](hidden).view(-1, self.config.tokens, self.config.width)
        pooled = self.pooled(hidden).view(-1, self.config.pooled_width) if self.pooled is not None else None
        return EncoderOutput(tokens, pooled)

    def forward(self, direction: torch.Tensor) -> torch.Tensor:
        return self.encode(direction).tokens
