"""Hostile dataset inputs for both trainers' readers: symlinked pairs CSVs leading outside the allowed folders, FIFOs
given as dataset files, deeply nested JSON, non-UTF-8 rows in a pairs folder, and bidi/format characters in names."""

import json
import os
import threading

import numpy as np
import pytest
from PIL import Image

from emo_core import pairs_from_folder, read_editor_pairs
from emo_core.training.editor.data import EditorPairsError
from emo_core.training.eit.data import file_content_hash, read_pairs
from emo_core.training.errors import DatasetError
from emo_core.training.naming import check_name, name_problem

SECRET = "TOPSECRET-7f3a"
SOFTMAX = [0.05, 0.05, 0.65, 0.05, 0.05, 0.05, 0.05, 0.05]
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")


def image(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def folder_with_images(folder):
    for name, seed in (("a.png", 1), ("b.png", 2), ("c.png", 3)):
        image(folder / "source" / name, seed)
        image(folder / "target" / name, seed + 10)
    return folder


def finishes(call, seconds=20.0):
    """The exception ``call`` raised (or None), failing the test if it is still running after ``seconds`` (a FIFO
    opened for reading blocks until a writer appears)."""
    outcome = {}

    def target():
        try:
            call()
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 (handed back to the test)
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the reader blocked (it opened the FIFO)"
    return outcome["error"]


# --- 2. a pairs.csv symlinked outside the allowed folders ------------------------------------------------------


def test_pairs_csv_symlinked_outside_is_refused_unread(tmp_path):
    secret = tmp_path / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text(f"name,class_source,class_target,prompt\n{SECRET},awe,sadness,x\n")
    folder = folder_with_images(tmp_path / "datasets" / "mine")
    (folder / "pairs.csv").symlink_to(secret)
    for roots in (None, [tmp_path / "datasets"]):
        with pytest.raises(EditorPairsError, match="outside the folders") as info:
            pairs_from_folder(folder, on_error="skip", roots=roots)
        assert SECRET not in str(info.value)
    # inside the allowed folders a symlinked CSV is fine
    inside = tmp_path / "datasets" / "shared.csv"
    inside.write_text("name,class_source,class_target,prompt\na.png,awe,sadness,make it sad\n")
    (folder / "pairs.csv").unlink()
    (folder / "pairs.csv").symlink_to(inside)
    assert len(pairs_from_folder(folder, roots=[tmp_path / "datasets"])) == 1


def test_emopair_json_symlinked_outside_the_roots_is_refused_unread(tmp_path):
    secret = tmp_path / "elsewhere" / "secret.json"
    secret.parent.mkdir()
    secret.write_text(f'["{SECRET}"]')
    data = tmp_path / "datasets"
    data.mkdir()
    (data / "pairs.json").symlink_to(secret)
    with pytest.raises(EditorPairsError, match="outside the folders") as info:
        read_editor_pairs(data / "pairs.json", data, on_error="skip", roots=[data])
    assert SECRET not in str(info.value)


# --- 3. FIFOs are refused without being opened ---------------------------------------------------------------


@needs_fifo
def test_fifo_as_eit_pairs_csv_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pairs.csv"
    os.mkfifo(fifo)
    for call in (lambda: read_pairs(fifo), lambda: file_content_hash(fifo)):
        error = finishes(call)
        assert isinstance(error, DatasetError) and "not a regular file" in str(error) and "FIFO" in str(error), error
        assert "pairs" in str(error)


@needs_fifo
def test_fifo_as_emopair_json_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pairs.json"
    os.mkfifo(fifo)
    error = finishes(lambda: read_editor_pairs(fifo, tmp_path, need_softmax=False))
    assert isinstance(error, EditorPairsError) and "EmoPair JSON" in str(error) and "not a regular file" in str(error)


@needs_fifo
def test_fifo_as_folder_pairs_csv_is_refused_without_blocking(tmp_path):
    folder = folder_with_images(tmp_path / "mine")
    os.mkfifo(folder / "pairs.csv")
    error = finishes(lambda: pairs_from_folder(folder))
    assert isinstance(error, EditorPairsError) and "pairs.csv" in str(error) and "not a regular file" in str(error)


# --- 4. deeply nested JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize("on_error", ["stop", "skip"])
def test_deeply_nested_json_is_a_dataset_error_naming_the_record(tmp_path, on_error):
    image(tmp_path / "src" / "0.png")
    image(tmp_path / "tgt" / "0.png", 5)
    good = {"img_src_path": "src/0.png", "img_tgt_path": "tgt/0.png", "class_source": "awe",
            "class_target": "sadness", "prompt": "gloomy", "source_softmax": SOFTMAX}
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "deep.json"
    path.write_text("[" + json.dumps(good) + ',\n{"class_source": ' + deep + ', "prompt": "x"}]')
    with pytest.raises(EditorPairsError, match="record 2: nested too deeply") as info:
        read_editor_pairs(path, tmp_path, on_error=on_error)  # the record's end cannot be found: never skippable
    assert "\n" not in str(info.value) and "Recursion" not in str(info.value) and len(str(info.value)) < 400


# --- 5. a Latin-1 row in a pairs folder's CSV ---------------------------------------------------------------------


def latin1_folder(tmp_path):
    folder = folder_with_images(tmp_path / "mine")
    (folder / "pairs.csv").write_bytes(b"name,class_source,class_target,prompt\n"
                                       b"a.png,awe,sadness,make it sad\n"
                                       b"b.png,awe,sadness,caf\xe9 gloom\n"
                                       b"c.png,fear,amusement,make it fun\n")
    return folder


def test_latin1_row_is_skipped_with_its_line(tmp_path):
    pairs = pairs_from_folder(latin1_folder(tmp_path), on_error="skip")
    assert [p.record for p in pairs] == [2, 4]
    assert len(pairs.skipped) == 1 and pairs.skipped[0].startswith("line 3: ") and "UTF-8" in pairs.skipped[0]


def test_latin1_row_with_stop_names_the_line(tmp_path):
    with pytest.raises(EditorPairsError, match=r"line 3: not UTF-8 text"):
        pairs_from_folder(latin1_folder(tmp_path))


def test_latin1_header_refuses_the_file(tmp_path):
    folder = folder_with_images(tmp_path / "mine")
    (folder / "pairs.csv").write_bytes(b"name,class_source,class_target,prompt,caf\xe9\na.png,awe,sadness,x,y\n")
    with pytest.raises(EditorPairsError, match=r"line 1 is not UTF-8"):
        pairs_from_folder(folder, on_error="skip")


# --- 6. bidi, control and format characters in output names -------------------------------------------------


@pytest.mark.parametrize("char", ["\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)),
                                  *map(chr, range(0x2066, 0x206A)), "\u200b", "\ufeff", "\u00ad", "\x85", "\x9b"])
def test_names_refuse_bidi_control_and_format_characters(char):
    problem = name_problem(f"x{char}gnp")
    assert problem and f"U+{ord(char):04X}" in problem, problem
    with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
        check_name(f"x{char}gnp.safetensors")


@pytest.mark.parametrize("name", ["my_eit", "café", "日本語モデル", "émotion-v2", "a b"])
def test_ordinary_unicode_names_stay_valid(name):
    assert name_problem(name) is None
