"""Training inputs: the streamed pairs CSV (bad rows skipped exactly, nothing echoed from other files, bounded
memory), the CLIP fingerprint that keys the feature cache, and cache housekeeping."""

import hashlib
import os
import time
import tracemalloc

import pytest
import torch

from emo_core.commands import main as commands_main
from emo_core.training.eit.caches import list_caches, stale_caches
from emo_core.training.eit.data import MAX_FIELD_CHARS, DatasetError, parse_pairs, read_pairs
from emo_core.training.eit.features import build_feature_cache, synthetic_encoder
from emo_core.training.eit.fingerprint import clip_fingerprint

HEADER = "Id,Arousal,Valence,Tag,Dataset,Neutral_Prompt,Emotional_Prompt\n"


def good_rows(n, start=0):
    return [f'{i},0.5,-0.5,Scene,t,"a plain scene {i}","a joyful, bright scene {i}"\n' for i in range(start, start + n)]


# --------------------------------------------------------------------------------------------- pairs CSV
def test_one_oversized_field_skips_exactly_that_row(tmp_path):
    rows = good_rows(50) + [f'50,0.5,0.5,Scene,t,"{"x" * (MAX_FIELD_CHARS + 1)}","long"\n'] + good_rows(50, 51)
    path = tmp_path / "pairs.csv"
    path.write_text(HEADER + "".join(rows))
    data = read_pairs(path, on_error="skip")
    assert len(data) == 100 and [p.line for p in data.skipped] == [52]
    assert "longer than 131,072 characters" in data.skipped[0].reason
    assert data.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DatasetError, match="line 52: a field is longer"):
        read_pairs(path, on_error="stop")


def test_syntax_errors_skip_only_their_rows():
    text = HEADER + "".join(good_rows(3)) + (
        '3,0.1,0.2,S,t,"closed"oops,"e"\n'  # line 5: strict-mode error: text after a closing quote
        '4,0.1,0.2,S,t,He said "hi,fine\n'  # line 6: a lone quote inside an unquoted field is text (as csv reads it)
        '5,0.1,0.2,S,t,"two\nlines","ok"\n'  # lines 7-8
    ) + "".join(good_rows(2, 6))  # lines 9-10
    data = parse_pairs(text, on_error="skip")
    assert [p.line for p in data.skipped] == [5] and "',' expected" in data.skipped[0].reason
    assert [row.line for row in data.rows] == [2, 3, 4, 6, 7, 9, 10]
    assert data.rows[3].neutral == 'He said "hi'


def test_unclosed_quote_is_reported_at_its_line():
    text = HEADER + "".join(good_rows(2)) + '2,0.1,0.2,S,t,n,"never closed\nat the end of the file\n'
    with pytest.raises(DatasetError, match="line 4: CSV syntax error: a quoted field is never closed"):
        parse_pairs(text)


def test_invalid_utf8_rows_are_skipped_not_fatal():
    data = parse_pairs(HEADER.encode() + b'1,0,0,S,t,"caf\xe9","e"\n' + "".join(good_rows(2, 2)).encode(), "skip")
    assert [p.line for p in data.skipped] == [2] and "not UTF-8" in data.skipped[0].reason and len(data) == 2


def test_other_files_are_refused_without_quoting_them(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    for content in (passwd.read_bytes(), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR secret", b"Id,Name\nsecret,value\n"):
        passwd.write_bytes(content)
        with pytest.raises(DatasetError) as info:
            read_pairs(passwd)
        message = str(info.value)
        assert "root:x" not in message and "bash" not in message and "secret" not in message, message
        assert "Name" not in message and "IHDR" not in message, message
        assert "Neutral_Prompt" in message  # says what was expected
    typo = HEADER.replace("Neutral_Prompt", "Neutral Prompt")  # a pairs CSV with a typo: its columns are named
    with pytest.raises(DatasetError, match="lacks column\\(s\\) Neutral_Prompt.*'Neutral Prompt'"):
        parse_pairs(typo + "".join(good_rows(1)))


def test_large_files_are_streamed_in_bounded_memory(tmp_path):
    blob = tmp_path / "big.bin"
    with open(blob, "wb") as handle:  # 64 MB of text without a newline (not a CSV)
        for _ in range(64):
            handle.write(b"A" * (1 << 20))
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(DatasetError, match="not a pairs CSV: line 1 is longer than"):
        read_pairs(blob)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 << 20 and seconds < 5, (peak, seconds)

    big = tmp_path / "big.csv"
    with open(big, "w") as handle:  # a valid header, then one 32 MB broken row, then good rows
        handle.write(HEADER)
        handle.write('1,0,0,S,t,"' + "y" * (32 << 20) + '\n')  # never closed: swallows the rest of the file
    tracemalloc.start()
    with pytest.raises(DatasetError, match="line 2: row longer than 1,048,576 characters"):
        read_pairs(big, on_error="skip")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20, peak


# ------------------------------------------------------------------------------------------- fingerprint
class FakeText(torch.nn.Module):
    def __init__(self, layers, width, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.text_model = torch.nn.Module()
        self.text_model.embeddings = torch.nn.Embedding(10, width)
        self.text_model.encoder = torch.nn.Module()
        self.text_model.encoder.layers = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(layers))
        self.text_model.final_layer_norm = torch.nn.LayerNorm(width)
        self.text_projection = torch.nn.Linear(width, width, bias=False)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g)


class FakeSub(torch.nn.Module):
    """The parts of ComfyUI's SDClipModel the fingerprint reads."""

    def __init__(self, width, seed, layers=3):
        super().__init__()
        self.transformer = FakeText(layers, width, seed)
        self.num_layers, self.layer, self.layer_idx = layers, "hidden", -2
        self.layer_norm_hidden_state, self.max_length = False, 77
        self.special_tokens = {"start": 1, "end": 2, "pad": 2}
        self.options_default = (self.layer, self.layer_idx, True)
        self.logit_scale = torch.nn.Parameter(torch.tensor(4.6))


class FakeClip:
    def __init__(self, seed=0):
        self.cond_stage_model = torch.nn.Module()
        self.cond_stage_model.clip_l = FakeSub(8, seed)
        self.cond_stage_model.clip_g = FakeSub(12, seed + 1)
        self.patcher = type("Patcher", (), {"patches": {}, "backup": {}})()
        self.tokenizer = type("Tokenizer", (), {})()
        self.layer_idx = None


def test_fingerprint_ignores_what_the_features_do_not_read():
    a, b = FakeClip(), FakeClip()
    assert clip_fingerprint(a) == clip_fingerprint(b)
    text = b.cond_stage_model.clip_l.transformer
    text.text_projection.weight.data.uniform_()  # uninitialised in ComfyUI: differs on every load
    text.text_model.encoder.layers[2].weight.data.uniform_()  # after the penultimate layer
    text.text_model.final_layer_norm.weight.data.uniform_()  # not applied to SDXL's hidden layer
    b.cond_stage_model.clip_l.logit_scale.data.fill_(1.0)
    b.cond_stage_model.clip_l.layer, b.cond_stage_model.clip_l.layer_idx = "last", None  # mutated by a run
    assert clip_fingerprint(a) == clip_fingerprint(b)


def test_fingerprint_follows_weights_layers_and_patches():
    base = clip_fingerprint(FakeClip())
    assert clip_fingerprint(FakeClip(seed=5)) != base  # another checkpoint
    changed = FakeClip()
    with torch.no_grad():
        changed.cond_stage_model.clip_g.transformer.text_model.encoder.layers[1].weight[3, 4] += 1e-3
    assert clip_fingerprint(changed) != base  # one weight of a used layer
    last = FakeClip()
    last.layer_idx = -1  # Set CLIP Last Layer
    assert clip_fingerprint(last) != base
    key = "clip_l.transformer.text_model.encoder.layers.0.weight"
    lora = FakeClip()
    lora.patcher.patches = {key: [(1.0, ("diff", (torch.ones(8, 8),)), 1.0, None, None)]}
    half = FakeClip()
    half.patcher.patches = {key: [(0.5, ("diff", (torch.ones(8, 8),)), 1.0, None, None)]}
    assert len({base, clip_fingerprint(lora), clip_fingerprint(half)}) == 3
    patched = FakeClip()  # LoRA merged in place by ComfyUI while loaded: the backup holds the original weight
    patched.patcher.patches = lora.patcher.patches
    layer = patched.cond_stage_model.clip_l.transformer.text_model.encoder.layers[0]
    original = layer.weight.detach().clone()
    patched.patcher.backup = {key: type("Backup", (), {"weight": original})()}
    layer.weight.data += 1.0
    assert clip_fingerprint(patched) == clip_fingerprint(lora)


# ---------------------------------------------------------------------------------------------- caches
def test_caches_are_listed_and_only_stale_ones_removed(tmp_path, capsys):
    pairs = parse_pairs(HEADER + "".join(good_rows(4)))
    other_csv = parse_pairs(HEADER + "".join(good_rows(4, 10)))
    root = tmp_path / "feature_cache"
    old = build_feature_cache(root, pairs, synthetic_encoder(8, 16), "encoder-old")
    new = build_feature_cache(root, pairs, synthetic_encoder(8, 16), "encoder-new")
    alone = build_feature_cache(root, other_csv, synthetic_encoder(8, 16), "encoder-old")
    past = time.time() - 3 * 86400
    os.utime(old.folder / "manifest.json", (past, past))
    infos = list_caches(root)
    assert len(infos) == 3
    assert [i.folder for i in stale_caches(infos)] == [old.folder]  # the newest cache of each CSV is kept
    assert stale_caches(infos, older_than_days=7) == []
    assert stale_caches(infos, keep=[old.folder]) == []

    assert commands_main(["caches", str(root)]) == 0
    listing = capsys.readouterr().out
    assert "3 cache(s), 1 stale" in listing and old.folder.name in listing
    assert commands_main(["caches", str(root), "--remove-stale"]) == 0
    assert not old.folder.exists() and new.folder.is_dir() and alone.folder.is_dir()
    build_feature_cache(root, pairs, synthetic_encoder(8, 16), "encoder-new")  # still complete: reused
