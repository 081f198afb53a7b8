"""What a trainer plugs into the generic loop (``emo_core.training.loop``): a ``TrainTask`` subclass.

The abstract methods are what every trainer must supply (model, objective, model file); the other members are hooks
whose defaults are the EIT's behaviour, overridden by a trainer that needs otherwise (the editor: its own split,
optimiser, loss-scaled step, trained-weights-only states, the latest model kept). The loop calls every member
directly, so a hook it relies on always exists.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpointing import cpu_state
from .settings import LoopSettings


def published_split(n_rows: int, val_fraction: float = 0.01, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices exactly as sklearn's ``train_test_split(test_size=val_fraction,
    random_state=seed)``: ``RandomState(seed).permutation(n)``, the first ceil(fraction·n) rows are validation."""
    n_val = math.ceil(val_fraction * n_rows)
    if n_rows < 2 or not 0 < n_val < n_rows:
        raise ValueError(f"cannot split {n_rows} rows with validation fraction {val_fraction}")
    permutation = np.random.RandomState(seed).permutation(n_rows)
    return permutation[n_val:], permutation[:n_val]


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, loss_scale: float = 1.0) -> None:
    """Backward of ``loss·loss_scale``, optimiser step, gradients cleared. ``loss_scale`` lets a data-parallel rank
    undo DDP's gradient average (world size) or zero a placeholder row."""
    (loss * loss_scale).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


@dataclass(frozen=True)
class StepContext:
    """Where the run is when the loop asks for a training loss: the step about to be taken, all counts 0-based (a
    task whose draws depend on the step reads them here instead of holding the trainer)."""

    epoch: int  # the epoch in progress (0-based)
    step: int  # steps already taken in this epoch
    global_step: int  # steps already taken in the run


class TrainTask(ABC):
    """What a trainer supplies: its model, objective, data handling and model file. ``features`` has ``len()`` and
    ``fetch(rows)`` (a batch of the given rows); the task decides what a batch holds."""

    state_format: str  # the ``format`` of its resume states
    state_name: str  # how errors name such a state, e.g. "emo-nodes EIT training state"
    keep_best: bool = True  # False: keep and write the latest model (at the end), no best-weights copy
    state_each_epoch: bool = True  # False: resume states only every checkpoint_every steps, on a stop and at the end

    @abstractmethod
    def model_config_dict(self) -> dict:
        """The model sizes, stored in resume states (``model_config``)."""

    @abstractmethod
    def prepare(self, features, device: torch.device, say: Callable[[str], None]) -> None:
        """Once before training: per-row data the objective needs (e.g. loss weights over all rows)."""

    @abstractmethod
    def new_model(self) -> torch.nn.Module:
        """A freshly constructed model (the loop loads weights into it)."""

    @abstractmethod
    def initialise(self, model: torch.nn.Module, seed: int) -> None:
        """Set the starting weights of a new run (seeded initialisation, or given weights to fine-tune)."""

    @abstractmethod
    def batch_loss(self, model: torch.nn.Module, batch, rows: torch.Tensor, global_rows: int, bf16: bool,
                   at: StepContext) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(objective, squared-error sum, count) of this rank's ``batch`` (of dataset rows ``rows``) at step ``at``,
        in train mode: the objective is this rank's part of the global batch's (``global_rows`` rows) sum divided by
        ``count``, the global batch's element count; the objective keeps its graph, the sum is detached."""

    @abstractmethod
    def validation_sums(self, model: torch.nn.Module, batch, rows: torch.Tensor, bf16: bool
                        ) -> tuple[float, float, int]:
        """(squared-error sum, weighted objective sum, element count) of a validation batch (no autograd)."""

    @abstractmethod
    def write_model(self, model: torch.nn.Module, path: Path, summary: dict) -> None:
        """Write the kept model to ``path`` with what ``Trainer.summary`` reports."""

    # ------------------------------------------------------------------------------ hooks with default behaviour
    def split(self, n_rows: int, settings: LoopSettings) -> tuple[np.ndarray, np.ndarray]:
        """(train, validation) rows: the published split of ``val_fraction`` / ``split_seed``."""
        return published_split(n_rows, settings.val_fraction, settings.split_seed)

    def make_optimizer(self, model: torch.nn.Module, settings: LoopSettings) -> torch.optim.Optimizer:
        """AdamW(lr, weight_decay) over every parameter."""
        return torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)

    def optimizer_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, loss_scale: float) -> None:
        """Backward and step (``optimizer_step``); a task may scale the loss (e.g. a gradient scaler)."""
        optimizer_step(loss, optimizer, loss_scale)

    def model_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The CPU tensors a resume state holds of the model: all of its state dict."""
        return cpu_state(model)

    def load_model_state(self, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Load what ``model_state`` returned."""
        model.load_state_dict(state)
