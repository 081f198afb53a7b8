"""The EmoEditor editor file (``model_ip2p.pt``): split it into UNet and VAE weights and read the UNet's layout off
its diffusers key names, so the host can rename the keys to LDM names and load it as SD 1.5 InstructPix2Pix.

The layout is read for any block structure (SD 1.5's 4 levels, SDXL's 3, tiny test models), unlike a fixed table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ..errors import CheckpointError
from .loaders import ENCODER_KIND, PREDICTOR_KIND, detect_kind

UNET_PREFIX, VAE_PREFIX = "unet.", "auto_encoder."  # the published editor pickle
IP2P_CHANNELS = 8  # noisy latent (4) + source latent (4)
OTHER_FILES = {ENCODER_KIND: "the emotion-direction encoder (model_emoenc.pt): pick it as 'encoder'",
               PREDICTOR_KIND: "the emotion predictor (emo_predictor.pt): pick it as 'predictor'"}


def _sub_dict(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _count(keys: set[str], prefix: str) -> int:
    """How many consecutive children ``prefix0.``, ``prefix1.``, ... the keys contain."""
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in keys):
        n += 1
    return n


def _describe_channels(channels: int) -> str:
    kinds = {4: "a text-to-image UNet (4 input channels)", 9: "an inpainting UNet (9 input channels)"}
    return kinds.get(channels, f"a UNet with {channels} input channels")


def check_ip2p_input(channels: int, source: str) -> None:
    if channels != IP2P_CHANNELS:
        raise CheckpointError(f"{source}: the editor must be an InstructPix2Pix UNet with {IP2P_CHANNELS} input "
                              f"channels (noisy latent + source latent), like EmoEditor's model_ip2p.pt; this file "
                              f"holds {_describe_channels(channels)}")


def diffusers_unet_layout(state: Mapping[str, torch.Tensor]) -> dict:
    """The LDM layout keys ``comfy.utils.unet_to_diffusers`` needs, read off diffusers UNet2DConditionModel keys.

    Works for any block structure (SD 1.5's 4 levels, SDXL's 3, tiny test models), unlike ComfyUI's fixed table.
    """
    keys = set(state)
    model_channels = state["conv_in.weight"].shape[0]
    levels = _count(keys, "down_blocks.")
    num_res_blocks = [_count(keys, f"down_blocks.{i}.resnets.") for i in range(levels)]
    channel_mult = [state[f"down_blocks.{i}.resnets.0.conv2.weight"].shape[0] // model_channels for i in range(levels)]
    depth_in = [_count(keys, f"down_blocks.{i}.attentions.{j}.transformer_blocks.")
                for i in range(levels) for j in range(num_res_blocks[i])]
    depth_up = [_count(keys, f"up_blocks.{i}.attentions.{j}.transformer_blocks.")
                for i in range(_count(keys, "up_blocks.")) for j in range(_count(keys, f"up_blocks.{i}.resnets."))]
    return {
        "num_res_blocks": num_res_blocks,
        "channel_mult": channel_mult,
        "transformer_depth": depth_in,
        # unet_to_diffusers pops this list from the end while walking up_blocks from the deepest: reversed order.
        "transformer_depth_output": depth_up[::-1],
        "transformer_depth_middle": _count(keys, "mid_block.attentions.0.transformer_blocks."),
    }


def unet_summary(ldm: Mapping[str, torch.Tensor]) -> str:
    conv_in = ldm.get("input_blocks.0.0.weight")
    context = next((v.shape[1] for k, v in ldm.items() if re.search(r"attn2\.to_k\.weight$", k)), None)
    width = None if conv_in is None else conv_in.shape[0]
    channels = None if conv_in is None else conv_in.shape[1]
    return f"{channels} input channels, width {width}, cross-attention context {context}"


def split_editor_checkpoint(state: Mapping[str, torch.Tensor], source: str) -> tuple[dict, dict]:
    """(unet, vae) sub-dicts of the editor pickle, or a CheckpointError saying what is wrong with the file."""
    kind = detect_kind(state)
    if kind in OTHER_FILES:
        raise CheckpointError(f"{source}: this is {OTHER_FILES[kind]}; the editor input needs the InstructPix2Pix "
                              "editor (model_ip2p.pt)")
    unet, vae = _sub_dict(state, UNET_PREFIX), _sub_dict(state, VAE_PREFIX)
    if unet and not vae:
        raise CheckpointError(f"{source}: has UNet weights ({UNET_PREFIX}*) but no VAE weights ({VAE_PREFIX}*); "
                              "EmoEditor's model_ip2p.pt holds both")
    if not unet:
        hint = (" (an LDM-layout checkpoint: load it with Load Checkpoint, its MODEL and VAE work with the edit "
                "nodes)") if any(k.startswith("model.diffusion_model.") for k in state) else ""
        sample = ", ".join(sorted(state)[:4])
        raise CheckpointError(f"{source}: not an EmoEditor editor checkpoint: expected unet.* (diffusers UNet) and "
                              f"auto_encoder.* (diffusers AutoencoderKL) keys as in the published model_ip2p.pt; "
                              f"found {len(state)} keys such as {sample}{hint}")
    return unet, vae
