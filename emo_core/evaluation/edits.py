"""``python -m emo_core evaluate-edits FOLDER --predictor emo_predictor.pt``: EmoEditor's metrics over a folder of
edits: ESMI (0.5·S_str + 0.5·S_emo, [EE metric_ESMI.py], see emo_core.emoeditor.esmi) and Emo-A (the share of
edits whose top class is the target, emo_core.evaluation.accuracy). Prints mean ± std ESMI×100, S_str×100,
S_emo×100 and Emo-A, and writes ``edit_metrics.json`` and ``edit_metrics.png`` beside the pairs.

Pairs come from a CSV (FOLDER is the CSV, or a folder holding ``pairs.csv``; columns ``source,edit,target``, paths
relative to the CSV) or straight from the PNGs an IEI / edit workflow saved: the Save Image nodes fed by an IEI Loop
or Dual-Branch Emotion Edit (result or attempts), the source named by the Load Image node feeding it (looked up in
``--sources``, default: FOLDER, then ComfyUI's ``input`` folder above it) and the target by the node's ``target``
(an edit's Emotion Direction node, the nearest class under IEI's V-A rule).

Images are read as published: Pillow's ``resize((224, 224))`` (bicubic), then RGB. A pair that cannot be scored (not
an image, a missing source, an unknown target) is one ``warning:`` line naming it and is listed under ``refused``;
an edit of another size than its source is scored as published (both resized) and noted. Problems with the
arguments, or no pair left, are one ``error:`` line and exit status 2. Results are written atomically, only once
every number is known, and never over earlier results without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from ..atomic_io import atomic_write, atomic_write_text
from ..checks import device_problem
from ..emoeditor.emotions import EMOTIONS
from ..emoeditor.esmi import esmi_report, mean_std, score_pictures
from ..emoeditor.loaders import load_emo_predictor
from ..plots.esmi import esmi_picture
from ..plots.style import INK, LINE, MARGIN, TEXT, canvas, font
from ..training.naming import name_problem as results_name_problem
from .accuracy import emotion_accuracy, va_target_class
from .cli import shown
from .files import ImageProblem, open_image, regular_files
from .grid_run import embedded_prompt, parse_workflow

RESULTS = "edit_metrics"
PAIRS_CSV = "pairs.csv"
EDITORS = {"EmoNodes_IEILoop": (0, 1), "EmoNodes_EmotionEdit": (0,)}  # node -> outputs that are edits
PICTURES = 6  # pair pictures drawn in the summary picture


class PairProblem(ValueError):
    """A pair that cannot be scored; the message names it."""


# --- finding the pairs -----------------------------------------------------------------------------------------


def pairs_from_csv(path: Path) -> list[dict]:
    """[{"source": Path, "edit": Path, "target": str, "name": str}] from a ``source,edit,target`` CSV."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot read the pairs CSV ({exc})") from None
    if not rows or not {"source", "edit", "target"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a header 'source,edit,target' and at least one row")
    return [{"source": path.parent / (r["source"] or ""), "edit": path.parent / (r["edit"] or ""),
             "target": (r["target"] or "").strip(), "name": f"row {i + 2} ({r['edit']})"}
            for i, r in enumerate(rows)]


def _inputs(node) -> dict:
    inputs = node.get("inputs") if isinstance(node, dict) else None
    return inputs if isinstance(inputs, dict) else {}


def _linked(prompt: dict, value) -> dict:
    return prompt.get(str(value[0]), {}) if isinstance(value, list) and value else {}


def _target(prompt: dict, node: dict) -> str | None:
    values = _inputs(node)
    if node.get("class_type") == "EmoNodes_IEILoop" and values.get("rule") == "valence-arousal":
        try:
            return va_target_class(float(values["valence"]), float(values["arousal"]))
        except (KeyError, TypeError, ValueError):
            return None
    target = values.get("target")
    if node.get("class_type") == "EmoNodes_EmotionEdit" and "direction" in values:
        target = _inputs(_linked(prompt, values["direction"])).get("target", target)
    return target if isinstance(target, str) else None


def workflow_pair(path: Path, prompt: dict) -> tuple[str, str | None] | None:
    """(source image name, target) when ``path`` is an edit saved by this workflow, None when it is another output
    (a chart, a trace plot)."""
    for save in prompt.values():
        if not isinstance(save, dict) or save.get("class_type") != "SaveImage":
            continue
        link = _inputs(save).get("images")
        editor = _linked(prompt, link)
        prefix = _inputs(save).get("filename_prefix")
        if editor.get("class_type") not in EDITORS or len(link) < 2 or link[1] not in EDITORS[editor["class_type"]]:
            continue
        base = PurePosixPath(str(prefix).replace("\\", "/")).name
        if not re.fullmatch(rf"{re.escape(base)}_\d+_\.png", path.name):
            continue
        load = _linked(prompt, _inputs(editor).get("source"))
        image = _inputs(load).get("image") if load.get("class_type") == "LoadImage" else None
        if not isinstance(image, str):
            raise PairProblem(f"{path.name!r}: its workflow's source is not a Load Image node with a file name")
        return re.sub(r" \[(input|output|temp)\]$", "", image), _target(prompt, editor)
    return None


def source_folders(folder: Path, sources: str | None) -> list[Path]:
    if sources:
        return [Path(sources)]
    return [folder] + [p / "input" for p in list(folder.resolve().parents)[:3]]


def pairs_from_pngs(folder: Path, sources: str | None, refused: list) -> tuple[list[dict], int]:
    """The edits among the folder's PNGs (see the module doc) and how many other files were skipped."""
    files, others = regular_files(folder)
    refused += [{"pair": path.name, "reason": reason} for path, reason in others]
    pairs, skipped = [], 0
    for path in files:
        try:
            text = embedded_prompt(path)
            found = workflow_pair(path, parse_workflow(text)) if text is not None else None
        except (ImageProblem, PairProblem) as exc:
            refused.append({"pair": path.name, "reason": str(exc)})
            continue
        if found is None:
            skipped += 1
            continue
        name, target = found
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if not parts or name.startswith(("/", "\\")) or ".." in parts:
            refused.append({"pair": path.name, "reason": f"its source name {name!r} is not a plain file name"})
            continue
        where = next((d / Path(*parts) for d in source_folders(folder, sources) if (d / Path(*parts)).is_file()),
                     None)
        if where is None:
            refused.append({"pair": path.name, "reason": f"its source {name!r} (the workflow's Load Image) is not "
                                                         f"in {', '.join(map(str, source_folders(folder, sources)))}"
                                                         "; pass --sources DIR (ComfyUI's input folder)"})
            continue
        pairs.append({"source": where, "edit": path, "target": target or "", "name": path.name})
    return pairs, skipped


# --- scoring ---------------------------------------------------------------------------------------------------


def read_picture(path: Path, role: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(published 224-px uint8 picture, the full-size RGB uint8 picture, (width, height))."""
    try:
        with open_image(path) as image:
            image.load()
            small = np.array(image.resize((224, 224)).convert("RGB"), dtype=np.uint8)
            return small, np.array(image.convert("RGB"), dtype=np.uint8), image.size
    except ImageProblem as exc:
        raise PairProblem(f"its {role} {path.name!r}: {exc}") from None


def score_pair(predictor, pair: dict, cache: dict) -> tuple[dict, dict, np.ndarray]:
    if pair["target"] not in EMOTIONS:
        raise PairProblem(f"target {pair['target']!r} is not one of EmoEditor's classes ({', '.join(EMOTIONS)})")
    if not Path(pair["source"]).is_file():
        raise PairProblem(f"its source {str(pair['source'])!r} is missing")
    key = str(pair["source"])
    if key not in cache:
        cache.clear()  # pairs of one source come together in folder order; keep one
        cache[key] = read_picture(Path(pair["source"]), "source")
    source, _, source_size = cache[key]
    edit, edit_full, edit_size = read_picture(Path(pair["edit"]), "edit")
    details = score_pictures(predictor, [source], [edit], pair["target"])
    if source_size != edit_size:
        details.notes = [[f"edit {edit_size[0]}x{edit_size[1]} and source {source_size[0]}x{source_size[1]} "
                          "differ in size: both resized to 224x224 (Pillow bicubic), as published"]]
    entry = esmi_report(details)["pairs"][0]
    entry.update(pair=pair["name"], source=str(pair["source"]), edit=str(pair["edit"]))
    return entry, {"details": details}, edit_full


def summary_picture(entries: list[dict], drawn: list, table: str) -> Image.Image:
    pictures = [esmi_picture(d.sources_224[0], d.edits_224[0], d.masks[0].numpy(), d.source_distribution[0],
                             d.edit_distribution[0], d.targets[0], d.scores[0].tolist(), e["pair"])
                for e, d in zip(entries[:PICTURES], drawn, strict=False)]
    lines = table.splitlines() + ([f"pairs 1-{len(pictures)} of {len(entries)} below"] if pictures else [])
    width = max([p.width for p in pictures] + [600])
    header = 2 * MARGIN + LINE * len(lines)
    picture, draw = canvas(width, header + sum(p.height for p in pictures))
    for i, line in enumerate(lines):
        draw.text((MARGIN, MARGIN + i * LINE), line, fill=INK, font=font(TEXT))
    y = header
    for p in pictures:
        picture.paste(p, (0, y))
        y += p.height
    return picture


def format_table(summary: dict, accuracy: float, count: int, label: str) -> str:
    x100 = summary["x100"]
    cells = " | ".join(f"{x100[k]['mean']:.2f} ± {x100[k]['std']:.2f}" for k in ("esmi", "s_str", "s_emo"))
    return (f"| {label} | pairs | ESMI×100 | S_str×100 | S_emo×100 | Emo-A |\n|---|---|---|---|---|---|\n"
            f"| | {count} | {cells} | {100 * accuracy:.2f} % |")


def evaluate_edits(pairs: list[dict], predictor, refused: list, progress: bool = True) -> tuple[dict, Image.Image]:
    entries, drawn, edits, targets, cache = [], [], [], [], {}
    for k, pair in enumerate(pairs):
        if progress and len(pairs) >= 5:
            print(f"\rscoring pair {k + 1} of {len(pairs)}", end="", file=sys.stderr, flush=True)
        try:
            entry, extra, edit_full = score_pair(predictor, pair, cache)
        except PairProblem as exc:
            refused.append({"pair": pair["name"], "reason": str(exc)})
            continue
        entries.append(entry)
        if len(drawn) < PICTURES:
            drawn.append(extra["details"])
        edits.append(torch.from_numpy(edit_full).float().div(255)[None])
        targets.append(entry["target"])
    if progress and len(pairs) >= 5:
        print(file=sys.stderr)
    if not entries:
        raise ValueError(f"no pair could be scored ({len(refused)} refused)")
    accuracy = emotion_accuracy(predictor, edits, targets)
    summary = {k: mean_std([e[k] for e in entries]) for k in ("esmi", "s_str", "s_emo")}
    summary["x100"] = {k: {s: 100 * v for s, v in stats.items()} for k, stats in summary.items()}
    summary["emo_a"] = accuracy["accuracy"]
    for entry, top in zip(entries, accuracy["top"], strict=True):
        entry["edit_top_class"] = top
    report = {"metric": "ESMI = 0.5 S_str + 0.5 S_emo (EmoEditor metric_ESMI.py, x100 in the paper); Emo-A = "
                        "share of edits whose top class is the target", "pairs": entries, "summary": summary,
              "refused": refused}
    table = format_table(summary, accuracy["accuracy"], len(entries), "edits")
    return report, summary_picture(entries, drawn, table)


# --- command line ----------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emo_core evaluate-edits", description=__doc__.splitlines()[0])
    p.add_argument("folder", help="folder of saved IEI / edit PNGs, a folder with pairs.csv, or a pairs CSV")
    p.add_argument("--predictor", required=True, help="EmoEditor's emo_predictor.pt (or its .safetensors)")
    p.add_argument("--sources", help="where the workflows' source images are (ComfyUI's input folder)")
    p.add_argument("--device", default="cpu", help="torch device for the predictor (default cpu)")
    p.add_argument("--name", default=RESULTS, help=f"results file name without extension (default {RESULTS})")
    p.add_argument("--overwrite", action="store_true", help="replace existing results of the same name")
    return p


def find_pairs(target: Path, sources: str | None, refused: list) -> tuple[list[dict], Path, int]:
    if target.is_file() and target.suffix.lower() == ".csv":
        return pairs_from_csv(target), target.parent, 0
    if not target.is_dir():
        raise ValueError(f"{target}: not a folder or a .csv file")
    if (target / PAIRS_CSV).is_file():
        return pairs_from_csv(target / PAIRS_CSV), target, 0
    pairs, skipped = pairs_from_pngs(target, sources, refused)
    return pairs, target, skipped


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    problem = results_name_problem(args.name, "--name") or device_problem(args.device)
    if problem:
        print(f"error: {shown(problem)}", file=sys.stderr)
        return 2
    refused: list[dict] = []
    try:
        pairs, out, skipped = find_pairs(Path(args.folder), args.sources, refused)
        outputs = [out / f"{args.name}.json", out / f"{args.name}.png"]
        taken = [str(p) for p in outputs if p.exists()]
        if taken and not args.overwrite:
            raise FileExistsError(f"{', '.join(taken)} already exist(s); pass --overwrite to replace, or --name")
        predictor = load_emo_predictor(args.predictor, device=args.device)
        report, picture = evaluate_edits(pairs, predictor, refused)
    except (OSError, ValueError) as exc:
        for entry in refused:
            print(f"warning: {shown(entry['pair'])}: {shown(entry['reason'])}", file=sys.stderr)
        print(f"error: {shown(exc)}", file=sys.stderr)
        return 2
    for entry in refused:
        print(f"warning: skipped {shown(entry['pair'])}: {shown(entry['reason'])}", file=sys.stderr)
    for entry in report["pairs"]:
        for note in entry["notes"]:
            print(f"note: {shown(entry['pair'])}: {note}", file=sys.stderr)
    report.update(folder=str(out), skipped_files=skipped)
    data = io.BytesIO()
    picture.save(data, format="PNG")
    atomic_write_text(outputs[0], json.dumps(report, indent=1) + "\n")
    atomic_write(outputs[1], lambda tmp: tmp.write_bytes(data.getvalue()))
    print(format_table(report["summary"], report["summary"]["emo_a"], len(report["pairs"]), shown(out)))
    print(f"left out: {len(refused)} pair(s); skipped {skipped} other file(s)")
    print("wrote " + " and ".join(shown(p) for p in outputs))
    return 0
