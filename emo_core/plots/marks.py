"""The marks every chart draws the same way: dots (accepted, predicted), crosses (rejected), the target (a ring with a
plus), rings (the chosen one), diamonds, dashed lines (thresholds), arrows (target -> prediction), legend rows and
vertical text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .style import BACKGROUND, GRID, INK, TARGET_MARK, TEXT, Colour, font

Draw = ImageDraw.ImageDraw


def dot(draw: Draw, x: float, y: float, r: float, colour: Colour, outline: Colour | None = None) -> None:
    draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=outline)


def ring(draw: Draw, x: float, y: float, r: float, colour: Colour, width: int = 2) -> None:
    draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=width)


def cross(draw: Draw, x: float, y: float, r: float, colour: Colour, width: int = 2) -> None:
    """An x: a rejected attempt."""
    draw.line([(x - r, y - r), (x + r, y + r)], fill=colour, width=width)
    draw.line([(x - r, y + r), (x + r, y - r)], fill=colour, width=width)


def target(draw: Draw, x: float, y: float, r: float = 7, colour: Colour = TARGET_MARK) -> None:
    """The target point: a plus in a ring."""
    draw.line([(x - r - 3, y), (x + r + 3, y)], fill=colour, width=2)
    draw.line([(x, y - r - 3), (x, y + r + 3)], fill=colour, width=2)
    ring(draw, x, y, r, colour)


def diamond(draw: Draw, x: float, y: float, r: float, colour: Colour) -> None:
    draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], outline=colour)


def dashed_hline(draw: Draw, y: float, left: float, right: float, colour: Colour, dash: int = 5) -> None:
    """A horizontal dashed line: a threshold."""
    for x in range(int(left), int(right), 2 * dash):
        draw.line([(x, y), (min(x + dash, right), y)], fill=colour, width=1)


def arrow(draw: Draw, start: tuple[float, float], end: tuple[float, float], colour: Colour) -> None:
    """A line from ``start`` with an arrow head at ``end`` (no head when the two are under 6 pixels apart)."""
    draw.line([start, end], fill=colour, width=2)
    vector = np.subtract(end, start)
    length = float(np.hypot(*vector))
    if length < 6:
        return
    unit, normal = vector / length, np.array([-vector[1], vector[0]]) / length
    base = np.asarray(end) - 9 * unit
    draw.polygon([tuple(end), tuple(base + 4 * normal), tuple(base - 4 * normal)], fill=colour)


def key(draw: Draw, x: float, y: float, kind: str, colour: Colour) -> None:
    """A 16x10 legend key at (x, y): "line", "dash", "box", "dot", "square", "cross", "ring" or "target"."""
    middle = y + 5
    if kind == "box":
        draw.rectangle([x, y, x + 14, y + 10], fill=colour, outline=GRID)
    elif kind == "line":
        draw.line([(x, middle), (x + 16, middle)], fill=colour, width=2)
    elif kind == "dash":
        for start in (0, 8):
            draw.line([(x + start, middle), (x + start + 5, middle)], fill=colour, width=2)
    elif kind == "dot":
        dot(draw, x + 8, middle, 4, colour)
    elif kind == "square":
        draw.rectangle([x + 5, middle - 3, x + 11, middle + 3], outline=colour, width=2)
    elif kind == "cross":
        cross(draw, x + 8, middle, 4, colour)
    elif kind == "ring":
        ring(draw, x + 8, middle, 6, colour)
    else:
        target(draw, x + 8, middle, 4, colour)


def legend(draw: Draw, x: float, y: float, entries: Sequence[tuple[str, Colour, str]], size: int = TEXT) -> float:
    """One row of (label, colour, key kind) entries from (x, y); returns the x where the row ends."""
    for label, colour, kind in entries:
        key(draw, x, y + (size - 10) / 2, kind, colour)
        draw.text((x + 20, y), label, fill=INK, font=font(size))
        x += 20 + draw.textlength(label, font=font(size)) + 12
    return x


def legend_width(draw: Draw, entries: Sequence[tuple[str, Colour, str]], size: int = TEXT) -> float:
    return sum(20 + draw.textlength(label, font=font(size)) + 12 for label, _, _ in entries) - 12


def vertical_text(image: Image.Image, text: str, x: int, middle: float, size: int) -> None:
    """``text`` turned 90° (read bottom to top), its left edge at ``x``, centred on the height ``middle``."""
    width = int(ImageDraw.Draw(image).textlength(text, font=font(size))) + 4
    label = Image.new("RGB", (width, size + 4), BACKGROUND)
    ImageDraw.Draw(label).text((0, 1), text, fill=INK, font=font(size))
    label = label.rotate(90, expand=True)
    image.paste(label, (x, round(middle - label.height / 2)))
