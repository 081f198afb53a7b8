"""What a trainer plugs into the generic loop (``emo_core.training.loop``): the ``TrainTask`` protocol and its
optional ``TaskHooks``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch


class TaskHooks(Protocol):
    """Optional members of a ``TrainTask``; the loop uses each one only when the task has it."""

    keep_best: bool  # False: keep and write the latest model (at the end), no best-weights copy
    state_each_epoch: bool  # False: resume states only every checkpoint_every steps, on a stop and at the end

    def split(self, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(train, validation) rows instead of ``published_split``."""

    def make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The optimiser instead of AdamW(lr, weight_decay) over every parameter."""

    def optimizer_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, loss_scale: float) -> None:
        """Backward and step instead of ``optimizer_step`` (e.g. with a gradient scaler)."""

    def model_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The CPU tensors a resume state holds of the model (e.g. only the trained ones)."""

    def load_model_state(self, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Load what ``model_state`` returned."""


class TrainTask(Protocol):
    """What a trainer supplies: its model, objective, data handling and model file. ``features`` has ``len()`` and
    ``fetch(rows)`` (a batch of the given rows); the task decides what a batch holds."""

    state_format: str  # the ``format`` of its resume states
    state_name: str  # how errors name such a state, e.g. "emo-nodes EIT training state"

    def model_config_dict(self) -> dict:
        """The model sizes, stored in resume states (``model_config``)."""

    def prepare(self, features, device: torch.device, say: Callable[[str], None]) -> None:
        """Once before training: per-row data the objective needs (e.g. loss weights over all rows)."""

    def new_model(self) -> torch.nn.Module:
        """A freshly constructed model (the loop loads weights into it)."""

    def initialise(self, model: torch.nn.Module, seed: int) -> None:
        """Set the starting weights of a new run (seeded initialisation, or given weights to fine-tune)."""

    def batch_loss(self, model: torch.nn.Module, batch, rows: torch.Tensor, global_rows: int,
                   bf16: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(objective, squared-error sum, count) of this rank's ``batch`` (of dataset rows ``rows``), in train
        mode: the objective is this rank's part of the global batch's (``global_rows`` rows) sum divided by
        ``count``, the global batch's element count; the objective keeps its graph, the sum is detached."""

    def validation_sums(self, model: torch.nn.Module, batch, rows: torch.Tensor, bf16: bool
                        ) -> tuple[float, float, int]:
        """(squared-error sum, weighted objective sum, element count) of a validation batch (no autograd)."""

    def write_model(self, model: torch.nn.Module, path: Path, summary: dict) -> None:
        """Write the best model (eval mode, CPU) to ``path`` with what ``Trainer.summary`` reports."""
