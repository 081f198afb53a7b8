"""Emotion Region (EmoEditor): where the emotion predictor sees an emotion, as a MASK for regional edits
(emo_core.emoeditor.region), and a picture of it."""

from __future__ import annotations

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ...emo_core.emoeditor.emotions import EMOTIONS
from ...emo_core.emoeditor.region import region_and_logits, shape_mask
from ...emo_core.images import rgb_images
from ...emo_core.plots.region import region_pictures
from ..shared.progress import show_text
from ..shared.sockets import CATEGORY, EMO_PREDICTOR
from ..shared.validation import check_inputs, check_number

TOP = "top"
REGION_TARGETS = (TOP, *EMOTIONS)
MAX_PIXELS = 512


class EmotionRegion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_EmotionRegion",
            display_name="Emotion Region (EmoEditor)",
            category=CATEGORY,
            description="Where the emotion lives: the Grad-CAM of EmoEditor's emotion predictor (last ResNet block, "
                        "as ESMI's S_str uses it) on the published 224x224 input, resized to the image, as a MASK "
                        "for regional edits (Dual-Branch Emotion Edit / IEI Loop 'mask', or Set Latent Noise Mask). "
                        "Also a picture: the heat map over the image, the class and its probability, the mask.",
            inputs=[
                EMO_PREDICTOR.Input("predictor"),
                io.Image.Input("image"),
                io.Combo.Input("target", options=list(REGION_TARGETS), default=TOP,
                               tooltip="The class whose evidence is mapped; top = each image's most likely class "
                                       "(as ESMI does)."),
                io.Float.Input("threshold", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="Map values above it become 1, the rest 0 (ESMI uses 0.5); 0 = the soft map "
                                       "itself (values in [0, 1])."),
                io.Int.Input("grow", default=0, min=-MAX_PIXELS, max=MAX_PIXELS,
                             tooltip="Pixels to grow the region by (square dilation); negative shrinks it."),
                io.Int.Input("feather", default=0, min=0, max=MAX_PIXELS,
                             tooltip="Soft edge: a Gaussian blur of this radius in pixels (sigma = radius / 3); "
                                     "pixels farther than the radius from the region stay exactly 0."),
                io.Boolean.Input("invert", default=False,
                                 tooltip="Edit everything but the region (1 - mask), after threshold, grow and "
                                         "feather."),
            ],
            outputs=[io.Mask.Output(display_name="mask", tooltip="(B, H, W) in [0, 1] at the image's size: 1 = "
                                                                 "edit, 0 = keep."),
                     io.Image.Output(display_name="picture",
                                     tooltip="Per image: the heat map over the image with the class and its "
                                             "probability, and the mask.")],
        )

    @classmethod
    def validate_inputs(cls, target=None) -> bool | str:
        return check_inputs(cls, target=target)

    @classmethod
    def execute(cls, predictor, image, target, threshold, grow, feather, invert) -> io.NodeOutput:
        images = rgb_images(image, "image")
        threshold = check_number("threshold", threshold, 0, 1)
        grow = int(check_number("grow", grow, -MAX_PIXELS, MAX_PIXELS))
        feather = int(check_number("feather", feather, 0, MAX_PIXELS))
        if target not in REGION_TARGETS:
            raise ValueError(f"target: '{target}' is not one of {', '.join(REGION_TARGETS)}")
        mm.load_models_gpu([predictor])
        regions, logits, classes = region_and_logits(predictor.model, images, None if target == TOP else target)
        masks = shape_mask(regions, threshold, grow, feather, bool(invert))
        distribution = torch.softmax(logits, dim=1)
        show_text(", ".join(f"{EMOTIONS[int(c)]}: {float(m.mean()):.0%} of the image" for c, m in zip(
            classes, masks, strict=True)))
        picture = region_pictures(images, regions, masks, classes, distribution,
                                  "top class" if target == TOP else "target")
        return io.NodeOutput(masks, picture)
