"""Score Edit (ESMI): EmoEditor's published measure of an edit (emo_core.emoeditor.esmi), as a JSON report and a
picture per pair."""

from __future__ import annotations

import json

import comfy.model_management as mm
from comfy_api.latest import io

from ...emo_core.emoeditor.esmi import esmi_report, score_edits
from ...emo_core.images import rgb_images
from ...emo_core.plots.esmi import esmi_pictures
from ..shared.progress import show_text
from ..shared.sockets import CATEGORY, EMO_PREDICTOR
from ..shared.validation import check_inputs
from .inputs import target_input


class ScoreEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_ScoreEdit",
            display_name="Score Edit (ESMI)",
            category=CATEGORY,
            description="EmoEditor's ESMI of each edit against its source, as the published metric_ESMI.py computes "
                        "it: ESMI = 0.5 S_str + 0.5 S_emo. S_emo: how much of the KL distance to the target the edit "
                        "closed (predictor softmax); S_str: the share of the pixel change (8-bit, 224 px) inside the "
                        "source's emotion region (Grad-CAM of the predictor, > 0.5). Scores on [0, 1]; the report "
                        "also gives x100 as the paper prints them.",
            inputs=[
                EMO_PREDICTOR.Input("predictor"),
                io.Image.Input("source", tooltip="The source image(s) the edits were made from."),
                io.Image.Input("edit", tooltip="One edit per source, or a batch of edits of one source. Images "
                                               "of another size than 224 are resized with Pillow's bicubic filter "
                                               "(as published) and the report says so."),
                target_input(tip="The target emotion of the edits (one of EmoEditor's eight classes)."),
            ],
            outputs=[io.String.Output(display_name="report",
                                      tooltip="JSON: per pair ESMI, S_str, S_emo (on [0, 1] and x100), the source "
                                              "and edit distributions; mean and std of each score."),
                     io.Image.Output(display_name="picture",
                                     tooltip="Per pair: source and edit with the emotion region outlined, the "
                                             "scores, and both distributions with the target marked.")],
        )

    @classmethod
    def validate_inputs(cls, target=None) -> bool | str:
        return check_inputs(cls, target=target)

    @classmethod
    def execute(cls, predictor, source, edit, target) -> io.NodeOutput:
        sources, edits = rgb_images(source, "source"), rgb_images(edit, "edit")
        mm.load_models_gpu([predictor])
        details = score_edits(predictor.model, sources, edits, target)
        report = esmi_report(details)
        mean = report["summary"]["x100"]["esmi"]
        show_text(f"ESMI {mean['mean']:.2f} ± {mean['std']:.2f} (x100) over {len(report['pairs'])} pair(s)")
        return io.NodeOutput(json.dumps(report), esmi_pictures(details))
