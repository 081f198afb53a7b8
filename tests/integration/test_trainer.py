"""The embedded trainer on the real host: CSV → CLIP feature cache → EIT training → rendering with the result."""

import copy
import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from conftest import load_workflow
from safetensors import safe_open
from tiny_graph import TINY_PAIRS, for_tiny_models

from emo_core import load_eit

TRAIN = "emoticrafter_train_eit"


def fresh(host, name: str) -> tuple[Path, Path]:
    """The model and state paths of ``name``, with the files an earlier test session left removed (the host's base
    folder persists, and a name is never overwritten silently)."""
    model = host.base / "models" / "emoticrafter" / f"{name}.safetensors"
    state = host.base / "user" / "emo-nodes" / "train_states" / f"{name}.state.pt"
    for path in (model, state):
        for stale in (path, path.with_name(path.name + ".pending")):
            stale.unlink(missing_ok=True)
    return model, state


def test_workflow_trains_an_eit_and_renders_with_it(host):
    api = for_tiny_models(load_workflow(TRAIN)[0])
    api["4"]["inputs"]["name"] = "test_trained_eit"
    fresh(host, "test_trained_eit")
    entry = host.run(api)
    assert len(host.output_files(entry, "5")) == 1, "loss curve image"
    assert len(host.output_files(entry, "13")) == 1, "image rendered with the freshly trained EIT"
    path = host.base / "models" / "emoticrafter" / "test_trained_eit.safetensors"
    eit = load_eit(path)
    assert eit.config.n_layer == 1 and eit.config.n_embd == 64
    # the trained file is immediately usable by the loader node too
    render = copy.deepcopy(for_tiny_models(load_workflow("emoticrafter_text_to_image")[0]))
    render["3"]["inputs"]["eit_name"] = path.name
    host.run(render)


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_malformed_rows_are_reported_with_line_numbers(host, policy):
    good = (host.base / "input" / TINY_PAIRS).read_text().splitlines()
    bad = good[:3] + ["99,not-a-number,0.5,Scene,tiny,a park,a joyful park", "100,0.5,7.5,Scene,tiny,a park,x"]
    (host.base / "input" / "emo_bad_pairs.csv").write_text("\n".join(bad + good[3:]) + "\n")
    api = for_tiny_models(load_workflow(TRAIN)[0])
    api["2"]["inputs"].update(csv="emo_bad_pairs.csv", on_error=policy)
    api["4"]["inputs"]["name"] = f"test_bad_{policy}"
    fresh(host, f"test_bad_{policy}")
    if policy == "stop":
        message = host.run_error(api)["exception_message"]
        assert "line 4" in message and "line 5" in message, message
    else:
        host.run(api)
        with safe_open(host.base / "models" / "emoticrafter" / "test_bad_skip.safetensors", "pt") as f:
            metadata = f.metadata()
        assert metadata["alpha"] == "1.5" and metadata["density"] == "published", metadata


def test_resume_without_state_is_a_clear_error(host):
    api = for_tiny_models(load_workflow(TRAIN)[0])
    api["4"]["inputs"].update(name="never_trained", resume=True)
    fresh(host, "never_trained")
    message = host.run_error(api)["exception_message"]
    assert "nothing to resume" in message and "never_trained" in message


def test_cancel_writes_a_resumable_state_and_resume_finishes(host):
    api = for_tiny_models(load_workflow(TRAIN)[0])
    api["4"]["inputs"].update(name="test_cancelled", epochs=100000)
    _, state = fresh(host, "test_cancelled")
    status, body = host.queue(api)
    assert status == 200, body
    deadline = time.monotonic() + 240
    while not state.is_file():  # the first epoch's resume state
        assert time.monotonic() < deadline, host.log_tail()
        time.sleep(0.2)
    host.request("/interrupt", {})
    entry = host.wait(body["prompt_id"], timeout=120)
    kinds = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds, kinds
    assert host.get("/system_stats")["system"]["comfyui_version"]
    api["4"]["inputs"].update(epochs=1, resume=True)  # already past epoch 1: finishes at once from the state
    host.run(api)
    assert (host.base / "models" / "emoticrafter" / "test_cancelled.safetensors").is_file()


def training_only(**inputs) -> dict:
    """The training half of the workflow (checkpoint, pairs, encode, train, loss curve), on the tiny models."""
    api = for_tiny_models(load_workflow(TRAIN)[0])
    api = {nid: node for nid, node in api.items() if nid in ("1", "2", "3", "4", "5")}
    api["4"]["inputs"].update({"overwrite": False, **inputs})  # explicit: whatever the tiny settings say
    return api


def hashes(*paths: Path) -> dict:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else [])
             if f.is_file()]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def cache_folders(host, csv_text: str) -> list[Path]:
    """The caches of this CSV, most recently used last (a run marks the cache it used)."""
    key = hashlib.sha256(csv_text.encode()).hexdigest()[:16]
    folders = (host.base / "user" / "emo-nodes" / "feature_cache").glob(f"*-{key}")
    return sorted(folders, key=lambda p: (p / "manifest.json").stat().st_mtime)


def test_a_used_name_is_refused_and_overwrite_keeps_the_earlier_model_until_it_completes(host):
    model, state = fresh(host, "test_keep")
    host.run(training_only(name="test_keep"))
    cache = cache_folders(host, (host.base / "input" / TINY_PAIRS).read_text())[-1:]  # the one this run used
    assert cache
    before = hashes(model, state, cache[0])
    assert len(before) >= 4

    message = host.run_error(training_only(name="test_keep", seed=1))["exception_message"]  # seed: not a cached run
    assert str(model) in message and "another name" in message and "overwrite" in message, message
    assert hashes(model, state, cache[0]) == before

    pending_state = state.with_name(state.name + ".pending")
    status, body = host.queue(training_only(name="test_keep", overwrite=True, epochs=100000, seed=5))
    assert status == 200, body
    deadline = time.monotonic() + 240
    while not pending_state.is_file():  # the overwriting run's first epoch, written beside the old files
        assert time.monotonic() < deadline, host.log_tail()
        time.sleep(0.2)
    host.request("/interrupt", {})
    entry = host.wait(body["prompt_id"], timeout=120)
    assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]]
    assert hashes(model, state, cache[0]) == before, "a cancelled overwrite must leave the earlier files as they were"
    assert load_eit(model).config.n_embd == 64

    entry = host.run(training_only(name="test_keep", overwrite=True, seed=5))
    assert entry["status"]["status_str"] == "success"
    assert hashes(model)[str(model)] != before[str(model)]
    assert not pending_state.exists() and not model.with_name(model.name + ".pending").exists()
    assert hashes(cache[0]) == {k: v for k, v in before.items() if k.startswith(str(cache[0]))}


def pairs_error(host, csv: str) -> str:
    """The message for a pairs CSV the node must refuse: at queue time (HTTP 400) or when it runs."""
    graph = {"2": {"class_type": "EmoNodes_EmotionPairs", "inputs": {"csv": csv, "on_error": "stop"}},
             "9": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}}}
    status, body = host.queue(graph)
    if status == 400:
        return json.dumps(body)
    assert status == 200, body
    entry = host.wait(body["prompt_id"])
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert errors, entry["status"]
    return errors[0]["exception_message"]


def test_pairs_csv_outside_the_input_folder_is_refused_without_reading_it(host, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    link = host.base / "input" / "emo_link_out.csv"
    link.unlink(missing_ok=True)
    link.symlink_to(secret)
    depth = len(host.base.joinpath("input").resolve().parts)
    for csv in ("/etc/passwd", "../" * depth + "etc/passwd", str(secret), "emo_link_out.csv",
                str(host.base / "input" / ".." / "models" / "x.csv")):
        message = pairs_error(host, csv)
        assert "outside the folders" in message and "root:x" not in message and "bash" not in message, message
    inside = host.base / "input" / "emo_not_pairs.csv"  # allowed folder, but not a pairs CSV: nothing quoted
    inside.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    message = pairs_error(host, "emo_not_pairs.csv")
    assert "header lacks" in message and "root:x" not in message and "bash" not in message, message
    message = pairs_error(host, str(host.base / "input" / "emo_no_such_file.csv"))
    assert "not found" in message, message


def test_the_feature_cache_key_survives_reloading_the_checkpoint(host):
    text = (host.base / "input" / TINY_PAIRS).read_text().replace("tiny,", "tiny-fingerprint,")
    (host.base / "input" / "emo_fp_pairs.csv").write_text(text)
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "emo_tiny_sdxl.safetensors"}},
             "2": {"class_type": "EmoNodes_EmotionPairs", "inputs": {"csv": "emo_fp_pairs.csv", "on_error": "skip"}},
             "3": {"class_type": "EmoNodes_EncodePairs", "inputs": {"pairs": ["2", 0], "clip": ["1", 1]}},
             "9": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}}
    for folder in cache_folders(host, text):  # an earlier session's caches of this CSV
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    host.run(graph)
    (first,) = cache_folders(host, text)
    manifest = (first / "manifest.json").read_bytes()
    for _ in range(2):  # a fresh load of the same checkpoint file: same key, the cache is reused as it is
        status, _ = host.request("/free", {"unload_models": True, "free_memory": True})
        assert status == 200
        time.sleep(1.5)  # the worker applies /free between prompts
        entry = host.run(graph)
        cached = [m[1]["nodes"] for m in entry["status"]["messages"] if m[0] == "execution_cached"]
        assert cached and "1" not in cached[0], "the checkpoint was not loaded again"
        assert cache_folders(host, text) == [first] and (first / "manifest.json").read_bytes() == manifest
    graph["5"] = {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["1", 1], "stop_at_clip_layer": -1}}
    graph["3"]["inputs"]["clip"] = ["5", 0]  # another encoder output: another key
    host.run(graph)
    assert len(cache_folders(host, text)) == 2
    assert os.path.isdir(first)


def test_a_fifo_as_the_pairs_csv_is_refused_without_blocking(host):
    fifo = host.base / "input" / "emo_fifo_pairs.csv"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    try:
        started = time.monotonic()
        message = pairs_error(host, "emo_fifo_pairs.csv")  # a reader that opened it would block the host
        assert "not a regular file" in message and "emo_fifo_pairs.csv" in message, message
        assert time.monotonic() - started < 60
        assert host.get("/system_stats")["system"]["comfyui_version"]  # the execution thread is free
    finally:
        fifo.unlink(missing_ok=True)


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200b", "\x85"])
def test_a_name_with_bidi_or_format_characters_is_refused_at_queue_time(host, char):
    folders = (host.base / "models" / "emoticrafter", host.base / "user" / "emo-nodes" / "train_states")
    before = hashes(*folders)
    api = training_only(name=f"x{char}gnp.safetensors")
    details = host.rejection(api, "4")
    assert details.startswith("name") and f"U+{ord(char):04X}" in details, details
    assert hashes(*folders) == before
