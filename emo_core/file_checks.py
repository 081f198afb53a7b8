"""Checks of a weight file's structure that read no tensor: the safetensors header, parsed in Python with every
size checked against the file (the library's own reader can panic past ``except Exception`` on absurd shapes), and a
torch zip's directory, so a small file cannot inflate to gigabytes. Each raises ValueError saying what is wrong."""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 100 * 2**20  # the safetensors format's own bound
MAX_DIM = 2**48  # far beyond any real tensor, far below int64 overflow
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
MAX_INFLATED_BYTES = 64 * 2**20  # torch.save stores members uncompressed; a compressed one may not inflate past this


def check_zip_pickle(path: str | os.PathLike) -> None:
    """Refuse, from the zip directory alone, a torch zip whose compressed members would inflate past
    ``MAX_INFLATED_BYTES`` (a 1 MB file can hold a pickle of gigabytes). ValueError says which member."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_INFLATED_BYTES:
                raise ValueError(f"member {info.filename!r} inflates from {info.compress_size} to {info.file_size} "
                                 f"bytes (at most {MAX_INFLATED_BYTES} allowed; torch.save never compresses)")


@dataclass(frozen=True)
class Header:
    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors only


def safetensors_header(path: str) -> Header:
    """The header of a safetensors file, every entry checked against the file's size; ValueError says what is
    wrong."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ValueError("shorter than a safetensors header")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(f"header length {length} does not fit the file ({size} bytes)")
        try:
            header = json.loads(handle.read(length))
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"header is not JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("__metadata__ is not a map of strings")
    data_bytes, shapes = size - 8 - length, {}
    for key, entry in header.items():
        shape, offsets = (entry.get("shape"), entry.get("data_offsets")) if isinstance(entry, dict) else (None, None)
        itemsize = DTYPE_BYTES.get(entry.get("dtype")) if isinstance(entry, dict) else None
        valid = (itemsize and isinstance(shape, list) and isinstance(offsets, list) and len(offsets) == 2
                 and all(type(d) is int and 0 <= d < MAX_DIM for d in shape)
                 and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1] <= data_bytes)
        if not valid or offsets[1] - offsets[0] != math.prod(shape) * itemsize:
            raise ValueError(f"tensor {key!r} has an impossible entry {str(entry)[:120]}")
        shapes[key] = tuple(shape)
    return Header(shapes, {str(k): v for k, v in metadata.items()})
