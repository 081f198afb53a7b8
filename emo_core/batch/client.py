"""One prompt on one ComfyUI server, standard library only: queue it, follow it on /ws, fetch its images.

Every network read has a deadline (``idle`` seconds for the handshake, each HTTP answer and each websocket frame);
``timeout`` bounds a whole job. A server that cannot be reached, resets, closes mid-prompt or stays silent raises
ServerGone (worth running elsewhere); a prompt it rejects (HTTP 400), that fails in the graph, whose answers are
malformed, that vanishes from its queue or runs past its time raises PromptFailed (or a subclass): not retried.

    from emo_core.batch.client import Job, load_workflow, run_prompt, set_input
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BadAnswer, JobTimeout, PromptFailed, ServerGone, Vanished, short
from .websocket import WebSocket
from .workflow import load_workflow, set_input

__all__ = ["BadAnswer", "Job", "JobTimeout", "PromptFailed", "ServerGone", "Vanished", "WebSocket", "cancel",
           "fetch_outputs", "load_workflow", "render", "request", "request_json", "run_prompt", "set_input",
           "upload_image"]

MAX_BODY = 256 << 20  # the largest HTTP answer read (a /view image); a larger one is a malformed answer


# -- HTTP ----------------------------------------------------------------------------------------------------------
def request(server: str, path: str, payload: dict | bytes | None = None, timeout: float = 60.0,
            limit: int = MAX_BODY, content_type: str = "application/json") -> bytes:
    """GET ``server + path`` (POST ``payload``: a dict as JSON, or raw bytes): the whole answer must arrive within
    ``timeout`` seconds (a watchdog shuts the socket, so a server that trickles bytes cannot stretch it) and be at
    most ``limit`` bytes. Raises ServerGone (refused, reset, timed out), PromptFailed (HTTP 4xx/5xx), BadAnswer
    (oversized, odd status)."""
    u = urllib.parse.urlsplit(server)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ServerGone(f"{server}: not an http(s) URL")
    data = payload if isinstance(payload, bytes) or payload is None else json.dumps(payload).encode()
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
                     headers={"Content-Type": content_type})
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


def request_json(server: str, path: str, payload: dict | bytes | None = None, timeout: float = 60.0,
                 content_type: str = "application/json") -> dict:
    """``request``, whose answer must be a JSON object (else BadAnswer)."""
    body = request(server, path, payload, timeout, content_type=content_type)
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise BadAnswer(f"{server}{path} answered something that is not JSON: {short(body)}") from None
    if not isinstance(value, dict):
        raise BadAnswer(f"{server}{path} answered JSON that is not an object: {short(value)}")
    return value


def upload_image(server: str, filename: str, data: bytes, timeout: float = 60.0) -> str:
    """POST /upload/image (into the server's input folder, overwriting): the name LoadImage must be given."""
    boundary = uuid.uuid4().hex
    safe = re.sub(r'[^A-Za-z0-9._ -]', "_", filename)
    part = f"--{boundary}\r\nContent-Disposition: form-data; name="
    body = (f'{part}"image"; filename="{safe}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode() + data
            + f'\r\n{part}"overwrite"\r\n\r\ntrue\r\n--{boundary}--\r\n'.encode())
    answer = request_json(server, "/upload/image", body, timeout,
                          content_type=f"multipart/form-data; boundary={boundary}")
    name, sub = answer.get("name"), answer.get("subfolder") or ""
    if not isinstance(name, str) or not name or not isinstance(sub, str):
        raise BadAnswer(f"{server}/upload/image answered without a name: {short(answer)}")
    return f"{sub}/{name}" if sub else name


# -- one prompt ------------------------------------------------------------------------------------------------------
@dataclass
class Job:
    name: str
    prompt: dict
    servers: list[str] = field(default_factory=list)  # every server it was sent to, in order
    paths: list[Path] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)  # the /ws messages about it (the last server's)
    error: str | None = None
    started: float | None = field(default=None, repr=False)  # time.monotonic() when it was first started
    uploads: dict = field(default_factory=dict, repr=False)  # LoadImage node id -> (file name, bytes)
    key: str = ""  # the batch's job key (manifest); the name when empty
    inputs: dict = field(default_factory=dict, repr=False)  # what the batch set for it (manifest)
    attempts: int = 0  # runs that ended with the server or worker gone
    prompt_id: str | None = field(default=None, repr=False)  # of the run under way, for Ctrl-C


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


def render(server: str, job: Job, log=print, on_message=None, idle: float = 30.0, timeout: float | None = None,
           poll: float = 5.0, deadline: float | None = None) -> list[tuple[str, int, str, bytes]]:
    """Queue ``job`` on ``server`` (uploading its source images first), follow it on /ws, and return its output
    images as (node id, index, suffix, bytes), in node order.

    While the prompt waits, /queue and /history are checked every ``poll`` seconds (and soon after the server
    announces a queue change), so a prompt deleted from the queue is noticed. ``timeout`` bounds the whole call
    (``deadline``, a time.monotonic() value, overrides its start: a batch's limit is per job, not per server).
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
        prompt = job.prompt
        if job.uploads:
            state = "uploading its images"
            prompt = json.loads(json.dumps(prompt))
            for node_id, (filename, data) in job.uploads.items():
                prompt[node_id]["inputs"]["image"] = upload_image(server, filename, data, budget())
        try:
            ws = WebSocket(server.replace("http", "ws", 1) + f"/ws?clientId={client_id}", timeout=budget())
        except OSError as e:
            raise ServerGone(f"{server}/ws: {e}") from None
        except (ServerGone, BadAnswer) as e:
            raise type(e)(f"{server}/ws: {e}") from None
        try:
            state = "posting /prompt"
            body = request_json(server, "/prompt", {"prompt": prompt, "client_id": client_id}, budget())
            if not isinstance(body.get("prompt_id"), str) or not body["prompt_id"]:
                raise BadAnswer(f"{server}/prompt answered 200 without a prompt_id: {short(body)}")
            prompt_id = job.prompt_id = body["prompt_id"]
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
        return fetch_outputs(server, job, prompt_id, budget, log)
    except ServerGone as e:  # a read cut short by the job's deadline is a timeout, not a server gone
        if deadline is not None and time.monotonic() >= deadline - 0.01:
            if prompt_id is not None:
                cancel(server, prompt_id, min(idle, 2.0))
            raise JobTimeout(f"{server}: {job.name} timed out after {limit} ({state}; {e})") from None
        raise


def fetch_outputs(server: str, job: Job, prompt_id: str, budget, log=print) -> list[tuple[str, int, str, bytes]]:
    """The finished prompt's /history entry: its error, or its output images (previews, type "temp", skipped)."""
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
    result = []
    for node_id, k, image in images:
        query = urllib.parse.urlencode({key: image.get(key, "") for key in ("filename", "subfolder", "type")})
        suffix = Path(image["filename"]).suffix
        suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix) else ""
        result.append((node_id, k, suffix, request(server, f"/view?{query}", timeout=budget())))
    log(f"[{server}] {job.name}: done, {len(result)} image(s)")
    return result


def run_prompt(server: str, job: Job, out: str | Path, log=print, **options) -> list[Path]:
    """``render`` on one server, the images written into ``out`` as ``<job name>_<node>_<k><suffix>``."""
    job.servers.append(server)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for node_id, k, suffix, data in render(server, job, log, **options):
        path = out / f"{job.name}_{safe_name(node_id)}_{k}{suffix}"
        path.write_bytes(data)
        paths.append(path)
    return paths
