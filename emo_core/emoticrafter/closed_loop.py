"""The valence-arousal closed loop for text-to-image, as a pure algorithm: render, ask a critic where the image
landed on the V-A pad, and either keep the best of K seeds or steer the EIT's input V-A towards the target.

The renderer and the critic are callables, so this module knows nothing about diffusion or ComfyUI:

* ``render(points, seeds, index) -> images``: one batch, image i conditioned on the V-A point ``points[i]`` and
  drawn from ``seeds[i]``; ``index`` is the round (steer) or 0 (best of K). Images are opaque here except that
  ``images[i:i + 1]`` is image i;
* ``score(images) -> (predictions, clip_scores)``: (B, 2) predicted (valence, arousal) and, when a CLIPScore floor
  is set, (B,) CLIPScores of the images against their neutral prompt (else None).

Two modes:

* best of K: one batch of K seeds (seed, seed + 1, ...), all at the target V-A; the chosen image is the one whose
  prediction is closest to the target;
* steer: round 0 renders the target V-A itself, which is the published open-loop result; every later round
  re-renders the same seed with the EIT's input moved by the measured error, per axis
  ``v_in <- v_in + gamma * (v_target - v_pred)`` (and likewise arousal), clamped to [-3, 3] (to +-10, the largest
  value the nodes accept, with ``extrapolate``). It stops when a round's error is at most ``tolerance`` (status
  ``tolerance_met``), after ``rounds`` steering rounds (``max_rounds``), or when clamping leaves the input where it
  was, so another render would repeat the last one (``stalled``).

Error = Euclidean distance between prediction and target on the V-A pad. The chosen attempt is the one with the
smallest error (the earliest on a tie), so in steer mode the result can only match or improve round 0's error
(with a CLIPScore floor: whenever round 0 meets the floor).

CLIPScore floor (optional): only attempts whose CLIPScore reaches the floor may be chosen, so that the emotion is not
bought by losing the content of the prompt. When NO attempt reaches it, the attempt with the highest CLIPScore is
returned and the result says so (``choice = "floor_unmet_best_clip_score"``, ``floor_met = False``); in steer mode an
attempt under the floor never ends the loop early.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..checks import finite_number
from .va import EXTRAPOLATE_LIMIT, VA_MAX, va_problem

BEST_OF_K, STEER = "best_of_k", "steer"
MODES = (STEER, BEST_OF_K)
MAX_K, MAX_ROUNDS_LIMIT = 64, 64
SEED_SPACE = 2 ** 64  # ComfyUI seeds are 0 .. 2^64 - 1; candidate seeds wrap around

# Why the loop ended.
CANDIDATES = "candidates_scored"  # best of K: the one batch was rendered and scored
TOLERANCE_MET = "tolerance_met"
MAX_ROUNDS = "max_rounds"
STALLED = "stalled"  # the clamped input did not move: another round would render the same image

# Which rule picked the result.
CLOSEST = "closest_to_target"
CLOSEST_OVER_FLOOR = "closest_meeting_clip_floor"
FLOOR_UNMET = "floor_unmet_best_clip_score"

Point = tuple[float, float]
Renderer = Callable[[list[Point], list[int], int], Any]
Scorer = Callable[[Any], tuple[Any, Any]]


@dataclass(frozen=True)
class LoopSettings:
    target: Point
    mode: str = STEER
    k: int = 8
    gamma: float = 1.0
    tolerance: float = 0.25
    rounds: int = 4
    extrapolate: bool = False
    clip_floor: float | None = None  # None or 0: no floor

    def check(self) -> LoopSettings:
        """Refuse settings the loop cannot honour, each error naming its setting."""
        for name, value in zip(("valence", "arousal"), self.target, strict=True):
            problem = va_problem(name, value, self.extrapolate)
            if problem:
                raise ValueError(problem)
        if self.mode not in MODES:
            raise ValueError(f"mode: '{self.mode}' is not one of {', '.join(MODES)}")
        _whole("k", self.k, 1, MAX_K)
        _whole("rounds", self.rounds, 0, MAX_ROUNDS_LIMIT)
        if not 0.0 < finite_number("gamma", self.gamma) <= 2.0:
            raise ValueError(f"gamma: {self.gamma} must be in (0, 2]: the step is gamma times the measured error, "
                             "and beyond 2 it overshoots further than it started")
        if finite_number("tolerance", self.tolerance) < 0:
            raise ValueError(f"tolerance: {self.tolerance} must be at least 0")
        if self.clip_floor is not None and not 0.0 <= finite_number("clip_floor", self.clip_floor) <= 100.0:
            raise ValueError(f"clip_floor: {self.clip_floor} is not a CLIPScore (0 to 100)")
        return self

    @property
    def floor(self) -> float | None:
        return self.clip_floor if self.clip_floor else None

    @property
    def limit(self) -> float:
        """How far the steered input may go on each axis."""
        return EXTRAPOLATE_LIMIT if self.extrapolate else VA_MAX


def _whole(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or finite_number(name, value) != int(value) or not low <= int(value) <= high:
        raise ValueError(f"{name}: must be a whole number from {low} to {high}, got {value}")


@dataclass
class Attempt:
    """One rendered image: a steering round, or one of the K candidates."""

    index: int
    seed: int
    v_in: float
    a_in: float
    v_pred: float
    a_pred: float
    error: float          # distance of (v_pred, a_pred) from the target
    v_error: float        # |v_pred - v_target|
    a_error: float
    clip_score: float | None = None
    meets_floor: bool = True


@dataclass
class LoopResult:
    settings: LoopSettings
    attempts: list[Attempt]
    images: list = field(default_factory=list)  # one (1, ...) image per attempt
    chosen: int = 0
    status: str = ""
    choice: str = CLOSEST

    @property
    def image(self):
        return self.images[self.chosen]

    @property
    def floor_met(self) -> bool:
        return self.choice != FLOOR_UNMET

    def log(self) -> dict:
        """JSON-ready trace: the settings, why it ended, which attempt was chosen and every attempt."""
        s = self.settings
        return {"mode": s.mode, "target": list(s.target), "status": self.status, "chosen": self.chosen,
                "choice": self.choice, "floor_met": self.floor_met,
                "open_loop_error": self.attempts[0].error, "chosen_error": self.attempts[self.chosen].error,
                "settings": {"k": s.k, "gamma": s.gamma, "tolerance": s.tolerance, "rounds": s.rounds,
                             "extrapolate": s.extrapolate, "clip_floor": s.floor},
                "attempts": [asdict(a) for a in self.attempts]}


def read_scores(predictions, clip_scores, count: int, want_clip: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The critic's answer as CPU float64 tensors, checked: (count, 2) finite predictions, (count,) CLIPScores."""
    pred = torch.as_tensor(predictions).detach().to("cpu", torch.float64)
    if pred.shape != (count, 2):
        raise ValueError(f"the critic returned predictions of shape {tuple(pred.shape)}, expected ({count}, 2): one "
                         "(valence, arousal) per image")
    if not torch.isfinite(pred).all():
        raise ValueError("the critic predicted NaN or infinity (NaN pixels in the image, or damaged critic weights)")
    if not want_clip:
        return pred, None
    if clip_scores is None:
        raise ValueError("a CLIPScore floor is set but the critic returned no CLIPScores")
    clip = torch.as_tensor(clip_scores).detach().to("cpu", torch.float64).reshape(-1)
    if clip.shape != (count,) or not torch.isfinite(clip).all():
        raise ValueError(f"the critic's CLIPScores must be {count} finite numbers, got {clip.tolist()}")
    return pred, clip


def steer_step(v_in: Point, target: Point, prediction: Point, gamma: float, limit: float) -> Point:
    """v_in + gamma * (target - prediction) per axis, clamped to [-limit, limit]."""
    return tuple(min(max(x + gamma * (t - p), -limit), limit)  # type: ignore[return-value]
                 for x, t, p in zip(v_in, target, prediction, strict=True))


def choose(attempts: Sequence[Attempt], floor: float | None) -> tuple[int, str]:
    """(index, rule): the smallest error among the attempts meeting the floor (all, without one), the earliest on a
    tie; the highest CLIPScore when none meets it."""
    eligible = [a for a in attempts if a.meets_floor]
    if eligible:
        best = min(eligible, key=lambda a: (a.error, a.index))
        return best.index, CLOSEST if floor is None else CLOSEST_OVER_FLOOR
    best = max(attempts, key=lambda a: (a.clip_score, -a.index))
    return best.index, FLOOR_UNMET


def _attempts(first: int, points: Sequence[Point], seeds: Sequence[int], pred: torch.Tensor,
              clip: torch.Tensor | None, settings: LoopSettings) -> list[Attempt]:
    target = settings.target
    out = []
    for i, ((v_in, a_in), seed, (v, a)) in enumerate(zip(points, seeds, pred.tolist(), strict=True)):
        score = None if clip is None else float(clip[i])
        out.append(Attempt(index=first + i, seed=int(seed), v_in=float(v_in), a_in=float(a_in), v_pred=v, a_pred=a,
                           error=math.hypot(v - target[0], a - target[1]), v_error=abs(v - target[0]),
                           a_error=abs(a - target[1]), clip_score=score,
                           meets_floor=settings.floor is None or score >= settings.floor))
    return out


def _scored(render: Renderer, score: Scorer, settings: LoopSettings, points: list[Point], seeds: list[int],
            index: int, first: int) -> tuple[Any, list[Attempt]]:
    images = render(points, seeds, index)
    pred, clip = read_scores(*score(images), count=len(points), want_clip=settings.floor is not None)
    return images, _attempts(first, points, seeds, pred, clip, settings)


def run_closed_loop(render: Renderer, score: Scorer, settings: LoopSettings, seed: int,
                    on_attempt: Callable[[Attempt], None] | None = None) -> LoopResult:
    """Run the loop (see the module docstring). ``on_attempt`` sees every attempt as it is scored."""
    settings = settings.check()
    target = (float(settings.target[0]), float(settings.target[1]))
    result = LoopResult(settings, [])
    if settings.mode == BEST_OF_K:
        seeds = [(int(seed) + i) % SEED_SPACE for i in range(settings.k)]
        images, result.attempts = _scored(render, score, settings, [target] * settings.k, seeds, 0, 0)
        result.images = [images[i:i + 1] for i in range(settings.k)]
        result.status = CANDIDATES
        for attempt in result.attempts:
            if on_attempt is not None:
                on_attempt(attempt)
    else:
        v_in = target
        for r in range(settings.rounds + 1):
            images, (attempt,) = _scored(render, score, settings, [v_in], [int(seed)], r, r)
            result.attempts.append(attempt)
            result.images.append(images[0:1])
            if on_attempt is not None:
                on_attempt(attempt)
            if attempt.error <= settings.tolerance and attempt.meets_floor:
                result.status = TOLERANCE_MET
                break
            if r == settings.rounds:
                result.status = MAX_ROUNDS
                break
            moved = steer_step(v_in, target, (attempt.v_pred, attempt.a_pred), settings.gamma, settings.limit)
            if moved == v_in:
                result.status = STALLED
                break
            v_in = moved
    result.chosen, result.choice = choose(result.attempts, settings.floor)
    return result
