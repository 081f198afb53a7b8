"""Train EmoEditor inside ComfyUI: the node around ``emo_core.training.editor.task.train_editor``.

The pairs are encoded once with the graph's frozen VAE and text encoder (``nodes/training/editor/backbone``), then the
emotion encoder and a copy of the MODEL's UNet (mode full: every weight, as published; mode lora: adapters) train
with the published objective. Files: the encoder in models/emoeditor/encoder/, the full editor in
models/emoeditor/editor/ (SD 1.5, the layout Load EmoEditor reads) or models/diffusion_models/ (SDXL), the LoRA in
models/loras/ (stock LoraLoader on the same base), the resume state in user/emo-nodes/editor_train_states/. The
outputs feed the Edit and IEI nodes directly: the MODEL carries the result as ComfyUI patches on the input MODEL.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os

import comfy.model_management as mm
import comfy.ops
import comfy.utils
import folder_paths
import numpy as np
import torch
from comfy_api.latest import io
from PIL import Image

from ....emo_core.emoeditor.ddim import ddim_edit
from ....emo_core.emoeditor.encoder import EmotionEncoder
from ....emo_core.plots.loss import loss_curve_image
from ....emo_core.training.editor.features import build_editor_features
from ....emo_core.training.editor.precision import PRECISIONS
from ....emo_core.training.editor.task import MODES, EditorConfig, train_editor
from ....emo_core.training.loop import published_split
from ....emo_core.training.lora import DEFAULT_TARGETS
from ....emo_core.training.naming import output_file
from ....emo_core.training.outputs import plan_outputs
from ...shared.models import EMOEDITOR, make_patcher
from ...shared.outputs import name_rules, work_dir
from ...shared.progress import TrainingProgress
from ...shared.sockets import CATEGORY, EMO_ENCODER
from ...shared.validation import check_inputs
from .backbone import (
    SDXL_POOLED,
    ComfyEditorBackbone,
    check_trainable_editor,
    clip_text_encoder,
    trained_model,
    unet_copy,
    vae_image_encoder,
)
from .data import EDIT_PAIRS

log = logging.getLogger("emo-nodes")
HOW_TO_OVERWRITE = "the 'overwrite' input on"
PREVIEW_T, PREVIEW_STEPS = 800, 20  # the published training previews: 20 DDIM steps of a partial denoise


def parse_targets(text: str) -> tuple[str, ...]:
    """'to_q, to_k' -> ('to_q', 'to_k'); an error naming the input when empty."""
    targets = tuple(t.strip() for t in str(text).replace("\n", ",").split(",") if t.strip())
    if not targets:
        raise ValueError("lora_targets: no module names given (e.g. to_q, to_k, to_v, to_out.0)")
    return targets


def output_paths(name: str, mode: str, is_sdxl: bool) -> tuple:
    """(model file, encoder file, resume state) of a run, each inside its ComfyUI folder."""
    if mode == "lora":
        folder = folder_paths.get_folder_paths("loras")[0]
    elif is_sdxl:  # no EmoEditor file layout exists for SDXL: a UNet for Load Diffusion Model
        folder = folder_paths.get_folder_paths("diffusion_models")[0]
    else:
        folder = os.path.join(folder_paths.get_folder_paths(EMOEDITOR)[0], "editor")
    encoders = os.path.join(folder_paths.get_folder_paths(EMOEDITOR)[0], "encoder")
    for path in (folder, encoders):
        os.makedirs(path, exist_ok=True)
    return (output_file(folder, name, ".safetensors"), output_file(encoders, name, ".safetensors"),
            output_file(work_dir("editor_train_states"), name, f".{mode}.state.pt"))


def starting_encoder(encoder, width: int, pooled: int, seed: int) -> EmotionEncoder:
    """A trainable copy of the connected encoder (it must fit the model), or a fresh seeded one of the right width
    (SDXL: with the pooled head)."""
    if encoder is not None:
        network = encoder.model
        config = network.config
        if (config.width, config.pooled_width) != (width, pooled):
            raise ValueError(f"encoder: it produces {config.width}-wide tokens (pooled {config.pooled_width}) but this "
                             f"model needs {width} (pooled {pooled}); disconnect it to train a fresh encoder")
        with torch.inference_mode(False):
            return copy.deepcopy(network).float()
    with torch.inference_mode(False), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return EmotionEncoder(width=width, pooled_width=pooled)


def image_tensor(picture: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(picture.astype(np.float32) / 255.0)[None]


class TrainEmoEditor(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_TrainEmoEditor",
            display_name="Train EmoEditor",
            category=f"{CATEGORY}/training",
            description="Trains EmoEditor's emotion encoder with the InstructPix2Pix UNet on EmoPair-style pairs, with "
                        "the published objective (noise MSE + λ·(1 − cos(text embedding, emotion tokens))) and "
                        "settings as defaults. full: every UNet weight (published, SD 1.5); lora: adapters, saved "
                        "for the stock LoraLoader. Published bugs are fixed (images in [-1, 1], t over all 1000 "
                        "steps, partial last batch). An existing file is never replaced unless 'overwrite' is on "
                        "(and then only when the run completes); Cancel saves a resumable state.",
            is_output_node=True,
            inputs=[
                io.Model.Input("model", tooltip="An InstructPix2Pix MODEL: the released editor (Load EmoEditor) or "
                                                "an SD 1.5 / SDXL ip2p checkpoint. It is not changed."),
                io.Vae.Input("vae", tooltip="The model's VAE (frozen): source latents and target posteriors."),
                io.Clip.Input("clip", tooltip="The model family's text encoder (frozen) for the instructions: SD 1.5 "
                                              "CLIP-L (last hidden state, as published) or SDXL's (77x2048)."),
                EDIT_PAIRS.Input("pairs", tooltip="From EmoEditor Training Pairs."),
                io.String.Input("name", default="my_emoeditor",
                                tooltip="Output file name (no folders). LoRA: models/loras/<name>.safetensors; "
                                        "encoder: models/emoeditor/encoder/<name>.safetensors; full editor: "
                                        "models/emoeditor/editor/ (SD 1.5) or models/diffusion_models/ (SDXL)."),
                io.Combo.Input("mode", options=list(MODES), default="full",
                               tooltip="full: the whole UNet (published). lora: low-rank adapters (far less memory; "
                                       "the file loads with the stock LoraLoader on the same base model)."),
                io.Int.Input("lora_rank", default=16, min=1, max=1024),
                io.Float.Input("lora_alpha", default=16.0, min=0.01, max=4096.0, step=0.5,
                               tooltip="The LoRA update is scaled by alpha / rank."),
                io.String.Input("lora_targets", default=", ".join(DEFAULT_TARGETS),
                                tooltip="Comma-separated module-name endings the adapters wrap (Linear and 1x1 "
                                        "convolutions of the UNet's transformer blocks)."),
                io.Float.Input("weight", default=0.5, min=0.0, max=100.0, step=0.05,
                               tooltip="λ of the alignment term (published 0.5)."),
                io.Float.Input("lr", default=1e-5, min=1e-8, max=1.0, step=1e-6, round=1e-8),
                io.Float.Input("adam_eps", default=1e-3, min=1e-10, max=1.0, step=1e-4, round=1e-10,
                               tooltip="Adam's epsilon (published 1e-3, which keeps pure-fp16 updates finite)."),
                io.Int.Input("batch_size", default=32, min=1, max=4096),
                io.Int.Input("steps", default=10000, min=1, max=10_000_000, tooltip="Optimiser steps."),
                io.Float.Input("condition_dropout", default=0.0, min=0.0, max=0.95, step=0.05,
                               tooltip="Probability that a pair trains on the no-emotion embedding Enc(0). 0 = "
                                       "published (no CFG possible); e.g. 0.1 lets the result use CFG."),
                io.Combo.Input("precision", options=list(PRECISIONS), default="published-fp16",
                               tooltip="published-fp16: pure fp16 UNet as released (fp32 on a CPU); bf16 / fp16: "
                                       "autocast with fp32 master weights; fp32."),
                io.Boolean.Input("gradient_checkpointing", default=False,
                                 tooltip="Recompute activations in the backward pass: much less memory, slower."),
                io.Int.Input("resolution", default=224, min=64, max=2048, step=8,
                             tooltip="Training image size (square squash; published 224)."),
                io.Int.Input("preview_every", default=0, min=0, max=1_000_000,
                             tooltip="Edit the first validation pair every N steps (0: only before and after)."),
                io.Int.Input("checkpoint_every", default=10000, min=0, max=10_000_000,
                             tooltip="Resume state every N steps (published checkpoints every 10,000)."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1,
                             tooltip="Fresh encoder and LoRA initialisation, and every timestep/noise draw."),
                io.Boolean.Input("resume", default=False, tooltip="Continue the interrupted run of this name."),
                EMO_ENCODER.Input("encoder", optional=True,
                                  tooltip="Continue from this encoder (e.g. the released one); unconnected: a fresh "
                                          "encoder of the model's width (SDXL: with its pooled head)."),
                io.Boolean.Input("overwrite", default=False, optional=True,
                                 tooltip="Replace existing files of this name. The earlier files stay until this "
                                         "run completes: a failed or cancelled run leaves them untouched."),
            ],
            outputs=[io.Model.Output(display_name="model"), EMO_ENCODER.Output(display_name="encoder"),
                     io.Image.Output(display_name="loss_curve"), io.Image.Output(display_name="previews"),
                     io.String.Output(display_name="summary")],
        )

    literal_rules = classmethod(lambda cls, values: name_rules(values))  # 'name', once, at queue time

    @classmethod
    def validate_inputs(cls, mode=None, precision=None) -> bool | str:
        """Names the two combos only (the host checks no V3 combo): every number keeps the host's range check, and
        the queue-time hook adds NaN, steps and the file name. The host repeats this error on both combos; no
        other channel reports a combo at queue time. Linked values arrive as None and are checked when the node
        runs."""
        return check_inputs(cls, mode=mode, precision=precision)

    @classmethod
    def execute(cls, model, vae, clip, pairs, name, mode, lora_rank, lora_alpha, lora_targets, weight, lr, adam_eps,
                batch_size, steps, condition_dropout, precision, gradient_checkpointing, resolution, preview_every,
                checkpoint_every, seed, resume, encoder=None, overwrite=False) -> io.NodeOutput:
        is_sdxl, width = check_trainable_editor(model)
        pooled = SDXL_POOLED if is_sdxl else 0
        config = EditorConfig(mode=mode, lora_rank=lora_rank, lora_alpha=lora_alpha,
                              lora_targets=parse_targets(lora_targets), weight=weight, lr=lr, adam_eps=adam_eps,
                              batch_size=batch_size, steps=steps, precision=precision,
                              gradient_checkpointing=gradient_checkpointing, condition_dropout=condition_dropout,
                              checkpoint_every=checkpoint_every, preview_every=preview_every, seed=seed)
        out_path, encoder_path, state_path = output_paths(name, mode, is_sdxl)
        plan_outputs(out_path, state_path, resume=True if resume else None, overwrite=bool(overwrite),
                     how_to_overwrite=HOW_TO_OVERWRITE, lead=False, extras=(encoder_path,))  # refuse before work
        start_encoder = starting_encoder(encoder, width, pooled, seed)

        with torch.inference_mode(False):
            bar = comfy.utils.ProgressBar(len(pairs.pairs))
            features = build_editor_features(pairs, vae_image_encoder(vae), clip_text_encoder(clip, width),
                                             size=resolution,
                                             on_progress=lambda done, total: bar.update_absolute(done, total))
            unet = unet_copy(model)
            mm.unload_all_models()  # the copy trains; the host's loaded models only take memory from it
            mm.soft_empty_cache()
            backbone = ComfyEditorBackbone(model, unet, (resolution, resolution), vae)
            run = Run(backbone, config)
            row = preview_row(features, config)
            if not resume:
                run.edit_row(start_encoder, features, row)  # the untrained edit, for comparison
            with torch.enable_grad(), interrupts_between_steps():
                result = train_editor(backbone, start_encoder, features, config, out_path=out_path,
                                      encoder_path=encoder_path, state_path=state_path,
                                      resume=True if resume else None, overwrite=bool(overwrite),
                                      how_to_overwrite=HOW_TO_OVERWRITE, device=unet_device(unet),
                                      extra_metadata={"base_model": type(model.model).__name__},
                                      on_step=run.on_step, on_preview=run.on_preview,
                                      should_stop=run.should_stop, log=log.info)
            if result.stopped:  # Cancel: the loop saved the resume state
                log.info("emo-nodes editor training: stopped; resume state %s", state_path)
            run.progress.end_if_stopped(result.stopped)
            trained = result.model
            run.edit_row(trained.encoder, features, row)
            weights = backbone.lora_state_dict() if mode == "lora" else \
                {k: v.detach() for k, v in trained.unet.state_dict().items()}
            output = trained_model(model, mode, weights)
            network = copy.deepcopy(trained.encoder).cpu().eval().requires_grad_(False)
        steps_done = result.global_step
        del result, trained, backbone, unet, weights  # the trained UNet copy: free it before the VAE decodes
        run.backbone = None
        previews = run.decode_previews(vae)
        summary = (f"{mode} training of {type(model.model).__name__}: {steps_done} steps, {len(features)} pairs; "
                   f"files: {out_path}, {encoder_path}; resume state {state_path}")
        log.info("emo-nodes: %s", summary)
        return io.NodeOutput(output, make_patcher(network), image_tensor(run.curve()), previews, summary)


@contextlib.contextmanager
def interrupts_between_steps():
    """Cancel while the trainer runs ends the current step, then the loop saves the resume state and stops.

    ComfyUI checks the interrupt in every layer of its UNet (``comfy.ops.run_every_op``) and raises it (clearing the
    flag) in the middle of a forward pass, which would leave the loop before it can save. Inside this block that check
    is a no-op: the flag stays set for ``Run.should_stop``, polled after every step. Restored on leaving, whatever
    happens (one prompt runs at a time, so no other node runs meanwhile)."""
    original = getattr(comfy.ops, "run_every_op", None)
    if original is None:  # another ComfyUI: nothing to defer
        yield
        return
    comfy.ops.run_every_op = lambda: None
    try:
        yield
    finally:
        comfy.ops.run_every_op = original


def unet_device(unet: torch.nn.Module) -> torch.device:
    return unet.input_blocks[0][0].weight.device


def preview_row(features, config: EditorConfig) -> int:
    """The fixed validation pair the trainer previews: the first validation row (``EditorTask.split``)."""
    if features.val_rows is not None:
        return int(features.val_rows[0])
    return int(published_split(len(features), config.val_fraction, config.split_seed)[1][0])


class Run:
    """Progress, the step-wise loss curve and the preview latents of one run. Previews are decoded after training,
    so the VAE never displaces the UNet from the device while it trains. Cancel: see ``TrainingProgress``."""

    def __init__(self, backbone: ComfyEditorBackbone, config: EditorConfig):
        self.backbone, self.config = backbone, config
        self.progress = TrainingProgress(config.steps)
        self.should_stop = self.progress.should_stop
        self.history: list[dict] = []
        self.latents: list[torch.Tensor] = []

    def on_step(self, step: int, loss: float) -> None:
        self.history.append({"step": step, "train_mse": loss})
        preview = None
        if step == 1 or step % max(1, self.config.steps // 50) == 0 or step == self.config.steps:
            preview = ("JPEG", Image.fromarray(self.curve()), 512)
            log.info("emo-nodes editor training: step %d loss %.5g", step, loss)
        self.progress.update(step, preview)

    def curve(self) -> np.ndarray:
        return loss_curve_image(self.history, title="EmoEditor training loss", x_label="step", x_key="step")

    def on_preview(self, preview) -> None:
        """The trainer's preview (``editor_io.EditorPreview``) of the fixed validation pair."""
        self.edit(preview.tokens, preview.pooled, preview.source_latent)

    def edit_row(self, encoder: torch.nn.Module, features, row: int) -> None:
        """A preview with ``encoder`` outside the trainer (before and after the run)."""
        device = unet_device(self.backbone.unet)
        with torch.no_grad():
            out = encoder.to(device).encode(features.directions[row:row + 1].to(device).float())
        self.edit(out.tokens, out.pooled, features.source[row:row + 1])

    def edit(self, tokens: torch.Tensor, pooled: torch.Tensor | None, source: torch.Tensor) -> None:
        """The published training preview (DDIM, no CFG) from the source itself; the latent is kept, unscaled."""
        unet, device = self.backbone.unet, unet_device(self.backbone.unet)
        scale = self.backbone.latent_scale
        source = source.to(device)
        was_training = unet.training
        unet.eval()
        try:
            latent = ddim_edit(self.backbone, tokens.to(device), None if pooled is None else pooled.to(device),
                               source, source * scale, T=PREVIEW_T, steps=PREVIEW_STEPS, seed=self.config.seed)
        finally:
            unet.train(was_training)
        self.latents.append((latent / scale).float().cpu())

    def decode_previews(self, vae) -> torch.Tensor:
        """(N, H, W, 3): the first validation pair edited before training, at each preview, and after."""
        images = []
        for latent in self.latents:
            image = vae.decode(latent).float()
            images.append(image.reshape(-1, *image.shape[-3:])[:1])
        return torch.cat(images)
