"""What the EmoEditor nodes share: the edit inputs and their rules, run-time checks of linked settings and images,
the predictor call, and the target input."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ...emo_core.emoeditor.emotions import EMOTIONS
from ...emo_core.emoeditor.schedule import (
    MAX_EDIT_BATCH,
    PUBLISHED_RESOLUTION,
    PUBLISHED_STEPS,
    PUBLISHED_T_RANGE,
    EditSettings,
    check_min_side,
    check_resolution,
    edit_size,
)
from ...emo_core.images import resize_images, rgb_images
from ..shared.validation import check_finite, check_number

PUBLISHED_SEED = 75863  # [EE test.py]
DEFAULT_TARGET = "awe"  # [EE test.py]
SQUASH, KEEP_ASPECT = "squash (published)", "keep aspect (extension)"
PIL_RESIZE, TORCH_RESIZE = "pil (published pixels)", "torch"
EDIT_RESIZE = (SQUASH, KEEP_ASPECT)
PREDICT_RESIZE = (PIL_RESIZE, TORCH_RESIZE)
INIT_NOTE = ("init latent = VAE posterior mode (ComfyUI); published: a posterior sample; one seeded generator "
             "draws T then the noise per edit")


def target_input(optional: bool = False, tip: str = "The target emotion (one of EmoEditor's eight classes)."
                 ) -> io.Combo.Input:
    return io.Combo.Input("target", options=list(EMOTIONS), default=DEFAULT_TARGET, optional=optional, tooltip=tip)


def edit_inputs() -> list:
    return [
        io.Int.Input("seed", default=PUBLISHED_SEED, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Seeds one generator drawn in order for each edit's T and noise (test.py: 75863)."),
        io.Int.Input("steps", default=PUBLISHED_STEPS, min=1, max=200,
                     tooltip="DDIM steps per edit (published: 30)."),
        io.Int.Input("t_min", default=PUBLISHED_T_RANGE[0], min=1, max=999,
                     tooltip="Each edit draws T uniformly from [t_min, t_max] (published: 700-980) and starts at "
                             "timestep (steps-1)*floor(T/steps)+1: the edit strength."),
        io.Int.Input("t_max", default=PUBLISHED_T_RANGE[1], min=1, max=999),
        io.Int.Input("resolution", default=PUBLISHED_RESOLUTION, min=64, max=2048, step=8,
                     tooltip="Edit size in pixels (published: 224)."),
        io.Combo.Input("resize", options=list(EDIT_RESIZE), default=SQUASH,
                       tooltip="squash: resolution x resolution, aspect ignored (published Resize((224, 224))). "
                               "keep aspect (extension): the longer side becomes 'resolution'."),
    ]


def mask_input() -> io.Mask.Input:
    """The regional-edit mask (optional, last input of the edit and IEI nodes)."""
    return io.Mask.Input("mask", optional=True,
                         tooltip="Regional edit (extension): 1 = edit, 0 = keep the source (e.g. from Emotion Region "
                                 "(EmoEditor) or a painted mask); any size, resized to the edit size; one mask for "
                                 "all images or one per image. Outside the mask the denoising keeps the source "
                                 "(ComfyUI's noise-mask sampling) and the result is composited over the source with "
                                 "the mask's feather: unmasked pixels are exactly the source's at the edit size.")


def edit_rules(values: dict) -> dict[str, str]:
    """Queue-time rules between literal edit settings (nodes/shared/prompt_hook.py reports each on its input)."""
    problems = {}
    t_min, t_max, steps = values.get("t_min"), values.get("t_max"), values.get("steps")
    if t_min is not None and t_max is not None and t_min > t_max:
        problems["t_min"] = f"t_min: {t_min} is above t_max ({t_max}); need t_min <= t_max"
    if steps is not None and t_min is not None and steps > t_min:
        problems["steps"] = (f"steps: {steps} is more than t_min ({t_min}); every step needs its own timestep, so "
                             "steps must be at most t_min")
    return problems


def edit_settings(steps, t_min, t_max) -> EditSettings:
    """Run-time check of (possibly linked) edit settings."""
    settings = EditSettings(int(check_number("steps", steps, 1, 200)), int(check_number("t_min", t_min, 1, 999)),
                            int(check_number("t_max", t_max, 1, 999)))
    settings.check()
    return settings


def source_images(images: torch.Tensor, name: str = "source") -> torch.Tensor:
    """RGB (RGBA and grey converted), finite, and a batch of reasonable size."""
    images = rgb_images(images, name)
    if images.shape[0] > MAX_EDIT_BATCH:
        raise ValueError(f"{name}: {images.shape[0]} images in one batch is more than {MAX_EDIT_BATCH}; every image "
                         "is a full edit, so split the batch into several runs")
    return images


def source_at_edit_size(images: torch.Tensor, resolution: int, resize: str, min_side: int = 1,
                        why: str = "the edit") -> torch.Tensor:
    resolution = check_resolution(check_number("resolution", resolution))
    size = edit_size(images.shape[1], images.shape[2], resolution, keep_aspect=resize == KEEP_ASPECT)
    check_min_side(size, min_side, why, tuple(images.shape[1:3]))
    return resize_images(images, size)


def check_edit(image: torch.Tensor, attempt: str) -> torch.Tensor:
    check_finite(f"the {attempt} (the editor's output; damaged editor, VAE or encoder weights?)", image)
    return image


def pick(batch: torch.Tensor | None, index: int) -> torch.Tensor | None:
    """Item ``index`` of a batch, or its only item (broadcast), keeping the batch dimension."""
    if batch is None:
        return None
    return batch[index if batch.shape[0] > 1 else 0].unsqueeze(0)


def check_batch(name: str, batch: torch.Tensor | None, count: int) -> None:
    if batch is not None and batch.shape[0] not in (1, count):
        raise ValueError(f"{name} holds {batch.shape[0]} items but the source batch has {count}: give one, or one "
                         "per source image")


def iei_rules(values: dict) -> dict[str, str]:
    problems = edit_rules(values)
    low, high = values.get("ssim_low"), values.get("ssim_high")
    if low is not None and high is not None and low > high:
        problems["ssim_low"] = f"ssim_low: {low} is above ssim_high ({high}); need ssim_low <= ssim_high"
    return problems
