"""Queue from a script: run an API workflow on one or several ComfyUI servers (standard library only).

    python tools/queue_client.py --server http://127.0.0.1:8188 [--server http://127.0.0.1:8189] \
        --workflow workflows/api/emoticrafter_text_to_image.json --va 2,1 --va -2,-1 --seed 7 --out outputs/

Each --va point becomes one prompt. With several servers (one ComfyUI per GPU) there is one worker per server
pulling from a shared queue; the work of a server that goes away (refused, reset, closed mid-prompt) goes back
on the queue for the others. A prompt the server rejects (HTTP 400) or that fails while running is reported,
not retried.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import queue
import socket
import struct
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path


class ServerGone(Exception):
    """The server could not be reached or dropped the connection: the prompt is worth running elsewhere."""


class PromptFailed(RuntimeError):
    """The server rejected the prompt (HTTP 400) or it failed while running: running it elsewhere won't help."""


# -- the workflow ------------------------------------------------------------------------------------------------
def load_workflow(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def set_input(prompt: dict, title: str, name: str, value) -> None:
    """Set input ``name`` of the node titled ``title`` (exact, else the one title starting with it)."""
    titles = {node_id: node.get("_meta", {}).get("title", "") for node_id, node in prompt.items()}
    matches = [i for i, t in titles.items() if t == title] or \
              [i for i, t in titles.items() if t.lower().startswith(title.lower())]
    if len(matches) != 1:
        known = ", ".join(repr(t) for t in titles.values())
        raise KeyError(f"{'no' if not matches else 'more than one'} node titled {title!r}; titles: {known}")
    inputs = prompt[matches[0]]["inputs"]
    if name not in inputs:
        raise KeyError(f"node {title!r} has no input {name!r}; inputs: {', '.join(inputs)}")
    inputs[name] = value


# -- HTTP and the /ws progress socket ----------------------------------------------------------------------------
def request(server: str, path: str, payload: dict | None = None, timeout: float = 60.0) -> bytes:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(server + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as e:  # the server answered: not a connection problem
        raise PromptFailed(f"{path} -> HTTP {e.code}: {e.read().decode(errors='replace')[:2000]}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:  # refused, reset, timed out
        raise ServerGone(f"{server}: {getattr(e, 'reason', e)}") from None


class WebSocket:
    """Just enough RFC 6455 for ComfyUI's /ws: the handshake, then reading the server's (unmasked) frames."""

    def __init__(self, url: str, timeout: float):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                          .encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            raise ServerGone(f"websocket handshake refused: {head[:200]!r}")

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ServerGone("connection closed")
        return chunk

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self) -> dict | None:
        """The next JSON message; None for binary frames (previews). Raises ServerGone when the server closes."""
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n >= 126:
            (n,) = struct.unpack(">H" if n == 126 else ">Q", self._read(2 if n == 126 else 8))
        payload = self._read(n)
        opcode = b0 & 0x0F
        if opcode == 8:
            raise ServerGone("websocket closed by the server")
        return json.loads(payload) if opcode == 1 else None

    def close(self) -> None:
        self.sock.close()


# -- one prompt on one server ------------------------------------------------------------------------------------
@dataclass
class Job:
    name: str
    prompt: dict
    servers: list[str] = field(default_factory=list)  # every server it was sent to, in order
    paths: list[Path] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)  # the /ws messages about it (the last server's)
    error: str | None = None


def run_prompt(server: str, job: Job, out: Path, log=print, on_message=None, idle: float = 30.0) -> list[Path]:
    """Queue ``job`` on ``server``, follow it on /ws, download its output images into ``out``."""
    client_id = uuid.uuid4().hex
    titles = {i: n.get("_meta", {}).get("title", n["class_type"]) for i, n in job.prompt.items()}
    job.servers.append(server)
    job.messages = []
    try:
        ws = WebSocket(server.replace("http", "ws", 1) + f"/ws?clientId={client_id}", timeout=idle)
    except OSError as e:
        raise ServerGone(f"{server}: {e}") from None
    try:
        body = json.loads(request(server, "/prompt", {"prompt": job.prompt, "client_id": client_id}))
        prompt_id = body["prompt_id"]
        log(f"[{server}] {job.name}: queued as {prompt_id}")
        while True:
            try:
                msg = ws.receive()
            except TimeoutError:  # quiet for a while (waiting in the queue?): is the server there, is it done?
                if prompt_id in json.loads(request(server, f"/history/{prompt_id}")):
                    break
                continue
            except OSError as e:
                raise ServerGone(f"{server}: {e}") from None
            data = (msg or {}).get("data", {})
            if not msg or data.get("prompt_id") != prompt_id:
                continue
            job.messages.append(msg)
            if on_message:
                on_message(server, job, msg)
            kind = msg["type"]
            if kind == "executing" and data["node"] is None:
                break  # the server is done with it (sent after its history entry is written)
            if kind == "executing":
                log(f"[{server}] {job.name}: node {data['node']} ({titles.get(data['node'], '?')})")
            elif kind == "progress":
                log(f"[{server}] {job.name}: step {data['value']}/{data['max']}")
            elif kind in ("execution_error", "execution_interrupted"):
                log(f"[{server}] {job.name}: {kind}: {data.get('exception_message', '')}")
    finally:
        ws.close()
    entry = json.loads(request(server, f"/history/{prompt_id}"))[prompt_id]
    if entry["status"]["status_str"] != "success":
        errors = [m[1] for m in entry["status"]["messages"] if m[0] in ("execution_error", "execution_interrupted")]
        raise PromptFailed(f"{job.name} failed on {server}: "
                           f"{errors[0].get('exception_message', errors[0]) if errors else entry['status']}")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for node_id, outputs in sorted(entry["outputs"].items()):
        for k, image in enumerate(outputs.get("images", [])):
            if image.get("type") != "output":
                continue  # previews
            query = urllib.parse.urlencode({key: image.get(key, "") for key in ("filename", "subfolder", "type")})
            path = out / f"{job.name}_{node_id}_{k}{Path(image['filename']).suffix}"
            path.write_bytes(request(server, f"/view?{query}"))
            paths.append(path)
    log(f"[{server}] {job.name}: done, {len(paths)} image(s)")
    return paths


# -- many prompts on many servers --------------------------------------------------------------------------------
def run_all(servers: list[str], jobs: list[Job], out: str | Path, log=print, on_message=None) -> list[Job]:
    """One worker per server over a shared queue; a server that goes away retires and its job is re-queued.
    Returns the jobs, each with ``paths`` or ``error`` (also "no server left" when every server went away)."""
    out, todo, finished, lock = Path(out), queue.Queue(), threading.Event(), threading.Lock()
    remaining = [len(jobs)]
    for job in jobs:
        todo.put(job)

    def done(job: Job) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                finished.set()

    def worker(server: str) -> None:
        while not finished.is_set():
            try:
                job = todo.get(timeout=0.2)  # keep waiting while jobs run elsewhere: they may come back
            except queue.Empty:
                continue
            try:
                job.paths = run_prompt(server, job, out, log, on_message)
            except ServerGone as e:
                log(f"[{server}] gone ({e}); {job.name} goes back on the queue")
                todo.put(job)
                return
            except PromptFailed as e:
                job.error = str(e)
                log(f"[{server}] {job.name}: FAILED: {e}")
            done(job)

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for job in jobs:
        if not job.paths and job.error is None:
            job.error = "no server left to run it"
    return jobs


def join_va(argv: list[str]) -> list[str]:
    """argparse would read the value of ``--va -2,-1`` as an option: pass it as ``--va=-2,-1``."""
    out, items = [], iter(argv)
    for item in items:
        out.append(f"--va={next(items, '')}" if item == "--va" else item)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", action="append", required=True, help="ComfyUI URL; repeat for more servers")
    parser.add_argument("--workflow", required=True, help="an API-format workflow (workflows/api/*.json)")
    parser.add_argument("--va", action="append", default=[], metavar="V,A", help="one prompt per point")
    parser.add_argument("--seed", type=int, help="seed of the node titled KSampler...")
    parser.add_argument("--set", action="append", default=[], metavar="TITLE:INPUT=JSON",
                        help='any other input, e.g. --set "Neutral prompt:text=\\"a harbour\\""')
    parser.add_argument("--tiny", action="store_true", help="retarget to the dev host's tiny test models")
    parser.add_argument("--out", default="outputs", help="folder for the downloaded images")
    args = parser.parse_args(join_va(sys.argv[1:] if argv is None else argv))

    prompt = load_workflow(args.workflow)
    if args.tiny:
        from tiny_graph import for_tiny_models
        prompt = for_tiny_models(prompt)
    if args.seed is not None:
        set_input(prompt, "KSampler", "seed", args.seed)
    for item in args.set:
        target, value = item.split("=", 1)
        title, name = target.rsplit(":", 1)
        set_input(prompt, title, name, json.loads(value))
    jobs = []
    for point in args.va or [None]:
        job = Job(Path(args.workflow).stem, json.loads(json.dumps(prompt)))
        if point is not None:
            valence, arousal = (float(x) for x in point.split(","))
            set_input(job.prompt, "Valence-Arousal", "valence", valence)
            set_input(job.prompt, "Valence-Arousal", "arousal", arousal)
            job.name += f"_v{valence:g}_a{arousal:g}"
        jobs.append(job)
    for job in run_all([s.rstrip("/") for s in args.server], jobs, args.out):
        print(f"{job.name}: " + (", ".join(map(str, job.paths)) if job.paths else f"FAILED: {job.error}"))
    return 0 if all(job.paths for job in jobs) else 1


if __name__ == "__main__":
    sys.exit(main())
