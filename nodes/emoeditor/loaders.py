"""Load EmoEditor's networks into ComfyUI objects.

* Editor (``model_ip2p.pt``): ``unet.*`` in diffusers UNet2DConditionModel names and ``auto_encoder.*`` in diffusers
  AutoencoderKL names. ComfyUI detects UNets from LDM key names and has no diffusers-name entry for an 8-channel
  SD 1.5 UNet, so the layout is read off the diffusers keys (``emo_core.emoeditor.unet_layout``), the names are
  mapped with ``comfy.utils.unet_to_diffusers`` and ComfyUI loads the LDM dict itself, detecting it as
  ``SD15_instructpix2pix`` -> an ordinary MODEL. The VAE goes to ``comfy.sd.VAE`` (it converts diffusers VAE names).
  (An SD 1.5 InstructPix2Pix checkpoint in LDM layout needs no conversion: Load Checkpoint loads it.)
* Encoder and predictor: ``emo_core.emoeditor.loaders`` (strict key/shape checks), each in a ModelPatcher.

The loader's three dropdowns list only files of their kind (``slot_files``): files in the subfolders ``editor/``,
``encoder/`` and ``predictor/`` of models/emoeditor by that folder, other files by their key names and shapes
(``emo_core.emoeditor.kinds``, cached per file); a file whose kind cannot be told cheaply (or that cannot be read:
``recognise``) is listed in every slot; a symlink loop lists nothing twice (``folder_files``).
"""

from __future__ import annotations

from collections.abc import Mapping

import comfy.model_base
import comfy.sd
import comfy.utils
import torch

from ...emo_core.emoeditor.kinds import files_for_slot, listed_kind
from ...emo_core.emoeditor.loaders import load_emo_encoder, load_emo_predictor
from ...emo_core.emoeditor.unet_layout import (
    VAE_PREFIX,
    check_ip2p_input,
    diffusers_unet_layout,
    split_editor_checkpoint,
    unet_summary,
)
from ...emo_core.errors import CheckpointError
from ...emo_core.weights import few, read_weights
from ..shared.models import EMOEDITOR, folder_files, make_patcher, recognise


def slot_files(kind: str) -> list[str]:
    """The files in models/emoeditor offered for a slot of ``kind`` (EDITOR_KIND, ENCODER_KIND, PREDICTOR_KIND)."""
    return files_for_slot(((name, recognise(lambda p, n=name: listed_kind(n, p), path))
                           for name, path in folder_files(EMOEDITOR)), kind)


def diffusers_unet_to_ldm(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Rename a diffusers UNet state dict to LDM names; every key must be accounted for."""
    if "conv_in.weight" not in state or not any(k.startswith("down_blocks.") for k in state):
        raise CheckpointError(f"{source}: the unet.* weights are not a diffusers UNet2DConditionModel "
                              f"(no conv_in / down_blocks keys)")
    check_ip2p_input(state["conv_in.weight"].shape[1], source)
    mapping = comfy.utils.unet_to_diffusers(diffusers_unet_layout(state))
    unmapped = sorted(k for k in state if k not in mapping)
    if unmapped:
        raise CheckpointError(f"{source}: unexpected UNet keys for a UNet2DConditionModel: "
                              f"{few(['unet.' + k for k in unmapped], 6)}")
    return {mapping[k]: v for k, v in state.items()}


def load_editor(path: str):
    """``model_ip2p.pt`` -> (MODEL ModelPatcher, comfy.sd.VAE)."""
    state, _ = read_weights(path)
    unet, vae_state = split_editor_checkpoint(state, path)
    del state
    ldm = diffusers_unet_to_ldm(unet, path)
    summary = unet_summary(ldm)
    model = comfy.sd.load_diffusion_model_state_dict(ldm)
    if model is None:
        raise CheckpointError(f"{path}: ComfyUI does not recognise this UNet ({summary}); expected an SD 1.5 "
                              "InstructPix2Pix UNet (8 input channels, width 320, context 768)")
    if not isinstance(model.model, comfy.model_base.IP2P):
        raise CheckpointError(f"{path}: ComfyUI loaded this UNet as {type(model.model).__name__}, not as an "
                              f"InstructPix2Pix model ({summary})")
    try:
        vae = comfy.sd.VAE(sd=vae_state)
        vae.throw_exception_if_invalid()
    except Exception as exc:
        raise CheckpointError(f"{path}: the VAE weights ({VAE_PREFIX}*) could not be loaded as a KL autoencoder: "
                              f"{exc}") from exc
    return model, vae


def load_encoder(path: str):
    """``model_emoenc.pt`` (fp32, as published) in a ModelPatcher."""
    return make_patcher(load_emo_encoder(path).requires_grad_(False))


def load_predictor(path: str):
    """``emo_predictor.pt`` (fp32, eval mode) in a ModelPatcher."""
    return make_patcher(load_emo_predictor(path))
