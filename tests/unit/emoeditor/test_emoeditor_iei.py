"""IEI parity: replay every decision trace recorded from the official test.py through run_iei with stubs."""

import json
from types import SimpleNamespace

import pytest
import torch

from emo_core.emoeditor.iei import (
    CANCELLED,
    CHOICE_BEST_SAME_VALENCE,
    CHOICE_NO_FALLBACK,
    CONFIDENT,
    EXHAUSTED,
    MAX_ACCEPTED,
    MAX_ATTEMPTS,
    run_iei,
)

# Fields of the golden per-attempt trace that run_iei reports under the same names.
TRACE_FIELDS = ("attempt", "direction", "init", "ssim", "label", "label_name", "p_target", "p_label", "in_ssim_band",
                "label_is_target", "accepted", "same_valence", "best_same_updated", "best_tgt_updated",
                "best_tgt_after", "best_same_after", "accepted_count_after")
SOURCE = ("source",)


def _cases():
    from paths import GOLDEN
    return json.loads((GOLDEN / "emoeditor" / "iei_traces.json").read_text())["cases"]


CASES = {case["id"]: case for case in _cases()}


class ScriptedRun:
    """Stub editor, critic and SSIM answering what the official run recorded. Images are tags: ("edit", k)."""

    def __init__(self, case, with_logits=True):
        self.case = case
        self.with_logits = with_logits
        self.calls = []  # (init tag, direction, attempt) per edit

    def edit(self, init, direction, attempt):
        assert direction.dtype == torch.float32 and direction.shape == (8,)
        self.calls.append((init, direction.tolist(), attempt))
        return ("edit", attempt)

    def predict(self, image):
        if image == SOURCE:
            softmax, logits = self.case["source_softmax"], self.case["source_logits"]
        else:
            step = self.case["script"][image[1]]
            softmax, logits = step["softmax"], step["logits"]
        return SimpleNamespace(distribution=torch.tensor(softmax), logits=torch.tensor(logits)) \
            if self.with_logits else softmax

    def ssim(self, source, image):
        assert source == SOURCE
        return self.case["script"][image[1]]["ssim"]

    def run(self, **options):
        options.setdefault("max_accepted", self.case["num_loop"])
        options.setdefault("max_attempts", self.case["attempt_cap"])
        return run_iei(SOURCE, self.case["target_name"], self.edit, self.predict, self.ssim, **options)


def _tag(index):
    return "source" if index is None else index


@pytest.mark.parametrize("case_id", CASES)
@pytest.mark.parametrize("with_logits", [True, False], ids=["logits", "softmax-only"])
def test_replays_the_official_decisions(case_id, with_logits):
    case = CASES[case_id]
    stub = ScriptedRun(case, with_logits)
    result = stub.run()
    golden = case["result"]

    assert len(result.trace) == len(case["per_attempt"]) == golden["attempts_run"]
    for ours, ref in zip(result.trace, case["per_attempt"], strict=True):
        assert {k: ours[k] for k in TRACE_FIELDS} == {k: ref[k] for k in TRACE_FIELDS}, ref["attempt"]
    # What the editor was really given: init image, direction (float32 bits), attempt index.
    assert [(_tag(None) if init == SOURCE else init[1], d, k) for init, d, k in stub.calls] == \
        [(ref["init"], ref["direction"], ref["attempt"]) for ref in case["per_attempt"]]
    assert stub.calls[0][1] == golden["direction_first_attempt"]
    if golden["direction_loop_attempts"] is not None:
        assert all(d == golden["direction_loop_attempts"] for _, d, _ in stub.calls[1:])

    assert result.accepted_attempts == golden["accepted_attempts"]
    assert result.best_target_attempts == golden["best_tgt_list"]
    assert result.best_same_attempts == golden["best_same_list"]
    assert result.best_target_probability == golden["best_tgt_prob"]
    assert result.best_same_probability == golden["best_same_prob"]
    assert result.trace[-1]["label"] == golden["final_label"]
    json.dumps(result.log())  # the whole log is JSON-serialisable

    if golden["status"] == "returned":
        assert result.status in (CONFIDENT, MAX_ACCEPTED)
        assert result.choice == golden["final_branch"]
        assert _tag(result.chosen_attempt) == golden["returned"]
        assert result.image == (SOURCE if result.chosen_attempt is None else ("edit", result.chosen_attempt))
        fallback = [result.chosen_attempt] if result.choice.startswith("fallback") else []
        assert ["source", *result.accepted_attempts, *fallback] == golden["pred_Img_final"]
    else:  # the official loop never ends; ours stops at the cap (here the recording's 200 attempts)
        assert golden["status"] == "nonterminating"
        assert result.status == (MAX_ATTEMPTS if result.accepted_attempts else EXHAUSTED)


def test_all_rejected_stops_at_the_default_cap_and_returns_the_source():
    stub = ScriptedRun(CASES["c11_nonterminating_all_rejected"])
    result = stub.run(max_attempts=100)
    assert result.attempts == 100 and len(stub.calls) == 100
    assert result.status == EXHAUSTED and result.choice == CHOICE_NO_FALLBACK
    assert result.image == SOURCE and result.chosen_attempt is None and result.accepted_images == []


def test_cap_after_acceptances_applies_the_final_rules():
    stub = ScriptedRun(CASES["c12_nonterminating_after_three_accepted"])
    result = stub.run(max_attempts=10)
    # Last label (sadness) is not the target (awe); best_same (attempt 0, p 0.4) is the fallback.
    assert result.attempts == 10 and result.status == MAX_ATTEMPTS
    assert result.choice == CHOICE_BEST_SAME_VALENCE and result.image == ("edit", 0)


def test_recompute_direction_uses_the_latest_accepted_distribution():
    case = CASES["c04_rejections_interleaved_first_rejected"]
    stub = ScriptedRun(case)
    stub.run(recompute_direction=True)
    target = case["target_index"]

    def expected(dist):
        return (torch.nn.functional.one_hot(torch.tensor(target), 8).float() - torch.tensor(dist)).tolist()

    latest = case["source_softmax"]  # before any acceptance the latest accepted image is the source
    for (_, direction, k), ref in zip(stub.calls, case["per_attempt"], strict=True):
        assert direction == expected(latest), k
        if ref["accepted"]:
            latest = case["script"][k]["softmax"]
    # The faithful run reuses attempt 0's softmax instead, so the directions really differ.
    assert stub.calls[2][1] != case["per_attempt"][2]["direction"]


def test_thresholds_are_parameters():
    case = CASES["c03_success_after_several"]  # p_target rises over 4 accepted edits, stops at >= 0.6
    lenient = ScriptedRun(case).run(confidence=0.0000001)
    assert lenient.attempts == 1 and lenient.status == CONFIDENT
    narrow = ScriptedRun(case).run(ssim_band=(0.0, 0.0), max_attempts=4)
    assert all(e["accepted"] == e["label_is_target"] for e in narrow.trace)
    limited = ScriptedRun(case).run(max_accepted=3)
    assert limited.attempts == 2 and limited.status == MAX_ACCEPTED


def test_final_rule_compares_best_target_strictly():
    # Only reachable with confidence <= 0.5: the loop stops on a confident target probability that is not the
    # argmax. best_tgt == confidence is not "> confidence", so the same-valence rule decides (official order).
    dist = [0.625, 0, 0.375, 0, 0, 0, 0, 0]  # amusement wins; awe (target) exactly 0.375
    result = run_iei("src", "awe", lambda init, d, k: ("edit", k), lambda image: dist, lambda a, b: 0.6,
                     confidence=0.375)
    assert result.status == CONFIDENT and result.attempts == 1
    assert result.choice == CHOICE_BEST_SAME_VALENCE and result.chosen_attempt == 0


def test_should_stop_and_on_attempt_hooks():
    case = CASES["c06_best_target_fallback_cross_valence_with_rejections"]
    seen = []
    result = ScriptedRun(case).run(on_attempt=seen.append, should_stop=lambda: len(seen) >= 5)
    assert result.status == CANCELLED and result.attempts == 5 and seen == result.trace
    assert result.chosen_attempt in result.accepted_attempts  # the final rules still pick from what exists

    untouched = ScriptedRun(case).run(should_stop=lambda: True)
    assert untouched.status == CANCELLED and untouched.attempts == 0 and untouched.image == SOURCE


def test_rejects_a_zero_cap_and_unknown_targets():
    stub = ScriptedRun(CASES["c01_success_first_attempt"])
    with pytest.raises(ValueError, match="max_attempts"):
        stub.run(max_attempts=0)
    with pytest.raises(ValueError, match="valid names"):
        run_iei(SOURCE, "joy", stub.edit, stub.predict, stub.ssim)


def test_runs_on_real_images_with_the_default_ssim():
    torch.manual_seed(0)
    source = torch.rand(1, 64, 64, 3)
    # A toy editor that blends towards grey; a toy critic whose awe score grows as the image greys out.
    grey = torch.full_like(source, 0.5)

    def edit(init, direction, attempt):
        return 0.6 * init + 0.4 * grey

    def predict(image):
        closeness = 1 - float((image - grey).abs().mean()) * 4
        logits = torch.zeros(8)
        logits[2] = 6 * closeness
        return torch.softmax(logits, 0)

    result = run_iei(source, "awe", edit, predict)
    assert result.status == CONFIDENT and result.trace[-1]["label_name"] == "awe"
    assert result.image is result.accepted_images[-1] and result.image.shape == source.shape
    assert all(0 < e["ssim"] < 1 for e in result.trace)
    json.dumps(result.log())
