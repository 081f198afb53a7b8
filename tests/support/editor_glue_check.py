"""Check the EmoEditor trainer's ComfyUI glue (nodes/training/editor/backbone) and its LoRA keys against ComfyUI itself,
in one process with ComfyUI imported.

Usage: python editor_glue_check.py COMFYUI_DIR MODELS_DIR
Prints one JSON object of measured differences and exits 1 if any is over its tolerance. Compared:

* LoRA keys: adapters on full-size SD 1.5 and SDXL InstructPix2Pix UNetModels (built on the meta device from
  ComfyUI's own configs) and on the tiny ones: every key is mapped by ``comfy.lora.model_lora_keys_unet`` and
  consumed by ``comfy.lora.load_lora`` (what LoraLoader runs);
* the LoRA as ComfyUI applies it (``trained_model``, i.e. ``load_lora_for_models``) against the adapters merged by
  ``detach_lora(merge=True)`` on the trained copy (``unet_copy``); the input MODEL's weights unchanged;
* ``predict_noise`` against ComfyUI's own ``extra_conds`` + ``apply_model`` (the sampling path; SDXL: the ADM
  vector from the pooled embedding and the image size), and the training schedule against diffusers';
* the VAE posterior: its mean against ComfyUI's ``VAE.encode`` (the mode), mean and std against diffusers'
  AutoencoderKL ``latent_dist``; a TAESD VAE gives its latent with std 0;
* SD 1.5 text: ``clip_text_encoder`` against transformers' CLIPTextModel ``last_hidden_state`` (same weights,
  the published tokenisation), brackets included;
* the "full" outputs: the editor file read back by Load EmoEditor's loader, and the "set" patches.
"""

import importlib
import json
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from emoeditor_parity import import_plugin, relative  # noqa: E402

SD15_IP2P = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
             "legacy": False, "adm_in_channels": None, "in_channels": 8, "model_channels": 320,
             "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
             "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1, "use_linear_in_transformer": False,
             "context_dim": 768, "num_heads": 8, "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
             "use_temporal_attention": False, "use_temporal_resblock": False}
SDXL_IP2P = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
             "legacy": False, "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 8,
             "model_channels": 320, "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, 2, 2, 10, 10],
             "channel_mult": [1, 2, 4], "transformer_depth_middle": 10, "use_linear_in_transformer": True,
             "context_dim": 2048, "num_head_channels": 64,
             "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
             "use_temporal_attention": False, "use_temporal_resblock": False}


def unmapped_lora_keys(base, lora: dict) -> tuple[int, int]:
    """(keys ComfyUI's loader did not consume, LoRA keys) for a LoRA state dict on a BaseModel."""
    import comfy.lora

    key_map = comfy.lora.model_lora_keys_unet(base, {})
    loaded = comfy.lora.load_lora(lora, key_map, log_missing=False)
    consumed = {f"{target[len('diffusion_model.'):-len('.weight')]}" for target in loaded}
    names = {k[len("diffusion_model."):].rsplit(".lora_", 1)[0].removesuffix(".alpha") for k in lora}
    return len(names - consumed), len(lora)


def full_size_keys(lora_mod, out: dict) -> None:
    """Adapters on the real-size UNets (meta device: shapes only)."""
    import comfy.model_detection

    for label, config, kind in (("sd15", SD15_IP2P, "SD15_instructpix2pix"),
                                ("sdxl", SDXL_IP2P, "SDXL_instructpix2pix")):
        model_config = comfy.model_detection.model_config_from_unet_config(dict(config), {})
        assert type(model_config).__name__ == kind, type(model_config).__name__
        base = model_config.get_model({}, device="meta")
        names = lora_mod.attach_lora(base.diffusion_model, lora_mod.DEFAULT_TARGETS, 4, 4.0)
        placeholder = {}
        for name in names:  # load_lora reads only the keys and alpha: small CPU placeholders for meta weights
            placeholder |= {f"diffusion_model.{name}.lora_up.weight": torch.zeros(1, 1),
                            f"diffusion_model.{name}.lora_down.weight": torch.zeros(1, 1),
                            f"diffusion_model.{name}.alpha": torch.tensor(4.0)}
        out[f"{label}_full_unmapped"], out[f"{label}_full_lora_keys"] = unmapped_lora_keys(base, placeholder)


def lora_as_comfy_applies_it(plugin, lora_mod, model, label: str, out: dict) -> None:
    glue = plugin.nodes.training.editor.backbone
    import comfy.model_management as mm

    mm.load_models_gpu([model], force_full_load=True)
    before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    unet = glue.unet_copy(model)
    lora_mod.attach_lora(unet, lora_mod.DEFAULT_TARGETS, 4, 2.0, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in lora_mod.lora_parameters(unet)[1::2]:
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    state = lora_mod.lora_state_dict(unet)
    lora_mod.detach_lora(unet, merge=True)
    merged = unet.state_dict()
    after = model.model.diffusion_model.state_dict()
    out[f"{label}_input_changed"] = sum(not torch.equal(before[k], after[k]) for k in before) + \
        len(set(after) ^ set(before))
    out[f"{label}_unmapped"], out[f"{label}_lora_keys"] = unmapped_lora_keys(model.model, state)
    patched = glue.trained_model(model, "lora", state)
    mm.load_models_gpu([patched], force_full_load=True)
    applied = patched.model.diffusion_model.state_dict()
    out[f"{label}_lora_vs_merge_rel"] = max(relative(applied[k], merged[k]) for k in merged)
    out[f"{label}_lora_changed_weights"] = sum(not torch.equal(applied[k], before[k]) for k in before)
    mm.load_models_gpu([model], force_full_load=True)


def predict_noise_matches_comfy(plugin, model, label: str, out: dict, size: int = 64) -> None:
    glue = plugin.nodes.training.editor.backbone
    import comfy.model_management as mm

    mm.load_models_gpu([model], force_full_load=True)
    base = model.model
    backbone = glue.ComfyEditorBackbone(model, base.diffusion_model, (size, size))
    g = torch.Generator().manual_seed(3)
    h = size // 8
    x0, eps, source = (torch.randn(2, 4, h, h, generator=g) for _ in range(3))
    tokens = torch.randn(2, 77, backbone.token_width, generator=g)
    pooled = torch.randn(2, 1280, generator=g) if backbone.is_sdxl else None
    t = torch.tensor([500, 120])
    a = backbone.alphas_cumprod()[t].float().view(-1, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    sigma = base.model_sampling.sigma(t.float())
    conds = {"noise": x_t, "device": x_t.device, "concat_latent_image": source, "pooled_output": pooled,
             "width": size, "height": size, "crop_w": 0, "crop_h": 0, "target_width": size, "target_height": size}
    extra = {k: v.cond for k, v in base.extra_conds(**conds).items()}
    with torch.no_grad():
        ours = backbone.predict_noise(torch.cat([x_t, source], 1), t, tokens, pooled).float()
        x_k = x_t / a.sqrt()  # k-diffusion scale: x0 + sigma * eps
        denoised = base.apply_model(x_k, sigma, c_crossattn=tokens, **extra)
        theirs = (x_k - denoised) / sigma.view(-1, 1, 1, 1)
    out[f"{label}_predict_noise_rel"] = relative(ours, theirs)
    if pooled is not None:
        out[f"{label}_adm_rel"] = relative(backbone.adm(pooled), extra["y"])


def vae_posterior(plugin, vae, editor_path: Path, out: dict) -> None:
    from diffusers import AutoencoderKL

    encode = plugin.nodes.training.editor.backbone.vae_image_encoder(vae)
    g = torch.Generator().manual_seed(4)
    images = torch.rand(2, 3, 64, 64, generator=g)
    mean, std = encode(images * 2 - 1)
    out["vae_mean_vs_comfy_mode_rel"] = relative(mean, vae.encode(images.movedim(1, -1)))
    state = torch.load(editor_path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        ref = AutoencoderKL(latent_channels=4, layers_per_block=2, block_out_channels=[128, 256, 512, 512],
                            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
    ref.load_state_dict({k[13:]: v.float() for k, v in state.items() if k.startswith("auto_encoder.")}, assign=True)
    with torch.no_grad():
        dist = ref.encode(images * 2 - 1).latent_dist
    out["vae_mean_vs_diffusers_rel"] = relative(mean, dist.mean)
    out["vae_std_vs_diffusers_rel"] = relative(std, dist.std)


def taesd_posterior(plugin, vae, out: dict) -> None:
    encode = plugin.nodes.training.editor.backbone.vae_image_encoder(vae)
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    mean, std = encode(images * 2 - 1)
    out["taesd_mean_vs_comfy_rel"] = relative(mean, vae.encode(images.movedim(1, -1)))
    out["taesd_std_max"] = float(std.abs().max())


def sd15_text(plugin, out: dict) -> None:
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models_base
    from tiny_models.configs import TINY_TEXT_ENCODER
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    comfy_dir = Path(comfy.sd.__file__).parent
    config = json.loads((comfy_dir / "sd1_clip_config.json").read_text())
    config.update(TINY_TEXT_ENCODER)
    torch.manual_seed(6)
    reference = CLIPTextModel(CLIPTextConfig(**config)).eval()
    target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
    clip = comfy.sd.CLIP(target, model_options={"clip_l_model_config": TINY_TEXT_ENCODER, "dtype": torch.float32})
    state = {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in reference.state_dict().items()}
    missing, unexpected = clip.load_sd(state)  # transformers 5 names the weights without "text_model."
    assert not unexpected and set(missing) <= {"text_projection.weight"}, (missing, unexpected)
    clip.clip_layer(-2)  # what a graph may have set; the trainer uses the published last hidden state regardless
    prompts = ["make the sky (very) stormy", "turn it into a sunny day " * 12]
    ours = plugin.nodes.training.editor.backbone.clip_text_encoder(clip, 768)(prompts)
    tokenizer = CLIPTokenizer.from_pretrained(str(comfy_dir / "sd1_tokenizer"))
    ids = tokenizer(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        theirs = reference(ids).last_hidden_state
    out["sd15_text_vs_transformers_rel"] = relative(ours, theirs)


def full_outputs(plugin, model, vae, out: dict) -> None:
    glue = plugin.nodes.training.editor.backbone
    import comfy.model_management as mm
    import comfy.utils

    unet = glue.unet_copy(model)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    trained = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    state = glue.ComfyEditorBackbone(model, unet, (64, 64), vae).editor_state_dict()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trained_editor.safetensors"
        comfy.utils.save_torch_file(state, str(path))
        loaded, _ = plugin.nodes.emoeditor.loaders.load_editor(str(path))
    mm.load_models_gpu([loaded], force_full_load=True)
    reread = loaded.model.diffusion_model.state_dict()
    out["full_file_roundtrip_rel"] = max(relative(reread[k], trained[k]) for k in trained)
    patched = glue.trained_model(model, "full", trained)
    mm.load_models_gpu([patched], force_full_load=True)
    applied = patched.model.diffusion_model.state_dict()
    out["full_set_patches_rel"] = max(relative(applied[k], trained[k].to(applied[k].dtype)) for k in trained)
    mm.load_models_gpu([model], force_full_load=True)


def schedule(plugin, model, out: dict) -> None:
    from diffusers import DDPMScheduler

    ours = plugin.nodes.training.editor.backbone.ComfyEditorBackbone(model, model.model.diffusion_model, (64, 64))
    reference = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").alphas_cumprod
    out["alphas_cumprod_rel"] = relative(ours.alphas_cumprod(), reference.double())


def main() -> int:
    comfy_dir, models = Path(sys.argv[1]), Path(sys.argv[2])
    import make_tiny_models

    make_tiny_models.boot_comfy(comfy_dir)
    from tiny_models.configs import register

    register()
    plugin = import_plugin()
    import comfy.sd

    importlib.import_module(plugin.__name__ + ".nodes.training.editor.backbone")  # then reachable as plugin.nodes.*
    lora_mod = importlib.import_module(plugin.__name__ + ".emo_core.training.lora")
    out: dict = {}
    tol = {}
    with torch.inference_mode(False):
        full_size_keys(lora_mod, out)
        editor_path = models / "emoeditor" / make_tiny_models.TINY_IP2P_NAME
        sd15, sd15_vae = plugin.nodes.emoeditor.loaders.load_editor(str(editor_path))
        sdxl = comfy.sd.load_diffusion_model(str(models / "checkpoints" / make_tiny_models.TINY_SDXL_IP2P_NAME))
        _, _, taesd, _ = comfy.sd.load_checkpoint_guess_config(
            str(models / "checkpoints" / make_tiny_models.TINY_SDXL_NAME), output_vae=True, output_clip=False)
        for label, model in (("sd15", sd15), ("sdxl", sdxl)):
            lora_as_comfy_applies_it(plugin, lora_mod, model, label, out)
            predict_noise_matches_comfy(plugin, model, label, out)
        schedule(plugin, sd15, out)
        vae_posterior(plugin, sd15_vae, editor_path, out)
        taesd_posterior(plugin, taesd, out)
        sd15_text(plugin, out)
        full_outputs(plugin, sd15, sd15_vae, out)
    for key in out:
        if key.endswith(("_unmapped", "_input_changed", "_std_max")):
            tol[key] = 0
        elif key.endswith("_rel"):
            tol[key] = 1e-4
    failed = {k: v for k, v in out.items() if k in tol and not v <= tol[k]}  # NaN fails too
    for label in ("sd15", "sdxl"):  # the LoRA must touch weights at all, or the comparison above proves nothing
        if out[f"{label}_lora_changed_weights"] < 10:
            failed[f"{label}_lora_changed_weights"] = out[f"{label}_lora_changed_weights"]
    print(json.dumps({"measured": out, "tolerance": tol, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
