"""The picture of a V-A point's emotion distribution: the eight class centres on the valence-arousal plane (the
circumplex, EmotiCrafter's [-3, 3] square), the point with its kernel width σ, and the distribution as the bar chart
of emo_core/plots/charts.py, side by side."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..emoeditor.continuous import VA_RANGE, centres_table, expected_va
from ..emoeditor.emotions import EMOTIONS, POSITIVE_EMOTIONS
from .charts import AXIS, BACKGROUND, BAND, BEST, GRID, INK, NEGATIVE, POSITIVE, TARGET_MARK, draw_chart

PLANE = 300  # side of the V-A square in pixels
MARGIN = 28


def to_xy(v: float, a: float) -> tuple[float, float]:
    """Pixel position of a V-A point on the plane."""
    scale = PLANE / (2 * VA_RANGE)
    return MARGIN + (v + VA_RANGE) * scale, MARGIN + (VA_RANGE - a) * scale


def draw_plane(valence: float, arousal: float, sigma: float, distribution: torch.Tensor,
               circle: str = "sigma") -> Image.Image:
    """The V-A square: grid at whole steps, the circumplex circle (radius 3), each class centre as a dot whose area
    follows its probability (ringed, so a zero is still seen), the point as a cross with a circle of radius σ
    (named ``circle`` in the caption), and the distribution's expected V-A as a small diamond."""
    size = PLANE + 2 * MARGIN
    image = Image.new("RGB", (size, size + 32), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    scale = PLANE / (2 * VA_RANGE)
    xy = to_xy

    for step in range(-int(VA_RANGE), int(VA_RANGE) + 1):
        colour = AXIS if step == 0 else GRID
        draw.line([xy(step, -VA_RANGE), xy(step, VA_RANGE)], fill=colour)
        draw.line([xy(-VA_RANGE, step), xy(VA_RANGE, step)], fill=colour)
    draw.ellipse([*xy(-VA_RANGE, VA_RANGE), *xy(VA_RANGE, -VA_RANGE)], outline=GRID)
    draw.rectangle([*xy(-VA_RANGE, VA_RANGE), *xy(VA_RANGE, -VA_RANGE)], outline=AXIS)
    draw.text((MARGIN, size - 14), "valence (-3 to 3) ->", fill=INK, font=font)
    draw.text((4, 4), "arousal ^", fill=INK, font=font)
    if sigma > 0:
        x, y = xy(valence, arousal)
        r = min(sigma, 2 * VA_RANGE) * scale
        draw.ellipse([x - r, y - r, x + r, y + r], fill=BAND, outline=TARGET_MARK)
    probs = [float(p) for p in distribution.reshape(-1)]
    labels: list[tuple[float, float, float, float]] = []
    dots = [(name, *xy(v, a), 3 + 11 * p ** 0.5) for (name, v, a), p in zip(centres_table(), probs, strict=True)]
    for name, x, y, r in dots:
        colour = POSITIVE if name in POSITIVE_EMOTIONS else NEGATIVE
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=INK)
    for name, x, y, r in dots:  # labels on top of every dot
        box = [x + r + 2, y - 6, x + r + 2 + draw.textlength(name, font=font), y + 7]
        while any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in labels):
            box[1] += 13  # move the label down until it overlaps no earlier one
            box[3] += 13
        labels.append(tuple(box))
        draw.text((box[0], box[1]), name, fill=INK, font=font)
    ev, ea = (float(c) for c in expected_va(distribution.reshape(-1)))
    x, y = xy(ev, ea)
    draw.polygon([(x, y - 5), (x + 5, y), (x, y + 5), (x - 5, y)], outline=TARGET_MARK)
    x, y = xy(max(-VA_RANGE, min(VA_RANGE, valence)), max(-VA_RANGE, min(VA_RANGE, arousal)))
    draw.line([(x - 7, y - 7), (x + 7, y + 7)], fill=TARGET_MARK, width=3)
    draw.line([(x - 7, y + 7), (x + 7, y - 7)], fill=TARGET_MARK, width=3)
    draw.text((MARGIN, size), f"x  V {valence:+.2f} A {arousal:+.2f}, circle: {circle} {sigma:g}",
              fill=TARGET_MARK, font=font)
    draw.text((MARGIN, size + 14), f"<> expected V {ev:+.2f} A {ea:+.2f}", fill=TARGET_MARK, font=font)
    return image


def va_emotions_image(valence: float, arousal: float, sigma: float, distribution: torch.Tensor) -> np.ndarray:
    """(H, W, 3) uint8: the V-A plane (left) and the bar chart of ``distribution`` (right)."""
    plane = draw_plane(valence, arousal, sigma, distribution)
    top = int(torch.argmax(distribution.reshape(-1)))
    chart = draw_chart(distribution,
                       title=f"sigma {sigma:g}: {EMOTIONS[top]} {float(distribution.reshape(-1)[top]):.1%}")
    picture = Image.new("RGB", (plane.width + chart.width, max(plane.height, chart.height)), BACKGROUND)
    picture.paste(plane, (0, 0))
    picture.paste(chart, (plane.width, (picture.height - chart.height) // 2))
    return np.asarray(picture, dtype=np.uint8)


def va_emotions_images(valence, arousal, sigma: float, distributions: torch.Tensor) -> torch.Tensor:
    """One picture per point -> ComfyUI IMAGE (B, H, W, 3) in [0, 1]."""
    pictures = [va_emotions_image(v, a, sigma, d).astype(np.float32) / 255.0
                for v, a, d in zip(valence, arousal, distributions.reshape(-1, 8), strict=True)]
    return torch.from_numpy(np.stack(pictures))


def va_trace_image(run: dict, valence: float, arousal: float, tolerance: float, target: torch.Tensor) -> np.ndarray:
    """One IEI run under the V-A rule (``IEIResult.log()``): the target point with its tolerance circle, the
    centres sized by the target distribution, and each attempt's expected V-A, numbered (accepted: filled dot,
    rejected: cross, the chosen one ringed)."""
    plane = draw_plane(valence, arousal, tolerance, target, circle="tolerance")
    draw = ImageDraw.Draw(plane)
    font = ImageFont.load_default(size=11)
    for entry in run.get("trace", []):
        x, y = to_xy(*entry["expected_va"])
        if entry["accepted"]:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=AXIS)
        else:
            draw.line([(x - 3, y - 3), (x + 3, y + 3)], fill=AXIS, width=1)
            draw.line([(x - 3, y + 3), (x + 3, y - 3)], fill=AXIS, width=1)
        draw.text((x + 4, y - 12), str(entry["attempt"]), fill=AXIS, font=font)
        if entry["attempt"] == run.get("chosen_attempt"):
            draw.ellipse([x - 7, y - 7, x + 7, y + 7], outline=BEST, width=2)
    draw.text((MARGIN + 80, 4), f"IEI (V-A rule): {run.get('status', '?')}, chosen: {run.get('chosen_attempt')}",
              fill=INK, font=font)
    return np.asarray(plane, dtype=np.uint8)


def va_trace_plots(runs, valence: float, arousal: float, tolerance: float, target: torch.Tensor) -> torch.Tensor:
    """One V-A trace picture per run -> ComfyUI IMAGE (B, H, W, 3) in [0, 1]."""
    pictures = [va_trace_image(run, valence, arousal, tolerance, target).astype(np.float32) / 255.0 for run in runs]
    return torch.from_numpy(np.stack(pictures))
