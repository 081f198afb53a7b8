"""The closed loop's trace picture, in the plots style (Pillow only): on the left the V-A pad with the target,
every attempt's predicted V-A (and, when steering, the input V-A that produced it), on the right every attempt's
error with the tolerance; the chosen attempt ringed in green. ``draw_pad`` is the V-A pad on its own."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..emoticrafter.va import VA_MAX
from .charts import AXIS, BACKGROUND, BEST, GRID, INK, SERIES, TARGET_MARK

PREDICTION, STEERED_INPUT, UNDER_FLOOR = SERIES[0][2], SERIES[1][2], (170, 170, 170)
PAD_SIZE, CHART_W, MARGIN, TOP = 400, 420, 44, 40

XY = Callable[[float, float], tuple[float, float]]


def draw_pad(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], limit: float,
             font: ImageFont.ImageFont) -> XY:
    """A square V-A pad over [-limit, limit]^2 in ``box`` (left, top, right, bottom): grid every unit, the trained
    square [-3, 3]^2 outlined, the axes through 0, labels. Returns (valence, arousal) -> pixel (x, y)."""
    left, top, right, bottom = box

    def to_xy(v: float, a: float) -> tuple[float, float]:
        v, a = (min(max(float(c), -limit), limit) for c in (v, a))
        return (left + (v + limit) / (2 * limit) * (right - left), bottom - (a + limit) / (2 * limit) * (bottom - top))

    step = 1 if limit <= 5 else 2
    for k in range(-math.floor(limit), math.floor(limit) + 1):
        if k % step:
            continue
        x, _ = to_xy(k, 0)
        _, y = to_xy(0, k)
        draw.line([(x, top), (x, bottom)], fill=GRID)
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((x - 6, bottom + 4), f"{k:+d}" if k else "0", fill=INK, font=font)
        draw.text((left - 24, y - 6), f"{k:+d}" if k else "0", fill=INK, font=font)
    if limit > VA_MAX:
        draw.rectangle([*to_xy(-VA_MAX, VA_MAX), *to_xy(VA_MAX, -VA_MAX)], outline=AXIS)  # the trained range
    x0, y0 = to_xy(0, 0)
    draw.line([(x0, top), (x0, bottom)], fill=AXIS)
    draw.line([(left, y0), (right, y0)], fill=AXIS)
    draw.rectangle([left, top, right, bottom], outline=AXIS)
    draw.text((right - 58, bottom + 18), "valence", fill=INK, font=font)
    draw.text((left + 4, top + 2), "arousal", fill=INK, font=font)
    return to_xy


def _limit(points: list[tuple[float, float]]) -> float:
    largest = max((abs(c) for p in points for c in p), default=0.0)
    return VA_MAX if largest <= VA_MAX else float(math.ceil(largest))


def _ring(draw, x, y, r, colour, width=2):
    draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=width)


def closed_loop_plot_image(log: Mapping) -> np.ndarray:
    """(H, W, 3) uint8 picture of one loop (``LoopResult.log()``)."""
    attempts = list(log["attempts"])
    target = tuple(log["target"])
    steer = log["mode"] == "steer"
    chosen = int(log["chosen"])
    font = ImageFont.load_default(size=12)
    width, height = MARGIN + PAD_SIZE + 24 + CHART_W + 16, TOP + PAD_SIZE + 44
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    what = "round" if steer else "candidate"
    first, best = attempts[0]["error"], attempts[chosen]["error"]
    floor = "" if log.get("floor_met", True) else " (no attempt met the CLIPScore floor)"
    draw.text((MARGIN, 6), f"{log['mode']} towards V {target[0]:+.2f} A {target[1]:+.2f}: {log['status']}, "
                           f"{len(attempts)} {what}(s), chosen {what} {chosen}{floor}", fill=INK, font=font)
    legend = f"error {first:.3f} ({what} 0) -> {best:.3f} (chosen, ringed green); target: purple cross"
    legend += "; dots: predicted, squares: EIT input" if steer else "; dots: predicted"
    if log["settings"].get("clip_floor"):
        legend += f"; grey: CLIPScore under the floor {log['settings']['clip_floor']:g}"
    draw.text((MARGIN, 20), legend, fill=INK, font=font)

    points = [target] + [(a["v_pred"], a["a_pred"]) for a in attempts]
    points += [(a["v_in"], a["a_in"]) for a in attempts] if steer else []
    to_xy = draw_pad(draw, (MARGIN, TOP, MARGIN + PAD_SIZE, TOP + PAD_SIZE), _limit(points), font)
    preds = [to_xy(a["v_pred"], a["a_pred"]) for a in attempts]
    if steer:
        inputs = [to_xy(a["v_in"], a["a_in"]) for a in attempts]
        if len(inputs) > 1:
            draw.line(inputs, fill=STEERED_INPUT, width=1)
        for (xi, yi), (xp, yp) in zip(inputs, preds, strict=True):
            draw.line([(xi, yi), (xp, yp)], fill=GRID, width=1)
            draw.rectangle([xi - 3, yi - 3, xi + 3, yi + 3], outline=STEERED_INPUT, width=2)
        if len(preds) > 1:
            draw.line(preds, fill=PREDICTION, width=2)
    for a, (x, y) in zip(attempts, preds, strict=True):
        colour = PREDICTION if a.get("meets_floor", True) else UNDER_FLOOR
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
        draw.text((x + 6, y - 14), str(a["index"]), fill=INK, font=font)
    x, y = preds[chosen]
    _ring(draw, x, y, 9, BEST)
    tx, ty = to_xy(*target)
    draw.line([(tx - 8, ty), (tx + 8, ty)], fill=TARGET_MARK, width=3)
    draw.line([(tx, ty - 8), (tx, ty + 8)], fill=TARGET_MARK, width=3)
    _ring(draw, tx, ty, 6, TARGET_MARK)

    _error_chart(draw, font, attempts, chosen, log, (MARGIN + PAD_SIZE + 24, TOP, width - 16, TOP + PAD_SIZE), what)
    return np.asarray(image, dtype=np.uint8)


def _error_chart(draw, font, attempts: list, chosen: int, log: Mapping, box, what: str) -> None:
    """Bars of every attempt's error, the tolerance dashed (steer), the chosen bar green, under-floor bars grey."""
    left, top, right, bottom = box
    left += 34
    tolerance = log["settings"]["tolerance"] if log["mode"] == "steer" else None
    y_hi = max([a["error"] for a in attempts] + [tolerance or 0.0, 0.5]) * 1.1
    slot = (right - left) / len(attempts)

    def y_of(value: float) -> float:
        return bottom - value / y_hi * (bottom - top)

    ticks = 5
    for k in range(ticks + 1):
        value = y_hi * k / ticks
        draw.line([(left, y_of(value)), (right, y_of(value))], fill=GRID)
        draw.text((left - 32, y_of(value) - 6), f"{value:.2f}", fill=INK, font=font)
    every = max(1, math.ceil(len(attempts) / 16))
    for i, a in enumerate(attempts):
        x0, x1 = left + i * slot + slot * 0.15, left + (i + 1) * slot - slot * 0.15
        colour = BEST if i == chosen else PREDICTION if a.get("meets_floor", True) else UNDER_FLOOR
        draw.rectangle([x0, y_of(a["error"]), x1, bottom], fill=colour)
        if i % every == 0:
            draw.text(((x0 + x1) / 2 - 3, bottom + 4), str(a["index"]), fill=INK, font=font)
    if tolerance is not None:
        y = y_of(tolerance)
        for x in range(int(left), int(right), 10):
            draw.line([(x, y), (min(x + 5, right), y)], fill=TARGET_MARK, width=1)
        draw.text((right - 110, y - 14), f"tolerance {tolerance:g}", fill=TARGET_MARK, font=font)
    draw.rectangle([left, top, right, bottom], outline=AXIS)
    draw.text((left, bottom + 18), f"{what}: distance of the prediction from the target", fill=INK, font=font)


def closed_loop_plot(log: Mapping) -> torch.Tensor:
    """ComfyUI IMAGE (1, H, W, 3) in [0, 1] of one loop."""
    return torch.from_numpy(closed_loop_plot_image(log).astype(np.float32) / 255.0)[None]
