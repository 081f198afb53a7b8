"""IEI extensions with scripted editor/critic traces: the direction from a target distribution, the V-A acceptance
rule, and batched attempts (identical decisions, trace and result to one at a time)."""

import json

import pytest
import torch
from paths import GOLDEN

from emo_core.emoeditor.attempt_rng import PER_ATTEMPT, SEED_ONCE, AttemptDraws, attempt_seed
from emo_core.emoeditor.continuous import EMOTION_VA_CENTRES, expected_va, va_to_emotions
from emo_core.emoeditor.emotions import EMOTIONS, one_hot
from emo_core.emoeditor.iei import CHOICE_CLOSEST_VA, MAX_ACCEPTED, VA_REACHED, VAGoal, run_iei
from emo_core.emoeditor.schedule import EditSettings, draw_T

CASES = {c["id"]: c for c in json.loads((GOLDEN / "emoeditor" / "iei_traces.json").read_text())["cases"]}
SOURCE = "source"


class Script:
    """Edits are tags (attempt, init); the critic and SSIM answer from a per-attempt script."""

    def __init__(self, softmaxes, ssims, source_softmax):
        self.softmaxes, self.ssims, self.source_softmax = softmaxes, ssims, source_softmax
        self.calls, self.batches = [], []

    def edit(self, init, direction, attempt):
        self.calls.append((attempt, init, direction.tolist()))
        return ("edit", attempt, init)

    def edit_batch(self, init, direction, attempts):
        self.batches.append(list(attempts))
        return [self.edit(init, direction, k) for k in attempts]

    def predict(self, image):
        return torch.tensor(self.source_softmax if image == SOURCE else self.softmaxes[image[1]])

    def ssim(self, source, image):
        return self.ssims[image[1]]

    def run(self, target="awe", batch=1, **options):
        return run_iei(SOURCE, target, self.edit, self.predict, self.ssim, batch_size=batch,
                       edit_batch=self.edit_batch if batch > 1 else None, **options)


def golden_script(case) -> Script:
    steps = case["script"]
    return Script([s["softmax"] for s in steps], [s["ssim"] for s in steps], case["source_softmax"])


def outcome(result) -> dict:
    return {"log": result.log(), "image": result.image, "accepted": result.accepted_images,
            "attempt_images": result.attempt_images}


# --- the direction from a target distribution -------------------------------------------------------------------


@pytest.mark.parametrize("case_id", CASES)
def test_a_one_hot_target_distribution_is_the_published_run(case_id):
    """The V-A distribution at the target's centre with sigma 0 is a one-hot: every direction, call and decision
    is the published one (the default path's golden replay is in test_emoeditor_iei.py)."""
    case = CASES[case_id]
    published, via_va = golden_script(case), golden_script(case)
    options = dict(target=case["target_name"], max_accepted=case["num_loop"], max_attempts=case["attempt_cap"])
    ref = published.run(**options)
    centre = EMOTION_VA_CENTRES[case["target_index"]].tolist()
    ours = via_va.run(target_distribution=va_to_emotions(*centre, 0.0), **options)
    assert via_va.calls == published.calls and outcome(ours) == outcome(ref)


def test_a_soft_target_distribution_drives_the_direction():
    case = CASES["c04_rejections_interleaved_first_rejected"]
    target = va_to_emotions(1.0, -0.5, 0.8)
    stub = golden_script(case)
    stub.run(target=case["target_name"], target_distribution=target, max_accepted=case["num_loop"],
             max_attempts=case["attempt_cap"])
    q_first = torch.tensor(case["script"][0]["softmax"])
    assert stub.calls[0][2] == (target - torch.tensor(case["source_softmax"])).tolist()
    assert all(d == (target - q_first).tolist() for _, _, d in stub.calls[1:])


# --- the V-A acceptance rule ------------------------------------------------------------------------------------

GOAL_VA = (1.5, 0.4)  # between amusement and excitement


def towards_goal() -> Script:
    """Six attempts whose critic drifts from sadness to the goal; SSIM in/out of the 0.5-0.8 band as noted."""
    far = va_to_emotions(-1.9, -1.5, 0.6)
    near = va_to_emotions(*GOAL_VA, 0.4)
    mix = [0.0, 0.3, 0.55, 0.75, 0.9, 1.0]
    softmaxes = [((1 - w) * far + w * near).tolist() for w in mix]
    ssims = [0.9, 0.6, 0.3, 0.7, 0.95, 0.65]  # out, in, out, in, out, in
    return Script(softmaxes, ssims, far.tolist())


def distances(script: Script) -> list[float]:
    return [float(torch.hypot(*(expected_va(torch.tensor(s)) - torch.tensor(GOAL_VA, dtype=torch.float64))))
            for s in script.softmaxes]


def test_va_rule_accepts_in_band_or_within_tolerance_and_stops_when_it_enters():
    script = towards_goal()
    gaps = distances(script)
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < gaps[0] / 5  # the script really approaches the goal
    tolerance = (gaps[3] + gaps[4]) / 2  # attempt 4 is the first within it (and is out of the SSIM band)
    result = script.run(va_goal=VAGoal(*GOAL_VA, tolerance), max_attempts=20)
    assert [e["accepted"] for e in result.trace] == [False, True, False, True, True]
    assert [e["va_within_tolerance"] for e in result.trace] == [False, False, False, False, True]
    assert [e["init"] for e in result.trace] == ["source", "source", 1, 1, 3]
    assert result.status == VA_REACHED and result.choice == CHOICE_CLOSEST_VA and result.chosen_attempt == 4
    assert result.image == ("edit", 4, ("edit", 3, ("edit", 1, SOURCE)))
    for entry, gap in zip(result.trace, gaps, strict=False):
        assert entry["va_distance"] == pytest.approx(gap, abs=1e-9)


@pytest.mark.parametrize("k", range(6))
def test_the_loop_stops_exactly_at_the_first_attempt_within_the_tolerance(k):
    """Tolerance = attempt k's distance: the rule is 'within' (<=), so it stops at k; a hair less goes on."""
    gaps = distances(towards_goal())
    exact = towards_goal().run(va_goal=VAGoal(*GOAL_VA, gaps[k]), max_attempts=6, max_accepted=100)
    assert exact.attempts == k + 1 and exact.status == VA_REACHED and exact.chosen_attempt == k
    below = towards_goal().run(va_goal=VAGoal(*GOAL_VA, gaps[k] * (1 - 1e-9)), max_attempts=6, max_accepted=100)
    assert below.trace[k]["va_within_tolerance"] is False
    if k < 5:  # the next attempt is closer still: that one ends it
        assert below.attempts == k + 2 and below.status == VA_REACHED and below.chosen_attempt == k + 1
    else:
        assert below.attempts == 6 and below.status == "max_attempts"


def test_va_rule_without_a_hit_returns_the_closest_accepted_edit():
    script = towards_goal()
    script.ssims = [0.6, 0.9, 0.7, 0.3, 0.9, 0.9]  # accepted: 0 and 2 only (in band), none within tolerance
    result = script.run(va_goal=VAGoal(*GOAL_VA, 0.0), max_attempts=6, max_accepted=100)
    assert result.accepted_attempts == [0, 2] and result.chosen_attempt == 2 and result.choice == CHOICE_CLOSEST_VA
    limited = towards_goal().run(va_goal=VAGoal(*GOAL_VA, 0.0), max_attempts=6, max_accepted=3)
    assert limited.status == MAX_ACCEPTED and limited.accepted_attempts == [1, 3] and limited.chosen_attempt == 3


def test_published_rule_traces_have_no_va_fields():
    case = CASES["c03_success_after_several"]
    result = golden_script(case).run(target=case["target_name"], max_accepted=30, max_attempts=200)
    assert result.status == "confident"
    assert not any(key.startswith(("va_", "expected_va")) for entry in result.trace for key in entry)


# --- batching ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recompute", [False, True], ids=["q_first", "recompute"])
@pytest.mark.parametrize("case_id", CASES)
def test_batched_attempts_give_the_same_run_as_one_at_a_time(case_id, recompute):
    case = CASES[case_id]
    options = dict(target=case["target_name"], max_accepted=case["num_loop"], max_attempts=case["attempt_cap"],
                   recompute_direction=recompute)
    single = golden_script(case)
    ref = single.run(**options)
    for batch in (2, 4, 8):
        stub = golden_script(case)
        ours = stub.run(batch=batch, **options)
        assert outcome(ours) == outcome(ref), batch
        # every consumed attempt was edited from the same init with the same direction as in the single run
        consumed = {attempt: (init, d) for attempt, init, d in stub.calls}
        assert [(k, *consumed[k]) for k, _, _ in single.calls] == single.calls
        assert all(b == list(range(b[0], b[0] + len(b))) and len(b) <= batch for b in stub.batches)
        if not recompute:
            assert stub.batches[0] == [0]  # attempt 1's direction needs attempt 0's softmax
        assert ours.discarded_edits == len(stub.calls) - len(single.calls)


@pytest.mark.parametrize("batch", [1, 2, 4, 8])
def test_batched_va_rule_and_cap(batch):
    script = towards_goal()
    gaps = distances(script)
    ref = towards_goal().run(va_goal=VAGoal(*GOAL_VA, gaps[4]), max_attempts=5)
    ours = script.run(va_goal=VAGoal(*GOAL_VA, gaps[4]), max_attempts=5, batch=batch)
    assert outcome(ours) == outcome(ref) and ours.status == VA_REACHED
    assert all(max(b) < 5 for b in script.batches)  # never edits past the attempt cap


def test_batches_restart_after_an_acceptance_and_count_discards():
    script = towards_goal()  # accepted: 1, 3 (band), then 5 (band); rejected 0, 2, 4
    script.run(va_goal=VAGoal(*GOAL_VA, 0.0), max_attempts=6, max_accepted=100, batch=4, recompute_direction=True)
    assert script.batches == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5]]


def test_cancel_and_progress_hooks_see_each_attempt_once():
    case = CASES["c06_best_target_fallback_cross_valence_with_rejections"]
    seen = []
    result = golden_script(case).run(target=case["target_name"], batch=4, on_attempt=seen.append,
                                     should_stop=lambda: len(seen) >= 5)
    assert [e["attempt"] for e in seen] == [0, 1, 2, 3, 4] and seen == result.trace and result.status == "cancelled"


def test_bad_batch_sizes_are_refused():
    with pytest.raises(ValueError, match="batch_size"):
        towards_goal().run(batch=0)
    with pytest.raises(ValueError, match="tolerance"):
        towards_goal().run(va_goal=VAGoal(0.0, 0.0, -1.0))
    assert EMOTIONS[int(torch.argmax(one_hot(2)))] == "awe"


# --- the random draws of attempts -------------------------------------------------------------------------------


def test_seed_once_draws_rewind_to_any_earlier_attempt():
    settings = EditSettings(4, 700, 980)
    stream, expected = torch.Generator().manual_seed(9), []
    for _ in range(6):  # the published order: T, then the noise, attempt after attempt
        expected.append((draw_T(stream, settings), torch.randn((1, 4, 8, 8), generator=stream)))
    draws = AttemptDraws(9, SEED_ONCE, settings)
    order = [0, 1, 2, 3, 1, 2, 3, 4, 5, 3, 4, 5]  # batches drawn ahead, then cut short by acceptances
    for k in order:
        T, noise = draws.draw(k, (1, 4, 8, 8))
        assert T == expected[k][0] and torch.equal(noise, expected[k][1]), k
    with pytest.raises(ValueError, match="in order"):
        AttemptDraws(9, SEED_ONCE, settings).draw(1, (1, 4, 8, 8))


def test_per_attempt_draws_are_a_function_of_seed_and_attempt():
    settings = EditSettings(4, 700, 980)
    a, b = AttemptDraws(9, PER_ATTEMPT, settings), AttemptDraws(9, PER_ATTEMPT, settings)
    first = [a.draw(k, (1, 4, 8, 8)) for k in (5, 0, 3)]
    again = [b.draw(k, (1, 4, 8, 8)) for k in (5, 0, 3)]
    assert all(x[0] == y[0] and torch.equal(x[1], y[1]) for x, y in zip(first, again, strict=True))
    assert len({attempt_seed(s, k) for s in range(4) for k in range(4)}) == 16  # (1, 1) is not (2, 0)
    assert not torch.equal(first[1][1], AttemptDraws(10, PER_ATTEMPT, settings).draw(0, (1, 4, 8, 8))[1])
