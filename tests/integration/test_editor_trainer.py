"""The EmoEditor trainer in ComfyUI: its glue against ComfyUI itself (one process), and on the real host the example
training workflow retargeted to the tiny SDXL InstructPix2Pix (mode lora): files, stock LoraLoader, the IEI node
downstream, learning on held-out synthetic pairs, a refused overwrite and a cancel that keeps the earlier model."""

import hashlib
import io
import json
import shutil
import subprocess
import time

import numpy as np
import pytest
import torch
from comfy_host import COMFY_DIR, HOST_DIR, PYTHON, ensure_tiny_models
from conftest import load_workflow
from editor_pairs_synth import write_synthetic_pairs
from paths import SUPPORT
from PIL import Image
from safetensors import safe_open
from tiny_graph import for_tiny_models

from emo_core.training.loop import published_split

TRAIN = "emoeditor_train"
NAME = "test_editor_lora"
PAIRS_DIR = "emo_test_editor_pairs"
N_TRAIN, SIZE = 24, 64
# A CPU-sized run: 30 steps of batch 8 with a LoRA learning rate; everything else as in the workflow file.
TINY_RUN = {"mode": "lora", "lora_rank": 8, "lora_alpha": 8.0, "lr": 1e-2, "batch_size": 8, "steps": 30,
            "precision": "fp32", "resolution": SIZE, "preview_every": 0, "checkpoint_every": 0}
# Learning on the held-out pair, measured (seeded, so deterministic): validation noise MSE 1.229 -> 1.013 (-18 %),
# preview error against the target 117.5 -> 113.6 (0-255 units). The random tiny TAESD keeps the synthetic edits
# nearly invisible in latent space (source vs target through it: 2.8 units), so the preview of a 30-step editor
# is still far from both; the target-transform check with a faithful VAE is the trainer's own unit test.
VAL_DROP = 0.9  # the final validation MSE is at most this fraction of the initial one
PREVIEW_GAIN = 2.0  # the trained preview is at least this much closer to the target (0-255 units)


def test_glue_matches_comfyui_and_transformers():
    """LoRA keys, the LoRA as ComfyUI applies it, predict_noise, the VAE posterior, the SD 1.5 text embedding and
    the full-editor file, measured against ComfyUI / diffusers / transformers (tests/support/editor_glue_check.py)."""
    ensure_tiny_models()
    run = subprocess.run([str(PYTHON), str(SUPPORT / "editor_glue_check.py"), str(COMFY_DIR),
                          str(HOST_DIR / "base" / "models")], capture_output=True, text=True, timeout=600)
    report = json.loads(run.stdout.strip().splitlines()[-1]) if run.stdout.strip() else {"stderr": run.stderr[-3000:]}
    assert run.returncode == 0 and not report.get("failed"), report
    measured = report["measured"]
    assert measured["sdxl_full_lora_keys"] > 2000 and measured["sd15_full_lora_keys"] > 500  # real-size UNets


def files(host, name: str = NAME) -> dict:
    models = host.base / "models"
    return {"lora": models / "loras" / f"{name}.safetensors",
            "encoder": models / "emoeditor" / "encoder" / f"{name}.safetensors",
            "state": host.base / "user" / "emo-nodes" / "editor_train_states" / f"{name}.lora.state.pt"}


def remove(paths: dict) -> None:
    """The host's base folder persists between sessions: start from no earlier files of this name."""
    for path in paths.values():
        for stale in (path, path.with_name(path.name + ".pending")):
            stale.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def pairs(host):
    folder = host.base / "input" / PAIRS_DIR
    shutil.rmtree(folder, ignore_errors=True)
    data = write_synthetic_pairs(folder, n_train=N_TRAIN, n_val=2, size=SIZE, seed=3)
    row = int(published_split(N_TRAIN, 0.01, 42)[1][0])  # the validation pair the trainer previews (held out)
    record = data["train_records"][row]
    for kind, key in (("source", "img_src_path"), ("target", "img_tgt_path")):
        shutil.copy(folder / record[key], host.base / "input" / f"emo_test_editor_{kind}.png")
    return data


def tiny_training(**inputs) -> dict:
    """The example workflow as the tests run it (tools/tiny_graph.py: a LoRA on the tiny SDXL InstructPix2Pix, its
    VAE and CLIP from the tiny SDXL checkpoint, a fresh SDXL-width encoder), on the synthetic pairs with TINY_RUN;
    the IEI edits the held-out pair's source. Node ids: 1 Load EmoEditor (predictor), 4 the trainer, 8 the source,
    21 the tiny SDXL checkpoint (VAE, CLIP)."""
    api = for_tiny_models(load_workflow(TRAIN)[0])
    (sdxl,) = [k for k, v in api.items() if v["inputs"].get("ckpt_name") == "emo_tiny_sdxl.safetensors"]
    api = json.loads(json.dumps(api).replace(f'["{sdxl}", ', '["21", '))
    api["21"] = api.pop(sdxl)
    api["3"]["inputs"].update(dataset=f"{PAIRS_DIR}/train.json")
    api["4"]["inputs"].update(name=NAME, overwrite=False, **TINY_RUN)
    api["4"]["inputs"].update(inputs)
    api["8"]["inputs"]["image"] = "emo_test_editor_source.png"
    for node, prefix in (("5", "loss"), ("6", "previews"), ("10", "iei")):
        api[node]["inputs"]["filename_prefix"] = f"emo-nodes/test/editor_train_{prefix}"
    return api


def pictures(host, entry, node_id: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(host.fetch(f))).convert("RGB")).astype(np.float32)
            for f in host.output_files(entry, node_id)]


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edit_with(model: list, encoder: list, prefix: str) -> dict:
    """One seeded Emotion Edit of the held-out source toward "awe" with the given MODEL and encoder (node ids 30-33;
    the tiny SDXL checkpoint's VAE is node 21, the source node 8, the predictor's loader node 1)."""
    return {
        "30": {"class_type": "EmoNodes_PredictEmotion", "inputs": {"predictor": ["1", 3], "image": ["8", 0],
                                                                   "resize": "torch"}},
        "31": {"class_type": "EmoNodes_EmotionDirection", "inputs": {"distribution": ["30", 0], "target": "awe"}},
        "32": {"class_type": "EmoNodes_EmotionEdit",
               "inputs": {"model": model, "vae": ["21", 2], "encoder": encoder, "source": ["8", 0],
                          "direction": ["31", 0], "seed": 5, "steps": 4, "t_min": 700, "t_max": 980,
                          "resolution": SIZE, "resize": "squash (published)"}},
        "33": {"class_type": "SaveImage", "inputs": {"images": ["32", 0], "filename_prefix": prefix}},
    }


def target_through_vae() -> dict:
    """The held-out pair's target through the tiny VAE (node 21): what a perfect editor could return."""
    return {
        "40": {"class_type": "LoadImage", "inputs": {"image": "emo_test_editor_target.png"}},
        "41": {"class_type": "VAEEncode", "inputs": {"pixels": ["40", 0], "vae": ["21", 2]}},
        "42": {"class_type": "VAEDecode", "inputs": {"samples": ["41", 0], "vae": ["21", 2]}},
        "43": {"class_type": "SaveImage", "inputs": {"images": ["42", 0],
                                                     "filename_prefix": "emo-nodes/test/editor_target_vae"}},
    }


def stock_loading(lora: str, encoder: str) -> dict:
    """The saved files through stock loaders: LoraLoaderModelOnly on the same base, Load EmoEditor's encoder slot."""
    return {
        "1": {"class_type": "EmoNodes_EmoEditorLoader", "inputs": {"editor_name": "emo_tiny_ip2p.pt",
                                                                   "encoder_name": encoder,
                                                                   "predictor_name": "emo_tiny_predictor.pt"}},
        "8": {"class_type": "LoadImage", "inputs": {"image": "emo_test_editor_source.png"}},
        "20": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "emo_tiny_sdxl_ip2p.safetensors"}},
        "21": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "emo_tiny_sdxl.safetensors"}},
        "22": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["20", 0], "lora_name": lora,
                                                                "strength_model": 1.0}},
        **edit_with(["22", 0], ["1", 2], "emo-nodes/test/editor_stock"),
    }


def test_training_workflow_on_the_host(host, pairs):
    """Trains a LoRA on the tiny SDXL ip2p through the example workflow; the files load with stock nodes and
    reproduce the node's outputs; the IEI node edits with the result; learning shows on the held-out pair; a used
    name is refused; a cancelled overwriting run keeps the earlier files."""
    paths = files(host)
    remove(paths)
    started = time.monotonic()
    api = {**tiny_training(), **edit_with(["4", 0], ["4", 1], "emo-nodes/test/editor_direct"),
           **target_through_vae()}
    entry = host.run(api, timeout=600)
    seconds = time.monotonic() - started
    for key in ("lora", "encoder"):
        assert paths[key].is_file(), paths[key]
    with safe_open(paths["lora"], "pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
    assert keys and all(k.startswith("diffusion_model.") for k in keys)
    assert meta["mode"] == "lora" and json.loads(meta["train_config"])["steps"] == TINY_RUN["steps"]
    history = json.loads(meta["history"])
    assert history and history[-1]["val_loss"] < VAL_DROP * float(meta["val_mse_initial"]), meta
    (curve,) = pictures(host, entry, "5")
    previews = pictures(host, entry, "6")
    assert curve.shape[1] > curve.shape[0] > 100 and len(previews) == 2  # before and after
    (iei,) = pictures(host, entry, "10")
    assert iei.shape == (SIZE, SIZE, 3)

    # learning is real on the held-out pair: its validation loss falls (above), and its preview edit, before vs after
    # training, comes closer to its target through the same VAE (mean absolute error, 0-255 pixel units)
    (target,) = pictures(host, entry, "43")
    before, after = (float(np.abs(p - target).mean()) for p in (previews[0], previews[-1]))
    print(f"editor training ({seconds:.1f} s): preview error before {before:.2f}, after {after:.2f}; "
          f"val mse {meta['val_mse_initial']} -> {history[-1]['val_loss']:.5g}")
    assert after < before - PREVIEW_GAIN, (before, after)

    # the files through stock loaders edit exactly like the training node's own outputs (same edit, same seed)
    (direct,) = pictures(host, entry, "33")
    lora_hash = sha(paths["lora"])
    (stock,) = pictures(host, host.run(stock_loading(paths["lora"].name, f"encoder/{NAME}.safetensors")), "33")
    assert np.abs(stock - direct).max() <= 1, "stock LoraLoader + Load EmoEditor differ from the node's outputs"

    # a used name is refused before anything is written
    message = host.run_error(tiny_training())["exception_message"]
    assert "already exist" in message and NAME in message, message
    assert sha(paths["lora"]) == lora_hash

    # cancel an overwriting run: the earlier files stay exactly as they were
    encoder_hash = sha(paths["encoder"])
    status, body = host.queue(tiny_training(overwrite=True, steps=100000, checkpoint_every=1))
    assert status == 200, body
    pending = paths["state"].with_name(paths["state"].name + ".pending")
    deadline = time.monotonic() + 240
    while not pending.is_file():
        assert time.monotonic() < deadline, host.log_tail()
        time.sleep(0.2)
    host.request("/interrupt", {})
    entry = host.wait(body["prompt_id"], timeout=180)
    assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]]
    assert sha(paths["lora"]) == lora_hash and sha(paths["encoder"]) == encoder_hash


def training_graph(**inputs) -> dict:
    """tiny_training without the edits downstream: the trainer, what it needs, its loss curve and previews."""
    api = tiny_training(**inputs)
    keep, todo = set(), ["4", "5", "6"]
    while todo:
        node = todo.pop()
        if node in keep:
            continue
        keep.add(node)
        todo += [v[0] for v in api[node]["inputs"].values() if isinstance(v, list) and len(v) == 2]
    return {k: v for k, v in api.items() if k in keep}


def test_cancel_saves_a_resume_state_and_resume_continues_from_it(host, pairs):
    """Cancel after a few steps (no periodic checkpoint: checkpoint_every 0) leaves a resume state: the host's
    progress hook takes the interrupt inside the step callback, and the node still lets the loop save."""
    name = "test_editor_cancel"
    paths = files(host, name)
    remove(paths)
    marker = "emo-nodes editor training: step 1 "
    seen = host.log_tail(10**8).count(marker)
    status, body = host.queue(training_graph(name=name, steps=100000, checkpoint_every=0))
    assert status == 200, body
    deadline = time.monotonic() + 300
    while host.log_tail(10**8).count(marker) <= seen:  # the first step is done
        assert time.monotonic() < deadline, host.log_tail()
        time.sleep(0.2)
    time.sleep(2.0)  # a few more steps
    host.request("/interrupt", {})
    entry = host.wait(body["prompt_id"], timeout=180)
    assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]], entry["status"]
    assert paths["state"].is_file(), host.log_tail()
    assert not paths["lora"].exists() and not paths["encoder"].exists()
    state = torch.load(paths["state"], map_location="cpu", weights_only=True)
    done = int(state["global_step"])
    assert 1 <= done < 100000, done
    state_hash = sha(paths["state"])

    # a refused run (a used name without resume or overwrite) leaves the state byte-identical
    message = host.run_error(training_graph(name=name, steps=done + 2))["exception_message"]
    assert name in message, message
    assert sha(paths["state"]) == state_hash

    host.run(training_graph(name=name, steps=done + 2, resume=True), timeout=600)
    with safe_open(paths["lora"], "pt") as f:
        meta = f.metadata()
    assert meta["steps_completed"] == str(done + 2), meta  # continued from the cancelled step, not from 0
    assert paths["encoder"].is_file()


@pytest.mark.parametrize("char", ["\u202e", "\u200f", "\ufeff"])
def test_a_name_with_bidi_or_format_characters_is_refused_at_queue_time(host, char):
    folders = (host.base / "models" / "loras", host.base / "models" / "emoeditor",
               host.base / "user" / "emo-nodes" / "editor_train_states")
    before = {str(f): sha(f) for folder in folders if folder.is_dir() for f in sorted(folder.rglob("*"))
              if f.is_file()}
    details = host.rejection(tiny_training(name=f"x{char}gnp.safetensors"), "4")
    assert details.startswith("name") and f"U+{ord(char):04X}" in details, details
    after = {str(f): sha(f) for folder in folders if folder.is_dir() for f in sorted(folder.rglob("*"))
             if f.is_file()}
    assert after == before
