"""IEI Loop (EmoEditor): Iterative Emotion Inference in one node, with per-step progress over every attempt, a line
of text per attempt, Cancel between steps, and the trace both as JSON and as a plot. Extensions (optional inputs,
last): the V-A rule (a target V-A point instead of a class), per-attempt random draws and batched attempts."""

from __future__ import annotations

import json

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ...emo_core.emoeditor.attempt_rng import PER_ATTEMPT, SEED_ONCE, AttemptDraws
from ...emo_core.emoeditor.continuous import nearest_class, va_to_emotions
from ...emo_core.emoeditor.emotions import EMOTIONS
from ...emo_core.emoeditor.esmi import esmi
from ...emo_core.emoeditor.iei import VAGoal, check_settings, run_iei
from ...emo_core.emoeditor.region import edit_masks, is_empty
from ...emo_core.emoeditor.ssim import WIN_SIZE, critic_ssim
from ...emo_core.plots.iei import iei_plots
from ...emo_core.plots.plane import va_trace_plots
from ..shared.editing import predict
from ..shared.progress import EditProgress, show_text
from ..shared.sockets import CATEGORY, EMO_ENCODER, EMO_PREDICTOR
from ..shared.validation import check_inputs, check_number
from .inputs import (
    INIT_NOTE,
    check_edit,
    edit_inputs,
    edit_settings,
    iei_rules,
    mask_input,
    source_at_edit_size,
    source_images,
    target_input,
)
from .sampling import Editor, edit_attempts, encoder_width

CONFIDENCE_RULE, VA_RULE = "confidence (published)", "valence-arousal"
MAX_BATCH = 64


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
                        "(the official loop has none), 'recompute_direction', and (optional, last) a V-A target "
                        "rule, per-attempt random draws and batched attempts. Progress: every step of every "
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
                *va_inputs(),
                mask_input(),
            ],
            outputs=[io.Image.Output(display_name="image"), io.Image.Output(display_name="attempts"),
                     io.String.Output(display_name="trace"),
                     io.Image.Output(display_name="trace_plot",
                                     tooltip="Per attempt: the target's probability and the SSIM to the source, the "
                                             "SSIM acceptance band shaded, the confidence threshold dashed; "
                                             "accepted attempts dots, rejected crosses, the chosen one ringed. One "
                                             "plot per source image. Under the V-A rule: the V-A plane with the "
                                             "target, its tolerance circle and each attempt's expected V-A.")],
        )

    # As Dual-Branch Emotion Edit, plus ssim_low <= ssim_high (iei_rules).
    literal_rules = classmethod(lambda cls, values: iei_rules(values))

    @classmethod
    def validate_inputs(cls, resize=None, target=None, rule=None) -> bool | str:
        return check_inputs(cls, resize=resize, target=target, rule=rule)

    @classmethod
    def execute(cls, model, vae, encoder, predictor, source, target, seed, steps, t_min, t_max, resolution, resize,
                ssim_low, ssim_high, confidence, max_accepted, max_attempts, recompute_direction,
                rule=CONFIDENCE_RULE, valence=0.0, arousal=0.0, sigma=0.5, va_tolerance=0.3,
                rng=False, batch=1, score_esmi=False, mask=None) -> io.NodeOutput:
        settings = edit_settings(steps, t_min, t_max)
        ssim_low, ssim_high = check_number("ssim_low", ssim_low, -1, 1), check_number("ssim_high", ssim_high, -1, 1)
        confidence = check_number("confidence", confidence, 0, 1)
        max_accepted = int(check_number("max_accepted", max_accepted, 1, 10000))
        max_attempts = int(check_number("max_attempts", max_attempts, 1, 10000))
        check_settings(max_attempts, max_accepted, confidence, (ssim_low, ssim_high))
        batch = int(check_number("batch", batch, 1, MAX_BATCH))
        rng = PER_ATTEMPT if rng else SEED_ONCE
        va = va_options(rule, valence, arousal, sigma, va_tolerance)
        if va:
            target = EMOTIONS[nearest_class(valence, arousal)]  # reported as p_target in the trace and the plot
        source = source_images(source)
        generator = torch.Generator().manual_seed(seed)  # seeded once, before the first edit ([EE test.py])
        draws_state = None  # batched / per-attempt draws: seed_once continues from image to image
        sources = source_at_edit_size(source, resolution, resize, WIN_SIZE, f"the critic's SSIM ({WIN_SIZE}-pixel "
                                                                            "window)")
        count = source.shape[0]
        masks = edit_masks(mask, count, tuple(sources.shape[1:3]))
        for i, m in enumerate(masks):
            if is_empty(m):
                raise ValueError(f"mask: the mask{f' of image {i + 1}' if len(masks) > 1 else ''} is 0 everywhere, "
                                 "so no attempt could change anything; paint the region to edit, or lower the "
                                 "Emotion Region threshold")
        width, pooled = encoder_width(encoder)
        progress = EditProgress(model, count * max_attempts, settings.steps)  # every step of every possible attempt
        chosen, attempts, runs = [], [], []
        for i in range(count):
            editor = Editor(model, vae, encoder, sources[i:i + 1], settings, generator, seed,
                            mask=masks[i]).prepare(width, pooled)
            where = f"image {i + 1} of {count}: " if count > 1 else ""
            draws = None
            if rng == PER_ATTEMPT or batch > 1:
                draws = AttemptDraws(seed, rng, settings)
                if draws_state is not None:
                    draws.states = [draws_state]
            result = run_one(editor, predictor, source[i:i + 1], target, progress, i * max_attempts, where, draws,
                             ssim_band=(ssim_low, ssim_high), confidence=confidence, max_accepted=max_accepted,
                             max_attempts=max_attempts, recompute_direction=recompute_direction, batch_size=batch,
                             **va)
            if draws is not None:
                draws_state = draws.states[min(result.attempts, len(draws.states) - 1)]
            progress.skip_to((i + 1) * max_attempts)  # the loop may end before its cap
            chosen.append(result.image)
            attempts.extend(result.attempt_images)
            runs.append(result.log() | ({"discarded_edits": result.discarded_edits} if batch > 1 else {})
                        | ({"mask_share": float(masks[i].mean())} if masks[i] is not None else {}))
            if score_esmi:  # after the run, from its images: never part of a decision
                add_esmi(runs[-1], predictor, source[i:i + 1], result.attempt_images, target)
        trace = {"settings": {"target": target, "seed": seed, "steps": steps, "t_min": t_min, "t_max": t_max,
                              "resolution": resolution, "resize": resize, "ssim_band": [ssim_low, ssim_high],
                              "confidence": confidence, "max_accepted": max_accepted, "max_attempts": max_attempts,
                              "recompute_direction": recompute_direction, "note": INIT_NOTE,
                              "rule": rule, "rng": rng, "batch": batch,
                              **({"score_esmi": True} if score_esmi else {}),
                              **({"regional": True} if mask is not None else {}),
                              **({"valence": valence, "arousal": arousal, "sigma": sigma,
                                  "va_tolerance": va_tolerance} if va else {})},
                 "runs": runs}
        if va:  # where the attempts' expected V-A went, around the target and its tolerance
            plot = va_trace_plots(runs, valence, arousal, va_tolerance, va["target_distribution"])
        else:
            plot = iei_plots(runs, (ssim_low, ssim_high), confidence, target)
        return io.NodeOutput(torch.cat(chosen), torch.cat(attempts), json.dumps(trace), plot)


def va_inputs() -> list:
    """The optional inputs of the extensions, added last (existing workflows keep their published behaviour)."""
    return [
        io.Combo.Input("rule", options=[CONFIDENCE_RULE, VA_RULE], default=CONFIDENCE_RULE, optional=True,
                       tooltip="confidence (published): accept on the SSIM band or label = target, stop at "
                               "'confidence'. valence-arousal (extension): the target is the V-A point below (its "
                               "emotion distribution drives the direction, 'target' is ignored); accept on the SSIM "
                               "band or when the expected V-A of the critic's distribution is within 'va_tolerance' "
                               "of it, stop there; result = the accepted edit closest in V-A."),
        io.Float.Input("valence", default=0.0, min=-3.0, max=3.0, step=0.05, optional=True,
                       tooltip="V-A rule: target valence on EmotiCrafter's [-3, 3] scale."),
        io.Float.Input("arousal", default=0.0, min=-3.0, max=3.0, step=0.05, optional=True,
                       tooltip="V-A rule: target arousal on [-3, 3]."),
        io.Float.Input("sigma", default=0.5, min=0.0, max=10.0, step=0.05, optional=True,
                       tooltip="V-A rule: width of the kernel turning the V-A point into the target distribution "
                               "(see V-A to Emotion Distribution); 0 = one-hot of the nearest class."),
        io.Float.Input("va_tolerance", default=0.3, min=0.0, max=10.0, step=0.01, optional=True,
                       tooltip="V-A rule: stop once an edit's expected V-A is within this distance of the target."),
        io.Boolean.Input("rng", default=False, label_off="seed once (published)", label_on="per attempt",
                         optional=True,
                         tooltip="seed once (published): one generator drawn in order for every attempt. per "
                                 "attempt (extension): attempt k's T and noise come from its own generator seeded "
                                 "by (seed, k), so they do not depend on earlier attempts."),
        io.Int.Input("batch", default=1, min=1, max=MAX_BATCH, optional=True,
                     tooltip="Attempts edited together while the init image stays the same (first accepted one "
                             "wins, the rest are dropped). Same decisions, trace and result as 1; faster where the "
                             "device has room for the batch (GPU), not on a CPU."),
        io.Boolean.Input("score_esmi", default=False, optional=True,
                         tooltip="Add each attempt's ESMI, S_str and S_emo against the source (EmoEditor's published "
                                 "metric, see Score Edit (ESMI)) to the trace and the trace plot. Scored after the "
                                 "loop: decisions and images are the same as without it."),
    ]


def add_esmi(run: dict, predictor, source: torch.Tensor, attempts: list, target: str) -> None:
    """Every trace entry of ``run`` gains "esmi", "s_str", "s_emo" of its attempt against ``source``."""
    if not attempts:
        return
    mm.load_models_gpu([predictor])
    scores = esmi(predictor.model, source, torch.cat(attempts).float().cpu(), target)
    for entry, (total, structure, emotion) in zip(run["trace"], scores.tolist(), strict=True):
        entry.update(esmi=total, s_str=structure, s_emo=emotion)


def va_options(rule, valence, arousal, sigma, tolerance) -> dict:
    """run_iei options for the V-A rule (nothing for the published rule)."""
    if rule not in (CONFIDENCE_RULE, VA_RULE):
        raise ValueError(f"rule: '{rule}' is not one of {CONFIDENCE_RULE}, {VA_RULE}")
    if rule == CONFIDENCE_RULE:
        return {}
    valence, arousal = check_number("valence", valence, -3, 3), check_number("arousal", arousal, -3, 3)
    sigma, tolerance = check_number("sigma", sigma, 0, 10), check_number("va_tolerance", tolerance, 0, 10)
    return {"target_distribution": va_to_emotions(valence, arousal, sigma),
            "va_goal": VAGoal(valence, arousal, tolerance)}


def run_one(editor: Editor, predictor, original: torch.Tensor, target: str, progress: EditProgress, first_edit: int,
            where: str, draws: AttemptDraws | None = None, **options):
    """IEI on one source (1, H, W, 3) with ComfyUI's interrupt and progress wired in; returns emo_core's IEIResult.
    Attempt k fills edit ``first_edit + k`` of the progress bar, step by step. With ``draws`` every edit runs
    through the batched path (sampling.edit_attempts), one attempt or several at a time."""
    infos = {}
    cap = options["max_attempts"]

    def edit_batch(init, direction, attempts):
        first, last = attempts[0] + 1, attempts[-1] + 1
        show_text(f"{where}attempt{f's {first}-{last}' if last > first else f' {first}'} of at most {cap}")
        done = edit_attempts(editor, draws, init, direction, attempts,
                             progress.batch_callback(first_edit + attempts[0], len(attempts)))
        for k, (_, info) in zip(attempts, done, strict=True):
            infos[k] = info
        return [check_edit(image, f"IEI attempt {k}") for k, (image, _) in zip(attempts, done, strict=True)]

    def edit(init, direction, attempt):
        if draws is not None:
            return edit_batch(init, direction, [attempt])[0]
        show_text(f"{where}attempt {attempt + 1} of at most {cap}")
        image, infos[attempt] = editor.edit(init, direction, progress.step_callback(first_edit + attempt))
        return check_edit(image, f"IEI attempt {attempt}")

    def on_attempt(entry: dict) -> None:
        info = infos[entry["attempt"]]
        entry.update(T=info.T, first_timestep=info.timesteps[0])
        verdict = "accepted" if entry["accepted"] else "rejected"
        score = (f"V-A distance {entry['va_distance']:.3f}" if "va_distance" in entry
                 else f"p({target}) {entry['p_target']:.3f}")
        show_text(f"{where}attempt {entry['attempt'] + 1} of at most {cap}: SSIM {entry['ssim']:.3f}, {score}, "
                  f"{verdict}")

    def should_stop() -> bool:
        mm.throw_exception_if_processing_interrupted()  # Cancel: raises, ComfyUI reports the prompt interrupted
        return False

    return run_iei(
        editor.source, target, edit,
        predict=lambda image: predict(predictor, image, "torch"),  # edits are already at the edit size
        ssim=critic_ssim,
        source_prediction=predict(predictor, original, "pil"),  # [EE test.py]: PIL Resize((224, 224)) of the file
        should_stop=should_stop, on_attempt=on_attempt, edit_batch=edit_batch if draws is not None else None,
        **options)
