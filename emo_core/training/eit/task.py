"""Training EmotiCrafter's Emotion Injection Transformer from cached prompt features: the EIT task of the loop.

Published setup, each a ``TrainConfig`` field (the loop's ``LoopSettings`` plus the EIT's objective knobs): target
t = (e - n)·α + n with α = 1.5; squared error averaged over all B·77·2048 elements, weighted by the V-A density
(``emo_core.training.eit.objective``: published 1/d², paper 1/d, normalised, off); AdamW(lr 1e-3, weight_decay
1e-5), no schedule, no clipping; batch 768; 200 epochs; dropout 0.1 in train mode; ``train_test_split(test_size=0.01,
random_state=42)`` over rows; the best model is the one with the lowest *unweighted* validation MSE. The KDE is
fitted on all rows (train and validation), as published.

Checkpointing: after every epoch (and every ``checkpoint_every`` steps, and when ``should_stop()`` returns True) a
resume state is written atomically (model, optimiser, epoch/step, RNG states, history, best weights), so a run
killed at any moment loses at most the epoch in progress and never leaves a partial file. ``resume=`` continues.
The best model so far is written to ``out_path`` (safetensors with training metadata) whenever it improves.

Data parallel (torchrun): each rank trains on every W-th row of the global batch, with the single-process loss
and gradient (``emo_core.training.distributed``). Hence a DDP run equals a single-process run with the same
``batch_size`` up to float summation order, provided dropout is 0 (dropout masks are drawn per rank). Only rank 0
writes files.

The loop, checkpoints and data parallelism are the generic ones of ``emo_core.training.loop``; this module supplies
the model, the objective and the model file (``EITTask``). Run as ``python -m emo_core train-eit --help``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ...emoticrafter.eit import EITConfig, EmotionInjectionTransformer, init_published_weights
from .. import checkpointing
from ..distributed import default_device, init_distributed_from_env
from ..loop import Trainer, epoch_order, optimizer_step, prepare_run, published_split
from ..settings import LoopSettings, TrainResult, autocast, is_real, real_problem
from ..task import StepContext, TrainTask
from .objective import (
    DEFAULT_CLIP,
    DENSITY_MODES,
    emotion_target,
    row_factors,
    squared_error_sum,
    va_density,
    weighted_loss,
)

__all__ = ["STATE_FORMAT", "EITTask", "TrainConfig", "TrainResult", "default_device", "epoch_order",
           "init_distributed_from_env", "load_state", "published_split", "train_config_from_state", "train_eit",
           "train_step"]

STATE_FORMAT = "emo-nodes.eit-train-state"
STATE_NAME = "emo-nodes EIT training state"
TRAINER_ID = "emo-nodes emo_core.train"  # the "trainer" metadata value of every model this trainer writes


@dataclass
class TrainConfig(LoopSettings):
    """Every knob of the published training run, with its published value as the default."""

    unused_fields = ("steps",)  # the EIT trains whole epochs

    alpha: float = 1.5  # target scale of the emotional residual (README/paper; the code's default is 1.0)
    density: str = "published"  # published (1/d²) | paper (1/d) | normalised | off
    density_clip: tuple[float, float] = DEFAULT_CLIP  # only for "normalised"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 768  # global batch (summed over data-parallel ranks)
    epochs: int = 200
    dropout: float = 0.1  # GPT-2 dropouts in train mode, as published; 0 for exactly reproducible DDP runs
    amp: str = "auto"  # auto: bf16 autocast on CUDA GPUs that support it, fp32 elsewhere

    def __post_init__(self):
        try:
            self.density_clip = tuple(float(x) for x in self.density_clip)
        except (TypeError, ValueError):
            pass  # reported by problems()
        super().__post_init__()

    def problems(self) -> list[str]:
        found = [real_problem(self, "alpha"), real_problem(self, "dropout", 0.0, 1.0, high_open=True)]
        if self.density not in DENSITY_MODES:
            found.append(f"density must be one of {DENSITY_MODES}, got {self.density!r}")
        clip = self.density_clip
        finite = isinstance(clip, tuple) and len(clip) == 2 and all(is_real(x) and math.isfinite(x) for x in clip)
        if not finite or not 0 < clip[0] <= clip[1]:
            found.append(f"density_clip {clip!r} must be two finite numbers 0 < low <= high")
        return super().problems() + [problem for problem in found if problem is not None]


def eit_loss(model: torch.nn.Module, neutral: torch.Tensor, emotional: torch.Tensor, arousal: torch.Tensor,
             valence: torch.Tensor, factor: torch.Tensor | None, *, alpha: float, density: str,
             count: int | None = None, bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward (bf16 autocast if asked), target (e - n)·α + n, weighted loss summed over the batch / ``count``
    (default: its elements). Returns (loss with its graph, unweighted squared-error sum, detached)."""
    with autocast(bf16):
        pred = model(neutral, valence=valence, arousal=arousal)
    pred = pred.float()
    target = emotion_target(neutral, emotional, alpha)
    return weighted_loss(pred, target, factor, density, count), squared_error_sum(pred, target)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, neutral: torch.Tensor,
               emotional: torch.Tensor, arousal: torch.Tensor, valence: torch.Tensor, factor: torch.Tensor | None, *,
               alpha: float, density: str, count: int | None = None, loss_scale: float = 1.0,
               bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch (f32 features on the model's device), exactly as the trainer takes it:
    ``eit_loss``, backward of ``loss·loss_scale``, AdamW step. Returns (loss, unweighted squared-error sum), both
    detached. ``loss_scale`` lets a data-parallel rank undo DDP's gradient average (world size) or zero a
    placeholder row."""
    loss, sse = eit_loss(model, neutral, emotional, arousal, valence, factor, alpha=alpha, density=density,
                         count=count, bf16=bf16)
    optimizer_step(loss, optimizer, loss_scale)
    return loss.detach(), sse


class EITTask(TrainTask):
    """The EIT plugged into the generic loop: published initialisation, density-weighted target, ``save_eit``; every
    hook keeps its default (published split, AdamW, whole-model states, best model kept)."""

    state_format = STATE_FORMAT
    state_name = STATE_NAME

    def __init__(self, config: TrainConfig, model_config: EITConfig,
                 init_model: EmotionInjectionTransformer | None = None, extra_metadata: dict | None = None):
        self.config, self.model_config, self.init_model = config, model_config, init_model
        self.extra_metadata = dict(extra_metadata or {})
        self.factors: torch.Tensor | None = None
        self.device = torch.device("cpu")

    def model_config_dict(self) -> dict:
        return asdict(self.model_config)

    def prepare(self, features, device: torch.device, say: Callable[[str], None]) -> None:
        """The per-row density factors of the loss, from the KDE over every row's (arousal, valence)."""
        self.device = device
        started = time.perf_counter()
        density = va_density(features.arousal.numpy(), features.valence.numpy())
        self.factors = row_factors(density, self.config.density, self.config.density_clip)
        say(f"V-A density of {len(features)} rows in {time.perf_counter() - started:.1f} s "
            f"(range {density.min():.4g}..{density.max():.4g}); weighting: {self.config.density}")

    def new_model(self) -> EmotionInjectionTransformer:
        return EmotionInjectionTransformer(self.model_config)

    def initialise(self, model: EmotionInjectionTransformer, seed: int) -> None:
        init_published_weights(model, torch.Generator().manual_seed(seed))
        if self.init_model is not None:
            model.load_state_dict(self.init_model.state_dict())

    def _inputs(self, batch) -> tuple[torch.Tensor, ...]:
        dev = self.device
        neutral = batch.neutral.to(dev, non_blocking=True).float()
        emotional = batch.emotional.to(dev, non_blocking=True).float()
        return neutral, emotional, batch.arousal.to(dev), batch.valence.to(dev)

    def _factor(self, rows: torch.Tensor) -> torch.Tensor | None:
        return self.factors[rows] if self.factors is not None else None

    def batch_loss(self, model, batch, rows: torch.Tensor, global_rows: int, bf16: bool, at: StepContext):
        neutral, emotional, arousal, valence = self._inputs(batch)
        count = global_rows * neutral.shape[1] * neutral.shape[2]  # elements of the *global* batch
        loss, sse = eit_loss(model, neutral, emotional, arousal, valence, self._factor(rows),
                             alpha=self.config.alpha, density=self.config.density, count=count, bf16=bf16)
        return loss, sse, count

    def validation_sums(self, model, batch, rows: torch.Tensor, bf16: bool) -> tuple[float, float, int]:
        config = self.config
        neutral, emotional, arousal, valence = self._inputs(batch)
        with autocast(bf16):
            pred = model(neutral, valence=valence, arousal=arousal)
        pred = pred.float()
        target = emotion_target(neutral, emotional, config.alpha)
        return (squared_error_sum(pred, target).item(),
                weighted_loss(pred, target, self._factor(rows), config.density, 1).item(), pred.numel())

    def metadata(self, summary: dict) -> dict[str, str]:
        """The training metadata stored in the model file (every value a string)."""
        config = self.config
        meta = {"trainer": TRAINER_ID, "alpha": config.alpha, "density": config.density,
                "lr": config.lr, "weight_decay": config.weight_decay, "batch_size": config.batch_size,
                "epochs": config.epochs, "epochs_completed": summary["epochs_completed"],
                "best_epoch": summary["best_epoch"], "best_val_loss": repr(summary["best_val_loss"]),
                "initial_val_loss": repr(summary["initial_val_loss"]), "dataset_hash": summary["dataset_hash"],
                "n_rows": summary["n_rows"], "n_train": summary["n_train"], "n_val": summary["n_val"],
                "split_seed": config.split_seed, "seed": config.seed, "train_dropout": config.dropout,
                "history": json.dumps(summary["history"], separators=(",", ":"))}
        if config.density == "normalised":
            meta["density_clip"] = f"{config.density_clip[0]:g},{config.density_clip[1]:g}"
        meta.update(self.extra_metadata)
        return {key: str(value) for key, value in meta.items()}

    def write_model(self, model, path: Path, summary: dict) -> None:
        from ...emoticrafter.eit_io import save_eit

        save_eit(model, path, extra_metadata=self.metadata(summary))


def train_eit(features, config: TrainConfig, *, model_config: EITConfig | None = None,
              out_path: str | os.PathLike | None = None, state_path: str | os.PathLike | None = None,
              resume: str | os.PathLike | bool | None = None, overwrite: bool = False,
              how_to_overwrite: str = "overwrite=True", init_model: EmotionInjectionTransformer | None = None,
              dataset_hash: str = "", extra_metadata: dict | None = None, device: str | torch.device | None = None,
              on_step: Callable[[int, int, float], None] | None = None,
              on_epoch: Callable[[dict], None] | None = None,
              should_stop: Callable[[], bool] | None = None,
              log: Callable[[str], None] | None = None) -> TrainResult:
    """Train (or resume training) an EIT on ``features`` (``FeatureCache`` / ``ResidentFeatures``: ``n_rows``,
    ``arousal``, ``valence``, ``fetch(indices)``).

    model_config: sizes (default: the published model); its dropout is replaced by ``config.dropout``.
    init_model: start from these weights instead of the published random initialisation (fine-tuning).
    out_path: the best model, written on every improvement (``save_eit`` + training metadata).
    state_path: the resume state (default ``<out_path>.state.pt``; none when both are None).
    resume: a state file to continue from, or True for the interrupted run of ``state_path`` (its pending,
        overwriting run first); the fields of ``config`` outside ``RESUME_FREE_FIELDS`` must match.
    overwrite: a new run may replace an existing model/state of these names: it writes ``<file>.pending`` files
        and moves them onto the final names only when it completes (``emo_core.training.outputs``); without it an
        existing file is refused (``OutputExistsError``) before anything is written. ``how_to_overwrite`` names the
        switch in that message.
    on_step(epoch, step, loss): 1-based epoch and step within it, the global batch's training objective.
    on_epoch(record): after each epoch's validation, with the history record.
    should_stop(): polled after every step; True writes the resume state and returns with ``stopped=True``.
    """
    place, state = prepare_run(config, state_format=STATE_FORMAT, state_name=STATE_NAME, device=device,
                               out_path=out_path, state_path=state_path, resume=resume, overwrite=overwrite,
                               how_to_overwrite=how_to_overwrite, log=log)
    if state is not None:
        model_config = EITConfig(**state["model_config"])
    elif model_config is None and init_model is not None:
        model_config = init_model.config
    model_config = EITConfig(**{**asdict(model_config or EITConfig()), "dropout": config.dropout})
    task = EITTask(config, model_config, init_model, extra_metadata)
    trainer = Trainer(task, features, config, place, dataset_hash)
    return trainer.run(state, on_step, on_epoch, should_stop)


def load_state(path: str | os.PathLike) -> dict:
    """A resume state written by ``train_eit`` (plain tensors and Python values; loaded with weights_only)."""
    return checkpointing.load_state(path, STATE_FORMAT, STATE_NAME)


def train_config_from_state(path: str | os.PathLike) -> TrainConfig:
    """The TrainConfig a state was written with (for resuming with the same settings)."""
    return checkpointing.config_from_state(load_state(path), TrainConfig)

