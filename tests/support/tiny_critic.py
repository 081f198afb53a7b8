"""Tiny seeded CLIP ViT-B/32-layout models and V-A heads in the released formats, written at test time.

* CLIP: a random ``transformers.CLIPModel`` with the B/32 layout the critic checks (32-pixel patches at 224 px,
  512-d projections) but tiny widths (vision 128 = 2 heads, text 64 = 1 head, 2 layers each), saved the way
  Hugging Face ships openai/clip-vit-base-patch32: one file with ``vision_model.*``, ``visual_projection.weight``,
  ``text_model.*``, ``text_projection.weight`` and ``logit_scale`` (safetensors, or a .bin pickle).
* Heads: ``classifier.0.weight`` (1x512) and ``classifier.0.bias`` (1), fp32, pickled as if from CUDA (the storages
  are tagged ``cuda:0``, as ``torch.save`` of CUDA tensors writes them), so loading needs map_location="cpu".

Usage: python tiny_critic.py OUT_DIR (writes the files the example workflows' tiny twins name).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch

TINY_CLIP_NAME = "emo_tiny_clip_b32.safetensors"
TINY_VALENCE_NAME = "emo_tiny_valence1_CLIP.pth"
TINY_AROUSAL_NAME = "emo_tiny_arousal1_CLIP.pth"
TINY_VISION = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                   patch_size=32, image_size=224)
TINY_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=1,
                 max_position_embeddings=77, vocab_size=49408)


def tiny_clip(seed: int = 0, vision: dict | None = None, projection_dim: int = 512):
    """A seeded random transformers CLIPModel (eval mode) in the B/32 layout, or another layout via ``vision``."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(text_config=dict(TINY_TEXT), vision_config={**TINY_VISION, **(vision or {})},
                        projection_dim=projection_dim)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    with torch.no_grad():  # transformers initialises projections at 0.02 std: give the embedding a useful scale
        for p in model.parameters():
            if p.ndim > 1:
                p.normal_(0, p.shape[-1] ** -0.5)
    return model


def save_clip(model, path: Path, vision_only: bool = False) -> Path:
    """Save like the Hugging Face release: .safetensors or a .bin pickle; ``vision_only`` keeps vision_model.* and
    visual_projection.weight (a CLIPVisionModelWithProjection file)."""
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if vision_only:
        state = {k: v for k, v in state.items() if k.startswith(("vision_model.", "visual_projection."))}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


@contextlib.contextmanager
def _tagged_cuda():
    """Make torch.save record every storage's location as cuda:0, as it does for tensors saved from a GPU."""
    registry = torch.serialization._package_registry
    entry = (-1, lambda storage: "cuda:0", lambda storage, location: None)
    registry.insert(0, entry)
    try:
        yield
    finally:
        registry.remove(entry)


def random_head(seed: int, features: int = 512, scale: float = 1.3) -> dict[str, torch.Tensor]:
    """A head in the released layout, ‖w‖ about ``scale`` (the released ones: 1.335 and 1.179)."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(1, features, generator=generator)
    weight = weight / weight.norm() * scale
    return {"classifier.0.weight": weight, "classifier.0.bias": torch.randn(1, generator=generator) * 0.05}


def save_head(state: dict[str, torch.Tensor], path: Path, cuda_like: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _tagged_cuda() if cuda_like else contextlib.nullcontext():
        torch.save(dict(state), path)
    return path


def write_tiny_critic(models_dir: Path, seed: int = 0) -> None:
    """The tiny critic files where ComfyUI looks: models/clip_vision and models/emoticrafter."""
    save_clip(tiny_clip(seed), models_dir / "clip_vision" / TINY_CLIP_NAME)
    save_head(random_head(seed + 1), models_dir / "emoticrafter" / TINY_VALENCE_NAME)
    save_head(random_head(seed + 2), models_dir / "emoticrafter" / TINY_AROUSAL_NAME)


if __name__ == "__main__":
    write_tiny_critic(Path(sys.argv[1]))
