"""EmotiCrafter's evaluation: the valence-arousal critic (CLIP ViT-B/32 + the released linear heads), the paper's
metrics (V-Error, A-Error, CLIPScore) and its 5x5 protocol, the pictures of both, and the folder evaluation behind
``python -m emo_core.evaluate``."""

from .critic import VACritic, load_va_critic  # noqa: F401
from .metrics import (  # noqa: F401
    PROTOCOL_VALUES,
    cell_errors,
    clip_score_stats,
    clip_scores,
    protocol_points,
    va_errors,
)
