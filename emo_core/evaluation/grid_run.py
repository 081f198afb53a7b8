"""The cells of a grid run saved by ComfyUI: every PNG that SaveImage writes carries the workflow that made it (the
API prompt, PNG text "prompt"), which names the V-A grid and the neutral prompt. The cells of one run share that
workflow and were written in batch order with increasing counters (``prefix_00001_.png``, ...), so the i-th file
of a run, by name, is the grid's i-th point.

Understood: one Emotion Grid or Emotion Path node with literal values; the neutral prompt is the literal text of
the CLIPTextEncode feeding Emotion Injection, or the literal value of a primitive string node linked to it.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from ..emoticrafter.va import VAPoints

GRID, PATH, INJECTION = "EmoNodes_EmotionGrid", "EmoNodes_EmotionPath", "EmoNodes_EmotionInjection"


def embedded_prompt(path: Path) -> str | None:
    """The API workflow a ComfyUI PNG carries, as text, or None."""
    if path.suffix.lower() != ".png":
        return None
    try:
        with Image.open(path) as image:
            text = image.info.get("prompt")
    except OSError:
        return None
    return text if isinstance(text, str) else None


def _points(prompt: dict, source: str) -> VAPoints:
    nodes = [n for n in prompt.values() if isinstance(n, dict) and n.get("class_type") in (GRID, PATH)]
    if len(nodes) != 1:
        raise ValueError(f"{source}: its workflow has {len(nodes)} Emotion Grid / Emotion Path nodes; exactly one "
                         "is needed to tell each cell's V-A (or name the files 'V-A (v,a) | prompt.png')")
    node = nodes[0]
    values = node["inputs"]
    if any(isinstance(v, list) for v in values.values()):
        raise ValueError(f"{source}: the {node['class_type']} inputs are linked, not literal values")
    extrapolate = bool(values.get("extrapolate", False))
    if node["class_type"] == GRID:
        return VAPoints.make_grid((values["valence_from"], values["valence_to"]),
                                  (values["arousal_from"], values["arousal_to"]), int(values["columns"]),
                                  int(values["rows"]), extrapolate)
    return VAPoints.make_path((values["valence_start"], values["arousal_start"]),
                              (values["valence_end"], values["arousal_end"]), int(values["steps"]), extrapolate)


def _neutral_prompt(prompt: dict) -> str | None:
    """The literal text encoded for Emotion Injection's conditioning, or None when it cannot be told."""
    injections = [n for n in prompt.values() if isinstance(n, dict) and n.get("class_type") == INJECTION]
    if len(injections) != 1 or not isinstance(injections[0]["inputs"].get("conditioning"), list):
        return None
    encoder = prompt.get(str(injections[0]["inputs"]["conditioning"][0]), {})
    text = encoder.get("inputs", {}).get("text")
    if isinstance(text, list):  # linked: a primitive string node's literal value
        text = prompt.get(str(text[0]), {}).get("inputs", {}).get("value")
    return text if isinstance(text, str) else None


def grid_run_cells(paths: list[Path]) -> list[tuple[Path, float, float, str | None]]:
    """(file, valence, arousal, neutral prompt or None) for every ComfyUI PNG of a grid run among ``paths``;
    files without an embedded workflow are left out. A run whose file count is not its grid's point count is an
    error (cells of several runs, or a partial run, cannot be told apart)."""
    runs: dict[str, list[Path]] = {}
    for path in paths:
        text = embedded_prompt(path)
        if text is not None:
            runs.setdefault(text, []).append(path)
    cells = []
    for text, files in runs.items():
        files = sorted(files, key=lambda p: p.name)
        source = f"{files[0].name} (and {len(files) - 1} more of its run)" if len(files) > 1 else files[0].name
        prompt = json.loads(text)
        points = _points(prompt, source)
        if len(files) != len(points):
            raise ValueError(f"{source}: {len(files)} images of one grid run, but its grid has {len(points)} points; "
                             "keep exactly the cells of one run (one SaveImage of the decoded batch) in the folder")
        neutral = _neutral_prompt(prompt)
        cells += [(path, v, a, neutral) for path, v, a in zip(files, points.valence, points.arousal, strict=True)]
    return cells
