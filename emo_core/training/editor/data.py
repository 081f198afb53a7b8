"""EmoEditor's training pairs (the published EmoPair JSON): streamed reading, record-numbered validation, images.

The JSON is a list of records ``{img_src_path, img_tgt_path, class_source, class_target, prompt, source_softmax}``;
paths are relative to a dataset root (the published ``EmoPair/`` folder), classes are names of the eight alphabetical
classes, ``source_softmax`` is the predictor's 8-way softmax on the source. A bad record is reported as
``record N: why`` (N counts from 1 in file order). ``on_error="stop"`` refuses the file at the first bad record;
``"skip"`` drops bad records and lists them in ``EditorPairSet.skipped``.

The file is parsed record by record (memory holds the pairs, never the parsed JSON tree), and each image is touched
once: opened without following a final symlink and its header identified by Pillow (``check_images="open"``), or
only ``lstat``-ed (``"exists"``). Folders are resolved once each (symlinks included), so no path leaves the root.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import math
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...emoeditor.emotions import EMOTIONS, NUM_EMOTIONS, one_hot
from ..errors import MAX_LISTED, ON_ERROR, DatasetError
from ..naming import open_regular, regular_file, resolved
from .json_stream import json_array_items

FIELDS = ("img_src_path", "img_tgt_path", "class_source", "class_target", "prompt", "source_softmax")
SOFTMAX_TOLERANCE = 1e-3  # |sum(source_softmax) - 1|; float32 softmaxes written as text sum to 1 within ~1e-6
CHECK_IMAGES = ("open", "exists")
PROGRESS_EVERY = 1000  # records between progress calls
# Pillow's BILINEAR (antialiased): what torchvision's Resize((224, 224)) does to a PIL image in the published
# [EE test.py], i.e. the predictor's own preprocessing, so a computed source_softmax matches the published pipeline. The
# released [EE data.py]'s 224x224 squash is taken to be the same transform [inferred: the spec records only "squash"].
RESAMPLE = Image.BILINEAR
_CONTROL = re.compile(r"[\x00-\x1f]")


class EditorPairsError(DatasetError):
    """An EmoPair file or pairs folder that cannot be used as asked; ``problems`` holds "record N: why" strings."""


class Unusable(str):
    """A record already known to be bad (the reason), as a reader hands it to ``collect``."""


@dataclass(frozen=True, eq=False)  # eq=False: compared by identity (a tensor field has no single truth value)
class EditorPair:
    source: Path  # absolute, resolved, inside the dataset root
    target: Path
    class_source: int  # index into EMOTIONS (alphabetical)
    class_target: int
    prompt: str  # the edit instruction
    source_softmax: torch.Tensor | None  # (8,) float32; None until computed (fill_source_softmax)
    record: int  # 1-based record number in the JSON (line number for a pairs-folder CSV)

    def direction(self) -> torch.Tensor:
        """(8,) float32 one_hot(class_target) - source_softmax, the encoder's input ([EE data.py])."""
        if self.source_softmax is None:
            raise ValueError(f"record {self.record}: source_softmax is not computed yet (fill_source_softmax)")
        return one_hot(self.class_target) - self.source_softmax


@dataclass
class EditorPairSet:
    pairs: list[EditorPair]
    root: Path
    source_file: Path | None
    skipped: list[str] = field(default_factory=list)  # "record N: why"

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self):
        return iter(self.pairs)

    def fingerprint(self) -> str:
        """sha256 of every record's content and of each image's current size and mtime (one stat per image):
        changes when a record, a class, a prompt, a softmax value or an image file changes."""
        digest = hashlib.sha256(f"emo-edit-pairs-v1:{len(self.pairs)}\n".encode())
        skip = len(str(self.root).rstrip(os.sep)) + 1  # paths are hashed relative to the root: a moved set keeps it
        for pair in self.pairs:
            for path in (pair.source, pair.target):
                text = os.fspath(path)
                info = os.stat(text)
                digest.update(f"{text[skip:]}\0{info.st_size}\0{info.st_mtime_ns}\0".encode("utf-8", "surrogatepass"))
            digest.update(f"{pair.class_source},{pair.class_target}\0{pair.prompt}\0".encode("utf-8", "surrogatepass"))
            digest.update(b"-" if pair.source_softmax is None else pair.source_softmax.numpy().tobytes())
        return digest.hexdigest()

    def histogram(self) -> dict[str, int]:
        """{class name: number of pairs with that target class}, in class order."""
        counts = np.bincount(np.array([p.class_target for p in self.pairs], dtype=np.int64), minlength=NUM_EMOTIONS)
        return {name: int(n) for name, n in zip(EMOTIONS, counts, strict=True)}


# --- record validation ---------------------------------------------------------------------------------------------


class _Root:
    """The dataset root and the resolved folders under it (each resolved once), for checking image paths."""

    def __init__(self, root: str | os.PathLike, check_images: str):
        if check_images not in CHECK_IMAGES:
            raise ValueError(f"check_images must be one of {CHECK_IMAGES}, got {check_images!r}")
        self.path = resolved(root)
        if not self.path.is_dir():
            raise EditorPairsError(f"dataset root {root} is not a folder")
        self.text, self.check = str(self.path), check_images
        self.prefix = self.text.rstrip(os.sep) + os.sep
        self.folders: dict[str, Path | None] = {}  # normalised folder -> resolved folder (None: outside the root)

    def _inside(self, real: str) -> bool:
        return real.startswith(self.prefix) or real == self.text

    def image(self, key: str, rel) -> tuple[Path | None, str]:
        """(resolved path, "") or (None, why) for the image path ``rel`` of a record."""
        if not isinstance(rel, str) or not rel.strip():
            return None, f"{key} must be a non-empty path text, got {rel!r}"
        if _CONTROL.search(rel):
            return None, f"{key} {rel!r} contains control characters"
        if os.path.isabs(rel) or os.path.splitdrive(rel)[0]:
            return None, f"{key} {rel!r} must be relative to the dataset root"
        joined = os.path.normpath(os.path.join(self.text, rel))
        folder, name = os.path.split(joined)
        if not self._inside(folder):
            return None, f"{key} {rel!r} leads outside the dataset root"
        if folder not in self.folders:
            real = os.path.realpath(folder)
            self.folders[folder] = Path(real) if self._inside(real) else None
        real_folder = self.folders[folder]
        if real_folder is None:
            return None, f"{key} {rel!r} leads outside the dataset root (through a symlinked folder)"
        path = os.path.join(real_folder, name)
        problem = self._open(path) if self.check == "open" else self._exists(path)
        if problem == "symlink":  # rare: resolve the link itself, then check the file it names
            path = os.path.realpath(path)
            if not self._inside(path):
                return None, f"{key} {rel!r} is a symlink leading outside the dataset root"
            problem = self._open(path) if self.check == "open" else self._exists(path)
            real_folder, name = Path(path).parent, Path(path).name
        return (real_folder / name, "") if not problem else (None, f"{key} {rel!r}: {problem}")

    @staticmethod
    def _exists(path: str) -> str:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return "file not found"
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        if stat.S_ISLNK(info.st_mode):
            return "symlink"
        return "" if stat.S_ISREG(info.st_mode) else "not a regular file"

    @staticmethod
    def _open(path: str) -> str:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return "file not found"
        except OSError as exc:
            if os.path.islink(path):
                return "symlink"
            return f"cannot be read ({exc.strerror or exc})"
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return "not a regular file"
        with os.fdopen(fd, "rb") as handle:
            try:
                with Image.open(handle):
                    return ""
            except Exception as exc:  # Pillow raises many kinds for a damaged or foreign file
                return f"not an image Pillow can read ({type(exc).__name__}: {str(exc)[:120]})"


def softmax_problem(value) -> str:
    """Why ``value`` is not 8 finite numbers >= 0 summing to 1 (within SOFTMAX_TOLERANCE), or ""."""
    if not isinstance(value, list | tuple) or len(value) != NUM_EMOTIONS:
        shown = f"{len(value)} values" if isinstance(value, list | tuple) else f"{type(value).__name__}"
        return f"source_softmax must be a list of 8 numbers (alphabetical class order), got {shown}"
    if any(type(v) not in (int, float) for v in value):  # (bool is not a number here)
        return "source_softmax holds a value that is not a number"
    if not all(map(math.isfinite, value)):
        return "source_softmax holds NaN or infinity"
    if min(value) < 0:
        return f"source_softmax holds a negative value ({min(value):g})"
    total = math.fsum(value)
    if abs(total - 1.0) > SOFTMAX_TOLERANCE:
        return f"source_softmax sums to {total:.6g}, expected 1 (within {SOFTMAX_TOLERANCE:g})"
    return ""


def _class(key: str, value) -> tuple[int | None, str]:
    name = value.strip().lower() if isinstance(value, str) else None
    if name in EMOTIONS:
        return EMOTIONS.index(name), ""
    return None, f"{key} {value!r} is not one of {', '.join(EMOTIONS)}"


def make_pair(record, number: int, root: _Root, need_softmax: bool) -> tuple[EditorPair | None, str]:
    """Validate one parsed record: (pair, "") or (None, why)."""
    if not isinstance(record, dict):
        return None, f"expected an object with {', '.join(FIELDS)}, got {type(record).__name__}"
    required = FIELDS if need_softmax else FIELDS[:-1]
    missing = [key for key in required if key not in record or (key == "source_softmax" and record[key] is None)]
    if missing:
        hint = " (or let a predictor compute it)" if missing == ["source_softmax"] else ""
        return None, f"missing field(s) {', '.join(missing)}{hint}"
    classes = []
    for key in ("class_source", "class_target"):
        index, why = _class(key, record[key])
        if why:
            return None, why
        classes.append(index)
    prompt = record["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        return None, f"prompt must be a non-empty text, got {prompt!r}"
    softmax = record.get("source_softmax")
    if softmax is not None:
        why = softmax_problem(softmax)
        if why:
            return None, why
        softmax = torch.tensor(softmax, dtype=torch.float32)
    paths = []
    for key in ("img_src_path", "img_tgt_path"):
        path, why = root.image(key, record[key])
        if why:
            return None, why
        paths.append(path)
    return EditorPair(paths[0], paths[1], classes[0], classes[1], prompt, softmax, number), ""


# --- reading ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _gc_paused():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def collect(records, root: _Root, need_softmax: bool, on_error: str, source: str, label: str = "record",
            tick: Callable[[], None] | None = None) -> tuple[list[EditorPair], list[str]]:
    """Validate (number, record) items: stop raises at the first bad one, skip lists them. ``tick()`` is called
    every PROGRESS_EVERY records (progress, and a chance to cancel by raising)."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    pairs, skipped = [], []
    for number, record in records:
        if tick is not None and number % PROGRESS_EVERY == 0:
            tick()
        try:
            pair, why = (None, str(record)) if isinstance(record, Unusable) else make_pair(record, number, root,
                                                                                           need_softmax)
        except RecursionError:  # a value nested too deeply to show or compare
            pair, why = None, "a value is nested too deeply (lists or objects inside each other)"
        if why:
            problem = f"{label} {number}: {why}"
            if on_error == "stop":
                raise EditorPairsError(f"{source}: {problem}. Fix it, or use on_error='skip' to train on the good "
                                       f"{label}s only.", [problem])
            skipped.append(problem)
        else:
            pairs.append(pair)
    if not pairs:
        listed = "; ".join(skipped[:MAX_LISTED]) + (f"; ... ({len(skipped) - MAX_LISTED} more)"
                                                   if len(skipped) > MAX_LISTED else "")
        raise EditorPairsError(f"{source}: no usable {label}s" + (f" ({len(skipped)} bad: {listed})" if skipped
                                                                  else " (none given)"), skipped)
    return pairs, skipped


def read_editor_pairs(json_path: str | os.PathLike, root: str | os.PathLike, on_error: str = "stop",
                      need_softmax: bool = True, check_images: str = "open",
                      on_progress: Callable[[int, int], None] | None = None,
                      roots: Sequence[str | os.PathLike] | None = None) -> EditorPairSet:
    """Read and validate an EmoPair JSON whose image paths are relative to ``root``.

    ``need_softmax=False`` accepts records without ``source_softmax`` (their pairs hold None; fill them with
    ``fill_source_softmax``). ``check_images``: "open" identifies each image's header with Pillow (catches missing,
    unreadable and non-image files); "exists" only checks that each is a regular file (faster on huge sets).
    ``on_progress(bytes read, file size)`` is called every PROGRESS_EVERY records (it may raise to cancel).
    ``roots``: the folders the JSON may be read from (resolved, symlinks included; anything else is refused unread).
    Only a regular file is read (a FIFO or device is refused after an ``os.stat``, never opened)."""
    json_path = Path(json_path)
    root_check = _Root(root, check_images)
    real = regular_file(json_path, "EmoPair JSON", roots, EditorPairsError)
    with open_regular(real, "EmoPair JSON", EditorPairsError, encoding="utf-8-sig") as handle:
        try:
            records = enumerate(json_array_items(handle, str(json_path), EditorPairsError), 1)
            size = os.fstat(handle.fileno()).st_size
            tick = None if on_progress is None else lambda: on_progress(min(handle.buffer.tell(), size), size)
            with _gc_paused():  # hundreds of thousands of new objects: no cyclic-GC passes over them meanwhile
                pairs, skipped = collect(records, root_check, need_softmax, on_error, str(json_path), tick=tick)
        except UnicodeDecodeError:
            raise EditorPairsError(f"{json_path}: not an EmoPair JSON (not UTF-8 text)") from None
    return EditorPairSet(pairs, root_check.path, resolved(json_path), skipped)


# --- images and the predictor ------------------------------------------------------------------------------------


def load_images(paths: Sequence[Path], size: int = 224) -> torch.Tensor:
    """(B, 3, size, size) float32 in [0, 1]: RGB, squashed to size x size with RESAMPLE (aspect not kept, as
    published), no EXIF rotation (the published loader applies none). An unreadable file is named in the error."""
    out = torch.empty(len(paths), 3, size, size)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                if image.size != (size, size):
                    image = image.resize((size, size), RESAMPLE)
                array = np.array(image, dtype=np.uint8)
        except Exception as exc:
            raise EditorPairsError(f"{path}: cannot read the image ({type(exc).__name__}: {str(exc)[:200]})"
                                   ) from None
        out[i] = torch.from_numpy(array).permute(2, 0, 1).float().div_(255)
    return out


def fill_source_softmax(pair_set: EditorPairSet, predict: Callable[[torch.Tensor], torch.Tensor],
                        batch_size: int = 32, on_batch: Callable[[int, int], None] | None = None) -> EditorPairSet:
    """A copy of ``pair_set`` whose missing source_softmax are ``predict`` of the sources.

    ``predict`` takes (B, 3, 224, 224) float32 in [0, 1] (the predictor's published preprocessing: RGB, Pillow
    bilinear 224x224 squash, no normalisation) and returns (B, 8) softmax. Pairs that have one keep it.
    ``on_batch(done, total)`` is called after each batch (progress; it may raise to cancel)."""
    todo = [i for i, pair in enumerate(pair_set.pairs) if pair.source_softmax is None]
    pairs = list(pair_set.pairs)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        with torch.no_grad():
            probs = predict(load_images([pairs[i].source for i in batch], 224))
        probs = torch.as_tensor(probs).detach().float().cpu()
        if probs.shape != (len(batch), NUM_EMOTIONS):
            raise ValueError(f"the predictor returned shape {tuple(probs.shape)}, expected ({len(batch)}, 8)")
        for i, row in zip(batch, probs, strict=True):
            why = softmax_problem(row.tolist())
            if why:
                raise ValueError(f"record {pairs[i].record} ({pairs[i].source.name}): the predictor's {why}")
            pairs[i] = dataclasses.replace(pairs[i], source_softmax=row.clone())
        if on_batch is not None:
            on_batch(min(start + batch_size, len(todo)), len(todo))
    return dataclasses.replace(pair_set, pairs=pairs)
