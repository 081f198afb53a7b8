"""Evaluate a folder of rendered images named with their target V-A and prompt (the 5x5 protocol's output).

Names: the published ``V-A (v,a) | prompt.png`` (EmotiCrafter's inference5x5.py), or the filesystem-safe variant
``V-A (v,a) _ prompt.png`` (``|`` is not allowed on Windows and some tools); .png, .jpg, .jpeg or .webp. The prompt
in the name is the neutral prompt, used for CLIPScore. Or straight from a grid run: the cells ComfyUI saved, whose
V-A and prompt come from the workflow each PNG carries (``grid_run``). Other files are skipped and counted.

Results: the paper's table (mean ± std V-Error, A-Error, CLIPScore), a heat map of the error per V-A cell and a JSON
with every number, written next to the images; existing results are never replaced unless asked.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic_io import atomic_write, atomic_write_json
from ..critic.critic import VACritic
from ..plots.critic import error_heatmap_image
from .grid_run import grid_run_cells
from .metrics import cell_errors, clip_scores, summary

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"
NAMINGS = {"published": "|", "safe": "_"}
COMFYUI = "comfyui"  # a grid run's cells, told by the workflow in the PNG
PATTERNS = {naming: re.compile(rf"^V-A \(\s*(?P<v>{NUMBER})\s*,\s*(?P<a>{NUMBER})\s*\) {re.escape(sep)} "
                               r"(?P<prompt>.+)\.(?:png|jpe?g|webp)$", re.IGNORECASE)
            for naming, sep in NAMINGS.items()}
RESULTS = "emotion_metrics"  # <folder>/emotion_metrics.json and .png


def parse_cell_name(name: str) -> tuple[float, float, str, str] | None:
    """(valence, arousal, prompt, naming) from a file name, or None when it is not named like a protocol cell."""
    for naming, pattern in PATTERNS.items():
        match = pattern.match(name)
        if match:
            return float(match["v"]), float(match["a"]), match["prompt"], naming
    return None


def cell_file_name(valence: float, arousal: float, prompt: str, naming: str = "published") -> str:
    """The file name of one protocol cell, e.g. ``V-A (-1.5,3) | a child playing in a park.png``."""
    return f"V-A ({valence:g},{arousal:g}) {NAMINGS[naming]} {prompt}.png"


def result_paths(folder: Path, name: str = RESULTS) -> tuple[Path, Path]:
    return folder / f"{name}.json", folder / f"{name}.png"


def _load(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)


def evaluate_folder(folder, critic: VACritic, clip_score: bool = True, name: str = RESULTS,
                    overwrite: bool = False) -> dict:
    """Score every cell image in ``folder``; write ``<name>.json`` and ``<name>.png`` there and return the report.
    Refuses (before any work) to replace existing results unless ``overwrite``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    outputs = result_paths(folder, name)
    taken = [str(p) for p in outputs if p.exists()]
    if taken and not overwrite:
        raise FileExistsError(f"{', '.join(taken)} already exist(s); pass --overwrite to replace, or --name for "
                              "another name")
    if clip_score and not critic.has_text:
        raise ValueError(f"CLIPScore: {critic.no_text_reason} (or pass --no-clip-score)")
    cells, others = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        parsed = parse_cell_name(path.name)
        if parsed is not None:
            cells.append((path, *parsed))
        elif path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") and path not in outputs:
            others.append(path)
    from_runs = grid_run_cells(others)
    for path, valence, arousal, prompt in from_runs:
        if prompt is None and clip_score:
            raise ValueError(f"{path.name}: its workflow does not tell the neutral prompt for CLIPScore (pass "
                             "--no-clip-score)")
        cells.append((path, valence, arousal, prompt or "", COMFYUI))
    used = {path for path, *_ in from_runs}
    skipped = [p.name for p in others if p not in used]
    if not cells:
        raise ValueError(f"{folder}: no images named 'V-A (v,a) | prompt.png' (published) or 'V-A (v,a) _ "
                         f"prompt.png' (filesystem-safe), and no ComfyUI grid-run cells; {len(skipped)} other "
                         "image(s)")
    records, features = [], []
    text_cache: dict[str, torch.Tensor] = {}
    for path, valence, arousal, prompt, naming in cells:
        embedding = critic.embed(_load(path)[None], name=path.name)
        features.append(embedding)
        record = {"file": path.name, "naming": naming, "prompt": prompt, "target_valence": valence,
                  "target_arousal": arousal}
        if clip_score:
            if prompt not in text_cache:  # one text embedding per prompt (25 cells share it)
                text_cache[prompt] = critic.embed_texts([prompt])
            record["clip_score"] = clip_scores(embedding, text_cache[prompt]).item()
        records.append(record)
    pred = critic.predict_features(torch.cat(features)).double()
    target = torch.tensor([[r["target_valence"], r["target_arousal"]] for r in records], dtype=torch.float64)
    for record, (v, a) in zip(records, pred.tolist(), strict=True):
        record.update(valence=v, arousal=a, v_error=abs(v - record["target_valence"]),
                      a_error=abs(a - record["target_arousal"]))
    scores = torch.tensor([r["clip_score"] for r in records]) if clip_score else None
    report = {"folder": str(folder), "summary": summary(pred, target, scores), "cells": cell_errors(pred, target),
              "namings": {n: sum(r["naming"] == n for r in records) for n in (*NAMINGS, COMFYUI)},
              "skipped": skipped,
              "resize": critic.resize, "critic": critic.source, "images": records}
    picture = error_heatmap_image(report["cells"], [f"{folder.name}: {len(records)} images"])
    atomic_write(outputs[1], lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))
    atomic_write_json(outputs[0], report)
    report["written"] = [str(p) for p in outputs]
    return report
