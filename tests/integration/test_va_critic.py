"""The V-A critic on the real host: Load V-A Critic (ComfyUI's own CLIP-vision network from a B/32 config, in a
ModelPatcher) and Predict Valence-Arousal equal the formula computed directly with transformers and torchvision, and
the Python API, on PNGs of several sizes and aspect ratios; CLIPScore likewise; the pictures; the file lists; errors.
The tiny critic files are written with the other tiny models (tests/support/tiny_critic.py)."""

import io
import json

import numpy as np
import pytest
import torch
from critic_reference import reference_clip_score, reference_va
from paths import ROOT
from PIL import Image
from tiny_critic import (
    TINY_AROUSAL_NAME,
    TINY_CLIP_NAME,
    TINY_VALENCE_NAME,
    random_head,
    save_clip,
    save_head,
    tiny_clip,
)

import emo_core

SIZES = [(224, 224), (256, 384), (333, 197), (100, 150), (640, 480)]
PROMPT = "people dancing"
TOKENIZER = ROOT / ".host" / "comfyui" / "comfy" / "sd1_tokenizer"


def loader(clip=TINY_CLIP_NAME, valence=TINY_VALENCE_NAME, arousal=TINY_AROUSAL_NAME, resize="pil") -> dict:
    return {"class_type": "EmoNodes_VACriticLoader", "inputs": {
        "clip_name": clip, "valence_head": valence, "arousal_head": arousal, "resize": resize}}


def predict(critic: str, images: list, prompt: str = "", va: list | None = None) -> dict:
    inputs = {"critic": [critic, 0], "images": images, "prompt": prompt}
    if va is not None:
        inputs["va"] = va
    return {"class_type": "EmoNodes_PredictVA", "inputs": inputs}


@pytest.fixture(scope="module")
def pictures(host):
    """PNGs of several sizes in the host's input folder: {name: uint8 array}."""
    generator = np.random.default_rng(5)
    out = {}
    for height, width in SIZES:
        coarse = generator.random((height // 8 + 1, width // 8 + 1, 3))
        u8 = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR))
        name = f"emo_test_va_{height}x{width}.png"
        Image.fromarray(u8).save(host.base / "input" / name)
        out[name] = u8
    return out


@pytest.fixture(scope="module")
def reference(host):
    """The tiny critic's CLIP as a transformers CLIPModel loaded from the host's file, and its heads."""
    from safetensors.torch import load_file

    models = host.base / "models"
    model = tiny_clip(seed=123)  # same layout; the weights come from the file
    model.load_state_dict(load_file(str(models / "clip_vision" / TINY_CLIP_NAME)), strict=True)
    heads = [torch.load(models / "emoticrafter" / name, map_location="cpu", weights_only=True)
             for name in (TINY_VALENCE_NAME, TINY_AROUSAL_NAME)]
    return model, heads


def report_of(entry: dict, node: str) -> dict:
    (text,) = entry["outputs"][node]["text"]
    return json.loads(text)


def test_node_and_api_equal_the_formula(host, pictures, reference):
    model, (valence, arousal) = reference
    prompt = {"1": loader()}
    for k, name in enumerate(pictures):
        prompt[f"{10 + k}"] = {"class_type": "LoadImage", "inputs": {"image": name}}
        prompt[f"{20 + k}"] = predict("1", [f"{10 + k}", 0], PROMPT)
        prompt[f"{30 + k}"] = {"class_type": "PreviewAny", "inputs": {"source": [f"{20 + k}", 0]}}
    entry = host.run(prompt)
    models = host.base / "models"
    api = emo_core.load_va_critic(models / "clip_vision" / TINY_CLIP_NAME, models / "emoticrafter" / TINY_VALENCE_NAME,
                                  models / "emoticrafter" / TINY_AROUSAL_NAME, tokenizer=TOKENIZER)
    worst_node = worst_api = worst_score = 0.0
    for k, u8 in enumerate(pictures.values()):
        (record,) = report_of(entry, f"{30 + k}")["images"]
        expected = reference_va(model, valence, arousal, u8[None])[0]
        node = torch.tensor([record["valence"], record["arousal"]], dtype=torch.float64)
        from_api = api.predict(torch.from_numpy(u8.astype(np.float32) / 255)[None])[0].double()
        worst_node = max(worst_node, (node - expected).abs().max().item())
        worst_api = max(worst_api, (from_api - expected).abs().max().item())
        score = reference_clip_score(model, TOKENIZER, u8[None], PROMPT)[0].item()
        worst_score = max(worst_score, abs(record["clip_score"] - score))
    print(f"max abs off the formula: node {worst_node:.2e}, API {worst_api:.2e}, CLIPScore {worst_score:.2e}")
    assert worst_node <= 1e-5 and worst_api <= 1e-5, (worst_node, worst_api)
    assert worst_score <= 1e-4, worst_score


def test_grid_targets_give_errors_pad_and_heat_map(host, pictures, reference):
    model, (valence, arousal) = reference
    name = next(iter(pictures))
    prompt = {
        "1": loader(resize="torch"),
        "2": {"class_type": "LoadImage", "inputs": {"image": name}},
        "3": {"class_type": "RepeatImageBatch", "inputs": {"image": ["2", 0], "amount": 25}},
        "4": {"class_type": "EmoNodes_EmotionGrid", "inputs": {
            "valence_from": -3.0, "valence_to": 3.0, "columns": 5, "arousal_from": 3.0, "arousal_to": -3.0, "rows": 5,
            "extrapolate": False}},
        "5": predict("1", ["3", 0], "", ["4", 0]),
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["5", 1], "filename_prefix": "emo-nodes/test/va_pad"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["5", 2], "filename_prefix": "emo-nodes/test/va_map"}},
    }
    entry = host.run(prompt)
    report = report_of(entry, "6")
    assert len(report["images"]) == 25 and "clip_score_mean" not in report["summary"]
    (v, a) = reference_va(model, valence, arousal, pictures[name][None])[0].tolist()  # torch resize: ~1e-3 off
    targets = [(r["target_valence"], r["target_arousal"]) for r in report["images"]]
    assert targets[0] == (-3.0, 3.0) and targets[4] == (3.0, 3.0) and targets[24] == (3.0, -3.0)
    errors = np.abs(np.array([[r["valence"], r["arousal"]] for r in report["images"]]) - np.array(targets))
    assert report["summary"]["v_mean"] == pytest.approx(errors[:, 0].mean(), abs=1e-9)
    assert report["summary"]["a_std"] == pytest.approx(errors[:, 1].std(), abs=1e-9)
    assert abs(report["images"][0]["valence"] - v) < 0.02 and abs(report["images"][0]["arousal"] - a) < 0.02
    assert len(report["cells"]) == 25
    for node in ("7", "8"):
        (file,) = host.output_files(entry, node)
        picture = np.asarray(Image.open(io.BytesIO(host.fetch(file))))
        assert picture.ndim == 3 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 8


def test_loader_lists_heads_and_b32_clips_by_their_keys(host):
    save_clip(tiny_clip(seed=2, vision={"patch_size": 14}), host.base / "models" / "clip_vision" /
              "emo_test_clip_l14.safetensors", vision_only=True)
    inputs = host.get("/object_info/EmoNodes_VACriticLoader")["EmoNodes_VACriticLoader"]["input"]["required"]
    clips = inputs["clip_name"][1]["options"] if "options" in inputs["clip_name"][1] else inputs["clip_name"][0]
    assert TINY_CLIP_NAME in clips and "emo_test_clip_l14.safetensors" not in clips
    valence = inputs["valence_head"]
    options = valence[1]["options"] if isinstance(valence[1], dict) and "options" in valence[1] else valence[0]
    assert TINY_VALENCE_NAME in options and TINY_AROUSAL_NAME in options
    assert "emo_tiny_eit.pth" not in options  # an EIT in the same folder is not offered as a head
    assert valence[1].get("default") == TINY_VALENCE_NAME
    assert inputs["arousal_head"][1].get("default") == TINY_AROUSAL_NAME


def test_bad_files_and_inputs_are_named(host, pictures):
    models = host.base / "models"
    save_clip(tiny_clip(seed=1, vision={"patch_size": 16}), models / "clip_vision" / "emo_test_clip_b16.safetensors")
    save_clip(tiny_clip(seed=1), models / "clip_vision" / "emo_test_clip_vision_only.safetensors", vision_only=True)
    save_head(random_head(3, features=768), models / "emoticrafter" / "emo_test_head_768.pth")
    name = next(iter(pictures))

    def failure(critic: dict, prompt_text: str = "", va: list | None = None, extra: dict | None = None) -> str:
        prompt = {"1": critic, "2": {"class_type": "LoadImage", "inputs": {"image": name}},
                  "3": predict("1", ["2", 0], prompt_text, va),
                  "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}, **(extra or {})}
        return host.run_error(prompt)["exception_message"]

    message = failure(loader(clip="emo_test_clip_b16.safetensors"))
    assert "emo_test_clip_b16.safetensors" in message and "not ViT-B/32" in message and "16-pixel" in message
    message = failure(loader(valence="emo_test_head_768.pth"))
    assert "emo_test_head_768.pth" in message and "wrong shape" in message and "(1, 768)" in message
    message = failure(loader(clip="emo_test_clip_vision_only.safetensors"), PROMPT)
    assert "no text tower" in message and "emo_test_clip_vision_only.safetensors" in message
    points = {"9": {"class_type": "EmoNodes_EmotionPath", "inputs": {
        "valence_start": -2.0, "arousal_start": -2.0, "valence_end": 2.0, "arousal_end": 2.0, "steps": 3,
        "extrapolate": False}}}
    message = failure(loader(), "", ["9", 0], points)
    assert "va: 3 target points for 1 images" in message
    assert "resize: 'nearest' is not one of pil, torch" in failure(loader(resize="nearest"))


def test_metrics_workflow_runs_on_tiny_models(host):
    """The shipped 5x5 metrics workflow, retargeted to the tiny models: 25 cells scored against their grid point,
    CLIPScore against the neutral prompt, and the pad and error map saved."""
    from conftest import load_workflow
    from tiny_graph import for_tiny_models

    api, ui = load_workflow("emoticrafter_metrics_5x5")
    entry = host.run(for_tiny_models(api), workflow=ui)
    report = report_of(entry, "15")
    grid = [(v, a) for a in (3.0, 1.5, 0.0, -1.5, -3.0) for v in (-3.0, -1.5, 0.0, 1.5, 3.0)]
    assert [(r["target_valence"], r["target_arousal"]) for r in report["images"]] == grid
    assert report["prompt"] == api["2"]["inputs"]["value"]
    summary = report["summary"]
    assert summary["images"] == 25 and {"v_mean", "a_mean", "clip_score_mean"} <= set(summary)
    assert all(-3 <= r["valence"] <= 3 and -3 <= r["arousal"] <= 3 for r in report["images"])
    assert host.output_files(entry, "16") and host.output_files(entry, "17")


def test_cli_reads_a_comfyui_grid_run(host, tmp_path):
    """python -m emo_core evaluate's folder reader on the cells the 5x5 grid workflow saved: V-A and the neutral
    prompt come from the workflow in each PNG, cells in batch order; an incomplete run is refused."""
    import shutil

    from conftest import load_workflow
    from tiny_graph import for_tiny_models

    from emo_core.evaluation.folder import evaluate_folder

    api = for_tiny_models(load_workflow("emoticrafter_grid_5x5")[0])
    api["8"]["inputs"]["seed"] = 515151  # a fresh run
    api["12"]["inputs"]["filename_prefix"] = f"emo-nodes/test/{tmp_path.name}/cell"
    entry = host.run(api)
    files = [host.output_path(f) for f in host.output_files(entry, "12")]
    assert len(files) == 25
    folder = tmp_path / "run"
    folder.mkdir()
    for path in files:
        shutil.copy(path, folder / path.name)
    models = host.base / "models"
    heads = models / "emoticrafter"
    critic = emo_core.load_va_critic(models / "clip_vision" / TINY_CLIP_NAME, heads / TINY_VALENCE_NAME,
                                     heads / TINY_AROUSAL_NAME, tokenizer=TOKENIZER)
    report = evaluate_folder(folder, critic)
    grid = [(v, a) for a in (3.0, 1.5, 0.0, -1.5, -3.0) for v in (-3.0, -1.5, 0.0, 1.5, 3.0)]
    records = sorted(report["images"], key=lambda r: r["file"])
    assert [(r["target_valence"], r["target_arousal"]) for r in records] == grid
    assert {r["prompt"] for r in records} == {api["2"]["inputs"]["text"]}
    assert report["namings"]["comfyui"] == 25 and report["summary"]["images"] == 25
    first = np.asarray(Image.open(folder / records[0]["file"]).convert("RGB"), dtype=np.float32) / 255
    expected = critic.predict(torch.from_numpy(first)[None])[0]
    assert abs(records[0]["valence"] - expected[0].item()) < 1e-6
    (folder / records[3]["file"]).unlink()
    with pytest.raises(ValueError, match="24 images of one grid run, but its grid has 25 points"):
        evaluate_folder(folder, critic, overwrite=True)


def test_hugging_face_clip_folder_is_one_entry_and_loads(host, pictures):
    """A folder in models/clip_vision holding a B/32 model.safetensors (the Hugging Face download) is listed once,
    by the folder's name, and loads as the same CLIP as the file it holds."""
    import shutil

    folder = host.base / "models" / "clip_vision" / "emo_test_hf_clip_b32"
    folder.mkdir()
    try:
        shutil.copyfile(host.base / "models" / "clip_vision" / TINY_CLIP_NAME, folder / "model.safetensors")
        (folder / "config.json").write_text("{}")
        inputs = host.get("/object_info/EmoNodes_VACriticLoader")["EmoNodes_VACriticLoader"]["input"]["required"]
        clips = inputs["clip_name"][1].get("options", inputs["clip_name"][0])
        assert folder.name in clips and not any(c.startswith(folder.name + "/") for c in clips), clips
        name = next(iter(pictures))
        prompt = {"1": loader(), "2": loader(clip=folder.name),
                  "3": {"class_type": "LoadImage", "inputs": {"image": name}},
                  "4": predict("1", ["3", 0], PROMPT), "5": predict("2", ["3", 0], PROMPT),
                  "6": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
                  "7": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}}}
        entry = host.run(prompt)
        (from_file,), (from_folder,) = report_of(entry, "6")["images"], report_of(entry, "7")["images"]
        assert from_folder["valence"] == from_file["valence"] and from_folder["arousal"] == from_file["arousal"]
        assert from_folder["clip_score"] == from_file["clip_score"]
    finally:
        shutil.rmtree(folder)


def test_eit_loader_lists_eits_not_the_critic_heads(host):
    """models/emoticrafter holds the EITs and the V-A critic heads: Load EmotiCrafter offers only the EITs."""
    inputs = host.get("/object_info/EmoNodes_EmotiCrafterLoader")["EmoNodes_EmotiCrafterLoader"]["input"]["required"]
    options = inputs["eit_name"][1].get("options", inputs["eit_name"][0])
    assert "emo_tiny_eit.pth" in options
    assert TINY_VALENCE_NAME not in options and TINY_AROUSAL_NAME not in options, options
