"""emo_core.batch's client and in-process scheduler (and the batch command) against real ComfyUI hosts on the tiny
models."""

import json
import threading

import numpy as np
import pytest
from comfy_host import HOST_DIR, ComfyHost, ensure_tiny_models, free_port
from paths import ROOT
from PIL import Image
from tiny_graph import for_tiny_models

from emo_core.batch.cli import main
from emo_core.batch.client import Job, load_workflow, set_input
from emo_core.batch.scheduler import run_all

T2I = ROOT / "workflows" / "api" / "emoticrafter_text_to_image.json"


def va_jobs(points, seed: int, steps: int | None = None) -> list[Job]:
    base = for_tiny_models(load_workflow(T2I))
    set_input(base, "KSampler", "seed", seed)  # the title starts with "KSampler"
    if steps:
        set_input(base, "KSampler", "steps", steps)
    jobs = []
    for v, a in points:
        prompt = json.loads(json.dumps(base))
        set_input(prompt, "Valence-Arousal", "valence", v)
        set_input(prompt, "Valence-Arousal", "arousal", a)
        jobs.append(Job(f"v{v:g}_a{a:g}", prompt))
    return jobs


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="session", autouse=True)
def spare_host(tmp_path_factory):
    """A second server (its own base folder, the dev host's tiny models), started in the background while the
    first test runs; the two-host test stops it midway."""
    ensure_tiny_models()
    spare = ComfyHost(base=tmp_path_factory.mktemp("spare"), models_dir=HOST_DIR / "base" / "models")
    errors = []
    starting = threading.Thread(target=_start, args=(spare, errors), daemon=True)
    starting.start()
    yield spare, starting, errors
    starting.join()
    spare.stop()


def _start(host: ComfyHost, errors: list) -> None:
    try:
        host.start()
    except Exception as e:  # reported by the test that needs the host
        errors.append(e)


def test_set_input_names_nodes_by_title():
    prompt = load_workflow(T2I)
    set_input(prompt, "Valence-Arousal", "valence", -1.5)
    assert prompt["4"]["inputs"]["valence"] == -1.5
    set_input(prompt, "ksampler", "seed", 3)  # a unique prefix, any case
    assert prompt["8"]["inputs"]["seed"] == 3
    with pytest.raises(KeyError, match="no node titled 'Arousal'.*'Neutral prompt'"):
        set_input(prompt, "Arousal", "arousal", 0)  # ... which lists the titles there are
    with pytest.raises(KeyError, match="more than one node titled 'Lo'"):
        set_input(prompt, "Lo", "x", 0)  # "Load SDXL base 1.0", "Load EmotiCrafter"
    with pytest.raises(KeyError, match="no input 'valnce'"):
        set_input(prompt, "Valence-Arousal", "valnce", 0)


def test_queues_follows_progress_and_downloads(host, tmp_path):
    jobs = run_all([host.url], va_jobs([(2, 1), (-2, -1)], seed=7), tmp_path)
    for job in jobs:
        assert job.error is None and job.servers == [host.url]
        kinds = [m["type"] for m in job.messages]
        assert {"execution_start", "executing", "progress", "execution_success"} <= set(kinds), kinds
        steps = [m["data"]["value"] for m in job.messages if m["type"] == "progress"]
        assert steps[-4:] == [1, 2, 3, 4]  # the KSampler's steps (tiny: 4)
        (path,) = job.paths
        assert path.parent == tmp_path and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first, second = (pixels(job.paths[0]) for job in jobs)
    assert first.shape == (64, 64, 3) and np.abs(first - second).max() > 0  # different V-A, different image


def test_cli_reports_a_rejected_prompt(host, tmp_path, capsys):
    workflow = tmp_path / "emoticrafter_text_to_image.json"
    workflow.write_text(json.dumps(for_tiny_models(load_workflow(T2I))))
    rc = main([str(workflow), "--server", host.url, "--va", "-2,-1", "--set", "KSampler:steps=0",
               "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 1 and "V-A (-2,-1) _ a lighthouse on a rocky coast: FAILED" in out and "HTTP 400" in out
    assert "value_smaller_than_min" in out and not list((tmp_path / "out").iterdir())


def test_spreads_over_servers_and_requeues_the_work_of_a_server_that_goes_away(host, spare_host, tmp_path):
    spare, starting, errors = spare_host
    starting.join()
    assert not errors, errors
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: refused at once
    jobs = va_jobs([(-2, -2), (-1, 1), (1, -1)], seed=11, steps=2)
    bad = Job("rejected", json.loads(json.dumps(jobs[0].prompt)))
    set_input(bad.prompt, "KSampler", "steps", 0)  # below the minimum: HTTP 400 at validation
    stopped = []

    def stop_spare_midway(server, job, msg):
        if server == spare.url and msg["type"] == "progress" and not stopped:
            stopped.append(job.name)
            spare.stop()  # the spare dies while sampling this job

    run_all([host.url, spare.url, dead], [*jobs, bad], tmp_path, log=lambda line: None, on_message=stop_spare_midway)
    assert stopped, "the spare host never ran a prompt"
    for job in jobs:  # nothing lost
        assert job.error is None and len(job.paths) == 1 and job.paths[0].is_file(), (job.name, job.error)
        assert job.servers[-1] == host.url  # the only server left standing finished it
    (moved,) = [job for job in jobs if job.name == stopped[0]]
    assert moved.servers[-2:] == [spare.url, host.url]  # re-queued from the stopped server to the other
    assert any(dead in job.servers for job in [*jobs, bad])  # the refused server's job went back as well
    assert bad.paths == [] and "HTTP 400" in bad.error and "value_smaller_than_min" in bad.error
    assert [s for s in bad.servers if s != dead] in ([host.url], [spare.url])  # reported, not retried
    images = [pixels(job.paths[0]).tobytes() for job in jobs]
    assert len(set(images)) == len(jobs)


@pytest.mark.parametrize("removal", ["clear", "delete"])
def test_a_prompt_removed_from_the_queue_is_reported_vanished(host, tmp_path, removal):
    """Another user clears the queue (or deletes our prompt) while it waits behind a long prompt: the job fails as
    vanished within a few seconds instead of waiting forever."""
    (blocker,) = va_jobs([(0, 0)], seed=21, steps=10000)  # runs for minutes on the tiny models unless interrupted
    status, body = host.queue(blocker.prompt)
    assert status == 200, body
    (job,) = va_jobs([(1, 1)], seed=22)
    queued: list[str] = []
    runs: list = []

    def log(line: str) -> None:
        if "queued as" in line:
            queued.append(line.rsplit(" ", 1)[1])

    runner = threading.Thread(target=lambda: runs.append(run_all([host.url], [job], tmp_path, log=log, timeout=120,
                                                                 idle=10, poll=2)), daemon=True)
    runner.start()
    try:
        for _ in range(300):
            if queued:
                break
            runner.join(0.1)
        assert queued, "the job was never queued"
        pending = [item[1] for item in host.get("/queue")["queue_pending"]]
        assert queued[0] in pending, pending  # behind the blocker
        host.request("/queue", {"clear": True} if removal == "clear" else {"delete": [queued[0]]})
        runner.join(20)
        assert not runner.is_alive(), "the queue client hung on a prompt removed from the queue"
    finally:
        host.request("/interrupt", {"prompt_id": body["prompt_id"]})
        host.request("/queue", {"clear": True})
        for _ in range(600):  # leave the host idle for the next test
            state = host.get("/queue")
            if not state["queue_running"] and not state["queue_pending"]:
                break
            runner.join(0.1)
    assert runs and job.paths == [] and job.servers == [host.url]
    assert job.error.startswith(f"{host.url}: ") and f"prompt {queued[0]} vanished from the queue" in job.error
