"""The one reader of weight files: ``.safetensors`` or a pickled state dict, loaded with
``torch.load(weights_only=True)`` only. Every failure, NaN/inf weights included, is a ``CheckpointError`` naming
the file and what was wrong."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import CheckpointError
from .file_checks import check_zip_pickle, safetensors_header

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
def read_weights(path: str | os.PathLike, unwrap: str | None = None
                 ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a weight file, on the CPU; metadata is empty for pickles.

    ``unwrap``: a key under which a training checkpoint may nest the weights (``{"state_dict": {...}, ...}``)."""
    path = Path(path)
    if not path.is_file():
        why = "not a regular file" if path.exists() else "no such file"
        raise CheckpointError(f"checkpoint file not found: {path} ({why})")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _read_safetensors(path)
    if suffix not in PICKLE_SUFFIXES:
        raise CheckpointError(f"{path}: unsupported checkpoint extension {path.suffix!r} (expected one of "
                              f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)})")
    obj = _read_pickle(path)
    if unwrap and isinstance(obj, Mapping) and isinstance(obj.get(unwrap), Mapping):
        obj = obj[unwrap]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict (a plain mapping of names to "
                              "tensors)")
    bad = [str(key) for key, value in obj.items() if not isinstance(key, str) or not isinstance(value, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: not a plain state dict (key -> tensor); entries that are not named tensors: "
                              f"{few(bad)}")
    return _finite(path, dict(obj)), {}


def first_non_finite(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """The first floating-point tensor holding NaN or infinity, or None."""
    return next((key for key, value in tensors.items()
                 if value.is_floating_point() and not torch.isfinite(value).all()), None)


def _finite(path: Path, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Refuse weights with NaN/inf: every output of the network would be NaN (a black image reported as success)."""
    key = first_non_finite(tensors)
    if key is not None:
        raise CheckpointError(f"{path}: weight '{key}' contains NaN or infinity; the file is damaged or the training "
                              "that wrote it diverged")
    return tensors


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        safetensors_header(str(path))  # checked in Python first: the library can panic on absurd headers
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: cannot read: unreadable or corrupt safetensors file ({exc})") from None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # safetensors raises its own error types (and OSError) for damaged files
        raise CheckpointError(f"{path}: cannot read: unreadable or corrupt safetensors file "
                              f"({type(exc).__name__}: {gist(exc)})") from None
    return _finite(path, tensors), metadata


def _read_pickle(path: Path):
    try:
        if zipfile.is_zipfile(path):
            check_zip_pickle(path)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: refused to load: {exc}") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise CheckpointError(f"{path}: refused to load: the pickle holds objects other than tensors, and "
                                  "checkpoints are only ever loaded with torch.load(weights_only=True)") from None
        raise CheckpointError(f"{path}: cannot read: unreadable or corrupt checkpoint (bad pickle: {gist(exc)})"
                              ) from None
    except Exception as exc:  # truncated zips and damaged files surface as many exception types
        raise CheckpointError(f"{path}: cannot read: unreadable or corrupt checkpoint; expected a torch.save'd state "
                              f"dict of tensors ({type(exc).__name__}: {gist(exc)})") from None


def few(items, count: int = 5) -> str:
    """``a, b, c, ... (n more)``: a readable sample of a long list of names."""
    items = list(items)
    shown = ", ".join(items[:count])
    return shown + (f", ... ({len(items) - count} more)" if len(items) > count else "")


def gist(exc: BaseException) -> str:
    """The gist of a library error: its first sentence, at most 200 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else "no details"
    sentence = text.split(". ")[0]
    return sentence if len(sentence) <= 200 else sentence[:200] + "..."
