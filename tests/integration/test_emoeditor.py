"""EmoEditor on the real host: tiny models in the published file layouts (model_ip2p.pt, model_emoenc.pt,
emo_predictor.pt), the two example workflows, IEI caps and trace, Cancel, and clear errors."""

import copy
import io
import json
import subprocess
import time

import numpy as np
import pytest
import torch
from comfy_host import COMFY_DIR, HOST_DIR, PYTHON, ensure_tiny_models
from conftest import load_workflow
from paths import SUPPORT
from PIL import Image
from tiny_graph import TINY_ATTEMPTS, TINY_SIZE, TINY_STEPS, for_tiny_models

EDIT, IEI = "emoeditor_single_edit", "emoeditor_iei_loop"
EMOTIONS = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness"]


def tiny(name: str) -> dict:
    return for_tiny_models(load_workflow(name)[0])


def images(host, entry, node_id: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(host.fetch(f)))).astype(np.int16)
            for f in host.output_files(entry, node_id)]


def validation_only(name: str) -> dict:
    """The tiny workflow without its outputs that do not depend on the edit (ComfyUI runs a prompt whose other
    outputs are valid and answers 200; with every output depending on the bad node it answers 400)."""
    api = tiny(name)
    api.pop("9", None)  # the source chart
    return api


def trace_of(entry) -> dict:
    (text,) = entry["outputs"]["6"]["text"]
    return json.loads(text)


def test_conversion_and_sampling_match_diffusers():
    """The converted UNet, the VAE and the whole partial-denoise edit against diffusers' reference (DDIMScheduler
    with num_train_timesteps overwritten by T, as ip2p.py does)."""
    ensure_tiny_models()
    editor = HOST_DIR / "base" / "models" / "emoeditor" / "emo_tiny_ip2p.pt"
    run = subprocess.run([str(PYTHON), str(SUPPORT / "emoeditor_parity.py"), str(COMFY_DIR),
                          str(editor)], capture_output=True, text=True, timeout=300)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0 and not report["failed"], report


def test_single_edit_is_seeded_and_follows_the_target(host):
    def edit(target: str, seed: int, prefix: str) -> np.ndarray:
        api = tiny(EDIT)
        api["4"]["inputs"]["target"] = target
        api["5"]["inputs"]["seed"] = seed
        api["6"]["inputs"]["filename_prefix"] = f"emo-nodes/test/edit_{prefix}"
        entry = host.run(api)
        (image,) = images(host, entry, "6")
        (before,) = images(host, entry, "9")
        (after,) = images(host, entry, "8")
        assert before.shape == after.shape and before.shape[1] > before.shape[0] > 100  # charts drawn
        return image

    awe = edit("awe", 1, "awe")
    assert awe.shape == (TINY_SIZE, TINY_SIZE, 3)
    fear = edit("fear", 1, "fear")
    reseeded = edit("awe", 2, "awe_seed2")
    again = edit("awe", 1, "awe_again")
    assert np.array_equal(awe, again), "same seed and target must reproduce the edit"
    assert np.abs(awe - fear).mean() > 0.2, "the emotion direction must change the edit"
    assert np.abs(awe - reseeded).mean() > 0.2, "the seed must change T and the noise"


def test_edit_accepts_an_ip2p_model_loaded_by_comfyui(host):
    """A native SD 1.5 InstructPix2Pix checkpoint through CheckpointLoaderSimple (MODEL only; VAE and encoder from
    Load EmoEditor), and the direction built inside the edit node from predictor + target."""
    api = tiny(EDIT)
    api["20"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "emo_tiny_ip2p_ldm.safetensors"}}
    edit = api["5"]["inputs"]
    edit["model"] = ["20", 0]
    del edit["direction"]
    edit.update(predictor=["2", 3], target="sadness")
    api = {k: v for k, v in api.items() if k in ("1", "2", "5", "6", "20")}
    api["6"]["inputs"]["filename_prefix"] = "emo-nodes/test/edit_native_ip2p"
    (image,) = images(host, host.run(api), "6")
    assert image.shape == (TINY_SIZE, TINY_SIZE, 3)


def test_sdxl_ip2p_extension_edits_with_an_sdxl_width_encoder(host):
    """EXTENSION: an SDXL InstructPix2Pix MODEL conditioned by a 77x2048 + pooled 1280 emotion encoder."""
    api = tiny(EDIT)
    api["2"]["inputs"]["encoder_name"] = "emo_tiny_emoenc_sdxl.pt"
    api["20"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "emo_tiny_sdxl_ip2p.safetensors"}}
    api["5"]["inputs"]["model"] = ["20", 0]
    api = {k: v for k, v in api.items() if k not in ("7", "8")}
    api["6"]["inputs"]["filename_prefix"] = "emo-nodes/test/edit_sdxl_ip2p"
    (image,) = images(host, host.run(api), "6")
    assert image.shape == (TINY_SIZE, TINY_SIZE, 3)


def test_iei_workflow_stops_at_its_cap_with_a_trace(host):
    entry = host.run(tiny(IEI))
    trace = trace_of(entry)
    (run,) = trace["runs"]
    attempts = images(host, entry, "5")
    assert 1 <= run["attempts"] <= TINY_ATTEMPTS == trace["settings"]["max_attempts"]
    assert len(run["trace"]) == run["attempts"] == len(attempts)
    assert run["status"] in ("confident", "max_accepted", "max_attempts", "exhausted")
    for step in run["trace"]:
        assert 700 <= step["T"] <= 980
        assert step["first_timestep"] == (TINY_STEPS - 1) * (step["T"] // TINY_STEPS) + 1
        assert abs(sum(step["distribution"]) - 1) < 1e-5 and -1 <= step["ssim"] <= 1
    (chosen,) = images(host, entry, "4")
    chosen_attempt = run["chosen_attempt"]
    if chosen_attempt != "source":
        assert np.array_equal(chosen, attempts[chosen_attempt])


def test_iei_accepting_everything_ends_at_max_accepted(host):
    """An SSIM band covering [-1, 1] accepts every edit; each starts from the previous one; the accepted list
    (source included) reaching max_accepted ends the loop before the cap."""
    api = tiny(IEI)
    api["3"]["inputs"].update(ssim_low=-1.0, ssim_high=1.0, confidence=1.0, max_accepted=3, max_attempts=5)
    run = trace_of(host.run(api))["runs"][0]
    assert run["status"] == "max_accepted" and run["attempts"] == 2
    assert run["accepted_attempts"] == [0, 1]
    assert [step["init"] for step in run["trace"]] == ["source", 0]


def test_cancel_stops_a_long_iei_loop_and_the_host_keeps_serving(host):
    api = tiny(IEI)
    # Nothing ever ends this loop except the cap: the band is empty, confidence 1 is never reached.
    api["3"]["inputs"].update(ssim_low=1.0, ssim_high=1.0, confidence=1.0, max_accepted=10000,
                              max_attempts=10000, seed=123)
    host.run(tiny(IEI))  # loader and image cached: the long prompt runs only the IEI node
    status, body = host.queue(api)
    assert status == 200, body
    deadline = time.monotonic() + 60
    while not host.get("/queue")["queue_running"]:
        assert time.monotonic() < deadline, "the IEI prompt never started"
        time.sleep(0.1)
    time.sleep(2.0)  # a few attempts
    host.request("/interrupt", {})
    cancelled_at = time.monotonic()
    entry = host.wait(body["prompt_id"], timeout=60)
    assert time.monotonic() - cancelled_at < 15
    messages = dict(entry["status"]["messages"])
    assert "execution_success" not in messages
    assert messages["execution_interrupted"]["node_type"] == "EmoNodes_IEILoop"
    assert entry["status"]["status_str"] == "error"
    assert trace_of(host.run(tiny(IEI)))["runs"][0]["attempts"] >= 1  # still serving


def test_wrong_class_name_is_rejected_with_the_valid_names(host):
    api = validation_only(EDIT)
    api["4"]["inputs"]["target"] = "happiness"
    details = host.rejection(api, "4")
    assert "happiness" in details and all(name in details for name in EMOTIONS)


def test_missing_file_is_rejected(host):
    api = validation_only(EDIT)
    api["2"]["inputs"]["editor_name"] = "model_ip2p.pt"  # the published name, not installed on the test host
    assert "model_ip2p.pt" in host.rejection(api, "2")


def test_inconsistent_strength_range_is_rejected(host):
    api = validation_only(EDIT)
    api["5"]["inputs"].update(t_min=900, t_max=800)
    assert "t_min" in host.rejection(api, "5")


def write_text_to_image_unet(path):
    """A diffusers-layout file whose UNet takes 4 channels (a text-to-image model), in the editor's key layout."""
    torch.save({"unet.conv_in.weight": torch.zeros(32, 4, 3, 3), "unet.conv_in.bias": torch.zeros(32),
                "unet.down_blocks.0.resnets.0.conv1.weight": torch.zeros(32, 32, 3, 3),
                "auto_encoder.decoder.conv_in.weight": torch.zeros(512, 4, 3, 3)}, path)


@pytest.mark.parametrize("case", ["four_channel_unet", "encoder_as_editor", "sdxl_model", "sd15_encoder_on_sdxl_ip2p"])
def test_mismatched_model_types_name_the_problem(host, case):
    folder = host.base / "models" / "emoeditor"
    api = tiny(EDIT)
    written = None
    if case == "four_channel_unet":
        written = folder / "emo_test_text_to_image_unet.pt"
        write_text_to_image_unet(written)
        api["2"]["inputs"]["editor_name"] = written.name
        node, expected = "2", [written.name, "8 input channels", "text-to-image UNet (4 input channels)"]
    elif case == "encoder_as_editor":
        api["2"]["inputs"]["editor_name"] = "emo_tiny_emoenc.pt"
        node, expected = "2", ["emo_tiny_emoenc.pt", "emotion-direction encoder", "model_ip2p.pt"]
    elif case == "sdxl_model":
        api["20"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "emo_tiny_sdxl.safetensors"}}
        api["5"]["inputs"]["model"] = ["20", 0]
        node, expected = "5", ["InstructPix2Pix", "SDXL", "4 input channels"]
    else:
        api["20"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "emo_tiny_sdxl_ip2p.safetensors"}}
        api["5"]["inputs"]["model"] = ["20", 0]
        node, expected = "5", ["width 768", "expects 2048"]
    try:
        message = host.run_error(api)
        assert message["node_id"] == node
        assert all(text in message["exception_message"] for text in expected), message["exception_message"]
    finally:
        if written is not None:
            written.unlink()
    entry = host.run(copy.deepcopy(tiny(EDIT)))  # still serving
    assert host.output_files(entry, "6")
