"""The training engine's loop: epochs (or a number of steps) of shuffled global batches, prefetching, callbacks,
validation, checkpoints. It knows no training method.

A trainer plugs its model, objective and data into the loop through a ``TrainTask`` subclass
(``emo_core.training.task``; the EIT's is ``emo_core.training.eit.task.EITTask``, the editor's
``emo_core.training.editor.task.EditorTask``) and its settings, a ``LoopSettings`` subclass
(``emo_core.training.settings``). The loop owns everything else, the same for every trainer:

- the split (``TrainTask.split``, default ``published_split``) and per-epoch shuffling (``epoch_order``, a pure
  function of seed and epoch, so resumed and data-parallel runs draw the same batches); the optimiser
  (``TrainTask.make_optimizer``, default AdamW with ``lr`` / ``weight_decay``) and its step (``optimizer_step``);
- the next batch is read in a background thread while the current one trains (disk-streamed caches);
- ``batch_loss`` gets a ``StepContext`` (epoch, step, global step), so step-dependent draws need no trainer;
- ``on_step(epoch, step, objective)``, ``on_epoch(record)`` and ``should_stop()`` (polled after every step; every
  rank stops at the same step);
- a run of ``epochs`` epochs, or of ``steps`` optimiser steps when that is set (the epoch in progress then ends
  early, with its validation);
- validation after every epoch (unweighted MSE and weighted objective, eval mode), one history record per epoch;
  with ``keep_best`` (default) the model kept and written is the one with the lowest unweighted validation MSE,
  written whenever it improves and once more at the end; otherwise the latest model, written at the end;
- a resume state (``emo_core.training.checkpointing``) after every epoch (unless ``state_each_epoch`` is False),
  every ``checkpoint_every`` steps, on a stop and at the end, holding ``TrainTask.model_state``;
- data parallelism (``emo_core.training.distributed``): each rank trains on its share of the global batch and the
  loss and gradient equal the single-process ones; only rank 0 writes files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import EmoError
from .checkpointing import (
    STATE_VERSION,
    check_resume_config,
    config_dict,
    cpu_state,
    cpu_tree,
    gather_rng,
    load_state,
    remove_stale_temps,
    restore_rng,
    save_state,
)
from .distributed import Dist, current_dist, default_device
from .outputs import PENDING, OutputPlan, plan_outputs
from .settings import RESUME_FREE_FIELDS, LoopSettings, TrainResult, uses_bf16
from .task import StepContext, TrainTask, optimizer_step, published_split

__all__ = ["LoopSettings", "NonFiniteError", "RunPlace", "StepContext", "TrainResult", "TrainTask", "Trainer",
           "epoch_order", "optimizer_step", "prepare_run", "published_split", "uses_bf16"]


def epoch_order(train_rows: np.ndarray, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled training rows of epoch ``epoch`` (0-based): a pure function of (seed, epoch), so a resumed or
    data-parallel run draws exactly the same batches."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(train_rows), generator=generator)
    return torch.as_tensor(train_rows, dtype=torch.int64)[order]


@dataclass
class RunPlace:
    """Where a run happens: its rank, device, output paths and log function (from ``prepare_run``). ``out_path`` and
    ``state_path`` are where this run writes; ``plan`` says whether they replace the final files at the end."""

    ddp: Dist
    device: torch.device
    out_path: Path | None
    state_path: Path | None
    say: Callable[[str], None]
    plan: OutputPlan | None = None


class NonFiniteError(EmoError, ArithmeticError):
    """The loss (or validation loss) became NaN or infinite: the run stopped and wrote nothing more."""


def prepare_run(config, *, state_format: str, state_name: str, device=None, out_path=None, state_path=None,
                resume=None, overwrite: bool = False, how_to_overwrite: str = "overwrite=True",
                log: Callable[[str], None] | None = None, free_fields: tuple[str, ...] = RESUME_FREE_FIELDS,
                extra_outputs: tuple[Path, ...] = ()) -> tuple[RunPlace, dict | None]:
    """Resolve device and paths (state default ``<out_path>.state.pt``, or the resumed file), decide where the run
    writes (``emo_core.training.outputs``: an existing model or state is never replaced unless ``overwrite``, and
    then only at successful completion), remove temp files of interrupted writes, and load the resume state when
    ``resume`` is given (a path, or True: the interrupted run of ``state_path``), refusing one trained with other
    settings (fields outside ``free_fields``). ``extra_outputs``: more final files the run writes besides the model
    (e.g. a second model file), under the same never-overwrite / pending-until-complete rule (``plan.extras``)."""
    ddp = current_dist()
    device = torch.device(device) if device is not None else default_device(ddp)
    out_path = Path(out_path) if out_path is not None else None
    if state_path is None and resume is not None and resume is not True:
        resume = Path(resume)
        state_path = resume.with_name(resume.name[:-len(PENDING)]) if resume.name.endswith(PENDING) else resume
    if state_path is None and out_path is not None:
        state_path = out_path.with_name(out_path.name + ".state.pt")
    state_path = Path(state_path) if state_path is not None else None
    say = log if (log is not None and ddp.lead) else (lambda _msg: None)
    plan = plan_outputs(out_path, state_path, resume=resume, overwrite=overwrite, how_to_overwrite=how_to_overwrite,
                        lead=ddp.lead, extras=extra_outputs)
    if ddp.lead:
        remove_stale_temps(plan.write_model, plan.write_state, *(written for written, _ in plan.extras))
    if plan.replacing:
        say(f"writing {plan.write_model} and {plan.write_state}; they replace {plan.model} and {plan.state} when "
            "the run completes")
    state = None
    if plan.resume_from is not None:
        state = load_state(plan.resume_from, state_format, state_name)
        check_resume_config(plan.resume_from, state, config, free_fields)
    return RunPlace(ddp, device, plan.write_model, plan.write_state, say, plan), state


class Trainer:
    """One training run of a task: its state, steps, validation and outputs."""

    def __init__(self, task: TrainTask, features, config: LoopSettings, place: RunPlace, dataset_hash: str = ""):
        self.task, self.features, self.config = task, features, config
        self.device, self.ddp, self.say = place.device, place.ddp, place.say
        self.out_path, self.state_path = place.out_path, place.state_path
        self.plan = place.plan
        self.dataset_hash = dataset_hash
        self.bf16 = uses_bf16(config.amp, self.device)
        self.n_rows = len(features)
        self.max_steps = config.steps
        self.keep_best, self.state_each_epoch = task.keep_best, task.state_each_epoch
        self.train_rows, self.val_rows = task.split(self.n_rows, config)
        task.prepare(features, self.device, self.say)
        self.history: list[dict] = []
        self.best_val, self.best_epoch, self.best_state = math.inf, 0, None
        self.initial_val = math.nan
        self.epoch, self.step, self.global_step = 0, 0, 0  # next epoch (0-based) and step within it
        self.running = _fresh_running()

    def run(self, state: dict | None = None, on_step: Callable[[int, int, float], None] | None = None,
            on_epoch: Callable[[dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> TrainResult:
        """Set up (a new run, or ``state`` resumed) and train to ``config.epochs`` or until ``should_stop()``."""
        self._setup(state)
        return self._loop(on_step, on_epoch, should_stop)

    def _setup(self, state: dict | None) -> None:
        config = self.config
        model = self.task.new_model()
        self.task.initialise(model, config.seed)
        self.model = model.to(self.device).train()
        self.optimizer = self.task.make_optimizer(self.model, config)
        torch.manual_seed(config.seed + self.ddp.rank)  # dropout masks
        if state is not None:
            self._restore(state)
        self.trainee = self.ddp.wrap(self.model, self.device)

    def _restore(self, state: dict) -> None:
        if state["n_rows"] != self.n_rows or (self.dataset_hash and state["dataset_hash"] != self.dataset_hash):
            raise ValueError("the resume state was made on other data (row count or dataset hash differ)")
        self.task.load_model_state(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.history = list(state["history"])
        self.best_val, self.best_epoch = state["best_val"], state["best_epoch"]
        self.best_state = state["best_model"]
        self.initial_val = state["initial_val"]
        self.running = dict(state["running"])
        restore_rng(state["rng"], self.ddp, self.device, self.config.seed + self.ddp.rank + 7919 * self.global_step)
        self.say(f"resumed at epoch {self.epoch + 1}, step {self.step} (best val {self.best_val:.6g})")

    def _loop(self, on_step, on_epoch, should_stop) -> TrainResult:
        config = self.config
        if self.global_step == 0 and math.isnan(self.initial_val):
            self.initial_val = self.validate()[0]
            self._check_finite("validation loss of the starting model", self.initial_val,
                               "non-finite features or starting weights?")
            self.say(f"initial val mse {self.initial_val:.6g}")
        while self._more_epochs():
            order = epoch_order(self.train_rows, config.seed, self.epoch)
            batches = list(torch.split(order, config.batch_size))
            started = time.perf_counter() - self.running["seconds"]
            self.model.train()
            with _Prefetcher(self._fetch_local, batches, self.step) as prefetched:
                while self.step < len(batches):
                    objective = self._train_step(batches[self.step], prefetched.next())
                    self.step += 1
                    self.global_step += 1
                    if on_step is not None:
                        on_step(self.epoch + 1, self.step, objective)
                    self.running["seconds"] = time.perf_counter() - started
                    stop = self.ddp.agree(bool(should_stop and should_stop()), self.device)
                    if stop or (config.checkpoint_every and self.global_step % config.checkpoint_every == 0):
                        self._save_state()
                    if stop:
                        self.say(f"stopped at epoch {self.epoch + 1}, step {self.step}; state in {self.state_path}")
                        return self._result(stopped=True)
                    if self.max_steps and self.global_step >= self.max_steps:
                        break  # the run's last step: this epoch ends here, with its validation
            self._finish_epoch(time.perf_counter() - started, on_epoch)
        self._save_state()
        return self._result(stopped=False)

    def _fetch_local(self, rows: torch.Tensor):
        local, scale = self.ddp.local_rows(rows)
        return local, scale, self.features.fetch(local)

    def _train_step(self, rows: torch.Tensor, fetched) -> float:
        local, scale, batch = fetched
        at = StepContext(self.epoch, self.step, self.global_step)
        loss, sse, count = self.task.batch_loss(self.trainee, batch, local, rows.numel(), self.bf16, at)
        self.task.optimizer_step(loss, self.optimizer, scale * self.ddp.world)
        objective, mse = self.ddp.all_sum([loss.item() * scale, sse.item() * scale / count], self.device)
        self._check_finite(f"training loss at epoch {self.epoch + 1}, step {self.step + 1}", objective,
                           f"lr {self.config.lr:g} too high, or non-finite features?")
        self.running["objective"] += objective * rows.numel()
        self.running["mse"] += mse * rows.numel()
        self.running["rows"] += rows.numel()
        return objective

    def _finish_epoch(self, seconds: float, on_epoch) -> None:
        val_mse, val_weighted = self.validate()
        self._check_finite(f"validation loss after epoch {self.epoch + 1}", val_mse,
                           f"lr {self.config.lr:g} too high?")
        rows = max(self.running["rows"], 1)
        record = {"epoch": self.epoch + 1, "train_loss": self.running["objective"] / rows,
                  "train_mse": self.running["mse"] / rows, "val_loss": val_mse, "val_weighted": val_weighted,
                  "steps": self.step, "seconds": seconds}
        self.history.append(record)
        improved = val_mse < self.best_val
        if improved:
            self.best_val, self.best_epoch = val_mse, self.epoch + 1
            if self.keep_best:
                self.best_state = cpu_state(self.model)
        self.epoch += 1
        self.step = 0
        self.running = _fresh_running()
        if improved and self.keep_best:
            self._write_model()
        if self.state_each_epoch:
            self._save_state()
        of = f" ({self.global_step}/{self.max_steps} steps)" if self.max_steps else f"/{self.config.epochs}"
        self.say(f"epoch {record['epoch']}{of}: train {record['train_loss']:.6g} "
                 f"(mse {record['train_mse']:.6g}), val mse {val_mse:.6g} (weighted {val_weighted:.6g})"
                 f"{' *best*' if improved else ''}, {seconds:.1f} s")
        if on_epoch is not None:
            on_epoch(dict(record))

    @torch.no_grad()
    def validate(self) -> tuple[float, float]:
        """(unweighted MSE, weighted objective) over the validation rows, eval mode (no dropout)."""
        self.model.eval()
        size = self.config.eval_batch_size or self.config.batch_size
        sse = weighted = 0.0
        elements = 0
        for rows in torch.split(self.ddp.shard(self.val_rows), size):
            if not rows.numel():  # this rank holds no validation row (fewer rows than ranks)
                continue
            batch_sse, batch_weighted, batch_elements = self.task.validation_sums(
                self.model, self.features.fetch(rows), rows, self.bf16)
            sse += batch_sse
            weighted += batch_weighted
            elements += batch_elements
        sse, weighted, elements = self.ddp.all_sum([sse, weighted, float(elements)], self.device)
        self.model.train()
        return sse / elements, weighted / elements

    def _check_finite(self, what: str, value: float, hint: str) -> None:
        """Stop the run (every rank: ``value`` is a global sum) before a non-finite model is saved anywhere."""
        if math.isfinite(value):
            return
        kept = [str(p) for p in (self.out_path, self.state_path) if p is not None and p.is_file()]
        done = f"the last complete epoch ({self.epoch})" if self.epoch else "no complete epoch"
        raise NonFiniteError(f"training stopped: the {what} is {value} ({hint}); nothing more was written"
                             + (f": {' and '.join(kept)} keep {done}" if kept else "")
                             + (f"; the earlier {self.plan.model} is untouched" if self.plan is not None
                                and self.plan.replacing else ""))

    # ------------------------------------------------------------------------------------------- outputs
    def summary(self) -> dict:
        """What the run has reached, for the model file's metadata (``best_epoch``: see ``TrainResult``)."""
        return {"epochs_completed": self.epoch, "global_step": self.global_step, "best_epoch": self._kept_epoch(),
                "best_step": self._best_step(), "best_val_loss": self.best_val,
                "initial_val_loss": self.initial_val, "dataset_hash": self.dataset_hash, "n_rows": self.n_rows,
                "n_train": len(self.train_rows), "n_val": len(self.val_rows), "history": self.history}

    def _save_state(self) -> None:
        rng = gather_rng(self.ddp, self.device)  # collective: every rank takes part
        if not self.ddp.lead or self.state_path is None:
            return
        state = {"format": self.task.state_format, "version": STATE_VERSION,
                 "train_config": config_dict(self.config), "model_config": self.task.model_config_dict(),
                 "dataset_hash": self.dataset_hash, "n_rows": self.n_rows, "epoch": self.epoch, "step": self.step,
                 "global_step": self.global_step, "model": self._model_state(),
                 "optimizer": cpu_tree(self.optimizer.state_dict()), "best_model": self.best_state,
                 "best_val": self.best_val, "best_epoch": self.best_epoch, "initial_val": self.initial_val,
                 "history": self.history, "running": dict(self.running), "rng": rng, "world_size": self.ddp.world}
        save_state(self.state_path, state)

    def _kept_epoch(self) -> int | None:
        """The epoch of the best validation when its weights are the ones kept; None when the latest are kept."""
        return self.best_epoch if self.keep_best else None

    def _best_step(self) -> int:
        return sum(record["steps"] for record in self.history[:self.best_epoch])

    def _more_epochs(self) -> bool:
        return self.global_step < self.max_steps if self.max_steps else self.epoch < self.config.epochs

    def _model_state(self) -> dict[str, torch.Tensor]:
        return self.task.model_state(self.model)

    def _best_model(self) -> torch.nn.Module:
        if not self.keep_best:
            return self.model.eval()
        model = self.task.new_model()
        model.load_state_dict(self.best_state if self.best_state is not None else cpu_state(self.model))
        return model.eval()

    def _write_model(self) -> None:
        if not self.ddp.lead or self.out_path is None:
            return
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self.task.write_model(self._best_model(), self.out_path, self.summary())

    def _result(self, stopped: bool) -> TrainResult:
        out_path, state_path = self.out_path, self.state_path
        if not stopped and (self.best_state is not None or not self.keep_best):
            self._write_model()  # final metadata (epochs completed, full history)
        if not stopped and self.plan is not None:
            if self.ddp.lead:
                self.plan.commit()
            out_path, state_path = self.plan.model, self.plan.state
        return TrainResult(model=self._best_model(), history=list(self.history), best_val_loss=self.best_val,
                           best_epoch=self._kept_epoch(), best_step=self._best_step(),
                           initial_val_loss=self.initial_val,
                           epochs_completed=self.epoch, global_step=self.global_step,
                           stopped=stopped, out_path=out_path, state_path=state_path)


def _fresh_running() -> dict:
    return {"objective": 0.0, "mse": 0.0, "rows": 0, "seconds": 0.0}


class _Prefetcher:
    """Reads the next batch in a background thread while the current one trains (disk-streamed caches)."""

    def __init__(self, fetch, batches: list[torch.Tensor], start: int):
        self.fetch, self.batches, self.index = fetch, batches, start
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending = self.pool.submit(fetch, batches[start]) if start < len(batches) else None

    def next(self):
        result = self.pending.result()
        self.index += 1
        self.pending = self.pool.submit(self.fetch, self.batches[self.index]) if self.index < len(self.batches) \
            else None
        return result

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.pool.shutdown(wait=True, cancel_futures=True)
