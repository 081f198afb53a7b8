"""Emotion Closed Loop (V-A): render with EmotiCrafter, ask a valence-arousal critic where the image landed, keep the
best of K seeds or steer the EIT's input towards the target (emo_core.emoticrafter.closed_loop). Renders go through
ComfyUI's own sampler exactly as KSampler does, so round 0 is the image a stock EmotiCrafter graph makes."""

from __future__ import annotations

import json

import comfy.model_management as mm
import comfy.sample
import comfy.samplers
import torch
from comfy_api.latest import io

from ...emo_core.emoticrafter.closed_loop import (
    BEST_OF_K,
    MAX_K,
    MAX_ROUNDS_LIMIT,
    MODES,
    STEER,
    LoopSettings,
    run_closed_loop,
)
from ...emo_core.emoticrafter.va import VAPoints
from ...emo_core.plots.closed_loop import closed_loop_plot
from ..shared.progress import EditProgress, show_text
from ..shared.sockets import CATEGORY, EIT, VA_CRITIC
from ..shared.validation import check_finite, check_inputs, check_number
from .inject import EmotionInjection
from .va import EXTRAPOLATE_TIP, check_va_inputs, va_input, va_rules

LONG_PROMPT_MODE = "per_chunk"  # Emotion Injection's default; the same as the published path up to 77 tokens
SAMPLING_NOTE = ("candidate k uses seed + k; with a deterministic sampler (euler, ddim, dpmpp_2m, ...) it is the "
                 "image a stock KSampler makes with that seed, while ancestral/SDE samplers draw their per-step "
                 "noise for the whole batch from the first seed")


def render(model, vae, conditioning: tuple, latent: dict, seeds: list[int], sampler: dict, callback) -> torch.Tensor:
    """One batch through ComfyUI's sampler as nodes.common_ksampler runs it, item i with the noise KSampler draws
    for ``seeds[i]`` (with a deterministic sampler each item is a stock render of its seed, SAMPLING_NOTE), then
    VAEDecode. Returns (len(seeds), H, W, 3)."""
    positive, negative = conditioning
    image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    indices = latent.get("batch_index")
    noise = torch.cat([comfy.sample.prepare_noise(image, seed, indices) for seed in seeds])
    samples = comfy.sample.sample(model, noise, sampler["steps"], sampler["cfg"], sampler["sampler_name"],
                                  sampler["scheduler"], positive, negative, image.repeat_interleave(len(seeds), 0),
                                  denoise=sampler["denoise"], noise_mask=latent.get("noise_mask"), callback=callback,
                                  disable_pbar=True, seed=seeds[0])
    decoded = vae.decode(samples)
    return decoded.reshape(-1, *decoded.shape[-3:])


def critic_scorer(critic, prompt: str, want_clip: bool):
    """score(images) -> (predictions, CLIPScores or None) from the critic on the VA_CRITIC socket."""
    def score(images):
        mm.throw_exception_if_processing_interrupted()
        predictions = critic.predict(images)
        return predictions, critic.clip_score(images, [prompt] * images.shape[0]) if want_clip else None
    return score


NOTHING_RENDERED = ("denoise: 0 renders nothing: the sampler returns the latent untouched (a flat grey image from an "
                    "empty latent) and the critic would score that; use a denoise above 0")

class VAClosedLoop(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_VAClosedLoop",
            display_name="Emotion Closed Loop (V-A)",
            category=CATEGORY,
            description="EmotiCrafter with a valence-arousal critic in the loop. Round 0 is the published open-loop "
                        "image (Emotion Injection + KSampler with these settings). best_of_k: K seeds in one "
                        "batch, the image predicted closest to the target wins. steer: the same seed again with the "
                        "EIT's input V-A moved by gamma x the measured error, until the error is at most the "
                        "tolerance or after 'rounds' rounds; the closest round wins, so the result is never further "
                        "from the target than round 0 (by the critic). Optional CLIPScore floor against the neutral "
                        "prompt: only images reaching it may win (if none does, the highest CLIPScore wins). "
                        "Progress per round, Cancel between steps, trace as JSON and as a picture.",
            inputs=[
                io.Model.Input("model", tooltip="The SDXL model (e.g. sd_xl_base_1.0)."),
                io.Vae.Input("vae"),
                io.Conditioning.Input("positive", tooltip="The NEUTRAL prompt's conditioning (CLIPTextEncode); the "
                                                          "node injects the emotion itself, as Emotion Injection."),
                io.Conditioning.Input("negative", tooltip="Published: ConditioningZeroOut of the neutral prompt."),
                EIT.Input("eit"),
                VA_CRITIC.Input("critic", tooltip="A valence-arousal critic (Load V-A Critic)."),
                io.Latent.Input("latent_image", tooltip="One empty latent (EmptyLatentImage, batch 1): the size."),
                va_input("valence", 2.0, "Target valence: -3 very unpleasant ... +3 very pleasant."),
                va_input("arousal", 1.0, "Target arousal: -3 very calm ... +3 very excited."),
                io.Boolean.Input("extrapolate", default=False,
                                 tooltip=EXTRAPOLATE_TIP + " Also lets steering move the input beyond [-3, 3]."),
                io.Int.Input("seed", default=42, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="The seed of round 0 and of every steering round; best_of_k uses seed ... "
                                     "seed + K - 1."),
                io.Int.Input("steps", default=25, min=1, max=10000),
                io.Float.Input("cfg", default=7.5, min=0.0, max=100.0, step=0.1, round=0.01),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler"),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="ddim_uniform"),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01),
                io.Combo.Input("mode", options=list(MODES), default=STEER,
                               tooltip="steer: re-render one seed with corrected V-A; best_of_k: K seeds at once."),
                io.Int.Input("k", default=8, min=1, max=MAX_K, tooltip="best_of_k: how many seeds, one batch."),
                io.Float.Input("gamma", default=1.0, min=0.05, max=2.0, step=0.05,
                               tooltip="steer: step = gamma x (target - predicted), per axis."),
                io.Float.Input("tolerance", default=0.25, min=0.0, max=10.0, step=0.05,
                               tooltip="steer: stop once the predicted V-A is this close to the target "
                                       "(Euclidean distance on the V-A pad)."),
                io.Int.Input("rounds", default=4, min=0, max=MAX_ROUNDS_LIMIT,
                             tooltip="steer: at most this many corrected renders after round 0."),
                io.Float.Input("strength", default=1.0, min=-1.0, max=3.0, step=0.05,
                               tooltip="Emotion Injection strength; 1.0 = published."),
                io.Float.Input("clip_floor", default=0.0, min=0.0, max=100.0, step=0.5,
                               tooltip="0 = off. Only images whose CLIPScore against 'prompt' reaches this may be "
                                       "chosen; if none does, the one with the highest CLIPScore is returned and the "
                                       "trace says so."),
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="The neutral prompt, for the CLIPScore floor (needs a critic whose CLIP "
                                        "file has the text tower)."),
            ],
            outputs=[io.Image.Output(display_name="image", tooltip="The chosen image."),
                     io.Image.Output(display_name="rounds", tooltip="Every round (steer) or candidate (best_of_k)."),
                     io.String.Output(display_name="trace", tooltip="JSON: settings, every attempt's input V-A, "
                                                                    "seed, prediction, error, CLIPScore; the choice."),
                     io.Image.Output(display_name="trace_plot",
                                     tooltip="The attempts on the V-A pad and their errors; the chosen one ringed.")],
        )

    _va_rules = va_rules("valence", "arousal")

    @classmethod
    def literal_rules(cls, values: dict) -> dict[str, str]:
        """The V-A rules, and denoise 0 refused on its input (it would return the latent untouched)."""
        problems = cls._va_rules(values)
        if values.get("denoise") == 0:
            problems["denoise"] = NOTHING_RENDERED
        return problems

    # Names only the combos (the host checks none); numbers keep the host's range checks and the hook's.
    @classmethod
    def validate_inputs(cls, sampler_name=None, scheduler=None, mode=None) -> bool | str:
        return check_inputs(cls, sampler_name=sampler_name, scheduler=scheduler, mode=mode)

    @classmethod
    def execute(cls, model, vae, positive, negative, eit, critic, latent_image, valence, arousal, extrapolate, seed,
                steps, cfg, sampler_name, scheduler, denoise, mode, k, gamma, tolerance, rounds, strength,
                clip_floor, prompt) -> io.NodeOutput:
        check_va_inputs(extrapolate, valence=valence, arousal=arousal)
        floor = check_number("clip_floor", clip_floor, 0, 100) or None
        settings = LoopSettings((float(valence), float(arousal)), mode, int(check_number("k", k, 1, MAX_K)),
                                check_number("gamma", gamma, 0.05, 2), check_number("tolerance", tolerance, 0, 10),
                                int(check_number("rounds", rounds, 0, MAX_ROUNDS_LIMIT)), bool(extrapolate),
                                floor).check()
        check_critic(critic, floor, prompt)
        samples = latent_image["samples"]
        if samples.shape[0] != 1:
            raise ValueError(f"latent_image: holds {samples.shape[0]} latents; the loop renders one image per round "
                             "(best_of_k makes its own batch of K): use a latent of batch size 1")
        check_finite("latent_image", samples)
        sampler = {"steps": int(check_number("steps", steps, 1, 10000)), "cfg": check_number("cfg", cfg, 0, 100),
                   "sampler_name": sampler_name, "scheduler": scheduler,
                   "denoise": check_number("denoise", denoise, 0, 1)}
        if sampler["denoise"] == 0:
            raise ValueError(NOTHING_RENDERED)
        units = 1 if mode == BEST_OF_K else settings.rounds + 1
        progress = EditProgress(model, units, sampler["steps"])

        def render_round(points, seeds, index):
            mm.throw_exception_if_processing_interrupted()
            if mode == STEER:
                show_text(f"round {index} of at most {settings.rounds}: input V {points[0][0]:+.2f} "
                          f"A {points[0][1]:+.2f}")
            else:
                show_text(f"{len(seeds)} candidates, seeds {seeds[0]} to {seeds[-1]}")
            va = VAPoints.from_lists([points[0][0]], [points[0][1]], extrapolate=bool(extrapolate))
            emotional = EmotionInjection.execute(positive, eit, va, strength, LONG_PROMPT_MODE)[0]
            return render(model, vae, (emotional, negative), latent_image, seeds, sampler,
                          progress.step_callback(index))

        def on_attempt(attempt) -> None:
            what = "round" if mode == STEER else "candidate"
            clip = "" if attempt.clip_score is None else f", CLIPScore {attempt.clip_score:.1f}"
            show_text(f"{what} {attempt.index}: predicted V {attempt.v_pred:+.2f} A {attempt.a_pred:+.2f}, "
                      f"error {attempt.error:.3f}{clip}")

        result = run_closed_loop(render_round, critic_scorer(critic, prompt, floor is not None), settings, seed,
                                 on_attempt)
        progress.skip_to(units)  # steering may stop before its cap: the bar still ends full
        log = result.log() | {"seed": seed, "sampler": sampler, "strength": strength, "long_prompt": LONG_PROMPT_MODE,
                              "prompt": prompt, "note": SAMPLING_NOTE if mode == BEST_OF_K else ""}
        show_text(f"{result.status}: chosen {'round' if mode == STEER else 'candidate'} {result.chosen}, error "
                  f"{result.attempts[0].error:.3f} -> {result.attempts[result.chosen].error:.3f}")
        images = torch.cat([image.to(mm.intermediate_device()) for image in result.images])
        return io.NodeOutput(result.image, images, json.dumps(log), closed_loop_plot(log))


def check_critic(critic, floor: float | None, prompt: str) -> None:
    if not callable(getattr(critic, "predict", None)):
        raise ValueError(f"critic: {type(critic).__name__} is not a valence-arousal critic (no predict method); "
                         "connect Load V-A Critic")
    if floor is None:
        return
    if not str(prompt).strip():
        raise ValueError(f"prompt: empty, but clip_floor {floor:g} asks for a CLIPScore against the neutral prompt; "
                         "type the neutral prompt, or set clip_floor to 0")
    if not getattr(critic, "has_text", False) or not callable(getattr(critic, "clip_score", None)):
        raise ValueError(f"clip_floor: {floor:g} needs CLIPScores, but the critic's CLIP file has no text tower: "
                         "load a full CLIP ViT-B/32 (vision and text), or set clip_floor to 0")
