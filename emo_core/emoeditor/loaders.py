"""Loading EmoEditor checkpoints: the published pickled state dicts (``model_emoenc.pt``, ``emo_predictor.pt``) and
our ``.safetensors`` conversions of them.

Pickles are read with ``torch.load(..., weights_only=True)`` only, so a checkpoint can never run code. Every load is
strict: the keys and shapes must be exactly those of the network, and any problem raises :class:`CheckpointError`
naming the file and what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from ..atomic_io import atomic_write
from ..errors import CheckpointError
from ..weights import read_weights
from .emotions import NUM_EMOTIONS
from .encoder import DEFAULT_TOKENS, EmotionEncoder, config_from_shapes, expected_shapes
from .predictor import EmotionPredictor

ENCODER_KIND = "emo_encoder"
PREDICTOR_KIND = "emo_predictor"
EDITOR_KIND = "emoeditor_ip2p"
_KIND_NAMES = {
    ENCODER_KIND: "EmoEditor emotion-direction encoder",
    PREDICTOR_KIND: "EmoEditor emotion predictor (ResNet-18)",
    EDITOR_KIND: "EmoEditor InstructPix2Pix editor (UNet + VAE)",
}


def save_safetensors(model_or_state: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike,
                     kind: str | None = None) -> None:
    """Write a state dict as ``.safetensors`` (the one-off conversion of the published pickles)."""
    from safetensors.torch import save_file
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    kind = kind or detect_kind(tensors)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"emo_nodes.kind": kind} if kind else None))


# --- recognising checkpoints -----------------------------------------------------------------------------------


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    value = state.get(key)
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def is_emo_encoder_state_dict(state: Mapping[str, torch.Tensor]) -> bool:
    """The published encoder or an extension width: fc.0 takes the 8-d direction, fc.6 is the token layer."""
    first, last = _shape(state, "fc.0.weight"), _shape(state, "fc.6.weight")
    return (first is not None and len(first) == 2 and first[1] == NUM_EMOTIONS
            and last is not None and len(last) == 2 and "conv1.weight" not in state)


def is_emo_predictor_state_dict(state: Mapping[str, torch.Tensor]) -> bool:
    """A ResNet-18 with an 8-way head (torchvision key names)."""
    return (_shape(state, "conv1.weight") == (64, 3, 7, 7) and _shape(state, "fc.weight") == (NUM_EMOTIONS, 512)
            and "layer4.1.conv2.weight" in state)


def detect_kind(state: Mapping[str, torch.Tensor]) -> str | None:
    """``"emo_encoder"``, ``"emo_predictor"``, ``"emoeditor_ip2p"`` (the editor pickle) or None."""
    if is_emo_encoder_state_dict(state):
        return ENCODER_KIND
    if is_emo_predictor_state_dict(state):
        return PREDICTOR_KIND
    if any(k.startswith("unet.") for k in state) and any(k.startswith("auto_encoder.") for k in state):
        return EDITOR_KIND
    return None


# --- strict checks ---------------------------------------------------------------------------------------------


def check_state_dict(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], *,
                     source: str, kind: str) -> None:
    """Raise CheckpointError unless ``state`` has exactly the ``expected`` keys and shapes.

    A state dict of another recognised EmoEditor model is reported as a wrong model kind rather than as a list
    of key differences.
    """
    found = detect_kind(state)
    if found is not None and found != kind:
        raise CheckpointError(f"{source}: this is an {_KIND_NAMES[found]} checkpoint, not an {_KIND_NAMES[kind]}")
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [f"{k}: expected {list(shape)}, found {list(state[k].shape)}"
                   for k, shape in expected.items() if k in state and tuple(state[k].shape) != tuple(shape)]
    wrong_dtype = [f"{k}: {state[k].dtype}" for k in expected
                   if k in state and not k.endswith("num_batches_tracked") and not state[k].is_floating_point()]
    problems = []
    if missing:
        problems.append(f"missing keys {_key_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_key_list(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shapes {_key_list(wrong_shape)}")
    if wrong_dtype:
        problems.append(f"non-float weights {_key_list(wrong_dtype)}")
    if problems:
        raise CheckpointError(f"{source}: not a valid {_KIND_NAMES[kind]} checkpoint ({len(expected)} keys "
                              f"expected, {len(state)} found): " + "; ".join(problems))


def predictor_expected_shapes() -> dict[str, tuple[int, ...]]:
    """The 122 torchvision ResNet-18 keys with the 8-way head, in torchvision's order."""
    with torch.device("meta"):  # shapes only, no weight initialisation
        model = EmotionPredictor()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# --- loading models --------------------------------------------------------------------------------------------


def load_emo_encoder(path: str | os.PathLike, *, tokens: int = DEFAULT_TOKENS, dtype: torch.dtype = torch.float32,
                     device: torch.device | str = "cpu") -> EmotionEncoder:
    """The published ``model_emoenc.pt`` (or its safetensors), strictly checked; width (and the EXTENSION's pooled
    head) are read from the weights, ``tokens`` is 77 for every SD UNet."""
    state, _ = read_weights(path)
    source = str(path)
    if "fc.6.weight" not in state:
        check_state_dict(state, expected_shapes(), source=source, kind=ENCODER_KIND)  # reports kind or keys
    try:
        config = config_from_shapes({k: tuple(v.shape) for k, v in state.items()}, tokens=tokens)
    except ValueError as exc:
        raise CheckpointError(f"{source}: not a valid {_KIND_NAMES[ENCODER_KIND]} checkpoint: {exc}") from None
    check_state_dict(state, expected_shapes(config), source=source, kind=ENCODER_KIND)
    with torch.device("meta"):
        model = EmotionEncoder.from_config(config)
    return _assign(model, state, dtype, device)  # trainable as loaded: training fine-tunes the encoder


def load_emo_predictor(path: str | os.PathLike, *, dtype: torch.dtype = torch.float32,
                       device: torch.device | str = "cpu") -> EmotionPredictor:
    """The published ``emo_predictor.pt`` (or its safetensors), strictly checked, in eval mode."""
    state, _ = read_weights(path)
    check_state_dict(state, predictor_expected_shapes(), source=str(path), kind=PREDICTOR_KIND)
    with torch.device("meta"):
        model = EmotionPredictor()
    return _assign(model, state, dtype, device).requires_grad_(False)  # the critic is always frozen


def _assign(model: nn.Module, state: Mapping[str, torch.Tensor], dtype: torch.dtype, device) -> nn.Module:
    # Floats are cast to the requested dtype, integer counters (num_batches_tracked) stay int64.
    state = {k: v.to(dtype) if v.is_floating_point() else v.to(torch.int64) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device).eval()


# --- message helpers -------------------------------------------------------------------------------------------


def _key_list(keys, limit: int = 8) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return f"[{shown}{f', ... ({len(keys) - limit} more)' if len(keys) > limit else ''}]"
