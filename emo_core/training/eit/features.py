"""On-disk cache of the SDXL prompt features of every training pair, and the row sources training reads from.

Both prompts of every row are encoded once by a caller-supplied ``encode(prompts) -> (len(prompts), 77, 2048)``
(in ComfyUI the graph's SDXL CLIP; in the CLI a cache built elsewhere or ``synthetic_encoder``) and stored as
safetensors shards of ``shard_rows`` rows: ``neutral``/``emotional`` (rows, L, D) fp16 — as the published cache —
plus ``arousal``, ``valence`` (rows,) f32 and ``line`` (rows,) int64 (CSV line of each row).

Layout: ``<root>/<encoder slug>-<sha of encoder id>-<csv hash>/`` holds ``manifest.json`` and
``shard_NNNNN.safetensors``.
Every file is written atomically. The manifest is written first with ``complete: false``; an interrupted build
resumes at the first missing shard; a complete cache is reused without calling the encoder.

Training does not load the cache into RAM (the published pipeline held ~25 GB): ``FeatureCache.fetch`` reads the
requested rows from memory-mapped shards. ``open_features`` instead preloads everything onto a device (e.g. the
GPU) when it fits a memory budget (``ResidentFeatures``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ...atomic_io import atomic_write, atomic_write_json
from ...errors import EmoError
from .data import PairRow, PairsData

CACHE_FORMAT = "emo-nodes.eit-pair-features"
CACHE_VERSION = "1"
MANIFEST = "manifest.json"
DEFAULT_SHARD_ROWS = 256
DEFAULT_ENCODE_ROWS = 16  # rows per encode() call (32 prompts)
FEATURE_KEYS = ("neutral", "emotional")
SYNTHETIC_ENCODER_ID = "synthetic-sha256-randn-v1"

Encoder = Callable[[list[str]], torch.Tensor]


class CacheError(EmoError, ValueError):
    """A feature cache that is missing, incomplete, of other data, or damaged."""


@dataclass
class FeatureBatch:
    neutral: torch.Tensor  # (B, L, D), fp16 from a cache
    emotional: torch.Tensor
    arousal: torch.Tensor  # (B,) f32
    valence: torch.Tensor


def cache_key(encoder_id: str, csv_hash: str) -> str:
    """Folder name: readable encoder slug, a hash of the full encoder id, and the CSV content hash."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id).strip("._-")[:40] or "encoder"
    return f"{slug}-{hashlib.sha256(encoder_id.encode()).hexdigest()[:8]}-{csv_hash[:16]}"


def cache_dir(root: str | os.PathLike, encoder_id: str, csv_hash: str) -> Path:
    return Path(root) / cache_key(encoder_id, csv_hash)


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.safetensors"


def build_feature_cache(root: str | os.PathLike, pairs: PairsData, encode: Encoder, encoder_id: str, *,
                        shard_rows: int = DEFAULT_SHARD_ROWS, encode_rows: int = DEFAULT_ENCODE_ROWS,
                        on_progress: Callable[[int, int], None] | None = None) -> FeatureCache:
    """Encode every row of ``pairs`` once into ``cache_dir(root, encoder_id, pairs.content_hash)`` and open it.

    Reuses a complete cache (``encode`` is not called) and resumes an interrupted one at its first missing shard.
    ``on_progress(rows_done, rows_total)`` is called after each shard. Exceptions from ``encode`` propagate; the
    shards written so far stay valid.
    """
    if not pairs.content_hash:
        raise ValueError("pairs.content_hash is empty: read the CSV with emo_core.training.eit.data.read_pairs")
    if shard_rows < 1 or encode_rows < 1:
        raise ValueError("shard_rows and encode_rows must be positive")
    folder = cache_dir(root, encoder_id, pairs.content_hash)
    folder.mkdir(parents=True, exist_ok=True)
    rows = pairs.rows
    manifest = read_manifest(folder)
    if manifest is not None and _same_plan(manifest, encoder_id, pairs.content_hash, len(rows)):
        if manifest.get("complete"):
            _mark_used(folder)
            return FeatureCache(folder)
        shard_rows = int(manifest["shard_rows"])  # resume with the interrupted build's shard size
    n_shards = -(-len(rows) // shard_rows)
    manifest = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "encoder_id": encoder_id,
                "csv_hash": pairs.content_hash, "source": pairs.source, "n_rows": len(rows),
                "shard_rows": shard_rows, "n_shards": n_shards, "dtype": "float16", "complete": False}
    atomic_write_json(folder / MANIFEST, manifest)
    shape = None
    for index in range(n_shards):
        chunk = rows[index * shard_rows:(index + 1) * shard_rows]
        path = folder / shard_name(index)
        existing = _shard_shape(path, len(chunk))
        if existing is None:
            tensors = _encode_shard(chunk, encode, encode_rows, shape)
            atomic_write(path, lambda tmp, t=tensors: _save_safetensors(t, tmp))
            existing = tuple(tensors["neutral"].shape[1:])
        if shape is not None and existing != shape:
            raise CacheError(f"{path}: features {existing} differ from the other shards' {shape}")
        shape = existing
        if on_progress is not None:
            on_progress(min((index + 1) * shard_rows, len(rows)), len(rows))
    manifest.update(complete=True, seq_len=shape[0], feature_dim=shape[1])
    atomic_write_json(folder / MANIFEST, manifest)
    return FeatureCache(folder)


def _same_plan(manifest: dict, encoder_id: str, csv_hash: str, n_rows: int) -> bool:
    return (manifest.get("format") == CACHE_FORMAT and manifest.get("version") == CACHE_VERSION
            and manifest.get("encoder_id") == encoder_id and manifest.get("csv_hash") == csv_hash
            and manifest.get("n_rows") == n_rows)


def _encode_shard(rows: Sequence[PairRow], encode: Encoder, encode_rows: int,
                  shape: tuple[int, int] | None) -> dict[str, torch.Tensor]:
    neutral, emotional = [], []
    for start in range(0, len(rows), encode_rows):
        part = rows[start:start + encode_rows]
        prompts = [row.neutral for row in part] + [row.emotional for row in part]
        features = torch.as_tensor(encode(prompts))
        if features.dim() != 3 or features.shape[0] != len(prompts):
            raise CacheError(f"encode() returned shape {tuple(features.shape)} for {len(prompts)} prompts; "
                             "expected (prompts, tokens, width)")
        if shape is not None and tuple(features.shape[1:]) != shape:
            raise CacheError(f"encode() returned features {tuple(features.shape[1:])}, earlier {shape}")
        shape = tuple(features.shape[1:])
        features = features.detach().to("cpu", torch.float16)
        if not torch.isfinite(features).all():
            bad = sorted({part[i % len(part)].line for i in range(len(prompts))
                          if not torch.isfinite(features[i]).all()})
            raise CacheError(f"non-finite features (or beyond fp16 range) for CSV line(s) {bad[:10]}")
        neutral.append(features[:len(part)])
        emotional.append(features[len(part):])
    return {"neutral": torch.cat(neutral).contiguous(), "emotional": torch.cat(emotional).contiguous(),
            "arousal": torch.tensor([row.arousal for row in rows], dtype=torch.float32),
            "valence": torch.tensor([row.valence for row in rows], dtype=torch.float32),
            "line": torch.tensor([row.line for row in rows], dtype=torch.int64)}


def _save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"format": CACHE_FORMAT, "version": CACHE_VERSION})


def _shard_shape(path: Path, rows: int) -> tuple[int, int] | None:
    """(L, D) of a readable shard holding ``rows`` rows, else None (missing or damaged: encode it again)."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            if set(handle.keys()) != {"neutral", "emotional", "arousal", "valence", "line"}:
                return None
            shape = handle.get_slice("neutral").get_shape()
            if shape[0] != rows or handle.get_slice("emotional").get_shape() != shape:
                return None
            return int(shape[1]), int(shape[2])
    except Exception:  # a damaged header: treat as missing
        return None


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class FeatureCache:
    """A complete cache folder, read row by row from memory-mapped shards (nothing held in RAM but A/V)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        manifest = read_manifest(self.folder)
        if manifest is None or manifest.get("format") != CACHE_FORMAT:
            raise CacheError(f"{self.folder}: not a pair-feature cache (no readable {MANIFEST})")
        if manifest.get("version") != CACHE_VERSION:
            raise CacheError(f"{self.folder}: cache version {manifest.get('version')!r}, expected {CACHE_VERSION}")
        if not manifest.get("complete"):
            raise CacheError(f"{self.folder}: incomplete cache (an interrupted build); build it again to resume")
        self.manifest = manifest
        self.encoder_id: str = manifest["encoder_id"]
        self.csv_hash: str = manifest["csv_hash"]
        self.n_rows: int = int(manifest["n_rows"])
        self.shard_rows: int = int(manifest["shard_rows"])
        self.seq_len: int = int(manifest["seq_len"])
        self.feature_dim: int = int(manifest["feature_dim"])
        self._handles: dict[int, object] = {}
        small = [self._read_small(index) for index in range(int(manifest["n_shards"]))]
        self.arousal = torch.cat([part["arousal"] for part in small])
        self.valence = torch.cat([part["valence"] for part in small])
        self.lines = torch.cat([part["line"] for part in small])
        if self.arousal.shape[0] != self.n_rows:
            raise CacheError(f"{self.folder}: shards hold {self.arousal.shape[0]} rows, manifest says {self.n_rows}")

    def __len__(self) -> int:
        return self.n_rows

    @property
    def feature_bytes(self) -> int:
        """Bytes of the fp16 neutral + emotional features of all rows."""
        return 2 * self.n_rows * self.seq_len * self.feature_dim * 2

    def _handle(self, index: int):
        handle = self._handles.get(index)
        if handle is None:
            from safetensors import safe_open

            path = self.folder / shard_name(index)
            try:
                handle = safe_open(str(path), framework="pt")
            except Exception as exc:
                raise CacheError(f"{path}: unreadable shard ({type(exc).__name__}: {exc})") from None
            self._handles[index] = handle
        return handle

    def _read_small(self, index: int) -> dict[str, torch.Tensor]:
        handle = self._handle(index)
        return {key: handle.get_tensor(key) for key in ("arousal", "valence", "line")}

    def read_shard(self, index: int) -> dict[str, torch.Tensor]:
        """All tensors of one shard (for streaming over the cache shard by shard)."""
        handle = self._handle(index)
        return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is no dict)

    def iter_shards(self):
        for index in range(int(self.manifest["n_shards"])):
            yield self.read_shard(index)

    def fetch(self, indices: torch.Tensor | Sequence[int]) -> FeatureBatch:
        """Rows ``indices`` (any order, repeats allowed), read from the shards; features stay fp16 on the CPU."""
        idx = torch.as_tensor(indices, dtype=torch.int64).view(-1)
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.n_rows):
            raise IndexError(f"row index out of range 0..{self.n_rows - 1}")
        out = {key: torch.empty(idx.numel(), self.seq_len, self.feature_dim, dtype=torch.float16)
               for key in FEATURE_KEYS}
        order = torch.argsort(idx, stable=True)
        sorted_idx = idx[order].tolist()
        positions = order.tolist()
        start = 0
        while start < len(sorted_idx):  # runs of consecutive rows within one shard are read as one slice
            first = sorted_idx[start]
            shard, offset = divmod(first, self.shard_rows)
            end = start + 1
            while (end < len(sorted_idx) and sorted_idx[end] - first == end - start
                   and sorted_idx[end] // self.shard_rows == shard):
                end += 1
            handle = self._handle(shard)
            for key in FEATURE_KEYS:
                block = handle.get_slice(key)[offset:offset + end - start]
                out[key][positions[start:end]] = block
            start = end
        return FeatureBatch(out["neutral"], out["emotional"], self.arousal[idx], self.valence[idx])

    def to_resident(self, device: str | torch.device = "cpu") -> ResidentFeatures:
        """Load every row onto ``device`` (fp16), shard by shard, without a second full copy in RAM."""
        shape = (self.n_rows, self.seq_len, self.feature_dim)
        tensors = {key: torch.empty(shape, dtype=torch.float16, device=device) for key in FEATURE_KEYS}
        for index in range(int(self.manifest["n_shards"])):
            handle = self._handle(index)
            start = index * self.shard_rows
            for key in FEATURE_KEYS:
                block = handle.get_tensor(key)
                tensors[key][start:start + block.shape[0]].copy_(block)
        return ResidentFeatures(tensors["neutral"], tensors["emotional"], self.arousal, self.valence)

    def close(self) -> None:
        self._handles.clear()


class ResidentFeatures:
    """All rows held as tensors on one device (GPU preload, or in-memory data in tests)."""

    def __init__(self, neutral: torch.Tensor, emotional: torch.Tensor, arousal, valence):
        if neutral.shape != emotional.shape or neutral.dim() != 3:
            raise ValueError(f"neutral {tuple(neutral.shape)} and emotional {tuple(emotional.shape)} must be equal "
                             "(N, L, D) tensors")
        self.neutral, self.emotional = neutral, emotional
        self.arousal = torch.as_tensor(arousal, dtype=torch.float32).reshape(-1).cpu()
        self.valence = torch.as_tensor(valence, dtype=torch.float32).reshape(-1).cpu()
        self.n_rows, self.seq_len, self.feature_dim = neutral.shape
        if self.arousal.shape[0] != self.n_rows or self.valence.shape[0] != self.n_rows:
            raise ValueError("arousal and valence need one value per row")

    def __len__(self) -> int:
        return self.n_rows

    def fetch(self, indices: torch.Tensor | Sequence[int]) -> FeatureBatch:
        idx = torch.as_tensor(indices, dtype=torch.int64).view(-1)
        dev = idx.to(self.neutral.device)
        # advanced indexing, not index_select: the latter is ~10x slower for fp16 on CPU (torch 2.14)
        return FeatureBatch(self.neutral[dev], self.emotional[dev],
                            self.arousal[idx], self.valence[idx])


def open_features(cache: FeatureCache, device: str | torch.device = "cpu",
                  memory_budget: int | None = None) -> FeatureCache | ResidentFeatures:
    """The row source training should read: the whole cache on ``device`` when its features fit ``memory_budget``
    bytes (default: 60 % of the free memory on a CUDA device, 0 elsewhere, i.e. stream from disk), else the
    streaming cache itself."""
    device = torch.device(device)
    if memory_budget is None:
        memory_budget = 0
        if device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            memory_budget = int(0.6 * free)
    if cache.feature_bytes <= memory_budget:
        return cache.to_resident(device)
    return cache


def find_cache(root: str | os.PathLike, csv_hash: str, encoder_id: str | None = None) -> FeatureCache:
    """The complete cache for ``csv_hash`` under ``root`` (or ``root`` itself when it is a cache folder).

    With several encoders' caches for the same CSV, ``encoder_id`` picks one; CacheError says which exist.
    """
    root = Path(root)
    if (root / MANIFEST).is_file():
        candidates = [root]
    else:
        candidates = sorted(p for p in root.glob("*") if (p / MANIFEST).is_file())
    found = []
    for folder in candidates:
        manifest = read_manifest(folder) or {}
        if manifest.get("csv_hash") == csv_hash and encoder_id in (None, manifest.get("encoder_id")):
            found.append((folder, manifest))
    if not found:
        what = f" and encoder {encoder_id!r}" if encoder_id else ""
        raise CacheError(f"{root}: no feature cache for this CSV (sha256 {csv_hash[:16]}...){what}; build one first")
    if len(found) > 1:
        ids = ", ".join(repr(m.get("encoder_id")) for _, m in found)
        raise CacheError(f"{root}: several caches for this CSV (encoders {ids}); choose one with the encoder id")
    _mark_used(found[0][0])
    return FeatureCache(found[0][0])


def _mark_used(folder: Path) -> None:
    """The manifest's mtime records the last use (no content change; a read-only cache is simply not marked)."""
    try:
        os.utime(folder / MANIFEST)
    except OSError:
        pass


def synthetic_encoder(seq_len: int = 77, feature_dim: int = 2048) -> Encoder:
    """A deterministic stand-in for the SDXL text encoders, for tests and the CLI's ``--synthetic``: each prompt
    gives N(0, 1) features from a generator seeded with the first 8 bytes of sha256(prompt). Equal prompts give
    equal features; there is no semantics, so training on it only exercises the pipeline."""

    def encode(prompts: list[str]) -> torch.Tensor:
        out = torch.empty(len(prompts), seq_len, feature_dim)
        for i, prompt in enumerate(prompts):
            seed = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "little") >> 1
            out[i] = torch.randn(seq_len, feature_dim, generator=torch.Generator().manual_seed(seed))
        return out

    return encode
