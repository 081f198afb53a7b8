"""Emotion accuracy (Emo-A) with EmoEditor's emotion predictor, and the rule that turns a V-A target into a class.

* ``emotion_accuracy(predictor, images, targets)``: the share of images whose top class (argmax of the predictor's
  softmax, the lowest index on a tie) is the target class. Images go through the predictor's published
  preprocessing for 8-bit pictures: rounded to uint8, Pillow's bilinear resize to 224x224, /255, no normalisation
  (``EmotionPredictor.predict(..., resize="pil")``), so images loaded from PNG files get exactly [EE test.py]'s pixels.
* ``va_target_class(valence, arousal)``: the class whose V-A centre (``EMOTION_VA_CENTRES``, the Warriner et al.
  ratings of the class words mapped to [-3, 3]) is nearest in the V-A plane (Euclidean; the first class in
  alphabetical order on a tie). This is how ``python -m emo_core evaluate --predictor`` scores a V-A cell. It is our
  rule: EmoCtrl reports 24.67 % Emo-A for EmotiCrafter measured with its own classifier and its own targets, so the
  two numbers are comparable in kind, not equal in method.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..emoeditor.continuous import nearest_class
from ..emoeditor.emotions import EMOTIONS, class_name


def va_target_class(valence: float, arousal: float) -> str:
    """The class of the ``EMOTION_VA_CENTRES`` entry nearest to (valence, arousal)."""
    return EMOTIONS[nearest_class(float(valence), float(arousal))]


def _batches(images) -> list[torch.Tensor]:
    """A ComfyUI IMAGE (B, H, W, 3) / (H, W, 3), or a list of them (sizes may differ), as a list of 4-d batches."""
    items = [images] if isinstance(images, torch.Tensor) else list(images)
    batches = []
    for index, item in enumerate(items):
        if not isinstance(item, torch.Tensor):
            raise TypeError(f"images[{index}]: expected a (B, H, W, 3) or (H, W, 3) tensor, got {type(item).__name__}")
        batches.append(item.unsqueeze(0) if item.dim() == 3 else item)
    return batches


def emotion_accuracy(predictor, images, targets: str | int | Sequence[str | int]) -> dict:
    """{"accuracy": hits / count, "hits", "count", "top": [predicted class per image]} for ``images`` (a ComfyUI
    IMAGE in [0, 1] or a list of them) against ``targets`` (one class name or index for every image, or one per
    image). ``predictor`` is what ``emo_core.load_emo_predictor`` returns."""
    top: list[str] = []
    for batch in _batches(images):
        if batch.shape[0]:
            top.extend(predictor.predict(batch, resize="pil").label_names)
    if not top:
        raise ValueError("no images to score")
    if isinstance(targets, (str, int)):
        wanted = [class_name(targets)] * len(top)
    else:
        wanted = [class_name(t) for t in targets]
        if len(wanted) != len(top):
            raise ValueError(f"{len(top)} images but {len(wanted)} targets (give one target, or one per image)")
    hits = sum(p == t for p, t in zip(top, wanted, strict=True))
    return {"accuracy": hits / len(top), "hits": hits, "count": len(top), "top": top}
