"""emo_core.batch (client, scheduler, cli) against a fake ComfyUI that misbehaves: every fault ends the job with a
clear error, fast.

The fake is the standard library only: http.server for /prompt, /queue, /history and /view, and a hand-written
websocket handshake and frames on the raw socket of its /ws request. Every client call runs in a thread joined with
a deadline, so a regression fails the test instead of hanging the run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from paths import ROOT

from emo_core.batch.client import Job
from emo_core.batch.scheduler import run_all

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
FAST = {"timeout": 6.0, "idle": 1.0, "poll": 0.3}  # the client's deadlines in these tests
LIMIT = 15.0  # a call not back by then hangs: the test fails


def frame(payload: bytes, opcode: int = 1) -> bytes:
    """One unmasked server frame."""
    n = len(payload)
    size = bytes([n]) if n < 126 else bytes([126]) + struct.pack(">H", n) if n < 1 << 16 else \
        bytes([127]) + struct.pack(">Q", n)
    return bytes([0x80 | opcode]) + size + payload


def message(kind: str, **data) -> bytes:
    return frame(json.dumps({"type": kind, "data": data}).encode())


class Fake:
    """A ComfyUI stand-in. By default it behaves: it runs each prompt (node "1", one step) and has one output image.
    Tests swap in the misbehaviour: ``prompt_answer`` (bytes for POST /prompt), ``ws`` (a script run after the
    handshake, or "no handshake" / "trickled handshake"), ``queue_answer``, ``history_answer``, ``hang``."""

    def __init__(self):
        self.prompt_answer: bytes | None = None
        self.ws = self.healthy
        self.queue_answer: object = None
        self.history_answer: object = None
        self.hang: set[str] = set()  # paths whose answer never comes
        self.posted: queue.Queue[str] = queue.Queue()  # prompt ids, each picked up by one /ws script
        self.history: dict[str, dict] = {}
        self.deleted: list[str] = []
        self.count = 0
        self.stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, body: bytes, status: int = 200, length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split("?")[0]
                if path in fake.hang:
                    fake.stop.wait(LIMIT)
                elif path == "/ws":
                    fake.websocket(self)
                elif path == "/queue":
                    self.answer(json.dumps(fake.queue()).encode())
                elif path.startswith("/history/"):
                    pid = path.rsplit("/", 1)[1]
                    answer = fake.history_answer if fake.history_answer is not None else \
                        {pid: fake.history[pid]} if pid in fake.history else {}
                    self.answer(json.dumps(answer).encode())
                elif path == "/view":
                    self.answer(PNG)
                else:
                    self.answer(b"{}", 404)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path in fake.hang:
                    fake.stop.wait(LIMIT)
                elif self.path == "/prompt":
                    fake.count += 1
                    pid = f"fake-{fake.count}"
                    fake.posted.put(pid)
                    if fake.prompt_answer == b"huge":
                        self.answer(b"{}", length=1 << 40)
                    else:
                        self.answer(fake.prompt_answer or json.dumps({"prompt_id": pid, "number": 1}).encode())
                elif self.path == "/queue":
                    fake.deleted += body.get("delete", [])
                    self.answer(b"")
                else:
                    self.answer(b"")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()

    def queue(self) -> object:
        if self.queue_answer is not None:
            return self.queue_answer
        running = [[0, f"fake-{i}", {}, {}, []] for i in range(1, self.count + 1) if f"fake-{i}" not in self.history]
        return {"queue_running": running, "queue_pending": []}

    # -- /ws on the raw socket ---------------------------------------------------------------------------------
    def websocket(self, handler: BaseHTTPRequestHandler) -> None:
        sock = handler.connection
        handler.close_connection = True
        if self.ws == "no handshake":
            self.stop.wait(LIMIT)
            return
        if self.ws == "trickled handshake":  # a head that never ends, one byte at a time
            sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nX-Padding: ")
            while not self.stop.wait(0.05):
                try:
                    sock.sendall(b"a")
                except OSError:
                    return
        key = handler.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        sock.sendall(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode())
        try:
            pid = self.posted.get(timeout=LIMIT)
            self.ws(sock, pid)
            while not self.stop.is_set():  # keep it open until the client goes
                if select.select([sock], [], [], 0.05)[0] and not sock.recv(65536):
                    return
        except OSError:
            return

    def healthy(self, sock, pid: str) -> None:
        sock.sendall(message("status", status={"exec_info": {"queue_remaining": 1}}))
        sock.sendall(message("executing", node="1", display_node="1", prompt_id=pid))
        sock.sendall(frame(b"\0\0\0\1preview", opcode=2))
        sock.sendall(message("progress", value=1, max=1, prompt_id=pid, node="1"))
        self.history[pid] = {"status": {"status_str": "success", "completed": True, "messages": []},
                             "outputs": {"1": {"images": [{"filename": "x_00001_.png", "subfolder": "",
                                                           "type": "output"}]}}}
        sock.sendall(message("executing", node=None, prompt_id=pid))

    def sends(self, *frames) -> None:
        """After the handshake, ``frames`` (callables of the prompt id give frames that name it)."""
        self.ws = lambda sock, pid: [sock.sendall(f(pid) if callable(f) else f) for f in frames]


@pytest.fixture
def fake():
    server = Fake()
    yield server
    server.close()


def bounded(fn, limit: float = LIMIT):
    """``fn()`` in a thread: its result and the seconds it took; fails the test if it does not return in time."""
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as e:  # handed to the test
            result["error"] = e

    start = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        pytest.fail(f"the queue client hung: no result within {limit:g} s")
    if "error" in result:
        raise result["error"]
    return result["value"], time.monotonic() - start


def job(name: str = "job") -> Job:
    return Job(name, {"1": {"class_type": "SaveImage", "inputs": {}, "_meta": {"title": "Save"}}})


def run_one(fake: Fake, tmp_path, **options) -> Job:
    (done,), seconds = bounded(lambda: run_all([fake.url], [job()], tmp_path, log=lambda line: None,
                                               **{**FAST, **options}))
    assert seconds < 8, f"took {seconds:.1f} s"
    return done


def failed(fake: Fake, tmp_path, *expected: str, **options) -> str:
    """Run one job: it must fail with an error that names the server and says each of ``expected``."""
    done = run_one(fake, tmp_path, **options)
    assert done.paths == [] and done.error is not None, done
    assert fake.url in done.error, done.error
    for text in expected:
        assert text in done.error, done.error
    return done.error


# -- the fake itself -----------------------------------------------------------------------------------------------
def test_a_healthy_fake_runs_the_job(fake, tmp_path):  # so the faults below fail for their own reason
    done = run_one(fake, tmp_path)
    assert done.error is None and len(done.paths) == 1 and done.paths[0].read_bytes() == PNG
    assert [m["type"] for m in done.messages] == ["executing", "progress", "executing"]


# -- POST /prompt --------------------------------------------------------------------------------------------------
def test_prompt_answered_without_a_prompt_id(fake, tmp_path):
    fake.prompt_answer = b'{"number": 1, "node_errors": {}}'
    failed(fake, tmp_path, "/prompt answered 200 without a prompt_id", "node_errors")


def test_prompt_answered_with_something_not_json(fake, tmp_path):
    fake.prompt_answer = b"<html>502 Bad Gateway</html>"
    failed(fake, tmp_path, "/prompt answered something that is not JSON", "Bad Gateway")


def test_prompt_answered_with_a_json_list(fake, tmp_path):
    fake.prompt_answer = b'["fake-1"]'
    failed(fake, tmp_path, "/prompt answered JSON that is not an object")


def test_prompt_answer_too_large(fake, tmp_path):
    fake.prompt_answer = b"huge"  # Content-Length: 1 TiB
    failed(fake, tmp_path, "/prompt -> an answer of 1099511627776 bytes")


def test_prompt_never_answered(fake, tmp_path):
    fake.hang.add("/prompt")  # a server that stalls: retired, the job has nowhere left to go
    failed(fake, tmp_path, "no server left to run it", "no complete answer to /prompt within 1 s")


# -- the websocket ---------------------------------------------------------------------------------------------------
def test_websocket_handshake_never_answered(fake, tmp_path):
    fake.ws = "no handshake"
    failed(fake, tmp_path, "no server left to run it", "/ws: websocket handshake not answered within 1 s")


def test_websocket_handshake_trickled_forever(fake, tmp_path):
    fake.ws = "trickled handshake"  # bytes keep coming, the head never ends: the deadline still holds
    failed(fake, tmp_path, "no server left to run it", "/ws: websocket handshake not answered within 1 s")


def test_websocket_frame_not_json(fake, tmp_path):
    fake.sends(frame(b"hello, not json"))
    failed(fake, tmp_path, "/ws: websocket text frame that is not JSON", "hello, not json")


def test_websocket_frame_json_list(fake, tmp_path):
    fake.sends(frame(b'["executing", null]'))
    failed(fake, tmp_path, "/ws: websocket message that is not a JSON object")


def test_websocket_message_without_type(fake, tmp_path):
    fake.sends(lambda pid: frame(json.dumps({"data": {"prompt_id": pid}}).encode()))
    failed(fake, tmp_path, "/ws: a message without a type")


def test_websocket_executing_without_node(fake, tmp_path):
    fake.sends(lambda pid: message("executing", prompt_id=pid))
    failed(fake, tmp_path, "/ws: an executing message without its node")


def test_websocket_progress_without_value_and_max(fake, tmp_path):
    fake.sends(lambda pid: message("progress", prompt_id=pid, node="1"))
    failed(fake, tmp_path, "/ws: a progress message without value/max")


def test_websocket_huge_frame(fake, tmp_path):
    fake.sends(bytes([0x81, 127]) + struct.pack(">Q", 1 << 40) + b"{")  # announces 1 TiB
    failed(fake, tmp_path, "/ws: websocket frame of 1099511627776 bytes (limit")


def test_websocket_frame_stalled_midway(fake, tmp_path):
    fake.sends(bytes([0x81, 100]) + b'{"type": ')  # 100 bytes announced, 9 sent
    failed(fake, tmp_path, "no server left to run it", "/ws: websocket frame not completed within 1 s")


def test_websocket_masked_frame(fake, tmp_path):
    fake.sends(bytes([0x81, 0x82, 1, 2, 3, 4]) + b"{}")
    failed(fake, tmp_path, "/ws: masked websocket frame from the server")


# -- /queue and /history -----------------------------------------------------------------------------------------------
def test_prompt_vanished_from_the_queue(fake, tmp_path):
    fake.sends()  # quiet on /ws; the prompt is in neither /queue nor /history
    fake.queue_answer = {"queue_running": [], "queue_pending": []}
    failed(fake, tmp_path, "prompt fake-1 vanished from the queue", "the queue was cleared")


def test_queue_answer_malformed(fake, tmp_path):
    fake.sends()
    fake.queue_answer = [1, 2]
    failed(fake, tmp_path, "/queue answered JSON that is not an object")


def test_history_entry_malformed(fake, tmp_path):
    fake.sends(lambda pid: message("executing", node=None, prompt_id=pid))
    fake.history_answer = {"fake-1": {"status": "ok"}}
    failed(fake, tmp_path, "/history/fake-1: an entry without status/outputs")


def test_job_timeout_cancels_the_prompt(fake, tmp_path):
    fake.sends()  # pending forever
    fake.queue_answer = {"queue_running": [], "queue_pending": [[0, "fake-1", {}, {}, []]]}
    error = failed(fake, tmp_path, "timed out after 1.5 s (queued as fake-1, pending)", timeout=1.5)
    assert error.startswith(fake.url)
    assert fake.deleted == ["fake-1"]  # taken off the server's queue


# -- the run as a whole ------------------------------------------------------------------------------------------------
def test_a_bad_server_fails_its_jobs_and_the_run_still_ends(fake, tmp_path):
    bad = Fake()
    try:
        bad.prompt_answer = b"{}"
        jobs = [job(f"j{i}") for i in range(4)]
        jobs, seconds = bounded(lambda: run_all([bad.url, fake.url], jobs, tmp_path, log=lambda line: None, **FAST))
        assert seconds < 8
        for done in jobs:  # each one done or failed with the bad server's error, once
            assert (done.error is None and len(done.paths) == 1) or \
                   (done.paths == [] and done.error.startswith(f"{bad.url}/prompt answered 200 without")), done
        assert any(done.error is None for done in jobs)  # the healthy server kept working
    finally:
        bad.close()


def test_cli_exit_status_and_report(fake, tmp_path):
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(job().prompt))

    runs = iter(range(10))

    def cli(*extra):  # a fresh --out each time: a rerun into the same folder would skip the finished job
        return subprocess.run([sys.executable, "-m", "emo_core", "batch", str(workflow), "--server", fake.url,
                               "--out", str(tmp_path / f"out{next(runs)}"), *extra],
                              capture_output=True, text=True, timeout=30, cwd=ROOT)

    ok = cli("--timeout", "5")
    assert ok.returncode == 0 and "1 done, 0 failed" in ok.stdout, ok.stdout + ok.stderr
    fake.sends(frame(b"not json"))
    bad = cli("--timeout", "5")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"wf: FAILED: {fake.url}/ws: websocket text frame that is not JSON" in bad.stdout
    assert "0 done, 1 failed" in bad.stdout
    fake.ws = fake.healthy
    fake.sends()  # quiet: only --timeout ends it
    fake.queue_answer = {"queue_running": [], "queue_pending": [[0, "fake-3", {}, {}, []]]}
    start = time.monotonic()
    slow = cli("--timeout", "1")
    assert slow.returncode == 1 and "timed out after 1 s" in slow.stdout, slow.stdout + slow.stderr
    assert time.monotonic() - start < 15
    assert cli("--timeout", "0").returncode == 2  # argparse: not a positive number of seconds
