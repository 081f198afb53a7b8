"""Data parallelism for the trainers: the torchrun process group, rank sharding of a global batch, sums over ranks.

Launched by torchrun (WORLD_SIZE > 1) a trainer runs under torch.distributed (gloo on CPU, nccl on CUDA). Every rank
draws the same global batch and takes every W-th row of it (what DistributedSampler does); each rank's loss is its
part of the global sum divided by the *global* element count, and DDP's gradient average is undone by a factor W,
so the gradient is that of the single-process global batch for any batch split, even uneven. Validation sums are
all-reduced the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    """This process's place in the data-parallel group (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def lead(self) -> bool:
        """Rank 0: the only rank that writes files and logs."""
        return self.rank == 0

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sums over ranks (float64); the values themselves when not distributed."""
        if not self.active:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def agree(self, flag: bool, device: torch.device) -> bool:
        """True when any rank's flag is, so every rank stops at the same step."""
        return self.all_sum([float(flag)], device)[0] > 0 if self.active else flag

    def local_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's share of a global batch (every W-th row), and 1, or 0 for a placeholder row when the batch
        has fewer rows than ranks (DDP needs every rank to run backward)."""
        local = rows[self.rank::self.world]
        return (local, 1.0) if local.numel() else (rows[:1], 0.0)

    def shard(self, rows) -> torch.Tensor:
        """This rank's rows of a row list (every W-th one; possibly none), e.g. for validation."""
        return torch.as_tensor(rows, dtype=torch.int64)[self.rank::self.world]

    def all_gather_object(self, obj) -> list:
        """Every rank's ``obj``, in rank order (collective)."""
        if not self.active:
            return [obj]
        everyone: list = [None] * self.world
        dist.all_gather_object(everyone, obj)
        return everyone

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module to train: ``model`` itself, or under DistributedDataParallel when distributed."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def init_distributed_from_env() -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl with CUDA); a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size())


def current_dist() -> Dist:
    """The process group this process already belongs to (rank 0 of 1 when none)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return Dist(dist.get_rank(), dist.get_world_size())
    return Dist()


def default_device(ddp: Dist) -> torch.device:
    """This rank's CUDA device (LOCAL_RANK) when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if ddp.active else 0)
    return torch.device("cpu")
