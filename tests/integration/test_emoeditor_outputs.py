"""EmoEditor on the real host, what a user sees: the IEI trace plot output, step progress (and text) on the
websocket for the edit and for IEI, Predict Emotion's target mark, and Load EmoEditor's per-kind file lists."""

import io
import json
import shutil
import struct
import uuid

import numpy as np
import pytest
import torch
from conftest import load_workflow
from PIL import Image
from tiny_graph import TINY_ATTEMPTS, TINY_STEPS, for_tiny_models

from emo_core.batch.client import WebSocket
from emo_core.emoeditor.kinds import peek_kind
from emo_core.emoeditor.loaders import EDITOR_KIND, ENCODER_KIND, PREDICTOR_KIND

EDIT, IEI = "emoeditor_single_edit", "emoeditor_iei_loop"
TEXT_EVENT = 3  # ComfyUI's binary event type for progress text
SLOTS = {"editor_name": EDITOR_KIND, "encoder_name": ENCODER_KIND, "predictor_name": PREDICTOR_KIND}
TINY = {"emo_tiny_ip2p.pt": EDITOR_KIND, "emo_tiny_emoenc.pt": ENCODER_KIND, "emo_tiny_emoenc_sdxl.pt": ENCODER_KIND,
        "emo_tiny_predictor.pt": PREDICTOR_KIND}


class Frames(WebSocket):
    def receive_frame(self) -> tuple[int, bytes]:
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n >= 126:
            (n,) = struct.unpack(">H" if n == 126 else ">Q", self._read(2 if n == 126 else 8))
        return b0 & 0x0F, self._read(n)


def run_watching(host, prompt: dict) -> tuple[dict, list[dict], list[tuple[str, str]]]:
    """Run ``prompt`` while listening on /ws: (history entry, progress messages, (node, text) progress texts)."""
    client_id = uuid.uuid4().hex
    ws = Frames(host.url.replace("http", "ws", 1) + f"/ws?clientId={client_id}", timeout=120)
    progress, texts = [], []
    try:
        status, body = host.request("/prompt", {"prompt": prompt, "client_id": client_id})
        assert status == 200, body
        while True:
            opcode, payload = ws.receive_frame()
            if opcode == 2 and struct.unpack(">I", payload[:4])[0] == TEXT_EVENT:
                (length,) = struct.unpack(">I", payload[4:8])
                texts.append((payload[8:8 + length].decode(), payload[8 + length:].decode()))
            if opcode != 1:
                continue
            message = json.loads(payload)
            data = message.get("data", {})
            if data.get("prompt_id") != body["prompt_id"]:
                continue
            if message["type"] == "progress":
                progress.append(data)
            if message["type"] in ("execution_error", "execution_interrupted"):
                raise AssertionError(data)
            if message["type"] == "executing" and data.get("node") is None:
                break
    finally:
        ws.close()
    entry = host.wait(body["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry, progress, texts


def picture(host, entry, node_id: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(host.fetch(f)))) for f in host.output_files(entry, node_id)]


def test_iei_plots_its_trace_and_reports_every_step(host):
    api = for_tiny_models(load_workflow(IEI)[0])
    api["3"]["inputs"]["seed"] = 424242  # not cached by another test: the node really runs
    api["20"] = {"class_type": "SaveImage", "inputs": {"images": ["3", 3], "filename_prefix": "emo-nodes/test/plot"}}
    entry, progress, texts = run_watching(host, api)
    (plot,) = picture(host, entry, "20")
    assert plot.shape == (360, 720, 3) and len(np.unique(plot.reshape(-1, 3), axis=0)) > 8
    (text,) = entry["outputs"]["6"]["text"]
    (run,) = json.loads(text)["runs"]  # the JSON trace is still an output

    steps = [p for p in progress if p["node"] == "3"]
    total = TINY_ATTEMPTS * TINY_STEPS
    assert steps and all(p["max"] == total for p in steps), steps
    values = [p["value"] for p in steps]
    assert values == sorted(values) and values[-1] == total
    assert len(set(values)) >= run["attempts"] * TINY_STEPS  # advanced per step of every attempt
    said = [t for node, t in texts if node == "3"]
    for k in range(1, run["attempts"] + 1):
        assert f"attempt {k} of at most {TINY_ATTEMPTS}" in said
    assert any("SSIM" in t and ("accepted" in t or "rejected" in t) for t in said)


def test_single_edit_reports_its_steps(host):
    api = for_tiny_models(load_workflow(EDIT)[0])
    api["5"]["inputs"]["seed"] = 424243
    entry, progress, _ = run_watching(host, api)
    steps = [p for p in progress if p["node"] == "5"]
    assert [p["value"] for p in steps] == list(range(1, TINY_STEPS + 1))
    assert all(p["max"] == TINY_STEPS for p in steps)
    assert host.output_files(entry, "6")


def test_predict_emotion_marks_a_chosen_target(host, object_info):
    inputs = object_info["EmoNodes_PredictEmotion"]["input"]
    assert "target" in inputs["optional"] and "target" not in inputs["required"]
    assert object_info["EmoNodes_PredictEmotion"]["input_order"]["optional"][-1] == "target"
    assert list(object_info["EmoNodes_IEILoop"]["output"]) == ["IMAGE", "IMAGE", "STRING", "IMAGE"]
    api = for_tiny_models(load_workflow(EDIT)[0])
    api = {k: v for k, v in api.items() if k in ("1", "2", "3", "9")}  # source -> predict -> chart
    api["3"]["inputs"].pop("target", None)  # the default: no target marked
    plain = picture(host, host.run(api), "9")[0]
    api["3"]["inputs"]["target"] = "fear"
    marked = picture(host, host.run(api), "9")[0]
    assert plain.shape == marked.shape and not np.array_equal(plain, marked)
    purple = np.all(marked[..., :3] == (148, 40, 160), axis=-1)
    assert purple.any() and not np.all(plain[..., :3] == (148, 40, 160), axis=-1).any()


def slot_lists(host) -> dict[str, list[str]]:
    inputs = host.get("/object_info/EmoNodes_EmoEditorLoader")["EmoNodes_EmoEditorLoader"]["input"]["required"]
    return {slot: inputs[slot][0] if isinstance(inputs[slot][0], list) else inputs[slot][1]["options"]
            for slot in SLOTS}


def test_loader_slots_list_only_files_of_their_kind(host):
    folder = host.base / "models" / "emoeditor"
    lists = slot_lists(host)
    for slot, kind in SLOTS.items():
        assert sorted(n for n in lists[slot] if n in TINY) == sorted(n for n, k in TINY.items() if k == kind), slot
        for name in lists[slot]:  # whatever else lies in the folder: of this kind or not told apart
            assert peek_kind(folder / name) in (kind, None) or "/" in name, (slot, name)


def test_unknown_files_are_listed_everywhere_and_subfolders_name_the_kind(host):
    folder = host.base / "models" / "emoeditor"
    tag = uuid.uuid4().hex[:8]
    unknown, sub = folder / f"emo_test_unknown_{tag}.pt", folder / "encoder"
    made_sub = not sub.exists()
    filed = sub / f"emo_test_filed_{tag}.pt"
    try:
        torch.save({"some.weight": torch.zeros(3)}, unknown)
        sub.mkdir(exist_ok=True)
        torch.save({"some.weight": torch.zeros(3)}, filed)
        lists = slot_lists(host)
        assert all(unknown.name in names for names in lists.values())
        listed = f"encoder/{filed.name}"
        assert listed in lists["encoder_name"]
        assert listed not in lists["editor_name"] and listed not in lists["predictor_name"]
    finally:
        unknown.unlink(missing_ok=True)
        filed.unlink(missing_ok=True)
        if made_sub:
            shutil.rmtree(sub, ignore_errors=True)


@pytest.mark.parametrize("slot", sorted(SLOTS))
def test_a_file_of_another_kind_picked_anyway_still_gets_a_clear_error(host, slot):
    wrong = {"editor_name": "emo_tiny_predictor.pt", "encoder_name": "emo_tiny_ip2p.pt",
             "predictor_name": "emo_tiny_emoenc.pt"}[slot]
    api = for_tiny_models(load_workflow(EDIT)[0])
    api["2"]["inputs"][slot] = wrong
    message = host.run_error(api)
    assert message["node_id"] == "2" and wrong in message["exception_message"]
