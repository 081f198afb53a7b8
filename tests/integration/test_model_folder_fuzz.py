"""Hostile files in the model folders the plugin lists (models/emoeditor, models/emoticrafter, models/clip_vision):
/object_info must stay fast, keep every EmoNodes_* node, and list each dropped file once (with its kind) or not at
all. Every file a test drops is removed afterwards: the host is shared with the other tests."""

import json
import os
import random
import shutil
import struct
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest

PREFIX = "EmoNodes_"
FOLDERS = ("emoeditor", "emoticrafter", "clip_vision")
# {node id: {combo input: model folder}}: every model list of the plugin
COMBOS = {"EmoNodes_EmoEditorLoader": {"editor_name": "emoeditor", "encoder_name": "emoeditor",
                                       "predictor_name": "emoeditor"},
          "EmoNodes_EmotiCrafterLoader": {"eit_name": "emoticrafter"},
          "EmoNodes_VACriticLoader": {"clip_name": "clip_vision", "valence_head": "emoticrafter",
                                      "arousal_head": "emoticrafter"}}
# the files of the tiny models that must stay listed in their combos
KEEP = {("EmoNodes_EmotiCrafterLoader", "eit_name"): "emo_tiny_eit.pth",
        ("EmoNodes_EmoEditorLoader", "editor_name"): "emo_tiny_ip2p.pt",
        ("EmoNodes_EmoEditorLoader", "predictor_name"): "emo_tiny_predictor.pt",
        ("EmoNodes_VACriticLoader", "clip_name"): "emo_tiny_clip_b32.safetensors",
        ("EmoNodes_VACriticLoader", "valence_head"): "emo_tiny_valence1_CLIP.pth"}
PATCH_KEY = "vision_model.embeddings.patch_embedding.weight"


def options(info: dict, class_type: str, name: str) -> list[str]:
    spec = info[class_type]["input"]["required"][name]
    return spec[1]["options"] if len(spec) > 1 and "options" in spec[1] else spec[0]


def ours(info: dict) -> set[str]:
    return {c for c in info if c.startswith(PREFIX)}


def timed_object_info(host) -> tuple[dict, float]:
    start = time.perf_counter()
    info = host.get("/object_info")
    return info, time.perf_counter() - start


def rss_bytes(host, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{host.proc.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for the host process")


@contextmanager
def dropped(host):
    """Yields a function drop(folder, relative name) -> Path; removes every dropped path on exit."""
    made: list[Path] = []

    def drop(folder: str, name: str) -> Path:
        path = host.base / "models" / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        made.append(path)
        return path

    try:
        yield drop
    finally:
        for path in reversed(made):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)  # files, FIFOs, symlinks (looping or dangling)


def safetensors_bytes(header: dict, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def zip_bomb(path: Path, inflated: int = 512 * 2**20) -> None:
    """A torch-zip lookalike (~1 MB) whose data.pkl inflates to ``inflated`` bytes."""
    chunk = bytes(2**20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("archive/version", "3\n")
        with archive.open("archive/data.pkl", "w", force_zip64=True) as member:
            for _ in range(inflated // len(chunk)):
                member.write(chunk)


def assert_listings(info: dict, before: dict, names: set[str] | None = None) -> None:
    assert ours(info) >= ours(before), f"EmoNodes nodes vanished: {sorted(ours(before) - ours(info))}"
    for class_type, combos in COMBOS.items():
        for combo in combos:
            listed = options(info, class_type, combo)
            assert len(listed) == len(set(listed)), f"{class_type}.{combo} lists duplicates: {listed}"
            assert not any("emo_fuzz_loop/" in n for n in listed), f"{class_type}.{combo} follows a loop: {listed}"
            if (class_type, combo) in KEEP:
                assert KEEP[class_type, combo] in listed, f"{class_type}.{combo} lost its good file: {listed}"


# --- (a) a zip bomb ------------------------------------------------------------------------------------------------

def test_zip_bomb_keeps_object_info_fast_and_small(host):
    before, baseline = timed_object_info(host)
    with dropped(host) as drop:
        for folder in ("emoeditor", "emoticrafter"):
            zip_bomb(drop(folder, "emo_fuzz_bomb.pth"))
        assert (host.base / "models" / "emoeditor" / "emo_fuzz_bomb.pth").stat().st_size < 2 * 2**20
        rss = rss_bytes(host)
        info, elapsed = timed_object_info(host)
        grown = rss_bytes(host) - rss
        assert elapsed < max(2.0, 2 * baseline), f"/object_info took {elapsed:.2f} s (before: {baseline:.2f} s)"
        assert grown < 200 * 2**20, f"the server grew by {grown / 2**20:.0f} MB listing a zip bomb"
        assert_listings(info, before)


# --- (b) the reported files ----------------------------------------------------------------------------------------

def test_reported_bad_headers_keep_every_node(host):
    before = host.get("/object_info")
    with dropped(host) as drop:
        drop("emoeditor", "emo_fuzz_huge.safetensors").write_bytes(safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [0, 2**64 - 1], "data_offsets": [0, 0]}}))
        drop("clip_vision", "emo_fuzz_scalar_patch.safetensors").write_bytes(safetensors_bytes(
            {PATCH_KEY: {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
             "visual_projection.weight": {"dtype": "F32", "shape": [512, 1], "data_offsets": [4, 2052]}},
            bytes(2052)))
        info = host.get("/object_info")
        assert_listings(info, before)
        assert "emo_fuzz_scalar_patch.safetensors" not in options(info, "EmoNodes_VACriticLoader", "clip_name")


# --- (c) a seeded fuzz ---------------------------------------------------------------------------------------------

def random_header(rng: random.Random) -> tuple[dict, bytes]:
    keys = ["w", PATCH_KEY, "visual_projection.weight", "classifier.0.weight", "classifier.0.bias",
            "xl_feature2gpt_feature.weight", "h.0.attn_a.c_z.weight", "conv_in.weight", "__metadata__"]
    dims = [0, 1, 3, 32, 512, -1, 2**31, 2**63, 2**64 - 1, 1.5, "7", None]
    header, offset = {}, 0
    for _ in range(rng.randint(0, 4)):
        key = rng.choice(keys)
        if key == "__metadata__":
            header[key] = rng.choice([{"emo_nodes.kind": rng.choice(["emo_encoder", "x", 3])}, [], "meta"])
            continue
        shape = [rng.choice(dims) for _ in range(rng.randint(0, 3))] if rng.random() < 0.9 else "bad"
        size = rng.choice([0, 4, 64, 2**40, -4])
        header[key] = {"dtype": rng.choice(["F32", "F16", "BOGUS", None]), "shape": shape,
                       "data_offsets": rng.choice([[offset, offset + size], [size, 0], [0], "x"])}
        offset += max(size, 0)
    return header, bytes(rng.choice([0, 4, 100]))


def fuzz_files(drop, rng: random.Random, folder: str, count: int) -> None:
    for i in range(count):
        choice = rng.randrange(9)
        suffix = rng.choice([".safetensors", ".pth", ".pt", ".bin", ".ckpt"])
        if choice <= 2:
            drop(folder, f"emo_fuzz_{i}_header.safetensors").write_bytes(safetensors_bytes(*random_header(rng)))
        elif choice == 3:  # truncated: a long header length or cut data
            raw = safetensors_bytes({"w": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}, bytes(32))
            drop(folder, f"emo_fuzz_{i}_cut.safetensors").write_bytes(raw[:rng.randrange(len(raw))])
        elif choice == 4:
            drop(folder, f"emo_fuzz_{i}_noise{suffix}").write_bytes(rng.randbytes(rng.randrange(1, 4096)))
        elif choice == 5:  # a zip: random members, or a small bomb
            with zipfile.ZipFile(drop(folder, f"emo_fuzz_{i}_zip{suffix}"), "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("archive/data.pkl", rng.randbytes(64) if rng.random() < 0.5 else bytes(80 * 2**20))
                archive.writestr("archive/data/0", rng.randbytes(16))
        elif choice == 6:
            drop(folder, f"emo_fuzz_{i}_empty{suffix}").write_bytes(b"")
        elif choice == 7:
            os.mkfifo(drop(folder, f"emo_fuzz_{i}_fifo{suffix}"))
        else:  # a dangling symlink, or one to itself
            path = drop(folder, f"emo_fuzz_{i}_link{suffix}")
            path.symlink_to(path if rng.random() < 0.5 else path.with_name("emo_fuzz_nowhere"))


@pytest.mark.parametrize("seed", [0, 1])
def test_seeded_fuzz_keeps_every_node_and_lists_each_file_once(host, seed):
    rng = random.Random(seed)
    before = host.get("/object_info")
    with dropped(host) as drop:
        for folder in FOLDERS:
            fuzz_files(drop, rng, folder, 14)
            loop = drop(folder, "emo_fuzz_loop")  # a directory symlink to its own folder
            loop.symlink_to(loop.parent, target_is_directory=True)
        hf = drop("clip_vision", "emo_fuzz_hf")  # a Hugging Face folder holding a damaged file
        hf.mkdir()
        (hf / "model.safetensors").write_bytes(safetensors_bytes(*random_header(rng)))
        info, elapsed = timed_object_info(host)
        print(f"/object_info with the fuzz files: {elapsed:.2f} s")
        assert_listings(info, before)
        for class_type, combos in COMBOS.items():
            for combo, folder in combos.items():
                listed = options(info, class_type, combo)
                on_disk = {p.name for p in (host.base / "models" / folder).glob("emo_fuzz_*")}
                dropped_listed = [n for n in listed if n.split("/")[0].startswith("emo_fuzz_")]
                assert all(n.split("/")[0] in on_disk for n in dropped_listed), dropped_listed
        assert host.get("/system_stats")  # still serving
