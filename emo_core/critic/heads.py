"""The released V-A predictor heads (EmotiCrafter's evaluation assets): one linear layer each,
``classifier.0.weight`` (1x512) and ``classifier.0.bias`` (1), fp32, pickled from CUDA. Prediction =
sigmoid(w·f + b)·6 − 3 on CLIP ViT-B/32's 512-d projected image embedding f (not normalised).

Files are recognised by their keys and shapes alone (``peek_shapes``: the safetensors header, or a zip pickle opened
with ``mmap`` so no tensor data is read), so a model folder shared with EIT files lists only the heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import CheckpointError
from ..weight_shapes import peek_header
from ..weights import few, read_weights

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


def peek_shapes(path) -> dict[str, tuple[int, ...]] | None:
    """{key: shape} of a weight file without reading its tensors (cached); None when that cannot be told cheaply."""
    header = peek_header(path)
    return None if header is None else header.shapes


def looks_like_head(path) -> bool:
    """True for a file in the released head layout (by keys and shapes only)."""
    shapes = peek_shapes(path)
    return shapes is not None and is_head_layout(shapes)
