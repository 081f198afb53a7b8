"""Bad inputs on the real host: every numeric and combo input of every EmoNodes_* node, generated from /object_info,
must be refused at queue time (HTTP 400) naming the input, once; linked values are checked when the node runs; and
the host keeps serving after each batch.

Each case posts a small graph whose only output depends on the node under test (the upstream part of an example
workflow on the tiny models, then PreviewAny), so a refused prompt costs milliseconds and an accepted one would run.
"""

import copy
import json
import math
import random

import numpy as np
import pytest
import torch
from conftest import load_workflow
from PIL import Image
from tiny_graph import TINY_FILES, for_tiny_models

PREFIX = "EmoNodes_"
# The base graphs of nodes with linked inputs (the first workflow holding a node gives its base).
WORKFLOWS = ["emoticrafter_text_to_image", "emoticrafter_grid_5x5", "emoeditor_single_edit", "emoeditor_iei_loop",
             "emoticrafter_train_eit", "emoeditor_train", "emoticrafter_closed_loop", "emoticrafter_metrics_5x5",
             "emoeditor_regional"]
UNKNOWN = "__no_such_option__"
# Combos checked when the node runs (before any work), not at queue time: the host checks no V3 combo, and repeats a
# validate_inputs error on every input the function names, which these nodes keep for their model-file combos
# (tests/unit/test_validate_inputs_signatures.py: at most 3). An unknown option must still fail naming the input.
RUN_TIME_COMBOS = {("EmoNodes_VACriticLoader", "resize")}


# --- graphs ------------------------------------------------------------------------------------------------------

def upstream(api: dict, node_id: str) -> dict:
    """node_id and everything it depends on."""
    keep, todo = {}, [node_id]
    while todo:
        nid = todo.pop()
        if nid in keep:
            continue
        keep[nid] = copy.deepcopy(api[nid])
        todo += [v[0] for v in api[nid]["inputs"].values() if isinstance(v, list)]
    return keep


def with_preview(graph: dict, node_id: str, slot: int = 0) -> dict:
    graph = copy.deepcopy(graph)
    graph["900"] = {"class_type": "PreviewAny", "inputs": {"source": [node_id, slot]}}
    return graph


def defaults(info: dict) -> dict:
    values = {}
    for name, spec in info["input"].get("required", {}).items():
        kind, options = spec[0], spec[1] if len(spec) > 1 else {}
        if kind == "COMBO":
            values[name] = TINY_FILES.get(name, options.get("default", options["options"][0]))
        elif "default" in options:
            values[name] = options["default"]
    return values


def with_score_edit(api: dict) -> dict:
    """The single-edit workflow scoring its edit with Score Edit (ESMI), the one node no example workflow holds."""
    api = copy.deepcopy(api)
    api["50"] = {"class_type": "EmoNodes_ScoreEdit",
                 "inputs": {"predictor": ["2", 3], "source": ["1", 0], "edit": ["5", 0], "target": "awe"}}
    return api


def base_graphs(object_info: dict) -> dict[str, tuple[dict, str]]:
    """{class_type: (graph, node_id)}: a valid graph per EmoNodes_* node whose only output depends on it."""
    bases = {}
    for name in WORKFLOWS:
        api = for_tiny_models(load_workflow(name)[0])
        if name == "emoeditor_single_edit":
            api = with_score_edit(api)
        for nid, node in api.items():
            if node["class_type"].startswith(PREFIX) and node["class_type"] not in bases:
                bases[node["class_type"]] = (with_preview(upstream(api, nid), nid), nid)
    for class_type, info in object_info.items():
        if class_type.startswith(PREFIX) and class_type not in bases:
            linked = set(info["input"].get("required", {})) - set(defaults(info))
            assert not linked, f"{class_type} needs links ({sorted(linked)}): add a workflow holding it to WORKFLOWS"
            bases[class_type] = (with_preview({"1": {"class_type": class_type, "inputs": defaults(info)}}, "1"),
                                 "1")
    return bases


def cheap_graph(valence: float | None = None) -> dict:
    """A valid prompt that runs in milliseconds (a new valence each time defeats the output cache)."""
    valence = round(random.uniform(-3, 3), 4) if valence is None else valence
    return {"1": {"class_type": "EmoNodes_ValenceArousal",
                  "inputs": {"valence": valence, "arousal": 0.0, "extrapolate": False}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


# --- generated cases ---------------------------------------------------------------------------------------------

def bad_values(kind: str, options: dict) -> list[tuple[str, object]]:
    """(label, value) pairs that break a numeric or boolean input's schema."""
    cases = []
    if kind in ("INT", "FLOAT"):
        if "min" in options:
            cases.append(("below_min", options["min"] - 1))
        if "max" in options:
            cases.append(("above_max", options["max"] + 1))
        cases += [("nan", math.nan), ("+inf", math.inf), ("-inf", -math.inf)]
        step = options.get("step", 1)
        if kind == "INT" and step > 1:
            cases.append(("off_step", options.get("min", 0) + step // 2))
        if kind == "INT":
            cases.append(("fraction", options.get("min", 0) + 0.5))
    elif kind == "BOOLEAN":
        cases.append(("not_a_boolean", "maybe"))
    elif kind == "COMBO":
        cases.append(("unknown_option", UNKNOWN))
    return cases


def generated_cases(object_info: dict) -> list[tuple[str, str, str, object]]:
    cases = []
    for class_type in sorted(object_info):
        if not class_type.startswith(PREFIX):
            continue
        for group in ("required", "optional"):
            for name, spec in object_info[class_type]["input"].get(group, {}).items():
                for label, value in bad_values(spec[0], spec[1] if len(spec) > 1 else {}):
                    cases.append((class_type, name, label, value))
    return cases


def refusal(host, graph: dict, node_id: str) -> list[str]:
    status, body = host.queue(graph)
    assert status == 400, f"not refused ({status}): {json.dumps(body)[:600]}"
    errors = body["node_errors"]
    assert set(errors) == {node_id}, f"unexpected nodes with errors: {json.dumps(errors)[:1500]}"
    return [f"{e['message']}: {e['details']}" for e in errors[node_id]["errors"]]


def test_every_schema_limit_and_option_is_enforced_at_queue_time(host, object_info):
    """At least 200 generated cases: below min, above max, NaN, +inf, -inf, off-step and fractional INTs, strings
    for BOOLEANs, unknown combo options; each refused naming the input (numbers: also the value, once)."""
    bases = base_graphs(object_info)
    ours = {c for c in object_info if c.startswith(PREFIX)}
    assert set(bases) == ours, ours - set(bases)
    cases = generated_cases(object_info)
    assert len(cases) >= 200, len(cases)
    print(f"\n{len(cases)} generated bad-input cases over {len(bases)} nodes")
    current = None
    for class_type, name, label, value in cases:
        graph, nid = bases[class_type]
        graph = copy.deepcopy(graph)
        graph[nid]["inputs"][name] = value
        if (class_type, name) in RUN_TIME_COMBOS:
            error = host.run_error(graph)
            assert error["node_id"] == nid and f"{name}: '{value}'" in error["exception_message"], error
            continue
        messages = refusal(host, graph, nid)
        where = f"{class_type}.{name} {label}={value!r}: {messages}"
        assert messages and all(name in m for m in messages), where
        if label != "unknown_option":
            assert len(messages) == 1, f"reported more than once: {where}"
            shown = str(value).lower() if label != "not_a_boolean" else "maybe"
            assert shown in messages[0].lower(), where
        if label in ("below_min", "above_max"):
            spec = object_info[class_type]["input"].get("required", {}).get(name) or \
                object_info[class_type]["input"]["optional"][name]
            assert str(spec[1]["min"]) in messages[0] and str(spec[1]["max"]) in messages[0], where
        if label in ("nan", "+inf", "-inf"):
            assert "finite" in messages[0], where
        if class_type != current:  # after each node's batch the host still runs a valid prompt
            current = class_type
            host.run(cheap_graph())
    host.run(cheap_graph())


def test_combo_errors_name_the_input_and_the_options(host, object_info):
    bases = base_graphs(object_info)
    graph, nid = bases["EmoNodes_EmotionInjection"]
    graph = copy.deepcopy(graph)
    graph[nid]["inputs"]["long_prompt"] = "middle"
    (message,) = refusal(host, graph, nid)
    assert "long_prompt: 'middle' is not one of per_chunk, truncate" in message


# --- the cases from the issue ------------------------------------------------------------------------------------

@pytest.mark.parametrize("class_type,name,value", [
    ("EmoNodes_EmotionGrid", "columns", 100),
    ("EmoNodes_EmotionGrid", "rows", 100),
    ("EmoNodes_EmotionPath", "steps", 1000),
    ("EmoNodes_EmotionInjection", "strength", 1e6),
    ("EmoNodes_TrainEIT", "epochs", 0),
    ("EmoNodes_TrainEIT", "lr", 5.0),
    ("EmoNodes_EmotionEdit", "steps", 500),
    ("EmoNodes_IEILoop", "steps", 500),
    ("EmoNodes_IEILoop", "confidence", math.nan),
    ("EmoNodes_EmotionInjection", "strength", math.nan),
    ("EmoNodes_ValenceArousal", "valence", 1e308),
    ("EmoNodes_EmotionEdit", "resolution", 100),
    ("EmoNodes_IEILoop", "resolution", 225),
])
def test_reported_cases_are_refused_once_naming_input_value_and_range(host, object_info, class_type, name, value):
    graph, nid = base_graphs(object_info)[class_type]
    graph = copy.deepcopy(graph)
    graph[nid]["inputs"][name] = value
    if name == "valence":
        graph[nid]["inputs"]["extrapolate"] = True
    (message,) = refusal(host, graph, nid)
    assert message.split(": ", 1)[1].startswith(f"{name}, "), message  # the host's "<input>, <value>, <why>"
    assert f"{name}: {value}" in message, message


def test_va_outside_the_trained_range_names_extrapolate_once(host, object_info):
    graph, nid = base_graphs(object_info)["EmoNodes_EmotionGrid"]
    graph = copy.deepcopy(graph)
    graph[nid]["inputs"].update(valence_to=4.5, arousal_from=-3.5)
    messages = refusal(host, graph, nid)
    assert len(messages) == 2, messages
    assert any(m.startswith("Failed") and "valence_to: 4.5 is outside the trained range" in m for m in messages)
    assert any("arousal_from: -3.5 is outside the trained range" in m and "extrapolate" in m for m in messages)


@pytest.mark.parametrize("text,accepted", [("false", False), ("FALSE", False), ("true", True), (" True ", True)])
def test_boolean_strings_mean_what_they_say(host, text, accepted):
    graph = cheap_graph(3.5)
    graph["1"]["inputs"]["extrapolate"] = text
    if accepted:
        host.run(graph)
    else:
        (message,) = refusal(host, graph, "1")
        assert "valence: 3.5 is outside the trained range" in message


def test_edit_setting_rules_are_reported_once_on_their_input(host, object_info):
    graph, nid = base_graphs(object_info)["EmoNodes_IEILoop"]
    graph = copy.deepcopy(graph)
    graph[nid]["inputs"].update(t_min=900, t_max=800, ssim_low=0.9, ssim_high=0.2)
    messages = refusal(host, graph, nid)
    assert len(messages) == 2, messages
    assert any("t_min: 900 is above t_max (800)" in m for m in messages)
    assert any("ssim_low: 0.9 is above ssim_high (0.2)" in m for m in messages)
    graph[nid]["inputs"].update(t_min=20, t_max=800, steps=30, ssim_low=0.5, ssim_high=0.8)
    (message,) = refusal(host, graph, nid)
    assert message.split(": ", 1)[1].startswith("steps, 30, steps: 30 is more than t_min (20)"), message


@pytest.mark.parametrize("trainer", ["EmoNodes_TrainEIT", "EmoNodes_TrainEmoEditor"])
@pytest.mark.parametrize("name", ["..", ".hidden", "a/b", "a\x00b", "x" * 300, "  ", "trailing "])
def test_bad_trainer_names_are_refused_once(host, object_info, trainer, name):
    graph, nid = base_graphs(object_info)[trainer]
    graph = copy.deepcopy(graph)
    graph[nid]["inputs"]["name"] = name
    (message,) = refusal(host, graph, nid)
    assert message.split(": ", 1)[1].startswith("name, "), message  # the host's "<input>, <value>, <why>"
    assert "name: " in message, message


# --- linked values: checked when the node runs -------------------------------------------------------------------

def primitive(kind: str, value) -> dict:
    return {"class_type": f"Primitive{kind}", "inputs": {"value": value}}


def test_linked_valence_arousal_from_stock_nodes_runs(host):
    graph = cheap_graph()
    graph["10"] = primitive("Float", 1.25)
    graph["11"] = primitive("Float", -0.5)
    graph["12"] = primitive("Boolean", True)
    graph["1"]["inputs"].update(valence=["10", 0], arousal=["11", 0], extrapolate=["12", 0])
    entry = host.run(graph)
    (text,) = entry["outputs"]["2"]["text"]
    assert "1.25" in text and "-0.5" in text
    grid = {"1": {"class_type": "EmoNodes_EmotionGrid",
                  "inputs": {"valence_from": ["10", 0], "valence_to": 2.0, "columns": ["13", 0],
                             "arousal_from": ["11", 0], "arousal_to": 1.0, "rows": 2, "extrapolate": False}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
            "10": primitive("Float", -1.0), "11": primitive("Float", 0.5), "13": primitive("Int", 3)}
    assert host.run(grid)["outputs"]["2"]["text"] == ["6"]


@pytest.mark.parametrize("value,extrapolate,expected", [
    (math.nan, False, "valence: nan must be a finite number"),
    (4.0, False, "valence: 4 is outside the trained range"),
    (1e18, True, "valence: 1e+18 is beyond ±10, even with 'extrapolate'"),
])
def test_bad_linked_valence_fails_at_run_time_naming_it(host, value, extrapolate, expected):
    graph = cheap_graph()
    graph["10"] = primitive("Float", value)
    graph["1"]["inputs"].update(valence=["10", 0], extrapolate=extrapolate)
    message = host.run_error(graph)
    assert message["node_id"] == "1" and expected in message["exception_message"], message
    host.run(cheap_graph())


def test_linked_values_beyond_the_schema_fail_at_run_time(host, object_info):
    bases = base_graphs(object_info)
    graph, nid = bases["EmoNodes_EmotionInjection"]
    graph = copy.deepcopy(graph)
    graph["10"] = primitive("Float", math.nan)
    graph[nid]["inputs"]["strength"] = ["10", 0]
    message = host.run_error(graph)
    assert message["node_id"] == nid and "strength: nan is not a finite number" in message["exception_message"]
    grid = {"1": {"class_type": "EmoNodes_EmotionGrid",
                  "inputs": {**defaults(object_info["EmoNodes_EmotionGrid"]), "columns": ["13", 0]}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}, "13": primitive("Int", 100)}
    message = host.run_error(grid)
    assert "columns: 100 is outside the allowed range 1 to 16" in message["exception_message"], message


# --- non-finite weights, odd images ------------------------------------------------------------------------------

def test_eit_with_nan_weights_is_refused_naming_the_file(host, object_info):
    folder = host.base / "models" / "emoticrafter"
    state = torch.load(folder / TINY_FILES["eit_name"], weights_only=True)
    tensors = state.get("state_dict", state) if isinstance(state, dict) else state
    key = next(k for k in tensors if k.endswith("xl_feature2gpt_feature.weight"))  # used by every forward pass
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = math.nan
    path = folder / "emo_test_nan_eit.pth"
    torch.save(state, path)
    try:
        graph, nid = base_graphs(object_info)["EmoNodes_EmotionInjection"]
        graph = copy.deepcopy(graph)
        loader = graph[nid]["inputs"]["eit"][0]
        graph[loader]["inputs"]["eit_name"] = path.name
        message = host.run_error(graph)
        assert message["node_id"] == loader, message
        assert path.name in message["exception_message"] and "NaN" in message["exception_message"], message
    finally:
        path.unlink()


def write_image(host, name: str, array: np.ndarray) -> str:
    Image.fromarray(array).save(host.base / "input" / name)
    return name


def iei_graph(object_info, image: str, **settings) -> tuple[dict, str]:
    graph, nid = base_graphs(object_info)["EmoNodes_IEILoop"]
    graph = copy.deepcopy(graph)
    load = graph[nid]["inputs"]["source"][0]
    graph[load]["inputs"]["image"] = image
    graph[nid]["inputs"].update(max_attempts=1, **settings)
    graph["900"]["inputs"]["source"] = [nid, 2]  # the trace
    return graph, nid


def test_sliver_image_with_keep_aspect_is_refused_before_editing(host, object_info):
    name = write_image(host, "emo_test_sliver.png", np.full((1, 2048, 3), 128, np.uint8))
    graph, nid = iei_graph(object_info, name, resize="keep aspect (extension)", resolution=224)
    message = host.run_error(graph)
    assert message["node_id"] == nid, message
    text = message["exception_message"]
    assert "2048x1" in text and "at least 51 pixels" in text and "squash" in text, text


def test_rgba_source_is_edited_as_rgb(host, object_info):
    """A 4-channel IMAGE (stock Join Image with Alpha) into the IEI loop and Predict Emotion: alpha dropped."""
    rgba = np.random.default_rng(0).integers(0, 255, (64, 64, 4), dtype=np.uint8)
    graph, nid = iei_graph(object_info, write_image(host, "emo_test_rgba.png", rgba))
    load = graph[nid]["inputs"]["source"][0]
    graph["20"] = {"class_type": "JoinImageWithAlpha", "inputs": {"image": [load, 0], "alpha": [load, 1]}}
    graph[nid]["inputs"]["source"] = ["20", 0]
    graph["21"] = {"class_type": "EmoNodes_PredictEmotion",
                   "inputs": {"predictor": graph[nid]["inputs"]["predictor"], "image": ["20", 0], "resize": "torch"}}
    graph["901"] = {"class_type": "PreviewAny", "inputs": {"source": ["21", 1]}}
    entry = host.run(graph)
    (trace,) = entry["outputs"]["900"]["text"]
    assert json.loads(trace)["runs"][0]["attempts"] == 1
    assert entry["outputs"]["901"]["text"][0] in {"amusement", "anger", "awe", "contentment", "disgust",
                                                  "excitement", "fear", "sadness"}



# --- 64-bit seeds ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("class_type", ["EmoNodes_IEILoop", "EmoNodes_EmotionEdit"])
def test_largest_seed_is_accepted_and_one_more_is_refused(host, object_info, class_type):
    """Seeds are compared as integers: 2**64 - 1 (the schema's max) passes the queue-time check, 2**64 is refused
    naming the seed (a float comparison refused every seed within 1024 of 2**64)."""
    assert object_info[class_type]["input"]["required"]["seed"][1]["max"] == 2**64 - 1
    graph, nid = base_graphs(object_info)[class_type]
    steps = object_info[class_type]["input"]["required"]["steps"][1]
    largest = copy.deepcopy(graph)
    largest[nid]["inputs"]["seed"] = 2**64 - 1
    largest[nid]["inputs"]["steps"] = steps["max"] + 1  # refused for this, so nothing runs
    errors = refusal(host, largest, nid)
    assert not any("seed" in e for e in errors) and any("steps" in e for e in errors), errors
    too_large = copy.deepcopy(graph)
    too_large[nid]["inputs"]["seed"] = 2**64
    errors = refusal(host, too_large, nid)
    assert len(errors) == 1 and "seed" in errors[0] and str(2**64) in errors[0], errors
