"""Convert tiny diffusers-format SDXL components into a single-file checkpoint the tiny-SDXL host config loads.

Usage: python diffusers_to_comfy.py COMFYUI_DIR SRC_DIR OUT.safetensors [--encode PROMPTS.json ENCODED.pt]
SRC_DIR holds ``unet``, ``text_encoder``, ``text_encoder_2`` and ``vae`` ``.safetensors`` under their published
diffusers/transformers names (``diffusers_tiny_sdxl.save_state_dicts``). Key names come from ComfyUI's own maps:
``comfy.utils.unet_to_diffusers`` for the UNet, ``SDXL.process_clip_state_dict_for_saving`` for the text
encoders; diffusers' ``AutoencoderTiny`` is ComfyUI's ``TAESD`` with other names and is mapped by position.
Every part is loaded strictly into the ComfyUI module before saving, so a missing or misshapen tensor fails here.
``--encode`` then loads the written file as the host does and encodes prompts with ``CLIPTextEncode``
(``comfy_text_encode.py``), sparing the text-parity test a second ComfyUI start. Test tooling only.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
# The diffusers/ComfyUI scale of SDXL latents: ComfyUI's TAESD reads (latent - shift) * scale, the same number
# ComfyUI's own taesdxl loader sets, so its decoder sees the diffusion-space latent as diffusers' does.
TAESDXL_SCALE = 0.13025
CLIP_LOGIT_SCALE = math.log(100.0)  # not used for text encoding; set so the file holds no uninitialised values


def load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def unet_to_ldm(state: dict, unet_config: dict) -> dict:
    import comfy.utils

    names = comfy.utils.unet_to_diffusers(unet_config)  # {diffusers name: LDM name}
    unmapped = sorted(set(state) - set(names))
    if unmapped:
        raise KeyError(f"UNet tensors without an LDM name: {unmapped[:8]}")
    return {names[k]: v for k, v in state.items()}


def text_encoders_to_comfy(clip_l: dict, clip_g: dict) -> dict:
    """ComfyUI's in-memory SDXL text-encoder names: transformers names under ``clip_{l,g}.transformer.``."""
    out = {f"clip_l.transformer.{k}": v for k, v in clip_l.items()}
    out |= {f"clip_g.transformer.{k}": v for k, v in clip_g.items()}
    return out


def module_order(key: str) -> tuple:
    """Sort key: Sequential indices numerically (a file stores its keys alphabetically, 10 before 2)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in key.split("."))


def taesd_by_position(vae: dict, template: dict) -> dict:
    """diffusers ``encoder.layers.*`` / ``decoder.layers.*`` onto TAESD's ``taesd_encoder.*`` / ``taesd_decoder.*``
    by position: both are the same Sequential networks (ComfyUI's decoder counts its clamp as layer 0)."""
    out = {}
    for src, dst in (("encoder.", "taesd_encoder."), ("decoder.", "taesd_decoder.")):
        theirs = sorted(((k, v) for k, v in vae.items() if k.startswith(src)), key=lambda kv: module_order(kv[0]))
        ours = sorted((k for k in template if k.startswith(dst)), key=module_order)
        if len(theirs) != len(ours):
            raise KeyError(f"{src}: {len(theirs)} diffusers tensors vs {len(ours)} TAESD tensors")
        for (name, value), key in zip(theirs, ours, strict=True):
            if tuple(value.shape) != tuple(template[key].shape):
                raise ValueError(f"{name} {tuple(value.shape)} does not fit {key} {tuple(template[key].shape)}")
            out[key] = value
    out["vae_scale"] = torch.tensor(TAESDXL_SCALE)
    out["vae_shift"] = torch.tensor(0.0)
    return out


def load_strict(module: torch.nn.Module, state: dict, may_miss: dict | None = None) -> None:
    """Every tensor of ``state`` lands in ``module``; only the keys in ``may_miss`` may be absent (set to those
    values instead)."""
    state = {**(may_miss or {}), **state}
    module.load_state_dict(state, strict=True)


def convert(src: Path, out: Path) -> Path:
    import comfy.taesd.taesd
    import comfy.utils

    sys.path.insert(0, str(HERE))
    from tiny_models.configs import TINY_SDXL_UNET, TinySDXL, TinySDXLClipModel

    config = TinySDXL(TINY_SDXL_UNET)
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({})
    load_strict(model.diffusion_model, unet_to_ldm(load(src / "unet.safetensors"), TINY_SDXL_UNET))

    clip = TinySDXLClipModel(dtype=torch.float32)
    no_source = {  # ComfyUI parameters the diffusers encoders do not have; none affects the SDXL conditioning
        "clip_l.transformer.text_projection.weight": torch.eye(768),  # dropped again when saving
        "clip_l.logit_scale": torch.tensor(CLIP_LOGIT_SCALE),
        "clip_g.logit_scale": torch.tensor(CLIP_LOGIT_SCALE),
    }
    load_strict(clip, text_encoders_to_comfy(load(src / "text_encoder.safetensors"),
                                             load(src / "text_encoder_2.safetensors")), no_source)

    vae = comfy.taesd.taesd.TAESD(latent_channels=4)
    load_strict(vae, taesd_by_position(load(src / "vae.safetensors"), vae.state_dict()))

    state = model.state_dict_for_saving(clip.state_dict(), vae.state_dict(), None)
    # fp16 as published SDXL files; the weights are fp16-exact, so this loses nothing. The VAE's scale/shift
    # scalars stay fp32 (0.13025 is not fp16-exact).
    state = {k: v.detach().contiguous() if v.ndim == 0 else v.detach().to(torch.float16).contiguous()
             for k, v in state.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    comfy.utils.save_torch_file(state, str(tmp), metadata={"emo_nodes_tiny": "sdxl-from-diffusers"})
    tmp.replace(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comfy_dir", type=Path)
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--encode", nargs=2, type=Path, metavar=("PROMPTS_JSON", "ENCODED_PT"))
    a = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from make_tiny_models import boot_comfy

    boot_comfy(a.comfy_dir)
    print(convert(a.src, a.out))
    if a.encode:
        import comfy_text_encode

        comfy_text_encode.write(a.out, *a.encode)


if __name__ == "__main__":
    main()
