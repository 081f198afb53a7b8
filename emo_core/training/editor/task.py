"""Training EmoEditor's dual-branch editor (emotion encoder + InstructPix2Pix UNet): the editor task of the loop.

Published recipe ([EE train.py], ``EditorConfig`` defaults): per step e = Encoder(direction); target latent
= VAE posterior sample of the target × the VAE scale; ε ~ N(0, I), t uniform over the 1000 training steps; noisy =
√ᾱ_t·target + √(1−ᾱ_t)·ε; ε̂ = UNet(cat(noisy, source latent), t, e); loss = MSE(ε̂, ε) + λ·mean(1 − cos(E_text, e))
(``editor_objective``); Adam(lr 1e-5, betas (0.9, 0.999), eps 1e-3) over the encoder and the whole UNet, batch 32,
pure fp16 UNet, checkpoints every 10,000 steps.

Fixed published bugs (always on): images enter the VAE in [−1, 1] ([EE train.py] fed [0, 1]); t is drawn from [0, 1000)
on every step ([EE train.py] drew from [0, T) after its first preview, T its inference strength); a final partial batch
trains ([EE train.py] crashed on ``view(batch_size, -1)``). Condition dropout is available (0 = published): a
dropped row is conditioned on the **unconditional embedding Enc(0)**, the encoder's tokens for the zero direction
("no emotion change"). It is trained jointly and needs nothing extra at inference, so a model trained with dropout can
use classifier-free guidance: ε = ε(Enc(0)) + s·(ε(Enc(d)) − ε(Enc(0))), the source latent concatenated in both passes
(scale 1 is the published single pass).

Modes: ``full`` trains the encoder and every UNet weight (published; writes a full editor file Load EmoEditor
reads); ``lora`` trains the encoder and LoRA adapters (``emo_core.training.lora``) on the frozen UNet and writes a
LoRA file for ComfyUI's LoraLoader. Both also write the encoder file (``encoder_path``).

The loop (``emo_core.training.loop``) is the generic one: resume states every ``checkpoint_every`` steps, on a stop
and at the end, data parallelism with the single-process gradient, callbacks. The model written is the latest one
(written once, when the run completes); a validation MSE at fixed per-row draws is logged after every epoch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from .. import checkpointing
from ..loop import Trainer, prepare_run
from ..lora import DEFAULT_TARGETS, attach_lora, lora_parameters
from ..settings import LoopSettings, TrainResult, config_dict
from ..task import StepContext, TrainTask, optimizer_step, published_split
from .features import EditorFeatures, row_draws
from .objective import PUBLISHED_WEIGHT, editor_terms
from .precision import PRECISIONS, autocast, effective_precision, grad_scaler, unet_dtype

STATE_FORMAT = "emo-nodes.editor-train-state"
STATE_NAME = "emo-nodes EmoEditor training state"
MODES = ("full", "lora")
ADAM_BETAS = (0.9, 0.999)
RESUME_FREE_FIELDS = ("steps", "checkpoint_every", "preview_every", "eval_batch_size", "gradient_checkpointing")


@dataclass
class EditorConfig(LoopSettings):
    """Every knob of an editor run; defaults are [EE train.py]'s. The loop fields are ``LoopSettings``'s;
    the editor trains a number of steps with its own optimiser and precision, so it uses no ``epochs``,
    ``weight_decay`` or ``amp``."""

    settings_name = "editor training"
    unused_fields = ("epochs", "weight_decay", "amp")

    mode: str = "full"  # full (published) | lora
    lora_rank: int = 16
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = DEFAULT_TARGETS
    weight: float = PUBLISHED_WEIGHT  # λ of the alignment term
    lr: float = 1e-5
    adam_eps: float = 1e-3
    batch_size: int = 32  # global batch (summed over data-parallel ranks)
    steps: int = 1000  # optimiser steps of the run
    precision: str = "published-fp16"  # published-fp16 | bf16 | fp16 | fp32 (editor_precision)
    gradient_checkpointing: bool = False
    condition_dropout: float = 0.0  # probability of Enc(0) conditioning per row (0 = published)
    checkpoint_every: int = 10_000  # resume states every N steps (published checkpoint interval)
    preview_every: int = 0  # on_preview every N steps (0: never)
    seed: int = 0  # LoRA initialisation and every per-row draw
    val_fraction: float = 0.01  # validation rows when no separate validation set is given

    def __post_init__(self):
        self.lora_targets = tuple(self.lora_targets)
        super().__post_init__()

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.mode not in MODES:
            problems.append(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name, low in (("lora_rank", 1), ("steps", 1), ("preview_every", 0)):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
                problems.append(f"{name} must be a whole number >= {low}, got {value!r}")
        for name, low, high in (("adam_eps", 0.0, math.inf), ("lora_alpha", 0.0, math.inf)):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or not low < value <= high:
                problems.append(f"{name} must be a finite number in ({low:g}, {high:g}], got {value!r}")
        if not isinstance(self.weight, int | float) or not math.isfinite(self.weight) or self.weight < 0:
            problems.append(f"weight (λ) must be a finite number >= 0, got {self.weight!r}")
        if not isinstance(self.condition_dropout, int | float) or not 0.0 <= self.condition_dropout < 1.0:
            problems.append(f"condition_dropout must be in [0, 1), got {self.condition_dropout!r}")
        if self.mode == "lora" and not self.lora_targets:
            problems.append("lora_targets is empty (e.g. to_q, to_k, to_v, to_out.0)")
        return problems


class EditorBackbone(Protocol):
    """The denoiser being trained, wrapped by the caller (diffusers in the CLI, a ComfyUI MODEL in the node)."""

    unet: nn.Module  # holds the trained parameters (mode full) or the LoRA-wrapped modules (mode lora)
    token_width: int  # 768 (SD 1.5) or 2048 (SDXL)
    pooled_width: int  # 0 (SD 1.5) or 1280 (SDXL)
    latent_scale: float  # 0.18215 (SD 1.5), 0.13025 (SDXL): target latent = posterior sample × this

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor,
                      pooled: torch.Tensor | None) -> torch.Tensor:
        """x (B, 8, h, w) = cat(noisy target latent, source latent); t (B,) int64 in [0, 1000) -> ε̂ (B, 4, h, w)."""

    def alphas_cumprod(self) -> torch.Tensor:
        """(1000,) float64 training schedule."""

    # optional: enable_gradient_checkpointing(), editor_state_dict() (mode full file), lora_state_dict() (lora file)


class EditorModel(nn.Module):
    """What the loop trains: the encoder and the backbone's UNet (the backbone itself is held, not registered)."""

    def __init__(self, backbone: EditorBackbone, encoder: nn.Module):
        super().__init__()
        self.encoder, self.unet = encoder, backbone.unet
        self._backbone = (backbone,)

    @property
    def backbone(self) -> EditorBackbone:
        return self._backbone[0]

    def emotion(self, directions: torch.Tensor):
        """Encoder tokens and pooled vector (fp32)."""
        out = self.encoder.encode(directions.float())
        return out.tokens, out.pooled

    def forward(self, noisy: torch.Tensor, source: torch.Tensor, t: torch.Tensor, directions: torch.Tensor,
                drop: torch.Tensor | None = None, precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, the encoder tokens of ``directions``). Rows with ``drop`` are conditioned on Enc(0)."""
        tokens, pooled = self.emotion(directions)
        cond_tokens, cond_pooled = tokens, pooled
        if drop is not None and bool(drop.any()):
            null_tokens, null_pooled = self.emotion(torch.zeros_like(directions[:1]))
            cond_tokens = torch.where(drop[:, None, None], null_tokens, tokens)
            if pooled is not None:
                cond_pooled = torch.where(drop[:, None], null_pooled, pooled)
        dtype = next(self.unet.parameters()).dtype if precision == "published-fp16" else torch.float32
        x = torch.cat([noisy, source], dim=1).to(dtype)
        with autocast(precision, noisy.device):
            eps = self.backbone.predict_noise(x, t, cond_tokens.to(dtype),
                                              cond_pooled.to(dtype) if cond_pooled is not None else None)
        return eps, tokens


class EditorTask(TrainTask):
    """The editor plugged into the generic loop (see the module docstring): its own split (a separate validation
    set), Adam over the trained weights, a loss-scaled step, states of the trained weights only, the latest model."""

    state_format = STATE_FORMAT
    state_name = STATE_NAME
    keep_best = False
    state_each_epoch = False

    def __init__(self, model: EditorModel, features: EditorFeatures, config: EditorConfig, precision: str,
                 write: Callable | None = None):
        self.model, self.features, self.config, self.precision, self.write = model, features, config, precision, write
        self.device = torch.device("cpu")
        self.scaler = None

    def model_config_dict(self) -> dict:
        backbone = self.model.backbone
        return {"token_width": backbone.token_width, "pooled_width": backbone.pooled_width,
                "latent_scale": backbone.latent_scale, "mode": self.config.mode,
                "unet_parameters": sum(p.numel() for p in self.model.unet.parameters())}

    def prepare(self, features: EditorFeatures, device: torch.device, say) -> None:
        self.features, self.device = features, device
        self.alphas = self.model.backbone.alphas_cumprod().to(torch.float64)
        self.scaler = grad_scaler(self.precision, device)

    def new_model(self) -> EditorModel:
        return self.model  # the given networks, trained in place

    def initialise(self, model: EditorModel, seed: int) -> None:
        pass  # the given weights are the starting point

    def split(self, n_rows: int, settings: LoopSettings) -> tuple[np.ndarray, np.ndarray]:
        val = self.features.val_rows
        if val is None:
            return published_split(n_rows, settings.val_fraction, settings.split_seed)
        return np.setdiff1d(np.arange(n_rows), val), np.asarray(val)

    def trainable(self, model: nn.Module) -> list[nn.Parameter]:
        unet = lora_parameters(model.unet) if self.config.mode == "lora" else list(model.unet.parameters())
        return list(model.encoder.parameters()) + unet

    def make_optimizer(self, model: EditorModel, settings: EditorConfig) -> torch.optim.Optimizer:
        # fused: one kernel per step over all tensors (the encoder alone has 46M weights); same update rule
        return torch.optim.Adam(self.trainable(model), lr=settings.lr, betas=ADAM_BETAS, eps=settings.adam_eps,
                                fused=self.device.type in ("cpu", "cuda"))

    def optimizer_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, loss_scale: float) -> None:
        if self.scaler is None:
            return optimizer_step(loss, optimizer, loss_scale)
        self.scaler.scale(loss * loss_scale).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)

    def _state_keys(self, model: EditorModel) -> list[str]:
        names = {id(p) for p in self.trainable(model)}
        return [name for name, p in model.named_parameters() if id(p) in names]

    def model_state(self, model: EditorModel) -> dict[str, torch.Tensor]:
        params = dict(model.named_parameters())
        return {k: params[k].detach().to("cpu", copy=True) for k in self._state_keys(model)}

    def load_model_state(self, model: EditorModel, state: dict[str, torch.Tensor]) -> None:
        keys = self._state_keys(model)
        if set(keys) != set(state):
            raise ValueError(f"the resume state holds other trained weights than this run trains ({len(state)} vs "
                             f"{len(keys)} tensors): another mode, LoRA rank or targets, or another base model")
        params = dict(model.named_parameters())
        with torch.no_grad():
            for key in keys:
                params[key].copy_(state[key])

    def _inputs(self, batch, rows: torch.Tensor, step: int):
        backbone, dev = self.model.backbone, self.device
        draws = row_draws(self.config.seed, step, rows.tolist(), self.features.latent_shape)
        mean, std = batch.target_mean.to(dev), batch.target_std.to(dev)
        target = (mean + std * draws.posterior.to(dev)) * backbone.latent_scale
        noise, t = draws.noise.to(dev), draws.t.to(dev)
        alpha = self.alphas.to(dev)[t].float().view(-1, 1, 1, 1)
        noisy = alpha.sqrt() * target + (1.0 - alpha).sqrt() * noise
        drop = (draws.coin < self.config.condition_dropout).to(dev) if step >= 0 else None
        return noisy, batch.source.to(dev), t, batch.directions.to(dev), drop, noise, batch.text.to(dev)

    def _terms(self, model, batch, rows: torch.Tensor, step: int):
        noisy, source, t, directions, drop, noise, text = self._inputs(batch, rows, step)
        eps, tokens = model(noisy, source, t, directions, drop, self.precision)
        squared, misalignment = editor_terms(eps, noise, text, tokens)
        return squared, misalignment, noise[0].numel()

    def batch_loss(self, model, batch, rows: torch.Tensor, global_rows: int, bf16: bool, at: StepContext):
        squared, misalignment, per_row = self._terms(model, batch, rows, at.global_step)  # draws of this step
        count = global_rows * per_row
        objective = (squared.sum() + self.config.weight * per_row * misalignment.sum()) / count
        return objective, squared.sum().detach(), count

    def validation_sums(self, model, batch, rows: torch.Tensor, bf16: bool) -> tuple[float, float, int]:
        squared, misalignment, per_row = self._terms(model, batch, rows, -1)  # fixed draws, no dropout
        weighted = squared.sum() + self.config.weight * per_row * misalignment.sum()
        return squared.sum().item(), weighted.item(), per_row * len(rows)

    def write_model(self, model: EditorModel, path: Path, summary: dict) -> None:
        if self.write is not None:
            self.write(model, path, summary)


def _attach_lora(backbone: EditorBackbone, config: EditorConfig, say) -> None:
    if lora_parameters(backbone.unet):
        return  # already attached (a resumed run in the same process)
    wrapped = attach_lora(backbone.unet, config.lora_targets, config.lora_rank, config.lora_alpha,
                          torch.Generator().manual_seed(config.seed))
    if not wrapped:
        raise ValueError(f"LoRA: no module of the UNet matches the targets {list(config.lora_targets)}")
    say(f"LoRA rank {config.lora_rank} alpha {config.lora_alpha:g} on {len(wrapped)} modules")


def prepare_model(backbone: EditorBackbone, encoder: nn.Module, config: EditorConfig, precision: str,
                  say: Callable[[str], None] = lambda _m: None) -> EditorModel:
    """The trainable model of a run: LoRA attached (mode lora), the UNet in its training dtype, the encoder fp32
    and trainable, gradient checkpointing switched on if asked."""
    if config.mode == "lora":
        _attach_lora(backbone, config, say)
    backbone.unet.to(unet_dtype(precision))
    encoder.float().requires_grad_(True)
    if config.gradient_checkpointing:
        enable = getattr(backbone, "enable_gradient_checkpointing", None)
        if enable is None:
            raise ValueError("gradient checkpointing: this backbone offers no enable_gradient_checkpointing()")
        enable()
    return EditorModel(backbone, encoder)


def train_editor(backbone: EditorBackbone, encoder: nn.Module, features: EditorFeatures, config: EditorConfig, *,
                 out_path: str | os.PathLike | None = None, encoder_path: str | os.PathLike | None = None,
                 state_path: str | os.PathLike | None = None, resume: str | os.PathLike | bool | None = None,
                 overwrite: bool = False, how_to_overwrite: str = "overwrite=True", extra_metadata: dict | None = None,
                 device: str | torch.device | None = None, on_step: Callable[[int, float], None] | None = None,
                 on_preview: Callable | None = None, should_stop: Callable[[], bool] | None = None,
                 log: Callable[[str], None] | None = None) -> TrainResult:
    """Train (or resume) the editor on ``features`` (``build_editor_features``); the one entry of the CLI and node.

    out_path: mode full: the editor file (``unet.*`` + ``auto_encoder.*``, needs ``backbone.editor_state_dict``);
        mode lora: the LoRA file. encoder_path: the trained encoder. Both written once, when the run completes;
        existing files are refused unless ``overwrite`` (then replaced only at completion, ``outputs``).
    state_path: the resume state (default ``<out_path>.state.pt``). resume: a state file, or True.
    on_step(step, loss): after every optimiser step (1-based global step, the global batch's objective).
    on_preview(preview): every ``config.preview_every`` steps on the lead process (``editor_io.EditorPreview``: the
        fixed validation pair's tokens, no gradients).
    should_stop(): polled after every step; True writes the resume state and returns with ``stopped=True``.
    The returned ``TrainResult.model`` is the ``EditorModel`` (encoder and UNet, trained in place)."""
    from .files import EditorWriter, preview_callback

    extras = (Path(encoder_path),) if encoder_path is not None else ()
    place, state = prepare_run(config, state_format=STATE_FORMAT, state_name=STATE_NAME, device=device,
                               out_path=out_path, state_path=state_path, resume=resume, overwrite=overwrite,
                               how_to_overwrite=how_to_overwrite, log=log, free_fields=RESUME_FREE_FIELDS,
                               extra_outputs=extras)
    say = place.say
    if features.token_shape[-1] != backbone.token_width:
        raise ValueError(f"the text embeddings are {features.token_shape[-1]} wide, the UNet's cross-attention "
                         f"{backbone.token_width}: encode the instructions with this model's text encoder")
    precision = effective_precision(config.precision, place.device, say)
    model = prepare_model(backbone, encoder, config, precision, say)
    writer = EditorWriter(config, place.plan, extras[0] if extras else None, extra_metadata, features)
    if out_path is not None:
        writer.check(backbone)
    task = EditorTask(model, features, config, precision, writer)
    if state is not None and state["model_config"] != task.model_config_dict():
        raise ValueError(f"{place.plan.resume_from}: the resume state was made with another model "
                         f"({state['model_config']} vs {task.model_config_dict()})")
    trainer = Trainer(task, features, config, place, features.fingerprint)
    report = preview_callback(model, features, config, int(trainer.val_rows[0]), place.device, place.ddp.lead,
                              on_preview) if on_preview is not None else None

    def step_done(_epoch: int, _step: int, loss: float) -> None:
        if on_step is not None:
            on_step(trainer.global_step, loss)
        if report is not None:
            report(trainer.global_step)

    say(f"editor training: mode {config.mode}, precision {precision}, {len(trainer.train_rows)} train / "
        f"{len(trainer.val_rows)} validation pairs, batch {config.batch_size}, {config.steps} steps")
    return trainer.run(state, step_done, None, should_stop)


def load_state(path: str | os.PathLike) -> dict:
    """A resume state written by ``train_editor`` (loaded with weights_only)."""
    return checkpointing.load_state(path, STATE_FORMAT, STATE_NAME)


def editor_config_from_state(path: str | os.PathLike) -> EditorConfig:
    return checkpointing.config_from_state(load_state(path), EditorConfig)


__all__ = ["EditorBackbone", "EditorConfig", "EditorModel", "EditorTask", "config_dict", "load_state",
           "train_editor"]
