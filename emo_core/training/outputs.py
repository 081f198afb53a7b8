"""Where a training run writes its model and resume state, so that an earlier model is never lost by accident.

A run names two final files: the model (``<name>.safetensors``) and its resume state (``<name>.state.pt``).

- **New name** (neither final file, nor a pending run's files, exists): the run writes both final files directly;
  the model file always holds the best weights so far (cancel or a crash leaves them, plus a resumable state).
- **Existing name, no overwrite**: refused before anything is written (``OutputExistsError`` names the existing
  files and the ways out: another name, resume, or overwrite).
- **Existing name, overwrite**: the run writes *pending* files beside the final ones (``<final>.pending``: not
  listed by model loaders). Only when the run completes are they moved onto the final names, each with one atomic
  rename (state first, then model). A failed, cancelled or killed run leaves the earlier model and state exactly
  as they were; its pending state can be resumed.
- **Extra files** (``extras``, e.g. a trainer that writes two model files) follow the model's rule: refused when
  they exist, written pending when the run replaces, moved onto their final names after the model at completion.
- **Resume**: continues the interrupted run of that name: a pending (overwriting) run when there is one, else the
  final state. Resuming is not an overwrite: it continues the same run and keeps its replace-at-the-end rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..atomic_io import fsync_dir
from ..errors import EmoError
from .checkpointing import remove_stale_temps

PENDING = ".pending"


class OutputExistsError(EmoError, FileExistsError):
    """A new run would replace an earlier model or training state, and overwriting was not asked for."""


def pending(path: Path) -> Path:
    return path.with_name(path.name + PENDING)


@dataclass
class OutputPlan:
    model: Path | None  # the final files
    state: Path | None
    write_model: Path | None  # where this run writes
    write_state: Path | None
    resume_from: Path | None
    replacing: bool  # pending files, moved onto the final names by ``commit`` at successful completion
    extras: tuple[tuple[Path, Path], ...] = ()  # (where this run writes, final name) of the extra files

    def write_extra(self, final: str | os.PathLike) -> Path:
        """Where this run writes the extra file ``final``."""
        return {target: source for source, target in self.extras}[Path(final)]

    def commit(self) -> None:
        """Move a completed run's pending files onto the final names (state first: a kill in between leaves the
        finished state, and resuming it writes the model at once). No-op for a run writing the final files."""
        if not self.replacing:
            return
        for source, target in ((self.write_state, self.state), (self.write_model, self.model), *self.extras):
            if source is not None and target is not None and source.is_file():
                os.replace(source, target)
                fsync_dir(target.parent)


def plan_outputs(model: str | os.PathLike | None, state: str | os.PathLike | None, *,
                 resume: bool | str | os.PathLike | None = None, overwrite: bool = False,
                 how_to_overwrite: str = "overwrite=True", lead: bool = True,
                 extras: tuple[str | os.PathLike, ...] = ()) -> OutputPlan:
    """Decide where a run writes (see the module docstring). ``resume``: True picks the interrupted run of these
    final names (pending first), a path continues that state file. ``how_to_overwrite`` names the switch in the
    refusal message (the node's input, the CLI's option). Only the ``lead`` process removes files. ``extras``: more
    final files of the run, under the model's rule."""
    model = Path(model) if model is not None else None
    state = Path(state) if state is not None else None
    extra_files = tuple(Path(p) for p in extras)

    def plan(write_model, write_state, resume_from, replacing) -> OutputPlan:
        written = tuple((pending(p) if replacing else p, p) for p in extra_files)
        return OutputPlan(model, state, write_model, write_state, resume_from, replacing, written)

    finals = [p for p in (model, state, *extra_files) if p is not None]
    pendings = [pending(p) for p in finals]
    if resume is True:
        pending_state = pending(state) if state is not None else None
        if pending_state is not None and pending_state.is_file():
            return plan(pending(model) if model else None, pending_state, pending_state, True)
        if state is not None and state.is_file():
            return plan(model, state, state, False)
        raise FileNotFoundError(f"nothing to resume: no training state {state}")
    if resume:
        resume = Path(resume)
        if not resume.is_file():
            raise FileNotFoundError(f"nothing to resume: no training state {resume}")
        if state is not None and resume == pending(state):
            return plan(pending(model) if model else None, resume, resume, True)
        return plan(model, state, resume, False)
    existing = [p for p in finals + pendings if p.exists()]
    if existing and not overwrite:
        listed = ", ".join(str(p) for p in existing)
        raise OutputExistsError(
            f"{listed} already exist(s) from an earlier run; nothing was written. Choose another name, set "
            f"{how_to_overwrite} to replace it (the earlier files stay until the new run completes), or resume to "
            "continue an interrupted run.")
    if lead:
        remove_stale_temps(*finals, *pendings)
    if overwrite and any(p.exists() for p in finals):
        if lead:
            for path in pendings:
                path.unlink(missing_ok=True)  # an abandoned overwriting run: the user asked to start afresh
        return plan(pending(model) if model else None, pending(state) if state else None, None, True)
    if lead:
        for path in pendings:
            path.unlink(missing_ok=True)
    return plan(model, state, None, False)
