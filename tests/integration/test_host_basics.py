"""The plugin loads into a real ComfyUI host, and the tiny SDXL graph renders deterministically."""

import copy
import io

import numpy as np
from conftest import load_workflow
from PIL import Image
from tiny_graph import for_tiny_models


def render(host, prompt) -> np.ndarray:
    entry = host.run(prompt)
    (file,) = host.output_files(entry)
    return np.asarray(Image.open(io.BytesIO(host.fetch(file))))


def test_plugin_nodes_listed(host, object_info):
    ours = sorted(k for k in object_info if k.startswith("EmoNodes_"))
    assert "EmoNodes_ValenceArousal" in ours
    log = host.log_tail(1_000_000)
    assert "custom_nodes/emo-nodes module" not in log and "emo_tiny_models module" not in log, log
    info = host.get("/object_info/EmoNodes_ValenceArousal")["EmoNodes_ValenceArousal"]
    assert info["category"] == "emo-nodes"


def test_tiny_sdxl_is_deterministic(host):
    api = for_tiny_models(load_workflow("sdxl_text_to_image")[0])
    first = render(host, api)
    again = copy.deepcopy(api)
    again["7"]["inputs"]["filename_prefix"] = "emo-nodes/again"  # a changed input defeats the cache
    second = render(host, again)
    other = copy.deepcopy(api)
    other["5"]["inputs"]["seed"] = 1
    third = render(host, other)
    assert first.shape == (64, 64, 3)
    assert np.array_equal(first, second), "same seed must give identical pixels"
    assert np.abs(first.astype(int) - third.astype(int)).max() > 0, "a different seed must change the image"


def test_bad_value_rejected_and_host_keeps_serving(host):
    api = for_tiny_models(load_workflow("sdxl_text_to_image")[0])
    bad = copy.deepcopy(api)
    bad["5"]["inputs"]["steps"] = -3
    status, body = host.queue(bad)
    assert status == 400 and body["error"]["type"] == "prompt_outputs_failed_validation"
    assert host.get("/system_stats")["system"]["comfyui_version"]


def test_our_errors_show_a_short_type_not_the_install_path(host):
    """The host reports ``<class module>.<name>``; for a custom node the module is named by its install path, which
    users should not see and API clients should not learn. emo_core's errors report as ``emo_nodes.<Name>``."""
    (host.base / "input" / "emo_bad_columns.csv").write_text("Id,Nothing\n1,2\n")
    graph = {"2": {"class_type": "EmoNodes_EmotionPairs", "inputs": {"csv": "emo_bad_columns.csv", "on_error": "stop"}},
             "9": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}}}
    error = host.run_error(graph)
    assert error["exception_type"] == "emo_nodes.DatasetError", error
    assert "custom_nodes" not in error["exception_type"] + error["exception_message"], error
