"""Emotion Closed Loop (V-A) on the real host with the tiny SDXL and tiny EIT, scored by the scripted critic of the
test node pack (tests/support/test_nodes: V-A = an affine map of mean brightness and saturation): round 0 is the
stock KSampler image, steering converges and stops at the tolerance, best of K renders one batch and returns the
argmin, the CLIPScore floor, the caps, Cancel, and bad inputs."""

import copy
import io
import json
import os
import subprocess
import time

import numpy as np
import pytest
from comfy_host import COMFY_DIR, PYTHON, TEST_NODES_ENV
from conftest import load_workflow
from paths import SUPPORT
from PIL import Image
from test_emoeditor_outputs import run_watching
from tiny_graph import TINY_STEPS, for_tiny_models

T2I = "emoticrafter_text_to_image"
LOOP, CRITIC, CHOSEN, ROUNDS, TRACE, PLOT = "21", "20", "22", "23", "24", "25"
UNIT_CRITIC = dict(v_brightness=1.0, v_saturation=0.0, a_brightness=0.0, a_saturation=1.0, v_offset=0.0,
                   a_offset=0.0)


def stock() -> dict:
    return for_tiny_models(load_workflow(T2I)[0])


def loop_graph(critic: dict | None = None, **inputs) -> dict:
    """The tiny EmotiCrafter graph's models, neutral prompt, zero negative and latent, feeding the loop node."""
    api = {k: v for k, v in stock().items() if k in ("1", "2", "3", "6", "7")}
    api[CRITIC] = {"class_type": "EmoTest_ScriptedCritic", "inputs": {**UNIT_CRITIC, "clip_scale": 100.0,
                                                                      "has_text": True, **(critic or {})}}
    api[LOOP] = {"class_type": "EmoNodes_VAClosedLoop", "inputs": {
        "model": ["1", 0], "vae": ["1", 2], "positive": ["2", 0], "negative": ["6", 0], "eit": ["3", 0],
        "critic": [CRITIC, 0], "latent_image": ["7", 0], "valence": 2.5, "arousal": 2.0, "extrapolate": False,
        "seed": 42, "steps": TINY_STEPS, "cfg": 7.5, "sampler_name": "euler", "scheduler": "ddim_uniform",
        "denoise": 1.0, "mode": "steer", "k": 4, "gamma": 1.0, "tolerance": 0.25, "rounds": 4, "strength": 1.0,
        "clip_floor": 0.0, "prompt": "", **inputs}}
    api[CHOSEN] = save(LOOP, 0, "chosen")
    api[ROUNDS] = save(LOOP, 1, "rounds")
    api[TRACE] = {"class_type": "PreviewAny", "inputs": {"source": [LOOP, 2]}}
    api[PLOT] = save(LOOP, 3, "plot")
    return api


def save(node: str, slot: int, name: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": [node, slot], "filename_prefix": f"emo-nodes/test/{name}"}}


def pixels(host, entry, node_id: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(host.fetch(f)))).astype(np.int16)
            for f in host.output_files(entry, node_id)]


def run_loop(host, api: dict) -> tuple[dict, dict]:
    entry = host.run(api)
    (text,) = entry["outputs"][TRACE]["text"]
    return entry, json.loads(text)


def stats(image: np.ndarray) -> tuple[float, float]:
    """What the scripted critic reads: mean brightness and mean saturation, of a saved 8-bit image."""
    x = image.astype(np.float64) / 255
    return x.mean(), (x.max(-1) - x.min(-1)).mean()


def test_round_zero_is_the_stock_ksampler_image_and_candidates_their_seeds(host):
    def stock_image(seed: int) -> np.ndarray:
        api = stock()
        api["8"]["inputs"]["seed"] = seed
        api["10"]["inputs"]["filename_prefix"] = f"emo-nodes/test/stock_{seed}"
        (image,) = pixels(host, host.run(api), "10")
        return image

    reference = {seed: stock_image(seed) for seed in (42, 43)}
    entry, trace = run_loop(host, loop_graph(rounds=0, tolerance=0.0))
    (chosen,) = pixels(host, entry, CHOSEN)
    assert trace["attempts"][0]["v_in"] == 2.5 and trace["attempts"][0]["seed"] == 42
    assert np.array_equal(chosen, reference[42]), "round 0 must be the published open-loop image"

    entry, trace = run_loop(host, loop_graph(mode="best_of_k", k=3))
    candidates = pixels(host, entry, ROUNDS)
    assert [a["seed"] for a in trace["attempts"]] == [42, 43, 44] and len(candidates) == 3
    for seed in (42, 43):  # one batch on the CPU: equal to the single renders up to rounding
        assert np.abs(candidates[seed - 42] - reference[seed]).max() <= 1


def test_steer_reduces_the_error_every_round_and_stops_at_the_tolerance(host):
    """Valence read from brightness, calibrated on the tiny models: over input valence 0 to 0.4 (arousal 0.5, seed
    42) the tiny models' mean brightness rises monotonically; the critic maps it with the inverse of that slope and
    reads target + 0.2 at round 0. Its arousal is always the target, so only the valence input moves."""
    region, arousal = [0.0, 0.2, 0.4], 0.5

    def brightness(valence: float) -> float:
        _, trace = run_loop(host, loop_graph(valence=valence, arousal=arousal, rounds=0))
        return trace["attempts"][0]["v_pred"]  # the unit critic's valence: the mean brightness

    curve = [brightness(v) for v in region]
    assert all(b > a for a, b in zip(curve, curve[1:], strict=False)), (
        f"precondition: the tiny models' brightness is no longer monotonic in the input valence over {region} "
        f"({curve}); the tiny models changed, pick another region")
    gain = (region[-1] - region[0]) / (curve[-1] - curve[0])
    target, start_error = 0.2, 0.2
    critic = dict(v_brightness=gain, v_saturation=0.0, a_brightness=0.0, a_saturation=0.0,
                  v_offset=target + start_error - gain * curve[1], a_offset=arousal)
    api = loop_graph(critic, valence=target, arousal=arousal, tolerance=0.02, rounds=6, gamma=1.0)
    entry, trace = run_loop(host, api)

    attempts = trace["attempts"]
    errors = [a["error"] for a in attempts]
    assert errors[0] == pytest.approx(start_error, abs=1e-4)  # round 0 is the open loop, read as calibrated
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False)), errors
    assert trace["status"] == "tolerance_met" and errors[-1] <= 0.02 < errors[-2] and len(attempts) < 7
    assert trace["chosen"] == len(attempts) - 1
    for prev, nxt in zip(attempts, attempts[1:], strict=False):  # the rule, on the same seed
        assert nxt["v_in"] == pytest.approx(prev["v_in"] + (target - prev["v_pred"]), abs=1e-6)
        assert nxt["a_in"] == arousal and nxt["seed"] == 42
    rounds = pixels(host, entry, ROUNDS)
    (chosen,) = pixels(host, entry, CHOSEN)
    assert len(rounds) == len(attempts) and np.array_equal(chosen, rounds[-1])
    assert len({r.tobytes() for r in rounds}) == len(rounds)
    (plot,) = pixels(host, entry, PLOT)
    assert plot.shape[1] > plot.shape[0] > 400


def test_best_of_k_renders_one_batch_and_returns_the_argmin(host):
    critic = dict(v_brightness=60.0, a_saturation=60.0, v_offset=-33.0, a_offset=-48.0)
    # a floor every image meets (CLIPScore = 100 x brightness, about 55): CLIPScores in the trace, argmin unchanged
    api = loop_graph(critic, mode="best_of_k", k=6, seed=7, valence=0.0, arousal=0.0, clip_floor=1.0,
                     prompt="a lighthouse on a rocky coast")
    entry, progress, _ = run_watching(host, api)
    (text,) = entry["outputs"][TRACE]["text"]
    trace = json.loads(text)
    steps = [p for p in progress if p["node"] == LOOP]
    values = [p["value"] for p in steps]  # one pass of the sampler: 1 .. steps once, never restarting
    assert all(p["max"] == TINY_STEPS for p in steps) and values == sorted(values), "K seeds: ONE batch"
    assert sorted(set(values)) == list(range(1, TINY_STEPS + 1)), values
    errors = [a["error"] for a in trace["attempts"]]
    assert trace["chosen"] == int(np.argmin(errors)) and trace["status"] == "candidates_scored"
    assert len(set(errors)) == 6
    candidates = pixels(host, entry, ROUNDS)
    (chosen,) = pixels(host, entry, CHOSEN)
    assert np.array_equal(chosen, candidates[trace["chosen"]])
    for image, attempt in zip(candidates, trace["attempts"], strict=True):  # the critic saw these images
        brightness, saturation = stats(image)
        assert attempt["v_pred"] == pytest.approx(60 * brightness - 33, abs=0.3)
        assert attempt["a_pred"] == pytest.approx(60 * saturation - 48, abs=0.3)
        assert attempt["clip_score"] == pytest.approx(100 * brightness, abs=0.5) and attempt["meets_floor"]

    clips = [a["clip_score"] for a in trace["attempts"]]
    floor_api = copy.deepcopy(api)
    best = trace["chosen"]
    higher = [c for c in clips if c > clips[best]]
    assert higher, "precondition: another candidate must be brighter than the closest one"
    floor_api[LOOP]["inputs"]["clip_floor"] = floor = min(higher)  # excludes the closest candidate
    _, floored = run_loop(host, floor_api)
    eligible = [i for i, c in enumerate(clips) if c >= floor]
    assert best not in eligible and floored["chosen"] == min(eligible, key=errors.__getitem__)
    assert floored["floor_met"] and floored["choice"] == "closest_meeting_clip_floor"
    floor_api[LOOP]["inputs"]["clip_floor"] = min(100.0, max(clips) + 1)
    _, unmet = run_loop(host, floor_api)
    assert unmet["choice"] == "floor_unmet_best_clip_score" and unmet["chosen"] == int(np.argmax(clips))


def test_caps_stall_and_clamp(host):
    stuck = dict(v_brightness=0.0, a_saturation=0.0, v_offset=1.0, a_offset=1.0)  # always predicts (1, 1)
    _, capped = run_loop(host, loop_graph(stuck, valence=0.0, arousal=0.0, rounds=1, tolerance=0.1))
    assert capped["status"] == "max_rounds" and [a["v_in"] for a in capped["attempts"]] == [0.0, -1.0]
    assert capped["chosen"] == 0  # all equally far: the earliest
    low = dict(stuck, v_offset=-1.0, a_offset=-1.0)  # steering pushes the input up, into the clamp at 3
    _, stalled = run_loop(host, loop_graph(low, valence=2.5, arousal=2.5, rounds=5))
    assert stalled["status"] == "stalled" and [a["v_in"] for a in stalled["attempts"]] == [2.5, 3.0]
    _, free = run_loop(host, loop_graph(low, valence=2.5, arousal=2.5, rounds=1, extrapolate=True))
    assert free["status"] == "max_rounds" and [a["v_in"] for a in free["attempts"]] == [2.5, 6.0]


def test_cancel_stops_a_long_loop_and_the_host_keeps_serving(host):
    never = dict(v_brightness=0.0, a_saturation=0.0, v_offset=1.0, a_offset=1.0)
    api = loop_graph(never, valence=0.0, arousal=0.0, rounds=64, gamma=0.05, tolerance=0.0, steps=40, seed=9)
    status, body = host.queue(api)
    assert status == 200, body
    deadline = time.monotonic() + 60
    while not host.get("/queue")["queue_running"]:
        assert time.monotonic() < deadline, "the loop never started"
        time.sleep(0.1)
    time.sleep(2.0)
    host.request("/interrupt", {})
    cancelled_at = time.monotonic()
    entry = host.wait(body["prompt_id"], timeout=60)
    assert time.monotonic() - cancelled_at < 15
    messages = dict(entry["status"]["messages"])
    assert messages["execution_interrupted"]["node_type"] == "EmoNodes_VAClosedLoop"
    assert run_loop(host, loop_graph(rounds=0, seed=10))[1]["attempts"]  # still serving


@pytest.mark.parametrize("change, name", [
    (dict(k=0), "k"), (dict(rounds=65), "rounds"), (dict(valence=4.0), "valence"), (dict(gamma=0.0), "gamma"),
    (dict(mode="random"), "mode"), (dict(tolerance=float("nan")), "tolerance"),
])
def test_bad_literal_inputs_are_refused_at_queue_time(host, change, name):
    details = host.rejection(loop_graph(**change), LOOP)
    assert details.startswith(f"{name}:") or f"{name}:" in details, details


@pytest.mark.parametrize("change, critic, message", [
    (dict(clip_floor=20.0), {}, "prompt: empty, but clip_floor 20"),
    (dict(clip_floor=20.0, prompt="a lighthouse"), dict(has_text=False), "clip_floor: 20 needs CLIPScores"),
])
def test_bad_combinations_fail_when_run_naming_the_input(host, change, critic, message):
    error = host.run_error(loop_graph(critic, **change))
    assert message in error["exception_message"] and error["node_type"] == "EmoNodes_VAClosedLoop"


def test_denoise_zero_renders_nothing_and_is_refused(host):
    """denoise 0 returns the latent untouched: a flat grey image that the critic would score as a success."""
    assert "denoise: 0 renders nothing" in host.rejection(loop_graph(denoise=0.0), LOOP)
    api = loop_graph()
    api["90"] = {"class_type": "PrimitiveFloat", "inputs": {"value": 0.0}}
    api[LOOP]["inputs"]["denoise"] = ["90", 0]  # linked: checked when the node runs
    error = host.run_error(api)
    assert error["exception_message"].startswith("denoise: 0 renders nothing"), error


def test_a_latent_batch_is_refused(host):
    api = loop_graph()
    api["7"]["inputs"]["batch_size"] = 2
    error = host.run_error(api)
    assert "latent_image: holds 2 latents" in error["exception_message"]


@pytest.mark.parametrize("enabled", [False, True])
def test_the_test_node_pack_registers_only_for_test_hosts(enabled):
    """The pack is linked into every dev host (make demo too) but registers its nodes only when ComfyHost was asked
    for them (test_nodes=True sets the variable for the host process)."""
    code = (f"import asyncio, sys; sys.path[:0] = [{str(COMFY_DIR)!r}, {str(SUPPORT)!r}]; import test_nodes; "
            "print([n.define_schema().node_id for n in asyncio.run(asyncio.run(test_nodes.comfy_entrypoint())"
            ".get_node_list())])")
    env = {k: v for k, v in os.environ.items() if k != TEST_NODES_ENV} | ({TEST_NODES_ENV: "1"} if enabled else {})
    run = subprocess.run([str(PYTHON), "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split("\n")[-2] == ("['EmoTest_ScriptedCritic']" if enabled else "[]")
