"""Which EmoEditor model a weight file holds, told cheaply: from its key names and shapes only, never its weights.

* ``.safetensors``: the header (``safe_open`` keys and slice shapes; our own files also carry an ``emo_nodes.kind``
  metadata entry).
* Pickles in torch's zip format (what ``torch.save`` writes, the published files included): ``torch.load`` with
  ``weights_only=True`` and ``mmap=True``, so the pickle's small key table is parsed and the tensor data stay
  unread on disk (the ~2 GB editor is answered in milliseconds).
* Anything else (legacy non-zip pickles, unreadable files): unknown (None).

Answers are cached per file by (path, size, modification time), so asking again costs one ``stat``.

Files in the subfolders ``editor/``, ``encoder/`` and ``predictor/`` of a model folder are taken to be of that kind
without being opened (the listing name starts with the subfolder).
"""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Iterable

import torch

from ..weights import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES
from .loaders import EDITOR_KIND, ENCODER_KIND, PREDICTOR_KIND, detect_kind

KINDS = (EDITOR_KIND, ENCODER_KIND, PREDICTOR_KIND)
SUBFOLDERS = {"editor": EDITOR_KIND, "encoder": ENCODER_KIND, "predictor": PREDICTOR_KIND}
_cache: dict[str, tuple[tuple[int, int], str | None]] = {}
_lock = threading.Lock()


def _meta_state(shapes: Iterable[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    """Shape-only tensors (no storage) that detect_kind can inspect."""
    return {key: torch.empty(shape, device="meta") for key, shape in shapes}


def _safetensors_kind(path: str) -> str | None:
    from safetensors import safe_open

    with safe_open(path, framework="pt", device="cpu") as handle:
        kind = (handle.metadata() or {}).get("emo_nodes.kind")
        if kind in KINDS:
            return kind
        return detect_kind(_meta_state((key, tuple(handle.get_slice(key).get_shape()))
                                       for key in handle.keys()))  # noqa: SIM118 (not a dict)


def _pickle_kind(path: str) -> str | None:
    if not zipfile.is_zipfile(path):
        return None  # a legacy pickle: its tensors cannot be skipped, so it is not read here
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        return None  # not a plain state dict: the loader says why, if it is picked
    return detect_kind(_meta_state((key, tuple(value.shape)) for key, value in state.items()))


def peek_kind(path: str | os.PathLike) -> str | None:
    """``"emoeditor_ip2p"``, ``"emo_encoder"``, ``"emo_predictor"``, or None when the file is none of them or cannot
    be told without reading its weights. Never raises for a damaged file (None)."""
    path = os.fspath(path)
    try:
        stat = os.stat(path)
    except OSError:
        return None
    stamp = (stat.st_size, stat.st_mtime_ns)
    with _lock:
        cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix in SAFETENSORS_SUFFIXES:
            kind = _safetensors_kind(path)
        elif suffix in PICKLE_SUFFIXES:
            kind = _pickle_kind(path)
        else:
            kind = None
    except Exception:  # damaged, refused (not weights only) or unreadable: the loader reports it when picked
        kind = None
    with _lock:
        _cache[path] = (stamp, kind)
    return kind


def listed_kind(name: str, path: str | os.PathLike | None) -> str | None:
    """The kind of a model-folder entry: its subfolder's when it lies in ``editor/``, ``encoder/`` or
    ``predictor/``, else what its keys say (``peek_kind``); None when unknown."""
    parts = name.replace("\\", "/").split("/")
    folder = parts[0].lower() if len(parts) > 1 else ""
    if folder in SUBFOLDERS:
        return SUBFOLDERS[folder]
    return None if path is None else peek_kind(path)


def files_for_slot(files: Iterable[tuple[str, str | None]], kind: str) -> list[str]:
    """The names of ``(name, detected kind)`` pairs offered for a slot of ``kind``: files of that kind, and files
    whose kind is unknown (None), which every slot lists."""
    return [name for name, found in files if found is None or found == kind]
