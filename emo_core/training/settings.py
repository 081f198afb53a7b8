"""The generic loop's settings and results, shared by every trainer: ``LoopSettings``, ``TrainResult``, AMP modes.

``LoopSettings`` holds only what the loop (``emo_core.training.loop``) reads: optimiser, batching, run length, split,
seeding, precision and checkpoints. A trainer's config is a dataclass extending it with the knobs of its objective
and its published defaults (``emo_core.training.eit.task.TrainConfig``, ``emo_core.training.editor.task.EditorConfig``);
it adds its own checks by overriding ``problems``.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

AMP_MODES = ("auto", "bf16", "off")

# Fields that may differ between a run and its resumption (they do not change what is being optimised).
RESUME_FREE_FIELDS = ("epochs", "checkpoint_every", "eval_batch_size", "amp")


@dataclass
class LoopSettings:
    """The loop's knobs. A run lasts ``epochs`` epochs, or ``steps`` optimiser steps when that is not 0 (the epoch in
    progress then ends early, with its validation)."""

    settings_name: ClassVar[str] = "training"  # errors say "invalid <settings_name> settings: ..."
    # Loop fields a trainer does not use: they must keep their default and are left out of ``config_dict`` (so
    # resume states and file metadata hold only what the trainer means).
    unused_fields: ClassVar[tuple[str, ...]] = ()

    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32  # global batch (summed over data-parallel ranks)
    epochs: int = 1
    steps: int = 0  # optimiser steps of the run (0: ``epochs`` decides)
    val_fraction: float = 0.01
    split_seed: int = 42  # numpy RandomState seed of the train/validation split (sklearn's random_state)
    seed: int = 0  # model initialisation, per-epoch shuffling and dropout
    amp: str = "off"  # auto: bf16 autocast on CUDA GPUs that support it | bf16 | off (fp32)
    checkpoint_every: int = 0  # extra resume states every N optimiser steps (0: once per epoch)
    eval_batch_size: int = 0  # validation batch (0: batch_size)

    def __post_init__(self):
        problems = self.problems()
        if problems:
            raise ValueError(f"invalid {self.settings_name} settings: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every field that cannot give a meaningful run; a trainer's config extends the list with its own."""
        return config_problems(self)


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def is_real(value) -> bool:
    """A real number (numpy scalars too), not a bool."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def real_problem(config, name: str, low: float | None = None, high: float | None = None, low_open: bool = False,
                 high_open: bool = False) -> str | None:
    """Why field ``name`` is not a finite number in the given range, or None."""
    value = getattr(config, name)
    if not is_real(value):
        return f"{name} must be a number, got {value!r}"
    if not math.isfinite(value):
        return f"{name} is {value} (must be a finite number)"
    if low is not None and (value <= low if low_open else value < low):
        return f"{name} {value:g} must be {'>' if low_open else '>='} {low:g}"
    if high is not None and (value >= high if high_open else value > high):
        return f"{name} {value:g} must be {'<' if high_open else '<='} {high:g}"
    return None


def whole_problem(config, name: str, low: int) -> str | None:
    """Why field ``name`` is not a whole number >= ``low``, or None."""
    value = getattr(config, name)
    if not _is_int(value):
        return f"{name} must be a whole number, got {value!r}"
    if value < low:
        return f"{name} {value} must be >= {low}" + (" (a run must train at least one epoch)" if name == "epochs"
                                                     else "")
    return None


def config_problems(config: LoopSettings) -> list[str]:
    """Every loop field of ``config`` that cannot give a meaningful run, each saying what it is and what is allowed
    (a run that would train nothing, non-finite numbers, impossible splits), and every unused field that was set."""
    found = [real_problem(config, "lr", 0.0, low_open=True), real_problem(config, "weight_decay", 0.0),
             real_problem(config, "val_fraction", 0.0, 0.5, low_open=True),
             whole_problem(config, "batch_size", 1), whole_problem(config, "epochs", 1),
             whole_problem(config, "steps", 0), whole_problem(config, "split_seed", 0),
             whole_problem(config, "seed", 0), whole_problem(config, "checkpoint_every", 0),
             whole_problem(config, "eval_batch_size", 0)]
    if config.amp not in AMP_MODES:
        found.append(f"amp must be one of {AMP_MODES}, got {config.amp!r}")
    defaults = {f.name: f.default for f in fields(LoopSettings)}
    for name in config.unused_fields:
        if defaults.get(name, MISSING) is MISSING or getattr(config, name) != defaults[name]:
            found.append(f"{name} is not a setting of this trainer (leave it at {defaults.get(name)!r})")
    return [problem for problem in found if problem is not None]


@dataclass
class TrainResult:
    model: torch.nn.Module  # the kept weights (eval mode, CPU for keep_best trainers): see best_epoch
    history: list[dict] = field(default_factory=list)  # one record per completed epoch
    best_val_loss: float = math.inf  # the lowest unweighted validation MSE after any epoch
    # keep_best trainers: the 1-based epoch whose weights ``model`` holds (0: none validated yet). None for a
    # trainer that keeps its latest model (``TrainTask.keep_best`` False): there it would name no kept weights.
    best_epoch: int | None = 0
    best_step: int = 0  # the global optimiser step after which best_val_loss was measured (0: none)
    initial_val_loss: float = math.nan  # validation MSE of the model before the first step
    epochs_completed: int = 0
    global_step: int = 0
    stopped: bool = False  # True when should_stop() ended the run early (resume from state_path)
    out_path: Path | None = None
    state_path: Path | None = None


def config_dict(config) -> dict:
    """A config dataclass as plain Python values (tuples as lists), the form stored in resume states; fields the
    trainer does not use are left out."""
    unused = config.unused_fields if isinstance(config, LoopSettings) else ()
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(config).items()
            if key not in unused}


def config_from_dict(cls, saved: dict):
    """``cls`` built from the stored fields it knows (fields added later keep their defaults)."""
    return cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})


def uses_bf16(amp: str, device: torch.device) -> bool:
    """Whether ``amp`` means bf16 autocast on ``device``: only on CUDA, ``auto`` when the GPU supports it."""
    if amp == "off" or device.type != "cuda":
        return False
    supported = torch.cuda.is_bf16_supported()
    if amp == "bf16" and not supported:
        raise ValueError(f"{device} does not support bf16")
    return supported


def autocast(bf16: bool):
    """bf16 autocast on CUDA when ``bf16``, else a no-op context."""
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
