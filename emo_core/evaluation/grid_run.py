"""The cells of a grid run saved by ComfyUI: every PNG that SaveImage writes carries the workflow that made it (the
API prompt, PNG text "prompt"), which names the V-A grid and the neutral prompt. The cells of one run share that
workflow and were written in batch order with increasing counters (``prefix_00001_.png``, ...), so the i-th file
of a run, by name, is the grid's i-th point.

Understood: one Emotion Grid or Emotion Path node with literal values; the neutral prompt is the literal text of
the CLIPTextEncode feeding Emotion Injection, or the literal value of a primitive string node linked to it.

Hostile files: a PNG that cannot be opened (a decompression bomb, a damaged file, not a regular file) or whose
embedded workflow is not a JSON object (bad JSON, JSON nested too deeply for Python's parser, a list, ...) is a
problem of that one file: ``grid_run_cells`` reports it and leaves it out when given a ``problems`` list, and raises
a one-line ValueError naming the file otherwise. A readable workflow that does not describe a grid run correctly
(no or several grid nodes, linked values, a cell count that does not match) stays an error for the whole run.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..emoticrafter.va import VAPoints
from .files import ImageProblem, open_image

GRID, PATH, INJECTION = "EmoNodes_EmotionGrid", "EmoNodes_EmotionPath", "EmoNodes_EmotionInjection"


def embedded_prompt(path: Path) -> str | None:
    """The API workflow a ComfyUI PNG carries, as text, or None; ``ImageProblem`` when the file cannot be opened as
    an image (see ``files.open_image``)."""
    if path.suffix.lower() != ".png":
        return None
    with open_image(path) as image:
        text = image.info.get("prompt")
    return text if isinstance(text, str) else None


def parse_workflow(text: str) -> dict:
    """The API workflow (a JSON object) from a PNG's "prompt" text; ``ImageProblem`` saying why when it is not one
    (deep nesting included: Python's parser raises RecursionError there)."""
    try:
        workflow = json.loads(text)
    except RecursionError:
        raise ImageProblem("its embedded ComfyUI workflow is JSON nested too deeply to read") from None
    except ValueError as exc:
        raise ImageProblem(f"its embedded ComfyUI workflow is not valid JSON ({exc})") from None
    if not isinstance(workflow, dict):
        raise ImageProblem(f"its embedded ComfyUI workflow is a JSON {type(workflow).__name__}, not an object of "
                           "nodes")
    return workflow


def _points(prompt: dict, source: str) -> VAPoints:
    nodes = [n for n in prompt.values() if isinstance(n, dict) and n.get("class_type") in (GRID, PATH)]
    if len(nodes) != 1:
        raise ValueError(f"{source}: its workflow has {len(nodes)} Emotion Grid / Emotion Path nodes; exactly one "
                         "is needed to tell each cell's V-A (or name the files 'V-A (v,a) | prompt.png')")
    node = nodes[0]
    values = node.get("inputs")
    if not isinstance(values, dict):
        raise ValueError(f"{source}: the {node['class_type']} node of its workflow has no inputs")
    if any(isinstance(v, list) for v in values.values()):
        raise ValueError(f"{source}: the {node['class_type']} inputs are linked, not literal values")
    try:
        extrapolate = bool(values.get("extrapolate", False))
        if node["class_type"] == GRID:
            return VAPoints.make_grid((_number(values["valence_from"]), _number(values["valence_to"])),
                                      (_number(values["arousal_from"]), _number(values["arousal_to"])),
                                      int(values["columns"]), int(values["rows"]), extrapolate)
        return VAPoints.make_path((_number(values["valence_start"]), _number(values["arousal_start"])),
                                  (_number(values["valence_end"]), _number(values["arousal_end"])),
                                  int(values["steps"]), extrapolate)
    except KeyError as exc:
        raise ValueError(f"{source}: the {node['class_type']} node of its workflow has no {exc.args[0]!r} input"
                         ) from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{source}: the {node['class_type']} node of its workflow does not describe a grid ({exc})"
                         ) from None


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _neutral_prompt(prompt: dict) -> str | None:
    """The literal text encoded for Emotion Injection's conditioning, or None when it cannot be told."""
    injections = [n for n in prompt.values() if isinstance(n, dict) and n.get("class_type") == INJECTION]
    link = _inputs(injections[0]).get("conditioning") if len(injections) == 1 else None
    if not isinstance(link, list) or not link:
        return None
    text = _inputs(prompt.get(str(link[0]))).get("text")
    if isinstance(text, list) and text:  # linked: a primitive string node's literal value
        text = _inputs(prompt.get(str(text[0]))).get("value")
    if not isinstance(text, str):
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from JSON escapes: not text a tokenizer takes
        return None
    return text


def _inputs(node) -> dict:
    inputs = node.get("inputs") if isinstance(node, dict) else None
    return inputs if isinstance(inputs, dict) else {}


def grid_run_cells(paths: list[Path], problems: list[tuple[Path, str]] | None = None
                   ) -> list[tuple[Path, float, float, str | None]]:
    """(file, valence, arousal, neutral prompt or None) for every ComfyUI PNG of a grid run among ``paths``;
    files without an embedded workflow are left out. A run whose file count is not its grid's point count is an
    error (cells of several runs, or a partial run, cannot be told apart).

    A file that cannot be opened or whose workflow cannot be read: appended to ``problems`` as (file, reason) and
    left out when a list is given, else a ValueError ``'<name>': <reason>``."""
    runs: dict[str, list[Path]] = {}
    workflows: dict[str, dict] = {}
    for path in paths:
        try:
            text = embedded_prompt(path)
            if text is not None and text not in workflows:
                workflows[text] = parse_workflow(text)
        except ImageProblem as exc:
            if problems is None:
                raise ValueError(f"{path.name!r}: {exc}") from None
            problems.append((path, str(exc)))
            continue
        if text is not None:
            runs.setdefault(text, []).append(path)
    cells = []
    for text, files in runs.items():
        files = sorted(files, key=lambda p: p.name)
        source = f"{files[0].name} (and {len(files) - 1} more of its run)" if len(files) > 1 else files[0].name
        prompt = workflows[text]
        points = _points(prompt, source)
        if len(files) != len(points):
            raise ValueError(f"{source}: {len(files)} images of one grid run, but its grid has {len(points)} points; "
                             "keep exactly the cells of one run (one SaveImage of the decoded batch) in the folder")
        neutral = _neutral_prompt(prompt)
        cells += [(path, v, a, neutral) for path, v, a in zip(files, points.valence, points.arousal, strict=True)]
    return cells
