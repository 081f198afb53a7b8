"""Cheap recognition for file lists: a weight file's {key: shape} and metadata without reading its tensors.

A model folder is listed on every refresh of the UI, so each file is read once (the safetensors header, or a zip
pickle opened with ``mmap`` so no tensor data is loaded) and cached by size and modification time.
"""

from __future__ import annotations

import os
import threading
import zipfile
from dataclasses import dataclass, field

import torch

from .weights import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES


@dataclass(frozen=True)
class Header:
    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors only


_cache: dict[str, tuple[tuple[int, int], Header | None]] = {}
_lock = threading.Lock()


def _read_header(path: str) -> Header | None:
    suffix = os.path.splitext(path)[1].lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import safe_open

        with safe_open(path, framework="pt", device="cpu") as handle:
            return Header({k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()},  # noqa: SIM118
                          dict(handle.metadata() or {}))
    if suffix in PICKLE_SUFFIXES and zipfile.is_zipfile(path):  # a legacy pickle's tensors cannot be skipped
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
            return Header({str(k): tuple(v.shape) for k, v in state.items()})
    return None


def peek_header(path: str | os.PathLike) -> Header | None:
    """The file's keys, shapes and metadata; None when that cannot be told cheaply (legacy or non-state-dict pickles,
    other formats, damaged or refused files: the loader says why when the file is picked). Never raises."""
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
    try:
        header = _read_header(path)
    except Exception:
        header = None
    with _lock:
        _cache[path] = (stamp, header)
    return header
