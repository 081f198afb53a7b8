"""torchrun with 2 CPU processes (gloo) trains the same model as one process on the same data.

Condition for equality (see emo_core/training/distributed.py): the same global --batch and dropout 0. The batch
here (7) does not divide evenly over 2 ranks and the last batch has a single row, so rank 1 runs the zero-weight
placeholder path.
Tolerances: losses relative 1e-5; parameters 2e-5 absolute, except the key half of every c_z bias, which cannot
change the output (softmax shift invariance): its gradient is rounding noise that Adam scales up to ~lr-sized
steps, so it is checked through the model's outputs instead (1e-4 absolute on a probe batch).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from paths import ROOT
from safetensors.torch import load_file

from emo_core.emoticrafter.eit import EITConfig
from emo_core.emoticrafter.eit_io import load_eit
from emo_core.training.eit.data import read_pairs
from emo_core.training.eit.features import SYNTHETIC_ENCODER_ID, find_cache
from emo_core.training.eit.task import TrainConfig, train_eit


def write_csv(path: Path, rows: int) -> None:
    lines = ["Id,Arousal,Valence,Tag,Dataset,Neutral_Prompt,Emotional_Prompt"]
    lines += [f'{i},{((i * 37) % 61) / 10 - 3:.2f},{((i * 23) % 59) / 10 - 2.9:.2f},Object,test,'
              f'"a quiet street {i}","a stormy, dramatic street {i}"' for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")


def test_two_process_ddp_equals_single_process(tmp_path):
    write_csv(tmp_path / "pairs.csv", 44)  # 1 validation row, 43 training rows: batches 7 x 6 + 1
    out = tmp_path / "ddp.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "emo_core", "train-eit", "--csv", str(tmp_path / "pairs.csv"), "--cache", str(tmp_path / "cache"),
           "--out", str(out), "--synthetic", "--layers", "1", "--width", "32", "--heads", "2", "--batch", "7",
           "--epochs", "2", "--dropout", "0", "--density", "published", "--log-every", "100"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.count("epoch 1/2:") == 1  # only rank 0 reports (and writes)

    pairs = read_pairs(tmp_path / "pairs.csv")
    cache = find_cache(tmp_path / "cache", pairs.content_hash, SYNTHETIC_ENCODER_ID)
    config = TrainConfig(batch_size=7, epochs=2, dropout=0.0, density="published")
    model_config = EITConfig(n_layer=1, n_embd=32, n_head=2, n_positions=1024)  # as the CLI builds it
    single = train_eit(cache, config, model_config=model_config, device="cpu", dataset_hash=pairs.content_hash)

    ddp_history = json.loads((tmp_path / "ddp.safetensors.history.json").read_text())["history"]
    assert len(ddp_history) == len(single.history) == 2
    for mine, theirs in zip(single.history, ddp_history, strict=True):
        for key in ("train_loss", "train_mse", "val_loss", "val_weighted"):
            assert abs(mine[key] - theirs[key]) <= 1e-5 * abs(mine[key]), (key, mine[key], theirs[key])

    ddp_weights = load_file(out)
    width = model_config.n_embd
    worst = 0.0
    for key, value in single.model.state_dict().items():
        diff = (value - ddp_weights[key]).abs()
        if key.endswith(".c_z.bias"):
            diff = diff[width:]  # the value half; the key half is checked through the outputs below
        worst = max(worst, diff.max().item())
    print(f"DDP vs single: max parameter difference {worst:.3g}")
    assert worst <= 2e-5

    ddp_model = load_eit(out)
    probe = cache.fetch(torch.arange(4))
    with torch.no_grad():
        a = single.model(probe.neutral.float(), valence=probe.valence, arousal=probe.arousal)
        b = ddp_model(probe.neutral.float(), valence=probe.valence, arousal=probe.arousal)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
