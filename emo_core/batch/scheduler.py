"""The one driver loop of a batch, over any pool of workers (one per ComfyUI server): in-process threads here
(standard library), Ray actors in ray_runner.

The driver hands one job at a time to each idle worker. A job whose server or worker went away goes back to the
front of the queue for the others (at most ``tries`` times); a worker whose server went away retires unless its
pool can bring it back (an actor that starts its own ComfyUI restarts it). A job the server rejects (HTTP 400),
that fails in the graph, or runs past its time is reported once, not retried. The loop always ends: every job is
done (``on_done``) or has ``error`` ("no server left to run it" when every worker retired).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path

from .client import Job, cancel, render, safe_name
from .errors import PromptFailed, ServerGone

TRIES = 3  # runs of one job that may end with its server or worker gone


class LocalPool:
    """One worker per server, each a thread of this process running ``client.render``."""

    def __init__(self, servers: list[str], log=print, on_message=None, idle: float = 30.0, poll: float = 5.0):
        self.workers = list(servers)
        self.log, self.on_message, self.idle, self.poll = log, on_message, idle, poll
        self.running: dict[Future, tuple[str, Job]] = {}

    def server(self, worker: str) -> str:
        return worker

    def submit(self, worker: str, job: Job, deadline: float | None, timeout: float | None) -> Future:
        future: Future = Future()

        def target() -> None:
            start = time.monotonic()
            try:
                outputs = render(worker, job, self.log, self.on_message, idle=self.idle, timeout=timeout,
                                 poll=self.poll, deadline=deadline)
                future.set_result(("ok", outputs, worker, time.monotonic() - start))
            except ServerGone as e:
                future.set_result(("gone", str(e), False))
            except PromptFailed as e:
                future.set_result(("failed", str(e)))
            except Exception as e:  # a bug, or on_message raised: this job fails, the worker goes on
                future.set_result(("failed", f"{worker}: {job.name}: {type(e).__name__}: {e}"))

        threading.Thread(target=target, daemon=True, name=f"batch {worker}").start()
        self.running[future] = (worker, job)
        return future

    def wait(self, futures: list, timeout: float) -> list:
        return list(wait(futures, timeout, return_when=FIRST_COMPLETED).done)

    def outcome(self, future: Future) -> tuple:
        self.running.pop(future, None)
        return future.result()

    def close(self, interrupted: bool = False) -> None:
        """Ctrl-C: take the prompts under way off their servers (best effort)."""
        for worker, job in list(self.running.values()) if interrupted else []:
            if job.prompt_id:
                cancel(worker, job.prompt_id)


def drive(pool, jobs: list[Job], on_done, log=print, timeout: float | None = None, tries: int = TRIES,
          progress=None) -> dict:
    """Run ``jobs`` on ``pool``'s workers; ``on_done(job, outputs, server, seconds)`` for each finished one (on
    this thread), ``progress(stats)`` after each. Returns the stats: done, failed, images, per-worker counts."""
    todo, idle = deque(jobs), list(pool.workers)
    running: dict = {}
    gone: dict[int, str] = {}
    stats = {"total": len(jobs), "done": 0, "failed": 0, "images": 0, "start": time.monotonic(),
             "workers": {pool.server(w): 0 for w in pool.workers}, "retired": {}}
    interrupted = True
    try:
        while todo or running:
            while todo and idle:
                worker, job = idle.pop(0), todo.popleft()
                if job.started is None:
                    job.started = time.monotonic()
                deadline = None if timeout is None else job.started + timeout
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    job.error = f"{job.name} timed out after {timeout:g} s (before a server was free again)"
                    stats["failed"] += 1
                    idle.insert(0, worker)
                    continue
                job.servers.append(pool.server(worker))
                running[pool.submit(worker, job, deadline, timeout)] = (worker, job)
            if not running:
                for job in todo:
                    job.error = "no server left to run it" + (f" (last: {gone[id(job)]})" if id(job) in gone else "")
                    stats["failed"] += 1
                break
            for future in pool.wait(list(running), 0.5):
                worker, job = running.pop(future)
                kind, *rest = pool.outcome(future)
                if kind == "ok":
                    outputs, server, seconds = rest
                    on_done(job, outputs, server, seconds)
                    stats["done"] += 1
                    stats["images"] += len(outputs)
                    stats["workers"][pool.server(worker)] += 1
                    idle.append(worker)
                elif kind == "gone":
                    message, keep = rest
                    job.attempts += 1
                    gone[id(job)] = message
                    if job.attempts >= tries:
                        job.error = f"gave up after {tries} tries on servers that went away (last: {message})"
                        stats["failed"] += 1
                        log(f"[{pool.server(worker)}] {job.name}: FAILED: {job.error}")
                    else:
                        todo.appendleft(job)
                    if keep:
                        log(f"[{pool.server(worker)}] lost its server ({message}); {job.name} goes back on the "
                            "queue; the worker starts again")
                        idle.append(worker)
                    else:
                        log(f"[{pool.server(worker)}] gone ({message}); {job.name} goes back on the queue")
                        stats["retired"][pool.server(worker)] = message
                else:
                    job.error = rest[0]
                    stats["failed"] += 1
                    log(f"[{pool.server(worker)}] {job.name}: FAILED: {job.error}")
                    idle.append(worker)
                if progress:
                    progress(stats)
        interrupted = False
    finally:
        pool.close(interrupted)
    return stats


def progress_line(stats: dict) -> str:
    minutes = max(time.monotonic() - stats["start"], 1e-6) / 60
    workers = ", ".join(f"{w} {n}" for w, n in stats["workers"].items())
    failed = f", {stats['failed']} failed" if stats["failed"] else ""
    return (f"{stats['done']}/{stats['total']} done{failed}, {stats['images'] / minutes:.1f} images/min "
            f"(per worker: {workers})")


def run_all(servers: list[str], jobs: list[Job], out: str | Path, log=print, on_message=None,
            timeout: float | None = None, idle: float = 30.0, poll: float = 5.0) -> list[Job]:
    """``jobs`` over ``servers`` in this process, the images written into ``out`` as ``<name>_<node>_<k><suffix>``
    (no manifest: see cli for resumable runs). ``timeout`` bounds each job's wall time from its first start (its
    prompt is then cancelled on the server); ``idle`` and ``poll``: see client.render. Always returns, each job
    with ``paths`` or ``error``; an error names the server and what was wrong."""
    out = Path(out)

    def write(job: Job, outputs: list, server: str, seconds: float) -> None:
        out.mkdir(parents=True, exist_ok=True)
        job.paths = []
        for node_id, k, suffix, data in outputs:
            path = out / f"{job.name}_{safe_name(node_id)}_{k}{suffix}"
            path.write_bytes(data)
            job.paths.append(path)

    for job in jobs:
        job.started = None
    drive(LocalPool([s.rstrip("/") for s in servers], log, on_message, idle, poll), jobs, write, log, timeout)
    return jobs
