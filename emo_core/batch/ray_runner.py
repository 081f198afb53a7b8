"""Ray workers for a batch: one actor per ComfyUI server given (ServerWorker), or actors that each start their own
ComfyUI on the node Ray places them on (ComfyWorker, one GPU each with ``gpus``). Each actor runs
``client.render`` next to its server and hands the images back to the driver through Ray; the driver loop is
scheduler.drive. Ray is imported only here, inside functions: emo_core imports without it.

Faults: a ComfyUI that an actor started and that dies is started again by the actor (at most RESTARTS times), the
job going back on the queue; an actor process that dies (or its node) is restarted by Ray (``max_restarts``), its
job going back on the queue; a server given with --server that goes away retires its actor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .client import Job, render, request
from .errors import PromptFailed, ServerGone, short

RESTARTS = 2  # of one actor's ComfyUI, and of one actor by Ray
ROOT = Path(__file__).resolve().parents[2]  # the folder that holds emo_core (on every node: same path)


def quiet(line: str) -> None:
    pass


class ServerWorker:
    """Runs jobs on one ComfyUI server (an actor's class; plain Python, so it can be tested without Ray)."""

    def __init__(self, server: str, idle: float = 30.0, poll: float = 5.0):
        self.server, self.idle, self.poll = server.rstrip("/"), idle, poll

    def url(self) -> str:
        return self.server

    def keep_after_gone(self) -> bool:
        return False

    def stop(self) -> None:
        pass

    def render(self, name: str, prompt: dict, uploads: dict, timeout: float | None = None,
               left: float | None = None) -> tuple:
        """("ok", outputs, server, seconds), ("gone", message, keep the worker) or ("failed", message).
        ``timeout``: the job's limit, of which ``left`` seconds remain."""
        start = time.monotonic()
        deadline = None if left is None else start + left
        try:
            outputs = render(self.server, Job(name, prompt, uploads=uploads), quiet, idle=self.idle,
                             timeout=timeout, poll=self.poll, deadline=deadline)
            return "ok", outputs, self.server, time.monotonic() - start
        except ServerGone as e:
            return "gone", str(e), self.keep_after_gone()
        except PromptFailed as e:
            return "failed", str(e)
        except Exception as e:  # a bug: this job fails, the worker goes on
            return "failed", f"{self.server}: {name}: {type(e).__name__}: {e}"


def _die_with_parent() -> None:
    """In the ComfyUI child: SIGKILL when the actor process dies (Linux), so no server outlives its actor."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ComfyWorker(ServerWorker):
    """Starts ``python <comfyui>/main.py --listen 127.0.0.1 --port P`` (with ``base`` as --base-directory and
    ``args``), with its own output, temp and user folders, and runs jobs on it."""

    def __init__(self, comfyui: str, base: str | None = None, args: list[str] | None = None, idle: float = 30.0,
                 poll: float = 5.0, startup: float = 300.0):
        self.comfyui, self.base, self.args, self.startup = Path(comfyui), base, list(args or []), startup
        self.work = Path(tempfile.mkdtemp(prefix="emo-batch-comfyui-"))
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        super().__init__("http://127.0.0.1:0", idle, poll)
        self.start()

    def start(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, str(self.comfyui / "main.py"), "--listen", "127.0.0.1", "--port", str(port),
               "--disable-auto-launch"]
        if self.base:
            cmd += ["--base-directory", self.base]
        for name in ("output", "temp", "user"):
            (self.work / name).mkdir(exist_ok=True)
            cmd += [f"--{name}-directory", str(self.work / name)]
        self.log = self.work / f"comfyui-{port}.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd + self.args, cwd=self.comfyui, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)  # noqa: PLW1509 (only prctl)
        deadline = time.monotonic() + self.startup
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}: {self.tail()}")
            try:
                request(self.server, "/system_stats", timeout=5)
                return
            except (ServerGone, PromptFailed):
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {self.startup:g} s: {self.tail()}")

    def tail(self) -> str:
        try:
            return short(self.log.read_text(errors="replace")[-3000:], 3000)
        except OSError:
            return "(no log)"

    def keep_after_gone(self) -> bool:
        """The job's server went away: start ComfyUI again if it died (bounded), else the worker retires."""
        if self.proc is None or self.proc.poll() is None or self.restarts >= RESTARTS:
            return False
        self.restarts += 1
        try:
            self.start()
            return True
        except RuntimeError:
            return False

    def pid(self) -> int:
        return self.proc.pid if self.proc else -1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def connect(address: str, cpus: int | None = None) -> bool:
    """``ray.init`` for ``--ray local`` (a cluster of this machine, started here) or an address; whether this call
    started Ray (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}}
    if address == "local":
        ray.init(num_cpus=cpus or os.cpu_count() or 1, include_dashboard=False, runtime_env=env,
                 log_to_driver=False, configure_logging=False)
    else:
        ray.init(address=address, runtime_env=env, log_to_driver=False, configure_logging=False)
    return True


class RayPool:
    """scheduler.drive's pool over Ray actors."""

    def __init__(self, servers: list[str], comfyui: str | None = None, workers: int = 0, base: str | None = None,
                 args: list[str] | None = None, gpus: float = 0, idle: float = 30.0, poll: float = 5.0, log=print):
        import ray

        self.ray, self.log = ray, log
        self.actors: dict[str, object] = {}
        self.refs: dict = {}
        self.deaths: dict[str, int] = {}
        server_actor = ray.remote(num_cpus=0, max_restarts=RESTARTS, max_task_retries=0)(ServerWorker)
        for server in servers:
            self.actors[server.rstrip("/")] = server_actor.remote(server, idle, poll)
        if comfyui:
            comfy_actor = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=RESTARTS,
                                     max_task_retries=0)(ComfyWorker)
            starting = [comfy_actor.remote(comfyui, base, args, idle, poll) for _ in range(workers)]
            for i, actor in enumerate(starting):
                try:
                    url = ray.get(actor.url.remote())
                except ray.exceptions.RayError as e:
                    log(f"[worker-{i}] could not start ComfyUI: {short(str(e), 2000)}")
                    continue
                self.actors[f"worker-{i} ({url})"] = actor
        self.workers = list(self.actors)

    def server(self, worker: str) -> str:
        return worker

    def submit(self, worker: str, job: Job, deadline: float | None, timeout: float | None):
        from .jobs import load_upload

        uploads = load_upload(job).uploads
        left = None if deadline is None else deadline - time.monotonic()
        ref = self.actors[worker].render.remote(job.name, job.prompt, uploads, timeout, left)
        self.refs[ref] = worker
        return ref

    def wait(self, refs: list, timeout: float) -> list:
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        return ready

    def outcome(self, ref) -> tuple:
        worker = self.refs.pop(ref)
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayActorError as e:  # the actor process (or its node) died: Ray restarts it
            self.deaths[worker] = self.deaths.get(worker, 0) + 1
            return "gone", f"{worker}: the worker died ({short(str(e), 300)})", self.deaths[worker] <= RESTARTS
        except self.ray.exceptions.RayError as e:
            return "failed", f"{worker}: {short(str(e), 2000)}"

    def close(self, interrupted: bool = False) -> None:
        for actor in self.actors.values():
            try:
                self.ray.get(actor.stop.remote(), timeout=5 if interrupted else 30)
            except Exception:  # noqa: BLE001 (already gone)
                pass
            self.ray.kill(actor, no_restart=True)
