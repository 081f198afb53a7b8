"""``python -m emo_core batch`` on real hosts (tiny models): a 5x5 grid over two hosts on a local Ray cluster with
one host SIGKILLed midway and one server unreachable (nothing lost, nothing written twice); a driver killed midway
(the rerun renders only the rest); actors that start their own ComfyUI (--comfyui)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from comfy_host import COMFY_DIR, HOST_DIR, ComfyHost, ensure_tiny_models, free_port
from paths import ROOT
from tiny_graph import for_tiny_models

from emo_core.batch.cli import main
from emo_core.batch.manifest import NAME
from emo_core.batch.workflow import load_workflow

pytest.importorskip("ray")
T2I = ROOT / "workflows" / "api" / "emoticrafter_text_to_image.json"


@pytest.fixture
def workflow(tmp_path):
    path = tmp_path / "emoticrafter_text_to_image.json"
    tiny = for_tiny_models(load_workflow(T2I))
    tiny["8"]["inputs"]["steps"] = 2
    path.write_text(json.dumps(tiny))
    return path


def lines(out) -> list[dict]:
    path = out / NAME
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def check_complete(out, n: int) -> list[dict]:
    entries = lines(out)
    keys = [e["job"] for e in entries]
    assert len(keys) == n and len(set(keys)) == n, keys  # every job once
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == sorted(f for e in entries for f in e["files"]) and len(files) == n
    assert not list(out.glob(".*.tmp"))
    return entries


def test_grid_on_ray_over_two_hosts_one_killed_one_unreachable(host, workflow, tmp_path, capsys):
    ensure_tiny_models()
    spare = ComfyHost(base=tmp_path / "spare", models_dir=HOST_DIR / "base" / "models").start()
    out, dead = tmp_path / "out", f"http://127.0.0.1:{free_port()}"
    killed = []

    def kill_spare_after_a_few_images():
        while not killed:
            entries = lines(out)
            if sum(e["server"] == spare.url for e in entries) >= 2 or len(entries) >= 8:
                os.killpg(spare.proc.pid, signal.SIGKILL)  # mid-job, most likely: the other host takes its job
                killed.append(len(entries))
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_spare_after_a_few_images, daemon=True)
    watcher.start()
    try:
        rc = main([str(workflow), "--va-grid", "5x5", "--seed", "3", "--out", str(out), "--ray", "local",
                   "--server", host.url, "--server", spare.url, "--server", dead, "--timeout", "300"])
    finally:
        killed.append(-1)
        spare.stop()
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    entries = check_complete(out, 25)
    assert {e["server"] for e in entries} <= {host.url, spare.url}
    assert sum(e["server"] == spare.url for e in entries) >= 1  # the spare worked before it was killed
    assert f"worker {dead} retired" in captured.err and f"worker {spare.url} retired" in captured.err
    assert "25 done, 0 failed" in captured.out and "25/25 done" in captured.err and "images/min" in captured.err
    assert {(e["inputs"]["valence"], e["inputs"]["arousal"]) for e in entries} == \
        {(v, a) for v in (-3, -1.5, 0, 1.5, 3) for a in (-3, -1.5, 0, 1.5, 3)}


def test_a_killed_driver_leaves_a_manifest_the_rerun_completes(host, workflow, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "emo_core", "batch", str(workflow), "--va-grid", "2x3", "--server", host.url,
               "--out", str(out)]
    driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):
            if len(lines(out)) >= 2:
                break
            time.sleep(0.05)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    first = len(lines(out))
    assert 2 <= first < 6, first
    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"6 jobs, {first} already in" in rerun.stderr and f"{6 - first} to render" in rerun.stderr
    check_complete(out, 6)
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "0 to render" in again.stderr and "6 done, 0 failed" in again.stdout


def test_actors_start_their_own_comfyui(workflow, tmp_path, capsys):
    ensure_tiny_models()
    out = tmp_path / "out"
    args = "--cpu --disable-api-nodes --database-url sqlite:///:memory:"
    rc = main([str(workflow), "--va", "1,1", "--va=-1,-1", "--out", str(out), "--ray", "local", "--comfyui",
               str(COMFY_DIR), "--comfyui-base", str(HOST_DIR / "base"), "--comfyui-args", args, "--workers", "1"])
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    entries = check_complete(out, 2)
    assert len({e["server"] for e in entries}) == 1 and entries[0]["server"].startswith("http://127.0.0.1:")
    assert "worker-0 (http://127.0.0.1:" in captured.err  # the progress line names the actor and its server
