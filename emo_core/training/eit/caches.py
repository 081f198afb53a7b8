"""Housekeeping of the pair-feature caches: list them, tell the stale ones, remove one (never the one in use).
``python -m emo_core caches ROOT [--remove-stale]`` is the command line for it."""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .features import CACHE_FORMAT, MANIFEST, read_manifest


@dataclass
class CacheInfo:
    """One cache folder under a root, for listing and cleaning up (``python -m emo_core caches``)."""

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


def main(argv: list[str] | None = None) -> int:
    """``python -m emo_core caches ROOT``: list the feature caches under ROOT (ComfyUI's
    ``user/emo-nodes/feature_cache``), and with ``--remove-stale`` delete the stale ones."""
    p = argparse.ArgumentParser(prog="python -m emo_core caches", description=main.__doc__)
    p.add_argument("root", help="the cache root, e.g. ComfyUI/user/emo-nodes/feature_cache")
    p.add_argument("--list", action="store_true", help="list the caches (the default)")
    p.add_argument("--remove-stale", action="store_true", help="delete, for each CSV, every cache but the most "
                   "recently used one (the one in use is never deleted)")
    p.add_argument("--older-than", type=float, default=0.0, metavar="DAYS", help="with --remove-stale: only caches "
                   "last used at least DAYS days ago (default 0)")
    p.add_argument("--keep", action="append", default=[], metavar="FOLDER", help="never delete this cache folder")
    p.add_argument("--dry-run", action="store_true", help="say what --remove-stale would delete, delete nothing")
    args = p.parse_args(argv)
    infos = list_caches(args.root)
    stale = stale_caches(infos, args.older_than, keep=args.keep)
    now = time.time()
    for info in infos:
        mark = " STALE" if info in stale else ""
        print(f"{info.folder.name}  {info.n_rows} rows  {info.size / 2**20:.1f} MiB  "
              f"{'complete' if info.complete else 'INCOMPLETE'}  last used {(now - info.last_used) / 86400:.1f} d "
              f"ago  encoder {info.encoder_id}  csv {info.source}{mark}")
    total = sum(info.size for info in stale)
    print(f"{len(infos)} cache(s), {len(stale)} stale ({total / 2**20:.1f} MiB)")
    if args.remove_stale:
        for info in stale:
            if args.dry_run:
                print(f"would remove {info.folder}")
            else:
                remove_cache(info)
                print(f"removed {info.folder}")
    return 0
