"""Hostile input to the trainer command lines: each bad option or input ends with one ``error: ...`` line naming it,
exit status 2, no traceback, nothing earlier overwritten, and the checks come before any expensive work."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from editor_pairs_synth import write_synthetic_pairs
from editor_train_tiny import build, save_folder
from paths import ROOT

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
FAST_S = 60  # a refusal before reading / encoding: interpreter + torch import only


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_errors")
    info = write_synthetic_pairs(tmp / "pairs", 8, 2, 64, seed=7)
    save_folder(build(), tmp / "ip2p")
    return tmp, info


def editor(tmp, info, out, *extra, root=None):
    return [sys.executable, "-m", "emo_core", "train-editor", "--pairs", str(info["train_json"]),
            "--val-pairs", str(info["val_json"]), "--root", str(root or info["root"]),
            "--pretrained", str(tmp / "ip2p"), "--out", str(out), "--size", "64", "--precision", "fp32",
            "--batch", "2", "--log-every", "1", "--threads", "1", *extra]


def eit(tmp, *extra):
    csv = tmp / "pairs.csv"
    if not csv.exists():
        rows = [f'{i},{(i % 7) / 2 - 1.5:.2f},{(i % 5) / 2 - 1:.2f},Object,test,"plain {i}","vivid {i}"'
                for i in range(12)]
        csv.write_text("Id,Arousal,Valence,Tag,Dataset,Neutral_Prompt,Emotional_Prompt\n" + "\n".join(rows) + "\n")
    return [sys.executable, "-m", "emo_core", "train-eit", "--csv", str(csv), "--cache", str(tmp / "cache"),
            "--synthetic", "--layers", "1", "--width", "32", "--heads", "2", "--batch", "4", "--epochs", "1",
            "--threads", "1", *extra]


def run(cmd, timeout=300):
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - start


def assert_one_line_error(done, *needles):
    text = done.stdout + done.stderr
    assert done.returncode == 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    lines = done.stderr.strip().splitlines()  # diffusers' loading warnings may come first
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


# --------------------------------------------------------------------------------------------- 1. --device
def test_bogus_device_is_refused_by_both_trainers(setup, tmp_path):
    tmp, info = setup
    done, seconds = run(editor(tmp, info, tmp_path / "e.safetensors", "--device", "bogus"))
    assert_one_line_error(done, "--device 'bogus'")
    assert "encoding" not in done.stdout and seconds < FAST_S
    done, seconds = run(eit(tmp_path, "--out", str(tmp_path / "eit.safetensors"), "--device", "bogus"))
    assert_one_line_error(done, "--device 'bogus'")
    assert not (tmp_path / "cache").exists() and seconds < FAST_S  # refused before building the feature cache
    assert not list(tmp_path.glob("*.safetensors*"))


# --------------------------------------------------------------------------------------------- 2. --size
@pytest.mark.parametrize("size", ["7", "100", "4096"])
def test_editor_size_is_validated_up_front(setup, tmp_path, size):
    tmp, info = setup
    cmd = editor(tmp, info, tmp_path / "e.safetensors")
    cmd[cmd.index("--size") + 1] = size
    done, seconds = run(cmd)
    assert_one_line_error(done, f"--size {size}", "multiple of 8", "64", "2048")
    assert "encoding" not in done.stdout and seconds < FAST_S


# --------------------------------------------------------------------------------------------- 3. --resume
def test_resume_of_a_non_state_file_names_it(setup, tmp_path):
    tmp, info = setup
    text = tmp_path / "notes.txt"
    text.write_text("this is not a training state\n" * 20)
    done, _ = run(editor(tmp, info, tmp_path / "e.safetensors", "--resume", str(text)))
    assert_one_line_error(done, str(text), "not a resume state")
    done, _ = run(eit(tmp_path, "--out", str(tmp_path / "eit.safetensors"), "--resume", str(text)))
    assert_one_line_error(done, str(text), "not a resume state")
    assert text.read_text() == "this is not a training state\n" * 20


def test_state_loader_refuses_other_files(tmp_path):
    import torch

    from emo_core.training.editor.task import load_state as editor_state
    from emo_core.training.eit.task import load_state as eit_state

    garbage = tmp_path / "garbage.pt"
    for content in (b"hello\n", b"PK\x03\x04 truncated zip", b"\x80\x02}q\x00.", b""):
        garbage.write_bytes(content)
        with pytest.raises(ValueError, match="not a resume state of this trainer"):
            editor_state(garbage)
    torch.save({"format": "emo-nodes.eit-train-state", "version": 1}, garbage)  # the other trainer's state
    with pytest.raises(ValueError, match="EmoEditor training state was expected"):
        editor_state(garbage)
    eit_state(garbage)  # the right trainer reads it


# --------------------------------------------------------------------------------------------- 4. truncated PNG
@pytest.fixture(scope="module")
def truncated_root(setup):
    tmp, info = setup
    root = tmp / "truncated"
    shutil.copytree(info["root"], root)
    victim = root / info["train_records"][2]["img_src_path"]  # record 3 of the training JSON
    data = victim.read_bytes()
    victim.write_bytes(data[:len(data) // 2])  # the header is intact: the readers' check passes, decoding fails
    return root, victim


def test_truncated_png_stops_naming_the_pair(setup, truncated_root, tmp_path):
    tmp, info = setup
    root, victim = truncated_root
    done, _ = run(editor(tmp, info, tmp_path / "e.safetensors", "--steps", "1", root=root))
    assert_one_line_error(done, "record 3", victim.name)
    assert not list(tmp_path.iterdir())


def test_truncated_png_is_skipped_and_reported(setup, truncated_root, tmp_path):
    tmp, info = setup
    root, victim = truncated_root
    out = tmp_path / "e.safetensors"
    done, _ = run(editor(tmp, info, out, "--steps", "1", "--checkpoint-every", "0", "--on-error", "skip",
                         root=root))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    skipped = [line for line in done.stdout.splitlines() if "record 3" in line]
    assert skipped and victim.name in skipped[0], done.stdout[-3000:]
    assert "left out 1 pair(s)" in done.stdout and "7 train / 2 validation pairs" in done.stdout, done.stdout
    assert out.exists()


# --------------------------------------------------------------------------------------------- 5. stopped early
def test_stop_before_the_first_validation_says_so(setup, tmp_path):
    tmp, info = setup
    proc = subprocess.Popen(editor(tmp, info, tmp_path / "e.safetensors", "--steps", "40", "--checkpoint-every",
                                   "0"), cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line.rstrip())
            if line.startswith("step 1/40"):  # 8 training pairs, batch 2: the first validation after step 4
                proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    text = "\n".join(seen)
    assert proc.returncode == 0, text[-3000:]
    final = [line for line in seen if line.startswith("stopped:")]
    assert final and "no validation ran" in final[0] and "nan" not in final[0], text[-3000:]


def test_val_summary_without_validation():
    from types import SimpleNamespace

    from emo_core.training.editor.cli import _val_summary

    stopped = SimpleNamespace(stopped=True, initial_val_loss=1.27, history=[])
    assert _val_summary(stopped) == "val mse 1.27 before training; no validation ran since (stopped before the first)"
    assert "no validation ran" in _val_summary(SimpleNamespace(stopped=True, initial_val_loss=float("nan"),
                                                               history=[]))
    done = SimpleNamespace(stopped=False, initial_val_loss=1.27, history=[{"val_loss": 0.5}])
    assert _val_summary(done) == "val mse 1.27 -> 0.5"


# --------------------------------------------------------------------------------------------- 6. existing outputs
@pytest.mark.parametrize("existing", ["out", "encoder", "state"])
def test_editor_refuses_existing_outputs_before_encoding(setup, tmp_path, existing):
    tmp, info = setup
    out = tmp_path / "e.safetensors"
    path = {"out": out, "encoder": tmp_path / "e.encoder.safetensors", "state": tmp_path / "e.safetensors.state.pt"
            }[existing]
    path.write_bytes(b"earlier run")
    done, seconds = run(editor(tmp, info, out, "--steps", "1"))
    assert_one_line_error(done, str(path), "--overwrite")
    assert "encoding" not in done.stdout and seconds < FAST_S, done.stdout
    assert path.read_bytes() == b"earlier run" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_eit_refuses_existing_out_before_building_the_cache(tmp_path):
    out = tmp_path / "eit.safetensors"
    out.write_bytes(b"earlier run")
    done, seconds = run(eit(tmp_path, "--out", str(out)))
    assert_one_line_error(done, str(out), "--overwrite")
    assert "synthetic features" not in done.stdout and not (tmp_path / "cache").exists() and seconds < FAST_S
    assert out.read_bytes() == b"earlier run"


def test_missing_resume_state_is_refused_up_front(setup, tmp_path):
    tmp, info = setup
    done, seconds = run(editor(tmp, info, tmp_path / "e.safetensors", "--resume", str(tmp_path / "none.state.pt")))
    assert_one_line_error(done, "nothing to resume", "none.state.pt")
    assert "encoding" not in done.stdout and seconds < FAST_S
