"""The V-A closed loop's logic with a scripted renderer and critic: images carry the V-A the world gives them, the
critic reads it back. Steering, best of K, the CLIPScore floor, clamping, caps, bad settings, the trace."""

import json
import math

import numpy as np
import pytest
import torch

from emo_core.emoticrafter.closed_loop import (
    BEST_OF_K,
    CANDIDATES,
    CLOSEST,
    CLOSEST_OVER_FLOOR,
    FLOOR_UNMET,
    MAX_ROUNDS,
    STALLED,
    STEER,
    TOLERANCE_MET,
    LoopSettings,
    run_closed_loop,
    steer_step,
)
from emo_core.plots.closed_loop import closed_loop_plot, closed_loop_plot_image
from emo_core.plots.style import BEST, TARGET_MARK


class World:
    """A scripted text-to-image model: the image of input (v, a) from seed s 'looks like' gain * (v, a) + bias +
    jitter(s), written into its pixels (channel 0 valence, channel 1 arousal, channel 2 a CLIPScore). Counts
    renders and batch sizes."""

    def __init__(self, gain=(0.5, 0.7), bias=(0.4, -0.3), jitter=None, clip=None):
        self.gain, self.bias = gain, bias
        self.jitter = jitter or (lambda seed: (0.0, 0.0))
        self.clip = clip or (lambda seed, v, a: 50.0)
        self.calls: list[tuple[list, list, int]] = []

    def render(self, points, seeds, index):
        self.calls.append((list(points), list(seeds), index))
        images = torch.zeros(len(points), 2, 2, 3, dtype=torch.float64)
        for i, ((v, a), s) in enumerate(zip(points, seeds, strict=True)):
            jv, ja = self.jitter(s)
            images[i, ..., 0] = self.gain[0] * v + self.bias[0] + jv
            images[i, ..., 1] = self.gain[1] * a + self.bias[1] + ja
            images[i, ..., 2] = self.clip(s, v, a)
        return images


def critic(images):
    """Reads the statistic back: mean of channel 0 -> valence, channel 1 -> arousal, channel 2 -> CLIPScore."""
    return torch.stack([images[..., 0].mean((1, 2)), images[..., 1].mean((1, 2))], 1), images[..., 2].mean((1, 2))


def errors(result):
    return [a.error for a in result.attempts]


def test_steer_reduces_the_error_every_round_and_stops_at_the_tolerance():
    world = World()
    target = (1.0, -1.0)
    result = run_closed_loop(world.render, critic, LoopSettings(target, STEER, gamma=1.0, tolerance=0.05,
                                                                rounds=10), seed=7)
    e = errors(result)
    assert all(later < earlier for earlier, later in zip(e, e[1:], strict=False)), e
    assert e[-1] <= 0.05 < e[-2] and result.status == TOLERANCE_MET and len(e) < 11
    assert result.chosen == len(e) - 1 and result.choice == CLOSEST
    # round 0 is the open-loop render of the target itself; then the rule, per axis, on the same seed
    assert world.calls[0] == ([target], [7], 0)
    for prev, nxt in zip(result.attempts, result.attempts[1:], strict=False):
        assert nxt.v_in == pytest.approx(prev.v_in + (target[0] - prev.v_pred))
        assert nxt.a_in == pytest.approx(prev.a_in + (target[1] - prev.a_pred))
    assert [c[1] for c in world.calls] == [[7]] * len(e) and [c[2] for c in world.calls] == list(range(len(e)))
    assert len(result.images) == len(e) and torch.equal(result.image, result.images[-1])


def test_gamma_scales_the_step():
    result = run_closed_loop(World().render, critic, LoopSettings((1.0, 1.0), STEER, gamma=0.5, tolerance=0,
                                                                  rounds=1), seed=0)
    first, second = result.attempts
    assert second.v_in == pytest.approx(1.0 + 0.5 * (1.0 - first.v_pred))
    assert second.a_in == pytest.approx(1.0 + 0.5 * (1.0 - first.a_pred))


def test_a_diverging_world_hits_the_round_cap_and_keeps_the_open_loop_result():
    world = World(gain=(-1.5, 0.7))  # steering the wrong way: the error grows
    result = run_closed_loop(world.render, critic, LoopSettings((1.0, 0.0), STEER, tolerance=0.01, rounds=3), seed=1)
    assert result.status == MAX_ROUNDS and len(result.attempts) == 4 == len(world.calls)
    assert result.chosen == 0 and errors(result)[0] == min(errors(result))


@pytest.mark.parametrize("trial", range(20))
def test_the_result_never_has_a_larger_error_than_the_open_loop(trial):
    rng = np.random.default_rng(trial)
    world = World(gain=tuple(rng.uniform(-2, 2, 2)), bias=tuple(rng.uniform(-1, 1, 2)))
    target = tuple(rng.uniform(-3, 3, 2))
    result = run_closed_loop(world.render, critic, LoopSettings(target, STEER, gamma=float(rng.uniform(0.1, 2)),
                                                                tolerance=0.1, rounds=5), seed=trial)
    assert result.attempts[result.chosen].error == min(errors(result)) <= errors(result)[0]


def test_rounds_zero_is_the_open_loop_alone():
    world = World()
    result = run_closed_loop(world.render, critic, LoopSettings((0.0, 0.0), STEER, tolerance=0, rounds=0), seed=3)
    assert len(world.calls) == 1 and result.status == MAX_ROUNDS and result.chosen == 0


def test_steering_is_clamped_to_the_trained_range_unless_extrapolating():
    world = World(gain=(0.5, 1.0), bias=(0.0, 0.0))  # valence 3 needs an input of 6
    clamped = run_closed_loop(world.render, critic, LoopSettings((3.0, 0.0), STEER, tolerance=0.01, rounds=8),
                              seed=0)
    assert [a.v_in for a in clamped.attempts] == [3.0]  # 3 + 1.5 clamps back to 3: same render, stop
    assert clamped.status == STALLED
    free = run_closed_loop(world.render, critic, LoopSettings((3.0, 0.0), STEER, tolerance=0.01, rounds=8,
                                                              extrapolate=True), seed=0)
    assert free.status == TOLERANCE_MET and 3.0 < free.attempts[-1].v_in <= 10.0
    assert steer_step((9.0, -9.5), (3.0, -3.0), (0.0, 0.0), 2.0, 10.0) == (10.0, -10.0)


def test_best_of_k_renders_one_batch_of_k_seeds_and_returns_the_argmin():
    jitters = {s: ((s * 37 % 11 - 5) / 4, (s * 53 % 7 - 3) / 3) for s in range(100, 108)}
    world = World(jitter=jitters.__getitem__)
    target = (1.0, 0.5)
    result = run_closed_loop(world.render, critic, LoopSettings(target, BEST_OF_K, k=8), seed=100)
    assert world.calls == [([target] * 8, list(range(100, 108)), 0)]  # ONE render call, K seeds
    expected = [math.hypot(0.5 * 1.0 + 0.4 + jitters[s][0] - 1.0, 0.7 * 0.5 - 0.3 + jitters[s][1] - 0.5)
                for s in range(100, 108)]
    assert errors(result) == pytest.approx(expected)
    assert result.chosen == int(np.argmin(expected)) and result.status == CANDIDATES
    assert result.attempts[result.chosen].seed == 100 + result.chosen
    assert torch.equal(result.image, world.render([target], [100 + result.chosen], 0))


def test_best_of_k_seeds_wrap_around_the_seed_space():
    world = World()
    run_closed_loop(world.render, critic, LoopSettings((0.0, 0.0), BEST_OF_K, k=3), seed=2 ** 64 - 2)
    assert world.calls[0][1] == [2 ** 64 - 2, 2 ** 64 - 1, 0]


def test_the_clip_floor_excludes_candidates_and_says_when_none_meets_it():
    jitters = {s: (0.1 * (s - 10), 0.0) for s in range(10, 14)}  # seed 10 is exact, then worse and worse
    clips = {10: 20.0, 11: 31.0, 12: 35.0, 13: 25.0}
    world = World(bias=(0.0, 0.0), gain=(1.0, 1.0), jitter=jitters.__getitem__, clip=lambda s, v, a: clips[s])
    settings = dict(target=(1.0, 1.0), mode=BEST_OF_K, k=4)
    assert run_closed_loop(world.render, critic, LoopSettings(**settings), seed=10).chosen == 0
    floored = run_closed_loop(world.render, critic, LoopSettings(**settings, clip_floor=30.0), seed=10)
    assert floored.chosen == 1 and floored.choice == CLOSEST_OVER_FLOOR and floored.floor_met
    assert [a.meets_floor for a in floored.attempts] == [False, True, True, False]
    assert [a.clip_score for a in floored.attempts] == [20.0, 31.0, 35.0, 25.0]
    unmet = run_closed_loop(world.render, critic, LoopSettings(**settings, clip_floor=40.0), seed=10)
    assert unmet.chosen == 2 and unmet.choice == FLOOR_UNMET and not unmet.floor_met
    assert unmet.log()["floor_met"] is False


def test_steer_does_not_stop_on_a_round_under_the_clip_floor():
    world = World(gain=(1.0, 1.0), bias=(0.5, 0.0), clip=lambda s, v, a: 10.0 if v > 0.9 else 30.0)
    settings = dict(target=(1.0, 0.0), mode=STEER, tolerance=0.6, rounds=3)
    plain = run_closed_loop(world.render, critic, LoopSettings(**settings), seed=0)
    assert len(plain.attempts) == 1 and plain.status == TOLERANCE_MET  # round 0 is within the tolerance...
    floored = run_closed_loop(world.render, critic, LoopSettings(**settings, clip_floor=20.0), seed=0)
    first, second = floored.attempts  # ... but under the floor: one more round, exact and over the floor
    assert first.error <= 0.6 and not first.meets_floor and second.error == 0 and second.meets_floor
    assert floored.status == TOLERANCE_MET and floored.chosen == 1 and floored.choice == CLOSEST_OVER_FLOOR


@pytest.mark.parametrize("change, message", [
    (dict(k=0), "k: must be a whole number from 1 to 64"),
    (dict(k=65), "k: must be a whole number from 1 to 64"),
    (dict(k=2.5), "k: must be a whole number"),
    (dict(rounds=-1), "rounds: must be a whole number from 0 to 64"),
    (dict(gamma=0.0), "gamma: 0.0 must be in"),
    (dict(gamma=math.nan), "gamma: nan is not a finite number"),
    (dict(tolerance=-0.1), "tolerance: -0.1 must be at least 0"),
    (dict(mode="random"), "mode: 'random' is not one of steer, best_of_k"),
    (dict(target=(4.0, 0.0)), "valence: 4 is outside the trained range"),
    (dict(target=(0.0, 11.0), extrapolate=True), "arousal: 11 is beyond"),
    (dict(clip_floor=101.0), "clip_floor: 101.0 is not a CLIPScore"),
])
def test_bad_settings_name_the_setting(change, message):
    settings = dict(target=(0.0, 0.0)) | change
    world = World()
    with pytest.raises(ValueError, match=message.replace("(", "\\(")):
        run_closed_loop(world.render, critic, LoopSettings(**settings), seed=0)
    assert not world.calls


@pytest.mark.parametrize("answer, message", [
    (lambda images: (torch.zeros(len(images), 3), None), "shape \\(1, 3\\), expected \\(1, 2\\)"),
    (lambda images: (torch.full((len(images), 2), math.nan), None), "NaN or infinity"),
])
def test_a_bad_critic_answer_is_refused(answer, message):
    with pytest.raises(ValueError, match=message):
        run_closed_loop(World().render, answer, LoopSettings((0.0, 0.0)), seed=0)


def test_a_floor_needs_clip_scores():
    with pytest.raises(ValueError, match="no CLIPScores"):
        run_closed_loop(World().render, lambda images: (critic(images)[0], None),
                        LoopSettings((0.0, 0.0), clip_floor=10.0), seed=0)


def test_trace_is_json_and_plots_for_both_modes():
    for mode in (STEER, BEST_OF_K):
        result = run_closed_loop(World().render, critic, LoopSettings((2.0, -1.0), mode, k=5, tolerance=0.05),
                                 seed=3)
        log = json.loads(json.dumps(result.log()))
        assert log["mode"] == mode and log["chosen"] == result.chosen and len(log["attempts"]) == len(result.images)
        assert log["open_loop_error"] == result.attempts[0].error >= log["chosen_error"]
        picture = closed_loop_plot_image(log)
        assert picture.dtype == np.uint8 and picture.shape[2] == 3 and picture.shape[1] > picture.shape[0] > 400
        colours = {tuple(c) for c in picture.reshape(-1, 3)}
        assert TARGET_MARK in colours and BEST in colours
        image = closed_loop_plot(log)
        assert image.shape == (1, *picture.shape) and 0 <= image.min() and image.max() <= 1


def test_plot_widens_the_pad_for_extrapolated_inputs():
    world = World(gain=(0.5, 1.0), bias=(0.0, 0.0))
    result = run_closed_loop(world.render, critic, LoopSettings((3.0, 0.0), STEER, tolerance=0.01, rounds=8,
                                                                extrapolate=True), seed=0)
    narrow = run_closed_loop(world.render, critic, LoopSettings((1.0, 0.0), STEER, tolerance=0.01), seed=0)
    assert not np.array_equal(closed_loop_plot_image(result.log())[40:440, 44:444],
                              closed_loop_plot_image(narrow.log())[40:440, 44:444])
