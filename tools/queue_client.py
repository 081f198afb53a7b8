"""Queue from a script: run an API workflow on one or several ComfyUI servers (standard library only).

    python tools/queue_client.py --server http://127.0.0.1:8188 [--server http://127.0.0.1:8189] \
        --workflow workflows/api/emoticrafter_text_to_image.json --va 2,1 --va -2,-1 --seed 7 --out outputs/ \
        [--timeout 600]

Each --va point becomes one prompt. With several servers (one ComfyUI per GPU) there is one worker per server
pulling from a shared queue; the work of a server that goes away (refused, reset, closed mid-prompt, silent past the
read deadline) goes back on the queue for the others. A prompt the server rejects (HTTP 400), that fails while
running, whose answers are malformed, that vanishes from the server's queue (deleted, queue cleared) or that runs
past --timeout is reported as that job's error, not retried. The run always ends; the exit status is 0 only when
every job finished.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import queue
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

MAX_BODY = 256 << 20  # the largest HTTP answer read (a /view image); a larger one is a malformed answer
MAX_FRAME = 64 << 20  # the largest websocket message read (ComfyUI's previews are far smaller)
MAX_HEAD = 64 << 10  # the largest websocket handshake answer


class ServerGone(Exception):
    """The server could not be reached, dropped the connection or stayed silent past the read deadline: the
    prompt is worth running elsewhere."""


class PromptFailed(RuntimeError):
    """The server rejected the prompt (HTTP 400) or it failed while running: running it elsewhere won't help."""


class BadAnswer(PromptFailed):
    """The server answered something malformed (not JSON, a missing field, an oversized or broken frame)."""


class Vanished(PromptFailed):
    """The prompt left the server's queue without a /history entry (deleted, or the queue was cleared)."""


class JobTimeout(PromptFailed):
    """The job ran past its time limit (``timeout=`` / ``--timeout``); it is cancelled on the server."""


def short(value, n: int = 160) -> str:
    """A value for an error message, cut to ``n`` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= n else text[:n] + f"... ({len(text)} chars)"


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
def request(server: str, path: str, payload: dict | None = None, timeout: float = 60.0,
            limit: int = MAX_BODY) -> bytes:
    """GET ``server + path`` (POST ``payload`` as JSON): the whole answer must arrive within ``timeout`` seconds
    (a watchdog shuts the socket, so a server that trickles bytes cannot stretch it) and be at most ``limit`` bytes.
    Raises ServerGone (refused, reset, timed out), PromptFailed (HTTP 4xx/5xx), BadAnswer (oversized, odd status)."""
    u = urllib.parse.urlsplit(server)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ServerGone(f"{server}: not an http(s) URL")
    data = None if payload is None else json.dumps(payload).encode()
    kind = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    expired = threading.Event()
    try:
        conn = kind(u.hostname, u.port, timeout=timeout)
    except ValueError as e:  # a bad port
        raise ServerGone(f"{server}: {e}") from None

    def expire() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread
            except OSError:
                pass

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("GET" if data is None else "POST", u.path.rstrip("/") + path, body=data,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        length = response.getheader("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            raise BadAnswer(f"{server}{path} -> an answer of {length} bytes (limit {limit})")
        body = response.read(limit + 1)
        status = response.status
    except (OSError, http.client.HTTPException, ValueError) as e:  # refused, reset, cut off, timed out
        if expired.is_set():
            raise ServerGone(f"{server}: no complete answer to {path} within {timeout:g} s") from None
        raise ServerGone(f"{server}: {path}: {type(e).__name__}: {e}") from None
    finally:
        watchdog.cancel()
        conn.close()
    if expired.is_set():  # read up to a shut-down socket: possibly cut short
        raise ServerGone(f"{server}: no complete answer to {path} within {timeout:g} s")
    if len(body) > limit:
        raise BadAnswer(f"{server}{path} -> an answer larger than {limit} bytes")
    if status >= 400:  # the server answered: not a connection problem
        raise PromptFailed(f"{server}{path} -> HTTP {status}: {body.decode(errors='replace')[:2000]}")
    if status != 200:
        raise BadAnswer(f"{server}{path} -> unexpected HTTP {status}: {short(body)}")
    return body


def request_json(server: str, path: str, payload: dict | None = None, timeout: float = 60.0) -> dict:
    """``request``, whose answer must be a JSON object (else BadAnswer)."""
    body = request(server, path, payload, timeout)
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise BadAnswer(f"{server}{path} answered something that is not JSON: {short(body)}") from None
    if not isinstance(value, dict):
        raise BadAnswer(f"{server}{path} answered JSON that is not an object: {short(value)}")
    return value


class WebSocket:
    """Just enough RFC 6455 for ComfyUI's /ws: the handshake, then reading the server's (unmasked) frames.

    ``timeout`` bounds the handshake and each frame once it has begun (and, as before, each socket read);
    ``receive(wait=...)`` says how long to wait for the next frame to begin."""

    def __init__(self, url: str, timeout: float, max_frame: int = MAX_FRAME):
        u = urllib.parse.urlsplit(url)
        self.timeout, self.max_frame = timeout, max_frame
        self.buffer = bytearray()
        self.deadline: float | None = time.monotonic() + timeout  # of the operation under way, if any
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        try:
            self.sock.sendall(f"GET {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
                              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                              .encode())
            while b"\r\n\r\n" not in self.buffer:
                if len(self.buffer) > MAX_HEAD:
                    raise BadAnswer(f"websocket handshake: no end of the answer's head in {MAX_HEAD} bytes")
                self.buffer += self._recv()
        except TimeoutError:
            self.close()
            raise ServerGone(f"websocket handshake not answered within {timeout:g} s") from None
        except BaseException:
            self.close()
            raise
        finally:
            self.deadline = None
        head, rest = bytes(self.buffer).split(b"\r\n\r\n", 1)
        self.buffer = bytearray(rest)
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            self.close()
            raise ServerGone(f"websocket handshake refused: {head[:200]!r}")

    def _recv(self) -> bytes:
        wait = self.timeout
        if self.deadline is not None:
            wait = min(wait, self.deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError("timed out")
        self.sock.settimeout(wait)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ServerGone("connection closed")
        return chunk

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv()
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def _send(self, opcode: int, payload: bytes) -> None:
        """A (masked, as a client must) control frame: ``payload`` of at most 125 bytes."""
        mask = os.urandom(4)
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask +
                          bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _message(self) -> tuple[int, bytes]:
        """The next data message (opcode 1 text, 2 binary), its fragments joined; answers pings on the way."""
        opcode, parts, size = None, [], 0
        while True:
            b0, b1 = self._read(2)
            fin, op, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if b0 & 0x70:
                raise BadAnswer(f"websocket frame with reserved bits set (byte 0x{b0:02x}); no extension was agreed")
            if b1 & 0x80:
                raise BadAnswer("masked websocket frame from the server")
            if n >= 126:
                (n,) = struct.unpack(">H" if n == 126 else ">Q", self._read(2 if n == 126 else 8))
            if op >= 8 and (n > 125 or not fin):
                raise BadAnswer(f"malformed websocket control frame (opcode {op}, {n} bytes)")
            if size + n > self.max_frame:
                raise BadAnswer(f"websocket frame of {size + n} bytes (limit {self.max_frame})")
            payload = self._read(n)
            if op == 8:
                raise ServerGone("websocket closed by the server")
            if op == 9:
                self._send(10, payload)  # pong
                continue
            if op == 10:
                continue
            if op not in (0, 1, 2):
                raise BadAnswer(f"websocket frame with the unknown opcode {op}")
            if (op == 0) != (opcode is not None):
                raise BadAnswer("websocket continuation frame out of order")
            opcode = op if opcode is None else opcode
            parts.append(payload)
            size += n
            if fin:
                return opcode, b"".join(parts)

    def receive(self, wait: float | None = None) -> dict | None:
        """The next JSON message; None for binary frames (previews). Raises TimeoutError when no frame begins within
        ``wait`` seconds (default: the timeout), ServerGone when the server closes or a frame stalls midway past
        the timeout, BadAnswer when a frame is malformed, oversized, or not a JSON object."""
        if not self.buffer:
            self.deadline = time.monotonic() + max(self.timeout if wait is None else wait, 0.001)
            try:
                self.buffer += self._recv()
            finally:
                self.deadline = None
        self.deadline = time.monotonic() + self.timeout
        try:
            opcode, payload = self._message()
        except TimeoutError:
            raise ServerGone(f"websocket frame not completed within {self.timeout:g} s") from None
        finally:
            self.deadline = None
        if opcode == 2:
            return None
        try:
            message = json.loads(payload.decode())
        except (ValueError, RecursionError):
            raise BadAnswer(f"websocket text frame that is not JSON: {short(payload)}") from None
        if not isinstance(message, dict):
            raise BadAnswer(f"websocket message that is not a JSON object: {short(payload)}")
        return message

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
    started: float | None = field(default=None, repr=False)  # time.monotonic() when run_all first started it


def queue_state(server: str, prompt_id: str, timeout: float) -> str:
    """Where ``prompt_id`` is on ``server``: "running", "pending", "done" (in /history) or "vanished".
    /queue is asked first: a prompt leaves it and enters /history at once (under one lock), so a prompt in neither,
    in that order, was deleted or cleared."""
    answer = request_json(server, "/queue", timeout=timeout)
    for state in ("running", "pending"):
        items = answer.get(f"queue_{state}")
        if not isinstance(items, list) or not all(isinstance(item, list) and len(item) > 1 for item in items):
            raise BadAnswer(f"{server}/queue answered without a list queue_{state}: {short(answer)}")
        if any(item[1] == prompt_id for item in items):
            return state
    return "done" if prompt_id in request_json(server, f"/history/{prompt_id}", timeout=timeout) else "vanished"


def cancel(server: str, prompt_id: str, timeout: float = 2.0) -> None:
    """Best effort: take ``prompt_id`` off the server's queue, or interrupt it (by id) when it is running."""
    try:
        state = queue_state(server, prompt_id, timeout)
        if state == "running":
            request(server, "/interrupt", {"prompt_id": prompt_id}, timeout)
        elif state == "pending":
            request(server, "/queue", {"delete": [prompt_id]}, timeout)
    except (ServerGone, PromptFailed):
        pass


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".") or "_"


def run_prompt(server: str, job: Job, out: Path, log=print, on_message=None, idle: float = 30.0,
               timeout: float | None = None, poll: float = 5.0, deadline: float | None = None) -> list[Path]:
    """Queue ``job`` on ``server``, follow it on /ws, download its output images into ``out``.

    Every network read has a deadline: ``idle`` seconds for the handshake, each HTTP answer and each websocket frame
    once begun. While the prompt waits, /queue and /history are checked every ``poll`` seconds (and soon after the
    server announces a queue change), so a prompt deleted from the queue is noticed. ``timeout`` bounds the whole
    call (``deadline``, a time.monotonic() value, overrides its start: run_all's limit is per job, not per server).
    Raises ServerGone (worth running elsewhere) or PromptFailed: rejected or failed, BadAnswer, Vanished, JobTimeout.
    """
    if deadline is None and timeout is not None:
        deadline = time.monotonic() + timeout
    u = urllib.parse.urlsplit(server)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ServerGone(f"{server}: not an http(s) URL")
    limit = "its time limit" if timeout is None else f"{timeout:g} s"
    client_id = uuid.uuid4().hex
    titles = {i: (n.get("_meta") or {}).get("title") or n.get("class_type", "?")
              for i, n in job.prompt.items() if isinstance(n, dict)}
    job.servers.append(server)
    job.messages = []
    state, prompt_id = "connecting to /ws", None

    def budget() -> float:
        """Seconds one network operation may take now."""
        if deadline is None:
            return idle
        left = deadline - time.monotonic()
        if left <= 0:
            if prompt_id is not None:
                cancel(server, prompt_id, min(idle, 2.0))
            raise JobTimeout(f"{server}: {job.name} timed out after {limit} ({state})")
        return min(idle, left)

    try:
        try:
            ws = WebSocket(server.replace("http", "ws", 1) + f"/ws?clientId={client_id}", timeout=budget())
        except OSError as e:
            raise ServerGone(f"{server}/ws: {e}") from None
        except (ServerGone, BadAnswer) as e:
            raise type(e)(f"{server}/ws: {e}") from None
        try:
            state = "posting /prompt"
            body = request_json(server, "/prompt", {"prompt": job.prompt, "client_id": client_id}, budget())
            if not isinstance(body.get("prompt_id"), str) or not body["prompt_id"]:
                raise BadAnswer(f"{server}/prompt answered 200 without a prompt_id: {short(body)}")
            prompt_id = body["prompt_id"]
            log(f"[{server}] {job.name}: queued as {prompt_id}")
            state = f"queued as {prompt_id}"
            last_check = time.monotonic()
            next_check = last_check + poll
            while True:
                wait = budget()
                now = time.monotonic()
                if now >= next_check:  # is it still there (deleted? queue cleared?), did it finish unheard?
                    where = queue_state(server, prompt_id, wait)
                    if where == "done":
                        break
                    if where == "vanished":
                        raise Vanished(f"{server}: {job.name}: prompt {prompt_id} vanished from the queue (not "
                                       "running, not pending, not in /history): deleted, or the queue was cleared")
                    state = f"queued as {prompt_id}, {where}"
                    last_check = time.monotonic()
                    next_check = last_check + poll
                    continue
                ws.timeout = wait
                try:
                    msg = ws.receive(wait=min(next_check - now, wait))
                except TimeoutError:
                    continue  # quiet: check on it at next_check
                except OSError as e:
                    raise ServerGone(f"{server}/ws: {e}") from None
                except (ServerGone, BadAnswer) as e:
                    raise type(e)(f"{server}/ws: {e}") from None
                if msg is None:
                    continue
                kind, data = msg.get("type"), msg.get("data")
                if not isinstance(kind, str):
                    raise BadAnswer(f"{server}/ws: a message without a type: {short(msg)}")
                if kind == "status":  # the queue changed: look again soon
                    next_check = min(next_check, last_check + min(poll, 1.0))
                if not isinstance(data, dict) or data.get("prompt_id") != prompt_id:
                    continue
                job.messages.append(msg)
                if on_message:
                    on_message(server, job, msg)
                if kind == "executing":
                    node = data.get("node", ...)
                    if node is not None and not isinstance(node, str):
                        raise BadAnswer(f"{server}/ws: an executing message without its node: {short(msg)}")
                    if node is None:
                        break  # the server is done with it (sent after its history entry is written)
                    state = f"queued as {prompt_id}, running node {node}"
                    log(f"[{server}] {job.name}: node {node} ({titles.get(node, '?')})")
                elif kind == "progress":
                    value, most = data.get("value"), data.get("max")
                    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (value, most)):
                        raise BadAnswer(f"{server}/ws: a progress message without value/max: {short(msg)}")
                    log(f"[{server}] {job.name}: step {value}/{most}")
                elif kind in ("execution_error", "execution_interrupted"):
                    log(f"[{server}] {job.name}: {kind}: {short(data.get('exception_message', ''), 2000)}")
        finally:
            ws.close()
        state = f"{prompt_id} finished, reading /history"
        return download(server, job, prompt_id, out, budget, log)
    except ServerGone as e:  # a read cut short by the job's deadline is a timeout, not a server gone
        if deadline is not None and time.monotonic() >= deadline - 0.01:
            if prompt_id is not None:
                cancel(server, prompt_id, min(idle, 2.0))
            raise JobTimeout(f"{server}: {job.name} timed out after {limit} ({state}; {e})") from None
        raise


def download(server: str, job: Job, prompt_id: str, out: Path, budget, log=print) -> list[Path]:
    """The finished prompt's /history entry: its error, or its output images saved into ``out``."""
    history = request_json(server, f"/history/{prompt_id}", timeout=budget())
    entry = history.get(prompt_id)
    if entry is None:
        raise Vanished(f"{server}: {job.name}: prompt {prompt_id} finished but has no /history entry (cleared?)")
    status = entry.get("status") if isinstance(entry, dict) else None
    outputs = entry.get("outputs") if isinstance(entry, dict) else None
    if not isinstance(status, dict) or not isinstance(outputs, dict):
        raise BadAnswer(f"{server}/history/{prompt_id}: an entry without status/outputs: {short(entry)}")
    if status.get("status_str") != "success":
        messages = status.get("messages") if isinstance(status.get("messages"), list) else []
        errors = [m[1] for m in messages if isinstance(m, list) and len(m) > 1
                  and m[0] in ("execution_error", "execution_interrupted")]
        detail = errors[0].get("exception_message", errors[0]) if errors and isinstance(errors[0], dict) else status
        raise PromptFailed(f"{job.name} failed on {server}: {short(detail, 4000)}")
    images = []
    for node_id, node_outputs in sorted(outputs.items()):
        found = node_outputs.get("images", []) if isinstance(node_outputs, dict) else None
        if not isinstance(found, list) or not all(isinstance(i, dict) and isinstance(i.get("filename"), str)
                                                  for i in found):
            raise BadAnswer(f"{server}/history/{prompt_id}: malformed images of node {node_id}: {short(found)}")
        images += [(node_id, k, image) for k, image in enumerate(found) if image.get("type") == "output"]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for node_id, k, image in images:  # previews (type "temp") are skipped
        query = urllib.parse.urlencode({key: image.get(key, "") for key in ("filename", "subfolder", "type")})
        suffix = Path(image["filename"]).suffix
        suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix) else ""
        path = out / f"{job.name}_{safe_name(node_id)}_{k}{suffix}"
        path.write_bytes(request(server, f"/view?{query}", timeout=budget()))
        paths.append(path)
    log(f"[{server}] {job.name}: done, {len(paths)} image(s)")
    return paths


# -- many prompts on many servers --------------------------------------------------------------------------------
def run_all(servers: list[str], jobs: list[Job], out: str | Path, log=print, on_message=None,
            timeout: float | None = None, idle: float = 30.0, poll: float = 5.0) -> list[Job]:
    """One worker per server over a shared queue; a server that goes away retires and its job is re-queued.
    ``timeout`` bounds each job's wall time from its first start (its prompt is then cancelled on the server);
    ``idle`` and ``poll``: see run_prompt. Always returns, the jobs each with ``paths`` or ``error`` ("no server left"
    when every server went away); an error names the server and what was wrong."""
    out, todo, finished, lock = Path(out), queue.Queue(), threading.Event(), threading.Lock()
    remaining = [len(jobs)]
    completed: set[int] = set()
    gone: dict[int, str] = {}  # the last reason a server gave up on a job
    for job in jobs:
        job.started = None
        todo.put(job)
    if not jobs:
        finished.set()

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
                if job.started is None:
                    job.started = time.monotonic()
                deadline = None if timeout is None else job.started + timeout
                job.paths = run_prompt(server, job, out, log, on_message, idle=idle, timeout=timeout, poll=poll,
                                       deadline=deadline)
                completed.add(id(job))
            except ServerGone as e:
                gone[id(job)] = str(e)
                log(f"[{server}] gone ({e}); {job.name} goes back on the queue")
                todo.put(job)
                return
            except PromptFailed as e:
                job.error = str(e)
                log(f"[{server}] {job.name}: FAILED: {e}")
            except Exception as e:  # a bug, or on_message raised: this job fails, the worker goes on
                job.error = f"{server}: {job.name}: {type(e).__name__}: {e}"
                log(f"[{server}] {job.name}: FAILED: {job.error}")
            done(job)

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for job in jobs:
        if id(job) not in completed and job.error is None:
            job.error = "no server left to run it" + (f" (last: {gone[id(job)]})" if id(job) in gone else "")
    return jobs


def join_va(argv: list[str]) -> list[str]:
    """argparse would read the value of ``--va -2,-1`` as an option: pass it as ``--va=-2,-1``."""
    out, items = [], iter(argv)
    for item in items:
        out.append(f"--va={next(items, '')}" if item == "--va" else item)
    return out


def seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


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
    parser.add_argument("--timeout", type=seconds, metavar="SECONDS",
                        help="fail a job (and cancel its prompt) that has not finished this long after it started; "
                             "default: no limit")
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
    for job in run_all([s.rstrip("/") for s in args.server], jobs, args.out, timeout=args.timeout):
        print(f"{job.name}: " + (", ".join(map(str, job.paths)) if job.error is None else f"FAILED: {job.error}"))
    failed = sum(job.error is not None for job in jobs)
    print(f"{len(jobs) - failed} done, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
