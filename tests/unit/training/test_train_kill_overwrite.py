"""The CLI never loses an earlier model: an existing --out is refused, and a SIGKILLed --overwrite run leaves the
earlier model, state and feature cache byte for byte as they were; resuming it replaces them only at the end."""

import hashlib
import os
import signal
import subprocess

from paths import ROOT
from test_train_kill_resume import EPOCHS, assert_every_file_loads, cli, write_csv

from emo_core.emoticrafter.eit_io import load_eit
from emo_core.training.eit.task import load_state


def hashes(*folders) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for folder in folders for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_existing_output_is_refused_and_a_killed_overwrite_keeps_it(tmp_path):
    write_csv(tmp_path / "pairs.csv", 41)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "out"
    first = subprocess.run(cli(tmp_path) + ["--epochs", "1"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    before = hashes(out, tmp_path / "cache")
    model_before = hashes(out)

    again = subprocess.run(cli(tmp_path), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already exist" in again.stderr and "--overwrite" in again.stderr, again.stderr
    assert hashes(out, tmp_path / "cache") == before

    proc = subprocess.Popen(cli(tmp_path, "--overwrite", "--seed", "3"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line.rstrip())
            if line.startswith("epoch 2 step 3/"):
                proc.send_signal(signal.SIGKILL)  # mid-epoch, after the first epoch's pending checkpoint
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "\n".join(seen[-20:])
    after = hashes(out, tmp_path / "cache")
    assert {k: v for k, v in after.items() if k in before} == before, "the earlier model, state or cache changed"
    assert_every_file_loads(out)
    pending_state = out / "eit.safetensors.state.pt.pending"
    assert load_state(pending_state)["epoch"] == 1

    resumed = subprocess.run(cli(tmp_path, "--seed", "3", "--resume", str(pending_state)), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert not pending_state.exists() and not (out / "eit.safetensors.pending").exists()
    state = load_state(out / "eit.safetensors.state.pt")
    assert state["epoch"] == EPOCHS and state["train_config"]["seed"] == 3
    assert hashes(out)[str(out / "eit.safetensors")] != model_before[str(out / "eit.safetensors")]
    load_eit(out / "eit.safetensors")
