"""The pair-feature cache: encoded once, reused, resumed after an interruption, read back exactly."""

import json

import pytest
import torch

from emo_core.training.eit.data import parse_pairs
from emo_core.training.eit.features import (
    MANIFEST,
    CacheError,
    FeatureCache,
    ResidentFeatures,
    build_feature_cache,
    cache_dir,
    find_cache,
    open_features,
    synthetic_encoder,
)

SEQ, DIM = 5, 8  # the cache is agnostic to the feature size: small here to stay fast


def make_pairs(n=10, tag=""):
    lines = ["Id,Arousal,Valence,Tag,Dataset,Neutral_Prompt,Emotional_Prompt"]
    lines += [f'{i},{(i % 7) - 3},{(i % 5) - 2.5},T,D,"neutral {i}{tag}","emotional {i}{tag}"' for i in range(n)]
    return parse_pairs("\n".join(lines) + "\n", source="mem.csv")


class CountingEncoder:
    """The synthetic encoder, counting calls and prompts; optionally failing on call number ``fail_on``."""

    def __init__(self, fail_on=None):
        self.inner = synthetic_encoder(SEQ, DIM)
        self.calls, self.prompts, self.fail_on = 0, 0, fail_on

    def __call__(self, prompts):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("interrupted by the test")
        self.prompts += len(prompts)
        return self.inner(prompts)


def reference(pairs, idx):
    encode = synthetic_encoder(SEQ, DIM)
    rows = [pairs.rows[i] for i in idx]
    return (encode([r.neutral for r in rows]).half(), encode([r.emotional for r in rows]).half())


def test_built_once_then_reused(tmp_path):
    pairs = make_pairs(10)
    encoder = CountingEncoder()
    cache = build_feature_cache(tmp_path, pairs, encoder, "test-enc", shard_rows=4, encode_rows=2)
    assert encoder.calls == 5 and encoder.prompts == 20  # both prompts of each row, once
    assert cache.n_rows == 10 and (cache.seq_len, cache.feature_dim) == (SEQ, DIM)
    assert sorted(p.name for p in cache.folder.iterdir()) == [MANIFEST] + [f"shard_0000{i}.safetensors"
                                                                           for i in range(3)]
    again = CountingEncoder()
    reused = build_feature_cache(tmp_path, pairs, again, "test-enc", shard_rows=4, encode_rows=2)
    assert again.calls == 0 and reused.folder == cache.folder
    # another encoder id or other CSV content: another folder
    assert cache_dir(tmp_path, "other-enc", pairs.content_hash) != cache.folder
    assert cache_dir(tmp_path, "test-enc", make_pairs(10, tag="!").content_hash) != cache.folder


def test_fetch_reads_exact_rows_in_request_order(tmp_path):
    pairs = make_pairs(10)
    cache = build_feature_cache(tmp_path, pairs, CountingEncoder(), "test-enc", shard_rows=4, encode_rows=3)
    idx = [9, 3, 4, 5, 0, 4, 8]  # crosses shards, a run (3, 4, 5), a repeat
    batch = cache.fetch(torch.tensor(idx))
    neutral, emotional = reference(pairs, idx)
    assert batch.neutral.dtype == torch.float16
    assert torch.equal(batch.neutral, neutral) and torch.equal(batch.emotional, emotional)
    assert batch.arousal.tolist() == [pairs.rows[i].arousal for i in idx]
    assert batch.valence.tolist() == [pairs.rows[i].valence for i in idx]
    assert cache.lines.tolist() == [row.line for row in pairs.rows]
    shards = list(cache.iter_shards())
    assert [s["neutral"].shape[0] for s in shards] == [4, 4, 2]
    with pytest.raises(IndexError):
        cache.fetch([10])


def test_interrupted_build_resumes_at_the_first_missing_shard(tmp_path):
    pairs = make_pairs(10)
    failing = CountingEncoder(fail_on=4)  # shard 0 (2 calls) is written, shard 1 dies on its 2nd call
    with pytest.raises(RuntimeError, match="interrupted"):
        build_feature_cache(tmp_path, pairs, failing, "test-enc", shard_rows=4, encode_rows=2)
    folder = cache_dir(tmp_path, "test-enc", pairs.content_hash)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [MANIFEST, "shard_00000.safetensors"]  # no partial shard, no temp file
    assert json.loads((folder / MANIFEST).read_text())["complete"] is False
    with pytest.raises(CacheError, match="incomplete"):
        FeatureCache(folder)
    with pytest.raises(CacheError, match="no feature cache|incomplete"):
        find_cache(tmp_path, pairs.content_hash).fetch([0])

    resumed = CountingEncoder()
    cache = build_feature_cache(tmp_path, pairs, resumed, "test-enc", shard_rows=99, encode_rows=2)
    assert resumed.calls == 3 and resumed.prompts == 12  # shards 1 and 2 only; the build's shard size is kept
    assert cache.shard_rows == 4
    neutral, emotional = reference(pairs, range(10))
    batch = cache.fetch(torch.arange(10))
    assert torch.equal(batch.neutral, neutral) and torch.equal(batch.emotional, emotional)


def test_damaged_shard_of_an_unfinished_build_is_encoded_again(tmp_path):
    pairs = make_pairs(6)
    with pytest.raises(RuntimeError):
        build_feature_cache(tmp_path, pairs, CountingEncoder(fail_on=2), "e", shard_rows=3, encode_rows=3)
    shard = cache_dir(tmp_path, "e", pairs.content_hash) / "shard_00000.safetensors"
    shard.write_bytes(shard.read_bytes()[:100])  # e.g. a disk error
    again = CountingEncoder()
    cache = build_feature_cache(tmp_path, pairs, again, "e", shard_rows=3, encode_rows=3)
    assert again.calls == 2
    assert torch.equal(cache.fetch([0]).neutral, reference(pairs, [0])[0])


def test_resident_copy_and_memory_budget(tmp_path):
    pairs = make_pairs(9)
    cache = build_feature_cache(tmp_path, pairs, CountingEncoder(), "e", shard_rows=4)
    assert cache.feature_bytes == 2 * 9 * SEQ * DIM * 2
    resident = open_features(cache, "cpu", memory_budget=cache.feature_bytes)
    assert isinstance(resident, ResidentFeatures)
    assert open_features(cache, "cpu", memory_budget=cache.feature_bytes - 1) is cache
    assert open_features(cache, "cpu") is cache  # CPU default: stream
    idx = torch.tensor([8, 0, 4, 4])
    a, b = cache.fetch(idx), resident.fetch(idx)
    for name in ("neutral", "emotional", "arousal", "valence"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_find_cache_and_encoder_errors(tmp_path):
    pairs = make_pairs(4)
    one = build_feature_cache(tmp_path, pairs, CountingEncoder(), "enc-one")
    assert find_cache(tmp_path, pairs.content_hash).folder == one.folder
    assert find_cache(one.folder, pairs.content_hash).folder == one.folder
    build_feature_cache(tmp_path, pairs, CountingEncoder(), "enc-two")
    with pytest.raises(CacheError, match="several caches"):
        find_cache(tmp_path, pairs.content_hash)
    assert find_cache(tmp_path, pairs.content_hash, "enc-one").folder == one.folder
    with pytest.raises(CacheError, match="no feature cache"):
        find_cache(tmp_path, make_pairs(4, tag="?").content_hash)
    with pytest.raises(CacheError, match="expected \\(prompts, tokens, width\\)"):
        build_feature_cache(tmp_path / "bad", pairs, lambda prompts: torch.zeros(len(prompts), DIM), "flat")
    with pytest.raises(CacheError, match="non-finite"):
        build_feature_cache(tmp_path / "inf", pairs, lambda p: torch.full((len(p), SEQ, DIM), 1e6), "huge")
