"""EmoEditor's training objective ([EE train.py]), computed in float32 whatever the input dtype.

    total = MSE(ε̂, ε) + λ · mean_b (1 − cos(flatten(E_text_b), flatten(e_b)))

ε̂ the UNet's noise prediction, ε the noise drawn, E_text the SD text encoder's last hidden state of the pair's edit
instruction (B×77×768 on SD 1.5), e the emotion encoder's tokens of the pair's direction (same shape), λ = 0.5.
The cosine runs over the whole flattened vector (59,136 values on SD 1.5), padding positions included, as
published. ``editor_terms`` returns the per-sample parts so that data-parallel ranks holding unequal shares of one
global batch add up to exactly the single-process loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PUBLISHED_WEIGHT = 0.5  # λ of the alignment term


def editor_terms(noise_pred: torch.Tensor, noise: torch.Tensor, text_embeds: torch.Tensor,
                 emotion_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: (squared-error sum of ε̂ − ε, 1 − cosine of the flattened text embedding and tokens), float32."""
    if noise_pred.shape != noise.shape:
        raise ValueError(f"noise prediction {tuple(noise_pred.shape)} and noise {tuple(noise.shape)} differ in shape")
    if text_embeds.shape != emotion_tokens.shape:
        raise ValueError(f"text embeddings {tuple(text_embeds.shape)} and emotion tokens "
                         f"{tuple(emotion_tokens.shape)} differ in shape (the encoder must match the text width)")
    if noise.shape[0] != text_embeds.shape[0]:
        raise ValueError(f"batch of {noise.shape[0]} noise samples but {text_embeds.shape[0]} text embeddings")
    batch = noise.shape[0]
    error = (noise_pred.float() - noise.float()).reshape(batch, -1)
    cosine = F.cosine_similarity(text_embeds.float().reshape(batch, -1), emotion_tokens.float().reshape(batch, -1),
                                 dim=1)
    return error.square().sum(dim=1), 1.0 - cosine


def editor_loss(noise_pred: torch.Tensor, noise: torch.Tensor, text_embeds: torch.Tensor,
                emotion_tokens: torch.Tensor, weight: float = PUBLISHED_WEIGHT
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, noise MSE, alignment) as float32 scalars with their graphs: total = noise MSE + weight · alignment,
    alignment = mean over the batch of 1 − cos(flatten(text_embeds), flatten(emotion_tokens))."""
    squared, misalignment = editor_terms(noise_pred, noise, text_embeds, emotion_tokens)
    noise_mse = squared.sum() / noise[0].numel() / noise.shape[0]
    alignment = misalignment.mean()
    return noise_mse + weight * alignment, noise_mse, alignment
