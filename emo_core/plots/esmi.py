"""The ESMI picture of one pair: source and edit at the metric's 224 px with the source's emotion region (the
Grad-CAM mask S_str measures) outlined over both, the scores, and the predictor's distributions of source and edit
with the target marked."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..emoeditor.emotions import EMOTIONS
from .bars import draw_chart
from .style import INK, LINE, MARGIN, TARGET_MARK, TEXT, as_batch, canvas, font

GAP = 8


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a boolean mask (inside pixels with a 4-neighbour outside, image edges included)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def with_outline(picture: np.ndarray, mask: np.ndarray) -> Image.Image:
    """(H, W, 3) uint8 with the mask's outline drawn in the target colour, two pixels wide."""
    edge = outline(mask)
    edge = edge | outline(mask & ~edge)
    out = picture.copy()
    out[edge] = TARGET_MARK
    return Image.fromarray(out)


def esmi_picture(source: np.ndarray, edit: np.ndarray, mask: np.ndarray, p_source: torch.Tensor,
                 p_edit: torch.Tensor, target: str, scores, note: str = "") -> Image.Image:
    """One pair: ``source``/``edit`` (224, 224, 3) uint8, ``mask`` (224, 224) bool, the two (8,) distributions,
    ``scores`` = (ESMI, S_str, S_emo) on [0, 1]."""
    esmi, structure, emotion = (float(v) for v in scores)
    t = EMOTIONS.index(target)
    chart_src = draw_chart(p_source, f"source: p({target}) {float(p_source.reshape(-1)[t]):.1%}", target)
    chart_edit = draw_chart(p_edit, f"edit: p({target}) {float(p_edit.reshape(-1)[t]):.1%}", target)
    width = max(2 * chart_src.width + GAP, 2 * source.shape[1] + GAP) + 2 * MARGIN
    top = MARGIN + 2 * LINE
    height = top + LINE + source.shape[0] + GAP + chart_src.height + MARGIN
    picture, draw = canvas(width, height)
    text = font(TEXT)
    draw.text((MARGIN, MARGIN), f"ESMI {100 * esmi:.2f} = 0.5 S_str {100 * structure:.2f} + 0.5 S_emo "
                                f"{100 * emotion:.2f} (x100), target {target}", fill=INK, font=text)
    draw.text((MARGIN, MARGIN + LINE), note or f"outlined: the source's emotion region (Grad-CAM > 0.5), "
                                              f"{mask.mean():.0%} of the picture", fill=INK, font=text)
    x = (width - 2 * source.shape[1] - GAP) // 2
    for label, image in (("source", source), ("edit", edit)):
        draw.text((x, top), label, fill=INK, font=text)
        picture.paste(with_outline(image, mask), (x, top + LINE))
        x += image.shape[1] + GAP
    y = top + LINE + source.shape[0] + GAP
    picture.paste(chart_src, (MARGIN, y))
    picture.paste(chart_edit, (MARGIN + chart_src.width + GAP, y))
    return picture


def esmi_pictures(details) -> torch.Tensor:
    """Every pair of an ``emoeditor.esmi.ESMIScores`` -> ComfyUI IMAGE (B, H, W, 3)."""
    return as_batch(esmi_picture(details.sources_224[s], details.edits_224[k], details.masks[k].numpy(),
                                 details.source_distribution[k], details.edit_distribution[k], details.targets[k],
                                 details.scores[k].tolist(), "; ".join(details.notes[k]) if details.notes else "")
                    for k, s in enumerate(details.source_index))
