"""EmotiCrafter's evaluation metrics and its 5x5 protocol.

* V-Error / A-Error: mean ± std of |prediction − target| over the images (std is the population std, ddof = 0,
  numpy's default: the paper does not say which; with 25 or more images per method the two differ by < 2 %).
* CLIPScore: 100 · max(cos(image embedding, text embedding), 0) per image, with the image's **neutral** prompt;
  reported as mean ± std (same std). torchmetrics' CLIPScore clamps the mean instead of each image; for the
  paper's positive scores the two agree.
* The 5x5 protocol: V, A ∈ {−3, −1.5, 0, 1.5, 3}, one seed for all 25 cells; rows = arousal (top = +3),
  columns = valence, as the published figures and Emotion Grid lay it out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

PROTOCOL_VALUES = (-3.0, -1.5, 0.0, 1.5, 3.0)


def protocol_points() -> list[tuple[float, float]]:
    """The 25 (valence, arousal) cells, row-major: arousal from +3 down, valence from −3 across."""
    return [(v, a) for a in reversed(PROTOCOL_VALUES) for v in PROTOCOL_VALUES]


def mean_std(values: torch.Tensor) -> tuple[float, float]:
    """(mean, population std) of a 1-d tensor, in float64."""
    values = values.detach().double().reshape(-1)
    if not values.numel():
        raise ValueError("no values to average")
    return values.mean().item(), values.std(correction=0).item()


def abs_errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, 2) |prediction − target| for (valence, arousal); a single target row is used for every prediction."""
    pred, target = pred.detach().double().reshape(-1, 2), torch.as_tensor(target).double().reshape(-1, 2)
    if target.shape[0] not in (1, pred.shape[0]):
        raise ValueError(f"{pred.shape[0]} predictions but {target.shape[0]} targets (give one target, or one per "
                         "image)")
    errors = (pred - target).abs()
    if not torch.isfinite(errors).all():
        raise ValueError("the predictions or targets hold NaN or infinity")
    return errors


def va_errors(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """{v_mean, v_std, a_mean, a_std}: the paper's V-Error and A-Error (mean ± std of |pred − target|)."""
    errors = abs_errors(pred, target)
    v_mean, v_std = mean_std(errors[:, 0])
    a_mean, a_std = mean_std(errors[:, 1])
    return {"v_mean": v_mean, "v_std": v_std, "a_mean": a_mean, "a_std": a_std}


def clip_scores(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """(N,) 100 · max(cos, 0) between paired rows of two (N, D) embeddings."""
    cos = torch.nn.functional.cosine_similarity(image_features.double(), text_features.double(), dim=-1, eps=1e-12)
    return (100 * cos.clamp(min=0)).float()


def clip_score_stats(scores: torch.Tensor) -> dict[str, float]:
    mean, std = mean_std(scores)
    return {"clip_score_mean": mean, "clip_score_std": std}


def cell_errors(pred: torch.Tensor, target: torch.Tensor) -> list[dict]:
    """Mean |error| per distinct target (v, a), over every image rendered for it (e.g. every prompt of the 5x5
    protocol): [{valence, arousal, count, v_error, a_error}], sorted arousal high to low, then valence."""
    errors = abs_errors(pred, target)
    target = torch.as_tensor(target).double().reshape(-1, 2).expand(errors.shape[0], 2)
    cells: dict[tuple[float, float], list[int]] = {}
    for index, (v, a) in enumerate(target.tolist()):
        cells.setdefault((round(v, 6), round(a, 6)), []).append(index)
    rows = []
    for (v, a), indices in sorted(cells.items(), key=lambda item: (-item[0][1], item[0][0])):
        picked = errors[indices]
        rows.append({"valence": v, "arousal": a, "count": len(indices), "v_error": picked[:, 0].mean().item(),
                     "a_error": picked[:, 1].mean().item()})
    return rows


def summary(pred: torch.Tensor, target: torch.Tensor | None = None,
            scores: torch.Tensor | None = None) -> dict[str, float]:
    """Everything the paper reports that applies: V/A-Error with targets, CLIPScore with scores."""
    out: dict[str, float] = {"images": int(pred.reshape(-1, 2).shape[0])}
    if target is not None:
        out.update(va_errors(pred, target))
    if scores is not None:
        out.update(clip_score_stats(scores))
    return out


def format_table(stats: dict, label: str = "this run", not_measured: dict[str, str] | None = None) -> str:
    """The paper's table row as markdown: V-Error, A-Error, CLIPScore (mean ± std; '-' where not measured), then
    Emo-A, CLIP-IQA and LPIPS-Continuous where ``stats`` has them, and one line per column in ``not_measured``
    (column -> reason)."""
    def cell(prefix: str, digits: int) -> str:
        if f"{prefix}_mean" not in stats:
            return "-"
        return f"{stats[prefix + '_mean']:.{digits}f} ± {stats[prefix + '_std']:.{digits}f}"

    heads, cells = ["images", "V-Error", "A-Error", "CLIPScore"], [str(stats.get("images", "-")), cell("v", 3),
                                                                   cell("a", 3), cell("clip_score", 2)]
    if "emo_a" in stats:
        heads.append("Emo-A")
        cells.append(f"{100 * stats['emo_a']:.2f} % ({stats['emo_a_hits']}/{stats['emo_a_count']})")
    for head, prefix in (("CLIP-IQA", "clip_iqa"), ("LPIPS-Continuous", "lpips_continuous")):
        if f"{prefix}_mean" in stats:
            heads.append(head)
            cells.append(cell(prefix, 3))
    lines = ["| | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|", f"| {label} | " + " | ".join(cells)
             + " |"]
    lines += [f"{column}: {reason}" for column, reason in (not_measured or {}).items()]
    return "\n".join(lines)


def as_points(values: Sequence[Sequence[float]]) -> torch.Tensor:
    return torch.tensor([[float(v), float(a)] for v, a in values], dtype=torch.float64).reshape(-1, 2)
