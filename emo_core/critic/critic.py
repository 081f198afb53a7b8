"""The valence-arousal critic: CLIP ViT-B/32's projected image embedding f (512-d, not normalised) through the two
released linear heads, v̂ = sigmoid(w_v·f + b_v)·6 − 3 and â likewise; and CLIPScore against a prompt.

``VACritic`` does the preprocessing, batching and head arithmetic; the CLIP towers are handed in as functions
(pixel values -> image embedding, texts -> text embedding), so the same critic runs on transformers here
(``load_va_critic``) and on ComfyUI's own CLIP-vision classes in the nodes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from ..evaluation.metrics import clip_scores
from ..images import rgb_images
from .clip_b32 import ClipB32Weights, clip_file, read_clip_b32, text_tower, vision_tower
from .heads import VAHead, load_va_head
from .preprocess import RESIZE_METHODS, clip_pixels
from .tokenizer import ClipTokenizer, tokenizer_folder

ImageFeatures = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, 224, 224) CLIP pixels -> (B, 512)
TextFeatures = Callable[[list[str]], torch.Tensor]  # N texts -> (N, 512)
BATCH = 32  # images per CLIP forward: bounds memory for large batches


def no_text_tower(source: str) -> str:
    return (f"{source} has no text tower (text_model.*, text_projection.weight), which CLIPScore needs; use the full "
            "CLIP file of openai/clip-vit-base-patch32, not a vision-only one (or give no prompt)")


class VACritic:
    """``predict(images)`` -> (B, 2) float32 (valence, arousal) in [-3, 3]; ``clip_score(images, texts)`` -> (B,).

    images: a ComfyUI IMAGE, (B, H, W, 3) float in [0, 1], any size (RGBA and grey are used as RGB)."""

    def __init__(self, image_features: ImageFeatures, valence: VAHead, arousal: VAHead,
                 text_features: TextFeatures | None = None, resize: str = "pil", source: str = "the CLIP",
                 on_batch: Callable[[int, int], None] | None = None, no_text_reason: str = ""):
        if resize not in RESIZE_METHODS:
            raise ValueError(f"resize: {resize!r} is not one of {', '.join(RESIZE_METHODS)}")
        self.image_features, self.text_features = image_features, text_features
        self.valence, self.arousal, self.resize, self.source = valence, arousal, resize, source
        self.on_batch = on_batch  # (images done, total): before every batch and at the end (progress, Cancel)
        self.no_text_reason = no_text_reason or no_text_tower(source)

    @property
    def has_text(self) -> bool:
        return self.text_features is not None

    def embed(self, images: torch.Tensor, name: str = "images") -> torch.Tensor:
        """(B, 512) float32 projected image embeddings (not normalised), in batches of 32."""
        images = rgb_images(images, name)
        out, total = [], images.shape[0]
        for start in range(0, total, BATCH):
            if self.on_batch is not None:
                self.on_batch(start, total)
            pixels = clip_pixels(images[start:start + BATCH], self.resize, name)
            out.append(self.image_features(pixels).float().cpu())
        if self.on_batch is not None:
            self.on_batch(total, total)
        features = torch.cat(out)
        if not torch.isfinite(features).all():
            raise ValueError(f"{self.source}: the image embedding holds NaN or infinity; every prediction would be "
                             "meaningless")
        return features

    def predict_features(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 512) embeddings -> (B, 2) (valence, arousal)."""
        return torch.stack([self.valence.predict(features), self.arousal.predict(features)], dim=1)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.predict_features(self.embed(images))

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        if not self.has_text:
            raise ValueError(f"CLIPScore: {self.no_text_reason}")
        texts = [str(t) for t in texts]
        return self.text_features(texts).float().cpu()

    def clip_score(self, images: torch.Tensor, texts: Sequence[str] | str,
                   features: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) 100 · max(cos(image, text), 0); one text for every image, or one per image. ``features``: the
        images' embeddings when already computed."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        count = images.shape[0] if features is None else features.shape[0]
        if len(texts) not in (1, count):
            raise ValueError(f"CLIPScore: {len(texts)} prompts for {count} images (give one, or one per image)")
        text = self.embed_texts(texts)
        image = self.embed(images) if features is None else features
        return clip_scores(image, text.expand(count, -1) if len(texts) == 1 else text)


# --- outside ComfyUI: transformers towers ---------------------------------------------------------------------------


class TransformersClip:
    """The two CLIP towers as transformers modules on one device; the text tower is built on first use."""

    def __init__(self, weights: ClipB32Weights, device: torch.device, tokenizer: ClipTokenizer | None):
        self.weights, self.device, self.tokenizer = weights, device, tokenizer
        self.vision = vision_tower(weights).to(device)
        self._text = None

    @torch.no_grad()
    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vision(pixel_values=pixels.to(self.device))

    @torch.no_grad()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        if self._text is None:
            self._text = text_tower(self.weights).to(self.device)
        ids, mask = self.tokenizer(texts)
        return self._text(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))


def load_va_critic(clip_path: str | os.PathLike, valence_head: str | os.PathLike, arousal_head: str | os.PathLike,
                   device: str | torch.device | None = None, tokenizer: str | os.PathLike | None = None,
                   resize: str = "pil") -> VACritic:
    """The V-A critic from a Hugging Face CLIP ViT-B/32 file or folder and the two released heads (fp32).

    device: where CLIP runs (default CPU). tokenizer: a folder with CLIP's vocab.json and merges.txt, for CLIPScore
    (default: the CLIP file's own folder when it holds them). resize: "pil" (published pixels) or "torch"."""
    valence, arousal = load_va_head(valence_head, "valence head"), load_va_head(arousal_head, "arousal head")
    clip_path = clip_file(clip_path)  # a Hugging Face folder: its weights file, beside which the tokenizer lies
    weights = read_clip_b32(clip_path)
    folder = tokenizer_folder(clip_path, tokenizer) if weights.has_text else None
    clip = TransformersClip(weights, torch.device(device or "cpu"), ClipTokenizer(folder) if folder else None)
    reason = ""
    if weights.has_text and folder is None:
        reason = (f"no CLIP tokenizer was found (vocab.json and merges.txt beside {clip_path}); pass tokenizer=<a "
                  "folder with them>, e.g. ComfyUI's comfy/sd1_tokenizer")
    text = clip.text_features if weights.has_text and folder is not None else None
    return VACritic(clip.image_features, valence, arousal, text, resize, str(clip_path), no_text_reason=reason)
