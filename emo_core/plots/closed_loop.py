"""The closed loop's trace picture: on the left the V-A pad with the target, every attempt's predicted V-A (and, when
steering, the input V-A that produced it), on the right every attempt's error with the tolerance; the chosen
attempt ringed in green."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from . import marks
from .pad import Pad, draw_pad, limit_for
from .style import (
    AXIS,
    BEST,
    GRID,
    INK,
    LINE,
    MUTED,
    PRIMARY,
    SECONDARY,
    TARGET_MARK,
    TEXT,
    as_image,
    canvas,
    font,
    to_array,
)

PREDICTION, STEERED_INPUT, UNDER_FLOOR = PRIMARY, SECONDARY, MUTED
PAD_SIZE, CHART_W, MARGIN, TOP = 400, 420, 44, 40


def closed_loop_plot_image(log: Mapping) -> np.ndarray:
    """(H, W, 3) uint8 picture of one loop (``LoopResult.log()``)."""
    attempts = list(log["attempts"])
    target = tuple(log["target"])
    steer = log["mode"] == "steer"
    chosen = int(log["chosen"])
    text = font(TEXT)
    width, height = MARGIN + PAD_SIZE + 24 + CHART_W + 16, TOP + PAD_SIZE + 44
    image, draw = canvas(width, height)
    what = "round" if steer else "candidate"
    first, best = attempts[0]["error"], attempts[chosen]["error"]
    floor = "" if log.get("floor_met", True) else " (no attempt met the CLIPScore floor)"
    draw.text((MARGIN, 6), f"{log['mode']} towards V {target[0]:+.2f} A {target[1]:+.2f}: {log['status']}, "
                           f"{len(attempts)} {what}(s), chosen {what} {chosen}, error {first:.3f} ({what} 0) -> "
                           f"{best:.3f}{floor}", fill=INK, font=text)
    legend = [("predicted", PREDICTION, "dot")] + ([("EIT input", STEERED_INPUT, "square")] if steer else [])
    legend += [("target", TARGET_MARK, "target"), ("chosen", BEST, "ring")]
    if log["settings"].get("clip_floor"):
        legend += [(f"CLIPScore under the floor {log['settings']['clip_floor']:g}", UNDER_FLOOR, "dot")]
    marks.legend(draw, MARGIN, 6 + LINE, legend)

    points = [target] + [(a["v_pred"], a["a_pred"]) for a in attempts]
    points += [(a["v_in"], a["a_in"]) for a in attempts] if steer else []
    pad = draw_pad(draw, Pad(MARGIN, TOP, PAD_SIZE, limit_for(points)))
    preds = [pad.xy(a["v_pred"], a["a_pred"]) for a in attempts]
    if steer:
        inputs = [pad.xy(a["v_in"], a["a_in"]) for a in attempts]
        if len(inputs) > 1:
            draw.line(inputs, fill=STEERED_INPUT, width=1)
        for (xi, yi), (xp, yp) in zip(inputs, preds, strict=True):
            draw.line([(xi, yi), (xp, yp)], fill=GRID, width=1)
            draw.rectangle([xi - 3, yi - 3, xi + 3, yi + 3], outline=STEERED_INPUT, width=2)
        if len(preds) > 1:
            draw.line(preds, fill=PREDICTION, width=2)
    for a, (x, y) in zip(attempts, preds, strict=True):
        marks.dot(draw, x, y, 4, PREDICTION if a.get("meets_floor", True) else UNDER_FLOOR)
        draw.text((x + 6, y - 4 - TEXT), str(a["index"]), fill=INK, font=text)
    marks.ring(draw, *preds[chosen], 9, BEST)
    marks.target(draw, *pad.xy(*target), 6)

    _error_chart(draw, attempts, chosen, log, (MARGIN + PAD_SIZE + 24, TOP, width - 16, TOP + PAD_SIZE), what)
    return to_array(image)


def _error_chart(draw, attempts: list, chosen: int, log: Mapping, box, what: str) -> None:
    """Bars of every attempt's error, the tolerance dashed (steer), the chosen bar green, under-floor bars grey."""
    text = font(TEXT)
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
        label = f"{value:.2f}"
        draw.line([(left, y_of(value)), (right, y_of(value))], fill=GRID)
        draw.text((left - 4 - draw.textlength(label, font=text), y_of(value) - TEXT / 2), label, fill=INK, font=text)
    every = max(1, math.ceil(len(attempts) / 16))
    for i, a in enumerate(attempts):
        x0, x1 = left + i * slot + slot * 0.15, left + (i + 1) * slot - slot * 0.15
        colour = BEST if i == chosen else PREDICTION if a.get("meets_floor", True) else UNDER_FLOOR
        draw.rectangle([x0, y_of(a["error"]), x1, bottom], fill=colour)
        if i % every == 0:
            label = str(a["index"])
            draw.text(((x0 + x1) / 2 - draw.textlength(label, font=text) / 2, bottom + 4), label, fill=INK, font=text)
    if tolerance is not None:
        y = y_of(tolerance)
        marks.dashed_hline(draw, y, left, right, TARGET_MARK)
        label = f"tolerance {tolerance:g}"
        draw.text((right - 4 - draw.textlength(label, font=text), y - 4 - TEXT), label, fill=TARGET_MARK, font=text)
    draw.rectangle([left, top, right, bottom], outline=AXIS)
    draw.text((left, bottom + 4 + LINE), f"{what}: distance of the prediction from the target", fill=INK, font=text)


def closed_loop_plot(log: Mapping) -> torch.Tensor:
    """ComfyUI IMAGE (1, H, W, 3) in [0, 1] of one loop."""
    return as_image(closed_loop_plot_image(log))
