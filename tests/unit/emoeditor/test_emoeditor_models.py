"""Encoder and predictor parity against the official code's outputs, with the golden random weights.

The weights are rebuilt once per session by the golden folder's make_weights.py (numpy, checksummed, ~8 s).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from emo_core.emoeditor.encoder import EmotionEncoder
from emo_core.emoeditor.loaders import load_emo_encoder, load_emo_predictor
from emo_core.emoeditor.predictor import EmotionPredictor, preprocess
from emo_core.errors import CheckpointError
from emo_core.weights import read_weights

IMAGES = ("astronaut", "coffee", "chelsea", "camera", "random_h100_w150")


@pytest.fixture(scope="session")
def emo_weights(golden, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("emoeditor_weights")
    subprocess.run([sys.executable, str(golden / "emoeditor" / "make_weights.py"), str(out)], check=True,
                   capture_output=True)
    yield out
    shutil.rmtree(out, ignore_errors=True)  # ~460 MB


@pytest.fixture(scope="module")
def encoder_golden(golden):
    return load_file(golden / "emoeditor" / "encoder_golden.safetensors")


@pytest.fixture(scope="module")
def predictor_golden(golden):
    return load_file(golden / "emoeditor" / "predictor_golden.safetensors")


@pytest.fixture(scope="module")
def predictor(emo_weights):
    return load_emo_predictor(emo_weights / "emo_predictor_random.pt")


# --- encoder -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_encoder_matches_the_official_outputs(emo_weights, encoder_golden, suffix):
    encoder = load_emo_encoder(emo_weights / f"emo_encoder_random{suffix}")
    assert encoder.config.is_published_layout
    directions = encoder_golden["directions"]
    with torch.no_grad():
        one_d = [encoder(d) for d in directions]  # test.py calls it with an (8,) vector
        batched = encoder(directions)
    assert all(o.shape == (1, 77, 768) for o in one_d) and batched.shape == (14, 77, 768)
    assert (torch.cat(one_d) - encoder_golden["outputs_1d"]).abs().max() <= 1e-5
    assert (batched - encoder_golden["outputs_batched"]).abs().max() <= 1e-5


def test_encoder_layout_and_extension_widths():
    with torch.device("meta"):  # shapes only
        published = EmotionEncoder()
    shapes = {k: tuple(v.shape) for k, v in published.state_dict().items()}
    assert list(shapes) == [f"fc.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")]
    assert shapes["fc.6.weight"] == (59136, 768)
    assert sum(v.numel() for v in published.parameters()) == 46_003_456

    with torch.device("meta"):  # EXTENSION: SDXL-width tokens and a pooled head; shapes only
        sdxl = EmotionEncoder(tokens=77, width=2048, pooled_width=1280)
        out = sdxl.encode(torch.zeros(2, 8))
    assert out.tokens.shape == (2, 77, 2048) and out.pooled.shape == (2, 1280)
    assert sdxl.state_dict()["pooled.weight"].shape == (1280, 768)
    with pytest.raises(ValueError, match=r"\(8,\) or \(B, 8\)"):
        published(torch.zeros(2, 9))


# --- predictor ---------------------------------------------------------------------------------------------------


def test_predictor_has_torchvision_keys(emo_weights):
    keys = list(EmotionPredictor().state_dict())
    stored, _ = read_weights(emo_weights / "emo_predictor_random.safetensors")
    assert len(keys) == 122 and keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                             "bn1.running_var", "bn1.num_batches_tracked"]
    assert "layer2.0.downsample.1.running_var" in keys and keys[-2:] == ["fc.weight", "fc.bias"]
    assert set(keys) == set(stored)


def test_preprocessing_reproduces_test_py_pixels(golden, predictor_golden):
    folder = golden / "emoeditor" / "images"
    images = [Image.open(folder / f"{name}.png") for name in IMAGES]
    assert images[3].mode == "L"  # camera: converted to RGB like test.py
    pixels = preprocess(images)
    assert pixels.shape == (5, 3, 224, 224) and pixels.dtype == torch.float32
    assert torch.equal(pixels, predictor_golden["pixels_test_py"])
    # A ComfyUI-style float tensor from the same 8-bit file, through the Pillow option: the same pixels.
    as_tensor = torch.from_numpy(np.array(images[1].convert("RGB"))).float().div(255)
    assert torch.equal(preprocess(as_tensor, resize="pil")[0], predictor_golden["pixels_test_py"][1])


def test_predictor_logits_from_the_png_files(golden, predictor, predictor_golden):
    folder = golden / "emoeditor" / "images"
    for i, name in enumerate(IMAGES):  # batch of one, as the golden run
        prediction = predictor.predict(Image.open(folder / f"{name}.png"))
        assert (prediction.logits[0] - predictor_golden["logits_test_py"][i]).abs().max() <= 1e-4, name
        assert (prediction.distribution[0] - predictor_golden["softmax_test_py"][i]).abs().max() <= 1e-5, name
    labels = predictor_golden["logits_test_py"].argmax(1).tolist()
    assert labels == [1, 4, 7, 5, 1]


def test_predictor_logits_from_golden_pixels(predictor, predictor_golden):
    with torch.no_grad():
        logits = predictor(predictor_golden["pixels_test_py"])  # a batch of five
        features = predictor.features(predictor_golden["pixels_test_py"])
        random_logits = predictor(predictor_golden["pixels_random"])
    assert (logits - predictor_golden["logits_test_py"]).abs().max() <= 1e-4
    assert (features - predictor_golden["features_avgpool_test_py"]).abs().max() <= 1e-4
    assert (random_logits - predictor_golden["logits_random"]).abs().max() <= 1e-4


def test_predict_always_uses_eval_mode_batch_norm(emo_weights, predictor_golden):
    pixels = predictor_golden["pixels_random"]
    # Fresh copies: a train-mode forward also updates the BN running statistics.
    in_train_mode = load_emo_predictor(emo_weights / "emo_predictor_random.safetensors").train()
    with torch.no_grad():
        batch_stats = in_train_mode(pixels.expand(2, -1, -1, -1).contiguous())
    assert (batch_stats[0] - predictor_golden["logits_random"][0]).abs().max() > 1e-2  # eval-mode BN matters

    predictor = load_emo_predictor(emo_weights / "emo_predictor_random.safetensors").train()
    prediction = predictor.predict(pixels[0].permute(1, 2, 0))  # 224 px HWC: passes through unchanged
    assert not predictor.training
    assert (prediction.logits - predictor_golden["logits_random"]).abs().max() <= 1e-4


def test_tensor_path_uses_antialiased_bilinear(golden, predictor, predictor_golden):
    folder = golden / "emoeditor" / "images"
    batch = [torch.from_numpy(np.array(Image.open(folder / f"{n}.png").convert("RGB"))).float().div(255)
             for n in ("astronaut", "camera")]
    pixels = preprocess(torch.stack(batch))  # ComfyUI IMAGE (B, H, W, 3)
    reference = predictor_golden["pixels_test_py"][[0, 3]]
    assert (pixels - reference).abs().max() <= 1.01 / 255  # float bilinear vs Pillow's uint8-rounded one
    prediction = predictor.predict(torch.stack(batch))
    assert prediction.labels.tolist() == [1, 5] and prediction.label_names == ["anger", "excitement"]


# --- loading the generated checkpoints ---------------------------------------------------------------------------


def test_pt_files_load_with_weights_only_and_equal_the_safetensors(emo_weights):
    for stem in ("emo_encoder_random", "emo_predictor_random"):
        pickled = torch.load(emo_weights / f"{stem}.pt", map_location="cpu", weights_only=True)
        ours, _ = read_weights(emo_weights / f"{stem}.pt")
        safe, _ = read_weights(emo_weights / f"{stem}.safetensors")
        assert list(ours) == list(pickled) and set(ours) == set(safe)
        assert all(torch.equal(ours[k], safe[k]) for k in ours)
    assert ours["bn1.num_batches_tracked"].dtype == torch.int64 and ours["bn1.num_batches_tracked"].shape == ()


def test_swapped_checkpoints_are_reported_as_the_wrong_model(emo_weights):
    predictor_file = emo_weights / "emo_predictor_random.pt"
    with pytest.raises(CheckpointError, match="emo_predictor_random.pt.*predictor.*not a.*encoder"):
        load_emo_encoder(predictor_file)
    encoder_file = emo_weights / "emo_encoder_random.safetensors"
    with pytest.raises(CheckpointError, match="emo_encoder_random.safetensors.*encoder.*not a.*predictor"):
        load_emo_predictor(encoder_file)
