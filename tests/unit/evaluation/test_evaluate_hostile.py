"""``python -m emo_core evaluate`` used the way a careless or hostile user would: hostile images and file names in
the folder are skipped with one line each and the run goes on; bad options are one-line errors (exit 2); a CLIP
given as a Hugging Face folder is read; a failing run never touches earlier results. Every case runs the real
command line in a fresh process, on tiny models built at test time (tests/support/tiny_critic.py)."""

import json
import os
import struct
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest
from paths import ROOT
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from test_metrics_cli import TOKENIZER, run_cli
from tiny_critic import random_head, save_clip, save_head, tiny_clip

from emo_core.critic.clip_b32 import clip_file, read_clip_b32
from emo_core.errors import CheckpointError
from emo_core.evaluation.files import ImageProblem, open_image
from emo_core.evaluation.folder import cell_file_name

GOOD = [(-1.5, 3.0, "people dancing"), (0.0, 0.0, "a storm over the sea")]
HOSTILE = {  # file name -> what the run must say about it
    "cell_00001_.png": "nested too deeply",
    "bomb.png": "decompression bomb",
    "V-A (1.5,1.5) | bomb.png": "decompression bomb",
    "V-A (1,1) | a\udcff.png": "not valid UTF-8",  # the byte 0xff, as Python shows an undecodable file name
    "V-A (1,1) | a\nb.png": "control characters",
    "V-A (0,0) | trailing.png\n": "control characters",
    "V-A (99999999999999999999,0) | far.png": "outside the protocol's range",
    "V-A (0,1e400) | x.png": None,  # not a cell name at all (no exponents): a plain other image
    "V-A (1.5,0) | fifo.png": "a FIFO",
    "fifo.png": "a FIFO",
    "V-A (0,1.5) | loop.png": "looping symlink",
}


@pytest.fixture(scope="module")
def critic_files(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile_critic")
    model = tiny_clip(seed=5)
    return {"clip": save_clip(model, base / "clip.safetensors"), "valence": save_head(random_head(21), base / "v.pth"),
            "arousal": save_head(random_head(22), base / "a.pth"), "model": model}


def write_good_cells(folder):
    generator = np.random.default_rng(1)
    for v, a, prompt in GOOD:
        Image.fromarray(generator.integers(0, 256, size=(64, 80, 3), dtype=np.uint8)).save(
            folder / cell_file_name(v, a, prompt))


def bomb_png(path, width=30000, height=30000):
    """A valid 1x1 PNG whose header declares ``width`` x ``height`` (Pillow's DecompressionBombError on open)."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def write_raw(folder, name: str, data: bytes):
    """Write a file whose name may hold any byte (os.fsencode keeps undecodable bytes as they were)."""
    with open(os.path.join(os.fsencode(folder), os.fsencode(name)), "wb") as handle:
        handle.write(data)


def assert_one_line_errors(run):
    assert "Traceback" not in run.stderr, run.stderr
    assert all(line.startswith(("error: ", "warning: ")) for line in run.stderr.splitlines()), run.stderr


@pytest.fixture(scope="module")
def hostile_run(critic_files, tmp_path_factory):
    """One run over a folder of two good cells and every hostile file of HOSTILE."""
    folder = tmp_path_factory.mktemp("hostile")
    write_good_cells(folder)
    info = PngInfo()
    info.add_text("prompt", "[" * 100_000)  # ComfyUI's workflow text, nested beyond Python's recursion limit
    Image.new("RGB", (8, 8)).save(folder / "cell_00001_.png", pnginfo=info)
    bomb_png(folder / "bomb.png")
    bomb_png(folder / "V-A (1.5,1.5) | bomb.png")
    png = (folder / cell_file_name(*GOOD[0])).read_bytes()
    for name in ("V-A (1,1) | a\udcff.png", "V-A (1,1) | a\nb.png", "V-A (0,0) | trailing.png\n",
                 "V-A (99999999999999999999,0) | far.png", "V-A (0,1e400) | x.png"):
        write_raw(folder, name, png)
    os.mkfifo(folder / "V-A (1.5,0) | fifo.png")
    os.mkfifo(folder / "fifo.png")
    os.symlink("V-A (0,1.5) | loop.png", folder / "V-A (0,1.5) | loop.png")  # a symlink to itself
    run = run_cli(critic_files, folder)
    report = json.loads((folder / "emotion_metrics.json").read_text()) if run.returncode == 0 else None
    return run, report


def refusal(report, name):
    found = [r["reason"] for r in report["refused"] if r["file"] == repr(name)]
    assert found, f"{name!r} not refused: {report['refused']}"
    return found[0]


def test_hostile_folder_runs_to_the_end(hostile_run):
    run, report = hostile_run
    assert run.returncode == 0, run.stderr
    assert_one_line_errors(run)
    assert report["summary"]["images"] == len(GOOD)  # only the good cells are averaged
    assert {r["file"] for r in report["images"]} == {cell_file_name(*cell) for cell in GOOD}
    assert len(report["refused"]) == sum(1 for why in HOSTILE.values() if why)
    assert report["skipped"] == ["V-A (0,1e400) | x.png"]
    assert "left out of the averages: 10 file(s)" in run.stdout


@pytest.mark.parametrize("name", [n for n, why in HOSTILE.items() if why])
def test_hostile_file_is_skipped_and_named(hostile_run, name):
    run, report = hostile_run
    assert run.returncode == 0, run.stderr
    assert HOSTILE[name] in refusal(report, name)
    assert f"warning: skipped {name!r}: " in run.stderr  # named with repr: one line whatever the name holds


def test_deeply_nested_workflow_message(hostile_run):
    run, report = hostile_run
    assert refusal(report, "cell_00001_.png") == "its embedded ComfyUI workflow is JSON nested too deeply to read"


def test_out_of_range_cell_is_not_averaged(hostile_run):
    run, report = hostile_run
    assert report["summary"]["v_mean"] <= 6 and report["summary"]["a_mean"] <= 6
    assert all(-3 <= c["valence"] <= 3 and -3 <= c["arousal"] <= 3 for c in report["cells"])
    assert "1e+20" in refusal(report, "V-A (99999999999999999999,0) | far.png")


def test_open_image_never_blocks_on_a_fifo(tmp_path):
    """A file swapped for a FIFO after the listing: opening is non-blocking and the FIFO is refused."""
    fifo = tmp_path / "cell.png"
    os.mkfifo(fifo)
    outcome = []

    def attempt():
        try:
            with open_image(fifo):
                outcome.append("opened")
        except ImageProblem as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(20)
    assert outcome == ["not a regular file (a FIFO)"]


def test_bad_device_is_one_line_error(critic_files, tmp_path):
    write_good_cells(tmp_path)
    run = run_cli(critic_files, tmp_path, "--device", "bogus")
    assert run.returncode == 2 and run.stderr.startswith("error: --device 'bogus': "), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    run = run_cli(critic_files, tmp_path, "--device", "meta")
    assert run.returncode == 2 and run.stderr.startswith("error: --device 'meta': "), run.stderr
    assert not list(tmp_path.glob("emotion_metrics*"))


@pytest.mark.parametrize("name", ["../escaped", "an absolute path", "a\nb"])
def test_results_name_must_be_a_plain_file_name(critic_files, tmp_path, name):
    folder = tmp_path / "images"
    folder.mkdir()
    if name == "an absolute path":
        name = str(tmp_path / "abs")
    write_good_cells(folder)
    run = run_cli(critic_files, folder, "--name", name)
    assert run.returncode == 2 and run.stderr.startswith("error: --name: "), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["images", *(cell_file_name(*c) for c in GOOD)])


def test_failing_run_keeps_earlier_results(critic_files, tmp_path):
    write_good_cells(tmp_path)
    assert run_cli(critic_files, tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in tmp_path.glob("emotion_metrics*")}
    assert sorted(before) == ["emotion_metrics.json", "emotion_metrics.png"]
    for v, a, prompt in GOOD:  # nothing left that can be scored: the run fails after the overwrite check
        (tmp_path / cell_file_name(v, a, prompt)).unlink()
    bomb_png(tmp_path / "V-A (0,0) | bomb.png")
    run = run_cli(critic_files, tmp_path, "--overwrite")
    assert run.returncode == 2 and "none of its 1 cell image(s) could be scored" in run.stderr, run.stderr
    assert "decompression bomb" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in tmp_path.glob("emotion_metrics*")} == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_clip_given_as_a_hugging_face_folder(critic_files, tmp_path):
    """--clip <folder> as downloaded (config.json + model.safetensors, or pytorch_model.bin); the tokenizer is found
    in the folder; a folder without weights is a one-line error naming it."""
    hf = tmp_path / "clip-vit-base-patch32"
    save_clip(critic_files["model"], hf / "model.safetensors")
    (hf / "config.json").write_text(json.dumps({"model_type": "clip"}))
    for name in ("vocab.json", "merges.txt"):
        (hf / name).write_bytes((TOKENIZER / name).read_bytes())
    images = tmp_path / "images"
    images.mkdir()
    write_good_cells(images)
    run = subprocess.run([sys.executable, "-m", "emo_core", "evaluate", str(images), "--clip", str(hf),
                          "--valence-head", str(critic_files["valence"]), "--arousal-head",
                          str(critic_files["arousal"])],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    report = json.loads((images / "emotion_metrics.json").read_text())
    assert report["critic"] == str(hf / "model.safetensors") and "clip_score_mean" in report["summary"]
    file_run = run_cli(critic_files, images, "--name", "file")
    assert file_run.returncode == 0, file_run.stderr
    reference = json.loads((images / "file.json").read_text())
    assert report["summary"] == reference["summary"]  # the same numbers as the file itself

    bin_only = tmp_path / "bin_only"
    save_clip(critic_files["model"], bin_only / "pytorch_model.bin")
    assert clip_file(bin_only) == bin_only / "pytorch_model.bin"
    assert read_clip_b32(bin_only).source == str(bin_only / "pytorch_model.bin")

    empty = tmp_path / "no_weights"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="a folder without a CLIP weights file: expected model.safetensors or "
                                              "pytorch_model.bin .*; it holds config.json"):
        read_clip_b32(empty)
    run = run_cli(dict(critic_files, clip=empty), images, "--name", "none")
    assert run.returncode == 2 and run.stderr.startswith(f"error: {empty}: a folder without a CLIP weights file")
    assert len(run.stderr.strip().splitlines()) == 1 and not (images / "none.json").exists()


def test_many_distinct_cells_do_not_ask_for_a_huge_heat_map(critic_files, tmp_path, capsys):
    """Names can make any number of distinct V-A cells (65 x 65 would be a 8320 x 4160 px map, 1000 x 1000 some
    24 GB): past 64 distinct values per axis the map is left out (said in it) and the JSON keeps every cell."""
    from test_metrics_cli import main_in_process

    for i in range(65):
        value = round(-3 + 6 * i / 64, 4)
        Image.new("RGB", (8, 8), (i * 3, 0, 0)).save(tmp_path / cell_file_name(value, value, "a dog"))
    code, out, err = main_in_process(capsys, critic_files, tmp_path, "--no-clip-score")
    assert code == 0, err
    report = json.loads((tmp_path / "emotion_metrics.json").read_text())
    assert len(report["cells"]) == 65 and report["summary"]["images"] == 65
    assert Image.open(tmp_path / "emotion_metrics.png").size[0] < 1000
