"""What every trainer's command line does the same way: settings from the options given over the defaults or a
resumed run's, the process group with a log only rank 0 prints, the device and thread checks, and the outputs
planned (an existing file refused) before any data is read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path

import torch

from ..checks import device_problem
from .distributed import Dist, init_distributed_from_env
from .outputs import plan_outputs


def settings_from_args(cls, base, args, options: dict[str, str]):
    """``cls`` holding ``base``'s values (the defaults, or a resumed run's settings) with every option given on the
    command line (``options``: argparse name -> field; list values become tuples)."""
    values = {f.name: getattr(base, f.name) for f in fields(cls)}
    for option, name in options.items():
        value = getattr(args, option)
        if value is not None:
            values[name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def launch(args) -> tuple[Dist, Callable[[str], None]]:
    """The torchrun process group (or a single process), a log that only rank 0 prints, ``--device`` checked after
    the group exists (a bare "cuda" is this rank's GPU; ValueError naming it) and ``--threads`` applied."""
    ddp = init_distributed_from_env()

    def say(message: str) -> None:
        if ddp.lead:
            print(message, flush=True)

    problem = device_problem(args.device)
    if problem:
        raise ValueError(problem)
    if args.threads:
        torch.set_num_threads(args.threads)
    return ddp, say


def state_file(out: Path, args) -> Path | None:
    """The resume state a run writes: ``--state``, else ``<out>.state.pt`` (None when resuming: the state given)."""
    return Path(args.state) if args.state else None if args.resume else out.with_name(out.name + ".state.pt")


def refuse_existing_outputs(out: Path, args, extras: Sequence[Path] = ()) -> None:
    """Refuse existing outputs (or a missing resume state) before hours of reading and encoding; the run plans the
    same again when it starts (lead=False: nothing is removed here)."""
    plan_outputs(out, state_file(out, args), resume=args.resume, overwrite=args.overwrite,
                 how_to_overwrite="--overwrite", lead=False, extras=tuple(extras))
