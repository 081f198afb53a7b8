"""The one valence-arousal pad every V-A picture is drawn on (the V-A to emotion picture, IEI's V-A trace, the
critic's predictions, the closed loop's trace): the [-limit, limit] square with a grid every unit, the axes through
0, the trained square [-3, 3] when the pad is wider, tick labels, the axis names, and optionally the circumplex
(the circle of radius 3) and the eight class centres. ``Pad.xy`` maps (valence, arousal) to a pixel."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PIL import ImageDraw

from ..emoeditor.continuous import centres_table
from ..emoeditor.emotions import POSITIVE_EMOTIONS
from ..emoticrafter.va import VA_MAX
from . import marks
from .style import AXIS, GRID, INK, NEGATIVE, POSITIVE, TEXT, TICK, font

VALENCE_NAME, AROUSAL_NAME = "valence: pleasant ->", "arousal: excited ^"


@dataclass(frozen=True)
class Pad:
    """A square pad: its top-left pixel, its side in pixels, and the range [-limit, limit] on both axes."""

    left: float
    top: float
    side: float
    limit: float = VA_MAX

    @property
    def right(self) -> float:
        return self.left + self.side

    @property
    def bottom(self) -> float:
        return self.top + self.side

    @property
    def scale(self) -> float:
        """Pixels per V-A unit."""
        return self.side / (2 * self.limit)

    def xy(self, valence: float, arousal: float) -> tuple[float, float]:
        """The pixel of a V-A point; points outside the pad are drawn on its edge."""
        v, a = (min(max(float(c), -self.limit), self.limit) for c in (valence, arousal))
        return self.left + (v + self.limit) * self.scale, self.top + (self.limit - a) * self.scale


def limit_for(points: Iterable[Sequence[float]]) -> float:
    """The trained range 3, or the next whole number that holds every point (extrapolated V-A)."""
    largest = max((abs(float(c)) for p in points for c in p), default=0.0)
    return VA_MAX if largest <= VA_MAX else float(math.ceil(largest))


def draw_pad(draw: ImageDraw.ImageDraw, pad: Pad, *, circumplex: bool = False, ticks: bool = True,
             size: int = TEXT) -> Pad:
    """Draw the empty pad: grid every unit (every second one past ±5), the trained square outlined when the pad is
    wider, the circumplex circle when asked, the axes through 0, the frame, tick labels (left and below the frame,
    when ``ticks``) and the axis names inside the top-left and bottom-right corners. Returns ``pad``."""
    step = 1 if pad.limit <= 5 else 2
    whole = math.floor(pad.limit)
    for k in range(-whole, whole + 1):
        if k % step:
            continue
        x, y = pad.xy(k, k)
        draw.line([(x, pad.top), (x, pad.bottom)], fill=GRID)
        draw.line([(pad.left, y), (pad.right, y)], fill=GRID)
        if ticks:
            label = f"{k:+d}" if k else "0"
            width = draw.textlength(label, font=font(size))
            draw.text((x - width / 2, pad.bottom + TICK), label, fill=INK, font=font(size))
            draw.text((pad.left - TICK - width, y - size / 2), label, fill=INK, font=font(size))
    if circumplex:
        draw.ellipse([*pad.xy(-VA_MAX, VA_MAX), *pad.xy(VA_MAX, -VA_MAX)], outline=GRID)
    if pad.limit > VA_MAX:
        draw.rectangle([*pad.xy(-VA_MAX, VA_MAX), *pad.xy(VA_MAX, -VA_MAX)], outline=AXIS)
    x0, y0 = pad.xy(0, 0)
    draw.line([(x0, pad.top), (x0, pad.bottom)], fill=AXIS)
    draw.line([(pad.left, y0), (pad.right, y0)], fill=AXIS)
    draw.rectangle([pad.left, pad.top, pad.right, pad.bottom], outline=AXIS)
    draw.text((pad.left + TICK, pad.top + 2), AROUSAL_NAME, fill=INK, font=font(size))
    width = draw.textlength(VALENCE_NAME, font=font(size))
    draw.text((pad.right - TICK - width, pad.bottom - size - 4), VALENCE_NAME, fill=INK, font=font(size))
    return pad


def draw_centres(draw: ImageDraw.ImageDraw, pad: Pad, probabilities: Sequence[float], size: int = TEXT,
                 room: float | None = None) -> None:
    """The eight class centres as dots coloured by valence group, each dot's area following its probability (ringed,
    so a zero still shows), each named right of its dot (left of it where the name would pass ``room``, the last
    pixel column it may use: the pad's right edge unless given); a name that would cover an earlier one moves
    down."""
    dots = [(name, *pad.xy(v, a), 3 + 11 * max(float(p), 0.0) ** 0.5)
            for (name, v, a), p in zip(centres_table(), probabilities, strict=True)]
    for name, x, y, r in dots:
        marks.dot(draw, x, y, r, POSITIVE if name in POSITIVE_EMOTIONS else NEGATIVE, outline=INK)
    taken: list[list[float]] = []
    room = pad.right - TICK if room is None else room
    for name, x, y, r in dots:  # names on top of every dot
        width = draw.textlength(name, font=font(size))
        start = x + r + 2 if x + r + 2 + width <= room else x - r - 2 - width
        box = [start, y - size / 2, start + width, y + size / 2 + 1]
        while any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
            box[1] += size + 1
            box[3] += size + 1
        taken.append(box)
        draw.text((box[0], box[1]), name, fill=INK, font=font(size))
