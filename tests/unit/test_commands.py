"""``python -m emo_core``: one table lists every command, each documents itself, and a second Ctrl-C ends a run with
one line instead of a traceback."""

import os
import signal
import subprocess
import sys

import pytest
from paths import ROOT

from emo_core.commands import COMMANDS

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-W", "error", "-m", "emo_core", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_command():
    listing = run("--help")
    assert listing.returncode == 0, listing.stderr
    listed = [line.split()[0] for line in listing.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_documents_itself_without_warnings(command):
    helped = run(command, "--help")
    assert helped.returncode == 0 and not helped.stderr, helped.stderr
    assert f"python -m emo_core {command}" in helped.stdout


def test_an_unknown_command_is_one_line():
    wrong = run("trian-eit")
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: unknown command 'trian-eit'")
    assert "Traceback" not in wrong.stderr


def test_a_second_ctrl_c_gives_up_with_one_line(tmp_path):
    lines = ["Id,Arousal,Valence,Tag,Dataset,Neutral_Prompt,Emotional_Prompt"]
    lines += [f'{i},{i % 5 - 2},{i % 7 - 3},Object,test,"a plain scene {i}","an intense scene {i}"' for i in range(41)]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "emo_core", "train-eit", "--csv", str(tmp_path / "pairs.csv"), "--cache",
         str(tmp_path / "cache"), "--out", str(tmp_path / "eit.safetensors"), "--synthetic", "--layers", "1",
         "--width", "512", "--heads", "8", "--batch", "40", "--epochs", "100000", "--log-every", "1",
         "--threads", "1"],  # steps of a second or so: the second signal lands inside one
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("epoch 1 step 1/"):
                proc.send_signal(signal.SIGINT)
            if line.startswith("signal 2: stopping after this step"):
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    out = "".join(seen) + rest
    assert proc.returncode == 130, out
    assert "Traceback" not in out and out.strip().splitlines()[-1].startswith("signal 2 again: giving up now"), out
