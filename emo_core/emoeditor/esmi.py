"""ESMI, EmoEditor's score of an edit [EE metric_ESMI.py] (spec §9): ESMI = 0.5·S_str + 0.5·S_emo, on [0, 1] (the
paper prints ×100).

* S_emo = max(0, KL_src − KL_edit) / (KL_src + 1e-10), KL = KL(onehot(target) ‖ p) = −log p[target] with p
  renormalised by its float64 sum (scipy.stats.entropy), p = the predictor's float32 softmax: how much of the
  distance to the target the edit closed.
* S_str = L_emo / (L_full + 1e-10): L = mean |a − b| in float64 over the uint8 224×224×3 arrays, L_emo with both
  multiplied by the Grad-CAM mask of the source (``gradcam.grad_cam`` on ``layer4[-1]``, the source's top class,
  binarised at > 0.5): the share of the change that falls in the region the predictor looks at.

Images take the published path: 8-bit pixels (ComfyUI IMAGEs as Save Image writes them: clip(255·x) truncated to
uint8), Pillow's ``resize((224, 224))`` (bicubic) when they are another size, ToTensor without normalisation; the
predictor runs on one image at a time, as the published script does. An edit equal to its source scores 0 (the 1e-10
guards), never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from .emotions import EMOTIONS
from .gradcam import grad_cam
from .predictor import EmotionPredictor

SIZE = 224
EPS = 1e-10
MASK_THRESHOLD = 0.5


@dataclass
class ESMIScores:
    """Per pair: ``scores`` (B, 3) float64 [ESMI, S_str, S_emo]; the predictor's softmax of source and edit (B, 8);
    the source's emotion-region mask (B, 224, 224) bool; the targets; the 224-px uint8 pictures; notes per pair."""
    scores: torch.Tensor
    source_distribution: torch.Tensor
    edit_distribution: torch.Tensor
    masks: torch.Tensor
    targets: list[str]
    sources_224: np.ndarray
    edits_224: np.ndarray
    source_index: list[int]
    notes: list[list[str]] = field(default_factory=list)


def to_uint8(images: torch.Tensor, name: str) -> np.ndarray:
    """ComfyUI IMAGE (B, H, W, 3) in [0, 1] -> uint8 exactly as Save Image writes it; NaN/inf refused by name."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name}: expected an IMAGE batch shaped (B, H, W, 3), got {shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{name}: the batch is empty")
    bad = (~torch.isfinite(images.detach().float())).flatten(1).any(dim=1)
    if bad.any():
        raise ValueError(f"{name}: image {int(bad.nonzero()[0])} holds NaN or infinite pixels")
    return np.clip(255.0 * images.detach().float().cpu().numpy(), 0, 255).astype(np.uint8)


def at_224(picture: np.ndarray | Image.Image) -> np.ndarray:
    """(224, 224, 3) uint8: Pillow's default ``resize((224, 224))`` when the size differs, then RGB (the published
    order: resize, then convert)."""
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    if image.size != (SIZE, SIZE):
        image = image.resize((SIZE, SIZE))
    return np.array(image.convert("RGB"), dtype=np.uint8)


def kl_to_target(p: np.ndarray, target: int) -> float:
    """scipy.stats.entropy(onehot(target), p) without scipy: p renormalised by its float64 sum, then log(1 / p_t)."""
    p = np.asarray(p, dtype=np.float64)
    q = p[target] / p.sum()
    return math.inf if q <= 0 else float(np.log(1.0 / q))


def s_emo(p_source: np.ndarray, p_edit: np.ndarray, target: int) -> float:
    """max(0, KL_src − KL_edit) / (KL_src + 1e-10). When p_source[target] is exactly 0 (KL_src infinite) the
    published formula gives NaN (inf/inf) for a finite KL_edit: here 1 (its limit); 0 when both are infinite."""
    kl_src, kl_edit = kl_to_target(p_source, target), kl_to_target(p_edit, target)
    if math.isinf(kl_src):
        return 0.0 if math.isinf(kl_edit) else 1.0
    return max(0.0, kl_src - kl_edit) / (kl_src + EPS)


def l1(a: np.ndarray, b: np.ndarray) -> float:
    """[EE utils.cal_L1]: mean |a − b| over every value, float64."""
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def s_str(source: np.ndarray, edit: np.ndarray, mask: np.ndarray) -> float:
    """L_emo / (L_full + 1e-10) on (224, 224, 3) uint8 pictures and a (224, 224) boolean mask."""
    mask3 = np.repeat(mask.astype(np.uint8)[:, :, None], 3, axis=2)
    return l1(source * mask3, edit * mask3) / (l1(source, edit) + EPS)


def _pixels(picture: np.ndarray) -> torch.Tensor:
    """ToTensor of a (224, 224, 3) uint8 picture: (1, 3, 224, 224) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(picture)).permute(2, 0, 1)[None].float().div(255)


def _target_indices(targets: str | Sequence[str], count: int) -> list[int]:
    names = [targets] if isinstance(targets, str) else list(targets)
    if len(names) not in (1, count):
        raise ValueError(f"targets: {len(names)} given for {count} pairs; give one, or one per pair")
    names = names * count if len(names) == 1 else names
    for k, name in enumerate(names):
        if name not in EMOTIONS:
            raise ValueError(f"targets: pair {k}: {name!r} is not one of EmoEditor's classes ({', '.join(EMOTIONS)})")
    return [EMOTIONS.index(n) for n in names]


def pair_sources(sources: int, edits: int) -> list[int]:
    """The source of each edit: one per source, or a batch of edits of one source."""
    if edits == sources or sources == 1:
        return [k if sources > 1 else 0 for k in range(edits)]
    raise ValueError(f"edits: {edits} images for {sources} sources; give one edit per source, or edits of one source")


def score_pictures(predictor: EmotionPredictor, sources_224: Sequence[np.ndarray], edits_224: Sequence[np.ndarray],
                   targets: str | Sequence[str], source_index: Sequence[int] | None = None) -> ESMIScores:
    """ESMI of 224-px uint8 pictures (see :func:`at_224`); edit k pairs with ``sources_224[source_index[k]]``."""
    source_index = list(range(len(edits_224)) if source_index is None else source_index)
    indices = _target_indices(targets, len(edits_224))
    source_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    rows, p_src, p_edit, masks = [], [], [], []
    for k, (s, t) in enumerate(zip(source_index, indices, strict=True)):
        if s not in source_cache:  # CAM and distribution of a source, once
            cam, logits = grad_cam(predictor, _pixels(sources_224[s]), return_logits=True)
            source_cache[s] = (cam[0].numpy() > MASK_THRESHOLD, torch.softmax(logits, 1)[0].float().cpu().numpy())
        mask, p = source_cache[s]
        with torch.no_grad():
            param = next(predictor.parameters())
            logits = predictor(_pixels(edits_224[k]).to(device=param.device, dtype=param.dtype))
        q = torch.softmax(logits, 1)[0].float().cpu().numpy()
        structure, emotion = s_str(sources_224[s], edits_224[k], mask), s_emo(p, q, t)
        rows.append((0.5 * structure + 0.5 * emotion, structure, emotion))
        p_src.append(p)
        p_edit.append(q)
        masks.append(mask)
    return ESMIScores(torch.tensor(rows, dtype=torch.float64).reshape(-1, 3), torch.from_numpy(np.stack(p_src)),
                      torch.from_numpy(np.stack(p_edit)), torch.from_numpy(np.stack(masks)),
                      [EMOTIONS[t] for t in indices], np.stack(sources_224), np.stack(edits_224), source_index,
                      [[] for _ in indices])


def score_edits(predictor: EmotionPredictor, sources: torch.Tensor, edits: torch.Tensor,
                targets: str | Sequence[str]) -> ESMIScores:
    """ESMI with every detail, for ComfyUI IMAGE batches (see :func:`esmi`)."""
    src_u8, edit_u8 = to_uint8(sources, "sources"), to_uint8(edits, "edits")
    index = pair_sources(src_u8.shape[0], edit_u8.shape[0])
    _target_indices(targets, len(index))  # named errors before any work
    scores = score_pictures(predictor, [at_224(a) for a in src_u8], [at_224(a) for a in edit_u8], targets, index)
    if src_u8.shape[1:3] != edit_u8.shape[1:3]:
        note = (f"edit {edit_u8.shape[2]}x{edit_u8.shape[1]} and source {src_u8.shape[2]}x{src_u8.shape[1]} differ "
                "in size: both resized to 224x224 (Pillow bicubic), as published")
        scores.notes = [[note] for _ in index]
    return scores


def esmi(predictor: EmotionPredictor, sources: torch.Tensor, edits: torch.Tensor,
         targets: str | Sequence[str]) -> torch.Tensor:
    """(B, 3) float64 [ESMI, S_str, S_emo] per pair, on [0, 1] (the paper prints ×100).

    ``predictor``: what ``load_emo_predictor`` returns; ``sources``/``edits``: ComfyUI IMAGEs (B, H, W, 3) in
    [0, 1], one edit per source or a batch of edits of one source; ``targets``: a class name or one per pair."""
    return score_edits(predictor, sources, edits, targets).scores


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and population standard deviation (ddof 0, as the other metrics of this package)."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std())} if array.size else {"mean": math.nan,
                                                                                       "std": math.nan}


def esmi_report(details: ESMIScores) -> dict:
    """JSON-ready: every pair (scores on [0, 1] and ×100, both distributions, the emotion region's share of the
    picture, notes) and mean ± std of each score."""
    pairs = []
    for k, (row, target) in enumerate(zip(details.scores.tolist(), details.targets, strict=True)):
        pairs.append({"pair": k, "source": details.source_index[k], "target": target,
                      "esmi": row[0], "s_str": row[1], "s_emo": row[2],
                      "x100": {"esmi": 100 * row[0], "s_str": 100 * row[1], "s_emo": 100 * row[2]},
                      "source_distribution": dict(zip(EMOTIONS, details.source_distribution[k].tolist(), strict=True)),
                      "edit_distribution": dict(zip(EMOTIONS, details.edit_distribution[k].tolist(), strict=True)),
                      "emotion_region_share": float(details.masks[k].float().mean()),
                      "notes": details.notes[k] if details.notes else []})
    summary = {name: mean_std(details.scores[:, i].tolist()) for i, name in enumerate(("esmi", "s_str", "s_emo"))}
    summary["x100"] = {name: {key: 100 * value for key, value in stats.items()} for name, stats in summary.items()}
    return {"metric": "ESMI = 0.5 S_str + 0.5 S_emo (EmoEditor metric_ESMI.py); the paper prints x100",
            "pairs": pairs, "summary": summary}
