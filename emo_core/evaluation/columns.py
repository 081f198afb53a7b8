"""The optional columns of ``evaluate``: Emo-A, CLIP-IQA and LPIPS-Continuous. Each is computed only when its files
are given; otherwise (or when they cannot be loaded) it is absent and ``reasons`` says why in one line.

* Emo-A (``--predictor``, EmoEditor's ``emo_predictor.pt``): the share of cells whose predicted top class is
  ``va_target_class(v, a)``, the class whose V-A centre is nearest to the cell's target (see ``accuracy``).
* CLIP-IQA (``--iqa-clip``, a Hugging Face CLIP folder): mean ± std over the images (see ``iqa``).
* LPIPS-Continuous (``--lpips-backbone``, torchvision's AlexNet file): the paper does not define it; our reading is
  LPIPS between grid neighbours (next valence at the same arousal, next arousal at the same valence) among the
  images of one prompt, mean ± std (population) over all such pairs of all prompts. Prompts with several images of
  one V-A point (several seeds or runs) and pairs of different image sizes are left out and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .accuracy import va_target_class
from .iqa import ColumnUnavailable, clip_iqa_scores, grid_neighbours, load_clip_iqa, load_lpips, lpips_distances
from .metrics import mean_std

EMO_A, CLIP_IQA, LPIPS_CONTINUOUS = "Emo-A", "CLIP-IQA", "LPIPS-Continuous"
OPTIONS = {EMO_A: "--predictor", CLIP_IQA: "--iqa-clip", LPIPS_CONTINUOUS: "--lpips-backbone"}


@dataclass
class Columns:
    """The loaded models of the optional columns; ``reasons[column]`` for each column that is not computed."""
    predictor: object | None = None
    clip_iqa: object | None = None
    lpips: object | None = None
    reasons: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for column, model in ((EMO_A, self.predictor), (CLIP_IQA, self.clip_iqa), (LPIPS_CONTINUOUS, self.lpips)):
            if model is None:
                self.reasons.setdefault(column, f"not measured: no {OPTIONS[column]} given")


def load_columns(predictor=None, iqa_clip=None, lpips_backbone=None, device: str | torch.device = "cpu") -> Columns:
    """Load what is given; a file that is missing or wrong makes its column absent with the reason (never fatal)."""
    from ..emoeditor.loaders import load_emo_predictor

    loaded, reasons = {}, {}
    for column, path, load in ((EMO_A, predictor, load_emo_predictor), (CLIP_IQA, iqa_clip, load_clip_iqa),
                               (LPIPS_CONTINUOUS, lpips_backbone, load_lpips)):
        if path is None:
            continue
        try:
            if column == EMO_A and not Path(path).exists():
                raise ColumnUnavailable(f"{path}: no such file")
            loaded[column] = load(path, device=device)
        except (OSError, ValueError) as exc:  # ColumnUnavailable and CheckpointError are ValueErrors
            reasons[column] = "not measured: " + " ".join(str(exc).split())
    return Columns(loaded.get(EMO_A), loaded.get(CLIP_IQA), loaded.get(LPIPS_CONTINUOUS), reasons)


def score_cell(columns: Columns, pixels: torch.Tensor, record: dict) -> None:
    """Add the per-image columns to one cell's record: ``emotion``, ``emotion_target`` and ``clip_iqa``."""
    if columns.predictor is not None:
        record["emotion"] = columns.predictor.predict(pixels[None], resize="pil").label_names[0]
        record["emotion_target"] = va_target_class(record["target_valence"], record["target_arousal"])
    if columns.clip_iqa is not None:
        record["clip_iqa"] = clip_iqa_scores(columns.clip_iqa, pixels[None])[0].item()


def lpips_continuous(model, records: list[dict], paths: list[Path], load: Callable[[Path], torch.Tensor]
                     ) -> tuple[dict, list[dict], list[str]]:
    """(summary entries, pairs [{a, b, axis, lpips}], notes) of LPIPS between grid neighbours, per prompt group."""
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(record["prompt"], []).append(index)
    pairs, notes, crowded, mismatched = [], [], 0, 0
    for indices in groups.values():
        try:
            found = grid_neighbours([(records[i]["target_valence"], records[i]["target_arousal"]) for i in indices])
        except ValueError:
            crowded += 1
            continue
        cache: dict[int, torch.Tensor] = {}
        wanted = []
        for i, j, axis in found:
            a, b = indices[i], indices[j]
            for k in (a, b):
                if k not in cache:
                    cache[k] = load(paths[k])
            if cache[a].shape != cache[b].shape:
                mismatched += 1
                continue
            wanted.append((a, b, axis))
        by_shape: dict[tuple, list[tuple[int, int, str]]] = {}
        for entry in wanted:
            by_shape.setdefault(tuple(cache[entry[0]].shape), []).append(entry)
        for same in by_shape.values():
            first = torch.stack([cache[a] for a, _, _ in same])
            second = torch.stack([cache[b] for _, b, _ in same])
            for (a, b, axis), value in zip(same, lpips_distances(model, first, second).tolist(), strict=True):
                pairs.append({"a": records[a]["file"], "b": records[b]["file"], "axis": axis, "lpips": value})
    if crowded:
        notes.append(f"{LPIPS_CONTINUOUS}: {crowded} prompt(s) with several images of one V-A point (several seeds "
                     "or runs) left out")
    if mismatched:
        notes.append(f"{LPIPS_CONTINUOUS}: {mismatched} neighbour pair(s) of different image sizes left out")
    if not pairs:
        return {}, [], notes
    mean, std = mean_std(torch.tensor([p["lpips"] for p in pairs], dtype=torch.float64))
    return {"lpips_continuous_mean": mean, "lpips_continuous_std": std, "lpips_continuous_pairs": len(pairs)}, pairs, \
        notes


def column_summary(columns: Columns, records: list[dict]) -> dict:
    """Summary entries of the per-image columns: emo_a (share), emo_a_hits, emo_a_count, clip_iqa_mean/std."""
    out: dict = {}
    if columns.predictor is not None:
        hits = sum(r["emotion"] == r["emotion_target"] for r in records)
        out.update(emo_a=hits / len(records), emo_a_hits=hits, emo_a_count=len(records))
    if columns.clip_iqa is not None:
        mean, std = mean_std(torch.tensor([r["clip_iqa"] for r in records], dtype=torch.float64))
        out.update(clip_iqa_mean=mean, clip_iqa_std=std)
    return out
