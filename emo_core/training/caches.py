"""Housekeeping of the pair-feature caches: list them, tell the stale ones, remove one (never the one in use).
``python -m emo_core.training caches ROOT [--remove-stale]`` is the command line for it."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .feature_cache import CACHE_FORMAT, MANIFEST, read_manifest


@dataclass
class CacheInfo:
    """One cache folder under a root, for listing and cleaning up (``python -m emo_core.training caches``)."""

    folder: Path
    encoder_id: str
    csv_hash: str
    source: str
    n_rows: int
    complete: bool
    size: int  # bytes on disk
    last_used: float  # manifest mtime: set when the cache is built, reused or opened for training


def list_caches(root: str | os.PathLike) -> list[CacheInfo]:
    """Every pair-feature cache folder directly under ``root`` (folders without our manifest are not listed)."""
    out = []
    root = Path(root)
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        manifest = read_manifest(folder)
        if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
            continue
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        out.append(CacheInfo(folder, str(manifest.get("encoder_id", "")), str(manifest.get("csv_hash", "")),
                             str(manifest.get("source", "")), int(manifest.get("n_rows", 0)),
                             bool(manifest.get("complete")), size, (folder / MANIFEST).stat().st_mtime))
    return out


def stale_caches(caches: Sequence[CacheInfo], older_than_days: float = 0.0, now: float | None = None,
                 keep: Sequence[str | os.PathLike] = ()) -> list[CacheInfo]:
    """The caches that can go: for each CSV content, every cache but the most recently used one, when it was last
    used at least ``older_than_days`` ago. The newest cache of each CSV (the one in use) and ``keep`` never are.
    (Caches of one CSV differ by encoder: another checkpoint or LoRA, or a key from an older emo-nodes.)"""
    now = time.time() if now is None else now
    kept = {Path(p).resolve() for p in keep}
    newest: dict[str, CacheInfo] = {}
    for info in caches:
        best = newest.get(info.csv_hash)
        if best is None or (info.complete, info.last_used) > (best.complete, best.last_used):
            newest[info.csv_hash] = info
    return [info for info in caches if info is not newest[info.csv_hash] and info.folder.resolve() not in kept
            and now - info.last_used >= older_than_days * 86400]


def remove_cache(info: CacheInfo) -> None:
    """Delete one cache folder: only our files (manifest, shards, temp files of interrupted writes), then the folder
    if it is empty; anything else in it is left in place."""
    for path in info.folder.iterdir():
        if path.is_file() and (path.name == MANIFEST or re.fullmatch(r"shard_\d{5}\.safetensors", path.name)
                               or (path.name.startswith(".") and path.name.endswith(".tmp"))):
            path.unlink(missing_ok=True)
    try:
        info.folder.rmdir()
    except OSError:
        pass
