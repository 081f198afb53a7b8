"""IEI Loop (EmoEditor): Iterative Emotion Inference in one node, with per-step progress over every attempt, a line
of text per attempt, Cancel between steps, and the trace both as JSON and as a plot."""

from __future__ import annotations

import json

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ..emo_core.emoeditor.iei import check_settings, run_iei
from ..emo_core.emoeditor.ssim import WIN_SIZE, critic_ssim
from ..emo_core.images import iei_plots
from .common import CATEGORY, EMO_ENCODER, EMO_PREDICTOR, check_inputs, check_number
from .emoeditor_inputs import (
    INIT_NOTE,
    check_edit,
    edit_inputs,
    edit_settings,
    iei_rules,
    predict,
    source_at_edit_size,
    source_images,
    target_input,
)
from .emoeditor_progress import EditProgress, show_text
from .emoeditor_sampling import Editor, encoder_width


class IEILoop(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_IEILoop",
            display_name="IEI Loop (EmoEditor)",
            category=CATEGORY,
            description="Iterative Emotion Inference as in EmoEditor's test.py: edit, score with the predictor and "
                        "SSIM, keep accepted edits as the next init, stop when the target is confident or enough "
                        "edits were accepted, then apply the published final choice. Extensions: an attempt cap "
                        "(the official loop has none) and 'recompute_direction'. Progress: every step of every "
                        "attempt (max_attempts x steps), with the attempt on the node; Cancel stops it between "
                        "steps. The trace comes as JSON and as a plot.",
            inputs=[
                io.Model.Input("model"),
                io.Vae.Input("vae"),
                EMO_ENCODER.Input("encoder"),
                EMO_PREDICTOR.Input("predictor"),
                io.Image.Input("source"),
                target_input(),
                *edit_inputs(),
                io.Float.Input("ssim_low", default=0.5, min=-1.0, max=1.0, step=0.01,
                               tooltip="Accept an edit if ssim_low < SSIM < ssim_high (published 0.5-0.8) or if "
                                       "its predicted label is the target."),
                io.Float.Input("ssim_high", default=0.8, min=-1.0, max=1.0, step=0.01),
                io.Float.Input("confidence", default=0.6, min=0.0, max=1.0, step=0.01,
                               tooltip="Stop once an accepted edit gives the target this probability (published "
                                       "0.6)."),
                io.Int.Input("max_accepted", default=30, min=1, max=10000,
                             tooltip="num_loop: stop when the accepted list, source included, reaches this size "
                                     "(published 30)."),
                io.Int.Input("max_attempts", default=100, min=1, max=10000,
                             tooltip="Extension: cap on edits, first included. The official loop has no cap and "
                                     "never ends while every edit is rejected."),
                io.Boolean.Input("recompute_direction", default=False,
                                 tooltip="Extension: off = test.py (every later attempt reuses the first attempt's "
                                         "softmax); on = the paper's reading (softmax of the latest accepted "
                                         "image)."),
            ],
            outputs=[io.Image.Output(display_name="image"), io.Image.Output(display_name="attempts"),
                     io.String.Output(display_name="trace"),
                     io.Image.Output(display_name="trace_plot",
                                     tooltip="Per attempt: the target's probability and the SSIM to the source, the "
                                             "SSIM acceptance band shaded, the confidence threshold dashed; "
                                             "accepted attempts dots, rejected crosses, the chosen one ringed. One "
                                             "plot per source image.")],
        )

    # As Dual-Branch Emotion Edit, plus ssim_low <= ssim_high (iei_rules).
    literal_rules = classmethod(lambda cls, values: iei_rules(values))

    @classmethod
    def validate_inputs(cls, resize=None, target=None) -> bool | str:
        return check_inputs(cls, resize=resize, target=target)

    @classmethod
    def execute(cls, model, vae, encoder, predictor, source, target, seed, steps, t_min, t_max, resolution, resize,
                ssim_low, ssim_high, confidence, max_accepted, max_attempts, recompute_direction) -> io.NodeOutput:
        settings = edit_settings(steps, t_min, t_max)
        ssim_low, ssim_high = check_number("ssim_low", ssim_low, -1, 1), check_number("ssim_high", ssim_high, -1, 1)
        confidence = check_number("confidence", confidence, 0, 1)
        max_accepted = int(check_number("max_accepted", max_accepted, 1, 10000))
        max_attempts = int(check_number("max_attempts", max_attempts, 1, 10000))
        check_settings(max_attempts, max_accepted, confidence, (ssim_low, ssim_high))
        source = source_images(source)
        generator = torch.Generator().manual_seed(seed)  # seeded once, before the first edit (test.py)
        sources = source_at_edit_size(source, resolution, resize, WIN_SIZE, f"the critic's SSIM ({WIN_SIZE}-pixel "
                                                                            "window)")
        width, pooled = encoder_width(encoder)
        count = source.shape[0]
        progress = EditProgress(model, count * max_attempts, settings.steps)  # every step of every possible attempt
        chosen, attempts, runs = [], [], []
        for i in range(count):
            editor = Editor(model, vae, encoder, sources[i:i + 1], settings, generator, seed).prepare(width, pooled)
            where = f"image {i + 1} of {count}: " if count > 1 else ""
            result = run_one(editor, predictor, source[i:i + 1], target, progress, i * max_attempts, where,
                             ssim_band=(ssim_low, ssim_high), confidence=confidence, max_accepted=max_accepted,
                             max_attempts=max_attempts, recompute_direction=recompute_direction)
            progress.skip_to((i + 1) * max_attempts)  # the loop may end before its cap
            chosen.append(result.image)
            attempts.extend(result.attempt_images)
            runs.append(result.log())
        trace = {"settings": {"target": target, "seed": seed, "steps": steps, "t_min": t_min, "t_max": t_max,
                              "resolution": resolution, "resize": resize, "ssim_band": [ssim_low, ssim_high],
                              "confidence": confidence, "max_accepted": max_accepted, "max_attempts": max_attempts,
                              "recompute_direction": recompute_direction, "note": INIT_NOTE},
                 "runs": runs}
        plot = iei_plots(runs, (ssim_low, ssim_high), confidence, target)
        return io.NodeOutput(torch.cat(chosen), torch.cat(attempts), json.dumps(trace), plot)


def run_one(editor: Editor, predictor, original: torch.Tensor, target: str, progress: EditProgress, first_edit: int,
            where: str, **options):
    """IEI on one source (1, H, W, 3) with ComfyUI's interrupt and progress wired in; returns emo_core's IEIResult.
    Attempt k fills edit ``first_edit + k`` of the progress bar, step by step."""
    infos = {}
    cap = options["max_attempts"]

    def edit(init, direction, attempt):
        show_text(f"{where}attempt {attempt + 1} of at most {cap}")
        image, infos[attempt] = editor.edit(init, direction, progress.step_callback(first_edit + attempt))
        return check_edit(image, f"IEI attempt {attempt}")

    def on_attempt(entry: dict) -> None:
        info = infos[entry["attempt"]]
        entry.update(T=info.T, first_timestep=info.timesteps[0])
        verdict = "accepted" if entry["accepted"] else "rejected"
        show_text(f"{where}attempt {entry['attempt'] + 1} of at most {cap}: SSIM {entry['ssim']:.3f}, "
                  f"p({target}) {entry['p_target']:.3f}, {verdict}")

    def should_stop() -> bool:
        mm.throw_exception_if_processing_interrupted()  # Cancel: raises, ComfyUI reports the prompt interrupted
        return False

    return run_iei(
        editor.source, target, edit,
        predict=lambda image: predict(predictor, image, "torch"),  # edits are already at the edit size
        ssim=critic_ssim,
        source_prediction=predict(predictor, original, "pil"),  # test.py: PIL Resize((224, 224)) of the file
        should_stop=should_stop, on_attempt=on_attempt, **options)
