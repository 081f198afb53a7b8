"""The paper's metrics against an independent numpy computation on fixed numbers, the 5x5 protocol, the file names
of the published protocol, and ``python -m emo_core evaluate`` over such a folder (tiny models)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from critic_reference import reference_clip_score, reference_va
from paths import ROOT
from PIL import Image
from tiny_critic import random_head, save_clip, save_head, tiny_clip

from emo_core.evaluation.cli import main
from emo_core.evaluation.folder import cell_file_name, parse_cell_name
from emo_core.evaluation.metrics import (
    cell_errors,
    clip_score_stats,
    clip_scores,
    format_table,
    protocol_points,
    va_errors,
)

TOKENIZER = ROOT / ".host" / "comfyui" / "comfy" / "sd1_tokenizer"
PRED = torch.tensor([[1.2, -0.4], [-2.9, 2.5], [0.0, 0.3], [2.2, -1.7], [0.5, 0.5]])
TARGET = torch.tensor([[3.0, 0.0], [-3.0, 3.0], [0.0, 0.0], [1.5, -1.5], [-1.5, 1.5]])


def test_va_errors_equal_numpy():
    errors = np.abs(PRED.numpy().astype(np.float64) - TARGET.numpy())
    got = va_errors(PRED, TARGET)
    assert got["v_mean"] == pytest.approx(np.mean(errors[:, 0]), abs=1e-7)
    assert got["v_std"] == pytest.approx(np.std(errors[:, 0]), abs=1e-7)  # population std (ddof 0)
    assert got["a_mean"] == pytest.approx(np.mean(errors[:, 1]), abs=1e-7)
    assert got["a_std"] == pytest.approx(np.std(errors[:, 1]), abs=1e-7)
    assert got["v_mean"] == pytest.approx((1.8 + 0.1 + 0.0 + 0.7 + 2.0) / 5, abs=1e-6)
    one = va_errors(PRED, torch.tensor([0.0, 0.0]))  # one target for every image
    assert one["a_mean"] == pytest.approx(np.mean(np.abs(PRED.numpy()[:, 1])), abs=1e-7)
    with pytest.raises(ValueError, match="5 predictions but 2 targets"):
        va_errors(PRED, TARGET[:2])
    with pytest.raises(ValueError, match="NaN"):
        va_errors(PRED, torch.full((5, 2), float("nan")))


def test_clip_scores_equal_numpy():
    generator = np.random.default_rng(3)
    image, text = generator.normal(size=(6, 512)), generator.normal(size=(6, 512))
    text[0] = image[0] * 2.0  # cos 1 -> 100
    text[1] = -image[1]  # cos -1 -> 0
    cos = np.sum(image * text, axis=1) / (np.linalg.norm(image, axis=1) * np.linalg.norm(text, axis=1))
    expected = 100 * np.maximum(cos, 0)
    got = clip_scores(torch.from_numpy(image).float(), torch.from_numpy(text).float())
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)
    assert got[0].item() == pytest.approx(100, abs=1e-4) and got[1].item() == 0
    stats = clip_score_stats(got)
    assert stats["clip_score_mean"] == pytest.approx(expected.mean(), abs=1e-4)
    assert stats["clip_score_std"] == pytest.approx(expected.std(), abs=1e-4)


def test_protocol_and_cells():
    points = protocol_points()
    assert len(points) == 25 and points[0] == (-3.0, 3.0) and points[4] == (3.0, 3.0) and points[-1] == (3.0, -3.0)
    pred = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [-3.0, 3.0]])
    target = torch.tensor([[1.5, 0.0], [1.5, 0.0], [1.5, 0.0], [-3.0, 3.0]])  # two prompts of one cell + another
    cells = cell_errors(pred, target)
    assert [(c["valence"], c["arousal"], c["count"]) for c in cells] == [(-3.0, 3.0, 1), (1.5, 0.0, 3)]
    assert cells[1]["v_error"] == pytest.approx((1.5 + 0.5 + 0.5) / 3)
    assert cells[1]["a_error"] == pytest.approx((0 + 1 + 2) / 3)
    table = format_table({"images": 4, **va_errors(pred, target)})
    assert "| 4 |" in table and "±" in table and table.rstrip().endswith("| - |")


@pytest.mark.parametrize(("name", "expected"), [
    ("V-A (-1.5,3) | a child playing in a park.png", (-1.5, 3.0, "a child playing in a park", "published")),
    ("V-A (0.0,-3.0) | a dog.jpg", (0.0, -3.0, "a dog", "published")),
    ("V-A (1.5,-1.5) _ a red car, at night.png", (1.5, -1.5, "a red car, at night", "safe")),
    ("grid_cell_00001_.png", None),
    ("V-A (1.5) | x.png", None),
])
def test_cell_names(name, expected):
    assert parse_cell_name(name) == expected
    if expected:
        v, a, prompt, naming = expected
        assert parse_cell_name(cell_file_name(v, a, prompt, naming))[:3] == (v, a, prompt)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A tiny critic and a folder of 2 prompts x 4 cells in both namings, plus one unrelated image."""
    base = tmp_path_factory.mktemp("evaluate")
    model = tiny_clip(seed=4)
    heads = (random_head(11), random_head(12))
    files = {"clip": save_clip(model, base / "clip.safetensors"), "valence": save_head(heads[0], base / "v.pth"),
             "arousal": save_head(heads[1], base / "a.pth")}
    folder = base / "grid"
    folder.mkdir()
    generator = np.random.default_rng(0)
    cells = []
    for k, prompt in enumerate(["people dancing", "a storm over the sea"]):
        for j, (v, a) in enumerate([(-3.0, 3.0), (1.5, 3.0), (0.0, 0.0), (3.0, -1.5)]):
            u8 = generator.integers(0, 256, size=(96 + 32 * k, 128, 3), dtype=np.uint8)
            name = cell_file_name(v, a, prompt, "published" if j % 2 == 0 else "safe")
            Image.fromarray(u8).save(folder / name)
            cells.append((name, v, a, prompt, u8))
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / "notes.png")
    return model, heads, files, folder, cells


def cli_args(files, folder, *extra) -> list[str]:
    return [str(folder), "--clip", str(files["clip"]), "--valence-head", str(files["valence"]),
            "--arousal-head", str(files["arousal"]), "--tokenizer", str(TOKENIZER), *extra]


def run_cli(files, folder, *extra):
    """The real command line, in a fresh process."""
    return subprocess.run([sys.executable, "-m", "emo_core", "evaluate", *cli_args(files, folder, *extra)],
                          cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})


def main_in_process(capsys, files, folder, *extra) -> tuple[int, str, str]:
    """The same entry point in this process (no second interpreter start): (exit code, stdout, stderr)."""
    code = main(cli_args(files, folder, *extra))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_writes_the_table_heatmap_and_json(rendered, capsys):
    model, heads, files, folder, cells = rendered
    run = run_cli(files, folder)
    assert run.returncode == 0, run.stderr
    report = json.loads((folder / "emotion_metrics.json").read_text())
    assert report["namings"] == {"published": 4, "safe": 4, "comfyui": 0} and report["skipped"] == ["notes.png"]
    by_file = {r["file"]: r for r in report["images"]}
    pred, target, scores = [], [], []
    for name, v, a, prompt, u8 in cells:  # each image against the directly computed formula
        record = by_file[name]
        expected = reference_va(model, heads[0], heads[1], u8[None])[0]
        assert abs(record["valence"] - expected[0].item()) <= 1e-5, name
        assert abs(record["arousal"] - expected[1].item()) <= 1e-5, name
        score = reference_clip_score(model, TOKENIZER, u8[None], prompt)[0].item()
        assert record["clip_score"] == pytest.approx(score, abs=1e-4)
        pred.append(expected.tolist())
        target.append([v, a])
        scores.append(score)
    errors = np.abs(np.array(pred) - np.array(target))
    summary = report["summary"]
    assert summary["images"] == 8
    assert summary["v_mean"] == pytest.approx(errors[:, 0].mean(), abs=1e-5)
    assert summary["a_std"] == pytest.approx(errors[:, 1].std(), abs=1e-5)
    assert summary["clip_score_mean"] == pytest.approx(np.mean(scores), abs=1e-4)
    assert len(report["cells"]) == 4 and all(c["count"] == 2 for c in report["cells"])
    assert "V-Error" in run.stdout and f"{summary['v_mean']:.3f} ± {summary['v_std']:.3f}" in run.stdout
    assert "4 published, 4 safe" in run.stdout
    heat = np.asarray(Image.open(folder / "emotion_metrics.png"))
    assert heat.ndim == 3 and len(np.unique(heat.reshape(-1, 3), axis=0)) > 8

    before = (folder / "emotion_metrics.json").read_bytes()
    code, _, err = main_in_process(capsys, files, folder)  # never replaces results without --overwrite
    assert code == 2 and "already exist" in err and "--overwrite" in err
    assert (folder / "emotion_metrics.json").read_bytes() == before
    before = (folder / "emotion_metrics.json").stat().st_mtime_ns
    assert main_in_process(capsys, files, folder, "--overwrite", "--no-clip-score")[0] == 0
    assert (folder / "emotion_metrics.json").stat().st_mtime_ns != before
    assert "clip_score_mean" not in json.loads((folder / "emotion_metrics.json").read_text())["summary"]


def test_cli_errors_name_the_problem(rendered, tmp_path, capsys):
    _, _, files, _, _ = rendered
    code, _, err = main_in_process(capsys, files, tmp_path)
    assert code == 2 and "no images named 'V-A (v,a) | prompt.png'" in err
    code, _, err = main_in_process(capsys, dict(files, valence=files["clip"]), tmp_path)
    assert code == 2 and "clip.safetensors: not a V-A head" in err


def test_grid_run_cells_read_the_embedded_workflow(tmp_path):
    """A ComfyUI grid run's cells, as SaveImage writes them (the API workflow in the PNG text "prompt"): the shipped
    metrics workflow (prompt from a linked primitive), and an Emotion Path run of another prompt in the same folder."""
    from PIL.PngImagePlugin import PngInfo

    from emo_core.evaluation.grid_run import grid_run_cells

    metrics = json.loads((ROOT / "workflows" / "api" / "emoticrafter_metrics_5x5.json").read_text())
    path_run = json.loads(json.dumps(metrics))
    path_run["2"]["inputs"]["value"] = "a storm over the sea"
    path_run["5"] = {"class_type": "EmoNodes_EmotionPath", "inputs": {
        "valence_start": -2.0, "arousal_start": -2.0, "valence_end": 2.0, "arousal_end": 1.0, "steps": 3,
        "extrapolate": False}}

    def save(prompt: dict, prefix: str, count: int) -> None:
        info = PngInfo()
        info.add_text("prompt", json.dumps(prompt))
        for i in range(count):  # ComfyUI's counter order is the batch order
            Image.new("RGB", (8, 8)).save(tmp_path / f"{prefix}_{i + 1:05}_.png", pnginfo=info)

    save(metrics, "cell", 25)
    save(path_run, "path", 3)
    Image.new("RGB", (8, 8)).save(tmp_path / "other.png")
    cells = grid_run_cells(sorted(tmp_path.iterdir()))
    grid = {(p.name, v, a, t) for p, v, a, t in cells}
    assert ("cell_00001_.png", -3.0, 3.0, "a child playing in a park") in grid
    assert ("cell_00007_.png", -1.5, 1.5, "a child playing in a park") in grid
    assert ("cell_00025_.png", 3.0, -3.0, "a child playing in a park") in grid
    assert ("path_00002_.png", 0.0, -0.5, "a storm over the sea") in grid and len(cells) == 28
    (tmp_path / "path_00003_.png").unlink()
    with pytest.raises(ValueError, match="2 images of one grid run, but its grid has 3 points"):
        grid_run_cells(sorted(tmp_path.iterdir()))
