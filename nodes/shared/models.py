"""The model folders of emo-nodes (models/emoticrafter, models/emoeditor), the files picked from them, and the one
way a network becomes a ComfyUI ModelPatcher.

Model lists are built on every /object_info, from folders anyone can drop anything into, so listing never raises:
``folder_files`` lists each file once (names through a looping directory symlink are dropped, names of one file
deduplicated) and ``recognise`` turns a recogniser's exception into "unknown", logged once per file version."""

import logging
import os
import threading
from collections.abc import Callable

import comfy.model_management as mm
import comfy.model_patcher
import folder_paths
import torch

EMOTICRAFTER = "emoticrafter"
EMOEDITOR = "emoeditor"

log = logging.getLogger("emo_nodes")
_said: set[tuple] = set()
_said_lock = threading.Lock()


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


def _version(path) -> tuple:
    try:
        stat = os.stat(path)
        return os.fspath(path), stat.st_size, stat.st_mtime_ns
    except (OSError, ValueError):
        return os.fspath(path), None, None


def recognise(recogniser: Callable, path, unknown=None):
    """``recogniser(path)``, or ``unknown`` when it raises (a file it cannot read); the reason is logged once per
    file version (path, size, modification time), so a model list never fails on a hostile file."""
    try:
        return recogniser(path)
    except Exception as exc:  # noqa: BLE001 - any file may be dropped into a model folder
        key = (_version(path), getattr(recogniser, "__qualname__", repr(recogniser)))
        with _said_lock:
            new = key not in _said
            _said.add(key)
        if new:
            log.warning("emo-nodes: %s is listed as an unknown file (%s: %s)", os.path.basename(os.fspath(path)),
                        type(exc).__name__, exc)
        return unknown


def _parts(name: str) -> list[str]:
    return [part for part in name.replace("\\", "/").split("/") if part]


def _loops(path: str, name: str, ancestry: dict[str, tuple[str, ...] | None]) -> bool:
    """True when the listing name's path passes through a directory whose real path is one of its own ancestors'
    (a symlink loop). ``ancestry`` memoises {directory path: real paths from the folder down, or None (loops)}."""
    parts = _parts(name)
    base = path
    for _ in parts:
        base = os.path.dirname(base)
    if base not in ancestry:
        ancestry[base] = (os.path.realpath(base),)
    current, chain = base, ancestry[base]
    for part in parts[:-1]:
        current = os.path.join(current, part)
        if current not in ancestry:
            real = os.path.realpath(current)
            ancestry[current] = None if chain is None or real in chain else chain + (real,)
        chain = ancestry[current]
        if chain is None:
            return True
    return False


def folder_files(folder: str) -> list[tuple[str, str]]:
    """(listing name, full path) of the files of a model folder, except names whose path passes through a looping
    directory symlink (the host's walk follows the loop and lists the same files again at every depth). Symlinked
    model files, aliases a user made on purpose and non-looping symlinked folders are kept. Never raises."""
    try:
        names = folder_paths.get_filename_list(folder)
    except Exception:  # noqa: BLE001
        log.exception("emo-nodes: listing the %s model folder failed", folder)
        return []
    ancestry: dict[str, tuple[str, ...] | None] = {}
    files = []
    for name in names:
        try:
            path = folder_paths.get_full_path(folder, name)
            if path is not None and not _loops(path, name, ancestry):
                files.append((name, path))
        except (OSError, ValueError, RuntimeError):
            continue
    return files
