"""Every example workflow ships as a UI file (for the frontend) and its API twin (for the HTTP API).

The UI file's ``widgets_values`` must hold a slot for every widget the frontend adds (control after generate
after seeds, the upload button of LoadImage), or every later value loads shifted; the browser test
(tests/browser/test_workflows_ui.py) checks the same in the real frontend.
"""

import json

import pytest
from conftest import load_workflow
from paths import ROOT
from tiny_graph import for_tiny_models
from workflow_format import (
    CONTROL_VALUES,
    TEMPLATES,
    api_to_ui,
    check_flow,
    load_templates,
    ui_to_api,
    widget_slots,
)

NAMES = sorted(p.stem for p in (ROOT / "workflows" / "api").glob("*.json"))
PUBLISHED_SEEDS = {75863, 42}


def strip(api: dict) -> dict:
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}


def test_every_api_workflow_has_a_ui_twin():
    assert NAMES, "no example workflows"
    ui_names = sorted(p.stem for p in (ROOT / "workflows").glob("*.json"))
    assert ui_names == NAMES


def test_every_workflow_has_a_title_description_and_thumbnail():
    templates = load_templates()
    assert sorted(t["name"] for t in templates) == NAMES, f"{TEMPLATES.name} and workflows/api disagree"
    for t in templates:
        assert t["title"].strip() and t["description"].strip() and len(t["description"]) <= 120, t["name"]
        thumb = ROOT / "workflows" / f"{t['name']}.jpg"
        assert thumb.is_file(), f"no thumbnail {thumb.name} (tools/render_thumbnails.py)"
        assert thumb.read_bytes()[:3] == b"\xff\xd8\xff" and thumb.stat().st_size < 100_000, thumb.name


@pytest.mark.parametrize("name", NAMES)
def test_ui_converts_to_its_api_twin(name, object_info):
    api, ui = load_workflow(name)
    assert strip(ui_to_api(ui, object_info)) == strip(api)


@pytest.mark.parametrize("name", NAMES)
def test_ui_is_what_the_generator_writes(name, object_info):
    """The shipped UI file is the converter's output for its API twin (regenerate with tools/workflow_format.py)."""
    api, ui = load_workflow(name)
    template = next(t for t in load_templates() if t["name"] == name)
    note_path = ROOT / "workflows" / "notes" / f"{name}.md"
    notes = note_path.read_text().split("\n---\n") if note_path.is_file() else []
    fresh = api_to_ui(api, object_info, notes, template["groups"], extra=ui["extra"])
    assert json.loads(json.dumps(fresh)) == ui


@pytest.mark.parametrize("name", NAMES)
def test_every_frontend_widget_has_its_slot(name, object_info):
    """widgets_values has exactly one slot per frontend widget; control-after-generate slots hold a control value,
    "fixed" in the shipped files (published seeds must not change after the first run)."""
    api, ui = load_workflow(name)
    for node in ui["nodes"]:
        if node["type"] == "MarkdownNote":
            continue
        slots = widget_slots(object_info[node["type"]])
        values = node["widgets_values"]
        assert len(values) == len(slots), (name, node["id"], slots, values)
        for (input_name, kind), value in zip(slots, values, strict=True):
            if kind == "control":
                assert value == "fixed", (name, node["id"], input_name, value)
            elif kind == "value":
                expected = api[str(node["id"])]["inputs"].get(input_name)
                if not isinstance(expected, list) and expected is not None:
                    assert value == expected, (name, node["id"], input_name, value, expected)
        for input_name, value in api[str(node["id"])]["inputs"].items():
            if input_name.endswith("seed") and value in PUBLISHED_SEEDS and (input_name, "control") in slots:
                assert values[slots.index((input_name, "control"))] == "fixed"


def test_frontend_widget_rules(object_info):
    """The slots the frontend (1.32.9) adds: a control after every INT named seed or flagged for it (only there),
    the upload button of LoadImage after its required inputs."""
    ksampler = widget_slots(object_info["KSampler"])
    assert ksampler[:2] == [("seed", "value"), ("seed", "control")]
    train = widget_slots(object_info["EmoNodes_TrainEIT"])  # `seed` without the flag: still one (by its name)
    assert ("seed", "control") in train and ("split_seed", "control") not in train
    assert train.index(("seed", "control")) == train.index(("seed", "value")) + 1
    assert widget_slots(object_info["LoadImage"]) == [("image", "value"), ("upload", "upload")]
    # a round trip keeps every value in place whatever the control value
    api = for_tiny_models(load_workflow("emoticrafter_train_eit")[0])
    for control in CONTROL_VALUES[:4]:
        assert strip(ui_to_api(api_to_ui(api, object_info, control=control), object_info)) == strip(api)
    shifted = api_to_ui(api, object_info)
    node = next(n for n in shifted["nodes"] if n["type"] == "EmoNodes_TrainEIT")
    node["widgets_values"].remove("fixed")  # the old files' bug: no slot for the control widget
    with pytest.raises(ValueError):
        ui_to_api(shifted, object_info)


@pytest.mark.parametrize("name", NAMES)
def test_layout_flows_left_to_right_without_overlaps(name):
    _, ui = load_workflow(name)
    assert not check_flow(ui)
    boxes = [(n["pos"][0], n["pos"][1] - 30, n["size"][0], n["size"][1] + 30) for n in ui["nodes"]]
    for i, (ax, ay, aw, ah) in enumerate(boxes):
        for bx, by, bw, bh in boxes[i + 1:]:
            assert not (ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah), (name, ui["nodes"][i]["id"])
    assert ui["groups"] and all(g["title"] for g in ui["groups"])


@pytest.mark.parametrize("name", NAMES)
def test_api_workflow_validates_on_the_host(name, host):
    """Every API workflow is accepted by the real host's validation (the per-feature tests run them)."""
    api, ui = load_workflow(name)
    entry = host.run(for_tiny_models(api), workflow=ui)
    assert entry["status"]["status_str"] == "success"
