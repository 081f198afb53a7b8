"""EmoEditor in ComfyUI: load the editor/encoder/predictor, predict emotions, build a direction and edit. The IEI
loop is in iei.py, the inputs and checks the nodes share in inputs.py, the edit on ComfyUI's sampler in sampling.py.

The faithful settings ([EE test.py]) are the defaults; extensions are labelled in the tooltips.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ...emo_core.emoeditor.continuous import direction_towards
from ...emo_core.emoeditor.emotions import EMOTIONS, emotion_direction
from ...emo_core.emoeditor.loaders import EDITOR_KIND, ENCODER_KIND, PREDICTOR_KIND
from ...emo_core.emoeditor.region import edit_masks
from ...emo_core.images import resize_images, rgb_images
from ...emo_core.plots.bars import chart_batch
from ..shared.editing import predict
from ..shared.models import EMOEDITOR, model_path
from ..shared.progress import EditProgress, show_text
from ..shared.sockets import CATEGORY, EMO_DIRECTION, EMO_DISTRIBUTION, EMO_ENCODER, EMO_PREDICTOR
from ..shared.validation import check_finite, check_inputs, file_error, first_error
from .inputs import (
    DEFAULT_TARGET,
    PIL_RESIZE,
    PREDICT_RESIZE,
    check_batch,
    check_edit,
    edit_inputs,
    edit_rules,
    edit_settings,
    mask_input,
    pick,
    source_at_edit_size,
    source_images,
    target_input,
)
from .loaders import load_editor, load_encoder, load_predictor, slot_files
from .sampling import Editor, encoder_width

NO_TARGET = "(none)"
PREDICT_TARGETS = (NO_TARGET, *EMOTIONS)
SLOT_NOTE = (" Lists the files of this kind in models/emoeditor (told by their keys, or by the subfolder editor/, "
             "encoder/ or predictor/) and any file whose kind cannot be told cheaply.")


class EmoEditorLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_EmoEditorLoader",
            display_name="Load EmoEditor",
            category=CATEGORY,
            description="Loads EmoEditor's published files from models/emoeditor: the InstructPix2Pix editor "
                        "(model_ip2p.pt -> MODEL + VAE, loaded by ComfyUI as SD 1.5 InstructPix2Pix), the "
                        "emotion-direction encoder (model_emoenc.pt) and the emotion predictor (emo_predictor.pt).",
            inputs=[
                io.Combo.Input("editor_name", options=slot_files(EDITOR_KIND),
                               tooltip="model_ip2p.pt (unet.* + auto_encoder.*)." + SLOT_NOTE),
                io.Combo.Input("encoder_name", options=slot_files(ENCODER_KIND),
                               tooltip="model_emoenc.pt." + SLOT_NOTE),
                io.Combo.Input("predictor_name", options=slot_files(PREDICTOR_KIND),
                               tooltip="emo_predictor.pt (ResNet-18 critic)." + SLOT_NOTE),
            ],
            outputs=[io.Model.Output(display_name="model"), io.Vae.Output(display_name="vae"),
                     EMO_ENCODER.Output(display_name="encoder"), EMO_PREDICTOR.Output(display_name="predictor")],
        )

    @classmethod
    def validate_inputs(cls, editor_name=None, encoder_name=None, predictor_name=None) -> bool | str:
        return first_error(*(file_error(key, EMOEDITOR, name) for key, name in (
            ("editor_name", editor_name), ("encoder_name", encoder_name), ("predictor_name", predictor_name))))

    @classmethod
    def execute(cls, editor_name, encoder_name, predictor_name) -> io.NodeOutput:
        model, vae = load_editor(model_path(EMOEDITOR, editor_name))
        encoder = load_encoder(model_path(EMOEDITOR, encoder_name))
        predictor = load_predictor(model_path(EMOEDITOR, predictor_name))
        return io.NodeOutput(model, vae, encoder, predictor)


class PredictEmotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_PredictEmotion",
            display_name="Predict Emotion (EmoEditor)",
            category=CATEGORY,
            description="EmoEditor's emotion predictor (ResNet-18 on a 224x224 squash, no normalisation): the "
                        "softmax over the eight classes, the most likely label and a bar chart (the target "
                        "class, when chosen, outlined and named in the chart's title).",
            inputs=[
                EMO_PREDICTOR.Input("predictor"),
                io.Image.Input("image"),
                io.Combo.Input("resize", options=list(PREDICT_RESIZE), default=PIL_RESIZE,
                               tooltip="pil: 8-bit Pillow bilinear resize, exactly test.py's pixels. torch: "
                                       "float resize on the device (within ~1/255). 224x224 images pass unchanged."),
                io.Combo.Input("target", options=list(PREDICT_TARGETS), default=NO_TARGET, optional=True,
                               tooltip="Only marks the chart: the target class row is outlined and named in the "
                                       "title. (none): no mark."),
            ],
            outputs=[EMO_DISTRIBUTION.Output(display_name="distribution"), io.String.Output(display_name="label"),
                     io.Image.Output(display_name="chart")],
        )

    @classmethod
    def validate_inputs(cls, resize=None, target=None) -> bool | str:
        return check_inputs(cls, resize=resize, target=target)

    @classmethod
    def execute(cls, predictor, image, resize, target=NO_TARGET) -> io.NodeOutput:
        prediction = predict(predictor, rgb_images(image, "image"), "pil" if resize == PIL_RESIZE else "torch")
        distribution = prediction.distribution.float().cpu()
        chart = chart_batch(distribution, target=None if target == NO_TARGET else target)
        return io.NodeOutput(distribution, ", ".join(prediction.label_names), chart)


class EmotionDirection(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_EmotionDirection",
            display_name="Emotion Direction (EmoEditor)",
            category=CATEGORY,
            description="d = onehot(target) - p(source): the 8-vector that drives EmoEditor's encoder. "
                        "Extension: with 'target_distribution' connected (e.g. V-A to Emotion Distribution), "
                        "d = target distribution - p(source) and 'target' is not used.",
            inputs=[EMO_DISTRIBUTION.Input("distribution", tooltip="From Predict Emotion on the source image."),
                    target_input(),
                    EMO_DISTRIBUTION.Input("target_distribution", optional=True,
                                           tooltip="Extension: a target distribution over the eight classes (from "
                                                   "V-A to Emotion Distribution) instead of the one-hot of "
                                                   "'target'. One, or one per source distribution.")],
            outputs=[EMO_DIRECTION.Output(display_name="direction")],
        )

    @classmethod
    def validate_inputs(cls, target=None) -> bool | str:
        return check_inputs(cls, target=target)

    @classmethod
    def execute(cls, distribution, target, target_distribution=None) -> io.NodeOutput:
        check_finite("distribution", distribution.float())
        if target_distribution is None:
            return io.NodeOutput(emotion_direction(target, distribution.float().cpu()))
        source = distribution.float().cpu().reshape(-1, 8)
        wanted = target_distribution.float().cpu().reshape(-1, 8)
        if wanted.shape[0] not in (1, source.shape[0]) and source.shape[0] != 1:
            raise ValueError(f"target_distribution holds {wanted.shape[0]} distributions but 'distribution' holds "
                             f"{source.shape[0]}: give one, or one per source distribution")
        return io.NodeOutput(direction_towards(wanted, source))


class EmotionEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_EmotionEdit",
            display_name="Dual-Branch Emotion Edit (EmoEditor)",
            category=CATEGORY,
            description="One EmoEditor edit: the emotion tokens are the only cross-attention context, the source "
                        "latent is concatenated to the UNet input (InstructPix2Pix), no CFG, DDIM-equivalent "
                        "partial denoising from the init image with T drawn per edit from [t_min, t_max]. "
                        "Extension: an SDXL InstructPix2Pix MODEL with an SDXL-width encoder (77x2048 + pooled).",
            inputs=[
                io.Model.Input("model", tooltip="An InstructPix2Pix MODEL (Load EmoEditor, or an SD 1.5 ip2p "
                                                "checkpoint)."),
                io.Vae.Input("vae"),
                EMO_ENCODER.Input("encoder"),
                io.Image.Input("source", tooltip="The image to edit; also the concat (structure) condition."),
                *edit_inputs(),
                io.Image.Input("init_image", optional=True,
                               tooltip="Where denoising starts (default: the source). IEI passes its last "
                                       "accepted edit here."),
                EMO_DIRECTION.Input("direction", optional=True, tooltip="From Emotion Direction. If unconnected, "
                                    "the direction is built from 'predictor' and 'target'."),
                EMO_PREDICTOR.Input("predictor", optional=True),
                target_input(optional=True, tip="Used only when 'direction' is not connected."),
                mask_input(),
            ],
            outputs=[io.Image.Output(display_name="image")],
        )

    # Names only the combos (the host checks neither); numbers keep the host's range checks, and the hook adds
    # NaN/inf, steps (resolution: multiples of 8) and the rules between steps, t_min and t_max (edit_rules).
    literal_rules = classmethod(lambda cls, values: edit_rules(values))

    @classmethod
    def validate_inputs(cls, resize=None, target=None) -> bool | str:
        return check_inputs(cls, resize=resize, target=target)

    @classmethod
    def execute(cls, model, vae, encoder, source, seed, steps, t_min, t_max, resolution, resize, init_image=None,
                direction=None, predictor=None, target=DEFAULT_TARGET, mask=None) -> io.NodeOutput:
        settings = edit_settings(steps, t_min, t_max)
        source = source_images(source)
        init_image = None if init_image is None else rgb_images(init_image, "init_image")
        count = source.shape[0]
        if direction is not None:
            check_finite("direction", direction.float())
        if direction is None:
            if predictor is None:
                raise ValueError("Emotion Edit needs a direction: connect 'direction' (Emotion Direction node) or "
                                 "'predictor' (the direction is then onehot(target) - p(source))")
            direction = emotion_direction(target, predict(predictor, source, "pil").distribution.float().cpu())
        check_batch("direction", direction, count)
        check_batch("init_image", init_image, count)
        generator = torch.Generator().manual_seed(seed)
        sources = source_at_edit_size(source, resolution, resize)
        masks = edit_masks(mask, count, tuple(sources.shape[1:3]))  # an all-zero mask gives the source back
        inits = None if init_image is None else resize_images(init_image, tuple(sources.shape[1:3]))
        width, pooled = encoder_width(encoder)
        progress = EditProgress(model, count, settings.steps)  # one bar over every step of every edit
        edits = []
        for i in range(count):
            editor = Editor(model, vae, encoder, sources[i:i + 1], settings, generator, seed,
                            mask=masks[i]).prepare(width, pooled)
            init = pick(inits, i) if inits is not None else editor.source
            if count > 1:
                show_text(f"edit {i + 1} of {count}")
            image, _ = editor.edit(init, direction.reshape(-1, 8)[i if direction.shape[0] > 1 else 0],
                                   progress.step_callback(i))
            edits.append(check_edit(image, f"edit of source image {i + 1}"))
        return io.NodeOutput(torch.cat(edits))
