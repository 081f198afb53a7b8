"""Continuous emotion on the real host with the tiny EmoEditor models: V-A to Emotion Distribution feeding Emotion
Direction (sigma 0 at a class centre is the published edit), the IEI V-A rule, and batched IEI attempts."""

import io
import json

import numpy as np
import pytest
import torch
from conftest import load_workflow
from PIL import Image
from tiny_graph import TINY_SIZE, TINY_STEPS, for_tiny_models

from emo_core.emoeditor.attempt_rng import attempt_seed
from emo_core.emoeditor.continuous import EMOTION_VA_CENTRES, expected_va
from emo_core.emoeditor.schedule import EditSettings, draw_T

AWE = EMOTION_VA_CENTRES[2].tolist()
# What a batch must reproduce exactly; floats (SSIM, probabilities) only to rounding, see nodes/emoeditor/batch.py.
DISCRETE_RUN = ("status", "choice", "chosen_attempt", "attempts", "accepted_attempts", "best_target_attempts",
                "best_same_attempts")
DISCRETE_STEP = ("attempt", "init", "T", "first_timestep", "label", "accepted", "in_ssim_band", "label_is_target",
                 "best_same_updated", "best_tgt_updated", "accepted_count_after")
FLOAT_STEP = ("ssim", "p_target", "p_label")
ATTEMPTS = 5  # every edit of the tiny models costs ~1 s on a CPU (the SD-sized VAE): keep the runs short


def pngs(host, entry, node_id: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(host.fetch(f)))).astype(np.int16)
            for f in host.output_files(entry, node_id)]


def single_edit(host, prefix: str, **va) -> np.ndarray:
    """The single-edit workflow; with ``va`` its direction's target is a V-A to Emotion Distribution node."""
    api = for_tiny_models(load_workflow("emoeditor_single_edit")[0])
    api = {k: v for k, v in api.items() if k in ("1", "2", "3", "4", "5", "6")}
    api["6"]["inputs"]["filename_prefix"] = f"emo-nodes/test/va_{prefix}"
    if va:
        api["10"] = {"class_type": "EmoNodes_VAToEmotions", "inputs": va}
        api["11"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 1],
                                                            "filename_prefix": f"emo-nodes/test/va_pic_{prefix}"}}
        api["4"]["inputs"].update(target="fear", target_distribution=["10", 0])  # 'target' is then unused
    entry = host.run(api)
    (image,) = pngs(host, entry, "6")
    if va:
        (picture,) = pngs(host, entry, "11")
        assert picture.ndim == 3 and picture.shape[1] > picture.shape[0] > 300  # the plane beside the bar chart
    return image


def test_va_distribution_drives_emotion_direction(host):
    published = single_edit(host, "published")  # target awe
    at_awe = single_edit(host, "awe_centre", valence=AWE[0], arousal=AWE[1], sigma=0.0)
    assert np.array_equal(published, at_awe), "sigma 0 at awe's centre must be the published awe edit"
    soft = single_edit(host, "soft", valence=-1.5, arousal=-1.0, sigma=0.8)
    assert np.abs(soft - published).mean() > 0.2, "another target distribution must change the edit"


RUNS: dict = {}  # runs shared between tests (same inputs, same result: the node is a pure function of them)


def iei(host, **inputs) -> tuple[dict, list[np.ndarray], np.ndarray]:
    """The IEI workflow on the tiny models with ``inputs``: (run log, attempts, chosen image)."""
    key = json.dumps(inputs, sort_keys=True)
    if key not in RUNS:
        RUNS[key] = run_iei_workflow(host, **inputs)
    return RUNS[key]


def run_iei_workflow(host, **inputs) -> tuple[dict, list[np.ndarray], np.ndarray]:
    api = for_tiny_models(load_workflow("emoeditor_iei_loop")[0])
    api = {k: v for k, v in api.items() if k in ("1", "2", "3", "4", "5", "6")}
    api["3"]["inputs"].update(max_attempts=ATTEMPTS, max_accepted=100, confidence=1.0, seed=7)
    api["3"]["inputs"].update(inputs)
    tag = "_".join(f"{k}{v}" for k, v in sorted(inputs.items()))[:80]
    api["4"]["inputs"]["filename_prefix"] = f"emo-nodes/test/iei_{tag}"
    api["5"]["inputs"]["filename_prefix"] = f"emo-nodes/test/iei_attempts_{tag}"
    entry = host.run(api)
    (text,) = entry["outputs"]["6"]["text"]
    (run,) = json.loads(text)["runs"]
    (chosen,) = pngs(host, entry, "4")
    return run, pngs(host, entry, "5"), chosen


def assert_same_run(ours: tuple, ref: tuple, what: str) -> float:
    """Identical decisions, draws and choice; floats to rounding. Returns the largest float difference."""
    (run, attempts, chosen), (ref_run, ref_attempts, ref_chosen) = ours, ref
    assert {k: run[k] for k in DISCRETE_RUN} == {k: ref_run[k] for k in DISCRETE_RUN}, what
    assert [{k: e[k] for k in DISCRETE_STEP} for e in run["trace"]] == \
        [{k: e[k] for k in DISCRETE_STEP} for e in ref_run["trace"]], what
    worst = max(abs(e[k] - r[k]) for e, r in zip(run["trace"], ref_run["trace"], strict=True) for k in FLOAT_STEP)
    worst = max([worst] + [abs(a - b) for e, r in zip(run["trace"], ref_run["trace"], strict=True)
                           for a, b in zip(e["distribution"], r["distribution"], strict=True)])
    assert worst < 1e-4, (what, worst)
    assert len(attempts) == len(ref_attempts)
    # PNGs are 8-bit truncations of the float images: rounding-level differences move a value by at most 1
    assert max(int(np.abs(a - b).max()) for a, b in zip(attempts, ref_attempts, strict=True)) <= 1, what
    assert int(np.abs(chosen - ref_chosen).max()) <= 1, what
    return worst


def test_batched_iei_matches_one_attempt_at_a_time(host):
    # An SSIM band that accepts one attempt inside a batch: from an all-rejecting run (attempts 1.. share the
    # init and the direction), a band around attempt 2's SSIM only. Later attempts start from attempt 2's edit.
    probe, _, _ = iei(host, ssim_low=1.0, ssim_high=1.0, rng=True)
    scores = [e["ssim"] for e in probe["trace"]]
    gap = min(abs(s - scores[2]) for i, s in enumerate(scores[:3]) if i != 2)
    band = dict(ssim_low=scores[2] - gap / 2, ssim_high=scores[2] + gap / 2)
    ref = iei(host, rng=True, batch=1, **band)
    assert ref[0]["accepted_attempts"][:1] == [2] and ref[0]["trace"][3]["init"] == 2
    for batch in (2, 4, 8):
        ours = iei(host, rng=True, batch=batch, **band)
        print(f"per attempt, batch {batch}: largest float difference {assert_same_run(ours, ref, batch):.2e}, "
              f"discarded edits {ours[0]['discarded_edits']}")
        if batch > 2:
            assert ours[0]["discarded_edits"] > 0  # the batch [1, 2, 3, ..] was cut short by attempt 2


def test_batched_seed_once_rewinds_its_stream(host):
    """seed once (published stream) with batches: every attempt accepted, so every batch is cut after its first
    attempt and the stream is rewound to the attempt after it; the run equals the one-at-a-time run."""
    accept_all = dict(ssim_low=-1.0, ssim_high=1.0, max_accepted=4)
    ref = iei(host, batch=1, **accept_all)
    ours = iei(host, batch=4, **accept_all)
    assert ref[0]["attempts"] == 3 and ours[0]["discarded_edits"] == 5  # batches [0], [1, 2, 3, 4], [2, 3, 4]
    assert_same_run(ours, ref, "seed once, batch 4")


def test_each_attempt_draws_from_its_stream(host):
    """per attempt: attempt k's T comes from a generator seeded by (seed, k); seed once (published): the k-th T of
    one generator drawn in order, T then the noise, attempt after attempt."""
    settings = EditSettings(TINY_STEPS, 700, 980)
    per_attempt, _, _ = iei(host, ssim_low=1.0, ssim_high=1.0, rng=True)
    assert [e["T"] for e in per_attempt["trace"]] == \
        [draw_T(torch.Generator().manual_seed(attempt_seed(7, k)), settings) for k in range(ATTEMPTS)]
    published, _, _ = iei(host, ssim_low=1.0, ssim_high=1.0)
    stream, expected = torch.Generator().manual_seed(7), []
    for _ in range(ATTEMPTS):
        expected.append(draw_T(stream, settings))
        torch.randn((1, 4, TINY_SIZE // 8, TINY_SIZE // 8), generator=stream)
    assert [e["T"] for e in published["trace"]] == expected


def test_published_defaults_are_untouched_by_the_new_inputs(host):
    plain = iei(host, ssim_low=1.0, ssim_high=1.0)
    explicit = iei(host, ssim_low=1.0, ssim_high=1.0, rule="confidence (published)", rng=False, batch=1,
                   valence=2.0, arousal=2.0, sigma=1.0, va_tolerance=1.0)
    assert plain[0] == explicit[0] and np.array_equal(plain[2], explicit[2])
    assert all("va_distance" not in e for e in plain[0]["trace"])


def test_va_rule_stops_when_the_expected_va_enters_the_tolerance(host):
    target = dict(rule="valence-arousal", valence=AWE[0], arousal=AWE[1], sigma=0.5)
    probe, _, _ = iei(host, ssim_low=1.0, ssim_high=1.0, va_tolerance=0.0, **target)
    gaps = [e["va_distance"] for e in probe["trace"]]
    for entry in probe["trace"]:  # the trace's expected V-A is the critic distribution's
        assert entry["expected_va"] == pytest.approx(expected_va(np.array(entry["distribution"])).tolist(), abs=1e-6)
    k = min(range(1, len(gaps)), key=lambda i: gaps[i])  # the closest attempt after the first
    first_within = next(i for i, g in enumerate(gaps) if g <= gaps[k])
    run, attempts, chosen = iei(host, ssim_low=1.0, ssim_high=1.0, va_tolerance=gaps[k], **target)
    assert run["status"] == "va_reached" and run["attempts"] == first_within + 1
    assert run["chosen_attempt"] == first_within and run["choice"] == "closest_expected_va"
    assert run["target_name"] == "awe" and np.array_equal(chosen, attempts[first_within])
    assert [e["accepted"] for e in run["trace"]] == [i == first_within for i in range(first_within + 1)]
