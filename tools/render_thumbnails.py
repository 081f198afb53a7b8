"""Render ``workflows/NAME.jpg``, the template-browser thumbnail of every example workflow.

Each card shows the workflow's title, its one-line description and its place in the reading order (all from
``workflows/templates.toml``), a diagram of its groups left to right, and the image the workflow itself made in a
run on the dev host with the tiny test models (``tiny_graph.for_tiny_models``: random weights, 64x64, 4 steps), so
the picture shows what comes out of the graph, not what the published models would paint; the card says so.

    .venv/bin/python tools/render_thumbnails.py            # starts a host with the tiny models
    .venv/bin/python tools/render_thumbnails.py --url URL  # or uses a running one (tiny models and pairs CSV there)
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from comfy_host import ComfyHost, drawn_picture, ensure_tiny_models
from PIL import Image, ImageDraw, ImageFont
from tiny_graph import TINY_PAIRS, for_tiny_models, write_tiny_pairs
from workflow_format import WORKFLOWS, load_templates

SIZE = 512
BG, PANEL, INK, MUTED, ACCENT = (24, 26, 32), (38, 42, 52), (236, 238, 242), (160, 166, 180), (95, 160, 230)
FAMILY_COLOR = {"emoticrafter": (230, 140, 60), "emoeditor": (120, 190, 120), "sdxl": (140, 150, 170)}
MAX_BYTES = 100_000
THUMBNAIL_SOURCE = "emo_thumbnail_source.png"

# Which saved images make the picture: node ids of SaveImage nodes, in the API workflow; "source" is the
# LoadImage input the EmoEditor workflows edit (shown before the result).
PICTURE = {
    "emoticrafter_text_to_image": ["10"],
    "emoticrafter_grid_5x5": ["11"],
    "emoticrafter_empty_prompt": ["10"],
    "emoticrafter_train_eit": ["5", "13"],
    "emoeditor_single_edit": ["source", "6"],
    "emoeditor_iei_loop": ["source", "4"],
    "sdxl_text_to_image": ["7"],
    "emoticrafter_metrics_5x5": ["12", "16"],
    "emoticrafter_closed_loop": ["9", "12"],
    "emoticrafter_img2img": ["source", "12"],
    "emoticrafter_img2img_controlnet": ["source", "15"],
    "emoticrafter_morph": ["13"],
    "emoeditor_train": ["5", "10"],
    "emoticrafter_regional": ["source", "16", "15"],
    "emoeditor_regional": ["source", "8", "5"],
}


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # Pillow's bundled scalable font: the same on every machine


def wrap(draw: ImageDraw.ImageDraw, text: str, fnt, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=fnt) <= width:
            line = trial
        else:
            lines.append(line)
            line = word
    return [*lines, line] if line else lines


def run_images(host: ComfyHost, name: str) -> list[Image.Image]:
    """Run the workflow on the tiny models and return the pictures PICTURE names."""
    api = for_tiny_models(json.loads((WORKFLOWS / "api" / f"{name}.json").read_text()))
    for node in api.values():  # a drawn source picture: the thumbnails owe nothing to any data set
        if node["class_type"] == "LoadImage":
            drawn_picture().save(host.base / "input" / THUMBNAIL_SOURCE)
            node["inputs"]["image"] = THUMBNAIL_SOURCE
    entry = host.run(api, timeout=600)
    images = []
    for key in PICTURE[name]:
        if key == "source":
            loader = next(v for v in api.values() if v["class_type"] == "LoadImage")
            images.append(Image.open(host.base / "input" / loader["inputs"]["image"]).convert("RGB"))
            continue
        files = host.output_files(entry, key)
        if not files:
            raise RuntimeError(f"{name}: node {key} saved no image")
        images.append(Image.open(io.BytesIO(host.fetch(files[0]))).convert("RGB"))
    return images


def diagram(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], groups: list[dict], color) -> None:
    """The workflow's groups as boxes in reading order, arrows between the columns."""
    x0, y0, x1, y1 = box
    columns: list[list[str]] = []
    for g in groups:
        if g["title"] == "Read me":
            continue
        if g.get("below") and columns:
            columns[-1].append(g["title"])
        else:
            columns.append([g["title"]])
    fnt = font(12)
    gap = 14
    w = (x1 - x0 - gap * (len(columns) - 1)) / len(columns)
    for i, col in enumerate(columns):
        cx = x0 + i * (w + gap)
        h = (y1 - y0 - 6 * (len(col) - 1)) / len(col)
        for j, title in enumerate(col):
            cy = y0 + j * (h + 6)
            draw.rounded_rectangle([cx, cy, cx + w, cy + h], radius=6, fill=PANEL, outline=color, width=2)
            lines = wrap(draw, title, fnt, int(w) - 8)[:4]
            ty = cy + h / 2 - 8 * len(lines)
            for line in lines:
                draw.text((cx + w / 2, ty), line, font=fnt, fill=INK, anchor="mt")
                ty += 16
        if i:
            ay = (y0 + y1) / 2
            draw.line([cx - gap + 2, ay, cx - 3, ay], fill=color, width=2)
            draw.polygon([(cx - 2, ay), (cx - 8, ay - 4), (cx - 8, ay + 4)], fill=color)


def card(template: dict, order: int, count: int, pictures: list[Image.Image]) -> Image.Image:
    img = Image.new("RGB", (SIZE, SIZE), BG)
    draw = ImageDraw.Draw(img)
    color = FAMILY_COLOR.get(template["name"].split("_")[0], ACCENT)
    draw.rectangle([0, 0, SIZE, 6], fill=color)
    # picture area: the run's images side by side, arrows between them
    top, bottom, pad = 20, 300, 20
    n = len(pictures)
    gap = 28
    cell = min(bottom - top, (SIZE - 2 * pad - gap * (n - 1)) // n)
    x = (SIZE - (n * cell + gap * (n - 1))) // 2
    for i, pic in enumerate(pictures):
        pic = pic.copy()
        pic.thumbnail((cell, cell), Image.Resampling.NEAREST if max(pic.size) < cell // 2 else Image.Resampling.LANCZOS)
        if max(pic.size) < cell:  # tiny outputs: scale up with hard pixels
            k = cell / max(pic.size)
            pic = pic.resize((max(1, round(pic.width * k)), max(1, round(pic.height * k))), Image.Resampling.NEAREST)
        px, py = x + (cell - pic.width) // 2, top + (bottom - top - pic.height) // 2
        img.paste(pic, (px, py))
        draw.rectangle([px - 1, py - 1, px + pic.width, py + pic.height], outline=PANEL)
        if i:
            ay = (top + bottom) // 2
            draw.polygon([(x - 6, ay), (x - gap + 8, ay - 8), (x - gap + 8, ay + 8)], fill=color)
        x += cell + gap
    draw.text((SIZE - 8, bottom + 4), "test run on tiny random models", font=font(11), fill=MUTED, anchor="rt")
    # text: order badge, title, description
    y = bottom + 22
    draw.rounded_rectangle([pad, y, pad + 34, y + 30], radius=8, fill=color)
    draw.text((pad + 17, y + 15), str(order), font=font(20), fill=BG, anchor="mm")
    title_font = font(22)
    for line in wrap(draw, template["title"], title_font, SIZE - 2 * pad - 44)[:2]:
        draw.text((pad + 44, y + 3), line, font=title_font, fill=INK)
        y += 26
    y = max(y, bottom + 56) + 4
    for line in wrap(draw, template["description"], font(15), SIZE - 2 * pad)[:2]:
        draw.text((pad, y), line, font=font(15), fill=MUTED)
        y += 19
    diagram(draw, (pad, y + 8, SIZE - pad, SIZE - 14), template["groups"], color)
    draw.text((SIZE - 8, SIZE - 4), f"{order}/{count}", font=font(11), fill=MUTED, anchor="rb")
    return img


def save_jpeg(img: Image.Image, path: Path) -> int:
    for quality in (88, 80, 72, 64, 56):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality, optimize=True, progressive=True)
        if buf.tell() < MAX_BYTES:
            path.write_bytes(buf.getvalue())
            return buf.tell()
    raise RuntimeError(f"{path.name}: over {MAX_BYTES} bytes even at low quality")


def render(host: ComfyHost, names: list[str] | None = None) -> list[Path]:
    templates = load_templates()
    written = []
    for order, template in enumerate(templates, 1):
        if names and template["name"] not in names:
            continue
        pictures = run_images(host, template["name"])
        path = WORKFLOWS / f"{template['name']}.jpg"
        size = save_jpeg(card(template, order, len(templates), pictures), path)
        print(f"{path.relative_to(WORKFLOWS.parent)}  {size // 1024} KB")
        written.append(path)
    return written


class _Remote(ComfyHost):
    """A host someone else started: same HTTP helpers, its base directory as given."""

    def __init__(self, url: str, base: Path):
        super().__init__(base=base)
        self.url = url.rstrip("/")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="only these workflows (default: all)")
    parser.add_argument("--url", help="a running dev host (tools/ui.py) instead of starting one")
    args = parser.parse_args(argv)
    ensure_tiny_models()
    if args.url:
        host = _Remote(args.url, ComfyHost().base)
        write_tiny_pairs(host.base / "input" / TINY_PAIRS)
        render(host, args.names)
        return
    with ComfyHost() as host:
        write_tiny_pairs(host.base / "input" / TINY_PAIRS)
        render(host, args.names)


if __name__ == "__main__":
    main()
