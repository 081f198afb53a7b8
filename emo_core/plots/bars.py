"""The emotion-distribution bar chart: one row per class, bars coloured by valence group, the most likely class
marked, and optionally the target class outlined."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..emoeditor.emotions import EMOTIONS, POSITIVE_EMOTIONS
from .style import GRID, INK, LARGE, MARGIN, NEGATIVE, POSITIVE, TARGET_MARK, as_batch, canvas, font

CHART_WIDTH, ROW, PAD = 384, 26, MARGIN


def draw_chart(distribution: torch.Tensor, title: str = "", target: str | None = None) -> Image.Image:
    """(8,) probabilities in EMOTIONS order -> an RGB chart; the most likely class is marked ("> "), and the
    ``target`` class, when given, is outlined with an arrow and named in the title."""
    probs = [float(p) for p in distribution.reshape(-1)]
    top = int(np.argmax(probs))
    goal = EMOTIONS.index(target) if target in EMOTIONS else None
    text = font(LARGE)
    chart, draw = canvas(CHART_WIDTH, PAD * 2 + ROW * (len(EMOTIONS) + 1))
    if not title:
        title = f"{EMOTIONS[top]} {probs[top]:.1%}"
        if goal is not None:
            title = f"target {EMOTIONS[goal]} {probs[goal]:.1%} (top: {title})"
    draw.text((PAD, PAD), title, fill=INK, font=text)
    label_w, value_w = 104, 56
    bar_x, bar_w = PAD + label_w, CHART_WIDTH - 2 * PAD - label_w - value_w
    for i, (name, p) in enumerate(zip(EMOTIONS, probs, strict=True)):
        y = PAD + ROW * (i + 1)
        marker = "> " if i == top else "  "
        draw.text((PAD, y + 4), marker + name, fill=INK, font=text)
        draw.rectangle((bar_x, y + 3, bar_x + bar_w, y + ROW - 3), outline=GRID)
        colour = POSITIVE if name in POSITIVE_EMOTIONS else NEGATIVE
        if p > 0:
            draw.rectangle((bar_x, y + 3, bar_x + max(1, round(bar_w * min(p, 1.0))), y + ROW - 3), fill=colour)
        draw.text((bar_x + bar_w + 6, y + 4), f"{p:.1%}", fill=INK, font=text)
        if i == goal:
            draw.rectangle((PAD - 2, y, CHART_WIDTH - 3, y + ROW), outline=TARGET_MARK, width=2)
            middle = y + ROW // 2
            draw.polygon([(0, middle - 5), (PAD - 3, middle), (0, middle + 5)], fill=TARGET_MARK)
    return chart


def chart_batch(distributions: torch.Tensor, target: str | None = None) -> torch.Tensor:
    """(B, 8) -> ComfyUI IMAGE (B, H, W, 3) in [0, 1]; ``target`` as for draw_chart."""
    return as_batch(draw_chart(row, target=target) for row in distributions.reshape(-1, 8))
