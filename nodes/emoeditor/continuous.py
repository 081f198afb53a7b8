"""V-A to Emotion Distribution: EmotiCrafter's valence-arousal point as a distribution over EmoEditor's eight
classes (emo_core/emoeditor/continuous.py), for Emotion Direction's target_distribution."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ...emo_core.emoeditor.continuous import CITATION, va_to_emotions
from ...emo_core.emoeditor.emotions import EMOTIONS
from ...emo_core.emoticrafter.va import VA_MAX, VA_MIN
from ...emo_core.plots.plane import va_emotions_images
from ..shared.sockets import CATEGORY, EMO_DISTRIBUTION, VA
from ..shared.validation import check_number


class VAToEmotions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_VAToEmotions",
            display_name="V-A to Emotion Distribution",
            category=CATEGORY,
            description="p(c) ∝ exp(-‖(V, A) - μ_c‖² / 2σ²) over EmoEditor's eight classes, each class centred at "
                        f"the rating of its word in {CITATION}. σ = 0: the one-hot of the nearest class (the "
                        "published EmoEditor target). Connect the distribution to Emotion Direction's "
                        "'target_distribution'.",
            inputs=[
                io.Float.Input("valence", default=0.0, min=VA_MIN, max=VA_MAX, step=0.05,
                               tooltip="-3 very unpleasant, 0 neutral, +3 very pleasant (EmotiCrafter's scale)."),
                io.Float.Input("arousal", default=0.0, min=VA_MIN, max=VA_MAX, step=0.05,
                               tooltip="-3 very calm, 0 neutral, +3 very excited."),
                io.Float.Input("sigma", default=0.5, min=0.0, max=10.0, step=0.05,
                               tooltip="Kernel width in V-A units: small = mostly the nearest class (0 = only it), "
                                       "large = spread over all eight."),
                VA.Input("va", optional=True,
                         tooltip="Points from Valence-Arousal (its pad), Emotion Grid or Emotion Path instead of the "
                                 "two numbers: one distribution per point."),
            ],
            outputs=[EMO_DISTRIBUTION.Output(display_name="distribution"), io.Image.Output(display_name="picture")],
        )

    @classmethod
    def execute(cls, valence, arousal, sigma, va=None) -> io.NodeOutput:
        sigma = check_number("sigma", sigma, 0, 10)
        if va is None:
            valence, arousal = [check_number("valence", valence, VA_MIN, VA_MAX)], \
                [check_number("arousal", arousal, VA_MIN, VA_MAX)]
        else:
            valence, arousal = list(va.valence), list(va.arousal)  # VAPoints were checked where they were made
        distributions = va_to_emotions(torch.tensor(valence), torch.tensor(arousal), sigma).reshape(-1, len(EMOTIONS))
        return io.NodeOutput(distributions, va_emotions_images(valence, arousal, sigma, distributions))
