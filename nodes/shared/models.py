"""The model folders of emo-nodes (models/emoticrafter, models/emoeditor), the files picked from them, and the one
way a network becomes a ComfyUI ModelPatcher."""

import os

import comfy.model_management as mm
import comfy.model_patcher
import folder_paths
import torch

EMOTICRAFTER = "emoticrafter"
EMOEDITOR = "emoeditor"


def register_model_folders() -> None:
    """Default folder first; keeps folders a user added through extra_model_paths.yaml."""
    for name in (EMOTICRAFTER, EMOEDITOR):
        default = os.path.join(folder_paths.models_dir, name)
        os.makedirs(default, exist_ok=True)
        paths, extensions = folder_paths.folder_names_and_paths.get(name, ([], set()))
        if default not in paths:
            paths.insert(0, default)
        folder_paths.folder_names_and_paths[name] = (paths, set(extensions) | folder_paths.supported_pt_extensions)


def model_path(folder: str, name: str) -> str:
    """Full path of a file picked in a dropdown, or an error naming the folder that was searched."""
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        searched = ", ".join(folder_paths.get_folder_paths(folder))
        raise FileNotFoundError(f"'{name}' is not in the {folder} model folder(s): {searched}")
    return path


def make_patcher(network: torch.nn.Module, load_device=None) -> comfy.model_patcher.ModelPatcher:
    """Hand a network to ComfyUI's memory manager: loaded on the torch device when used, offloaded like the UNet."""
    return comfy.model_patcher.ModelPatcher(network, load_device=load_device or mm.get_torch_device(),
                                            offload_device=mm.unet_offload_device())
