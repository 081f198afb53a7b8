"""Resume states of the trainers: format, atomic save, weights-only load, RNG capture, config compatibility.

A resume state is one ``torch.save`` dict of plain tensors and Python values (so ``torch.load(weights_only=True)``
reads it): ``format`` (the trainer's state format name), ``version``, ``train_config``, ``model_config``,
``dataset_hash``, ``n_rows``, ``epoch`` / ``step`` / ``global_step`` (the next epoch, 0-based, and the steps done
within it), ``model``, ``optimizer``, ``best_model``, ``best_val``, ``best_epoch``, ``initial_val``, ``history``,
``running`` (the epoch in progress's sums), ``rng`` (one dict per rank: ``cpu`` and ``cuda`` generator states) and
``world_size``. States are written through a temp file and a rename (``emo_core.atomic_io``), so a kill at any moment
leaves the previous state intact; temp files of such an interrupted write are removed when the next run starts.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..atomic_io import atomic_path
from .distributed import Dist
from .settings import config_dict, config_from_dict

STATE_VERSION = 1


def save_state(path: Path, state: dict) -> None:
    """Write a resume state atomically (the old file stays whole until the new one is complete)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | os.PathLike, state_format: str, what: str) -> dict:
    """A resume state of format ``state_format`` (``what`` names it in errors), loaded with weights_only."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except OSError:
        raise  # missing, a folder, no permission: the OS's message names the file
    except Exception as exc:  # text, another format, a truncated or tampered file (weights_only refuses code)
        raise ValueError(f"{path}: not a resume state of this trainer (an {what} was expected; the file does not "
                         f"load as one: {type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != state_format:
        raise ValueError(f"{path}: not a resume state of this trainer (an {what} was expected)")
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: training state version {state.get('version')}, expected {STATE_VERSION}")
    return state


def check_resume_config(path, state: dict, config, free_fields: tuple[str, ...]) -> None:
    """Refuse to resume with settings that change what is optimised (every stored field outside ``free_fields``)."""
    saved, now = state["train_config"], config_dict(config)
    differ = [f"{name} {saved.get(name)!r} -> {value!r}" for name, value in now.items()
              if name not in free_fields and saved.get(name) != value]
    if differ:
        raise ValueError(f"{path}: the resume state was trained with other settings: {'; '.join(differ)}")


def config_from_state(state: dict, cls):
    """The ``cls`` config a state was written with (for resuming with the same settings)."""
    return config_from_dict(cls, state["train_config"])


def gather_rng(ddp: Dist, device: torch.device) -> list[dict]:
    """Every rank's CPU (and CUDA) generator state, in rank order (collective when distributed)."""
    own = {"cpu": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    if not ddp.active:
        return [own]
    return ddp.all_gather_object({key: (value.cpu() if value is not None else None) for key, value in own.items()})


def restore_rng(rng: list[dict], ddp: Dist, device: torch.device, reseed: int) -> None:
    """Continue this rank's generators from a state; with another world size the dropout masks cannot continue
    exactly, so the CPU generator is seeded with ``reseed`` instead."""
    if len(rng) == ddp.world:
        torch.set_rng_state(rng[ddp.rank]["cpu"])
        if device.type == "cuda" and rng[ddp.rank].get("cuda") is not None:
            torch.cuda.set_rng_state(rng[ddp.rank]["cuda"], device)
    else:
        torch.manual_seed(reseed)


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the module's state dict on the CPU."""
    return {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}


def cpu_tree(obj):
    """A copy of nested dicts / lists / tuples with every tensor moved to the CPU (optimiser states)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {key: cpu_tree(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(cpu_tree(value) for value in obj)
    return obj


def remove_stale_temps(*paths: Path | None) -> None:
    """Temp files of an atomic write interrupted by a kill (``.<name>.*.tmp``) are garbage: remove them."""
    for path in paths:
        if path is not None and path.parent.is_dir():
            for stale in path.parent.glob(f".{path.name}.*.tmp"):
                stale.unlink(missing_ok=True)
