"""The pictures emo-nodes draws, in one style (Pillow only, no matplotlib): the labelled V-A contact sheet, the
EIT loss curve, the emotion-distribution bar chart and the IEI trace plot."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..emoeditor.emotions import EMOTIONS, POSITIVE_EMOTIONS
from ..emoticrafter.va import VAPoints

BACKGROUND, INK, GRID, AXIS = (255, 255, 255), (20, 20, 20), (225, 225, 225), (60, 60, 60)
POSITIVE, NEGATIVE = (86, 156, 214), (214, 110, 86)  # bar colours by valence group
SERIES = (("train_mse", "train MSE", (31, 119, 180)), ("val_loss", "val MSE", (255, 127, 14)))
BEST = (44, 160, 44)
TARGET_MARK = (148, 40, 160)  # the target class row / the target-confidence series
BAND = (222, 238, 222)  # the IEI SSIM acceptance band
CHART_WIDTH, ROW, PAD = 384, 26, 8


# --- contact sheet -----------------------------------------------------------------------------------------------


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
    font = ImageFont.load_default(size=font_size)
    axis_labels = points.grid is not None and rows * cols == count and not columns
    left = font_size * 5 if axis_labels else gap
    top = font_size * 2 + gap if axis_labels else font_size + 2 * gap
    cell_top = 0 if axis_labels else font_size + gap

    sheet = Image.new("RGB", (left + cols * (width + gap), top + rows * (height + cell_top + gap)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    pixels = (images.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    for i in range(count):
        r, c = divmod(i, cols)
        x, y = left + c * (width + gap), top + r * (height + cell_top + gap)
        sheet.paste(Image.fromarray(pixels[i]), (x, y + cell_top))
        if not axis_labels:
            draw.text((x, y), f"V {points.valence[i]:+.2f}  A {points.arousal[i]:+.2f}", fill=INK, font=font)
    if axis_labels:
        draw.text((gap, gap), "A \\ V", fill=INK, font=font)
        for c in range(cols):
            draw.text((left + c * (width + gap), gap), f"V {points.valence[c]:+.2f}", fill=INK, font=font)
        for r in range(rows):
            y = top + r * (height + gap) + height // 2 - font_size // 2
            draw.text((gap, y), f"A {points.arousal[r * cols]:+.2f}", fill=INK, font=font)
    return torch.from_numpy(np.asarray(sheet, dtype=np.float32) / 255.0)[None]


# --- loss curve: unweighted train and validation MSE per epoch (same scale; the weighted objective is not, with the
# published 1/d² weights it is ~10³× larger) on a log10 axis, the best epoch marked ----------------------------------


def loss_curve_image(history: Sequence[dict], width: int = 640, height: int = 360,
                     title: str = "EIT training", x_label: str = "epoch") -> np.ndarray:
    """(height, width, 3) uint8 RGB picture of ``history`` (records with "epoch", "train_mse", "val_loss"; "epoch" is
    the x value, named ``x_label`` on the axis, e.g. "step")."""
    width, height = max(int(width), 200), max(int(height), 120)
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, right, top, bottom = 64, width - 16, 28, height - 36
    draw.text((left, 8), title, fill=INK, font=font)
    points = {key: [(r["epoch"], r[key]) for r in history if _positive(r.get(key))] for key, _, _ in SERIES}
    values = [v for series in points.values() for _, v in series]
    if not values:
        draw.text((left, (top + bottom) // 2), "no completed epoch yet", fill=INK, font=font)
        return np.asarray(image, dtype=np.uint8)
    epochs = [r["epoch"] for r in history]
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
        draw.text((4, y - 6), f"1e{decade}", fill=INK, font=font)
    draw.rectangle([left, top, right, bottom], outline=AXIS)
    draw.text((left, bottom + 6), f"{x_label} {x_lo}", fill=INK, font=font)
    draw.text((right - 70, bottom + 6), f"{x_label} {x_hi}", fill=INK, font=font)
    for index, (key, label, colour) in enumerate(SERIES):
        xy = [to_xy(e, v) for e, v in points[key]]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for x, y in xy[-1:] if len(xy) > 1 else xy:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        legend_x = right - 200 + index * 100
        draw.line([(legend_x, 14), (legend_x + 16, 14)], fill=colour, width=2)
        draw.text((legend_x + 20, 8), label, fill=INK, font=font)
    if points["val_loss"]:
        best_epoch, best = min(points["val_loss"], key=lambda p: p[1])
        x, y = to_xy(best_epoch, best)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], outline=BEST, width=2)
        draw.text((left + 4, bottom - 16), f"best val {best:.4g} @ {x_label} {best_epoch}", fill=BEST, font=font)
    return np.asarray(image, dtype=np.uint8)


def _positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


# --- emotion bar chart -------------------------------------------------------------------------------------------


def draw_chart(distribution: torch.Tensor, title: str = "", target: str | None = None) -> Image.Image:
    """(8,) probabilities in EMOTIONS order -> an RGB chart; the most likely class is marked ("> "), and the
    ``target`` class, when given, is outlined with an arrow and named in the title."""
    probs = [float(p) for p in distribution.reshape(-1)]
    top = int(np.argmax(probs))
    goal = EMOTIONS.index(target) if target in EMOTIONS else None
    font = ImageFont.load_default(size=14)
    height = PAD * 2 + ROW * (len(EMOTIONS) + 1)
    chart = Image.new("RGB", (CHART_WIDTH, height), BACKGROUND)
    draw = ImageDraw.Draw(chart)
    if not title:
        title = f"{EMOTIONS[top]} {probs[top]:.1%}"
        if goal is not None:
            title = f"target {EMOTIONS[goal]} {probs[goal]:.1%} (top: {title})"
    draw.text((PAD, PAD), title, fill=INK, font=font)
    label_w, value_w = 104, 56
    bar_x, bar_w = PAD + label_w, CHART_WIDTH - 2 * PAD - label_w - value_w
    for i, (name, p) in enumerate(zip(EMOTIONS, probs, strict=True)):
        y = PAD + ROW * (i + 1)
        marker = "> " if i == top else "  "
        draw.text((PAD, y + 4), marker + name, fill=INK, font=font)
        draw.rectangle((bar_x, y + 3, bar_x + bar_w, y + ROW - 3), outline=GRID)
        colour = POSITIVE if name in POSITIVE_EMOTIONS else NEGATIVE
        if p > 0:
            draw.rectangle((bar_x, y + 3, bar_x + max(1, round(bar_w * min(p, 1.0))), y + ROW - 3), fill=colour)
        draw.text((bar_x + bar_w + 6, y + 4), f"{p:.1%}", fill=INK, font=font)
        if i == goal:
            draw.rectangle((PAD - 2, y, CHART_WIDTH - 3, y + ROW), outline=TARGET_MARK, width=2)
            middle = y + ROW // 2
            draw.polygon([(0, middle - 5), (PAD - 3, middle), (0, middle + 5)], fill=TARGET_MARK)
    return chart


def chart_batch(distributions: torch.Tensor, target: str | None = None) -> torch.Tensor:
    """(B, 8) -> ComfyUI IMAGE (B, H, W, 3) in [0, 1]; ``target`` as for draw_chart."""
    charts = [np.asarray(draw_chart(row, target=target), dtype=np.float32) / 255.0
              for row in distributions.reshape(-1, 8)]
    return torch.from_numpy(np.stack(charts))


# --- IEI trace plot: per attempt the target-class confidence and the SSIM to the source, on one 0-1 axis (extended
# below 0 when an SSIM is negative), the acceptance band and the confidence threshold, the chosen attempt ----------


def iei_plot_image(run: Mapping, ssim_band: tuple[float, float], confidence: float, target: str,
                   width: int = 720, height: int = 360) -> np.ndarray:
    """(height, width, 3) uint8 picture of one IEI run (``IEIResult.log()``: "trace" entries with "attempt", "ssim",
    "p_target", "accepted"; "status", "chosen_attempt"). Accepted attempts are filled dots, rejected ones crosses;
    the chosen attempt is ringed on a vertical line; the SSIM band is shaded, the confidence threshold dashed."""
    width, height = max(int(width), 360), max(int(height), 220)
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    left, right, top, bottom = 56, width - 16, 48, height - 40
    trace = list(run.get("trace", []))
    chosen = run.get("chosen_attempt")
    chosen_text = "the source (no edit)" if chosen in (None, "source") else f"attempt {chosen}"
    draw.text((left, 6), f"IEI towards {target}: {run.get('status', '?')}, {len(trace)} attempt(s), "
                         f"chosen: {chosen_text}", fill=INK, font=font)
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
        draw.text((6, y - 6), f"{k / 5:.1f}", fill=INK, font=font)
    y = y_of(confidence)
    for x in range(left, right, 10):
        draw.line([(x, y), (min(x + 5, right), y)], fill=TARGET_MARK, width=1)
    draw.rectangle([left, top, right, bottom], outline=AXIS)
    every = max(1, math.ceil(len(trace) / 12))
    for entry in trace[::every]:
        x = x_of(entry["attempt"])
        draw.line([(x, bottom), (x, bottom + 3)], fill=AXIS)
        draw.text((x - 3, bottom + 5), str(entry["attempt"]), fill=INK, font=font)
    draw.text(((left + right) // 2 - 20, bottom + 22), "attempt", fill=INK, font=font)
    axis_label = Image.new("RGB", (120, 16), BACKGROUND)
    ImageDraw.Draw(axis_label).text((0, 1), "p(target), SSIM", fill=INK, font=font)
    axis_label = axis_label.rotate(90, expand=True)
    image.paste(axis_label, (34, (top + bottom) // 2 - 60))
    if chosen not in (None, "source") and 0 <= int(chosen) < slots:
        draw.line([(x_of(chosen), top), (x_of(chosen), bottom)], fill=BEST, width=2)
    series = ((f"p({target})", "p_target", TARGET_MARK), ("SSIM", "ssim", SERIES[0][2]))
    for _, key, colour in series:
        xy = [(x_of(e["attempt"]), y_of(float(e[key]))) for e in trace]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for (x, y), entry in zip(xy, trace, strict=True):
            if entry["accepted"]:
                draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
            else:
                draw.line([(x - 4, y - 4), (x + 4, y + 4)], fill=colour, width=2)
                draw.line([(x - 4, y + 4), (x + 4, y - 4)], fill=colour, width=2)
            if entry["attempt"] == chosen:
                draw.ellipse([x - 8, y - 8, x + 8, y + 8], outline=BEST, width=2)
    if not trace:
        draw.text((left + 8, (top + bottom) // 2), "no attempt was made", fill=INK, font=font)
    legend = [(f"p({target})", TARGET_MARK, "line"), ("SSIM", SERIES[0][2], "line"),
              (f"SSIM band {low:g}-{high:g}", BAND, "box"), (f"confidence {confidence:g}", TARGET_MARK, "dash"),
              ("accepted", AXIS, "dot"), ("rejected", AXIS, "cross"), ("chosen", BEST, "ring")]
    x, y = left, 26
    for label, colour, kind in legend:
        if kind == "box":
            draw.rectangle([x, y, x + 14, y + 10], fill=colour, outline=GRID)
        elif kind in ("line", "dash"):
            for start in range(0, 16, 8 if kind == "dash" else 16):
                draw.line([(x + start, y + 5), (x + min(start + (5 if kind == "dash" else 16), 16), y + 5)],
                          fill=colour, width=2)
        elif kind == "dot":
            draw.ellipse([x + 4, y + 1, x + 12, y + 9], fill=colour)
        elif kind == "cross":
            draw.line([(x + 4, y + 1), (x + 12, y + 9)], fill=colour, width=2)
            draw.line([(x + 4, y + 9), (x + 12, y + 1)], fill=colour, width=2)
        else:
            draw.ellipse([x + 2, y - 1, x + 14, y + 11], outline=colour, width=2)
        draw.text((x + 20, y), label, fill=INK, font=font)
        x += 24 + round(draw.textlength(label, font=font)) + 6
    return np.asarray(image, dtype=np.uint8)


def iei_plots(runs: Sequence[Mapping], ssim_band: tuple[float, float], confidence: float, target: str
              ) -> torch.Tensor:
    """One plot per run (per source image) -> ComfyUI IMAGE (B, H, W, 3) in [0, 1]."""
    plots = [iei_plot_image(run, ssim_band, confidence, target).astype(np.float32) / 255.0 for run in runs]
    return torch.from_numpy(np.stack(plots))
