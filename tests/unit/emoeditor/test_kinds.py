"""Telling EmoEditor weight files apart from their keys alone (emo_core.emoeditor.kinds): the Load EmoEditor slots
list only files of their kind."""

import datetime
import os

import pytest
import torch
from safetensors.torch import save_file

from emo_core import weight_shapes
from emo_core.emoeditor import kinds
from emo_core.emoeditor.loaders import EDITOR_KIND, ENCODER_KIND, PREDICTOR_KIND


def encoder_state() -> dict:
    return {"fc.0.weight": torch.zeros(16, 8), "fc.0.bias": torch.zeros(16), "fc.6.weight": torch.zeros(32, 16)}


def predictor_state() -> dict:
    return {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(8, 512), "fc.bias": torch.zeros(8),
            "layer4.1.conv2.weight": torch.zeros(1)}


def editor_state() -> dict:
    return {"unet.conv_in.weight": torch.zeros(4, 8, 3, 3), "auto_encoder.decoder.conv_in.weight": torch.zeros(2)}


STATES = {ENCODER_KIND: encoder_state, PREDICTOR_KIND: predictor_state, EDITOR_KIND: editor_state}


@pytest.mark.parametrize("kind", sorted(STATES))
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_each_kind_is_told_from_its_keys(tmp_path, kind, suffix):
    path = tmp_path / f"model{suffix}"
    if suffix == ".safetensors":
        save_file(STATES[kind](), str(path))  # no emo_nodes.kind metadata: the keys decide
    else:
        torch.save(STATES[kind](), path)
    assert kinds.peek_kind(path) == kind


def test_safetensors_metadata_names_the_kind(tmp_path):
    path = tmp_path / "renamed.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"emo_nodes.kind": ENCODER_KIND})
    assert kinds.peek_kind(path) == ENCODER_KIND


def test_pickles_are_read_without_their_weights(tmp_path, monkeypatch):
    path = tmp_path / "editor.pt"
    torch.save(editor_state(), path)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    assert kinds.peek_kind(path) == EDITOR_KIND
    assert calls == [{"map_location": "cpu", "weights_only": True, "mmap": True}]


@pytest.mark.parametrize("case", ["unrelated", "legacy", "damaged", "not_a_dict", "code", "not_plain",
                                  "unknown_suffix"])
def test_unknown_or_unreadable_files_have_no_kind(tmp_path, case):
    path = tmp_path / ("model.txt" if case == "unknown_suffix" else "model.pt")
    if case == "unrelated":
        torch.save({"some.weight": torch.zeros(3)}, path)
    elif case == "legacy":  # a non-zip pickle cannot be read without its tensors: unknown, listed everywhere
        torch.save(encoder_state(), path, _use_new_zipfile_serialization=False)
    elif case == "damaged":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    elif case == "not_a_dict":
        torch.save([torch.zeros(1)], path)
    elif case == "code":
        torch.save({**encoder_state(), "x": datetime.date(2020, 1, 1)}, path)  # weights_only refuses it
    elif case == "not_plain":
        torch.save({**encoder_state(), "step": 3}, path)
    else:
        path.write_text("hello")
    assert kinds.peek_kind(path) is None
    assert kinds.peek_kind(tmp_path / "missing.pt") is None


def test_answers_are_cached_by_size_and_modification_time(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    torch.save(encoder_state(), path)
    assert kinds.peek_kind(path) == ENCODER_KIND
    monkeypatch.setattr(weight_shapes, "_read_header", lambda p: pytest.fail("read again although unchanged"))
    assert kinds.peek_kind(path) == ENCODER_KIND
    monkeypatch.undo()
    torch.save(predictor_state(), path)
    os.utime(path, ns=(1, 1))  # a different stamp even on coarse file systems
    assert kinds.peek_kind(path) == PREDICTOR_KIND


def test_subfolders_name_the_kind_and_unknown_files_go_in_every_slot(tmp_path):
    unknown = tmp_path / "unknown.pt"
    torch.save({"some.weight": torch.zeros(3)}, unknown)
    enc = tmp_path / "enc.pt"
    torch.save(encoder_state(), enc)
    assert kinds.listed_kind("encoder/unknown.pt", unknown) == ENCODER_KIND
    assert kinds.listed_kind("Predictor\\x.pt", None) == PREDICTOR_KIND
    assert kinds.listed_kind("editor/sub/x.pt", None) == EDITOR_KIND
    assert kinds.listed_kind("other/enc.pt", enc) == ENCODER_KIND
    assert kinds.listed_kind("unknown.pt", unknown) is None
    files = [("a.pt", EDITOR_KIND), ("b.pt", ENCODER_KIND), ("c.pt", None), ("d.pt", PREDICTOR_KIND)]
    assert kinds.files_for_slot(files, EDITOR_KIND) == ["a.pt", "c.pt"]
    assert kinds.files_for_slot(files, ENCODER_KIND) == ["b.pt", "c.pt"]
    assert kinds.files_for_slot(files, PREDICTOR_KIND) == ["c.pt", "d.pt"]
