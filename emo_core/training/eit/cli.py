"""Command line for EIT training: ``python -m emo_core train-eit`` (also under ``torchrun --nproc_per_node=N -m ...``).

Features come from a cache folder built beforehand (by the ComfyUI trainer node, or by ``--synthetic``, which
encodes the prompts with the deterministic stand-in encoder of ``emo_core.training.eit.features`` for testing).
Writes the best model (``--out``, safetensors), the resume state (``--state``, default ``<out>.state.pt``), the loss
history (``--history``, default ``<out>.history.json``) and optionally a loss-curve PNG (``--curve``).
SIGINT/SIGTERM stop the run after the current step with a resume state; ``--resume STATE`` continues it,
taking every setting not given on the command line from the state. An existing ``--out`` or state is refused
unless ``--overwrite`` is given; then the run writes ``<file>.pending`` files that replace the earlier ones only
when it completes (an interrupted one is continued with ``--resume <state>.pending``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from ...atomic_io import atomic_write, atomic_write_json
from ...emoticrafter.eit import EITConfig
from ..command import launch, refuse_existing_outputs, settings_from_args
from ..distributed import default_device
from ..errors import DatasetError
from ..loop import NonFiniteError
from ..outputs import OutputExistsError, pending
from ..settings import AMP_MODES
from ..stop_flag import StopFlag
from .data import read_pairs
from .features import SYNTHETIC_ENCODER_ID, build_feature_cache, find_cache, open_features, synthetic_encoder
from .objective import DENSITY_MODES
from .task import TrainConfig, load_state, train_config_from_state, train_eit

# command-line option -> TrainConfig field
_TRAIN_OPTIONS = {"alpha": "alpha", "density": "density", "density_clip": "density_clip", "lr": "lr",
                  "weight_decay": "weight_decay", "batch": "batch_size", "epochs": "epochs",
                  "val_fraction": "val_fraction", "split_seed": "split_seed", "seed": "seed", "dropout": "dropout",
                  "amp": "amp", "checkpoint_every": "checkpoint_every", "eval_batch": "eval_batch_size"}


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m emo_core train-eit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", required=True, help="the pairs CSV (Id, Arousal, Valence, Tag, Dataset, Neutral_Prompt, "
                   "Emotional_Prompt)")
    p.add_argument("--cache", required=True, help="feature cache folder, or a root holding cache folders")
    p.add_argument("--out", required=True, help="output model (.safetensors): the best weights")
    p.add_argument("--state", help="resume-state file to write (default <out>.state.pt)")
    p.add_argument("--resume", metavar="STATE", help="continue the run saved in STATE (an interrupted --overwrite "
                   "run's state is <state>.pending)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out model / state: the run writes "
                   "<file>.pending files and moves them onto the final names only when it completes, so a failed, "
                   "cancelled or killed run leaves the earlier files untouched (without it an existing file is "
                   "refused)")
    p.add_argument("--history", help="loss history JSON (default <out>.history.json)")
    p.add_argument("--curve", help="also write a loss-curve PNG here")
    p.add_argument("--on-error", choices=("stop", "skip"), default="stop", help="malformed CSV rows (default stop)")
    p.add_argument("--synthetic", action="store_true", help="build the cache (if missing) with the deterministic "
                   "synthetic encoder: for testing the pipeline, not for real models")
    p.add_argument("--encoder-id", help="which cache to use when several encoders cached this CSV")
    g = p.add_argument_group("training (defaults: the published run)")
    g.add_argument("--alpha", type=float, help=f"target scale α (default {defaults.alpha})")
    g.add_argument("--density", choices=DENSITY_MODES, help=f"V-A density weighting (default {defaults.density})")
    g.add_argument("--density-clip", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help=f"clip range of the normalised weights (default {defaults.density_clip})")
    g.add_argument("--lr", type=float, help=f"AdamW learning rate (default {defaults.lr})")
    g.add_argument("--weight-decay", type=float, help=f"AdamW weight decay (default {defaults.weight_decay})")
    g.add_argument("--batch", type=int, help=f"global batch size (default {defaults.batch_size})")
    g.add_argument("--epochs", type=int, help=f"epochs (default {defaults.epochs})")
    g.add_argument("--val-fraction", type=float, help=f"validation fraction (default {defaults.val_fraction})")
    g.add_argument("--split-seed", type=int, help=f"train/validation split seed (default {defaults.split_seed})")
    g.add_argument("--seed", type=int, help=f"init/shuffle/dropout seed (default {defaults.seed})")
    g.add_argument("--dropout", type=float, help=f"train-mode dropout (default {defaults.dropout})")
    g.add_argument("--amp", choices=AMP_MODES, help="bf16 autocast: auto (CUDA with bf16) | bf16 | off")
    g.add_argument("--checkpoint-every", type=int, help="also write the resume state every N steps")
    g.add_argument("--eval-batch", type=int, help="validation batch size (default: --batch)")
    m = p.add_argument_group("model (defaults: the published size)")
    m.add_argument("--layers", type=int, default=12)
    m.add_argument("--width", type=int, default=768)
    m.add_argument("--heads", type=int, default=12)
    m.add_argument("--init", help="start from these EIT weights (.safetensors or published .pth) instead of the "
                   "published random initialisation")
    r = p.add_argument_group("runtime")
    r.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    r.add_argument("--memory-budget", type=float, metavar="GB", help="hold all features on the device when they "
                   "fit in this many GB (default: 60%% of free GPU memory on CUDA, stream from disk on CPU)")
    r.add_argument("--threads", type=int, help="torch CPU threads")
    r.add_argument("--log-every", type=int, default=10, help="print every N steps (default 10)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    try:
        ddp, say = launch(args)
        refuse_existing_outputs(out, args)
        base = train_config_from_state(args.resume) if args.resume else TrainConfig()
        config = settings_from_args(TrainConfig, base, args, _TRAIN_OPTIONS)
        pairs = read_pairs(args.csv, on_error=args.on_error)
    except (DatasetError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if pairs.skipped:
        say(f"skipped {pairs.n_skipped} malformed row(s): " + "; ".join(str(p) for p in pairs.skipped[:5])
            + (" ..." if pairs.n_skipped > 5 else ""))
    cache = _open_cache(args, pairs, ddp, say)
    device = torch.device(args.device) if args.device else None
    budget = int(args.memory_budget * 2**30) if args.memory_budget is not None else None
    features = open_features(cache, device or default_device(ddp), budget)
    say(f"{cache.n_rows} pairs, features {cache.seq_len}x{cache.feature_dim} from {cache.folder} "
        f"({'resident' if features is not cache else 'streamed'})")

    model_config, init_model = None, None
    if args.resume:
        load_state(args.resume)  # fail early on a bad state file
    else:
        model_config = EITConfig(n_layer=args.layers, n_embd=args.width, n_head=args.heads,
                                 feature_dim=cache.feature_dim, n_positions=max(1024, cache.seq_len))
        if args.init:
            from ...emoticrafter.eit_io import load_eit

            init_model = load_eit(args.init)
            model_config = None
    n_train = cache.n_rows - math.ceil(config.val_fraction * cache.n_rows)
    steps = math.ceil(n_train / config.batch_size)

    def on_step(epoch: int, step: int, loss: float) -> None:
        if ddp.lead and (step % max(args.log_every, 1) == 0 or step == steps):
            print(f"epoch {epoch} step {step}/{steps} loss {loss:.6g}", flush=True)

    try:
        result = train_eit(features, config, model_config=model_config, out_path=out, state_path=args.state,
                           resume=args.resume, overwrite=args.overwrite, how_to_overwrite="--overwrite",
                           init_model=init_model, dataset_hash=pairs.content_hash,
                           extra_metadata={"encoder_id": cache.encoder_id}, device=device, on_step=on_step,
                           should_stop=StopFlag(), log=say)
    except (OutputExistsError, FileNotFoundError, NonFiniteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if ddp.lead:
        _write_outputs(args, out, result)
        state = f"; resume with --resume {result.state_path}" if result.stopped else ""
        say(f"{'stopped' if result.stopped else 'done'}: {result.epochs_completed} epoch(s), best val "
            f"{result.best_val_loss:.6g} at epoch {result.best_epoch} -> {out}{state}")
    if ddp.active:
        torch.distributed.destroy_process_group()
    return 0


def _open_cache(args, pairs, ddp, say):
    if args.synthetic:
        if ddp.rank == 0:
            say(f"synthetic features for {len(pairs.rows)} pairs in {args.cache}")
            build_feature_cache(args.cache, pairs, synthetic_encoder(), SYNTHETIC_ENCODER_ID)
        if ddp.active:
            torch.distributed.barrier()
        return find_cache(args.cache, pairs.content_hash, SYNTHETIC_ENCODER_ID)
    cache = find_cache(args.cache, pairs.content_hash, args.encoder_id)
    if cache.n_rows != len(pairs.rows):
        raise SystemExit(f"error: {cache.folder} holds {cache.n_rows} rows, the CSV {len(pairs.rows)} usable rows "
                         "(a cache built with another --on-error policy?)")
    return cache


def _write_outputs(args, out: Path, result) -> None:
    history_path = Path(args.history) if args.history else out.with_name(out.name + ".history.json")
    curve_path = Path(args.curve) if args.curve else None
    if result.out_path is not None and Path(result.out_path) != out:  # a stopped overwriting run: keep the old ones
        history_path = pending(history_path)
        curve_path = pending(curve_path) if curve_path is not None else None
    atomic_write_json(history_path, {"history": result.history, "best_epoch": result.best_epoch,
                                     "best_val_loss": result.best_val_loss, "stopped": result.stopped})
    if curve_path is not None:
        from PIL import Image

        from ...plots.loss import loss_curve_image

        picture = Image.fromarray(loss_curve_image(result.history))
        atomic_write(curve_path, lambda tmp: picture.save(tmp, format="PNG"))
