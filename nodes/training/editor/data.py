"""EmoEditor training pairs in ComfyUI: an EmoPair JSON (+ its image root) or a pairs folder -> EMO_EDIT_PAIRS.

Files are read only from ComfyUI's input folder or from folders the user added under the ``emoeditor_datasets`` key
of extra_model_paths.yaml (large datasets rarely live in the input folder). A connected predictor computes the
``source_softmax`` of records that have none, as the published data was made.
"""

import hashlib
import logging
import math
import os
from pathlib import Path

import comfy.model_management as mm
import comfy.utils
import folder_paths
from comfy_api.latest import io

from ....emo_core.training.editor.data import EditorPairSet, fill_source_softmax, read_editor_pairs
from ....emo_core.training.editor.folder import pairs_from_folder
from ....emo_core.training.eit.data import file_content_hash
from ....emo_core.training.naming import inside, resolved
from ...shared.editing import predict
from ...shared.sockets import CATEGORY, EMO_PREDICTOR
from ...shared.validation import first_error

log = logging.getLogger("emo-nodes")
EDIT_PAIRS = io.Custom("EMO_EDIT_PAIRS")  # emo_core.training.editor.data.EditorPairSet
DATASET_FOLDER = "emoeditor_datasets"  # extra_model_paths.yaml key: folders EmoEditor datasets may be read from
FOLDER_CSV = "pairs.csv"
MAX_LISTED = 50  # skipped records quoted in the summary


def register_dataset_folder() -> None:
    """Make the ``emoeditor_datasets`` key known to ComfyUI (keeping folders extra_model_paths.yaml added); no
    default folder is created: the input folder is always searched first."""
    folder_paths.folder_names_and_paths.setdefault(DATASET_FOLDER, ([], set()))


def dataset_folders() -> list[str]:
    return [folder_paths.get_input_directory(), *folder_paths.folder_names_and_paths.get(DATASET_FOLDER, ([],))[0]]


def dataset_path(what: str, name, want_dir: bool | None = None) -> Path:
    """The resolved file or folder ``name`` (relative to the input folder or an emoeditor_datasets folder, or
    absolute inside one of them). ``want_dir``: True a folder, False a file, None either. Anything outside those
    folders is refused without being looked at."""
    folders = dataset_folders()
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what}: the name is empty")
    if any(ord(c) < 32 for c in name):
        raise ValueError(f"{what}: the name contains control characters (NUL, newline, ...)")
    candidates = [name] if os.path.isabs(name) else [os.path.join(folder, name) for folder in folders]
    allowed = [candidate for candidate in candidates if inside(candidate, folders) is not None]
    listed = ", ".join(str(resolved(folder)) for folder in folders)
    if not allowed:
        raise ValueError(f"{what}: {name!r} is outside the folders datasets are read from ({listed}). Put it in "
                         f"ComfyUI's input folder, or add its folder to extra_model_paths.yaml as "
                         f"'{DATASET_FOLDER}: /path/to/folder'.")
    kind = "folder" if want_dir else "file" if want_dir is False else "EmoPair JSON or pairs folder"
    for candidate in allowed:
        real = resolved(candidate)
        if (real.is_dir() if want_dir else real.is_file() if want_dir is False else real.exists()):
            if want_dir is None and not real.is_dir() and not real.is_file():  # os.stat only: never opened
                raise ValueError(f"{what}: {name!r} is not a regular file or a folder (a FIFO or a device?); give "
                                 f"an {kind}")
            return real
    raise FileNotFoundError(f"{what}: {kind} {name!r} not found in {listed}")


def dataset_problem(dataset) -> str | None:
    """Queue-time check of 'dataset' (a linked value arrives as None and is checked when the node runs)."""
    if isinstance(dataset, str):
        try:
            dataset_path("dataset", dataset)
        except (ValueError, FileNotFoundError) as exc:
            return str(exc)
    return None


def folder_fingerprint(folder: Path) -> str:
    """The pairs CSV's content and every image's name, size and mtime: a hand-made folder changes in place. A CSV
    that resolves outside the dataset folders or is not a regular file is not read (execute reports it)."""
    csv_file = folder / FOLDER_CSV
    readable = inside(csv_file, dataset_folders()) is not None and csv_file.is_file()
    digest = hashlib.sha256(file_content_hash(resolved(csv_file)).encode() if readable else b"-")
    for sub in ("source", "target"):
        entries = sorted(os.scandir(folder / sub), key=lambda e: e.name) if (folder / sub).is_dir() else []
        for entry in entries:
            info = entry.stat()
            digest.update(f"{sub}/{entry.name}\0{info.st_size}\0{info.st_mtime_ns}\n".encode("utf-8", "replace"))
    return digest.hexdigest()


def summary(pair_set: EditorPairSet, name: str, computed: int) -> str:
    hist = ", ".join(f"{emotion} {count}" for emotion, count in pair_set.histogram().items())
    text = (f"{len(pair_set)} pairs from {name}, {len(pair_set.skipped)} skipped"
            + (f", source_softmax computed for {computed}" if computed else "") + f"\ntarget classes: {hist}")
    if pair_set.skipped:
        more = len(pair_set.skipped) - MAX_LISTED
        text += "\nskipped:\n" + "\n".join(pair_set.skipped[:MAX_LISTED]) + (f"\n... ({more} more)" if more > 0
                                                                             else "")
    return text


class EditorPairs(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_EditorPairs",
            display_name="EmoEditor Training Pairs",
            category=f"{CATEGORY}/training",
            description="Reads EmoEditor training pairs: the published EmoPair JSON (records img_src_path, "
                        "img_tgt_path, class_source, class_target, prompt, source_softmax; paths relative to "
                        "image_root) or a pairs folder (source/, target/, pairs.csv). Bad records are reported "
                        "with their number: the dataset is refused, or with 'skip_bad_records' they are dropped "
                        "and listed. A connected predictor computes missing source_softmax.",
            inputs=[
                io.String.Input("dataset", default="EmoPair/data_EmoPair.json",
                                tooltip="An EmoPair JSON, or a pairs folder (source/xxx.png, target/xxx.png, "
                                        "pairs.csv with name, class_source, class_target, prompt[, "
                                        "source_softmax]); relative to ComfyUI's input folder, or inside a folder "
                                        "added as 'emoeditor_datasets' in extra_model_paths.yaml."),
                io.String.Input("image_root", default="",
                                tooltip="The folder the JSON's image paths are relative to (the published "
                                        "'EmoPair/' folder), found like 'dataset'. Empty: the JSON's own folder. "
                                        "Not used for a pairs folder."),
                io.Boolean.Input("skip_bad_records", default=False,
                                 tooltip="Off (on_error 'stop'): refuse the dataset at its first bad record, "
                                         "naming it. On ('skip'): drop bad records and list them in the summary."),
                io.Boolean.Input("open_images", default=True,
                                 tooltip="On: identify every image with Pillow (finds unreadable files now). Off: "
                                         "only check that the files exist (faster for the 340k EmoPair)."),
                EMO_PREDICTOR.Input("predictor", optional=True,
                                    tooltip="EmoEditor's emotion predictor: computes source_softmax for records "
                                            "without one (the published preprocessing: 224x224 squash)."),
            ],
            outputs=[EDIT_PAIRS.Output(display_name="pairs"), io.String.Output(display_name="summary")],
        )

    @classmethod
    def validate_inputs(cls, dataset=None) -> bool | str:
        """Names only 'dataset', so a bad choice is reported once, on it (the host repeats a validate_inputs error
        on every input the function names); the BOOLEANs are checked by the queue-time hook, image_root when the
        node runs (before anything is read). Nothing outside the allowed folders is opened."""
        return first_error(dataset_problem(dataset))

    @classmethod
    def fingerprint_inputs(cls, dataset, image_root, skip_bad_records, open_images, predictor=None):
        """Re-read when the JSON's content or modification time (or a pairs folder's CSV or image files) changes.
        Images referenced by a JSON are not scanned here (340k files): after editing them in place, touch the JSON."""
        try:
            path = dataset_path("dataset", dataset)
            content = folder_fingerprint(path) if path.is_dir() else (file_content_hash(path), path.stat().st_mtime_ns)
        except (OSError, ValueError):
            return math.nan  # never equal: execute runs and reports the problem
        return content, image_root, skip_bad_records, open_images

    @classmethod
    def execute(cls, dataset, image_root, skip_bad_records, open_images, predictor=None) -> io.NodeOutput:
        path = dataset_path("dataset", dataset)
        on_error = "skip" if skip_bad_records else "stop"
        check_images = "open" if open_images else "exists"
        need_softmax = predictor is None  # without a predictor every record must bring its source_softmax
        if path.is_dir():
            pair_set = pairs_from_folder(path, FOLDER_CSV, on_error, need_softmax, check_images,
                                         roots=dataset_folders())
        else:
            root = dataset_path("image_root", image_root, want_dir=True) if image_root.strip() else path.parent
            bar = comfy.utils.ProgressBar(max(1, path.stat().st_size))

            def on_progress(done: int, total: int) -> None:
                mm.throw_exception_if_processing_interrupted()
                bar.update_absolute(done, total)

            pair_set = read_editor_pairs(path, root, on_error, need_softmax, check_images, on_progress,
                                         roots=dataset_folders())
        missing = sum(pair.source_softmax is None for pair in pair_set)
        if missing:
            bar = comfy.utils.ProgressBar(missing)

            def on_batch(done: int, total: int) -> None:
                mm.throw_exception_if_processing_interrupted()
                bar.update_absolute(done, total)

            pair_set = fill_source_softmax(
                pair_set, lambda pixels: predict(predictor, pixels.permute(0, 2, 3, 1)).distribution, on_batch=on_batch)
        text = summary(pair_set, dataset, missing)
        log.info("emo-nodes: %s", text.splitlines()[0])
        return io.NodeOutput(pair_set, text)


register_dataset_folder()  # on import, like the model folders: the key exists before any node runs
