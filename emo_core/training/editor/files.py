"""The files and previews of an EmoEditor training run.

- Encoder: ``.safetensors`` with the published key names (``fc.0`` ... ``fc.6``, plus ``pooled`` for an SDXL-width
  encoder), which ``emo_core.emoeditor.loaders.load_emo_encoder`` and Load EmoEditor read; metadata
  ``emo_nodes.kind = emo_encoder`` and the training record.
- Mode full: the editor file in the published ``model_ip2p.pt`` layout as ``.safetensors`` (``unet.*`` in diffusers
  UNet2DConditionModel names, ``auto_encoder.*`` the VAE; fp16 like the published file), ``emo_nodes.kind =
  emoeditor_ip2p``: what Load EmoEditor's editor slot reads. The backbone supplies the tensors
  (``editor_state_dict``).
- Mode lora: the LoRA adapters (``backbone.lora_state_dict()``, default the ComfyUI ``diffusion_model.`` keys).
Every file is written atomically into the run's planned place (``outputs``: pending when replacing an earlier one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ...atomic_io import atomic_write
from ...emoeditor.loaders import EDITOR_KIND, ENCODER_KIND
from ..lora import lora_state_dict
from ..settings import config_dict

TRAINER_ID = "emo-nodes emo_core.training.editor"
UNCOND = "encoder(0)"  # the unconditional embedding of condition dropout / CFG


def training_metadata(config, summary: dict, extra: dict | None = None) -> dict[str, str]:
    """The training record stored in every file of a run (strings, as safetensors metadata requires)."""
    meta = {"trainer": TRAINER_ID, "train_config": json.dumps(config_dict(config), separators=(",", ":")),
            "mode": config.mode, "condition_dropout": repr(config.condition_dropout), "uncond": UNCOND,
            "published_fixes": "images in [-1,1]; t uniform over [0,1000); partial final batch trains",
            "steps_completed": str(summary["global_step"]),
            "val_mse_initial": repr(summary["initial_val_loss"]), "val_mse_best": repr(summary["best_val_loss"]),
            "dataset_hash": summary["dataset_hash"], "n_train": str(summary["n_train"]),
            "n_val": str(summary["n_val"]), "history": json.dumps(summary["history"], separators=(",", ":"))}
    meta.update({str(k): str(v) for k, v in (extra or {}).items()})
    return meta


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], kind: str | None, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    bad = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise ValueError(f"refusing to write {path}: weight {bad!r} holds NaN or infinity (the training diverged)")
    meta = {**metadata, **({"emo_nodes.kind": kind} if kind else {})}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def save_encoder(encoder: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    save_tensors(path, {k: v.float() for k, v in encoder.state_dict().items()}, ENCODER_KIND, metadata)


class EditorWriter:
    """Writes a completed run's files (called by the loop through ``EditorTask.write_model``)."""

    def __init__(self, config, plan, encoder_path: Path | None, extra: dict | None, features):
        self.config, self.plan, self.encoder_path, self.extra = config, plan, encoder_path, extra
        self.features = features

    def check(self, backbone) -> None:
        """Fail before training when the model file could not be written at the end."""
        if self.config.mode == "full" and not hasattr(backbone, "editor_state_dict"):
            raise ValueError("mode full: this backbone cannot export a full editor file (no editor_state_dict); "
                             "train a LoRA, or give no output file")

    def __call__(self, model, path: Path, summary: dict) -> None:
        meta = training_metadata(self.config, summary, self.extra)
        backbone = model.backbone
        if self.config.mode == "full":
            state = {k: v.to(torch.float16) if v.is_floating_point() else v
                     for k, v in backbone.editor_state_dict().items()}
            save_tensors(path, state, EDITOR_KIND, meta)
        else:
            export = getattr(backbone, "lora_state_dict", None)
            state = export() if export is not None else lora_state_dict(backbone.unet, "diffusion_model.")
            save_tensors(path, state, None, {**meta, "emo_nodes.kind": "lora"})
        if self.encoder_path is not None:
            target = self.plan.write_extra(self.encoder_path) if self.plan is not None else self.encoder_path
            save_encoder(model.encoder, target, meta)


@dataclass
class EditorPreview:
    """The fixed validation pair at a training step, for the caller to render an edit (no gradients)."""

    step: int
    row: int  # its feature row
    pair: object | None  # the EditorPair, when the features know it
    source_latent: torch.Tensor  # (1, 4, h, w) posterior mode, unscaled
    tokens: torch.Tensor  # (1, 77, width) Enc(direction)
    pooled: torch.Tensor | None
    uncond_tokens: torch.Tensor  # Enc(0), the unconditional embedding (for CFG previews)
    uncond_pooled: torch.Tensor | None


def preview_callback(model, features, config, row: int, device: torch.device, lead: bool,
                     on_preview: Callable[[EditorPreview], None]) -> Callable[[int], None]:
    """A function to call after every step with the run's global step: every ``preview_every`` steps, on the lead
    process, it hands validation row ``row``'s conditioning by ``model`` (the ``EditorModel``) to ``on_preview``."""

    def report(step: int) -> None:
        if not config.preview_every or step % config.preview_every or not lead:
            return
        with torch.no_grad():
            direction = features.directions[row:row + 1].to(device)
            tokens, pooled = model.emotion(direction)
            null_tokens, null_pooled = model.emotion(torch.zeros_like(direction))
        pair = features.pairs[row] if features.pairs is not None else None
        was_training = model.training
        model.eval()
        try:
            on_preview(EditorPreview(step, row, pair, features.source[row:row + 1], tokens, pooled, null_tokens,
                                     null_pooled))
        finally:
            model.train(was_training)

    return report
