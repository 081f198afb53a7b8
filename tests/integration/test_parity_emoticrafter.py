"""Pipeline parity: the EmotiCrafter example workflow on the real host against the published diffusers path.

Both sides run the same tiny seeded SDXL (built in diffusers format, converted to a ComfyUI checkpoint with
ComfyUI's own key maps) and the same tiny EIT (the published ``.pth`` format). The reference is
``StableDiffusionXLPipeline`` as EmotiCrafter's inference.py drives it: ``encode_prompt`` with SDXL base's
``force_zeros_for_empty_prompt`` (all-zero negative cond and pooled), the EIT on the positive embeds only, the
pooled output unchanged, cfg 7.5, 25 Euler steps with the SDXL base scheduler config.

Tolerances (fp32 on both sides, same weights): the two sides differ only in the order of floating-point
operations (batched vs separate cond/uncond passes, attention kernels, σ tables built in float32 vs float64 then
rounded), i.e. a few float32 ulps per operation, amplified by 25 steps at cfg 7.5. Measured: text ≈ 3e-6 on
values ≈ 7; final latent ≈ 1e-6 relative to its largest value; image ≤ 1 PNG step. The latent tolerance
(1e-4 relative) sits two orders above that and orders below what any wiring fault gives
(``test_tolerance_catches_wiring_faults``).
"""

from __future__ import annotations

import copy
import io
import json
import subprocess

import diffusers_tiny_sdxl
import numpy as np
import pytest
import torch
from comfy_host import COMFY_DIR, PYTHON
from conftest import load_workflow
from paths import SUPPORT
from PIL import Image

CHECKPOINT = "emo_parity_sdxl.safetensors"
EIT = "emo_tiny_eit.pth"
WORKFLOW = "emoticrafter_text_to_image"
HEIGHT, WIDTH = 64, 96  # latent 8x12; not square, so a swapped (height, width) in the size conditioning shows
CORNERS = [(-3.0, -3.0), (3.0, 3.0)]

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside diffusers

TEXT_TOL = 1e-5
LATENT_RTOL = 1e-4  # of the largest latent value
IMAGE_TOL = 1e-4  # of the [0, 1] range, before the host's 8-bit truncation


# --- the two sides' models ---------------------------------------------------------------------------------------

SHORT = "a lighthouse on a rocky coast"
# 120 one-token words: the 77-token window ends between two words, where ComfyUI's first chunk and diffusers'
# truncation agree (ComfyUI moves a word that straddles the boundary into the next chunk)
LONG = " ".join(SHORT.split() * 20)
PROMPTS = {"short": SHORT, "empty": "", "long": LONG}


@pytest.fixture(scope="module")
def converted(host, tmp_path_factory):
    """The diffusers components, also written through ComfyUI's key maps as a host checkpoint; and what ComfyUI's
    CLIPTextEncode makes of PROMPTS on that checkpoint (one ComfyUI process does both)."""
    parts = diffusers_tiny_sdxl.build()
    folder = tmp_path_factory.mktemp("parity_sdxl")
    src = diffusers_tiny_sdxl.save_state_dicts(parts, folder / "diffusers")
    (folder / "prompts.json").write_text(json.dumps(list(PROMPTS.values())))
    target = host.base / "models" / "checkpoints" / CHECKPOINT
    done = subprocess.run([str(PYTHON), str(SUPPORT / "diffusers_to_comfy.py"), str(COMFY_DIR), str(src),
                           str(target), "--encode", str(folder / "prompts.json"), str(folder / "encoded.pt")],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"conversion failed:\n{done.stderr[-6000:]}"
    encoded = torch.load(folder / "encoded.pt", weights_only=True)
    return parts, dict(zip(PROMPTS, encoded, strict=True))


@pytest.fixture(scope="module")
def pipe(converted):
    return diffusers_tiny_sdxl.pipeline(converted[0])


@pytest.fixture(scope="module")
def comfy_text(converted):
    return converted[1]


@pytest.fixture(scope="module")
def eit(host):
    import emo_core

    return emo_core.load_eit(host.base / "models" / "emoticrafter" / EIT)


# --- text: ComfyUI's CLIPTextEncode vs diffusers' encode_prompt ---------------------------------------------------


def test_long_prompt_is_cut_between_words(pipe):
    words = LONG.split()
    assert all(len(pipe.tokenizer(w, add_special_tokens=False).input_ids) == 1 for w in set(words))
    assert len(words) > 77


@pytest.mark.parametrize("name", list(PROMPTS))
def test_text_encoding_matches_encode_prompt(pipe, comfy_text, name):
    ours = comfy_text[name]
    embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
        PROMPTS[name], device="cpu", do_classifier_free_guidance=True)
    chunks = 2 if name == "long" else 1
    assert ours["cond"].shape == (1, 77 * chunks, 2048) and ours["pooled"].shape == (1, 1280)
    # the first 77-token chunk is what diffusers' truncation keeps; ComfyUI's pooled output is the first chunk's
    assert (ours["cond"][:, :77] - embeds).abs().max() < TEXT_TOL
    assert (ours["pooled"] - pooled).abs().max() < TEXT_TOL
    assert not negative.any() and not negative_pooled.any()  # SDXL base: zeros, what ConditioningZeroOut gives


# --- image: the example workflow on the host vs the published pipeline --------------------------------------------


def host_graph(valence: float, arousal: float, tag: str) -> dict:
    """The shipped workflow with only models, size and emotion changed, plus a float copy of the final latent."""
    api = copy.deepcopy(load_workflow(WORKFLOW)[0])
    by_class = {node["class_type"]: node["inputs"] for node in api.values()}
    by_class["CheckpointLoaderSimple"]["ckpt_name"] = CHECKPOINT
    by_class["EmoNodes_EmotiCrafterLoader"]["eit_name"] = EIT
    by_class["EmoNodes_ValenceArousal"].update(valence=valence, arousal=arousal)
    by_class["EmptyLatentImage"].update(width=WIDTH, height=HEIGHT)
    by_class["SaveImage"]["filename_prefix"] = f"emo-nodes/test/parity_{tag}"
    sampler = next(k for k, v in api.items() if v["class_type"] == "KSampler")
    api["parity_latent"] = {"class_type": "SaveLatent",
                            "inputs": {"samples": [sampler, 0], "filename_prefix": f"emo-nodes/test/parity_{tag}"}}
    return api


def run_host(host, api) -> tuple[torch.Tensor, np.ndarray]:
    """(final latent in diffusion space, decoded PNG as uint8)."""
    from safetensors.torch import load_file

    entry = host.run(api)
    (latent_file,) = host.output_files(entry, "parity_latent", key="latents")
    save = next(k for k, v in api.items() if v["class_type"] == "SaveImage")
    (image_file,) = host.output_files(entry, save)
    scale = 0.13025  # ComfyUI keeps SDXL latents divided by the VAE scale; diffusers' latents are not
    latent = load_file(str(host.output_path(latent_file)))["latent_tensor"] * scale
    return latent, np.asarray(Image.open(io.BytesIO(host.fetch(image_file))))


def sampler_settings(api: dict) -> dict:
    inputs = next(v["inputs"] for v in api.values() if v["class_type"] == "KSampler")
    return {k: inputs[k] for k in ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise")}


def comfy_seeded_noise(seed: int) -> torch.Tensor:
    """The noise ComfyUI's KSampler draws for an empty latent: torch.randn on the CPU from manual_seed(seed)."""
    return torch.randn((1, 4, HEIGHT // 8, WIDTH // 8), generator=torch.Generator().manual_seed(seed))


def published_emoticrafter(pipe, eit, prompt: str, valence: float, arousal: float, noise: torch.Tensor,
                           steps: int, cfg: float, fault: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(final latent, image in [0, 1]) from the published path. ``fault`` swaps in one wiring mistake (used only to
    show that the comparison notices it)."""
    embeds, negative, pooled, negative_pooled = pipe.encode_prompt(prompt, device="cpu",
                                                                   do_classifier_free_guidance=True)
    v, a = torch.tensor([valence]), torch.tensor([arousal])
    with torch.no_grad():
        emotional = eit(embeds, valence=v, arousal=a)
        if fault == "encoded_empty_negative":
            negative, _, negative_pooled, _ = pipe.encode_prompt("", device="cpu", do_classifier_free_guidance=False)
        elif fault == "eit_on_negative_too":
            negative = eit(negative, valence=v, arousal=a)
    size = (WIDTH, HEIGHT) if fault == "size_ids_swapped" else (HEIGHT, WIDTH)  # diffusers' time ids are (h, w, …)
    # Same x_T on both sides: ComfyUI starts from noise·σ₀, diffusers multiplies the latents it is given by
    # init_noise_sigma = √(σ₀²+1); hand it noise·σ₀/√(σ₀²+1).
    schedule = diffusers_tiny_sdxl.sdxl_base_scheduler()
    schedule.set_timesteps(steps)
    if fault != "diffusers_noise_scale":
        noise = noise * schedule.sigmas[0] / schedule.init_noise_sigma
    final = {}

    def keep_latents(_pipe, _step, _t, tensors):
        final["latents"] = tensors["latents"]
        return tensors

    image = pipe(prompt_embeds=emotional, negative_prompt_embeds=negative, pooled_prompt_embeds=pooled,
                 negative_pooled_prompt_embeds=negative_pooled, num_inference_steps=steps, guidance_scale=cfg,
                 height=HEIGHT, width=WIDTH, original_size=size, target_size=size, latents=noise.clone(),
                 output_type="pt", callback_on_step_end=keep_latents).images
    return final["latents"], image


def png_agrees(png: np.ndarray, reference: torch.Tensor, tol: float) -> np.ndarray:
    """Per value: is the host's PNG what truncating an image within ``tol`` of the reference to 8 bits gives?
    (SaveImage stores floor(255·x).)"""
    scaled = 255.0 * reference[0].permute(1, 2, 0).numpy().astype(np.float64)
    gap = png.astype(np.float64) - scaled
    return (gap > -1.0 - 255.0 * tol) & (gap <= 255.0 * tol)


def compare(host_latent, host_png, latent, image) -> dict:
    scale = float(latent.abs().max())
    return {"latent_rel": float((host_latent - latent).abs().max()) / scale,
            "png_ok": float(png_agrees(host_png, image, IMAGE_TOL).mean()),
            "png_steps": float(np.abs(host_png.astype(np.float64) - 255.0 * image[0].permute(1, 2, 0).numpy()).max())}


@pytest.fixture(scope="module")
def host_runs(host, pipe):
    """The host's result per V-A corner, from the shipped workflow."""
    return {corner: run_host(host, host_graph(*corner, tag=f"{corner[0]:+g}_{corner[1]:+g}")) for corner in CORNERS}


@pytest.mark.parametrize("corner", CORNERS, ids=lambda c: f"V{c[0]:+g}A{c[1]:+g}")
def test_workflow_image_matches_published_pipeline(pipe, eit, host_runs, corner):
    api = load_workflow(WORKFLOW)[0]
    settings = sampler_settings(api)
    # The reference is Euler on the SDXL base schedule ("leading", 25 steps → t = 961 … 1): the workflow must ask
    # for exactly that, which euler + ddim_uniform at full denoise does.
    assert (settings["sampler_name"], settings["scheduler"], settings["denoise"]) == ("euler", "ddim_uniform", 1.0)
    prompt = next(v["inputs"]["text"] for v in api.values() if v["class_type"] == "CLIPTextEncode")
    host_latent, host_png = host_runs[corner]
    latent, image = published_emoticrafter(pipe, eit, prompt, *corner, comfy_seeded_noise(settings["seed"]),
                                           settings["steps"], settings["cfg"])
    result = compare(host_latent, host_png, latent, image)
    print(f"{corner}: {result}")
    assert host_png.shape == (HEIGHT, WIDTH, 3)
    assert 0.05 < image.mean() < 0.95 and image.std() > 0.02, "degenerate test image: tune the tiny VAE"
    assert result["latent_rel"] < LATENT_RTOL
    assert result["png_ok"] == 1.0, f"{1 - result['png_ok']:.2%} of PNG values off by more than truncation"


FAULTS = ["encoded_empty_negative", "eit_on_negative_too", "diffusers_noise_scale", "size_ids_swapped"]


@pytest.mark.parametrize("fault", FAULTS)
def test_tolerance_catches_wiring_faults(pipe, eit, host_runs, fault):
    """The same comparison fails when the reference is built with one wiring mistake: the tolerances are tight
    enough to tell the published wiring from its near misses."""
    api = load_workflow(WORKFLOW)[0]
    settings = sampler_settings(api)
    prompt = next(v["inputs"]["text"] for v in api.values() if v["class_type"] == "CLIPTextEncode")
    corner = CORNERS[-1]
    latent, image = published_emoticrafter(pipe, eit, prompt, *corner, comfy_seeded_noise(settings["seed"]),
                                           settings["steps"], settings["cfg"], fault=fault)
    result = compare(*host_runs[corner], latent, image)
    print(f"{fault}: {result}")
    assert result["latent_rel"] > 10 * LATENT_RTOL
    assert result["png_ok"] < 1.0
