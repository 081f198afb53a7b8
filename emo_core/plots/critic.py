"""The critic's pictures, in the style of emo_core.plots.charts: predictions on the V-A pad (with an arrow from each
target to where its image landed) and a heat map of the error per V-A cell."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .charts import AXIS, BACKGROUND, BEST, GRID, INK, SERIES, TARGET_MARK

LIMIT = 3.0  # the pad spans [-3, 3] on both axes
PREDICTION = SERIES[0][2]
NUMBERED = 30  # label points with their image number up to this many images


def as_image(picture: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> ComfyUI IMAGE (1, H, W, 3) in [0, 1]."""
    return torch.from_numpy(picture.astype(np.float32) / 255.0)[None]


def _arrow(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], colour) -> None:
    draw.line([start, end], fill=colour, width=2)
    vector = np.subtract(end, start)
    length = float(np.hypot(*vector))
    if length < 6:
        return
    unit, normal = vector / length, np.array([-vector[1], vector[0]]) / length
    base = np.asarray(end) - 9 * unit
    draw.polygon([tuple(end), tuple(base + 4 * normal), tuple(base - 4 * normal)], fill=colour)


def va_pad_image(pred: torch.Tensor, target: torch.Tensor | None = None, lines: Sequence[str] = (),
                 size: int = 480) -> np.ndarray:
    """(H, W, 3) uint8: every prediction (v̂, â) as a dot on the [-3, 3]² pad; with targets, each target ringed and
    an arrow from the target to its prediction. ``lines``: text above the pad (e.g. the metrics)."""
    pred = pred.detach().double().reshape(-1, 2).cpu()
    target = None if target is None else torch.as_tensor(target).double().reshape(-1, 2).cpu().expand_as(pred)
    font = ImageFont.load_default(size=13)
    head = 10 + 18 * len(lines)
    left, top, side = 48, head + 10, size
    image = Image.new("RGB", (left + side + 20, top + side + 44), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(lines):
        draw.text((left, 8 + 18 * i), text, fill=INK, font=font)

    def xy(v: float, a: float) -> tuple[float, float]:
        clip = lambda t: min(max(t, -LIMIT), LIMIT)  # noqa: E731
        return (left + (clip(v) + LIMIT) / (2 * LIMIT) * side, top + (LIMIT - clip(a)) / (2 * LIMIT) * side)

    for k in range(-3, 4):
        x, y = xy(k, k)
        colour = AXIS if k == 0 else GRID
        draw.line([(x, top), (x, top + side)], fill=colour)
        draw.line([(left, y), (left + side, y)], fill=colour)
        draw.text((x - 4, top + side + 4), f"{k}", fill=INK, font=font)
        draw.text((left - 18, y - 7), f"{k}", fill=INK, font=font)
    draw.rectangle([left, top, left + side, top + side], outline=AXIS)
    draw.text((left + side // 2 - 60, top + side + 22), "valence: unpleasant -> pleasant", fill=INK, font=font)
    draw.text((left + 4, top + 4), "arousal: up = excited", fill=INK, font=font)
    for i, (v, a) in enumerate(pred.tolist()):
        x, y = xy(v, a)
        if target is not None:
            tx, ty = xy(*target[i].tolist())
            draw.ellipse([tx - 6, ty - 6, tx + 6, ty + 6], outline=TARGET_MARK, width=2)
            _arrow(draw, (tx, ty), (x, y), TARGET_MARK)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=PREDICTION)
        if len(pred) <= NUMBERED and len(pred) > 1:
            draw.text((x + 5, y - 14), str(i + 1), fill=INK, font=font)
    legend_x = left + side - 210
    draw.ellipse([legend_x, top + 8, legend_x + 8, top + 16], fill=PREDICTION)
    draw.text((legend_x + 12, top + 5), "predicted", fill=INK, font=font)
    if target is not None:
        draw.ellipse([legend_x + 80, top + 6, legend_x + 92, top + 18], outline=TARGET_MARK, width=2)
        draw.text((legend_x + 96, top + 5), "target -> predicted", fill=INK, font=font)
    return np.asarray(image, dtype=np.uint8)


def _heat(value: float, scale: float) -> tuple[int, int, int]:
    """White (0) to a deep red (``scale`` and above)."""
    t = min(max(value / scale, 0.0), 1.0)
    return (int(255 - 75 * t), int(255 - 225 * t), int(255 - 215 * t))


def error_heatmap_image(cells: Sequence[dict], lines: Sequence[str] = (), cell: int = 64,
                        scale: float = 3.0) -> np.ndarray:
    """(H, W, 3) uint8: two heat maps side by side, V-Error and A-Error per target cell (``metrics.cell_errors``
    rows), columns = valence, rows = arousal (top = highest), each cell's mean error written in it. The colour
    scale runs from 0 (white) to ``scale`` (red) on the [0, 6] error range."""
    valences = sorted({c["valence"] for c in cells})
    arousals = sorted({c["arousal"] for c in cells}, reverse=True)
    found = {(c["valence"], c["arousal"]): c for c in cells}
    font, small = ImageFont.load_default(size=13), ImageFont.load_default(size=11)
    head = 10 + 18 * len(lines)
    left, top, gap = 56, head + 24, 40
    panel_w, panel_h = cell * len(valences), cell * len(arousals)
    width = left + 2 * panel_w + gap + 16
    image = Image.new("RGB", (max(width, 360), top + panel_h + 52), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(lines):
        draw.text((8, 8 + 18 * i), text, fill=INK, font=font)
    for p, (key, title) in enumerate((("v_error", "V-Error"), ("a_error", "A-Error"))):
        x0 = left + p * (panel_w + gap)
        draw.text((x0, top - 18), f"{title} per cell (0 white, {scale:g}+ red)", fill=INK, font=font)
        for r, a in enumerate(arousals):
            for c, v in enumerate(valences):
                box = [x0 + c * cell, top + r * cell, x0 + (c + 1) * cell - 1, top + (r + 1) * cell - 1]
                entry = found.get((v, a))
                if entry is None:
                    draw.rectangle(box, fill=GRID)
                    continue
                draw.rectangle(box, fill=_heat(entry[key], scale), outline=BACKGROUND)
                draw.text((box[0] + 6, box[1] + cell // 2 - 8), f"{entry[key]:.2f}", fill=INK, font=font)
        for c, v in enumerate(valences):
            draw.text((x0 + c * cell + 4, top + panel_h + 4), f"{v:g}", fill=INK, font=small)
        draw.text((x0, top + panel_h + 22), "valence ->", fill=INK, font=small)
        for r, a in enumerate(arousals):
            if p == 0:
                draw.text((8, top + r * cell + cell // 2 - 6), f"A {a:g}", fill=INK, font=small)
        draw.rectangle([x0 - 1, top - 1, x0 + panel_w, top + panel_h], outline=AXIS)
    if not cells:
        draw.text((left, top + 8), "no targets: nothing to compare", fill=BEST, font=font)
    return np.asarray(image, dtype=np.uint8)
