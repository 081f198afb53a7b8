"""The V-A critic's formula computed directly, independently of emo_core: OpenAI CLIP's preprocessing with torchvision
on PIL images, transformers' CLIPModel towers, the heads' sigmoid(w·f + b)·6 − 3 and CLIPScore 100·max(cos, 0).
(Kept apart from tiny_critic.py, whose changes rewrite the host's tiny models.)"""

from __future__ import annotations

import functools

import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def reference_pixels(images_u8) -> torch.Tensor:
    """OpenAI CLIP's preprocess (torchvision Resize(224, BICUBIC), CenterCrop(224), ToTensor, Normalize) on PIL
    images made from (B, H, W, 3) uint8 arrays."""
    from PIL import Image
    from torchvision import transforms as T

    preprocess = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                            T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)])
    return torch.stack([preprocess(Image.fromarray(image)) for image in images_u8])


@torch.no_grad()
def reference_embedding(model, images_u8) -> torch.Tensor:
    """The 512-d projected image embedding, not normalised: visual_projection(vision_model(...).pooler_output)."""
    return model.visual_projection(model.vision_model(pixel_values=reference_pixels(images_u8)).pooler_output)


def reference_va(model, valence: dict, arousal: dict, images_u8) -> torch.Tensor:
    """(B, 2): sigmoid(w·f + b)·6 − 3 for each head."""
    f = reference_embedding(model, images_u8).double()
    out = [torch.sigmoid(f @ h["classifier.0.weight"][0].double() + h["classifier.0.bias"][0].double()) * 6 - 3
           for h in (valence, arousal)]
    return torch.stack(out, dim=1)


@functools.cache
def _tokenizer(folder: str):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(folder)


@torch.no_grad()
def reference_clip_score(model, tokenizer_dir, images_u8, prompt: str) -> torch.Tensor:
    """(B,) 100·max(cos(image, text), 0) with transformers' CLIPTokenizer and the model's own towers."""
    ids = _tokenizer(str(tokenizer_dir))([prompt], truncation=True, max_length=77, return_tensors="pt")["input_ids"]
    text = model.text_projection(model.text_model(input_ids=ids).pooler_output).double()
    image = reference_embedding(model, images_u8).double()
    cos = (image @ text[0]) / (image.norm(dim=1) * text[0].norm())
    return 100 * cos.clamp(min=0)
