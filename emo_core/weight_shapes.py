"""Cheap recognition for file lists: a weight file's {key: shape} and metadata without reading its tensors.

A model folder is listed on every refresh of the UI, so each file is read once (the safetensors header, or a zip
pickle opened with ``mmap`` so no tensor data is loaded) and cached by size and modification time. Anything dropped
into a model folder may be hostile: the safetensors header is parsed here in Python with every size checked against
the file (the library's own reader can panic past ``except Exception`` on absurd shapes), and a zip pickle's
directory is checked before torch opens it, so a small file cannot inflate to gigabytes (``check_zip_pickle``).
"""

from __future__ import annotations

import logging
import os
import threading
import zipfile

import torch

from .file_checks import Header, check_zip_pickle, safetensors_header
from .weights import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES

log = logging.getLogger("emo_nodes")



_cache: dict[str, tuple[tuple[int, int], Header | None]] = {}
_lock = threading.Lock()


def _read_header(path: str) -> Header | None:
    suffix = os.path.splitext(path)[1].lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return safetensors_header(path)
    if suffix in PICKLE_SUFFIXES and zipfile.is_zipfile(path):  # a legacy pickle's tensors cannot be skipped
        check_zip_pickle(path)
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
    if not os.path.isfile(path):  # a FIFO or device would block the reader
        return None
    stamp = (stat.st_size, stat.st_mtime_ns)
    with _lock:
        cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        header = _read_header(path)
    except Exception as exc:  # listed as unknown; said once per file version (the cache holds the None)
        log.warning("emo-nodes: %s is listed as an unknown file: %s", os.path.basename(path), exc)
        header = None
    with _lock:
        _cache[path] = (stamp, header)
    return header
