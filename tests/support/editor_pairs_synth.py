"""A synthetic EmoPair-format dataset whose edits are known exactly, for "learning is real" tests.

Sources are seeded square crops (random position, scale and mirror) of scikit-image's bundled colour photos,
resized to ``size`` px; a crop on which some class's edit would change less than MIN_VISIBLE is drawn again. Each
target is ``transform(class_target, source)``: a fixed, visible, deterministic edit per emotion class, so a trained
editor can be scored against the exact target it should produce on a held-out source:

    amusement   warm tint and lift (R up, B down, brighter)
    anger       red push with stronger contrast
    awe         vignette (corners darkened, centre brightened)
    contentment soft pastel (blend towards white, lower contrast)
    disgust     green-yellow cast
    excitement  hue rotation by 120 degrees (a fixed 3x3 colour matrix in YIQ)
    fear        dark cold (darker, blue cast)
    sadness     desaturate and darken

The files follow the published layout: ``<folder>/train.json`` and ``<folder>/val.json`` (records with
img_src_path, img_tgt_path relative to ``folder``, class_source, class_target, prompt, source_softmax) and the PNGs
under ``<folder>/source`` and ``<folder>/target``. Train and validation crops are drawn from separate seeded
streams (other crops of the same photos).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from emo_core.emoeditor.emotions import EMOTIONS

PROMPTS = {
    "amusement": "make it warm and bright",
    "anger": "make it red and harsh",
    "awe": "add a dark vignette around a glowing centre",
    "contentment": "make it soft and pastel",
    "disgust": "give it a sickly green cast",
    "excitement": "rotate the colours",
    "fear": "make it dark and cold",
    "sadness": "make it grey and dark",
}
MIN_VISIBLE = 0.05  # every class's edit changes a source by at least this mean absolute value ([0, 1] scale)
SOURCE_CONFIDENCE = 0.65  # source_softmax: this on the source class, the rest spread evenly (sums to 1)


def _photos() -> list[np.ndarray]:
    """The colour photos bundled with scikit-image (no download), as uint8 (H, W, 3)."""
    from skimage import data

    return [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry(),
            data.stereo_motorcycle()[0], data.colorwheel()]


def _yiq_hue_rotation(degrees: float) -> np.ndarray:
    """The 3x3 RGB matrix that rotates chroma in YIQ space (luma kept)."""
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    a = np.deg2rad(degrees)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    return np.linalg.inv(to_yiq) @ rot @ to_yiq


_HUE_120 = _yiq_hue_rotation(120.0)
_LUMA = np.array([0.299, 0.587, 0.114])


def _vignette(h: int, w: int) -> np.ndarray:
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    return (1.25 - 0.95 * np.clip(x * x + y * y, 0, 2) / 2)[..., None]  # 1.25 at the centre, 0.3 in the corners


def _transform_hwc(name: str, image: np.ndarray) -> np.ndarray:
    x = image.astype(np.float64)
    if name == "amusement":
        out = x * np.array([1.15, 1.05, 0.8]) + 0.06
    elif name == "anger":
        out = (x - 0.5) * 1.4 + 0.5 + np.array([0.18, -0.08, -0.08])
    elif name == "awe":
        out = x * _vignette(*x.shape[:2])
    elif name == "contentment":
        out = 0.6 * x + 0.4 * np.array([1.0, 0.95, 0.9])
    elif name == "disgust":
        out = x * np.array([0.85, 1.1, 0.6]) + np.array([0.0, 0.06, 0.0])
    elif name == "excitement":
        out = x @ _HUE_120.T
    elif name == "fear":
        out = x * np.array([0.45, 0.5, 0.75]) + np.array([0.0, 0.02, 0.08])
    elif name == "sadness":
        grey = (x @ _LUMA)[..., None]
        out = (0.8 * grey + 0.2 * x) * 0.6
    else:
        raise ValueError(f"unknown emotion {name!r}; valid names: {', '.join(EMOTIONS)}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def transform(class_name: str, image):
    """The exact target edit of ``class_name`` applied to ``image``, values in [0, 1].

    ``image``: a numpy array (H, W, 3) or a torch tensor (3, H, W) / (B, 3, H, W); float in [0, 1] (a uint8 numpy
    array is divided by 255). Returns the same kind and layout, float32."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is always there in this project
        torch = None
    if torch is not None and isinstance(image, torch.Tensor):
        hwc = image.detach().float().cpu().movedim(-3, -1).numpy()
        flat = hwc.reshape(-1, *hwc.shape[-3:])
        out = np.stack([_transform_hwc(class_name, a) for a in flat]).reshape(hwc.shape)
        return torch.from_numpy(out).movedim(-1, -3).to(image.device)
    array = np.asarray(image)
    if array.dtype == np.uint8:
        array = array / 255.0
    return _transform_hwc(class_name, array)


def _crop(photos: list[np.ndarray], rng: np.random.Generator, size: int) -> np.ndarray:
    """A random square crop on which every class's edit is visible (dark or flat crops are drawn again)."""
    for _ in range(100):
        photo = photos[rng.integers(len(photos))]
        h, w = photo.shape[:2]
        side = int(rng.uniform(0.35, 0.9) * min(h, w))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.LANCZOS)
        array = np.asarray(crop, dtype=np.float32) / 255.0
        array = np.ascontiguousarray(array[:, ::-1]) if rng.random() < 0.5 else array
        if min(np.abs(_transform_hwc(name, array) - array).mean() for name in EMOTIONS) >= MIN_VISIBLE:
            return array
    raise RuntimeError("no crop with visible edits found")  # pragma: no cover - the photos give plenty


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


def _softmax_of(source: int) -> list[float]:
    rest = (1.0 - SOURCE_CONFIDENCE) / (len(EMOTIONS) - 1)
    return [SOURCE_CONFIDENCE if i == source else rest for i in range(len(EMOTIONS))]


def _write_split(folder: Path, split: str, n: int, size: int, rng: np.random.Generator, photos) -> list[dict]:
    records, order = [], rng.permutation(len(EMOTIONS))
    for i in range(n):
        source = _crop(photos, rng, size)
        tgt_class = int(order[i % len(EMOTIONS)])  # every class in turn: balanced targets
        src_class = int((tgt_class + 1 + rng.integers(len(EMOTIONS) - 1)) % len(EMOTIONS))  # never the target
        target_name = EMOTIONS[tgt_class]
        src_rel, tgt_rel = f"source/{split}_{i:05d}.png", f"target/{split}_{i:05d}.png"
        _save(source, folder / src_rel)
        _save(_transform_hwc(target_name, source), folder / tgt_rel)
        records.append({"img_src_path": src_rel, "img_tgt_path": tgt_rel, "class_source": EMOTIONS[src_class],
                        "class_target": target_name, "prompt": PROMPTS[target_name],
                        "source_softmax": _softmax_of(src_class)})
    (folder / f"{split}.json").write_text(json.dumps(records, indent=1))
    return records


def write_synthetic_pairs(folder: Path, n_train: int, n_val: int, size: int = 64, seed: int = 0) -> dict:
    """Write ``n_train`` + ``n_val`` pairs (PNG, ``size`` px square) and their EmoPair JSONs into ``folder``.

    Returns {"root": folder, "train_json": Path, "val_json": Path, "train_records": [...], "val_records": [...],
    "transform": transform, "prompts": PROMPTS}. The dataset root for read_editor_pairs is ``folder``. Target classes
    cycle over all eight classes in a seeded order (each split holds every class n // 8 or n // 8 + 1 times); the
    source class is random, never the target, and source_softmax puts SOURCE_CONFIDENCE on it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    photos = _photos()
    train = _write_split(folder, "train", n_train, size, np.random.default_rng([seed, 1]), photos)
    val = _write_split(folder, "val", n_val, size, np.random.default_rng([seed, 2]), photos)
    fn: Callable = transform
    return {"root": folder, "train_json": folder / "train.json", "val_json": folder / "val.json",
            "train_records": train, "val_records": val, "transform": fn, "prompts": dict(PROMPTS)}


TINY_EMOPAIR = "EmoPair/data_EmoPair.json"  # the EditorPairs node's default dataset, relative to the input folder


def write_tiny_emopair(input_dir: Path, n: int = 8, size: int = 32, seed: int = 0) -> Path:
    """A small EmoPair at the node's default path (images beside the JSON), staged in the test host's input folder
    so the node's defaults form a valid graph. Sources are smooth seeded colour fields (no scikit-image needed)."""
    folder = Path(input_dir) / Path(TINY_EMOPAIR).parent
    rng = np.random.default_rng([seed, 3])
    records = []
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
        source = np.asarray(coarse.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
        target_name, source_class = EMOTIONS[i % len(EMOTIONS)], (i + 1) % len(EMOTIONS)
        src_rel, tgt_rel = f"source/tiny_{i:03d}.png", f"target/tiny_{i:03d}.png"
        _save(source, folder / src_rel)
        _save(_transform_hwc(target_name, source), folder / tgt_rel)
        records.append({"img_src_path": src_rel, "img_tgt_path": tgt_rel, "class_source": EMOTIONS[source_class],
                        "class_target": target_name, "prompt": PROMPTS[target_name],
                        "source_softmax": _softmax_of(source_class)})
    path = Path(input_dir) / TINY_EMOPAIR
    path.write_text(json.dumps(records, indent=1))
    return path
