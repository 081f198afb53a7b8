"""Data safety of training: names, settings, never overwriting an earlier model, non-finite losses, file modes."""

import hashlib
import math
import os
import stat

import pytest
import torch

from emo_core.emoticrafter.eit import EITConfig
from emo_core.emoticrafter.eit_io import load_eit, save_eit
from emo_core.training.eit.features import ResidentFeatures
from emo_core.training.eit.task import TrainConfig, load_state, train_eit
from emo_core.training.loop import NonFiniteError
from emo_core.training.naming import MAX_NAME_BYTES, check_name, inside, name_problem, output_file
from emo_core.training.outputs import OutputExistsError

TINY = EITConfig(n_layer=1, n_embd=32, n_head=2, n_positions=77)
CONFIG = TrainConfig(batch_size=6, epochs=2, val_fraction=0.1, dropout=0.0)


def features(n_rows=25, seed=3) -> ResidentFeatures:
    g = torch.Generator().manual_seed(seed)
    neutral = torch.randn(n_rows, 77, 2048, generator=g)
    emotional = neutral + 0.1 * torch.randn(n_rows, 77, 2048, generator=g)
    return ResidentFeatures(neutral.half(), emotional.half(), torch.rand(n_rows, generator=g) * 6 - 3,
                            torch.rand(n_rows, generator=g) * 6 - 3)


class PoisonedFeatures(ResidentFeatures):
    """Training batches turn NaN from the ``after``-th fetch on (validation reads stay clean until then too)."""

    def __init__(self, base: ResidentFeatures, after: int):
        super().__init__(base.neutral, base.emotional, base.arousal, base.valence)
        self.calls, self.after = 0, after

    def fetch(self, indices):
        self.calls += 1
        batch = super().fetch(indices)
        if self.calls > self.after:
            batch.neutral = torch.full_like(batch.neutral, math.nan)
        return batch


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def snapshot(*paths) -> dict:
    return {str(p): digest(p) for p in paths}


# ------------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize("name, words", [
    ("..", "dot"), (".", "dot"), (".hidden", "dot"), ("trailing.", "dot"), (" lead", "space"), ("x" * 300, "bytes"),
    ("a\x00b", "control"), ("a\nb", "control"), ("a/b", "plain file name"), ("..\\evil", "plain file name"),
    ("", "empty"), ("   ", "empty"), ("CON", "reserved"), ("nul.backup", "reserved"), (None, "expected text"),
])
def test_bad_names_are_refused_with_the_reason(name, words, tmp_path):
    problem = name_problem(name)
    assert problem and words in problem, problem
    with pytest.raises(ValueError, match="name: "):
        check_name(name)
    with pytest.raises(ValueError):
        output_file(tmp_path / "models", name, ".safetensors")


def test_good_names_make_files_inside_the_folder(tmp_path):
    for name in ("my_eit", "Émotion v2.1", "a" * MAX_NAME_BYTES, "con_artist", "x..y"):
        assert name_problem(name) is None, name
        path = output_file(tmp_path, name, ".safetensors")
        assert path.parent == tmp_path and path.name == f"{name}.safetensors"
    assert name_problem("é" * 101) is not None  # 202 bytes in UTF-8


def test_inside_resolves_dots_and_symlinks(tmp_path):
    root = tmp_path / "input"
    root.mkdir()
    (root / "link").symlink_to("/etc")
    assert inside(root / "pairs.csv", [root]) is not None
    assert inside(root / ".." / "input" / "pairs.csv", [root]) is not None
    assert inside(root / ".." / "secret.csv", [root]) is None
    assert inside(root / "link" / "passwd", [root]) is None
    assert inside("/etc/passwd", [root]) is None


# --------------------------------------------------------------------------------------------- settings
@pytest.mark.parametrize("field, value, words", [
    ("alpha", math.nan, "alpha is nan"), ("alpha", math.inf, "alpha is inf"), ("epochs", 0, "at least one epoch"),
    ("lr", 0.0, "lr 0 must be > 0"), ("lr", math.nan, "lr is nan"), ("batch_size", 0, "batch_size 0"),
    ("val_fraction", 0.0, "val_fraction"), ("val_fraction", 0.6, "val_fraction 0.6 must be <= 0.5"),
    ("weight_decay", -1.0, "weight_decay"), ("dropout", 1.0, "dropout"), ("epochs", 2.5, "whole number"),
])
def test_train_config_refuses_runs_that_train_nothing_or_non_finite_values(field, value, words):
    with pytest.raises(ValueError, match="invalid training settings") as info:
        TrainConfig(**{field: value})
    assert words in str(info.value), str(info.value)


# -------------------------------------------------------------------------------------- never overwrite
def test_same_name_is_refused_and_overwrite_replaces_only_at_completion(tmp_path):
    data = features()
    out, state = tmp_path / "eit.safetensors", tmp_path / "eit.state.pt"
    train_eit(data, CONFIG, model_config=TINY, device="cpu", out_path=out, state_path=state)
    before = snapshot(out, state)

    with pytest.raises(OutputExistsError) as info:  # a second run with the same name: refused, nothing written
        train_eit(data, CONFIG, model_config=TINY, device="cpu", out_path=out, state_path=state)
    message = str(info.value)
    assert str(out) in message and "another name" in message and "overwrite=True" in message
    assert snapshot(out, state) == before

    other = TrainConfig(**{**CONFIG.__dict__, "seed": 7})
    steps = []
    cancelled = train_eit(data, other, model_config=TINY, device="cpu", out_path=out, state_path=state,
                          overwrite=True, on_step=lambda *a: steps.append(a), should_stop=lambda: len(steps) >= 6)
    assert cancelled.stopped
    assert snapshot(out, state) == before, "a cancelled overwriting run must leave the earlier files untouched"
    assert (tmp_path / "eit.state.pt.pending").is_file() and (tmp_path / "eit.safetensors.pending").is_file()

    resumed = train_eit(data, other, model_config=TINY, device="cpu", out_path=out, state_path=state, resume=True)
    assert not resumed.stopped and resumed.out_path == out
    assert not (tmp_path / "eit.state.pt.pending").exists() and not (tmp_path / "eit.safetensors.pending").exists()
    assert digest(out) != before[str(out)] and load_state(state)["train_config"]["seed"] == 7
    for key, value in load_eit(out).state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_every_earlier_file(tmp_path):
    data = features()
    out, state = tmp_path / "eit.safetensors", tmp_path / "eit.state.pt"
    train_eit(data, CONFIG, model_config=TINY, device="cpu", out_path=out, state_path=state)
    before = snapshot(out, state)

    poisoned = PoisonedFeatures(data, after=6)  # initial validation + epoch 1 read clean, epoch 2 turns NaN
    with pytest.raises(NonFiniteError, match="training loss at epoch 2, step .* is nan") as info:
        train_eit(poisoned, CONFIG, model_config=TINY, device="cpu", out_path=out, state_path=state, overwrite=True)
    assert "untouched" in str(info.value)
    assert snapshot(out, state) == before
    pending_state = load_state(tmp_path / "eit.state.pt.pending")  # the failed run's last good epoch, resumable
    assert pending_state["epoch"] == 1 and all(torch.isfinite(v).all() for v in pending_state["model"].values())

    fresh_out, fresh_state = tmp_path / "fresh.safetensors", tmp_path / "fresh.state.pt"
    with pytest.raises(NonFiniteError, match="keep the last complete epoch \\(1\\)"):
        train_eit(PoisonedFeatures(data, after=6), CONFIG, model_config=TINY, device="cpu", out_path=fresh_out,
                  state_path=fresh_state)
    assert all(torch.isfinite(v).all() for v in load_eit(fresh_out).state_dict().values())
    assert load_state(fresh_state)["epoch"] == 1


def test_trained_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "eit.safetensors"
        train_eit(features(), TrainConfig(**{**CONFIG.__dict__, "epochs": 1}), model_config=TINY, device="cpu",
                  out_path=out)
        save_eit(load_eit(out), tmp_path / "copy.safetensors")
        for path in (out, tmp_path / "eit.safetensors.state.pt", tmp_path / "copy.safetensors"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, (path, oct(path.stat().st_mode))
        assert os.umask(0o022) == 0o022  # writing files leaves the process umask alone
    finally:
        os.umask(old)
