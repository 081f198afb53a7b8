"""Evaluate a folder of rendered images named with their target V-A and prompt (the 5x5 protocol's output).

Names: the published ``V-A (v,a) | prompt.png`` ([EC inference5x5.py]), or the filesystem-safe variant
``V-A (v,a) _ prompt.png`` (``|`` is not allowed on Windows and some tools); .png, .jpg, .jpeg or .webp. The prompt
in the name is the neutral prompt, used for CLIPScore. Or straight from a grid run: the cells ComfyUI saved, whose
V-A and prompt come from the workflow each PNG carries (``grid_run``). Other files are skipped and counted.

Results: the paper's table (mean ± std V-Error, A-Error, CLIPScore), a heat map of the error per V-A cell and a JSON
with every number, written next to the images; existing results are never replaced unless asked, a failing run
writes nothing, and both files are written atomically (temp file + rename) only once every number is known.

Files the run cannot use are skipped and reported, never fatal, each as ``{"file", "reason"}`` under ``refused`` in
the report (the CLI prints one line per file): entries that are not regular files (FIFOs, devices, folders,
dangling or looping symlinks: told by ``os.stat``, never opened), file names that are not valid UTF-8 or hold
control characters (shown with ``repr``), images Pillow cannot read or refuses as decompression bombs, PNGs whose
embedded workflow is unreadable (e.g. JSON nested too deeply), and cells whose target V-A lies outside the protocol's
range [-3, 3] (left out of every average). The results name must be a plain file name (``naming.name_problem``).
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic_io import atomic_write, atomic_write_text
from ..critic.critic import VACritic
from ..plots.critic import error_heatmap_image
from ..training.naming import name_problem as results_name_problem
from .columns import LPIPS_CONTINUOUS, Columns, column_summary, lpips_continuous, score_cell
from .files import IMAGE_SUFFIXES, ImageProblem, looks_like_image, name_problem, open_image, regular_files
from .grid_run import grid_run_cells
from .metrics import PROTOCOL_VALUES, cell_errors, clip_scores, summary

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"
NAMINGS = {"published": "|", "safe": "_"}
COMFYUI = "comfyui"  # a grid run's cells, told by the workflow in the PNG
PATTERNS = {naming: re.compile(rf"^V-A \(\s*(?P<v>{NUMBER})\s*,\s*(?P<a>{NUMBER})\s*\) {re.escape(sep)} "
                               r"(?P<prompt>.+)\.(?:png|jpe?g|webp)\Z", re.IGNORECASE)
            for naming, sep in NAMINGS.items()}
RESULTS = "emotion_metrics"  # <folder>/emotion_metrics.json and .png
VA_RANGE = (min(PROTOCOL_VALUES), max(PROTOCOL_VALUES))  # the heads' output range: targets outside are unreachable
HEATMAP_AXIS = 64  # distinct valences (or arousals) drawn at most: 64 px a cell, so names cannot ask for a huge image


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
    with open_image(path) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)


def target_problem(valence: float, arousal: float) -> str | None:
    """Why a target V-A cannot be scored (outside the protocol's range, or not finite), or None."""
    low, high = VA_RANGE
    if all(math.isfinite(x) and low <= x <= high for x in (valence, arousal)):
        return None
    return (f"target V-A ({valence:g}, {arousal:g}) is outside the protocol's range [{low:g}, {high:g}] (the critic "
            "cannot predict it); left out of the averages")


def refused_entry(path: Path, reason: str) -> dict:
    """One refused file as the report holds it: the name as ``repr`` (any file name can be shown on one line)."""
    return {"file": repr(path.name), "reason": reason}


def evaluate_folder(folder, critic: VACritic, clip_score: bool = True, name: str = RESULTS,
                    overwrite: bool = False, columns: Columns | None = None) -> dict:
    """Score every cell image in ``folder``; write ``<name>.json`` and ``<name>.png`` there and return the report.
    Refuses (before any work) to replace existing results unless ``overwrite``, and a ``name`` that is not a plain
    file name. Files it cannot use are left out and listed under ``refused`` (see the module docstring).
    ``columns``: the optional Emo-A, CLIP-IQA and LPIPS-Continuous models (``columns.load_columns``); the report's
    ``not_measured`` gives the one-line reason for each column that is absent."""
    columns = columns or Columns()
    problem = results_name_problem(name, "--name")
    if problem:
        raise ValueError(problem)
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
    files, refused = regular_files(folder)
    cells, others = [], []
    for path in files:
        problem = name_problem(path.name)
        if problem:
            if looks_like_image(path.name):
                refused.append((path, problem))
            continue
        parsed = parse_cell_name(path.name)
        if parsed is not None:
            cells.append((path, *parsed))
        elif path.suffix.lower() in IMAGE_SUFFIXES and path not in outputs:
            others.append(path)
    from_runs = grid_run_cells(others, refused)
    for path, valence, arousal, prompt in from_runs:
        if prompt is None and clip_score:
            raise ValueError(f"{path.name}: its workflow does not tell the neutral prompt for CLIPScore (pass "
                             "--no-clip-score)")
        cells.append((path, valence, arousal, prompt or "", COMFYUI))
    used = {path for path, *_ in from_runs} | {path for path, _ in refused}
    skipped = [p.name for p in others if p not in used]
    if not cells:
        raise ValueError(f"{folder}: no images named 'V-A (v,a) | prompt.png' (published) or 'V-A (v,a) _ "
                         f"prompt.png' (filesystem-safe), and no ComfyUI grid-run cells; {len(skipped)} other "
                         f"image(s){_refused_note(refused)}")
    records, features, scored = [], [], []
    text_cache: dict[str, torch.Tensor] = {}
    for path, valence, arousal, prompt, naming in cells:
        problem = target_problem(valence, arousal)
        if problem:
            refused.append((path, problem))
            continue
        try:
            pixels = _load(path)
        except ImageProblem as exc:
            refused.append((path, str(exc)))
            continue
        embedding = critic.embed(pixels[None], name=path.name)
        features.append(embedding)
        record = {"file": path.name, "naming": naming, "prompt": prompt, "target_valence": valence,
                  "target_arousal": arousal}
        if clip_score:
            if prompt not in text_cache:  # one text embedding per prompt (25 cells share it)
                text_cache[prompt] = critic.embed_texts([prompt])
            record["clip_score"] = clip_scores(embedding, text_cache[prompt]).item()
        score_cell(columns, pixels, record)
        records.append(record)
        scored.append(path)
    if not records:
        raise ValueError(f"{folder}: none of its {len(cells)} cell image(s) could be scored{_refused_note(refused)}")
    pred = critic.predict_features(torch.cat(features)).double()
    target = torch.tensor([[r["target_valence"], r["target_arousal"]] for r in records], dtype=torch.float64)
    for record, (v, a) in zip(records, pred.tolist(), strict=True):
        record.update(valence=v, arousal=a, v_error=abs(v - record["target_valence"]),
                      a_error=abs(a - record["target_arousal"]))
    scores = torch.tensor([r["clip_score"] for r in records]) if clip_score else None
    stats = {**summary(pred, target, scores), **column_summary(columns, records)}
    reasons, notes, pairs = dict(columns.reasons), [], []
    if columns.lpips is not None:
        found, pairs, notes = lpips_continuous(columns.lpips, records, scored, _load)
        stats.update(found)
        if not found:
            reasons[LPIPS_CONTINUOUS] = "not measured: no two cells of one prompt are grid neighbours"
    report = {"folder": str(folder), "summary": stats, "cells": cell_errors(pred, target),
              "not_measured": reasons, "notes": notes, "lpips_pairs": pairs,
              "namings": {n: sum(r["naming"] == n for r in records) for n in (*NAMINGS, COMFYUI)},
              "skipped": skipped, "refused": [refused_entry(path, reason) for path, reason in refused],
              "resize": critic.resize, "critic": critic.source, "images": records}
    lines = [f"{folder.name}: {len(records)} images"]
    if refused:
        lines.append(f"{len(refused)} file(s) left out of the averages (see 'refused' in {outputs[0].name})")
    # everything is computed before anything is written: a run that fails leaves earlier results as they were
    text = json.dumps(report, indent=1, sort_keys=True, allow_nan=False) + "\n"
    drawn = report["cells"]
    axes = [len({c[axis] for c in drawn}) for axis in ("valence", "arousal")]
    if max(axes) > HEATMAP_AXIS:
        lines.append(f"no heat map: {axes[0]} valences x {axes[1]} arousals (at most {HEATMAP_AXIS} each); the "
                     "JSON has every cell")
        drawn = []
    picture = io.BytesIO()
    Image.fromarray(error_heatmap_image(drawn, lines)).save(picture, format="PNG")
    atomic_write(outputs[1], lambda tmp: tmp.write_bytes(picture.getvalue()))
    atomic_write_text(outputs[0], text)
    report["written"] = [str(p) for p in outputs]
    return report


def _refused_note(refused: list[tuple[Path, str]]) -> str:
    if not refused:
        return ""
    path, reason = refused[0]
    more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
    return f"; refused {len(refused)} file(s), e.g. {path.name!r}: {reason}{more}"
