"""The released V-A predictor heads (EmotiCrafter's evaluation assets): one linear layer each,
``classifier.0.weight`` (1x512) and ``classifier.0.bias`` (1), fp32, pickled from CUDA. Prediction =
sigmoid(w·f + b)·6 − 3 on CLIP ViT-B/32's 512-d projected image embedding f (not normalised).

Files are recognised by their keys and shapes alone (``peek_shapes``: the safetensors header, or a zip pickle opened
with ``mmap`` so no tensor data is read), so a model folder shared with EIT files lists only the heads.
"""

from __future__ import annotations

import os
import threading
import zipfile
from dataclasses import dataclass

import torch

from ..errors import CheckpointError
from ..weights import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, few, read_weights

WEIGHT, BIAS = "classifier.0.weight", "classifier.0.bias"
FEATURES = 512
HEAD_SHAPES = {WEIGHT: (1, FEATURES), BIAS: (1,)}
SCALE = 6.0  # sigmoid (0, 1) -> (-3, 3)


@dataclass(frozen=True)
class VAHead:
    """One released head: ``predict(f)`` = sigmoid(f @ weight + bias) * 6 - 3 for (B, 512) features."""

    weight: torch.Tensor  # (512,) float32
    bias: torch.Tensor  # () float32
    source: str = ""

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        features = features.float()
        logits = features @ self.weight.to(features.device) + self.bias.to(features.device)
        return torch.sigmoid(logits) * SCALE - SCALE / 2


def is_head_layout(shapes: dict[str, tuple[int, ...]]) -> bool:
    return shapes == HEAD_SHAPES


def load_va_head(path, what: str = "V-A head") -> VAHead:
    """A released head file (pickle, read with weights_only=True on the CPU, or safetensors)."""
    state, _ = read_weights(path)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    if set(shapes) != set(HEAD_SHAPES):
        raise CheckpointError(f"{path}: not a V-A head ({what}): expected exactly {WEIGHT} (1x{FEATURES}) and "
                              f"{BIAS} (1), as in EmotiCrafter's valence1_CLIP_*.pth / arousal1_CLIP_*.pth; found "
                              f"{few(sorted(shapes), 4)}")
    if not is_head_layout(shapes):
        raise CheckpointError(f"{path}: {what} has the wrong shape: {WEIGHT} {shapes[WEIGHT]}, {BIAS} {shapes[BIAS]}; "
                              f"expected (1, {FEATURES}) and (1,): one output over CLIP ViT-B/32's {FEATURES}-d "
                              "image embedding")
    return VAHead(state[WEIGHT].float().reshape(FEATURES).clone(), state[BIAS].float().reshape(()).clone(),
                  str(path))


# --- cheap recognition for file lists ------------------------------------------------------------------------------

_cache: dict[str, tuple[tuple[int, int], dict | None]] = {}
_lock = threading.Lock()


def _read_shapes(path: str) -> dict[str, tuple[int, ...]] | None:
    suffix = os.path.splitext(path)[1].lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import safe_open

        with safe_open(path, framework="pt", device="cpu") as handle:
            return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118 (not a dict)
    if suffix in PICKLE_SUFFIXES and zipfile.is_zipfile(path):
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
            return {str(k): tuple(v.shape) for k, v in state.items()}
    return None


def peek_shapes(path) -> dict[str, tuple[int, ...]] | None:
    """{key: shape} of a weight file without reading its tensors, cached by size and modification time; None when
    that cannot be told cheaply (legacy pickles, damaged files)."""
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
        shapes = _read_shapes(path)
    except Exception:  # damaged or refused: the loader says why when the file is picked
        shapes = None
    with _lock:
        _cache[path] = (stamp, shapes)
    return shapes


def looks_like_head(path) -> bool:
    """True for a file in the released head layout (by keys and shapes only)."""
    shapes = peek_shapes(path)
    return shapes is not None and is_head_layout(shapes)
