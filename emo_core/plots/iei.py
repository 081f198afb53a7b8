"""The IEI trace plot: per attempt the target-class confidence and the SSIM to the source, on one 0-1 axis (extended
below 0 when an SSIM is negative), the acceptance band and the confidence threshold, the chosen attempt."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from . import marks
from .style import AXIS, BAND, BEST, GRID, INK, LINE, PRIMARY, TARGET_MARK, TEXT, as_batch, canvas, font, to_array
from .style import SECONDARY as ESMI_COLOUR  # each attempt's ESMI against the source, when scored

SSIM_COLOUR = PRIMARY


def iei_plot_image(run: Mapping, ssim_band: tuple[float, float], confidence: float, target: str,
                   width: int = 720, height: int = 360) -> np.ndarray:
    """(height, width, 3) uint8 picture of one IEI run (``IEIResult.log()``: "trace" entries with "attempt", "ssim",
    "p_target", "accepted", optionally "esmi"; "status", "chosen_attempt"). Accepted attempts are filled dots,
    rejected ones crosses; the chosen attempt is ringed on a vertical line; the SSIM band is shaded, the confidence
    threshold dashed."""
    width, height = max(int(width), 360), max(int(height), 220)
    image, draw = canvas(width, height)
    text = font(TEXT)
    left, right, top, bottom = 56, width - 16, 48, height - 40
    trace = list(run.get("trace", []))
    chosen = run.get("chosen_attempt")
    chosen_text = "the source (no edit)" if chosen in (None, "source") else f"attempt {chosen}"
    draw.text((left, 6), f"IEI towards {target}: {run.get('status', '?')}, {len(trace)} attempt(s), "
                         f"chosen: {chosen_text}", fill=INK, font=text)
    low, high = (float(v) for v in ssim_band)
    values = [float(e["ssim"]) for e in trace] + [float(e["p_target"]) for e in trace] + [low, 0.0]
    y_lo, y_hi = math.floor(min(values) * 5) / 5, 1.0
    slots = max(len(trace), 1)

    def x_of(attempt: float) -> float:
        return left + (attempt + 0.5) / slots * (right - left)

    def y_of(value: float) -> float:
        return bottom - (min(max(value, y_lo), y_hi) - y_lo) / (y_hi - y_lo) * (bottom - top)

    draw.rectangle([left, y_of(high), right, y_of(low)], fill=BAND)
    for k in range(round(y_lo * 5), 6):  # grid and labels every 0.2
        y = y_of(k / 5)
        draw.line([(left, y), (right, y)], fill=GRID)
        label = f"{k / 5:.1f}"
        draw.text((left - 4 - draw.textlength(label, font=text), y - TEXT / 2), label, fill=INK, font=text)
    marks.dashed_hline(draw, y_of(confidence), left, right, TARGET_MARK)
    draw.rectangle([left, top, right, bottom], outline=AXIS)
    every = max(1, math.ceil(len(trace) / 12))
    for entry in trace[::every]:
        x = x_of(entry["attempt"])
        draw.line([(x, bottom), (x, bottom + 3)], fill=AXIS)
        label = str(entry["attempt"])
        draw.text((x - draw.textlength(label, font=text) / 2, bottom + 5), label, fill=INK, font=text)
    draw.text(((left + right) / 2 - draw.textlength("attempt", font=text) / 2, bottom + 5 + LINE), "attempt",
              fill=INK, font=text)
    marks.vertical_text(image, "p(target), SSIM", 2, (top + bottom) / 2, TEXT)
    if chosen not in (None, "source") and 0 <= int(chosen) < slots:
        draw.line([(x_of(chosen), top), (x_of(chosen), bottom)], fill=BEST, width=2)
    scored = bool(trace) and all("esmi" in e for e in trace)  # the IEI node's score_esmi option
    for key, colour in (("p_target", TARGET_MARK), ("ssim", SSIM_COLOUR)) + ((("esmi", ESMI_COLOUR),) if scored
                                                                            else ()):
        xy = [(x_of(e["attempt"]), y_of(float(e[key]))) for e in trace]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for (x, y), entry in zip(xy, trace, strict=True):
            if entry["accepted"]:
                marks.dot(draw, x, y, 4, colour)
            else:
                marks.cross(draw, x, y, 4, colour)
            if entry["attempt"] == chosen:
                marks.ring(draw, x, y, 8, BEST)
    if not trace:
        draw.text((left + 8, (top + bottom) // 2), "no attempt was made", fill=INK, font=text)
    marks.legend(draw, left, 26, [
        (f"p({target})", TARGET_MARK, "line"), ("SSIM", SSIM_COLOUR, "line"),
        (f"SSIM band {low:g}-{high:g}", BAND, "box"), (f"confidence {confidence:g}", TARGET_MARK, "dash"),
        ("accepted", AXIS, "dot"), ("rejected", AXIS, "cross"), ("chosen", BEST, "ring")]
        + ([("ESMI", ESMI_COLOUR, "line")] if scored else []))
    return to_array(image)


def iei_plots(runs: Sequence[Mapping], ssim_band: tuple[float, float], confidence: float, target: str
              ) -> torch.Tensor:
    """One plot per run (per source image) -> ComfyUI IMAGE (B, H, W, 3) in [0, 1]."""
    return as_batch(iei_plot_image(run, ssim_band, confidence, target) for run in runs)
