"""Checkpoint loading errors, on small synthetic checkpoints (the golden-weight loads are in test_emoeditor_models)."""

import pickle
from collections import OrderedDict

import pytest
import torch

from emo_core.emoeditor.encoder import EmotionEncoder
from emo_core.emoeditor.loaders import (
    detect_kind,
    is_emo_encoder_state_dict,
    is_emo_predictor_state_dict,
    load_emo_encoder,
    load_emo_predictor,
    save_safetensors,
)
from emo_core.emoeditor.predictor import EmotionPredictor
from emo_core.errors import CheckpointError
from emo_core.weights import read_weights


@pytest.fixture(scope="module")
def narrow_encoder_state():
    """An EXTENSION-width encoder (77 x 4 tokens): the published layout's checks, without 184 MB of weights."""
    torch.manual_seed(1)
    return OrderedDict(EmotionEncoder(tokens=77, width=4).state_dict())


@pytest.fixture(scope="module")
def predictor_state():
    torch.manual_seed(2)
    return OrderedDict(EmotionPredictor().state_dict())


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_detection_helpers(narrow_encoder_state, predictor_state):
    assert is_emo_encoder_state_dict(narrow_encoder_state) and not is_emo_predictor_state_dict(narrow_encoder_state)
    assert is_emo_predictor_state_dict(predictor_state) and not is_emo_encoder_state_dict(predictor_state)
    assert detect_kind(narrow_encoder_state) == "emo_encoder" and detect_kind(predictor_state) == "emo_predictor"
    editor = {"unet.conv_in.weight": torch.zeros(320, 8, 3, 3), "auto_encoder.encoder.conv_in.weight": torch.zeros(1)}
    assert detect_kind(editor) == "emoeditor_ip2p" and detect_kind({"x": torch.zeros(1)}) is None


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_roundtrip_derives_the_token_width(tmp_path, narrow_encoder_state, suffix):
    path = tmp_path / f"encoder{suffix}"
    if suffix == ".pt":
        torch.save(narrow_encoder_state, path)  # the official format: a pickled OrderedDict
    else:
        save_safetensors(narrow_encoder_state, path)
    encoder = load_emo_encoder(path)
    assert (encoder.config.tokens, encoder.config.width, encoder.config.pooled_width) == (77, 4, 0)
    assert all(torch.equal(v, narrow_encoder_state[k]) for k, v in encoder.state_dict().items())
    assert encoder(torch.zeros(8)).shape == (1, 77, 4)


def test_predictor_roundtrip_is_frozen_and_in_eval_mode(tmp_path, predictor_state):
    path = tmp_path / "predictor.safetensors"
    save_safetensors(predictor_state, path)
    model = load_emo_predictor(path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, predictor_state[k]) for k, v in model.state_dict().items())


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*nowhere.pt"):
        load_emo_encoder(tmp_path / "nowhere.pt")
    odd = tmp_path / "weights.npz"
    odd.write_bytes(b"\0" * 16)
    with pytest.raises(CheckpointError, match="weights.npz.*extension"):
        load_emo_predictor(odd)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_corrupt_file_names_the_file(tmp_path, narrow_encoder_state, suffix):
    good = tmp_path / f"good{suffix}"
    torch.save(narrow_encoder_state, good) if suffix == ".pt" else save_safetensors(narrow_encoder_state, good)
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # a truncated download
    with pytest.raises(CheckpointError, match=f"broken{suffix}.*cannot read"):
        load_emo_encoder(broken)
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match=f"garbage{suffix}"):
        load_emo_encoder(garbage)


class Payload:
    """Unpickling this would run code; weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_pickles_with_code_are_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"fc.0.weight": Payload()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="evil.pt.*refused.*weights_only=True"):
        load_emo_encoder(path)
    assert "unpickled code ran" not in capsys.readouterr().out


def test_non_state_dict_content(tmp_path):
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {"fc.0.weight": torch.zeros(256, 8)}, "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="wrapped.pt.*plain state dict"):
        read_weights(path)


def test_missing_key(tmp_path, narrow_encoder_state):
    state = OrderedDict(narrow_encoder_state)
    del state["fc.4.bias"]
    path = tmp_path / "no_bias.safetensors"
    save_safetensors(state, path)
    with pytest.raises(CheckpointError, match=r"no_bias.safetensors.*missing keys \[fc.4.bias\]"):
        load_emo_encoder(path)


def test_unexpected_key(tmp_path, predictor_state):
    state = OrderedDict(predictor_state, **{"fc.extra": torch.zeros(3)})
    path = tmp_path / "extra.safetensors"
    save_safetensors(state, path)
    with pytest.raises(CheckpointError, match=r"extra.safetensors.*unexpected keys \[fc.extra\]"):
        load_emo_predictor(path)


def test_wrong_shapes(tmp_path, narrow_encoder_state, predictor_state):
    state = OrderedDict(narrow_encoder_state, **{"fc.0.weight": torch.zeros(256, 9)})
    path = tmp_path / "nine_inputs.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"nine_inputs.pt.*fc.0.weight: expected \[256, 8\], found \[256, 9\]"):
        load_emo_encoder(path)

    state = OrderedDict(narrow_encoder_state, **{"fc.6.weight": torch.zeros(100, 768), "fc.6.bias": torch.zeros(100)})
    path = tmp_path / "odd_tokens.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="odd_tokens.pt.*not a multiple of 77 tokens"):
        load_emo_encoder(path)

    state = OrderedDict(predictor_state, **{"fc.weight": torch.zeros(7, 512), "fc.bias": torch.zeros(7)})
    path = tmp_path / "seven_classes.safetensors"
    save_safetensors(state, path)
    with pytest.raises(CheckpointError, match=r"seven_classes.safetensors.*fc.weight: expected \[8, 512\]"):
        load_emo_predictor(path)


def test_wrong_model_kind(tmp_path, narrow_encoder_state):
    path = tmp_path / "model_ip2p.pt"
    torch.save({"unet.conv_in.weight": torch.zeros(320, 8, 3, 3), "auto_encoder.decoder.conv_out.bias": torch.zeros(3)},
               path)
    with pytest.raises(CheckpointError, match="model_ip2p.pt.*InstructPix2Pix editor.*not a.*predictor"):
        load_emo_predictor(path)
    path = tmp_path / "encoder_as_predictor.pt"
    torch.save(narrow_encoder_state, path)
    with pytest.raises(CheckpointError, match="encoder_as_predictor.pt.*encoder.*not a.*predictor"):
        load_emo_predictor(path)
    unrelated = tmp_path / "unrelated.safetensors"
    save_safetensors({"weight": torch.zeros(2)}, unrelated)
    with pytest.raises(CheckpointError, match="unrelated.safetensors.*not a valid.*encoder.*missing keys"):
        load_emo_encoder(unrelated)
