"""ESMI on the real host: IEI's score_esmi changes no decision or image, the Score Edit node agrees with the trace
and with emo_core, and ``evaluate-edits`` scores the folder an IEI run saved (source and target from the PNGs)."""

import io
import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import torch
from comfy_host import HOST_DIR, PYTHON
from conftest import load_workflow
from paths import ROOT
from PIL import Image
from tiny_graph import TINY_FILES, for_tiny_models

import emo_core
from emo_core.emoeditor.esmi import at_224, score_pictures

IEI = "emoeditor_iei_loop"
PREDICTOR = HOST_DIR / "base" / "models" / "emoeditor" / TINY_FILES["predictor_name"]


def iei_workflow(prefix: str, score_esmi: bool | None) -> dict:
    api = for_tiny_models(load_workflow(IEI)[0])
    if score_esmi is not None:
        api["3"]["inputs"]["score_esmi"] = score_esmi
    api["4"]["inputs"]["filename_prefix"] = f"emo-nodes/test_esmi/{prefix}/emoeditor_iei"
    api["5"]["inputs"]["filename_prefix"] = f"emo-nodes/test_esmi/{prefix}/emoeditor_iei_attempts"
    api["9"]["inputs"]["filename_prefix"] = f"emo-nodes/test_esmi/{prefix}/emoeditor_iei_trace"
    api["8"]["inputs"]["filename_prefix"] = f"emo-nodes/test_esmi/{prefix}/emoeditor_iei_chart"
    return api


def approx(value):
    return pytest.approx(value, abs=1e-6)


def pictures(host, entry, node_id) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(host.fetch(f)))) for f in host.output_files(entry, node_id)]


def trace_of(entry) -> dict:
    (text,) = entry["outputs"]["6"]["text"]
    return json.loads(text)


def without_esmi(trace: dict) -> dict:
    trace = json.loads(json.dumps(trace))
    trace["settings"].pop("score_esmi", None)
    for run in trace["runs"]:
        for step in run["trace"]:
            for key in ("esmi", "s_str", "s_emo"):
                step.pop(key, None)
    return trace


def test_iei_score_esmi_changes_no_decision_or_image(host):
    off, on = host.run(iei_workflow("off", False)), host.run(iei_workflow("on", True))
    default = host.run(iei_workflow("default", None))
    assert without_esmi(trace_of(on)) == trace_of(off) == trace_of(default)
    for node in ("4", "5"):  # chosen image, every attempt
        for a, b, c in zip(pictures(host, off, node), pictures(host, on, node), pictures(host, default, node),
                           strict=True):
            assert np.array_equal(a, b) and np.array_equal(a, c)
    assert np.array_equal(pictures(host, off, "9")[0], pictures(host, default, "9")[0])  # plot unchanged when off
    (run,) = trace_of(on)["runs"]
    # the scores in the trace equal emo_core's on the saved files (Save Image's 8-bit pixels)
    predictor = emo_core.load_emo_predictor(PREDICTOR)
    source = np.asarray(Image.open(host.base / "input" / "emoeditor_example.png").convert("RGB"))
    attempts = pictures(host, on, "5")
    ours = score_pictures(predictor, [at_224(source)], [at_224(a[..., :3]) for a in attempts], "awe",
                          [0] * len(attempts)).scores
    for step, row in zip(run["trace"], ours.tolist(), strict=True):
        assert all(math.isfinite(step[k]) and 0 <= step[k] <= 1 for k in ("esmi", "s_str", "s_emo"))
        assert [step["esmi"], step["s_str"], step["s_emo"]] == [approx(v) for v in row]


def test_score_node_reports_esmi_and_a_picture(host):
    api = iei_workflow("node", True)
    api["10"] = {"class_type": "EmoNodes_ScoreEdit", "inputs": {"predictor": ["2", 3], "source": ["1", 0],
                                                                "edit": ["3", 1], "target": "awe"}}
    api["11"] = {"class_type": "PreviewAny", "inputs": {"source": ["10", 0]}}
    api["12"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "emo-nodes/test_esmi/node/esmi",
                                                       "images": ["10", 1]}}
    entry = host.run(api)
    (text,) = entry["outputs"]["11"]["text"]
    report = json.loads(text)
    (run,) = trace_of(entry)["runs"]
    assert len(report["pairs"]) == len(run["trace"])
    for pair, step in zip(report["pairs"], run["trace"], strict=True):
        assert pair["esmi"] == step["esmi"] and pair["s_str"] == step["s_str"] and pair["s_emo"] == step["s_emo"]
        assert pair["x100"]["esmi"] == 100 * pair["esmi"]
        assert abs(sum(pair["edit_distribution"].values()) - 1) < 1e-5
        assert any("differ in size" in note for note in pair["notes"])  # 512-px source, 64-px tiny edits
    scores = [p["esmi"] for p in report["pairs"]]
    assert report["summary"]["esmi"]["mean"] == float(np.mean(scores))
    picture = pictures(host, entry, "12")
    assert len(picture) == len(report["pairs"]) and picture[0].shape[0] > 224


def test_evaluate_edits_scores_a_saved_iei_run(host, tmp_path):
    folder = host.base / "output" / "emo-nodes" / "test_esmi" / "cli"
    shutil.rmtree(folder, ignore_errors=True)  # the host's output folder outlives a test session
    entry = host.run(iei_workflow("cli", True))
    (run,) = trace_of(entry)["runs"]
    command = [str(PYTHON), "-m", "emo_core", "evaluate-edits", str(folder), "--predictor", str(PREDICTOR),
               "--sources", str(host.base / "input")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads((folder / "edit_metrics.json").read_text())
    saved = sorted(p.name for p in folder.glob("emoeditor_iei_*.png")
                   if "_trace_" not in p.name and "_chart_" not in p.name)
    assert len(report["pairs"]) == len(saved) == len(run["trace"]) + 1  # every attempt and the result
    by_name = {p["pair"]: p for p in report["pairs"]}
    attempt_files = sorted(n for n in saved if "_attempts_" in n)
    for name, step in zip(attempt_files, run["trace"], strict=True):
        assert by_name[name]["target"] == "awe"
        assert by_name[name]["esmi"] == approx(step["esmi"])
    tops = [p["edit_top_class"] for p in report["pairs"]]
    assert report["summary"]["emo_a"] == sum(t == "awe" for t in tops) / len(tops)  # the hand count
    assert "ESMI×100" in done.stdout and "differ in size" in done.stderr
    # never over earlier results without --overwrite
    before = (folder / "edit_metrics.json").read_bytes()
    again = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert (folder / "edit_metrics.json").read_bytes() == before
    # bad input: a missing source is one line naming the pair, nothing written
    (tmp_path / "pairs.csv").write_text(f"source,edit,target\nnowhere.png,{folder / attempt_files[0]},awe\n"
                                        f"{folder / attempt_files[0]},{folder / attempt_files[0]},joy\n")
    bad = subprocess.run([*command[:4], str(tmp_path), *command[5:7]], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert bad.returncode == 2 and "nowhere.png" in bad.stderr and "'joy'" in bad.stderr
    assert not (tmp_path / "edit_metrics.json").exists()
    assert torch.isfinite(torch.tensor([p["esmi"] for p in report["pairs"]])).all()
