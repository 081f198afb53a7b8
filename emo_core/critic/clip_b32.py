"""CLIP ViT-B/32 as the V-A critic uses it, read from a Hugging Face CLIP file.

The user's file is the usual ``openai/clip-vit-base-patch32`` download: one ``model.safetensors`` or
``pytorch_model.bin`` with ``vision_model.*``, ``visual_projection.weight``, ``text_model.*``,
``text_projection.weight`` and ``logit_scale`` (a vision-only ``CLIPVisionModelWithProjection`` file works too; it
has no text tower, so no CLIPScore). The Hugging Face folder as downloaded (``config.json`` beside
``model.safetensors`` and/or ``pytorch_model.bin``) is accepted too: ``clip_file`` picks the weights file in it (the
config is not needed: the shapes tell the size).

"B/32" is checked by what the V-A heads depend on: 32-pixel patches at 224 px (50 positions) and a 512-d projection.
Width and depth are read from the keys (heads = width / 64, CLIP's rule), so test models in the same layout load.
Configs use the field names of transformers' CLIP configs, which ComfyUI's clip_vision_config_*.json share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..weights import few, read_weights

PATCH, IMAGE_SIZE, PROJECTION = 32, 224, 512
HEAD_WIDTH = 64  # CLIP: attention heads = width / 64, in both towers
VOCAB, CONTEXT = 49408, 77
BOS, EOS = 49406, 49407

# The published ViT-B/32 towers (openai/clip-vit-base-patch32); width, depth and MLP size are overridden by the file.
B32_VISION_CONFIG = {
    "attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "quick_gelu", "hidden_size": 768, "image_size": IMAGE_SIZE,
    "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
    "model_type": "clip_vision_model", "num_attention_heads": 12, "num_channels": 3, "num_hidden_layers": 12,
    "patch_size": PATCH, "projection_dim": PROJECTION,
}
B32_TEXT_CONFIG = {
    "attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "quick_gelu", "hidden_size": 512,
    "intermediate_size": 2048, "layer_norm_eps": 1e-05, "max_position_embeddings": CONTEXT,
    "model_type": "clip_text_model", "num_attention_heads": 8, "num_hidden_layers": 12, "projection_dim": PROJECTION,
    "vocab_size": VOCAB, "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": 1,
}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # a Hugging Face CLIP folder's weights, in preference order
OPEN_CLIP_HINT = ("it is in the OpenAI / open_clip layout (visual.*); use the Hugging Face files of "
                  "openai/clip-vit-base-patch32 (model.safetensors or pytorch_model.bin)")


@dataclass
class ClipB32Weights:
    """A CLIP file split into its towers; ``text`` is None for a vision-only file."""

    source: str
    vision: dict[str, torch.Tensor]  # vision_model.* and visual_projection.weight
    vision_config: dict
    text: dict[str, torch.Tensor] | None = None  # text_model.* and text_projection.weight
    text_config: dict | None = None

    @property
    def has_text(self) -> bool:
        return self.text is not None


def _layers(state: dict, prefix: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(found) + 1 if found else 0


def _heads(width: int, what: str, source: str) -> int:
    if width % HEAD_WIDTH:
        raise CheckpointError(f"{source}: the {what} tower is {width} wide, not a multiple of {HEAD_WIDTH} (CLIP "
                              f"uses {HEAD_WIDTH}-dim attention heads)")
    return width // HEAD_WIDTH


def vision_config(state: dict, source: str) -> dict:
    """The vision tower's config from its keys, or a CheckpointError saying why it is not ViT-B/32."""
    patch = state["vision_model.embeddings.patch_embedding.weight"]
    positions = state["vision_model.embeddings.position_embedding.weight"].shape[0]
    projection = state["visual_projection.weight"].shape[0]
    width, layers = patch.shape[0], _layers(state, "vision_model.encoder.layers.")
    grid = round((positions - 1) ** 0.5)
    image = grid * patch.shape[-1]
    if (patch.shape[-1], image, projection) != (PATCH, IMAGE_SIZE, PROJECTION) or grid * grid + 1 != positions:
        raise CheckpointError(
            f"{source}: this CLIP is not ViT-B/32: {patch.shape[-1]}-pixel patches at {image} px, width {width}, "
            f"{layers} layers, {projection}-d projection; the V-A heads were trained on CLIP ViT-B/32 "
            f"({PATCH}-pixel patches at {IMAGE_SIZE} px, {PROJECTION}-d image embedding; "
            "openai/clip-vit-base-patch32)")
    if not layers:
        raise CheckpointError(f"{source}: no vision_model.encoder.layers.* weights")
    return {**B32_VISION_CONFIG, "hidden_size": width, "num_hidden_layers": layers,
            "num_attention_heads": _heads(width, "vision", source),
            "intermediate_size": state["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0]}


def text_config(state: dict, source: str) -> dict:
    width = state["text_model.embeddings.token_embedding.weight"].shape[1]
    return {**B32_TEXT_CONFIG, "hidden_size": width, "num_hidden_layers": _layers(state, "text_model.encoder.layers."),
            "num_attention_heads": _heads(width, "text", source),
            "intermediate_size": state["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
            "vocab_size": state["text_model.embeddings.token_embedding.weight"].shape[0],
            "max_position_embeddings": state["text_model.embeddings.position_embedding.weight"].shape[0],
            "projection_dim": state["text_projection.weight"].shape[0]}


def split_clip(state: dict[str, torch.Tensor], source: str) -> ClipB32Weights:
    """Check a Hugging Face CLIP state dict and split it into the vision and (when present) text towers."""
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}  # a buffer in older files
    needed = ("vision_model.embeddings.patch_embedding.weight", "vision_model.embeddings.position_embedding.weight",
              "visual_projection.weight", "vision_model.encoder.layers.0.mlp.fc1.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        hint = OPEN_CLIP_HINT if any(k.startswith("visual.") for k in state) else (
            f"expected a Hugging Face CLIP file (vision_model.*, visual_projection.weight); it holds "
            f"{few(sorted(state), 4)}")
        raise CheckpointError(f"{source}: not a CLIP image encoder with projection ({', '.join(missing)} missing): "
                              f"{hint}")
    vision = {k: v for k, v in state.items() if k.startswith(("vision_model.", "visual_projection."))}
    weights = ClipB32Weights(source, vision, vision_config(state, source))
    text = {k: v for k, v in state.items() if k.startswith(("text_model.", "text_projection."))}
    if "text_projection.weight" in text and "text_model.embeddings.token_embedding.weight" in text:
        weights.text, weights.text_config = text, text_config(state, source)
        if weights.text_config["projection_dim"] != PROJECTION:
            raise CheckpointError(f"{source}: the text projection is {weights.text_config['projection_dim']}-d, "
                                  f"the image projection {PROJECTION}-d: not one CLIP model")
    return weights


def clip_file(path) -> Path:
    """The weights file of a CLIP given as a file (returned as is) or as a Hugging Face folder: its
    ``model.safetensors``, else its ``pytorch_model.bin``; a CheckpointError naming the folder when it has neither."""
    path = Path(path)
    if not path.is_dir():
        return path
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    try:
        held = sorted(repr(p.name) if not p.name.isprintable() else p.name for p in path.iterdir())
    except OSError as exc:
        held = [f"(cannot list it: {exc.strerror})"]
    sharded = " (sharded checkpoints are not supported)" if any(".index.json" in n for n in held) else ""
    raise CheckpointError(f"{path}: a folder without a CLIP weights file: expected {' or '.join(WEIGHT_FILES)} "
                          f"(the Hugging Face download of openai/clip-vit-base-patch32){sharded}; it holds "
                          f"{few(held, 6) or 'nothing'}")


def read_clip_b32(path) -> ClipB32Weights:
    """Read and check a CLIP ViT-B/32 file (safetensors or a weights-only pickle), or the weights file of a Hugging
    Face CLIP folder (``clip_file``); the weights' source is the file read."""
    path = clip_file(path)
    state, _ = read_weights(path)
    return split_clip(state, str(path))


def _load(module: torch.nn.Module, state: dict, source: str, what: str) -> torch.nn.Module:
    result = module.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    if missing or result.unexpected_keys:
        raise CheckpointError(f"{source}: the {what} weights do not fit CLIP's {what} tower: missing "
                              f"{few(missing) or 'none'}; unexpected {few(result.unexpected_keys) or 'none'}")
    return module.eval().requires_grad_(False)


class Embedder(torch.nn.Module):
    """A transformers CLIP tower as a plain module returning its projected embedding (what ComfyUI's ModelPatcher
    can hold: it sets ``.device``, a read-only property on transformers models)."""

    def __init__(self, tower: torch.nn.Module, output: str):
        super().__init__()
        self.tower, self.output = tower, output

    def forward(self, **inputs) -> torch.Tensor:
        return getattr(self.tower(**inputs), self.output)


def vision_tower(weights: ClipB32Weights) -> torch.nn.Module:
    """transformers' CLIPVisionModelWithProjection holding the file's vision weights (fp32, CPU):
    ``module(pixel_values=...)`` -> (B, 512) image embeddings."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    module = CLIPVisionModelWithProjection(CLIPVisionConfig(**weights.vision_config))
    return Embedder(_load(module, weights.vision, weights.source, "vision"), "image_embeds")


def text_tower(weights: ClipB32Weights) -> torch.nn.Module:
    """transformers' CLIPTextModelWithProjection holding the file's text weights (fp32, CPU):
    ``module(input_ids=..., attention_mask=...)`` -> (N, 512) text embeddings."""
    if not weights.has_text:
        raise CheckpointError(f"{weights.source}: this CLIP file has no text tower (text_model.*, "
                              "text_projection.weight), which CLIPScore needs; use the full CLIP file of "
                              "openai/clip-vit-base-patch32, not a vision-only one")
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    module = CLIPTextModelWithProjection(CLIPTextConfig(**weights.text_config))
    return Embedder(_load(module, weights.text, weights.source, "text"), "text_embeds")
