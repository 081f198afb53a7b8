"""The critic's pictures: predictions on the V-A pad (with an arrow from each target to where its image landed) and
a heat map of the error per V-A cell."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from . import marks
from .pad import VALENCE_NAME, Pad, draw_pad
from .style import AXIS, BACKGROUND, BEST, GRID, INK, PRIMARY, SMALL, TARGET_MARK, TEXT, canvas, font, to_array

PREDICTION = PRIMARY
NUMBERED = 30  # label points with their image number up to this many images
HEADER = 18  # pixels per line of ``lines`` above a picture


def va_pad_image(pred: torch.Tensor, target: torch.Tensor | None = None, lines: Sequence[str] = (),
                 size: int = 480) -> np.ndarray:
    """(H, W, 3) uint8: every prediction (v̂, â) as a dot on the [-3, 3]² pad; with targets, each target marked and
    an arrow from the target to its prediction. ``lines``: text above the pad (e.g. the metrics)."""
    pred = pred.detach().double().reshape(-1, 2).cpu()
    target = None if target is None else torch.as_tensor(target).double().reshape(-1, 2).cpu().expand_as(pred)
    text = font(TEXT)
    head = 10 + HEADER * len(lines)
    pad = Pad(48, head + 10, size)
    image, draw = canvas(pad.right + 20, pad.bottom + 44)
    for i, line in enumerate(lines):
        draw.text((pad.left, 8 + HEADER * i), line, fill=INK, font=text)
    draw_pad(draw, pad)
    for i, (v, a) in enumerate(pred.tolist()):
        x, y = pad.xy(v, a)
        if target is not None:
            tx, ty = pad.xy(*target[i].tolist())
            marks.target(draw, tx, ty, 5)
            marks.arrow(draw, (tx, ty), (x, y), TARGET_MARK)
        marks.dot(draw, x, y, 4, PREDICTION)
        if 1 < len(pred) <= NUMBERED:
            draw.text((x + 5, y - 4 - TEXT), str(i + 1), fill=INK, font=text)
    legend = [("predicted", PREDICTION, "dot")]
    legend += [("target -> predicted", TARGET_MARK, "target")] if target is not None else []
    marks.legend(draw, pad.right - 8 - marks.legend_width(draw, legend), pad.top + 4, legend)
    return to_array(image)


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
    text, small = font(TEXT), font(SMALL)
    head = 10 + HEADER * len(lines)
    left, top, gap = 56, head + 24, 40
    panel_w, panel_h = cell * len(valences), cell * len(arousals)
    width = left + 2 * panel_w + gap + 16
    image, draw = canvas(max(width, 360), top + panel_h + 52)
    for i, line in enumerate(lines):
        draw.text((8, 8 + HEADER * i), line, fill=INK, font=text)
    if not cells:
        draw.text((left, top + 8), "no targets: nothing to compare", fill=BEST, font=text)
        return to_array(image)
    for p, (key, title) in enumerate((("v_error", "V-Error"), ("a_error", "A-Error"))):
        x0 = left + p * (panel_w + gap)
        draw.text((x0, top - 18), f"{title} per cell (0 white, {scale:g}+ red)", fill=INK, font=text)
        for r, a in enumerate(arousals):
            for c, v in enumerate(valences):
                box = [x0 + c * cell, top + r * cell, x0 + (c + 1) * cell - 1, top + (r + 1) * cell - 1]
                entry = found.get((v, a))
                if entry is None:
                    draw.rectangle(box, fill=GRID)
                    continue
                draw.rectangle(box, fill=_heat(entry[key], scale), outline=BACKGROUND)
                value = f"{entry[key]:.2f}"
                draw.text(((box[0] + box[2]) / 2 - draw.textlength(value, font=text) / 2,
                           (box[1] + box[3]) / 2 - TEXT / 2), value, fill=INK, font=text)
        for c, v in enumerate(valences):
            label = f"{v:+g}" if v else "0"
            draw.text((x0 + (c + 0.5) * cell - draw.textlength(label, font=small) / 2, top + panel_h + 4), label,
                      fill=INK, font=small)
        draw.text((x0, top + panel_h + 22), VALENCE_NAME, fill=INK, font=small)
        for r, a in enumerate(arousals):
            if p == 0:
                label = f"A {a:+g}" if a else "A 0"
                draw.text((left - 6 - draw.textlength(label, font=small), top + (r + 0.5) * cell - SMALL / 2),
                          label, fill=INK, font=small)
        draw.rectangle([x0 - 1, top - 1, x0 + panel_w, top + panel_h], outline=AXIS)
    return to_array(image)
