"""``python -m emo_core train-editor``: train EmoEditor's editor outside ComfyUI on diffusers models (also under
``torchrun --nproc_per_node=N -m emo_core train-editor ...``: data parallel, equal to one process with the same
global ``--batch``).

    python -m emo_core train-editor --pairs data_EmoPair.json --root EmoPair/ --pretrained instruct-pix2pix/ \\
        [--editor model_ip2p.pt] [--encoder model_emoenc.pt] --out editor.safetensors --encoder-out enc.safetensors

``--pretrained``: a diffusers InstructPix2Pix folder (UNet, VAE, CLIP text encoder and tokenizer; nothing is
downloaded). ``--editor``: the published editor weights (``unet.*`` + ``auto_encoder.*``) to start from instead of
the folder's UNet/VAE. ``--encoder``: an encoder to continue from (default: a fresh one, PyTorch's default
initialisation seeded by ``--seed``).
Mode full writes ``--out`` as a full editor file for Load EmoEditor; mode lora writes ``--out`` as a LoRA.
SIGINT/SIGTERM stop after the current step with a resume state (``<out>.state.pt``); ``--resume STATE`` continues.
Existing outputs are refused unless ``--overwrite`` (then replaced only when the run completes).
"""

from __future__ import annotations

import argparse
import math
import sys

import torch

from ...emoeditor.encoder import EmotionEncoder
from ...emoeditor.loaders import load_emo_encoder
from ...errors import CheckpointError
from ..command import launch, refuse_existing_outputs, settings_from_args
from ..errors import DatasetError
from ..loop import NonFiniteError
from ..outputs import OutputExistsError
from ..stop_flag import StopFlag
from .precision import PRECISIONS
from .task import EditorConfig, editor_config_from_state, train_editor

_OPTIONS = {"mode": "mode", "lora_rank": "lora_rank", "lora_alpha": "lora_alpha", "lora_targets": "lora_targets",
            "weight": "weight", "lr": "lr", "adam_eps": "adam_eps", "batch": "batch_size", "steps": "steps",
            "precision": "precision", "gradient_checkpointing": "gradient_checkpointing",
            "condition_dropout": "condition_dropout", "checkpoint_every": "checkpoint_every", "seed": "seed",
            "val_fraction": "val_fraction", "split_seed": "split_seed", "eval_batch": "eval_batch_size"}


def build_parser() -> argparse.ArgumentParser:
    d = EditorConfig()
    p = argparse.ArgumentParser(prog="python -m emo_core train-editor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", required=True, help="EmoPair JSON (img_src_path, img_tgt_path, class_source, "
                   "class_target, prompt, source_softmax)")
    p.add_argument("--root", required=True, help="dataset root the JSON's image paths are relative to")
    p.add_argument("--val-pairs", help="a separate validation JSON (default: --val-fraction of --pairs)")
    p.add_argument("--on-error", choices=("stop", "skip"), default="stop", help="bad records (default stop)")
    p.add_argument("--pretrained", "--unet", dest="pretrained", required=True,
                   help="diffusers InstructPix2Pix folder (unet/ vae/ text_encoder/ tokenizer/ scheduler/)")
    p.add_argument("--editor", help="published-layout editor weights (unet.* + auto_encoder.*) to start from")
    p.add_argument("--encoder", help="emotion encoder weights to continue from")
    p.add_argument("--out", required=True, help="mode full: editor .safetensors; mode lora: LoRA .safetensors")
    p.add_argument("--encoder-out", help="trained encoder .safetensors (default <out stem>.encoder.safetensors)")
    p.add_argument("--state", help="resume-state file (default <out>.state.pt)")
    p.add_argument("--resume", metavar="STATE", help="continue the run saved in STATE")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs when the run completes")
    p.add_argument("--size", type=int, default=224, help=f"training resolution, squashed: a multiple of 8 from "
                   f"{SIZE_RANGE[0]} to {SIZE_RANGE[1]} (default 224)")
    g = p.add_argument_group("training (defaults: [EE train.py])")
    g.add_argument("--mode", choices=("full", "lora"), help=f"default {d.mode}")
    g.add_argument("--lora-rank", type=int, help=f"default {d.lora_rank}")
    g.add_argument("--lora-alpha", type=float, help=f"default {d.lora_alpha}")
    g.add_argument("--lora-targets", nargs="+", help=f"default {' '.join(d.lora_targets)}")
    g.add_argument("--weight", type=float, help=f"λ of the alignment term (default {d.weight})")
    g.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr})")
    g.add_argument("--adam-eps", type=float, help=f"Adam eps (default {d.adam_eps})")
    g.add_argument("--batch", type=int, help=f"global batch (default {d.batch_size})")
    g.add_argument("--steps", type=int, help=f"optimiser steps (default {d.steps})")
    g.add_argument("--precision", choices=PRECISIONS, help=f"default {d.precision}")
    g.add_argument("--gradient-checkpointing", action="store_true", default=None)
    g.add_argument("--condition-dropout", type=float, help="probability of Enc(0) conditioning (default 0)")
    g.add_argument("--checkpoint-every", type=int, help=f"resume state every N steps (default {d.checkpoint_every})")
    g.add_argument("--seed", type=int)
    g.add_argument("--val-fraction", type=float)
    g.add_argument("--split-seed", type=int)
    g.add_argument("--eval-batch", type=int)
    r = p.add_argument_group("runtime")
    r.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    r.add_argument("--threads", type=int, help="torch CPU threads")
    r.add_argument("--log-every", type=int, default=10)
    return p


SIZE_RANGE = (64, 2048)


def check_size(size: int) -> str | None:
    """Why ``--size`` cannot be used (None: it can): the VAE halves the image three times."""
    low, high = SIZE_RANGE
    if not low <= size <= high or size % 8:
        return f"--size {size}: the training resolution must be a multiple of 8 from {low} to {high} (e.g. 224)"
    return None


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    from .data import read_editor_pairs
    from .diffusers_backbone import DiffusersEditorBackbone, clip_text_encoder, load_ip2p_folder, vae_encoder
    from .features import build_editor_features

    args = build_parser().parse_args(argv)
    problem = check_size(args.size)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out = Path(args.out)
    encoder_out = Path(args.encoder_out) if args.encoder_out else out.with_name(f"{out.stem}.encoder.safetensors")
    try:
        ddp, say = launch(args)
        refuse_existing_outputs(out, args, extras=(encoder_out,))
        base = editor_config_from_state(args.resume) if args.resume else EditorConfig()
        config = settings_from_args(EditorConfig, base, args, _OPTIONS)
        pairs = read_editor_pairs(args.pairs, args.root, on_error=args.on_error)
        val = read_editor_pairs(args.val_pairs, args.root, on_error=args.on_error) if args.val_pairs else None
        parts = load_ip2p_folder(args.pretrained, args.editor)
        torch.manual_seed(config.seed)  # a fresh encoder: PyTorch's default initialisation, seeded
        encoder = load_emo_encoder(args.encoder) if args.encoder else EmotionEncoder(
            width=parts["unet"].config.cross_attention_dim)
    except (DatasetError, ValueError, OSError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for pair_set in (pairs, val):
        if pair_set is not None and pair_set.skipped:
            say(f"skipped {len(pair_set.skipped)} record(s): " + "; ".join(pair_set.skipped[:5]))
    say(f"encoding {len(pairs) + (len(val) if val else 0)} pairs with the frozen VAE and text encoder")
    try:
        features = build_editor_features(pairs, vae_encoder(parts["vae"]),
                                         clip_text_encoder(parts["tokenizer"], parts["text_encoder"]), val_set=val,
                                         size=args.size, on_error=args.on_error,
                                         on_skip=lambda why: say(f"skipped (undecodable image) {why}"))
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if features.skipped:
        say(f"left out {len(features.skipped)} pair(s) whose images cannot be decoded; {len(features)} pairs remain")
    backbone = DiffusersEditorBackbone(parts["unet"], parts["vae"], parts["alphas"])

    def on_step(step: int, loss: float) -> None:
        if step % max(args.log_every, 1) == 0 or step == config.steps:
            say(f"step {step}/{config.steps} loss {loss:.6g}")

    try:
        result = train_editor(backbone, encoder, features, config, out_path=out, encoder_path=encoder_out,
                              state_path=args.state, resume=args.resume, overwrite=args.overwrite,
                              how_to_overwrite="--overwrite", device=args.device, on_step=on_step,
                              should_stop=StopFlag(), log=say)
    except (OutputExistsError, FileNotFoundError, NonFiniteError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    resume = f"; resume with --resume {result.state_path}" if result.stopped else ""
    say(f"{'stopped' if result.stopped else 'done'}: {result.global_step} steps, {_val_summary(result)}"
        f" -> {out}, {encoder_out}{resume}")
    if ddp.active:
        torch.distributed.destroy_process_group()
    return 0


def _val_summary(result) -> str:
    """``val mse A -> B``, or what is missing: a run stopped before its first validation has no B (not nan)."""
    initial = result.initial_val_loss
    final = result.history[-1].get("val_loss") if result.history else None
    if result.stopped and (initial is None or math.isnan(initial)):
        return "no validation ran (stopped before the first)"
    if result.stopped and (final is None or math.isnan(final)):
        return f"val mse {initial:.6g} before training; no validation ran since (stopped before the first)"
    return f"val mse {initial:.6g} -> {final if final is not None else float('nan'):.6g}"
