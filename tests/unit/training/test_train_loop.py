"""The training loop in-process: it really learns, stop/resume is exact, outputs load, split is the published one."""

import json
import math
import time

import numpy as np
import pytest
import torch
from safetensors import safe_open

from emo_core.emoticrafter.eit import EITConfig
from emo_core.emoticrafter.eit_io import load_eit
from emo_core.plots.loss import loss_curve_image
from emo_core.training.eit.features import ResidentFeatures
from emo_core.training.eit.task import TrainConfig, load_state, train_eit
from emo_core.training.loop import epoch_order, published_split

TINY = EITConfig(n_layer=1, n_embd=32, n_head=2, n_positions=77)  # feature width 2048 and L = 77 as published


def learnable_pairs(n_rows: int, seed: int = 5, alpha: float = 1.5) -> ResidentFeatures:
    """e = n + f(v, a) / alpha with f known: per token the same unit-variance mix of three fixed random directions,
    f = (v·D_v + a·D_a + D_0) / sqrt(v² + a² + 1). The training target n + alpha·(e - n) = n + f then depends on V
    and A only (not on n) and has unit variance per token, like the EIT's LayerNorm-ed output: the EIT can
    represent it exactly."""
    g = torch.Generator().manual_seed(seed)
    length, width = 77, 2048
    basis = torch.linalg.qr(torch.randn(width, 3, generator=g)).Q.T * width ** 0.5
    basis = basis - basis.mean(dim=1, keepdim=True)
    arousal = torch.rand(n_rows, generator=g) * 6 - 3
    valence = torch.rand(n_rows, generator=g) * 6 - 3
    neutral = torch.randn(n_rows, length, width, generator=g)
    mix = torch.stack([valence, arousal, torch.ones(n_rows)], dim=1) / (valence**2 + arousal**2 + 1).sqrt()[:, None]
    emotional = neutral + (mix @ basis)[:, None, :] / alpha
    return ResidentFeatures(neutral.half(), emotional.half(), arousal, valence)


def test_learning_is_real():
    """Validation MSE of the untrained model vs the best after a CPU-budgeted run: at least 10x lower."""
    features = learnable_pairs(96)
    config = TrainConfig(alpha=1.5, density="normalised", lr=3e-3, batch_size=16, epochs=5, val_fraction=0.1,
                         dropout=0.0)
    started = time.perf_counter()
    result = train_eit(features, config, model_config=TINY, device="cpu")
    seconds = time.perf_counter() - started
    ratio = result.initial_val_loss / result.best_val_loss
    print(f"learning: val mse {result.initial_val_loss:.4g} -> {result.best_val_loss:.4g} "
          f"({ratio:.1f}x) in {seconds:.1f} s")
    assert ratio >= 10, [round(r["val_loss"], 4) for r in result.history]
    assert seconds < 60
    assert [r["epoch"] for r in result.history] == list(range(1, 6))
    assert result.best_val_loss == min(r["val_loss"] for r in result.history)


def test_stop_and_resume_equal_an_uninterrupted_run(tmp_path):
    """should_stop mid-epoch writes a state; resuming gives bitwise the same run (dropout on: RNG restored)."""
    features = learnable_pairs(25, seed=9)  # 22 training rows: batches of 6, 6, 6, 4
    config = TrainConfig(batch_size=6, epochs=2, val_fraction=0.1, dropout=0.1, density="published")
    full = train_eit(features, config, model_config=TINY, device="cpu", out_path=tmp_path / "full.safetensors")

    steps = []
    stop_after = 6  # epoch 2, step 2 (4 steps per epoch)
    part = train_eit(features, config, model_config=TINY, device="cpu", out_path=tmp_path / "run.safetensors",
                     on_step=lambda e, s, loss: steps.append((e, s, loss)),
                     should_stop=lambda: len(steps) >= stop_after)
    assert part.stopped and part.epochs_completed == 1 and [s[:2] for s in steps][-1] == (2, 2)
    state = load_state(tmp_path / "run.safetensors.state.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 2, 6)
    resumed = train_eit(features, config, model_config=TINY, device="cpu", out_path=tmp_path / "run.safetensors",
                        resume=tmp_path / "run.safetensors.state.pt")
    assert not resumed.stopped and resumed.epochs_completed == 2 and resumed.global_step == full.global_step
    pairs = zip(full.history, resumed.history, strict=True)
    assert resumed.history == [{**r, "seconds": h["seconds"]} for r, h in pairs]  # all but the wall time
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key

    with pytest.raises(ValueError, match="other settings: lr"):
        train_eit(features, TrainConfig(**{**config.__dict__, "lr": 1e-4}), model_config=TINY, device="cpu",
                  resume=tmp_path / "run.safetensors.state.pt")


def test_outputs_load_and_describe_the_run(tmp_path):
    features = learnable_pairs(24, seed=2)
    out = tmp_path / "eit.safetensors"
    config = TrainConfig(batch_size=6, epochs=2, dropout=0.0, density="paper")
    records = []
    result = train_eit(features, config, model_config=TINY, device="cpu", out_path=out, dataset_hash="abc123",
                       extra_metadata={"encoder_id": "test"}, on_epoch=records.append)
    assert [r["epoch"] for r in records] == [1, 2] and records == result.history
    model = load_eit(out)
    assert model.config.n_layer == 1 and model.config.n_embd == 32
    for key, value in result.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    with safe_open(str(out), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["alpha"] == "1.5" and meta["density"] == "paper" and meta["dataset_hash"] == "abc123"
    assert meta["epochs_completed"] == "2" and meta["encoder_id"] == "test"
    assert float(meta["best_val_loss"]) == result.best_val_loss
    assert json.loads(meta["history"]) == result.history
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eit.safetensors", "eit.safetensors.state.pt"]

    picture = loss_curve_image(result.history, width=320, height=200)
    assert picture.shape == (200, 320, 3) and picture.dtype == np.uint8
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 3  # lines and text drawn, not a blank canvas
    assert loss_curve_image([]).shape == (360, 640, 3)


def test_published_split_and_epoch_order():
    train, val = published_split(39_843)
    assert len(val) == math.ceil(0.01 * 39_843) == 399 and len(train) == 39_444
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(39_843))
    assert val[:3].tolist() == np.random.RandomState(42).permutation(39_843)[:3].tolist()
    first, again = epoch_order(train[:50], 0, 3), epoch_order(train[:50], 0, 3)
    assert torch.equal(first, again) and not torch.equal(first, epoch_order(train[:50], 0, 4))
    with pytest.raises(ValueError, match="cannot split"):
        published_split(1)
