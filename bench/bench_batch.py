"""Batch throughput: 25 V-A jobs of the tiny text-to-image workflow over 2 ComfyUI workers against 1 worker (same
process, same jobs), and the driver's own overhead per job (the scheduler loop and the manifest: images written
atomically, one fsynced line) with a pool that answers at once. The hosts need the dev host (``make setup``); on a
2-core machine two CPU hosts share the cores, so the ratio says more about the machine than about the scheduler."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

from bench import row

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools")]


def jobs(n: int):
    from tiny_graph import for_tiny_models

    from emo_core.batch.jobs import expand
    from emo_core.batch.workflow import load_workflow

    base = for_tiny_models(load_workflow(ROOT / "workflows" / "api" / "emoticrafter_text_to_image.json"))
    base["8"]["inputs"]["steps"] = 2
    return expand(base, "t2i", [], "5x5")[:n]


class InstantPool:
    """A pool whose workers answer at once with one small image: what is left is the driver's own cost."""

    def __init__(self, n: int):
        self.workers = [f"w{i}" for i in range(n)]

    def server(self, worker):
        return worker

    def submit(self, worker, job, deadline, timeout):
        future = Future()
        future.set_result(("ok", [("10", 0, ".png", b"\x89PNG" + bytes(4096))], worker, 0.0))
        return future

    def wait(self, futures, timeout):
        return futures[:1]

    def outcome(self, future):
        return future.result()

    def close(self, interrupted=False):
        pass


def overhead_ms(n: int) -> float:
    from emo_core.batch.manifest import Manifest
    from emo_core.batch.scheduler import drive

    todo = jobs(25) * (n // 25)
    for k, job in enumerate(todo):
        job.key, job.name = f"{job.key}-{k}", f"{job.name} {k}"
    with tempfile.TemporaryDirectory() as out:
        manifest = Manifest(out, "bench")
        start = time.perf_counter()
        drive(InstantPool(2), todo, manifest.record, log=lambda line: None)
        return (time.perf_counter() - start) / len(todo) * 1000


def throughput(servers: list[str], n: int) -> float:
    from emo_core.batch.scheduler import LocalPool, drive

    todo = jobs(n)
    start = time.perf_counter()
    stats = drive(LocalPool(servers, log=lambda line: None), todo, lambda *a: None, log=lambda line: None)
    assert stats["done"] == n, stats
    return n / (time.perf_counter() - start) * 60


def run(device: str, quick: bool) -> dict:
    from comfy_host import HOST_DIR, ComfyHost, ensure_tiny_models

    n = 8 if quick else 25
    ensure_tiny_models()
    per_job = overhead_ms(100 if quick else 500)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        models = HOST_DIR / "base" / "models"
        with ComfyHost(base=Path(a), models_dir=models, cpu=device == "cpu") as one, \
                ComfyHost(base=Path(b), models_dir=models, cpu=device == "cpu") as two:
            throughput([one.url], 2)  # warm both hosts (model loads) before timing
            throughput([two.url], 2)
            single = throughput([one.url], n)
            double = throughput([one.url, two.url], n)
    rows = [row(f"{n} jobs, tiny T2I (2 steps, 64x64)", "2 workers", 60 / double, "1 worker", 60 / single,
                "s/image", goal=None, note=f"{double:.1f} vs {single:.1f} images/min"),
            row("driver overhead per job", "drive + manifest", per_job, "50 ms goal", 50.0, "ms",
                kind="fraction", goal=1.0)]
    return {"rows": rows, "images_per_min": {"1 worker": single, "2 workers": double}, "overhead_ms": per_job,
            "notes": [json.dumps({"images_per_min_1": round(single, 2), "images_per_min_2": round(double, 2),
                                  "driver_overhead_ms": round(per_job, 3)})]}
