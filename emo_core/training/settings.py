"""Training settings and results shared by the trainers: ``TrainConfig``, ``TrainResult``, the AMP modes.

Every ``TrainConfig`` field defaults to its value in the published EIT training run. The generic loop
(``emo_core.training.loop``) reads the optimiser, batching, split, seeding, precision and checkpoint fields; the
objective fields (``alpha``, ``density``, ``density_clip``) belong to the task that defines the loss
(``emo_core.training.eit.task`` for the EIT). A trainer with other objective knobs may use another dataclass with the
loop's fields.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from .eit.objective import DEFAULT_CLIP, DENSITY_MODES

AMP_MODES = ("auto", "bf16", "off")

# Fields that may differ between a run and its resumption (they do not change what is being optimised).
RESUME_FREE_FIELDS = ("epochs", "checkpoint_every", "eval_batch_size", "amp")


@dataclass
class TrainConfig:
    """Every knob of the published training run, with its published value as the default."""

    alpha: float = 1.5  # target scale of the emotional residual (README/paper; the code's default is 1.0)
    density: str = "published"  # published (1/d²) | paper (1/d) | normalised | off
    density_clip: tuple[float, float] = DEFAULT_CLIP  # only for "normalised"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 768  # global batch (summed over data-parallel ranks)
    epochs: int = 200
    val_fraction: float = 0.01
    split_seed: int = 42  # numpy RandomState seed of the train/validation split (sklearn's random_state)
    seed: int = 0  # model initialisation, per-epoch shuffling and dropout
    dropout: float = 0.1  # GPT-2 dropouts in train mode, as published; 0 for exactly reproducible DDP runs
    amp: str = "auto"  # auto: bf16 autocast on CUDA GPUs that support it, fp32 elsewhere
    checkpoint_every: int = 0  # extra resume states every N optimiser steps (0: once per epoch)
    eval_batch_size: int = 0  # validation batch (0: batch_size)

    def __post_init__(self):
        try:
            self.density_clip = tuple(float(x) for x in self.density_clip)
        except (TypeError, ValueError):
            pass  # reported below
        problems = config_problems(self)
        if problems:
            raise ValueError("invalid training settings: " + "; ".join(problems))


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def config_problems(config: TrainConfig) -> list[str]:
    """Every field of ``config`` that cannot give a meaningful run, each saying what it is and what is allowed (a
    run that would train nothing, non-finite numbers, impossible splits). TrainConfig refuses such values."""
    problems = []

    def real(name: str, low: float | None = None, high: float | None = None, low_open: bool = False,
             high_open: bool = False) -> None:
        value = getattr(config, name)
        if not _is_real(value):
            problems.append(f"{name} must be a number, got {value!r}")
        elif not math.isfinite(value):
            problems.append(f"{name} is {value} (must be a finite number)")
        elif low is not None and (value <= low if low_open else value < low):
            problems.append(f"{name} {value:g} must be {'>' if low_open else '>='} {low:g}")
        elif high is not None and (value >= high if high_open else value > high):
            problems.append(f"{name} {value:g} must be {'<' if high_open else '<='} {high:g}")

    def integer(name: str, low: int) -> None:
        value = getattr(config, name)
        if not _is_int(value):
            problems.append(f"{name} must be a whole number, got {value!r}")
        elif value < low:
            problems.append(f"{name} {value} must be >= {low}" + (" (a run must train at least one epoch)"
                                                                  if name == "epochs" else ""))

    real("alpha")
    real("lr", 0.0, low_open=True)
    real("weight_decay", 0.0)
    real("val_fraction", 0.0, 0.5, low_open=True)
    real("dropout", 0.0, 1.0, high_open=True)
    integer("batch_size", 1)
    integer("epochs", 1)
    integer("split_seed", 0)
    integer("seed", 0)
    integer("checkpoint_every", 0)
    integer("eval_batch_size", 0)
    if config.density not in DENSITY_MODES:
        problems.append(f"density must be one of {DENSITY_MODES}, got {config.density!r}")
    if config.amp not in AMP_MODES:
        problems.append(f"amp must be one of {AMP_MODES}, got {config.amp!r}")
    clip = config.density_clip
    finite = isinstance(clip, tuple) and len(clip) == 2 and all(_is_real(x) and math.isfinite(x) for x in clip)
    if not finite or not 0 < clip[0] <= clip[1]:
        problems.append(f"density_clip {clip!r} must be two finite numbers 0 < low <= high")
    return problems


@dataclass
class TrainResult:
    model: torch.nn.Module  # the best weights (lowest unweighted validation MSE), eval mode, CPU
    history: list[dict] = field(default_factory=list)  # one record per completed epoch
    best_val_loss: float = math.inf
    best_epoch: int = 0
    initial_val_loss: float = math.nan  # validation MSE of the model before the first step
    epochs_completed: int = 0
    global_step: int = 0
    stopped: bool = False  # True when should_stop() ended the run early (resume from state_path)
    out_path: Path | None = None
    state_path: Path | None = None


def config_dict(config) -> dict:
    """A config dataclass as plain Python values (tuples as lists), the form stored in resume states."""
    out = asdict(config)
    return {key: list(value) if isinstance(value, tuple) else value for key, value in out.items()}


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
