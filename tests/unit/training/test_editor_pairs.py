"""EmoEditor training pairs: the EmoPair JSON reader, its record-numbered errors, softmax filling, the pairs folder."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from editor_pairs_synth import write_synthetic_pairs
from make_tiny_models import make_tiny_predictor
from PIL import Image

from emo_core import EMOTIONS, fill_source_softmax, load_emo_predictor, pairs_from_folder, read_editor_pairs
from emo_core.training.editor import json_stream
from emo_core.training.editor.data import EditorPairsError, load_images

VALID = "amusement, anger, awe, contentment, disgust, excitement, fear, sadness"
SOFTMAX = [0.05, 0.05, 0.65, 0.05, 0.05, 0.05, 0.05, 0.05]


def image(path, size=(20, 12), seed=0, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def record(i=0, **changes):
    rec = {"img_src_path": f"src/{i}.png", "img_tgt_path": f"tgt/{i}.png", "class_source": "awe",
           "class_target": "sadness", "prompt": f"make picture {i} gloomy", "source_softmax": list(SOFTMAX)}
    rec.update(changes)
    return {k: v for k, v in rec.items() if v is not ...}  # `...` removes a field


@pytest.fixture
def root(tmp_path):
    data = tmp_path / "EmoPair"
    for i in range(4):
        image(data / "src" / f"{i}.png", seed=i)
        image(data / "tgt" / f"{i}.png", seed=10 + i)
    return data


def write(tmp_path, records, name="data.json"):
    path = tmp_path / name
    path.write_text(json.dumps(records, indent=2))
    return path


def test_reads_the_published_layout(tmp_path, root):
    path = write(tmp_path, [record(0), record(1, class_source=" Fear ", class_target="excitement")])
    pairs = read_editor_pairs(path, root)
    assert len(pairs) == 2 and pairs.skipped == [] and pairs.root == root.resolve()
    first, second = pairs.pairs
    assert first.source == (root / "src" / "0.png").resolve() and first.target == (root / "tgt" / "0.png").resolve()
    assert (first.class_source, first.class_target, first.record) == (EMOTIONS.index("awe"), 7, 1)
    assert first.prompt == "make picture 0 gloomy" and first.source_softmax.dtype == torch.float32
    expected = -torch.tensor(SOFTMAX)
    expected[7] += 1
    assert torch.equal(first.direction(), expected) and abs(float(first.direction().sum())) < 1e-6
    assert (second.class_source, second.class_target, second.record) == (6, 5, 2)
    assert pairs.histogram() == {**dict.fromkeys(EMOTIONS, 0), "sadness": 1, "excitement": 1}


# (record changes, words the message must contain); each bad record is record 2, after a good one
BAD_RECORDS = {
    "missing image": (dict(img_src_path="src/nope.png"), "img_src_path 'src/nope.png': file not found"),
    "unreadable image": (dict(img_tgt_path="tgt/text.png"), "img_tgt_path 'tgt/text.png': not an image Pillow"),
    "folder as image": (dict(img_tgt_path="tgt"), "img_tgt_path 'tgt': not a regular file"),
    "unknown class": (dict(class_target="joy"), f"class_target 'joy' is not one of {VALID}"),
    "class as number": (dict(class_source=2), f"class_source 2 is not one of {VALID}"),
    "7 softmax values": (dict(source_softmax=SOFTMAX[:7]), "source_softmax must be a list of 8 numbers"),
    "softmax text": (dict(source_softmax="0.125 " * 8), "a list of 8 numbers (alphabetical class order), got str"),
    "softmax NaN": (dict(source_softmax=[float("nan")] + SOFTMAX[1:]), "source_softmax holds NaN or infinity"),
    "softmax inf": (dict(source_softmax=[float("inf")] + SOFTMAX[1:]), "source_softmax holds NaN or infinity"),
    "softmax not numbers": (dict(source_softmax=["0.05"] + SOFTMAX[1:]), "holds a value that is not a number"),
    "softmax bool": (dict(source_softmax=[True] + SOFTMAX[1:]), "holds a value that is not a number"),
    "softmax negative": (dict(source_softmax=[-0.05, 0.15] + SOFTMAX[2:]), "negative value (-0.05)"),
    "softmax sum": (dict(source_softmax=[0.15] + SOFTMAX[1:]), "sums to 1.1, expected 1 (within 0.001)"),
    "missing fields": (dict(prompt=..., class_source=...), "missing field(s) class_source, prompt"),
    "missing softmax": (dict(source_softmax=...), "missing field(s) source_softmax (or let a predictor compute it)"),
    "null softmax": (dict(source_softmax=None), "missing field(s) source_softmax"),
    "empty prompt": (dict(prompt="  "), "prompt must be a non-empty text"),
    "path escape": (dict(img_src_path="../outside.png"), "img_src_path '../outside.png' leads outside the dataset"),
    "deep escape": (dict(img_src_path="src/../../outside.png"), "leads outside the dataset root"),
    "absolute path": (dict(img_tgt_path="ABS"), "must be relative to the dataset root"),
    "control chars": (dict(img_src_path="src/0.png\n"), "contains control characters"),
    "path not text": (dict(img_src_path=3), "img_src_path must be a non-empty path text, got 3"),
    "symlinked file": (dict(img_src_path="src/link.png"), "is a symlink leading outside the dataset root"),
    "symlinked folder": (dict(img_tgt_path="linked/0.png"), "outside the dataset root (through a symlinked folder)"),
}


def prepare_bad_files(tmp_path, root):
    (root / "tgt" / "text.png").write_text("this is not a png")
    image(tmp_path / "outside.png")
    (root / "src" / "link.png").symlink_to(tmp_path / "outside.png")
    (tmp_path / "elsewhere").mkdir()
    image(tmp_path / "elsewhere" / "0.png")
    (root / "linked").symlink_to(tmp_path / "elsewhere")


@pytest.mark.parametrize("case", list(BAD_RECORDS))
def test_every_bad_record_is_named_with_its_number(tmp_path, root, case):
    prepare_bad_files(tmp_path, root)
    changes, words = BAD_RECORDS[case]
    changes = {k: str(tmp_path / "outside.png") if v == "ABS" else v for k, v in changes.items()}
    path = write(tmp_path, [record(0), record(1, **changes), record(2, class_target="joy")])
    with pytest.raises(EditorPairsError) as info:
        read_editor_pairs(path, root)
    message = str(info.value)
    assert message.startswith(f"{path}: record 2: ") and words in message, message
    assert "record 3" not in message and "on_error='skip'" in message  # stop: the first bad record only
    assert "not a png" not in message  # nothing of a file's content is quoted


def test_skip_keeps_the_good_records_and_lists_the_bad(tmp_path, root):
    prepare_bad_files(tmp_path, root)
    records = [record(0), record(1, class_target="joy"), record(2), record(3, img_src_path="../outside.png"),
               record(3, source_softmax=[0.2] * 8), "not a record", record(1, prompt="second use of pair 1")]
    pairs = read_editor_pairs(write(tmp_path, records), root, on_error="skip")
    assert [p.record for p in pairs] == [1, 3, 7] and pairs.pairs[2].prompt == "second use of pair 1"
    assert pairs.skipped == [
        f"record 2: class_target 'joy' is not one of {VALID}",
        "record 4: img_src_path '../outside.png' leads outside the dataset root",
        "record 5: source_softmax sums to 1.6, expected 1 (within 0.001)",
        "record 6: expected an object with img_src_path, img_tgt_path, class_source, class_target, prompt, "
        "source_softmax, got str",
    ]


def test_nothing_usable_is_an_error_even_when_skipping(tmp_path, root):
    path = write(tmp_path, [record(0, class_target="joy"), record(1, img_src_path="src/nope.png")])
    with pytest.raises(EditorPairsError, match=r"no usable records \(2 bad: record 1: class_target 'joy'.*; "
                                               r"record 2: img_src_path 'src/nope.png': file not found\)"):
        read_editor_pairs(path, root, on_error="skip")
    with pytest.raises(EditorPairsError, match=r"no usable records \(none given\)"):
        read_editor_pairs(write(tmp_path, []), root, on_error="skip")


@pytest.mark.parametrize(("text", "words"), [
    ('{"img_src_path": "src/0.png"}', "expected a JSON list of records starting with '['"),
    ('[{"a": 1}, {"b": 2} {"c": 3}]', "after record 2: expected ',' or ']', got '{'"),
    ('[{"a": 1},\n{"b": 2,\n "c": tru}]', "record 2: not valid JSON (Expecting value) near line 3"),
    ('[{"a": 1},\n{"b": "no end', "record 2: not valid JSON (Unterminated string starting at) near line 2"),
    ('[{"a": 1}] trailing', "unexpected text after the closing ']'"),
])
@pytest.mark.parametrize("chunk", [3, 1 << 20])
def test_broken_json_names_the_record(tmp_path, root, monkeypatch, text, words, chunk):
    monkeypatch.setattr(json_stream, "_CHUNK", chunk)  # records cut at chunk ends must not matter
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(EditorPairsError) as info:
        read_editor_pairs(path, root, on_error="skip")
    assert str(info.value).startswith(str(path)) and words in str(info.value), str(info.value)


def test_streaming_in_small_chunks_reads_the_same_pairs(tmp_path, root, monkeypatch):
    path = write(tmp_path, [record(i % 4, source_softmax=[0.125] * 8, prompt=f"p{i}") for i in range(50)])
    whole = read_editor_pairs(path, root)
    monkeypatch.setattr(json_stream, "_CHUNK", 7)
    assert read_editor_pairs(path, root).fingerprint() == whole.fingerprint() and len(whole) == 50


def test_exists_mode_only_checks_files(tmp_path, root):
    prepare_bad_files(tmp_path, root)
    path = write(tmp_path, [record(0, img_tgt_path="tgt/text.png")])
    assert read_editor_pairs(path, root, check_images="exists").pairs[0].target.name == "text.png"
    with pytest.raises(EditorPairsError, match="record 1: img_tgt_path 'tgt/text.png': not an image"):
        read_editor_pairs(path, root, check_images="open")
    with pytest.raises(EditorPairsError, match="record 1: img_src_path 'src/link.png' is a symlink leading outside"):
        read_editor_pairs(write(tmp_path, [record(0, img_src_path="src/link.png")]), root, check_images="exists")
    (root / "src" / "inner.png").symlink_to(root / "src" / "1.png")  # a link inside the root is fine
    pair = read_editor_pairs(write(tmp_path, [record(0, img_src_path="src/inner.png")]), root).pairs[0]
    assert pair.source == (root / "src" / "1.png").resolve()


def test_fingerprint_follows_records_and_image_files(tmp_path, root):
    path = write(tmp_path, [record(0), record(1)])
    first = read_editor_pairs(path, root).fingerprint()
    assert read_editor_pairs(path, root).fingerprint() == first and len(first) == 64
    assert read_editor_pairs(write(tmp_path, [record(0), record(1, prompt="other")]), root).fingerprint() != first
    changed_softmax = [record(0), record(1, source_softmax=[0.125] * 8)]
    assert read_editor_pairs(write(tmp_path, changed_softmax), root).fingerprint() != first
    target = root / "tgt" / "1.png"
    stamp = target.stat().st_mtime_ns
    image(target, seed=99)  # same size in pixels, new content
    os.utime(target, ns=(stamp, stamp + 1_000_000_000))
    assert read_editor_pairs(path, root).fingerprint() != first


def test_load_images_squashes_with_pillow_bilinear(tmp_path):
    wide = image(tmp_path / "wide.png", size=(300, 100), seed=1)
    grey = image(tmp_path / "grey.png", size=(64, 64), seed=2, mode="L")
    batch = load_images([wide, grey], size=32)
    assert batch.shape == (2, 3, 32, 32) and batch.dtype == torch.float32
    expected = np.asarray(Image.open(wide).convert("RGB").resize((32, 32), Image.BILINEAR), dtype=np.float32)
    assert torch.equal(batch[0], torch.from_numpy(expected).permute(2, 0, 1) / 255)
    assert torch.equal(batch[1, 0], batch[1, 2])  # grey became RGB
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(EditorPairsError, match=r"bad\.png: cannot read the image"):
        load_images([wide, tmp_path / "bad.png"])


def test_missing_softmax_is_computed_with_the_predictor(tmp_path, root):
    predictor = load_emo_predictor(make_tiny_predictor(tmp_path / "predictor.pt", seed=3))
    records = [record(0, source_softmax=...), record(1), record(2, source_softmax=None)]
    pairs = read_editor_pairs(write(tmp_path, records), root, need_softmax=False)
    assert pairs.pairs[0].source_softmax is None and pairs.pairs[2].source_softmax is None
    with pytest.raises(ValueError, match="record 1: source_softmax is not computed"):
        pairs.pairs[0].direction()
    progress = []
    filled = fill_source_softmax(pairs, lambda pixels: torch.softmax(predictor(pixels), dim=1), batch_size=1,
                                 on_batch=lambda done, total: progress.append((done, total)))
    assert progress == [(1, 2), (2, 2)] and pairs.pairs[0].source_softmax is None  # the input is not changed
    assert torch.equal(filled.pairs[1].source_softmax, torch.tensor(SOFTMAX))  # a given softmax is kept
    for i in (0, 2):
        with Image.open(root / "src" / f"{i}.png") as source:  # the predictor's own published preprocessing
            expected = predictor.predict(source).distribution[0]
        assert torch.allclose(filled.pairs[i].source_softmax, expected, atol=1e-6)
        assert not torch.allclose(expected, torch.full((8,), 0.125), atol=1e-3)  # a real, non-uniform prediction
    assert filled.fingerprint() != pairs.fingerprint()
    with pytest.raises(ValueError, match=r"record 1 \(0\.png\): the predictor's source_softmax holds NaN"):
        fill_source_softmax(pairs, lambda pixels: torch.full((len(pixels), 8), float("nan")))
    with pytest.raises(ValueError, match=r"returned shape \(2, 7\), expected \(2, 8\)"):
        fill_source_softmax(pairs, lambda pixels: torch.zeros(len(pixels), 7))


def write_folder(folder, csv_text):
    for name, seed in (("a.png", 1), ("b.png", 2), ("c.jpg", 3)):
        image(folder / "source" / name, seed=seed)
        image(folder / "target" / name, seed=seed + 10)
    (folder / "pairs.csv").write_text(csv_text)
    return folder


def test_pairs_folder_with_and_without_softmax(tmp_path):
    folder = write_folder(tmp_path / "mine", (
        "name,class_source,class_target,prompt,source_softmax\n"
        'a.png,awe,Sadness,"make it sad, please",\n'
        'b,fear,amusement,make it fun,"[0.05 0.05 0.05 0.05 0.05 0.05 0.65 0.05]"\n'
        "\n"
        "c.jpg,anger,contentment,calm it down,0.05;0.65;0.05;0.05;0.05;0.05;0.05;0.05\n"))
    pairs = pairs_from_folder(folder)
    assert [p.record for p in pairs] == [2, 3, 5] and pairs.source_file == folder.resolve() / "pairs.csv"
    a, b, c = pairs.pairs
    assert a.source == (folder / "source" / "a.png").resolve() and a.prompt == "make it sad, please"
    assert a.source_softmax is None and a.class_target == 7
    assert b.target == (folder / "target" / "b.png").resolve() and float(b.source_softmax[6]) == pytest.approx(0.65)
    assert c.source.name == "c.jpg" and float(c.source_softmax[1]) == pytest.approx(0.65)
    with pytest.raises(EditorPairsError, match=r"line 2: missing field\(s\) source_softmax"):
        pairs_from_folder(folder, need_softmax=True)


def test_pairs_folder_errors_name_the_csv_line(tmp_path):
    folder = write_folder(tmp_path / "mine", (
        "name,class_source,class_target,prompt\n"
        "a.png,awe,sadness,ok\n"
        "missing.png,awe,sadness,no such image\n"
        "b.png,awe,joy,unknown class\n"
        "c.jpg,awe,sadness,too,many,fields\n"
        ",awe,sadness,no name\n"))
    with pytest.raises(EditorPairsError, match=r"pairs\.csv: line 3: img_src_path 'source/missing\.png': file not "
                                               r"found\. Fix it"):
        pairs_from_folder(folder)
    pairs = pairs_from_folder(folder, on_error="skip")
    assert [p.record for p in pairs] == [2]
    assert pairs.skipped == ["line 3: img_src_path 'source/missing.png': file not found",
                             f"line 4: class_target 'joy' is not one of {VALID}",
                             "line 5: 6 fields, expected 4 (an unquoted comma in a prompt?)",
                             "line 6: name is empty"]
    (folder / "pairs.csv").write_text("file,class_source,class_target\n")
    with pytest.raises(EditorPairsError, match="line 1: header lacks column.s. name, prompt"):
        pairs_from_folder(folder)
    with pytest.raises(EditorPairsError, match="not a pairs folder: other.csv is missing"):
        pairs_from_folder(folder, csv_name="other.csv")
    with pytest.raises(ValueError, match="csv_name must be a file name"):
        pairs_from_folder(folder, csv_name="../pairs.csv")
    shutil.rmtree(folder / "target")
    with pytest.raises(EditorPairsError, match="not a pairs folder: 'target/' is missing"):
        pairs_from_folder(folder)


def test_synthetic_pairs_match_their_transforms(tmp_path):
    """The support helper the trainer tests use: every target file is transform(class_target, source)."""
    made = write_synthetic_pairs(tmp_path, n_train=16, n_val=8, size=32, seed=1)
    train = read_editor_pairs(made["train_json"], made["root"])
    val = read_editor_pairs(made["val_json"], made["root"])
    assert len(train) == 16 and len(val) == 8 and set(train.histogram().values()) == {2}
    assert {p.source for p in train.pairs}.isdisjoint(p.source for p in val.pairs)
    sources = load_images([p.source for p in val.pairs], size=32)
    targets = load_images([p.target for p in val.pairs], size=32)
    for pair, source, target in zip(val.pairs, sources, targets, strict=True):
        assert pair.class_source != pair.class_target
        assert pair.prompt == made["prompts"][EMOTIONS[pair.class_target]]
        edited = made["transform"](EMOTIONS[pair.class_target], source)
        assert (edited - target).abs().max() <= 1 / 255 + 1e-6  # only 8-bit rounding
        assert (source - target).abs().mean() > 0.03  # a visible edit
