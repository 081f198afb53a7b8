"""A user's own before/after pairs as an EmoEditor training set: a folder with ``source/``, ``target/`` and a CSV.

    my_pairs/
      source/room.png      target/room.png      (the same file name in both folders)
      pairs.csv            name,class_source,class_target,prompt[,source_softmax]

``name`` is the file name in both folders (without an extension, the first of IMAGE_SUFFIXES that exists is used).
``source_softmax`` is optional: 8 numbers separated by spaces, commas or semicolons (brackets allowed), alphabetical
class order; leave it out and let the predictor compute it (``fill_source_softmax``). Rows are validated exactly like
EmoPair JSON records and reported by their line in the CSV (the header is line 1); a row that is not UTF-8 text is a
bad row of its own (skipped with its line, or named when refusing). ``pairs.csv`` is resolved (symlinks included)
and read only when it lies inside the allowed roots and is a regular file (never a FIFO or device, which would
block); otherwise it is refused unread, so none of its content can appear in an error.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from ..naming import open_regular, regular_file, resolved
from .data import CHECK_IMAGES, EditorPairsError, EditorPairSet, Unusable, _Root, collect

COLUMNS = ("name", "class_source", "class_target", "prompt")
OPTIONAL_COLUMNS = ("source_softmax",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_CSV_BYTES = 64 << 20  # a pairs CSV of a hand-made folder; larger files are refused, not read into memory
_NUMBER_SEPARATORS = re.compile(r"[\s,;]+")
_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, kept by errors="surrogateescape"


def _softmax_cell(text: str):
    """None for an empty cell, else the list of numbers (validated later with the JSON rules) or the raw text."""
    text = text.strip().strip("[]()").strip()
    if not text:
        return None
    try:
        return [float(part) for part in _NUMBER_SEPARATORS.split(text) if part]
    except ValueError:
        return text  # reported as "not a list of 8 numbers"


def _image_name(folder: Path, name: str) -> str:
    """``name`` itself, or with the first suffix that exists in both source/ and target/ when it has none."""
    if Path(name).suffix or not name:
        return name
    for suffix in IMAGE_SUFFIXES:
        if (folder / "source" / f"{name}{suffix}").is_file() and (folder / "target" / f"{name}{suffix}").is_file():
            return name + suffix
    return name


def _rows(folder: Path, csv_path: Path, source: str):
    """(line, record dict) for every non-blank CSV row, in the JSON record layout."""
    with open_regular(csv_path, "pairs CSV", EditorPairsError, encoding="utf-8-sig", errors="surrogateescape",
                      newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = [cell.strip().lower() for cell in next(reader)]
            if any(_UNDECODED.search(cell) for cell in header):
                raise EditorPairsError(f"{source}: not a pairs CSV (line 1 is not UTF-8 text)")
        except StopIteration:
            raise EditorPairsError(f"{source}: empty file (expected a header {', '.join(COLUMNS)}"
                                   f"[, {OPTIONAL_COLUMNS[0]}])") from None
        except csv.Error as exc:
            raise EditorPairsError(f"{source}: line 1 is not a CSV header ({exc})") from None
        missing = [name for name in COLUMNS if name not in header]
        if missing:
            raise EditorPairsError(f"{source}: line 1: header lacks column(s) {', '.join(missing)}; expected "
                                   f"{', '.join(COLUMNS)} and optionally {OPTIONAL_COLUMNS[0]}")
        index = {name: header.index(name) for name in (*COLUMNS, *OPTIONAL_COLUMNS) if name in header}
        line = reader.line_num
        while True:
            start = line + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise EditorPairsError(f"{source}: line {start}: CSV syntax error ({exc})") from None
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if any(_UNDECODED.search(cell) for cell in row):
                yield start, Unusable("not UTF-8 text (save the CSV as UTF-8)")
                continue
            if len(row) != len(header):
                yield start, Unusable(f"{len(row)} fields, expected {len(header)} (an unquoted comma in a prompt?)")
                continue
            cell = {name: row[i] for name, i in index.items()}
            if not cell["name"].strip():
                yield start, Unusable("name is empty")
                continue
            name = _image_name(folder, cell["name"].strip())
            yield start, {"img_src_path": f"source/{name}", "img_tgt_path": f"target/{name}",
                          "class_source": cell["class_source"], "class_target": cell["class_target"],
                          "prompt": cell["prompt"].strip(), "source_softmax": _softmax_cell(cell.get(
                              "source_softmax", ""))}


def pairs_from_folder(folder: str | os.PathLike, csv_name: str = "pairs.csv", on_error: str = "stop",
                      need_softmax: bool = False, check_images: str = "open",
                      roots: list[str | os.PathLike] | None = None) -> EditorPairSet:
    """The pairs of ``folder`` (see the module docstring); its dataset root is ``folder``. Bad rows follow
    ``on_error`` as in read_editor_pairs; rows without source_softmax hold None unless ``need_softmax``.
    ``roots``: the folders the CSV may be read from once resolved (default: ``folder`` itself)."""
    if check_images not in CHECK_IMAGES:
        raise ValueError(f"check_images must be one of {CHECK_IMAGES}, got {check_images!r}")
    if not csv_name or Path(csv_name).name != csv_name:
        raise ValueError(f"csv_name must be a file name inside the folder, got {csv_name!r}")
    folder = resolved(folder)
    csv_path = folder / csv_name
    for needed in (folder / "source", folder / "target"):
        if not needed.is_dir():
            raise EditorPairsError(f"{folder}: not a pairs folder: '{needed.name}/' is missing (expected source/, "
                                   f"target/ and {csv_name})")
    if not os.path.lexists(csv_path):
        raise EditorPairsError(f"{folder}: not a pairs folder: {csv_name} is missing (columns "
                               f"{', '.join(COLUMNS)}[, {OPTIONAL_COLUMNS[0]}])")
    csv_path = regular_file(csv_path, f"pairs folder {folder}: {csv_name}", [folder] if roots is None else roots,
                            EditorPairsError)
    if csv_path.stat().st_size > MAX_CSV_BYTES:
        raise EditorPairsError(f"{csv_path}: larger than {MAX_CSV_BYTES >> 20} MiB; use an EmoPair JSON for big sets")
    with open_regular(csv_path, "pairs CSV", EditorPairsError) as handle:
        if b"\0" in handle.read(8192):
            raise EditorPairsError(f"{csv_path}: not a pairs CSV (binary content)")
    root = _Root(folder, check_images)
    try:
        pairs, skipped = collect(_rows(folder, csv_path, str(csv_path)), root, need_softmax, on_error,
                                 str(csv_path), label="line")
    except UnicodeDecodeError:
        raise EditorPairsError(f"{csv_path}: not a pairs CSV (not UTF-8 text)") from None
    return EditorPairSet(pairs, root.path, csv_path, skipped)
