"""Check emo-nodes' EmoEditor loading and sampling against diffusers, in one process with ComfyUI imported.

Usage: python emoeditor_parity.py COMFYUI_DIR EDITOR_PT
Prints one JSON object of measured differences and exits 1 if any is over its tolerance. Compared:

* the converted UNet (diffusers names -> LDM names -> ComfyUI's SD15_instructpix2pix) against diffusers'
  UNet2DConditionModel with the file's ``unet.*`` weights;
* ComfyUI's VAE built from ``auto_encoder.*`` against diffusers' AutoencoderKL (encode mode, decode);
* the edit's denoising (Euler over sigma(t_k) ending at sigma(0), VP rescale) against the published loop:
  diffusers' DDIMScheduler with ``num_train_timesteps`` overwritten by T, add_noise at timesteps[0], n DDIM steps;
* the timestep formula against DDIMScheduler.set_timesteps for several (T, n).
"""

import importlib.util
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCALE = 0.18215  # SD 1.5 latent scale (ip2p.py multiplies the init latent by it and divides before decoding)


def import_plugin():
    """The plugin package as ComfyUI imports it (its modules use relative imports)."""
    spec = importlib.util.spec_from_file_location("emo_nodes_plugin", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def published_scheduler(T: int):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
    scheduler.config.num_train_timesteps = T  # what ip2p.py does before set_timesteps
    return scheduler


def reference_edit(unet, init_latent, source_latent, tokens, noise, T: int, steps: int) -> torch.Tensor:
    """ip2p.py's loop without CFG (unscaled latents in, unscaled latent out)."""
    scheduler = published_scheduler(T)
    scheduler.set_timesteps(steps)
    latents = scheduler.add_noise(init_latent * SCALE, noise, scheduler.timesteps[:1])
    for t in scheduler.timesteps:
        eps = unet(torch.cat([latents, source_latent], dim=1), t, encoder_hidden_states=tokens).sample
        latents = scheduler.step(eps, t, latents).prev_sample
    return latents / SCALE


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def main() -> int:
    comfy_dir, editor_path = Path(sys.argv[1]), sys.argv[2]
    sys.path.insert(0, str(HERE))
    import make_tiny_models

    make_tiny_models.boot_comfy(comfy_dir)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from tiny_models.configs import TINY_IP2P_DIFFUSERS_UNET, register

    register()
    plugin = import_plugin()
    loading, sampling = plugin.nodes.emoeditor.loaders, plugin.nodes.emoeditor.sampling
    import comfy.model_management as mm

    model, vae = loading.load_editor(editor_path)
    mm.load_models_gpu([model])
    state = torch.load(editor_path, map_location="cpu", weights_only=True)
    unet = UNet2DConditionModel(**TINY_IP2P_DIFFUSERS_UNET)
    unet.load_state_dict({k[5:]: v.float() for k, v in state.items() if k.startswith("unet.")})
    with torch.device("meta"):  # shapes only; the weights come from the file
        ref_vae = AutoencoderKL(latent_channels=4, layers_per_block=2, block_out_channels=[128, 256, 512, 512],
                                down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
    ref_vae.load_state_dict({k[13:]: v.float() for k, v in state.items() if k.startswith("auto_encoder.")},
                            assign=True)

    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 64, 64, 3, generator=g)
    tokens = torch.randn(1, 77, 768, generator=g)
    out, tol = {}, {}
    with torch.inference_mode():
        x = torch.randn(1, 8, 8, 8, generator=g)
        t = torch.tensor([500.0])
        ours = model.model.diffusion_model(x.to(model.model.get_dtype()), t, context=tokens)
        out["unet_rel"], tol["unet_rel"] = relative(ours, unet(x, t, encoder_hidden_states=tokens).sample), 1e-4

        source_latent = vae.encode(image)
        ref_latent = ref_vae.encode(image.movedim(-1, 1) * 2 - 1).latent_dist.mode()
        out["vae_encode_rel"], tol["vae_encode_rel"] = relative(source_latent, ref_latent), 1e-4
        decoded = vae.decode(source_latent)
        ref_decoded = (ref_vae.decode(ref_latent).sample / 2 + 0.5).clamp(0, 1).movedim(1, -1)
        out["vae_decode_abs"], tol["vae_decode_abs"] = float((decoded - ref_decoded).abs().max()), 1e-3

        T, steps = 850, 5
        init_latent = source_latent * 0.9
        noise = torch.randn(init_latent.shape, generator=g)
        encoded = type("Encoded", (), {"tokens": tokens, "pooled": None})()
        conditioning = sampling.emotion_conditioning(encoded, source_latent, None)
        sigmas = sampling.edit_sigmas(model, sampling.edit_timesteps(T, steps))
        ours = sampling.denoise(model, conditioning, init_latent, noise, sigmas, seed=0)
        reference = reference_edit(unet, init_latent, source_latent, tokens, noise, T, steps)
        out["edit_rel"], tol["edit_rel"] = relative(ours, reference), 1e-4

    mismatched = []
    for T, steps in ((700, 30), (980, 30), (851, 7), (700, 1)):
        scheduler = published_scheduler(T)
        scheduler.set_timesteps(steps)
        if scheduler.timesteps.tolist() != sampling.edit_timesteps(T, steps):
            mismatched.append([T, steps])
    out["timestep_mismatches"], tol["timestep_mismatches"] = len(mismatched), 0
    failed = {k: v for k, v in out.items() if v > tol[k]}
    print(json.dumps({"measured": out, "tolerance": tol, "failed": failed, "mismatched_timesteps": mismatched}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
