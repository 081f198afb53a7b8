"""SIGKILL the CLI mid-epoch, then resume: at most one epoch lost, every file on disk loads, the run completes."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from paths import ROOT
from PIL import Image
from safetensors import safe_open

from emo_core.emoticrafter.eit_io import load_eit
from emo_core.training.eit.task import load_state

EPOCHS = 3


def write_csv(path: Path, rows: int) -> None:
    lines = ["Id,Arousal,Valence,Tag,Dataset,Neutral_Prompt,Emotional_Prompt"]
    lines += [f'{i},{((i * 37) % 61) / 10 - 3:.2f},{((i * 23) % 59) / 10 - 2.9:.2f},Object,test,'
              f'"a plain scene number {i}","an intense, emotional scene number {i}"' for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")


def cli(tmp: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "emo_core", "train-eit", "--csv", str(tmp / "pairs.csv"),
            "--cache", str(tmp / "cache"),
            "--out", str(tmp / "out" / "eit.safetensors"), "--synthetic", "--layers", "1", "--width", "32",
            "--heads", "2", "--batch", "4", "--epochs", str(EPOCHS), "--dropout", "0.1", "--log-every", "1",
            "--threads", "1", *extra]


def assert_every_file_loads(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_dir():
            continue
        assert not path.name.endswith(".tmp"), f"leftover temp file {path}"
        if path.name.endswith(".state.pt"):
            load_state(path)
        elif path.name == "eit.safetensors":
            load_eit(path)
        elif path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                [handle.get_tensor(key) for key in handle.keys()]  # noqa: SIM118
        elif path.suffix == ".json":
            json.loads(path.read_text())


def test_sigkill_mid_epoch_then_resume(tmp_path):
    write_csv(tmp_path / "pairs.csv", 41)  # 40 training rows: 10 steps per epoch
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cli(tmp_path), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen, completed = [], 0
    try:
        for line in proc.stdout:
            seen.append(line.rstrip())
            if line.startswith("epoch ") and "/" in line.split()[1]:
                completed = int(line.split()[1].split("/")[0])  # "epoch E/N: train ..." closes epoch E
            if line.startswith(f"epoch {completed + 1} step 3/") and completed >= 1:
                proc.send_signal(signal.SIGKILL)  # mid-epoch, after at least one epoch checkpoint
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "\n".join(seen[-20:])
    assert completed >= 1, "\n".join(seen[-20:])

    out = tmp_path / "out"
    assert_every_file_loads(tmp_path)
    state = load_state(out / "eit.safetensors.state.pt")
    assert state["epoch"] >= completed and state["epoch"] <= completed + 1  # lost at most the epoch in progress
    assert len(state["history"]) == state["epoch"]

    resumed = subprocess.run(cli(tmp_path, "--resume", str(out / "eit.safetensors.state.pt"), "--curve",
                                 str(out / "curve.png")), cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resumed at epoch {state['epoch'] + 1}" in resumed.stdout
    assert_every_file_loads(tmp_path)
    history = json.loads((out / "eit.safetensors.history.json").read_text())["history"]
    assert [record["epoch"] for record in history] == list(range(1, EPOCHS + 1))
    final = load_state(out / "eit.safetensors.state.pt")
    assert (final["epoch"], final["step"]) == (EPOCHS, 0) and final["global_step"] == EPOCHS * 10
    with safe_open(str(out / "eit.safetensors"), framework="pt") as handle:
        assert handle.metadata()["epochs_completed"] == str(EPOCHS)
    with Image.open(out / "curve.png") as picture:
        assert picture.size == (640, 360)
