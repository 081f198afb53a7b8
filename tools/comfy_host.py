"""Start, drive and stop a real ComfyUI server with emo-nodes loaded (headless, loopback, CPU by default).

Used by the test fixtures and by ``make demo``. The server's base directory lives in the git-ignored ``.host/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST_DIR = ROOT / ".host"
COMFY_DIR = HOST_DIR / "comfyui"
PYTHON = ROOT / ".venv" / "bin" / "python"
PLUGIN_NAME = "emo-nodes"
SUPPORT = ROOT / "tests" / "support"  # the tiny test models and their generator
TINY_MODELS = SUPPORT / "tiny_models"
TEST_NODES = SUPPORT / "test_nodes"  # test-only nodes (a scripted V-A critic): registered only with test_nodes=True
TEST_NODES_ENV = "EMO_NODES_TEST_NODES"  # set for the host process when test_nodes=True; the pack checks it
EXAMPLE_INPUT = "emoeditor_example.png"  # the LoadImage file the EmoEditor workflows name
EXAMPLE_SOURCE = ROOT.parent / "shared" / "golden" / "emoeditor" / "images" / "astronaut.png"


class HostError(RuntimeError):
    pass


def ensure_tiny_models(models_dir: Path = HOST_DIR / "base" / "models") -> None:
    """(Re)write the tiny seeded checkpoints when missing or when their generator changed."""
    sources = [SUPPORT / "make_tiny_models.py", SUPPORT / "tiny_critic.py", *sorted(TINY_MODELS.glob("*.py"))]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    stamp = models_dir / ".tiny-models.stamp"
    if stamp.is_file() and stamp.read_text() == digest:
        return
    subprocess.run([str(PYTHON), str(sources[0]), str(COMFY_DIR), str(models_dir)], check=True,
                   stdout=subprocess.DEVNULL)
    stamp.write_text(digest)


def stage_example_input(input_dir: Path) -> None:
    """Put the EmoEditor workflows' example image in the host's input folder: the golden astronaut photo when the
    shared data is beside the repo, else a drawn picture."""
    target = input_dir / EXAMPLE_INPUT
    if target.is_file():
        return
    if EXAMPLE_SOURCE.is_file():
        target.write_bytes(EXAMPLE_SOURCE.read_bytes())
        return
    drawn_picture().save(target)


def drawn_picture(size: int = 256):
    """A small landscape drawn with Pillow (sky, sun, hills, a house): a stand-in photo that owes nothing to any
    data set, for the demo without the shared data and for the template thumbnails."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for y in range(size):  # sky: deep blue to pale at the horizon
        t = y / size
        draw.line([(0, y), (size, y)], fill=(int(70 + 150 * t), int(120 + 110 * t), int(200 + 40 * t)))
    s = size / 256
    draw.ellipse([180 * s, 30 * s, 225 * s, 75 * s], fill=(255, 214, 110))
    draw.polygon([(0, 170 * s), (90 * s, 120 * s), (200 * s, 165 * s), (256 * s, 140 * s), (256 * s, 256 * s),
                  (0, 256 * s)], fill=(70, 140, 80))
    draw.polygon([(0, 210 * s), (120 * s, 175 * s), (256 * s, 205 * s), (256 * s, 256 * s), (0, 256 * s)],
                 fill=(50, 110, 60))
    draw.rectangle([60 * s, 150 * s, 110 * s, 195 * s], fill=(230, 220, 200))
    draw.polygon([(52 * s, 152 * s), (85 * s, 122 * s), (118 * s, 152 * s)], fill=(170, 60, 50))
    draw.rectangle([78 * s, 170 * s, 92 * s, 195 * s], fill=(110, 70, 40))
    return image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyHost:
    """One ComfyUI server process. ``models_dir`` adds a user's ComfyUI models folder (read-only use)."""

    def __init__(self, base: Path = HOST_DIR / "base", port: int | None = None, models_dir: Path | None = None,
                 cpu: bool = True, front_end_root: Path | None = None, test_nodes: bool = False):
        self.base = base
        self.test_nodes = test_nodes  # the tests' host registers tests/support/test_nodes; the demo's never does
        self.port = port or free_port()
        self.models_dir = models_dir
        self.cpu = cpu
        self.front_end_root = front_end_root  # another frontend build (its static folder) instead of the installed
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / f"comfyui-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Folders, plugin links and model paths; the prestartup scan fails if custom_nodes is missing."""
        for sub in ("custom_nodes", "models/checkpoints", "input", "output", "user", "temp"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        stage_example_input(self.base / "input")
        # The test pack is always linked (hosts share the base folder) and registers nothing unless its variable is
        # set for this host's process (start), so the demo never shows it.
        for name, target in ((PLUGIN_NAME, ROOT), ("emo_tiny_models", TINY_MODELS), ("emo_test_nodes", TEST_NODES)):
            link = self.base / "custom_nodes" / name
            if not (link.is_symlink() and link.resolve() == target):
                if link.is_symlink():
                    link.unlink()
                link.symlink_to(target, target_is_directory=True)
        lines = []
        if self.models_dir:
            lines += ["user_models:", f"  base_path: {self.models_dir}"]
            lines += [f"  {kind}: {kind}" for kind in
                      ("checkpoints", "vae", "loras", "emoticrafter", "emoeditor", "diffusion_models")]
        paths = self.base / "extra_model_paths.yaml"
        if lines:
            paths.write_text("\n".join(lines) + "\n")
        else:
            paths.unlink(missing_ok=True)  # ComfyUI rejects an empty file

    def start(self, timeout: float = 180.0) -> ComfyHost:
        if not (COMFY_DIR / "main.py").is_file():
            raise HostError("ComfyUI is not set up: run tools/setup.sh (make setup)")
        self.prepare()
        cmd = [str(PYTHON), str(COMFY_DIR / "main.py"), "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base), "--database-url", "sqlite:///:memory:",
               "--disable-api-nodes", "--disable-auto-launch"]
        if (self.base / "extra_model_paths.yaml").is_file():
            cmd += ["--extra-model-paths-config", str(self.base / "extra_model_paths.yaml")]
        if self.cpu:
            cmd.append("--cpu")
        if self.front_end_root:
            cmd += ["--front-end-root", str(self.front_end_root)]
        log = open(self.log_path, "w")  # noqa: SIM115 (lives as long as the process)
        env = {k: v for k, v in os.environ.items() if k != TEST_NODES_ENV}
        if self.test_nodes:
            env[TEST_NODES_ENV] = "1"
        self.proc = subprocess.Popen(cmd, cwd=COMFY_DIR, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HostError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.get("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.25)
        self.stop()
        raise HostError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop our own server by its PID (and its process group), never anything else."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> ComfyHost:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # -- HTTP --------------------------------------------------------------------------------------------
    def request(self, path: str, payload: dict | None = None, timeout: float = 30.0) -> tuple[int, object]:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                body = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            body, status = e.read(), e.code
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, body

    def get(self, path: str) -> object:
        status, body = self.request(path)
        if status != 200:
            raise HostError(f"GET {path} -> {status}: {body}")
        return body

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return r.read()

    # -- prompts -----------------------------------------------------------------------------------------
    def queue(self, prompt: dict, workflow: dict | None = None) -> tuple[int, dict]:
        """POST /prompt; returns (status, body): 200 with a prompt_id, or 400 with the validation errors."""
        payload = {"prompt": prompt, "client_id": uuid.uuid4().hex}
        if workflow is not None:
            payload["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        return self.request("/prompt", payload)

    def wait(self, prompt_id: str, timeout: float = 300.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            entry = history.get(prompt_id) if isinstance(history, dict) else None
            if entry and entry.get("status", {}).get("completed") is not None and (
                    entry["status"].get("completed") or entry["status"].get("status_str") == "error"):
                return entry
            if self.proc is not None and self.proc.poll() is not None:
                raise HostError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            time.sleep(0.1)
        raise HostError(f"prompt {prompt_id} did not finish within {timeout:.0f} s:\n{self.log_tail()}")

    def run(self, prompt: dict, workflow: dict | None = None, timeout: float = 300.0) -> dict:
        """Queue, wait, and insist on success; failures carry the host's message and log tail."""
        status, body = self.queue(prompt, workflow)
        if status != 200:
            raise HostError(f"prompt rejected ({status}): {json.dumps(body, indent=1)[:4000]}")
        entry = self.wait(body["prompt_id"], timeout)
        if entry["status"].get("status_str") != "success":
            raise HostError(f"prompt failed: {json.dumps(entry['status'], indent=1)[:6000]}\n"
                            f"--- host log ---\n{self.log_tail()}")
        return entry

    def rejection(self, prompt: dict, node_id: str) -> str:
        """Queue a prompt that validation must refuse (HTTP 400); returns the details given for ``node_id``."""
        status, body = self.queue(prompt)
        if status != 400:
            raise HostError(f"prompt was not rejected ({status}): {json.dumps(body)[:2000]}")
        return " | ".join(e["details"] for e in body["node_errors"][node_id]["errors"])

    def run_error(self, prompt: dict, timeout: float = 300.0) -> dict:
        """Queue a prompt that passes validation but must fail while running; returns the execution_error message
        (node_id, exception_message, traceback)."""
        status, body = self.queue(prompt)
        if status != 200:
            raise HostError(f"prompt rejected ({status}): {json.dumps(body, indent=1)[:4000]}")
        entry = self.wait(body["prompt_id"], timeout)
        errors = [m[1] for m in entry["status"].get("messages", []) if m[0] == "execution_error"]
        if entry["status"].get("status_str") != "error" or not errors:
            raise HostError(f"prompt did not fail: {json.dumps(entry['status'], indent=1)[:4000]}")
        return errors[0]

    def output_files(self, entry: dict, node_id: str | None = None, key: str = "images") -> list[dict]:
        outputs = entry.get("outputs", {})
        nodes = [node_id] if node_id else sorted(outputs)
        return [f for n in nodes for f in outputs.get(n, {}).get(key, [])]

    def output_path(self, file: dict) -> Path:
        return self.base / file.get("type", "output") / file.get("subfolder", "") / file["filename"]

    def fetch(self, file: dict) -> bytes:
        query = urllib.parse.urlencode({k: file.get(k, "") for k in ("filename", "subfolder", "type")})
        return self.get_bytes(f"/view?{query}")
