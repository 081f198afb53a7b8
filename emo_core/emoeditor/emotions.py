"""EmoEditor's eight emotion classes and the emotion-direction vector built from them.

The order is ALPHABETICAL, as in [EE test.py] / [EE data.py] / [EE metric_ESMI.py]. It is the index order of one-hot
targets, predictor logits, ``source_softmax`` and the encoder input. (The valence-grouped order used by EmoEdit and
EmoGen is a different thing and wrong here.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

EMOTIONS: tuple[str, ...] = (
    "amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness",
)
NUM_EMOTIONS = len(EMOTIONS)
POSITIVE_EMOTIONS: frozenset[str] = frozenset({"amusement", "awe", "contentment", "excitement"})
NEGATIVE_EMOTIONS: frozenset[str] = frozenset({"anger", "disgust", "fear", "sadness"})


def class_index(emotion: str | int) -> int:
    """Index of an emotion name (case-insensitive, surrounding blanks ignored); an int is range-checked."""
    if isinstance(emotion, bool):  # bool is an int subclass; True/False is never a meant class
        raise ValueError(f"unknown emotion {emotion!r}; valid names: {', '.join(EMOTIONS)}")
    if isinstance(emotion, int):
        if not 0 <= emotion < NUM_EMOTIONS:
            raise ValueError(f"emotion index {emotion} out of range 0..{NUM_EMOTIONS - 1} "
                             f"({', '.join(f'{i}={n}' for i, n in enumerate(EMOTIONS))})")
        return emotion
    key = str(emotion).strip().lower()
    try:
        return EMOTIONS.index(key)
    except ValueError:
        raise ValueError(f"unknown emotion {emotion!r}; valid names: {', '.join(EMOTIONS)}") from None


def class_name(emotion: str | int) -> str:
    return EMOTIONS[class_index(emotion)]


def valence_of(emotion: str | int) -> str:
    """'positive' or 'negative'."""
    return "positive" if class_name(emotion) in POSITIVE_EMOTIONS else "negative"


def same_valence(a: str | int, b: str | int) -> bool:
    return valence_of(a) == valence_of(b)


def one_hot(target: str | int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
            ) -> torch.Tensor:
    """(8,) one-hot vector of the target emotion."""
    vec = torch.zeros(NUM_EMOTIONS, dtype=dtype, device=device)
    vec[class_index(target)] = 1
    return vec


def emotion_direction(target: str | int, source_distribution: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """d = one_hot(target) - p_source, for an (8,) distribution or a (B, 8) batch of them.

    Computed in the distribution's own floating dtype (float32 for a predictor softmax), which reproduces the
    official float32 subtraction bit for bit. Non-float input (lists, ints) is taken as float32.
    """
    dist = torch.as_tensor(source_distribution)
    if not dist.is_floating_point():
        dist = dist.to(torch.float32)
    if dist.shape[-1:] != (NUM_EMOTIONS,) or dist.dim() not in (1, 2):
        raise ValueError(f"source distribution must have shape (8,) or (B, 8), got {tuple(dist.shape)}")
    return one_hot(target, dtype=dist.dtype, device=dist.device) - dist
