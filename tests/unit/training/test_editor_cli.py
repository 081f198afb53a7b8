"""``python -m emo_core train-editor`` on a tiny diffusers ip2p folder: SIGKILL mid-run + resume loses at most one
checkpoint interval and leaves no corrupt file; torchrun with 2 gloo processes equals one process."""

import os
import signal
import subprocess
import sys

import pytest
import torch
from editor_pairs_synth import write_synthetic_pairs
from editor_train_tiny import build, pair_features, save_folder
from paths import ROOT

from emo_core.emoeditor.encoder import EmotionEncoder
from emo_core.emoeditor.loaders import load_emo_encoder
from emo_core.training.editor.diffusers_backbone import DiffusersEditorBackbone, load_ip2p_folder
from emo_core.training.editor.task import EditorConfig, load_state, train_editor
from emo_core.weights import read_weights

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("editor_cli")
    info = write_synthetic_pairs(tmp / "pairs", 16, 3, 64, seed=5)
    save_folder(build(), tmp / "ip2p")
    return tmp, info


def cli(tmp, info, out, *extra):
    return [sys.executable, "-m", "emo_core", "train-editor", "--pairs", str(info["train_json"]),
            "--val-pairs", str(info["val_json"]), "--root", str(info["root"]), "--pretrained", str(tmp / "ip2p"),
            "--out", str(out), "--size", "64", "--precision", "fp32", "--lr", "3e-4", "--log-every", "1", *extra]


def assert_every_file_loads(folder):
    for path in folder.rglob("*"):
        assert not path.name.endswith(".tmp"), f"leftover temp file {path}"
        if path.name.endswith(".state.pt"):
            load_state(path)
        elif path.suffix == ".safetensors":
            read_weights(path)


def test_sigkill_then_resume(setup):
    tmp, info = setup
    out_dir = tmp / "kill"
    out = out_dir / "editor.safetensors"
    # 16 pairs, batch 4: 4 steps per epoch; a resume state every 3 steps; killed once step 5 is done
    cmd = cli(tmp, info, out, "--batch", "4", "--steps", "9", "--checkpoint-every", "3", "--threads", "1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line.rstrip())
            if line.startswith("step 5/9"):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "\n".join(seen[-20:])
    assert not out.exists()  # the model is written when the run completes
    assert_every_file_loads(out_dir)
    state = load_state(out_dir / "editor.safetensors.state.pt")
    assert state["global_step"] == 3  # lost 2 steps: less than one checkpoint interval

    resumed = subprocess.run(cmd + ["--resume", str(out_dir / "editor.safetensors.state.pt")], cwd=ROOT, env=ENV,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resumed at epoch 1, step 3" in resumed.stdout
    assert_every_file_loads(out_dir)
    final = load_state(out_dir / "editor.safetensors.state.pt")
    assert final["global_step"] == 9 and len(final["history"]) == 3
    encoder = load_emo_encoder(out_dir / "editor.encoder.safetensors")
    assert torch.isfinite(encoder.fc[6].weight).all()
    # the written editor file is what --editor starts a new run from (strict: same keys and shapes)
    parts = load_ip2p_folder(tmp / "ip2p", editor_file=out)
    written = read_weights(out)[0]
    assert torch.equal(parts["unet"].conv_in.weight, written["unet.conv_in.weight"].float())
    assert not torch.equal(parts["unet"].conv_in.weight, load_ip2p_folder(tmp / "ip2p")["unet"].conv_in.weight)


def test_two_process_ddp_equals_single_process(setup):
    tmp, info = setup
    out = tmp / "ddp" / "editor.safetensors"
    cmd = cli(tmp, info, out, "--batch", "5", "--steps", "4", "--checkpoint-every", "0")  # uneven: 3 + 2 rows
    cmd[1:3] = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "emo_core"]
    run = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.count("step 4/4") == 1  # only rank 0 reports

    torch.set_num_threads(2)
    parts = load_ip2p_folder(tmp / "ip2p")
    features = pair_features(parts, info)
    torch.manual_seed(0)  # the CLI's fresh encoder: PyTorch's default initialisation seeded by --seed (0)
    encoder = EmotionEncoder()
    single = train_editor(DiffusersEditorBackbone(parts["unet"], parts["vae"], parts["alphas"]), encoder, features,
                          EditorConfig(batch_size=5, steps=4, lr=3e-4, precision="fp32", checkpoint_every=0),
                          device="cpu")
    ddp_state = load_state(tmp / "ddp" / "editor.safetensors.state.pt")
    assert len(ddp_state["history"]) == len(single.history) == 1  # 16 pairs: 4 steps of batch 5 (the last 1 row)
    for mine, theirs in zip(single.history, ddp_state["history"], strict=True):
        for key in ("train_loss", "train_mse", "val_loss", "val_weighted"):
            assert abs(mine[key] - theirs[key]) <= 1e-5 * abs(mine[key]), (key, mine[key], theirs[key])
    trained = dict(single.model.named_parameters())
    assert set(ddp_state["model"]) == set(trained)  # encoder.* and every unet.* weight (mode full)
    for key, value in ddp_state["model"].items():
        assert torch.allclose(value, trained[key].detach(), atol=1e-6, rtol=1e-5), key
    written = load_emo_encoder(tmp / "ddp" / "editor.encoder.safetensors").state_dict()
    for key, value in written.items():  # rank 0 wrote the final encoder of the run
        assert torch.equal(value, ddp_state["model"][f"encoder.{key}"]), key
