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
from collections.abc import Iterable

import torch

from ..weight_shapes import peek_header
from .loaders import EDITOR_KIND, ENCODER_KIND, PREDICTOR_KIND, detect_kind

KINDS = (EDITOR_KIND, ENCODER_KIND, PREDICTOR_KIND)
SUBFOLDERS = {"editor": EDITOR_KIND, "encoder": ENCODER_KIND, "predictor": PREDICTOR_KIND}


def _meta_state(shapes: Iterable[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    """Shape-only tensors (no storage) that detect_kind can inspect."""
    return {key: torch.empty(shape, device="meta") for key, shape in shapes}


def peek_kind(path: str | os.PathLike) -> str | None:
    """``"emoeditor_ip2p"``, ``"emo_encoder"``, ``"emo_predictor"``, or None when the file is none of them or cannot
    be told without reading its weights. Never raises for a damaged file (None)."""
    header = peek_header(path)
    if header is None:
        return None
    kind = header.metadata.get("emo_nodes.kind")
    return kind if kind in KINDS else detect_kind(_meta_state(header.shapes.items()))


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
