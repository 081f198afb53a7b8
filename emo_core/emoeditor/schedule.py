"""The EmoEditor edit's schedule and sizes, host-independent.

The published edit ([EE ip2p.py], classifier-free guidance removed) draws T ~ U{700..980} per edit, replaces the
scheduler's train-step count by T, and DDIM picks n timesteps t_k = k·floor(T/n) + 1, k = n-1..0 (the init latent is
noised at t_(n-1); the sampler arithmetic over them is in sampling.py). Images are squashed to 224x224
(Resize((224, 224))); keeping the aspect is an extension.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TRAIN_STEPS = 1000
PUBLISHED_T_RANGE = (700, 980)  # torch.randint(int(0.70 * 1000), int(0.98 * 1000) + 1) in [EE ip2p.py]
PUBLISHED_STEPS = 30
PUBLISHED_RESOLUTION = 224
LATENT_MULTIPLE = 8


@dataclass(frozen=True)
class EditSettings:
    steps: int = PUBLISHED_STEPS
    t_min: int = PUBLISHED_T_RANGE[0]
    t_max: int = PUBLISHED_T_RANGE[1]

    def check(self) -> None:
        if not 1 <= self.t_min <= self.t_max < TRAIN_STEPS:
            raise ValueError(f"need 1 <= t_min <= t_max <= {TRAIN_STEPS - 1}, got t_min {self.t_min}, "
                             f"t_max {self.t_max}")
        if not 1 <= self.steps <= self.t_min:
            raise ValueError(f"steps must be between 1 and t_min ({self.t_min}) so that every step gets its own "
                             f"timestep; got {self.steps}")


@dataclass
class EditInfo:
    """What one edit drew and used (for the IEI trace)."""

    T: int
    timesteps: list[int]

    @property
    def strength(self) -> float:
        return self.timesteps[0] / TRAIN_STEPS


def draw_T(generator: torch.Generator, settings: EditSettings) -> int:
    return int(torch.randint(settings.t_min, settings.t_max + 1, (1,), generator=generator))


def edit_timesteps(T: int, steps: int) -> list[int]:
    """DDIM "leading" spacing with steps_offset 1 over a T-step schedule: t_k = k*floor(T/n) + 1, k = n-1..0."""
    ratio = T // steps
    return [k * ratio + 1 for k in range(steps - 1, -1, -1)]


def edit_size(height: int, width: int, resolution: int, keep_aspect: bool) -> tuple[int, int]:
    """(H, W) of the edit. Published: resolution x resolution, aspect ignored (Resize((224, 224))). keep_aspect
    (extension): the longer side becomes ``resolution``; both sides rounded to multiples of 8 for the VAE."""
    if not keep_aspect:
        return resolution, resolution
    scale = resolution / max(height, width)

    def snap(side: int) -> int:
        return max(LATENT_MULTIPLE, int(round(side * scale / LATENT_MULTIPLE)) * LATENT_MULTIPLE)

    return snap(height), snap(width)


MAX_RESOLUTION = 2048
MAX_EDIT_BATCH = 64  # source images per run: each is a full edit (IEI: up to max_attempts edits)


def check_resolution(resolution: int) -> int:
    """The edit size in pixels: whole, within [64, 2048] and a multiple of 8 (the VAE works on 8-pixel blocks)."""
    if resolution != int(resolution) or not 64 <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution: {resolution} must be a whole number from 64 to {MAX_RESOLUTION}")
    if int(resolution) % LATENT_MULTIPLE:
        raise ValueError(f"resolution: {resolution} is not a multiple of {LATENT_MULTIPLE} (the VAE works on "
                         f"{LATENT_MULTIPLE}-pixel blocks); use {int(resolution) // LATENT_MULTIPLE * LATENT_MULTIPLE}"
                         f" or {(int(resolution) // LATENT_MULTIPLE + 1) * LATENT_MULTIPLE}")
    return int(resolution)


def check_min_side(size: tuple[int, int], minimum: int, why: str, image_shape: tuple[int, int]) -> None:
    """Refuse, before any work, an edit size with a side under ``minimum`` pixels (e.g. a sliver with keep aspect)."""
    if min(size) < minimum:
        raise ValueError(f"source: a {image_shape[1]}x{image_shape[0]} image gives a {size[1]}x{size[0]} edit, "
                         f"but {why} needs at least {minimum} pixels on each side; use 'squash', a higher "
                         "resolution, or crop the image")
