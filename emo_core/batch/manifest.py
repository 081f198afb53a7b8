"""The output folder of a batch: images written atomically, and ``manifest.jsonl``, one line per finished job.

A line is written only after its job's images are in place, so a run stopped at any instant (Ctrl-C, SIGKILL)
leaves a manifest that lists exactly the finished jobs; the rerun renders the rest (a job's file names are fixed,
so an image written just before the stop is replaced, never doubled). Each line carries the run's settings hash
(the workflow after --set/--seed/--target, before the per-job inputs): a folder holding another run's manifest
is refused unless ``resume_anyway``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from ..atomic_io import atomic_write, atomic_write_text
from .client import Job, safe_name
from .errors import BatchError

NAME = "manifest.jsonl"


def settings_hash(prompt: dict) -> str:
    return hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]


def same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


class Manifest:
    def __init__(self, out: str | Path, settings: str, resume_anyway: bool = False):
        self.out, self.settings, self.path = Path(out), settings, Path(out) / NAME
        self.done: dict[str, dict] = {}
        self.resume_anyway = resume_anyway
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            probe = self.out / f".batch-probe-{os.getpid()}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise BatchError(f"--out {str(self.out)!r}: cannot write there ({e.strerror or e}); nothing was run") \
                from None
        if not self.path.is_file():
            return
        text = self.path.read_text(encoding="utf-8", errors="replace")
        lines, kept = text.splitlines(), []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # the last line of a run killed while writing it
            if isinstance(entry, dict) and isinstance(entry.get("job"), str):
                kept.append(line)
                self.done[entry["job"]] = entry
        if len(kept) != len(lines) or (text and not text.endswith("\n")):
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        other = {e.get("settings") for e in self.done.values()} - {settings}
        if other and not resume_anyway:
            theirs = ", ".join(map(str, sorted(other)))
            raise BatchError(f"--out {str(self.out)!r} holds the manifest of another run (settings {theirs}, "
                             f"this run {settings}: another workflow, --set, --seed or --target); choose another "
                             "folder, or pass --resume-anyway to count its finished jobs as done")

    def finished(self, job: Job) -> bool:
        entry = self.done.get(job.key)
        return entry is not None and (self.resume_anyway or same(entry.get("inputs"), job.inputs))

    def record(self, job: Job, outputs: list, server: str, seconds: float) -> list[Path]:
        """Write the job's images (atomically), then its manifest line."""
        paths = []
        for n, (node_id, k, suffix, data) in enumerate(outputs):
            extra = "" if n == 0 else f" [{safe_name(node_id)}-{k}]"
            path = self.out / f"{job.name}{extra}{suffix or '.png'}"
            atomic_write(path, lambda tmp, data=data: tmp.write_bytes(data))
            paths.append(path)
        entry = {"job": job.key, "settings": self.settings, "inputs": job.inputs,
                 "files": [p.name for p in paths], "server": server, "seconds": round(seconds, 3),
                 "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[job.key] = entry
        job.paths = paths
        return paths
