"""The continuous-emotion example workflows on the real host with the tiny models: the emotion morph (animated WEBP
and contact sheet from one seed) and emotional img2img, plain and with the composition-keeping ControlNet."""

import copy
import io

import numpy as np
import torch
from conftest import load_workflow
from PIL import Image
from tiny_graph import for_tiny_models

from emo_core.emoticrafter.va import VAPoints
from emo_core.plots.sheet import contact_sheet

MORPH, I2I, I2I_CN = "emoticrafter_morph", "emoticrafter_img2img", "emoticrafter_img2img_controlnet"


def tiny(name: str) -> dict:
    api = for_tiny_models(load_workflow(name)[0])
    if name == MORPH:  # for_tiny_models caps every `steps`; the path's steps are frames, not sampler steps
        api["4"]["inputs"]["steps"] = load_workflow(name)[0]["4"]["inputs"]["steps"]
    return api


def frames(host, entry, node_id: str) -> list[np.ndarray]:
    """Every frame of every image a node saved (animated files give all their frames), as int16 RGB."""
    out = []
    for file in host.output_files(entry, node_id):
        image = Image.open(io.BytesIO(host.fetch(file)))
        for i in range(getattr(image, "n_frames", 1)):
            image.seek(i)
            out.append(np.asarray(image.convert("RGB")).astype(np.int16))
    return out


def save(api: dict, node_id: str, source: str, prefix: str) -> None:
    api[node_id] = {"class_type": "SaveImage", "inputs": {"filename_prefix": f"emo-nodes/test/{prefix}",
                                                          "images": [source, 0]}}


def path_points(api: dict) -> VAPoints:
    p = api["4"]["inputs"]
    return VAPoints.make_path((p["valence_start"], p["arousal_start"]), (p["valence_end"], p["arousal_end"]),
                              p["steps"])


def single_frame(host, api: dict, valence: float, arousal: float, prefix: str) -> np.ndarray:
    """The morph graph for one V-A point and a batch of one: what frame k must be if only the emotion moves."""
    api = copy.deepcopy(api)
    api["4"] = {"class_type": "EmoNodes_ValenceArousal",
                "inputs": {"valence": valence, "arousal": arousal, "extrapolate": False}}
    api["7"]["inputs"]["batch_size"] = 1
    for node in ("11", "12", "13"):
        del api[node]
    save(api, "11", "10", prefix)
    (image,) = frames(host, host.run(api), "11")
    return image


# -- emotion morph ---------------------------------------------------------------------------------------------------
def test_morph_frames_follow_the_path_from_one_noise(host):
    shipped = tiny(MORPH)
    points = path_points(shipped)
    assert len(points) == 24
    api = copy.deepcopy(shipped)
    api["11"]["inputs"]["lossless"] = True  # exact frames for the comparisons below (the codec setting only)
    entry = host.run(api)
    (webp,) = host.output_files(entry, "11")
    animation = Image.open(io.BytesIO(host.fetch(webp)))
    assert animation.format == "WEBP" and animation.is_animated and animation.n_frames == len(points)
    morph = frames(host, entry, "11")

    # frame k is the single-image render of path point k with the same seed: same noise, only the emotion moves
    # (the ends and two points between them, to keep the host time short)
    checked = [0, 8, 15, len(points) - 1]
    refs = {k: single_frame(host, shipped, points.valence[k], points.arousal[k], f"morph_ref{k}") for k in checked}
    for k in checked:
        assert np.abs(morph[k] - refs[k]).max() <= 1, k  # batched vs single: float rounding only
        nearest = min(range(len(morph)), key=lambda i: np.abs(morph[i] - refs[k]).mean())
        assert nearest == k, (k, nearest)
    steps = [np.abs(a - b).mean() for a, b in zip(morph[:-1], morph[1:], strict=True)]
    assert min(steps) > 1.0, "the emotion must move every frame"

    # the contact sheet holds the same frames in path order, labelled with their V-A
    (sheet,) = frames(host, entry, "13")
    expected = contact_sheet(torch.from_numpy(np.stack(morph)).float() / 255, points, 6)[0]
    # (the WEBP node truncates to 8 bits, the sheet rounds: one level apart at most)
    assert np.abs(sheet - (expected.numpy() * 255).round()).max() <= 1

    # the shipped (lossy) file has the same frames, in the same order
    lossy = frames(host, host.run(shipped), "11")
    assert len(lossy) == len(points)
    assert [int(np.argmin([np.abs(f - m).mean() for m in morph])) for f in lossy] == list(range(len(points)))


def test_morph_equal_emotions_give_equal_frames_only_with_the_fixed_seed(host):
    api = tiny(MORPH)
    api["4"]["inputs"].update(valence_end=api["4"]["inputs"]["valence_start"],
                              arousal_end=api["4"]["inputs"]["arousal_start"], steps=4)
    for node in ("11", "12", "13"):  # the WEBP encoder merges equal frames: compare the decoded batch itself
        del api[node]
    save(api, "11", "10", "morph_equal")
    fixed = frames(host, host.run(api), "11")
    assert len(fixed) == 4 and all(np.abs(f - fixed[0]).max() <= 1 for f in fixed)
    api["8"]["inputs"]["seed_behavior"] = "random"  # ComfyUI's own batch noise: one draw per item
    save(api, "11", "10", "morph_random")
    random = frames(host, host.run(api), "11")
    assert np.array_equal(random[0], fixed[0])  # item 0 keeps the seed's noise either way
    assert all(np.abs(f - random[0]).mean() > 10 for f in random[1:])


# -- emotional img2img -----------------------------------------------------------------------------------------------
def img2img_images(host, api: dict, prefix: str) -> dict[str, np.ndarray]:
    """The result, the scaled source photo and its VAE round trip (the picture sampling starts from)."""
    api = copy.deepcopy(api)
    save_id = next(k for k, v in api.items() if v["class_type"] == "SaveImage")
    api[save_id]["inputs"]["filename_prefix"] = f"emo-nodes/test/{prefix}"
    save(api, "90", "8", f"{prefix}_source")
    api["91"] = {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}}
    save(api, "92", "91", f"{prefix}_roundtrip")
    entry = host.run(api)
    (result,), (source,), (roundtrip,) = (frames(host, entry, n) for n in (save_id, "90", "92"))
    return {"result": result, "source": source[:result.shape[0], :result.shape[1]], "roundtrip": roundtrip}


def without_injection(api: dict) -> dict:
    """The same graph with the prompt going straight to the sampler: the neutral img2img."""
    api = copy.deepcopy(api)
    for node in api.values():
        for name, value in node["inputs"].items():
            if value == ["5", 0]:
                node["inputs"][name] = ["2", 0]
    del api["5"], api["4"], api["3"]
    return api


def test_img2img_differs_from_the_photo_and_from_the_neutral_img2img(host):
    api = tiny(I2I)
    assert api["10"]["inputs"]["denoise"] == load_workflow(I2I)[0]["10"]["inputs"]["denoise"] < 1.0
    emotional = img2img_images(host, api, "i2i")
    neutral = img2img_images(host, without_injection(api), "i2i_neutral")
    assert emotional["result"].shape == emotional["roundtrip"].shape
    assert np.array_equal(emotional["roundtrip"], neutral["roundtrip"])  # same photo, same start
    assert np.abs(emotional["result"] - emotional["source"]).mean() > 5
    assert np.abs(emotional["result"] - emotional["roundtrip"]).mean() > 5
    assert np.abs(emotional["result"] - neutral["result"]).mean() > 5


def test_img2img_controlnet_steers_and_strength_zero_is_plain_img2img(host):
    api = tiny(I2I_CN)
    steered = img2img_images(host, api, "i2i_cn")["result"]
    api["12"]["inputs"]["strength"] = 0.0
    off = img2img_images(host, api, "i2i_cn_off")["result"]
    plain = copy.deepcopy(api)
    plain["13"]["inputs"].update(positive=["5", 0], negative=["6", 0])
    for node in ("10", "11", "12"):
        del plain[node]
    assert np.array_equal(off, img2img_images(host, plain, "i2i_cn_plain")["result"])
    assert np.abs(steered - off).mean() > 1.0, "the tiny ControlNet must change the result"
