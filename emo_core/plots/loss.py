"""The EIT and EmoEditor training loss curve (the pictures' style is emo_core.plots.style; the other charts have
their own modules: sheet, bars, iei, plane, critic, closed_loop)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import marks
from .style import AXIS, BEST, GRID, INK, PRIMARY, SECONDARY, TEXT, canvas, font, to_array

SERIES = (("train_mse", "train MSE", PRIMARY), ("val_loss", "val MSE", SECONDARY))


# --- loss curve: unweighted train and validation MSE per epoch (same scale; the weighted objective is not, with the
# published 1/d² weights it is ~10³× larger) on a log10 axis, the best epoch marked ----------------------------------


def loss_curve_image(history: Sequence[dict], width: int = 640, height: int = 360,
                     title: str = "EIT training", x_label: str = "epoch", x_key: str = "epoch") -> np.ndarray:
    """(height, width, 3) uint8 RGB picture of ``history`` (records with ``x_key``, "train_mse", "val_loss"; the
    ``x_key`` value is the x value, named ``x_label`` on the axis, e.g. "step")."""
    width, height = max(int(width), 200), max(int(height), 120)
    image, draw = canvas(width, height)
    text = font(TEXT)
    left, right, top, bottom = 64, width - 16, 28, height - 36
    draw.text((left, 8), title, fill=INK, font=text)
    points = {key: [(r[x_key], r[key]) for r in history if _positive(r.get(key))] for key, _, _ in SERIES}
    values = [v for series in points.values() for _, v in series]
    if not values:
        draw.text((left, (top + bottom) // 2), "no completed epoch yet", fill=INK, font=text)
        return to_array(image)
    epochs = [r[x_key] for r in history]
    x_lo, x_hi = min(epochs), max(max(epochs), min(epochs) + 1)
    y_lo, y_hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    y_hi = max(y_hi, y_lo + 1)

    def to_xy(epoch: float, value: float) -> tuple[float, float]:
        x = left + (epoch - x_lo) / (x_hi - x_lo) * (right - left)
        y = bottom - (math.log10(value) - y_lo) / (y_hi - y_lo) * (bottom - top)
        return x, y

    for decade in range(y_lo, y_hi + 1):  # horizontal grid and labels at powers of ten
        _, y = to_xy(x_lo, 10.0 ** decade)
        draw.line([(left, y), (right, y)], fill=GRID)
        label = f"1e{decade}"
        draw.text((left - 4 - draw.textlength(label, font=text), y - TEXT / 2), label, fill=INK, font=text)
    draw.rectangle([left, top, right, bottom], outline=AXIS)
    draw.text((left, bottom + 6), f"{x_label} {x_lo}", fill=INK, font=text)
    last = f"{x_label} {x_hi}"
    draw.text((right - draw.textlength(last, font=text), bottom + 6), last, fill=INK, font=text)
    for key, _, colour in SERIES:
        xy = [to_xy(e, v) for e, v in points[key]]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for x, y in xy[-1:] if len(xy) > 1 else xy:
            marks.dot(draw, x, y, 2, colour)
    legend = [(label, colour, "line") for _, label, colour in SERIES]
    marks.legend(draw, right - marks.legend_width(draw, legend), 8, legend)
    if points["val_loss"]:
        best_epoch, best = min(points["val_loss"], key=lambda p: p[1])
        x, y = to_xy(best_epoch, best)
        marks.ring(draw, x, y, 4, BEST)
        draw.text((left + 4, bottom - 4 - TEXT), f"best val {best:.4g} @ {x_label} {best_epoch}", fill=BEST,
                  font=text)
    return to_array(image)


def _positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0
