"""Files dropped into a model folder are listed on every page load: a hostile one must be listed as unknown quickly,
never raise, never block and never inflate; picked anyway, it is a CheckpointError naming the file."""

import json
import os
import struct
import time
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from emo_core.emoeditor.kinds import listed_kind
from emo_core.errors import CheckpointError
from emo_core.file_checks import MAX_INFLATED_BYTES
from emo_core.weight_shapes import peek_header
from emo_core.weights import read_weights


def raw_safetensors(path, header: dict | bytes, data: bytes = b"") -> str:
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body)) + body + data)
    return str(path)


HOSTILE_HEADERS = {
    "huge_dim": {"w": {"dtype": "F32", "shape": [0, 2**64 - 1], "data_offsets": [0, 0]}},
    "negative_dim": {"w": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 0]}},
    "overflowing_numel": {"w": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 16]}},
    "offsets_past_end": {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]}},
    "unknown_dtype": {"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}},
    "float_shape": {"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}},
    "not_an_object": [1, 2, 3],
    "bad_metadata": {"__metadata__": {"k": 1}},
    "deep_json": b"[" * 100_000 + b"]" * 100_000,
    "not_json": b"\xff\xfe garbage",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADERS))
def test_hostile_safetensors_header_is_unknown_and_refused(tmp_path, case):
    path = raw_safetensors(tmp_path / f"{case}.safetensors", HOSTILE_HEADERS[case], b"\0" * 16)
    assert peek_header(path) is None
    assert listed_kind(f"{case}.safetensors", path) is None
    expected = rf"{case}\.safetensors: cannot read: unreadable or corrupt safetensors file"
    with pytest.raises(CheckpointError, match=expected):
        read_weights(path)


def test_header_length_past_the_file(tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    assert peek_header(str(path)) is None


def test_a_valid_file_is_still_read(tmp_path):
    path = tmp_path / "ok.safetensors"
    save_file({"a": torch.zeros(2, 3), "b": torch.ones(0, 5, dtype=torch.float16)}, str(path), metadata={"k": "v"})
    header = peek_header(str(path))
    assert header.shapes == {"a": (2, 3), "b": (0, 5)} and header.metadata == {"k": "v"}


def test_zip_pickle_bomb_is_not_inflated(tmp_path):
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/data.pkl", b"\0" * (MAX_INFLATED_BYTES + 1))
    assert path.stat().st_size < 1 << 20
    started = time.perf_counter()
    assert peek_header(str(path)) is None
    assert time.perf_counter() - started < 1.0
    with pytest.raises(CheckpointError, match=r"bomb\.pth: refused to load: member 'bomb/data.pkl' inflates"):
        read_weights(path)


def test_a_real_torch_save_is_still_peeked(tmp_path):
    path = tmp_path / "ok.pth"
    torch.save({"w": torch.zeros(3, 4)}, path)
    assert peek_header(str(path)).shapes == {"w": (3, 4)}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_never_blocks(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    assert peek_header(str(fifo)) is None
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_weights(fifo)
