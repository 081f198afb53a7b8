"""The picture of a V-A point's emotion distribution: the eight class centres on the V-A pad (the circumplex,
EmotiCrafter's [-3, 3] square), the point with its kernel width σ, and the distribution as the bar chart of
emo_core/plots/bars.py, side by side; and IEI's trace under the V-A rule on the same pad."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..emoeditor.continuous import VA_RANGE, expected_va
from ..emoeditor.emotions import EMOTIONS
from . import marks
from .bars import draw_chart
from .pad import Pad, draw_centres, draw_pad
from .style import AXIS, BAND, BEST, INK, LINE, SMALL, TARGET_MARK, TEXT, as_batch, canvas, font, to_array

PLANE = 300  # side of the V-A square in pixels
MARGIN = 28
PLANE_PAD = Pad(MARGIN, MARGIN, PLANE, VA_RANGE)


def to_xy(v: float, a: float) -> tuple[float, float]:
    """Pixel position of a V-A point on the plane."""
    return PLANE_PAD.xy(v, a)


def draw_plane(valence: float, arousal: float, sigma: float, distribution: torch.Tensor,
               circle: str = "sigma") -> Image.Image:
    """The V-A pad with the circumplex circle (radius 3), each class centre as a dot whose area follows its
    probability, the point as the target mark with a circle of radius σ (named ``circle`` in the caption), and the
    distribution's expected V-A as a small diamond."""
    size = PLANE + 2 * MARGIN
    image, draw = canvas(size, size + 2 * LINE)
    text = font(TEXT)
    draw_pad(draw, PLANE_PAD, circumplex=True)
    x, y = to_xy(valence, arousal)
    if sigma > 0:
        r = min(sigma, 2 * VA_RANGE) * PLANE_PAD.scale
        draw.ellipse([x - r, y - r, x + r, y + r], fill=BAND, outline=TARGET_MARK)
    draw_centres(draw, PLANE_PAD, [float(p) for p in distribution.reshape(-1)], room=size - 2)
    ev, ea = (float(c) for c in expected_va(distribution.reshape(-1)))
    marks.diamond(draw, *to_xy(ev, ea), 5, TARGET_MARK)
    marks.target(draw, x, y)
    draw.text((MARGIN, size), f"(+) V {valence:+.2f} A {arousal:+.2f}, circle: {circle} {sigma:g}",
              fill=TARGET_MARK, font=text)
    draw.text((MARGIN, size + LINE), f"<> expected V {ev:+.2f} A {ea:+.2f}", fill=TARGET_MARK, font=text)
    return image


def va_emotions_image(valence: float, arousal: float, sigma: float, distribution: torch.Tensor) -> np.ndarray:
    """(H, W, 3) uint8: the V-A plane (left) and the bar chart of ``distribution`` (right)."""
    plane = draw_plane(valence, arousal, sigma, distribution)
    top = int(torch.argmax(distribution.reshape(-1)))
    chart = draw_chart(distribution,
                       title=f"sigma {sigma:g}: {EMOTIONS[top]} {float(distribution.reshape(-1)[top]):.1%}")
    picture, _ = canvas(plane.width + chart.width, max(plane.height, chart.height))
    picture.paste(plane, (0, 0))
    picture.paste(chart, (plane.width, (picture.height - chart.height) // 2))
    return to_array(picture)


def va_emotions_images(valence, arousal, sigma: float, distributions: torch.Tensor) -> torch.Tensor:
    """One picture per point -> ComfyUI IMAGE (B, H, W, 3) in [0, 1]."""
    return as_batch(va_emotions_image(v, a, sigma, d)
                    for v, a, d in zip(valence, arousal, distributions.reshape(-1, 8), strict=True))


def va_trace_image(run: dict, valence: float, arousal: float, tolerance: float, target: torch.Tensor) -> np.ndarray:
    """One IEI run under the V-A rule (``IEIResult.log()``): the target point with its tolerance circle, the
    centres sized by the target distribution, and each attempt's expected V-A, numbered (accepted: filled dot,
    rejected: cross, the chosen one ringed)."""
    plane = draw_plane(valence, arousal, tolerance, target, circle="tolerance")
    draw = ImageDraw.Draw(plane)
    for entry in run.get("trace", []):
        x, y = to_xy(*entry["expected_va"])
        if entry["accepted"]:
            marks.dot(draw, x, y, 3, AXIS)
        else:
            marks.cross(draw, x, y, 3, AXIS, width=1)
        draw.text((x + 4, y - 4 - SMALL), str(entry["attempt"]), fill=AXIS, font=font(SMALL))
        if entry["attempt"] == run.get("chosen_attempt"):
            marks.ring(draw, x, y, 7, BEST)
    draw.text((MARGIN, 8), f"IEI (V-A rule): {run.get('status', '?')}, chosen: {run.get('chosen_attempt')}",
              fill=INK, font=font(TEXT))
    return to_array(plane)


def va_trace_plots(runs, valence: float, arousal: float, tolerance: float, target: torch.Tensor) -> torch.Tensor:
    """One V-A trace picture per run -> ComfyUI IMAGE (B, H, W, 3) in [0, 1]."""
    return as_batch(va_trace_image(run, valence, arousal, tolerance, target) for run in runs)
