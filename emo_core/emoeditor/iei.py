"""Iterative Emotion Inference (IEI): EmoEditor's edit-score-retry loop, as a pure algorithm.

The editor, the critic and SSIM are callables, so this module knows nothing about diffusion or ComfyUI:

* ``edit(init_image, direction, attempt_index) -> image``: one edit of ``init_image`` driven by the (8,) float32
  emotion direction (the caller conditions on the ORIGINAL source itself, as the official code always does);
* ``predict(image)``: the critic's softmax over the 8 classes, as an (8,) / (1, 8) tensor, array or list, or an
  object with ``distribution`` and ``logits`` (e.g. :class:`~emo_core.emoeditor.predictor.EmotionPrediction`), in
  which case the label is the argmax of the logits exactly as in [EE test.py];
* ``ssim(source, image) -> float``: defaults to :func:`~emo_core.emoeditor.ssim.critic_ssim`.

Faithful mode (the default) reproduces [EE test.py] decisions exactly:

1. d0 = onehot(t) - p_source; attempt 0 edits the source; its softmax is q_first.
2. An attempt is accepted iff ``ssim_low < ssim < ssim_high`` or its label is the target. On acceptance, in this
   order: if label and target share a valence and q[label] > best_same, it becomes best_same (same_list grows);
   if q[t] > best_tgt, it becomes best_tgt (tgt_list grows); the edit joins the accepted list.
3. Later attempts start from the last accepted image (the source if none) with d = onehot(t) - q_first.
4. Loop while best_tgt < confidence and len(accepted, source included) < max_accepted.
5. Final choice, by the LAST attempt's label: if it is not the target, fall back to tgt_list[-1] if
   best_tgt > confidence, else same_list[-1] if best_same != 0, else tgt_list[-1] if best_tgt != 0; otherwise (or if
   it is the target) the last accepted image, the source when nothing was accepted.

Documented deviations, all optional or only reachable where the official loop never ends:

* ``max_attempts`` (first attempt included) caps the attempts; the official loop has no cap and never ends when
  edits keep being rejected. On hitting it the step-5 rules apply; with nothing accepted the source is returned
  with status ``"exhausted"``. ``None`` removes the cap (official behaviour; may not terminate).
* ``recompute_direction=True``: d = onehot(t) - softmax of the latest accepted image (the source before any
  acceptance), the paper's reading; the code reuses q_first.
* ``should_stop()`` is asked before every attempt (status ``"cancelled"``, step-5 rules on what exists);
  ``on_attempt(entry)`` receives each attempt's trace entry for progress reporting.

Extensions for continuous emotion (off by default, so the published decisions are untouched):

* ``target_distribution``: the direction is target_distribution - basis instead of onehot(t) - basis (e.g. a V-A
  point's distribution, :func:`~emo_core.emoeditor.continuous.va_to_emotions`; a one-hot gives the published d).
* ``va_goal`` (:class:`VAGoal`): the V-A acceptance rule. An attempt is accepted iff ``ssim_low < ssim < ssim_high``
  or the expected V-A of the critic's distribution lies within ``tolerance`` of the target V-A (Euclidean, on
  [-3, 3]); the loop stops at the first attempt within the tolerance (status ``"va_reached"``) or when
  ``max_accepted`` is reached, and returns the accepted edit closest to the target V-A (the earliest on a tie; the
  source if nothing was accepted). The confidence rule and its final choice are not used then.

Batching (``batch_size`` K > 1, with ``edit_batch(init, direction, attempts) -> images``): the next K attempts
start from the same init image with the same direction until one is accepted, so they are edited together; they
are then scored one by one in order, exactly as if run alone, and the first acceptance discards the rest (their
init is no longer the latest accepted image). The decisions, trace and result equal those of K = 1 whenever
``edit_batch`` gives each attempt the image ``edit`` would (e.g. random draws that are a function of the attempt
index). Attempt 0 runs alone when later directions depend on its softmax (``recompute_direction`` off).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..checks import finite_number
from .continuous import direction_towards, expected_va
from .emotions import EMOTIONS, NUM_EMOTIONS, class_index, emotion_direction, same_valence
from .ssim import critic_ssim

# Status values (why the loop ended).
CONFIDENT = "confident"          # best target probability reached the confidence threshold
MAX_ACCEPTED = "max_accepted"    # the accepted list (source included) reached max_accepted
MAX_ATTEMPTS = "max_attempts"    # attempt cap hit after at least one acceptance
EXHAUSTED = "exhausted"          # attempt cap hit and nothing was ever accepted: the source is returned
CANCELLED = "cancelled"          # should_stop() said so
VA_REACHED = "va_reached"        # V-A rule: an edit's expected V-A came within the tolerance of the target

# Final-choice branches (the official step-6 rules).
CHOICE_LAST_IS_TARGET = "last_attempt_label_is_target"
CHOICE_BEST_TARGET = "fallback_best_target"
CHOICE_BEST_SAME_VALENCE = "fallback_best_same_valence"
CHOICE_NO_FALLBACK = "no_fallback_available_last_accepted_or_source"
CHOICE_CLOSEST_VA = "closest_expected_va"  # V-A rule: the accepted edit whose expected V-A is nearest the target

SOURCE = "source"  # how the trace names the input image


@dataclass
class IEIResult:
    image: Any                        # the chosen image (the source when nothing is chosen)
    chosen_attempt: int | None        # attempt index of ``image``; None = the source
    status: str                       # why the loop ended (CONFIDENT, MAX_ACCEPTED, ...)
    choice: str                       # which final-choice rule picked ``image`` (CHOICE_...)
    target: int
    accepted_images: list = field(default_factory=list)        # accepted edits in order, source excluded
    accepted_attempts: list[int] = field(default_factory=list)
    attempt_images: list = field(default_factory=list)         # every edit in attempt order (if kept)
    best_target_attempts: list[int] = field(default_factory=list)  # tgt_list, append order
    best_same_attempts: list[int] = field(default_factory=list)    # same_list, append order
    best_target_probability: float = 0.0
    best_same_probability: float = 0.0
    source_distribution: list[float] = field(default_factory=list)
    trace: list[dict] = field(default_factory=list)            # one JSON-ready dict per attempt
    discarded_edits: int = 0          # batching: edits computed ahead and dropped after an acceptance (not traced)

    @property
    def attempts(self) -> int:
        return len(self.trace)

    def summary(self) -> dict:
        """JSON-serialisable outcome (everything except the images and the per-attempt trace)."""
        return {
            "status": self.status, "choice": self.choice,
            "chosen_attempt": SOURCE if self.chosen_attempt is None else self.chosen_attempt,
            "target": self.target, "target_name": EMOTIONS[self.target], "attempts": self.attempts,
            "accepted_attempts": list(self.accepted_attempts),
            "best_target_attempts": list(self.best_target_attempts),
            "best_same_attempts": list(self.best_same_attempts),
            "best_target_probability": self.best_target_probability,
            "best_same_probability": self.best_same_probability,
            "source_distribution": list(self.source_distribution),
        }

    def log(self) -> dict:
        """Summary plus the per-attempt trace, ready for ``json.dumps``."""
        return {**self.summary(), "trace": [dict(entry) for entry in self.trace]}


@dataclass(frozen=True)
class VAGoal:
    """The V-A acceptance rule's target point (EmotiCrafter's [-3, 3] scale) and tolerance (distance in V-A)."""

    valence: float
    arousal: float
    tolerance: float

    def check(self) -> None:
        values = (self.valence, self.arousal, self.tolerance)
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values) or self.tolerance < 0:
            raise ValueError(f"V-A goal: valence, arousal and tolerance must be finite numbers and the tolerance "
                             f">= 0, got {values}")


def read_prediction(output: Any) -> tuple[torch.Tensor, int]:
    """A ``predict`` result -> ((8,) float32 CPU distribution, label). Logits, when given, decide the label."""
    logits = getattr(output, "logits", None)
    dist = getattr(output, "distribution", output)
    dist = torch.as_tensor(dist).detach().to("cpu", torch.float32).reshape(-1)
    if dist.shape != (NUM_EMOTIONS,):
        raise ValueError(f"predict must return one 8-class distribution, got shape {tuple(dist.shape)}")
    if not torch.isfinite(dist).all():
        raise ValueError("the emotion predictor returned NaN or infinite probabilities (NaN pixels in the image, "
                         "or damaged predictor weights)")
    if logits is not None:
        scores = torch.as_tensor(logits).detach().to("cpu").reshape(-1)
        if scores.shape != (NUM_EMOTIONS,):
            raise ValueError(f"predict returned logits of shape {tuple(scores.shape)}, expected 8 values")
    else:
        scores = dist
    return dist, int(torch.argmax(scores))  # torch.argmax: lowest index on ties, as the official code


def check_settings(max_attempts: int | None, max_accepted: int, confidence: float,
                   ssim_band: tuple[float, float]) -> None:
    """Refuse settings the loop cannot honour, naming the setting: NaN compares False with everything, so a NaN
    confidence would end the loop at once with a misleading status."""
    if max_attempts is not None and (isinstance(max_attempts, bool)
                                     or int(finite_number("max_attempts", max_attempts)) != max_attempts
                                     or max_attempts < 1):
        raise ValueError(f"max_attempts: must be a whole number of at least 1 (or None for no cap), got "
                         f"{max_attempts}")
    if int(finite_number("max_accepted", max_accepted)) != max_accepted or max_accepted < 1:
        raise ValueError(f"max_accepted: must be a whole number of at least 1, got {max_accepted}")
    if not 0.0 <= finite_number("confidence", confidence) <= 1.0:
        raise ValueError(f"confidence: {confidence} is not a probability (0 to 1)")
    low, high = (finite_number(name, value) for name, value in zip(("ssim_low", "ssim_high"), ssim_band, strict=True))
    if not -1.0 <= low <= high <= 1.0:
        raise ValueError(f"ssim_low/ssim_high: need -1 <= ssim_low <= ssim_high <= 1 (SSIM's range), got {low} and "
                         f"{high}")


def run_iei(
    source: Any,
    target: str | int,
    edit: Callable[[Any, torch.Tensor, int], Any],
    predict: Callable[[Any], Any],
    ssim: Callable[[Any, Any], float] = critic_ssim,
    *,
    source_prediction: Any = None,
    max_attempts: int | None = 100,
    max_accepted: int = 30,
    confidence: float = 0.6,
    ssim_band: tuple[float, float] = (0.5, 0.8),
    recompute_direction: bool = False,
    keep_attempt_images: bool = True,
    should_stop: Callable[[], bool] | None = None,
    on_attempt: Callable[[dict], None] | None = None,
    target_distribution: Any = None,
    va_goal: VAGoal | None = None,
    batch_size: int = 1,
    edit_batch: Callable[[Any, torch.Tensor, list[int]], list] | None = None,
) -> IEIResult:
    """Run IEI on ``source`` towards ``target`` (name or index). See the module docstring for the rules.

    ``source`` is what the first edit starts from and what every edit's SSIM is measured against (the 224-px
    source image in the official pipeline; with the default SSIM a channels-last (H, W, 3) / (1, H, W, 3) image).
    Images are otherwise opaque here: they are only handed to ``edit``, ``predict`` and ``ssim``.
    ``max_accepted`` is the official ``num_loop``: the size limit of the accepted list WITH the source, so at most
    ``max_accepted - 1`` edits are accepted. ``source_prediction`` skips the critic call on the source.
    With ``va_goal``, ``target`` still names the class reported as p_target (e.g. the nearest centre's).
    """
    t = class_index(target)
    check_settings(max_attempts, max_accepted, confidence, ssim_band)
    if va_goal is not None:
        va_goal.check()
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: must be a whole number of at least 1, got {batch_size}")
    if edit_batch is None:
        def edit_batch(init, direction, attempts):  # speculative, but one at a time
            return [edit(init, direction, k) for k in attempts]
    ssim_low, ssim_high = ssim_band
    p_src, _ = read_prediction(predict(source) if source_prediction is None else source_prediction)

    result = IEIResult(image=source, chosen_attempt=None, status="", choice="", target=t,
                       source_distribution=p_src.tolist())
    accepted_dists = [p_src]   # the softmax of each accepted image, source first (recompute mode)
    q_first: torch.Tensor | None = None
    last_label: int | None = None
    best_tgt = 0.0
    best_same = 0.0
    best_va, best_va_attempt = math.inf, None  # V-A rule: the closest accepted edit
    ahead: dict = {}  # batching: {"init": ..., "direction": ..., "images": {attempt: image}} edited ahead

    def goal_reached() -> bool:
        return best_va <= va_goal.tolerance if va_goal is not None else best_tgt >= confidence

    def loop_may_continue() -> bool:
        return not goal_reached() and 1 + len(result.accepted_attempts) < max_accepted

    def edit_ahead(init_image, direction) -> None:
        """Edit attempts ``attempt``.. together: as many as the batch, the cap and the direction allow."""
        size = batch_size if attempt > 0 or recompute_direction else 1  # attempt 1 needs attempt 0's softmax
        if max_attempts is not None:
            size = min(size, max_attempts - attempt)
        attempts = list(range(attempt, attempt + size))
        images = list(edit_batch(init_image, direction, attempts))
        if len(images) != size:
            raise ValueError(f"edit_batch returned {len(images)} images for {size} attempts")
        result.discarded_edits += len(ahead.get("images", ()))
        ahead.update(init=init_image, direction=direction, images=dict(zip(attempts, images, strict=True)))

    attempt = 0
    while True:
        if attempt > 0 and not loop_may_continue():
            result.status = (VA_REACHED if va_goal is not None else CONFIDENT) if goal_reached() else MAX_ACCEPTED
            break
        if max_attempts is not None and attempt >= max_attempts:
            result.status = MAX_ATTEMPTS if result.accepted_attempts else EXHAUSTED
            break
        if should_stop is not None and should_stop():
            result.status = CANCELLED
            break

        # Direction: from the source on attempt 0; then from q_first (official) or the latest accepted image.
        if attempt == 0:
            basis = p_src
        else:
            basis = accepted_dists[-1] if recompute_direction else q_first
        if target_distribution is None:
            direction = emotion_direction(t, basis)
        else:
            direction = direction_towards(target_distribution, basis)
        init_index = result.accepted_attempts[-1] if result.accepted_attempts else None
        init_image = result.accepted_images[-1] if result.accepted_images else source

        if batch_size == 1:
            image = edit(init_image, direction, attempt)
        else:
            if not (ahead.get("init") is init_image and torch.equal(ahead["direction"], direction)
                    and attempt in ahead["images"]):
                edit_ahead(init_image, direction)
            image = ahead["images"].pop(attempt)
        dist, label = read_prediction(predict(image))
        score = float(ssim(source, image))
        if not math.isfinite(score):
            raise ValueError(f"attempt {attempt}: the SSIM of the edit is {score}; the edit holds NaN or infinite "
                             "pixels")
        if attempt == 0:
            q_first = dist
        last_label = label
        if keep_attempt_images:
            result.attempt_images.append(image)

        p_target = float(dist[t])
        p_label = float(dist[label])
        in_band = ssim_low < score < ssim_high
        is_target = label == t
        accepted = in_band or is_target
        if va_goal is not None:
            point = expected_va(dist)
            distance = float(torch.hypot(point[0] - va_goal.valence, point[1] - va_goal.arousal))
            within = distance <= va_goal.tolerance
            accepted = in_band or within
            if accepted and distance < best_va:
                best_va, best_va_attempt = distance, attempt
        same = same_valence(label, t)
        same_updated = tgt_updated = False
        if accepted:
            if same and p_label > best_same:
                best_same = p_label
                result.best_same_attempts.append(attempt)
                same_updated = True
            if p_target > best_tgt:
                best_tgt = p_target
                result.best_target_attempts.append(attempt)
                tgt_updated = True
            result.accepted_attempts.append(attempt)
            result.accepted_images.append(image)
            accepted_dists.append(dist)
            result.discarded_edits += len(ahead.pop("images", ()))  # edited from a stale init
            ahead.clear()

        entry = {
            "attempt": attempt,
            "init": SOURCE if init_index is None else init_index,
            "direction": direction.tolist(),
            "ssim": score,
            "label": label,
            "label_name": EMOTIONS[label],
            "distribution": dist.tolist(),
            "p_target": p_target,
            "p_label": p_label,
            "in_ssim_band": in_band,
            "label_is_target": is_target,
            "accepted": accepted,
            "same_valence": same,
            "best_same_updated": same_updated,
            "best_tgt_updated": tgt_updated,
            "best_tgt_after": best_tgt,
            "best_same_after": best_same,
            "accepted_count_after": len(result.accepted_attempts),
        }
        if va_goal is not None:
            entry.update(expected_va=point.tolist(), va_distance=distance, va_within_tolerance=within,
                         best_va_distance_after=best_va if best_va_attempt is not None else None)
        result.trace.append(entry)
        if on_attempt is not None:
            on_attempt(entry)
        attempt += 1

    result.best_target_probability = best_tgt
    result.best_same_probability = best_same
    result.discarded_edits += len(ahead.get("images", ()))
    if va_goal is not None:
        result.chosen_attempt = best_va_attempt
        result.choice = CHOICE_NO_FALLBACK if best_va_attempt is None else CHOICE_CLOSEST_VA
        images = dict(zip(result.accepted_attempts, result.accepted_images, strict=True))
        result.image = source if best_va_attempt is None else images[best_va_attempt]
    else:
        _choose(result, last_label, best_tgt, best_same, confidence, source)
    return result


def _choose(result: IEIResult, last_label: int | None, best_tgt: float, best_same: float, confidence: float,
            source: Any) -> None:
    """The official final choice, keyed on the LAST attempt's label (even a rejected one)."""
    images = dict(zip(result.accepted_attempts, result.accepted_images, strict=True))
    chosen: int | None = result.accepted_attempts[-1] if result.accepted_attempts else None
    result.choice = CHOICE_LAST_IS_TARGET if last_label == result.target else CHOICE_NO_FALLBACK
    if last_label is not None and last_label != result.target:
        if best_tgt > confidence:
            chosen, result.choice = result.best_target_attempts[-1], CHOICE_BEST_TARGET
        elif best_same != 0:
            chosen, result.choice = result.best_same_attempts[-1], CHOICE_BEST_SAME_VALENCE
        elif best_tgt != 0:
            chosen, result.choice = result.best_target_attempts[-1], CHOICE_BEST_TARGET
    if last_label is None:  # cancelled before the first edit
        result.choice = CHOICE_NO_FALLBACK
    result.chosen_attempt = chosen
    result.image = source if chosen is None else images[chosen]

