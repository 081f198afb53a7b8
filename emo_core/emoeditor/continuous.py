"""Valence-arousal (EmotiCrafter's language) <-> a distribution over EmoEditor's eight classes.

Each class has a V-A centre; a V-A point becomes p(c) ∝ exp(-‖va - μ_c‖² / 2σ²) (a Gaussian kernel over the
centres), and a distribution has an expected V-A, Σ p(c) μ_c. σ → 0 gives the one-hot of the nearest class, so
EmoEditor's published direction onehot(target) - p(source) is the special case "V-A at the target's centre, σ = 0".

The centres (the only copy of these numbers in the package): the ratings of the class words themselves in
Warriner, A. B., Kuperman, V., & Brysbaert, M. (2013). Norms of valence, arousal, and dominance for 13,915 English
lemmas. Behavior Research Methods, 45(4), 1191-1207. https://doi.org/10.3758/s13428-012-0314-x
(columns V.Mean.Sum and A.Mean.Sum, 1-9 scale), mapped to EmotiCrafter's [-3, 3] with (x - 5) * 0.75. They are
ratings of words, not of images: arousal spreads less than in picture sets ("awe" rates calm). The norms are
distributed for non-commercial research; only these eight pairs are quoted here, with their source.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .emotions import EMOTIONS, NUM_EMOTIONS

# class word: (valence mean, arousal mean) on the norms' 1-9 scale (Warriner, Kuperman & Brysbaert 2013).
WARRINER_2013_RATINGS: dict[str, tuple[float, float]] = {
    "amusement": (7.00, 4.82),
    "anger": (2.50, 5.93),
    "awe": (6.85, 3.83),
    "contentment": (6.62, 4.60),
    "disgust": (3.32, 5.00),
    "excitement": (7.62, 6.21),
    "fear": (2.93, 6.14),
    "sadness": (2.40, 2.81),
}
CITATION = ("Warriner, Kuperman & Brysbaert (2013), Norms of valence, arousal, and dominance for 13,915 English "
            "lemmas, Behavior Research Methods 45:1191-1207 (ratings of the class words, 1-9, mapped to [-3, 3] "
            "by (x - 5) * 0.75)")
VA_RANGE = 3.0  # EmotiCrafter's valence and arousal scale: [-3, 3]


def rating_to_va(rating: float) -> float:
    """A 1-9 rating on EmotiCrafter's [-3, 3] scale: 1 -> -3, 5 -> 0, 9 -> 3."""
    return (rating - 5.0) * 0.75


def _centres(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor([[rating_to_va(v), rating_to_va(a)] for v, a in (WARRINER_2013_RATINGS[name]
                                                                         for name in EMOTIONS)], dtype=dtype)


# (8, 2): valence then arousal of each class, in EMOTIONS (alphabetical) order, on [-3, 3]. A copy for callers; the
# functions below rebuild theirs from the ratings, so changing this tensor in place cannot change them.
EMOTION_VA_CENTRES: torch.Tensor = _centres()


def _number(name: str, value) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=torch.float64)
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name}: {value} is not a finite number")
    return tensor


def va_to_emotions(valence, arousal, sigma: float) -> torch.Tensor:
    """p(c) ∝ exp(-‖(valence, arousal) - μ_c‖² / 2σ²) over the eight classes (EMOTIONS order), float32.

    ``valence`` and ``arousal`` are numbers (-> (8,)) or same-shaped tensors/sequences (-> (..., 8)). Computed in
    float64 relative to the nearest centre, so it never overflows or divides 0 by 0: a tiny σ gives the one-hot of
    the nearest class, and σ = 0 is that limit exactly. Ties (points equally far from several nearest centres, in
    float64) share the mass equally, as the formula does for every σ > 0.
    """
    sigma = float(_number("sigma", sigma))
    if sigma < 0:
        raise ValueError(f"sigma: {sigma} is negative; the kernel width must be 0 (nearest class) or more")
    point = torch.stack(torch.broadcast_tensors(_number("valence", valence), _number("arousal", arousal)), -1)
    squared = ((point.unsqueeze(-2) - _centres()) ** 2).sum(-1)  # (..., 8)
    gap = squared - squared.min(-1, keepdim=True).values  # >= 0, exactly 0 at the nearest centre(s)
    # -gap / 2σ²; for σ² == 0 (or underflowing) that is -inf away from the nearest centre and 0 (not NaN) on it.
    logits = torch.where(gap == 0, torch.zeros_like(gap), -gap / (2.0 * sigma * sigma))
    weights = torch.exp(logits)
    return (weights / weights.sum(-1, keepdim=True)).to(torch.float32)


def check_distribution(name: str, distribution, tolerance: float = 1e-3) -> torch.Tensor:
    """An (..., 8) float32 probability vector (finite, >= 0, summing to 1 within ``tolerance``) or a ValueError
    naming ``name``."""
    dist = torch.as_tensor(distribution)
    dist = dist.to(torch.float32) if not dist.is_floating_point() else dist
    if dist.shape[-1:] != (NUM_EMOTIONS,):
        raise ValueError(f"{name}: expected {NUM_EMOTIONS} class probabilities (shape (8,) or (B, 8)), got shape "
                         f"{tuple(dist.shape)}")
    if not torch.isfinite(dist).all():
        raise ValueError(f"{name}: holds NaN or infinite probabilities")
    sums = dist.double().sum(-1)
    if (dist < 0).any() or ((sums - 1).abs() > tolerance).any():
        raise ValueError(f"{name}: not a probability distribution over the 8 classes (values must be >= 0 and sum "
                         f"to 1; sums {[round(float(s), 4) for s in sums.reshape(-1)[:4]]})")
    return dist


def expected_va(distribution) -> torch.Tensor:
    """Σ p(c) μ_c: the (..., 2) expected (valence, arousal) of an (..., 8) distribution, float64.

    It always lies inside the convex hull of the eight centres, so V-A targets outside that hull cannot be
    reached exactly by any distribution."""
    return check_distribution("distribution", distribution).to(torch.float64) @ _centres()


def va_distance(distribution, valence: float, arousal: float) -> float:
    """Euclidean distance in the V-A plane between the expected V-A of one (8,) distribution and a target."""
    point = expected_va(torch.as_tensor(distribution).reshape(NUM_EMOTIONS))
    return float(torch.hypot(point[0] - float(valence), point[1] - float(arousal)))


def direction_towards(target_distribution, source_distribution) -> torch.Tensor:
    """d = target distribution - source distribution (broadcast over a batch), in the source's floating dtype.

    With a one-hot target this is exactly :func:`~emo_core.emoeditor.emotions.emotion_direction`, bit for bit."""
    target = check_distribution("target distribution", target_distribution)
    source = check_distribution("source distribution", source_distribution)
    if source.dim() not in (1, 2) or target.dim() not in (1, 2):
        raise ValueError(f"distributions must have shape (8,) or (B, 8), got {tuple(target.shape)} and "
                         f"{tuple(source.shape)}")
    return target.to(source.dtype) - source


def nearest_class(valence: float, arousal: float) -> int:
    """Index of the class whose centre is nearest (the lowest index on a tie, as torch.argmax)."""
    return int(torch.argmax(va_to_emotions(valence, arousal, 0.0)))


def centres_table() -> Sequence[tuple[str, float, float]]:
    """(class, valence, arousal) rows on [-3, 3], for docs and pictures."""
    return [(name, *map(float, row)) for name, row in zip(EMOTIONS, _centres(), strict=True)]
