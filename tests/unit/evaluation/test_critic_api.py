"""The V-A critic's Python API (emo_core.load_va_critic) against the formula computed directly with transformers
and torchvision (tests/support/tiny_critic.py), on tiny seeded CLIP models in the Hugging Face B/32 layout and heads
pickled as from CUDA; the file checks and their messages."""

from pathlib import Path

import numpy as np
import pytest
import torch
from critic_reference import reference_clip_score, reference_va
from paths import ROOT
from tiny_critic import (
    random_head,
    save_clip,
    save_head,
    tiny_clip,
)

import emo_core
from emo_core.critic.preprocess import clip_pixels
from emo_core.errors import CheckpointError

TOKENIZER = ROOT / ".host" / "comfyui" / "comfy" / "sd1_tokenizer"  # ComfyUI's copy of CLIP's BPE files
SIZES = [(224, 224), (256, 384), (333, 197), (100, 150), (512, 512), (225, 300)]
PROMPT = "a child playing in a park"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("critic")
    model = tiny_clip(seed=7)
    heads = {"valence": random_head(1, scale=1.335), "arousal": random_head(2, scale=1.179)}
    return {
        "model": model, "heads": heads,
        "clip": save_clip(model, folder / "clip" / "model.safetensors"),
        "clip_bin": save_clip(model, folder / "bin" / "pytorch_model.bin"),
        "vision_only": save_clip(model, folder / "vision" / "model.safetensors", vision_only=True),
        "valence": save_head(heads["valence"], folder / "valence1_CLIP_lr=0.0001_loss=MSELoss_sc=test_cuda.pth"),
        "arousal": save_head(heads["arousal"], folder / "arousal1_CLIP_lr=0.001_loss=MSELoss_sc=test_cuda-1.pth"),
        "folder": folder,
    }


def images_u8(height: int, width: int, seed: int, count: int = 2) -> np.ndarray:
    """Smooth-ish random pictures (a random field upsampled) so that resizing matters."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, max(2, height // 16), max(2, width // 16), generator=generator)
    fine = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    noisy = (fine + 0.1 * torch.rand(fine.shape, generator=generator)).clamp(0, 1)
    return (noisy.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()


def as_image(u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(u8.astype(np.float32) / 255.0)


def test_heads_are_cuda_pickles(files):
    if not torch.cuda.is_available():  # a CUDA-tagged pickle needs map_location on a CPU machine
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(files["valence"], weights_only=True)


@pytest.mark.parametrize("clip_key", ["clip", "clip_bin"])
def test_api_equals_the_formula_on_many_sizes(files, clip_key):
    critic = emo_core.load_va_critic(files[clip_key], files["valence"], files["arousal"])
    worst = 0.0
    for index, (height, width) in enumerate(SIZES):
        u8 = images_u8(height, width, seed=index)
        pred = critic.predict(as_image(u8))
        assert pred.shape == (2, 2) and pred.dtype == torch.float32
        expected = reference_va(files["model"], files["heads"]["valence"], files["heads"]["arousal"], u8)
        worst = max(worst, (pred.double() - expected).abs().max().item())
    assert worst <= 1e-5, worst
    assert expected.std() > 0.05  # the predictions vary: the check is not on a constant


def test_rgba_and_grey_are_used_as_rgb(files):
    critic = emo_core.load_va_critic(files["clip"], files["valence"], files["arousal"])
    rgb = as_image(images_u8(240, 320, seed=11))
    rgba = torch.cat([rgb, torch.rand(*rgb.shape[:3], 1)], dim=-1)
    assert torch.equal(critic.predict(rgba), critic.predict(rgb))
    grey = rgb[..., :1]
    assert torch.equal(critic.predict(grey), critic.predict(grey.expand(-1, -1, -1, 3)))


def test_clip_score_equals_the_formula(files):
    critic = emo_core.load_va_critic(files["clip"], files["valence"], files["arousal"], tokenizer=TOKENIZER)
    u8 = np.concatenate([images_u8(256, 320, seed=s, count=2) for s in range(4)])
    for prompt in (PROMPT, "a storm over the sea", "people dancing"):
        scores = critic.clip_score(as_image(u8), prompt)
        expected = reference_clip_score(files["model"], TOKENIZER, u8, prompt)
        assert (scores.double() - expected).abs().max().item() <= 1e-4, prompt  # on the 0-100 scale
    assert (expected > 1).all()
    mixed = reference_clip_score(files["model"], TOKENIZER, u8, "a storm over the sea")
    assert (mixed > 0).any() and (mixed == 0).any(), mixed  # both sides of the clamp were exercised
    per_image = critic.clip_score(as_image(u8[:2]), ["people dancing", "a storm over the sea"])
    assert torch.allclose(per_image.double(), torch.stack([expected[0], mixed[1]]), atol=1e-4)


def test_tokenizer_gives_clips_ids():
    from emo_core.critic.tokenizer import ClipTokenizer

    ids, mask = ClipTokenizer(TOKENIZER)([PROMPT, "a " * 100])
    assert ids[0, :8].tolist() == [49406, 320, 2913, 1629, 530, 320, 1452, 49407]  # <start> a child ... park <end>
    assert ids.shape == (2, 77) and ids[1, -1].item() == 49407 and mask[0].sum().item() == 8  # long: truncated


def test_tokenizer_beside_the_clip_file_is_found(files, tmp_path):
    folder = tmp_path / "clip-vit-base-patch32"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(files["clip"])
    for name in ("vocab.json", "merges.txt"):
        (folder / name).symlink_to(TOKENIZER / name)
    critic = emo_core.load_va_critic(folder / "model.safetensors", files["valence"], files["arousal"])
    assert critic.has_text and critic.clip_score(as_image(images_u8(224, 224, 3)), PROMPT).shape == (2,)


def test_missing_text_tower_or_tokenizer_is_a_clear_error(files):
    critic = emo_core.load_va_critic(files["vision_only"], files["valence"], files["arousal"], tokenizer=TOKENIZER)
    assert not critic.has_text
    image = as_image(images_u8(224, 224, 3))
    assert critic.predict(image).shape == (2, 2)  # V-A needs only the vision tower
    with pytest.raises(ValueError, match="no text tower"):
        critic.clip_score(image, PROMPT)
    no_tokenizer = emo_core.load_va_critic(files["clip"], files["valence"], files["arousal"])
    with pytest.raises(ValueError, match="no CLIP tokenizer"):
        no_tokenizer.clip_score(image, PROMPT)


@pytest.mark.parametrize(("vision", "projection"), [({"patch_size": 16}, 512), ({}, 768),
                                                    ({"patch_size": 14, "image_size": 224}, 512)])
def test_a_clip_other_than_b32_is_refused(files, vision, projection, tmp_path):
    path = save_clip(tiny_clip(seed=3, vision=vision, projection_dim=projection), tmp_path / "clip.safetensors")
    with pytest.raises(CheckpointError, match="not ViT-B/32") as error:
        emo_core.load_va_critic(path, files["valence"], files["arousal"])
    assert str(path) in str(error.value)


def test_open_clip_layout_and_other_files_are_named(files, tmp_path):
    open_clip = tmp_path / "open_clip.safetensors"
    from safetensors.torch import save_file

    save_file({"visual.conv1.weight": torch.zeros(8, 3, 32, 32), "visual.proj": torch.zeros(8, 512)}, str(open_clip))
    with pytest.raises(CheckpointError, match="open_clip layout"):
        emo_core.load_va_critic(open_clip, files["valence"], files["arousal"])
    with pytest.raises(CheckpointError, match="not a CLIP image encoder"):
        emo_core.load_va_critic(files["valence"], files["valence"], files["arousal"])


def test_heads_of_the_wrong_shape_or_kind_are_refused(files, tmp_path):
    wide = save_head(random_head(5, features=768), tmp_path / "wide.pth")
    with pytest.raises(CheckpointError, match=r"wrong shape.*\(1, 768\)") as error:
        emo_core.load_va_critic(files["clip"], wide, files["arousal"])
    assert "wide.pth" in str(error.value) and "valence head" in str(error.value)
    other = save_head({"fc.weight": torch.zeros(1, 512)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a V-A head"):
        emo_core.load_va_critic(files["clip"], files["valence"], other)


def test_torch_resize_stays_near_the_published_pixels():
    images = as_image(images_u8(300, 420, seed=9, count=3))
    pil, fast = clip_pixels(images, "pil"), clip_pixels(images, "torch")
    assert pil.shape == fast.shape == (3, 3, 224, 224)
    step = 1 / 255 / min(0.26130258, 0.26862954, 0.27577711)  # one 8-bit step in normalised units
    assert (pil - fast).abs().max().item() <= 1.5 * step
    with pytest.raises(ValueError, match="too elongated"):
        clip_pixels(torch.rand(1, 10, 400, 3))
    with pytest.raises(ValueError, match="NaN"):
        clip_pixels(torch.full((1, 32, 32, 3), float("nan")))


def test_weights_with_nan_are_refused(files, tmp_path):
    state = {k: v.clone() for k, v in files["heads"]["valence"].items()}
    state["classifier.0.weight"][0, 3] = float("nan")
    bad = save_head(state, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match="NaN"):
        emo_core.load_va_critic(files["clip"], bad, files["arousal"])


def test_unused_path_argument_types(files):
    critic = emo_core.load_va_critic(str(files["clip"]), Path(files["valence"]), files["arousal"], resize="torch")
    assert critic.resize == "torch"
    with pytest.raises(ValueError, match="resize"):
        emo_core.load_va_critic(files["clip"], files["valence"], files["arousal"], resize="nearest")
