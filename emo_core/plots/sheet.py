"""The labelled V-A contact sheet: a batch of images in a grid, each with its valence and arousal."""

from __future__ import annotations

import torch
from PIL import Image

from ..emoticrafter.va import VAPoints
from .style import INK, as_image, canvas, font, to_array


def contact_sheet(images: torch.Tensor, points: VAPoints, columns: int | None = None, gap: int = 4) -> torch.Tensor:
    """images (B, H, W, 3) in [0, 1], one per point → (1, H', W', 3). Grids get axis labels with their values;
    other batches (paths, lists) get each cell's (V, A) above it."""
    if images.shape[0] != len(points):
        raise ValueError(f"{images.shape[0]} images but {len(points)} valence-arousal points: the sheet needs "
                         "one image per point (use the same V-A batch that conditioned the sampler)")
    count, height, width = images.shape[0], images.shape[1], images.shape[2]
    rows, cols = points.grid if points.grid and not columns else (None, columns or count)
    rows = rows or -(-count // cols)
    font_size = max(10, min(28, height // 8))
    text = font(font_size)
    axis_labels = points.grid is not None and rows * cols == count and not columns
    left = font_size * 5 if axis_labels else gap
    top = font_size * 2 + gap if axis_labels else font_size + 2 * gap
    cell_top = 0 if axis_labels else font_size + gap

    sheet, draw = canvas(left + cols * (width + gap), top + rows * (height + cell_top + gap))
    pixels = (images.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype("uint8")
    for i in range(count):
        r, c = divmod(i, cols)
        x, y = left + c * (width + gap), top + r * (height + cell_top + gap)
        sheet.paste(Image.fromarray(pixels[i]), (x, y + cell_top))
        if not axis_labels:
            draw.text((x, y), f"V {points.valence[i]:+.2f}  A {points.arousal[i]:+.2f}", fill=INK, font=text)
    if axis_labels:
        draw.text((gap, gap), "A \\ V", fill=INK, font=text)
        for c in range(cols):
            draw.text((left + c * (width + gap), gap), f"V {points.valence[c]:+.2f}", fill=INK, font=text)
        for r in range(rows):
            y = top + r * (height + gap) + height // 2 - font_size // 2
            draw.text((gap, y), f"A {points.arousal[r * cols]:+.2f}", fill=INK, font=text)
    return as_image(to_array(sheet))
