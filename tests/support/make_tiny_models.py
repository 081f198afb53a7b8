"""Write the tiny seeded checkpoints that tests and the offline demo load through the real ComfyUI host.

Usage: python make_tiny_models.py COMFYUI_DIR OUT_DIR [--seed N]
Weights are random (seeded), written at test time, never committed.
"""

import argparse
import math
import sys
from collections import OrderedDict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
TINY_SDXL_NAME = "emo_tiny_sdxl.safetensors"
TINY_EIT_NAME = "emo_tiny_eit.pth"
TINY_IP2P_NAME = "emo_tiny_ip2p.pt"
TINY_EMOENC_NAME = "emo_tiny_emoenc.pt"
TINY_PREDICTOR_NAME = "emo_tiny_predictor.pt"
TINY_IP2P_LDM_NAME = "emo_tiny_ip2p_ldm.safetensors"
TINY_SDXL_IP2P_NAME = "emo_tiny_sdxl_ip2p.safetensors"
TINY_EMOENC_SDXL_NAME = "emo_tiny_emoenc_sdxl.pt"
TINY_SDXL_CONTROLNET_NAME = "emo_tiny_sdxl_controlnet.safetensors"


def boot_comfy(comfy_dir: Path) -> None:
    """Import ComfyUI in-process on the CPU (device and folders are chosen at import time)."""
    sys.path.insert(0, str(comfy_dir))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    from comfy.cli_args import args

    args.cpu = True


def seeded_init(module: torch.nn.Module, generator: torch.Generator) -> None:
    """ComfyUI's ops leave parameters uninitialised: fill every one deterministically."""
    for sub in module.modules():
        is_norm = isinstance(sub, (torch.nn.LayerNorm, torch.nn.GroupNorm))
        for name, p in sub.named_parameters(recurse=False):
            with torch.no_grad():
                if p.ndim == 0:
                    continue  # scalars (TAESD scale/shift) keep their constructor values
                if is_norm or p.ndim == 1:
                    p.fill_(1.0 if (is_norm and name == "weight") else 0.0)
                else:
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(fan_in))


def make_tiny_sdxl(out_path: Path, seed: int) -> Path:
    import comfy.taesd.taesd
    import comfy.utils

    sys.path.insert(0, str(HERE))
    from tiny_models.configs import TINY_SDXL_UNET, TinySDXL, TinySDXLClipModel

    generator = torch.Generator().manual_seed(seed)
    config = TinySDXL(TINY_SDXL_UNET)
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({})
    clip = TinySDXLClipModel(dtype=torch.float32)
    vae = comfy.taesd.taesd.TAESD(latent_channels=4)
    for part in (model.diffusion_model, clip, vae):
        seeded_init(part, generator)

    sd = model.state_dict_for_saving(clip.state_dict(), vae.state_dict(), None)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    comfy.utils.save_torch_file(sd, str(tmp), metadata={"emo_nodes_tiny": "sdxl", "seed": str(seed)})
    tmp.replace(out_path)
    return out_path


def published_eit_state_dict(generator: torch.Generator, n_layer=2, n_embd=64, positions=128, vocab=100) -> dict:
    """A random EIT in the published checkpoint's key format (GPT-2 Conv1D layouts, ``module.`` prefix, unused
    ``wte`` and c_attn key/value columns included), built from the key table alone."""
    tokens, feature, hidden = 16, 2048, 256
    shapes = {
        "wte.weight": (vocab, n_embd), "wpe.weight": (positions, n_embd),
        "xl_feature2gpt_feature.weight": (n_embd, feature), "gpt_feature2xl_feature.weight": (feature, n_embd),
        "ln_xl_feature.weight": (feature,), "ln_xl_feature.bias": (feature,),
        "attn_proj.weight": (n_embd, n_embd),
    }
    for stream in ("a_f", "v_f"):
        shapes |= {f"{stream}.0.weight": (hidden, 1), f"{stream}.0.bias": (hidden,),
                   f"{stream}.2.weight": (tokens * n_embd, hidden), f"{stream}.2.bias": (tokens * n_embd,)}
    for i in range(n_layer):
        for ln in ("ln_1", "ln_a", "ln_v", "ln_2"):
            shapes |= {f"h.{i}.{ln}.weight": (n_embd,), f"h.{i}.{ln}.bias": (n_embd,)}
        for attn in ("attn", "attn_a", "attn_v"):
            for part, width in (("c_attn", 3 * n_embd), ("c_z", 2 * n_embd), ("c_proj", n_embd)):
                shapes |= {f"h.{i}.{attn}.{part}.weight": (n_embd, width), f"h.{i}.{attn}.{part}.bias": (width,)}
        shapes |= {f"h.{i}.mlp.c_fc.weight": (n_embd, 4 * n_embd), f"h.{i}.mlp.c_fc.bias": (4 * n_embd,),
                   f"h.{i}.mlp.c_proj.weight": (4 * n_embd, n_embd), f"h.{i}.mlp.c_proj.bias": (n_embd,)}
    shapes |= {"ln_f.weight": (n_embd,), "ln_f.bias": (n_embd,)}
    sd = {}
    for key, shape in shapes.items():
        if ".ln_" in f".{key}" and key.endswith(".weight"):  # LayerNorm gains near 1
            value = 1 + 0.1 * torch.randn(shape, generator=generator)
        elif len(shape) == 1:
            value = 0.1 * torch.randn(shape, generator=generator)
        else:
            value = torch.randn(shape, generator=generator) / math.sqrt(min(shape))
        sd[f"module.{key}"] = value
    return sd


def make_tiny_eit(out_path: Path, seed: int) -> Path:
    sd = published_eit_state_dict(torch.Generator().manual_seed(seed))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    torch.save(sd, tmp)
    tmp.replace(out_path)
    return out_path


def save_pickle(sd: dict, out_path: Path) -> Path:
    """torch.save of a plain OrderedDict, like the published EmoEditor files; atomic."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    torch.save(OrderedDict(sd), tmp)
    tmp.replace(out_path)
    return out_path


def make_tiny_ip2p(out_path: Path, seed: int) -> Path:
    """EmoEditor's ``model_ip2p.pt`` layout: fp16 ``unet.*`` (a tiny 8-channel diffusers UNet2DConditionModel, context
    768) and ``auto_encoder.*`` (a diffusers AutoencoderKL). ComfyUI builds every diffusers-format KL VAE with the
    SD-VAE widths (ch 128, ch_mult 1-2-4-4), so the VAE keeps its real size (83.7 M parameters)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    sys.path.insert(0, str(HERE))
    from tiny_models.configs import TINY_IP2P_DIFFUSERS_UNET

    torch.manual_seed(seed)  # diffusers initialises from the global generator
    unet = UNet2DConditionModel(**TINY_IP2P_DIFFUSERS_UNET)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        block_out_channels=[128, 256, 512, 512], sample_size=256)
    sd = {f"unet.{k}": v for k, v in unet.state_dict().items()}
    sd |= {f"auto_encoder.{k}": v for k, v in vae.state_dict().items()}
    return save_pickle({k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}, out_path)


def save_ldm_unet(config, out_path: Path, seed: int, kind: str) -> Path:
    """A UNet-only checkpoint (no CLIP, no VAE) in ComfyUI's LDM layout, built from ComfyUI's classes: what
    CheckpointLoaderSimple gives for a native checkpoint of that family."""
    import comfy.utils

    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({})
    seeded_init(model.diffusion_model, torch.Generator().manual_seed(seed))
    sd = model.state_dict_for_saving(None, None, None)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items() if k.startswith("model.diffusion_model.")}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    comfy.utils.save_torch_file(sd, str(tmp), metadata={"emo_nodes_tiny": kind, "seed": str(seed)})
    tmp.replace(out_path)
    return out_path


def make_tiny_ip2p_ldm(out_path: Path, seed: int) -> Path:
    """A native SD 1.5 InstructPix2Pix checkpoint at the tiny width (the same layout as emo_tiny_ip2p.pt)."""
    sys.path.insert(0, str(HERE))
    from tiny_models.configs import TINY_IP2P_UNET, TinySD15InstructPix2Pix

    return save_ldm_unet(TinySD15InstructPix2Pix(TINY_IP2P_UNET), out_path, seed, "sd15_ip2p")


def make_tiny_sdxl_ip2p(out_path: Path, seed: int) -> Path:
    """EXTENSION: a tiny SDXL InstructPix2Pix UNet (TinySDXL with 8 input channels)."""
    sys.path.insert(0, str(HERE))
    from tiny_models.configs import TINY_SDXL_IP2P_UNET, TinySDXLInstructPix2Pix

    return save_ldm_unet(TinySDXLInstructPix2Pix(TINY_SDXL_IP2P_UNET), out_path, seed, "sdxl_ip2p")


def make_tiny_sdxl_controlnet(out_path: Path, seed: int) -> Path:
    """A ControlNet for TinySDXL in the original ControlNet checkpoint layout (``control_model.`` + ComfyUI's cldm
    names: input_hint_block, zero_convs, middle_block_out), which ComfyUI reads as is and onto which it maps
    diffusers-format files. The zero convolutions are random (seeded), not zero, so the hint visibly steers."""
    import comfy.cldm.cldm
    import comfy.utils

    sys.path.insert(0, str(HERE))
    from tiny_models.configs import TINY_SDXL_UNET, TinySDXL

    config = {k: v for k, v in TINY_SDXL_UNET.items() if k != "out_channels"} | TinySDXL.unet_extra_config
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, dtype=torch.float32, device="cpu", **config)
    seeded_init(net, torch.Generator().manual_seed(seed))
    sd = {f"control_model.{k}": v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    comfy.utils.save_torch_file(sd, str(tmp), metadata={"emo_nodes_tiny": "sdxl_controlnet", "seed": str(seed)})
    tmp.replace(out_path)
    return out_path


def emo_encoder_state_dict(generator: torch.Generator, width: int = 768, pooled: int = 0) -> dict:
    """The published ``model_emoenc.pt`` keys (fc.0/2/4/6: 8 -> 256 -> 512 -> 768 -> 77*768), fp32, built from the
    key table alone. He-uniform hidden layers and zero biases keep the direction's information; the token layer is
    scaled so the tokens (std ~10) visibly steer the random tiny UNet. EXTENSION: ``width`` 2048 and a ``pooled``
    head (Linear(768, 1280)) make the SDXL-width variant."""
    sizes = (8, 256, 512, 768, 77 * width)
    sd = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        bound = math.sqrt(6 / fan_in) if layer < 3 else 1.75
        sd[f"fc.{2 * layer}.weight"] = (torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * bound
        sd[f"fc.{2 * layer}.bias"] = torch.zeros(fan_out)
    if pooled:
        sd["pooled.weight"] = (torch.rand(pooled, sizes[3], generator=generator) * 2 - 1) * 1.75
        sd["pooled.bias"] = torch.zeros(pooled)
    return sd


def make_tiny_emoenc(out_path: Path, seed: int) -> Path:
    return save_pickle(emo_encoder_state_dict(torch.Generator().manual_seed(seed)), out_path)


def make_tiny_emoenc_sdxl(out_path: Path, seed: int) -> Path:
    """EXTENSION: an SDXL-width encoder (77x2048 tokens + 1280 pooled), stored fp16 to halve its 121 M weights."""
    sd = emo_encoder_state_dict(torch.Generator().manual_seed(seed), width=2048, pooled=1280)
    return save_pickle({k: v.to(torch.float16) for k, v in sd.items()}, out_path)


def make_tiny_predictor(out_path: Path, seed: int) -> Path:
    """The published ``emo_predictor.pt`` layout: torchvision ResNet-18 keys with an 8-way fc, random (seeded)."""
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None, num_classes=8)
    return save_pickle(model.state_dict(), out_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comfy_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args()
    boot_comfy(a.comfy_dir)
    print(make_tiny_sdxl(a.out_dir / "checkpoints" / TINY_SDXL_NAME, a.seed))
    print(make_tiny_eit(a.out_dir / "emoticrafter" / TINY_EIT_NAME, a.seed))
    print(make_tiny_ip2p(a.out_dir / "emoeditor" / TINY_IP2P_NAME, a.seed))
    print(make_tiny_ip2p_ldm(a.out_dir / "checkpoints" / TINY_IP2P_LDM_NAME, a.seed))
    print(make_tiny_sdxl_ip2p(a.out_dir / "checkpoints" / TINY_SDXL_IP2P_NAME, a.seed))
    print(make_tiny_sdxl_controlnet(a.out_dir / "controlnet" / TINY_SDXL_CONTROLNET_NAME, a.seed))
    print(make_tiny_emoenc(a.out_dir / "emoeditor" / TINY_EMOENC_NAME, a.seed))
    print(make_tiny_emoenc_sdxl(a.out_dir / "emoeditor" / TINY_EMOENC_SDXL_NAME, a.seed))
    print(make_tiny_predictor(a.out_dir / "emoeditor" / TINY_PREDICTOR_NAME, a.seed))
    from tiny_critic import write_tiny_critic  # the V-A critic: tiny CLIP B/32 layout + released-layout heads

    write_tiny_critic(a.out_dir, a.seed)


if __name__ == "__main__":
    main()
