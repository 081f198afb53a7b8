"""``python -m emo_core batch`` without a host: job expansion, and every input problem refused up front (exit 2,
one line, nothing written): a workflow without the node the jobs need, a malformed --set, another run's manifest, an
output folder that cannot be written; and an unreachable server reported as that job's error."""

import json
import os

import pytest
from paths import ROOT

from emo_core.batch.cli import main
from emo_core.batch.errors import BatchError
from emo_core.batch.jobs import expand, grid
from emo_core.batch.manifest import NAME
from emo_core.batch.workflow import apply_set, load_workflow, set_seeds

API = ROOT / "workflows" / "api"
T2I, SDXL, EDIT = API / "emoticrafter_text_to_image.json", API / "sdxl_text_to_image.json", \
    API / "emoeditor_single_edit.json"
NOWHERE = "http://127.0.0.1:9"  # the discard port: refused at once


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_grid_spreads_points_over_the_square():
    points = grid("5x5")
    assert len(points) == 25 and sorted({v for v, _ in points}) == [-3, -1.5, 0, 1.5, 3]
    assert sorted({a for _, a in points}) == [-3, -1.5, 0, 1.5, 3]
    assert grid("1x3") == [(-3, 0), (0, 0), (3, 0)]
    with pytest.raises(BatchError, match="ROWSxCOLS"):
        grid("5by5")


def test_prompts_cross_the_points_on_the_text_feeding_the_positive(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a harbour\n\na quiet street\n")
    csv = tmp_path / "va.csv"
    csv.write_text("valence,arousal\n1,2\n-1,-2\n")
    jobs = expand(load_workflow(T2I), "t2i", ["0,0"], None, str(csv), str(prompts))
    assert len(jobs) == 6 and len({j.key for j in jobs}) == 6 and len({j.name for j in jobs}) == 6
    first = jobs[0]
    assert first.key == "p0_v0_a0" and first.name == "V-A (0,0) _ a harbour"
    assert first.prompt["2"]["inputs"]["text"] == "a harbour"  # Neutral prompt, followed from Emotion Injection
    assert jobs[-1].prompt["4"]["inputs"] == {**jobs[-1].prompt["4"]["inputs"], "valence": -1.0, "arousal": -2.0}
    assert jobs[-1].inputs == {"prompt_index": 1, "prompt": "a quiet street", "valence": -1.0, "arousal": -2.0}


def test_images_and_target_for_emoeditor(tmp_path):
    (tmp_path / "cat.png").write_bytes(b"png")
    (tmp_path / "notes.txt").write_text("skipped")
    (job,) = expand(load_workflow(EDIT), "edit", [], images=str(tmp_path), target="fear")
    assert job.key == "img-cat.png_t-fear" and job.name == "cat to fear" and list(job.uploads) == ["1"]
    assert {job.prompt[n]["inputs"]["target"] for n in ("3", "4", "5", "7")} == {"fear"}


def test_seed_and_set():
    prompt = load_workflow(T2I)
    assert set_seeds(prompt, 5) == 1 and prompt["8"]["inputs"]["seed"] == 5
    apply_set(prompt, 'Neutral prompt:text="a harbour"')
    apply_set(prompt, "8:steps=3")  # by id
    assert prompt["2"]["inputs"]["text"] == "a harbour" and prompt["8"]["inputs"]["steps"] == 3


@pytest.mark.parametrize("item, says", [("KSampler steps=3", "expected 'TITLE:INPUT=JSON'"),
                                        ("KSampler:steps=three", "not JSON"),
                                        ("Nope:steps=3", "no node titled 'Nope'"),
                                        ("KSampler:stepz=3", "no input 'stepz'")])
def test_a_malformed_set_is_refused(capsys, tmp_path, item, says):
    rc, _, err = run(capsys, T2I, "--server", NOWHERE, "--out", tmp_path / "out", "--set", item)
    assert rc == 2 and says in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("workflow, options, says", [
    (SDXL, ["--va-grid", "2x2"], "needs a Valence-Arousal node (EmoNodes_ValenceArousal) in the workflow; it has none"),
    (SDXL, ["--prompts", T2I], "needs the Emotion Injection node"),
    (T2I, ["--images", ROOT / "docs", "--target", "awe"], "--images needs a LoadImage node"),
    (T2I, ["--seed", "1", "--set", "KSampler:seed=[\"1\", 0]"], "no seed input"),
])
def test_a_workflow_without_the_node_the_jobs_need_is_refused(capsys, tmp_path, workflow, options, says):
    rc, _, err = run(capsys, workflow, "--server", NOWHERE, "--out", tmp_path / "out", *options)
    assert rc == 2 and says in err, err
    assert not (tmp_path / "out").exists()


def test_another_runs_manifest_is_refused_unless_resume_anyway(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    line = {"job": "v1_a1", "settings": "0123456789abcdef", "inputs": {"valence": 1.0, "arousal": 1.0},
            "files": ["x.png"], "server": NOWHERE, "seconds": 1.0}
    (out / NAME).write_text(json.dumps(line) + "\n")
    rc, _, err = run(capsys, T2I, "--server", NOWHERE, "--out", out, "--va", "1,1")
    assert rc == 2 and "holds the manifest of another run" in err and "--resume-anyway" in err
    rc, out_text, err = run(capsys, T2I, "--server", NOWHERE, "--out", out, "--va", "1,1", "--resume-anyway")
    assert rc == 0 and "1 already in" in err and "1 done, 0 failed" in out_text  # counted as done: nothing run


def test_an_output_folder_that_cannot_be_written_is_refused(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        target = locked if not os.access(locked, os.W_OK) else "/proc/self/emo-batch"  # root writes anywhere else
        rc, _, err = run(capsys, T2I, "--server", NOWHERE, "--out", target, "--va", "1,1")
        assert rc == 2 and "cannot write there" in err and "nothing was run" in err, err
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o755)


def test_an_unreachable_server_is_that_jobs_error(capsys, tmp_path):
    rc, out, err = run(capsys, T2I, "--server", NOWHERE, "--out", tmp_path, "--va", "1,1")
    assert rc == 1 and "V-A (1,1) _ a lighthouse on a rocky coast: FAILED: no server left to run it" in out
    assert "Connection refused" in out and f"worker {NOWHERE} retired" in err
    assert not (tmp_path / NAME).exists()
