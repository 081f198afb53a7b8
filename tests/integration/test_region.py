"""Regional EmoEditor edits on the real host (tiny models): a mask of ones is the ordinary edit, a mask of zeros the
source, a half mask keeps its other half; IEI with a mask keeps its decision rule; Emotion Region; bad masks; the
two regional workflows."""

import io

import numpy as np
import pytest
import torch
from comfy_host import EXAMPLE_INPUT, HostError
from conftest import load_workflow
from PIL import Image
from tiny_graph import TINY_SIZE, for_tiny_models

from emo_core.images import resize_images

EDIT, IEI = "emoeditor_single_edit", "emoeditor_iei_loop"
HALF = TINY_SIZE // 2


def tiny(name: str) -> dict:
    return for_tiny_models(load_workflow(name)[0])


def pngs(host, entry, node_id: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(host.fetch(f)))).astype(np.int16)
            for f in host.output_files(entry, node_id)]


def with_mask(api: dict, node: str, kind: str, batch: int = 1) -> dict:
    """Connect a stock-node mask to ``node``'s mask input: ones, zeros, or left half ones (at the edit size)."""
    api["m0"] = {"class_type": "SolidMask", "inputs": {"value": 1.0 if kind == "ones" else 0.0, "width": TINY_SIZE,
                                                      "height": TINY_SIZE}}
    mask = ["m0", 0]
    if kind == "half":
        api["m1"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": HALF, "height": TINY_SIZE}}
        api["m2"] = {"class_type": "MaskComposite", "inputs": {"destination": ["m0", 0], "source": ["m1", 0], "x": 0,
                                                               "y": 0, "operation": "add"}}
        mask = ["m2", 0]
    if batch > 1:
        api["m3"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["m4", 0], "amount": batch}}
        api["m4"] = {"class_type": "MaskToImage", "inputs": {"mask": mask}}
        api["m5"] = {"class_type": "ImageToMask", "inputs": {"image": ["m3", 0], "channel": "red"}}
        mask = ["m5", 0]
    api[node]["inputs"]["mask"] = mask
    return api


def source_at_edit_size(host) -> np.ndarray:
    """The example input as the edit resizes it, as Save Image writes it."""
    picture = np.asarray(Image.open(host.base / "input" / EXAMPLE_INPUT).convert("RGB"), dtype=np.float32) / 255
    resized = resize_images(torch.from_numpy(picture)[None], (TINY_SIZE, TINY_SIZE))[0].numpy()
    return np.clip(255.0 * resized, 0, 255).astype(np.uint8).astype(np.int16)


def edit_png(host, api: dict, prefix: str) -> np.ndarray:
    api["6"]["inputs"]["filename_prefix"] = f"emo-nodes/test/region_{prefix}"
    (image,) = pngs(host, host.run(api), "6")
    return image


def test_mask_of_ones_is_the_edit_and_zeros_the_source(host):
    plain = edit_png(host, tiny(EDIT), "plain")
    ones = edit_png(host, with_mask(tiny(EDIT), "5", "ones"), "ones")
    zeros = edit_png(host, with_mask(tiny(EDIT), "5", "zeros"), "zeros")
    source = source_at_edit_size(host)
    assert np.array_equal(ones, plain), "a mask of ones must be the unmasked edit, bit for bit"
    assert np.array_equal(zeros, source), "a mask of zeros must give the source at the edit size, exactly"
    assert np.abs(plain - source).mean() > 1, "the tiny edit must change the picture"


def test_half_mask_keeps_the_other_half(host):
    half = edit_png(host, with_mask(tiny(EDIT), "5", "half"), "half")
    source = source_at_edit_size(host)
    assert np.array_equal(half[:, HALF:], source[:, HALF:]), "unmasked pixels must be the source's"
    assert np.abs(half[:, :HALF] - source[:, :HALF]).mean() > 1, "the masked half must change"


def test_iei_with_a_mask_keeps_its_rule_and_the_unmasked_half(host):
    import json

    api = with_mask(tiny(IEI), "3", "half")
    api["4"]["inputs"]["filename_prefix"] = "emo-nodes/test/region_iei"
    entry = host.run(api)
    (text,) = entry["outputs"]["6"]["text"]
    trace = json.loads(text)
    (run,) = trace["runs"]
    assert trace["settings"]["regional"] and run["mask_share"] == pytest.approx(0.5)
    low, high = trace["settings"]["ssim_band"]
    for attempt in run["trace"]:
        rule = low < attempt["ssim"] < high or attempt["label_name"] == trace["settings"]["target"]
        assert attempt["accepted"] == rule, attempt
    source = source_at_edit_size(host)
    attempts = pngs(host, entry, "5")
    assert attempts and all(np.array_equal(a[:, HALF:], source[:, HALF:]) for a in attempts)
    (chosen,) = pngs(host, entry, "4")
    assert np.array_equal(chosen[:, HALF:], source[:, HALF:])


def failure(host, api: dict) -> str:
    with pytest.raises(HostError) as error:
        host.run(api)
    return str(error.value)


def test_bad_masks_are_named(host):
    assert "holds 2 masks but the source batch has 1" in failure(host, with_mask(tiny(EDIT), "5", "half", batch=2))
    assert "0 everywhere" in failure(host, with_mask(tiny(IEI), "3", "zeros"))


def test_emotion_region_node(host):
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": EXAMPLE_INPUT}},
           "2": tiny(EDIT)["2"],
           "3": {"class_type": "EmoNodes_EmotionRegion", "inputs": {"predictor": ["2", 3], "image": ["1", 0],
                                                                    "target": "top", "threshold": 0.5, "grow": 2,
                                                                    "feather": 3, "invert": False}},
           "4": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}},
           "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "emo-nodes/test/rm"}},
           "6": {"class_type": "SaveImage", "inputs": {"images": ["3", 1], "filename_prefix": "emo-nodes/test/rp"}}}
    entry = host.run(api)
    (mask,) = pngs(host, entry, "5")
    source = np.asarray(Image.open(host.base / "input" / EXAMPLE_INPUT))
    assert mask.shape[:2] == source.shape[:2]
    assert 0 < (mask[..., 0] > 127).mean() < 1
    (picture,) = pngs(host, entry, "6")
    assert picture.shape[1] >= 420


@pytest.mark.parametrize("name", ["emoticrafter_regional", "emoeditor_regional"])
def test_regional_workflows_run_on_the_tiny_models(host, name):
    api, ui = load_workflow(name)
    entry = host.run(for_tiny_models(api), workflow=ui)
    saved = {nid for nid, node in api.items() if node["class_type"] == "SaveImage"}
    assert all(host.output_files(entry, nid) for nid in saved)
    if name == "emoeditor_regional":  # outside the region every attempt is the source
        import json
        (text,) = entry["outputs"]["7"]["text"]
        assert json.loads(text)["settings"]["regional"]
