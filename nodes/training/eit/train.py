"""The embedded EIT trainer: read a pairs CSV, encode it once with the graph's SDXL CLIP, train, use the result.

Training runs with gradients inside ComfyUI (which executes nodes under inference mode), shows a progress bar with
the running loss, and on Cancel writes a resumable state before stopping.
"""

import logging
import math
import os
import time

import comfy.model_management as mm
import comfy.utils
import folder_paths
import numpy as np
import torch
from comfy_api.latest import io
from PIL import Image

from ....emo_core.emoticrafter.eit import EITConfig
from ....emo_core.emoticrafter.inject import CHUNK, SDXL_WIDTH
from ....emo_core.plots.loss import loss_curve_image
from ....emo_core.training.eit.caches import list_caches
from ....emo_core.training.eit.data import ON_ERROR, file_content_hash, read_pairs
from ....emo_core.training.eit.features import build_feature_cache, open_features
from ....emo_core.training.eit.fingerprint import clip_fingerprint
from ....emo_core.training.eit.objective import DENSITY_MODES
from ....emo_core.training.eit.task import TrainConfig, train_eit
from ....emo_core.training.loop import published_split
from ....emo_core.training.naming import inside, output_file, resolved
from ....emo_core.training.outputs import plan_outputs
from ...shared.models import EMOTICRAFTER, make_patcher
from ...shared.outputs import name_rules, work_dir
from ...shared.progress import TrainingProgress
from ...shared.sockets import CATEGORY, EIT
from ...shared.validation import combo_error, first_error

log = logging.getLogger("emo-nodes")
PAIRS = io.Custom("EMO_PAIRS")  # emo_core.training.eit.data.PairsData
FEATURES = io.Custom("EMO_FEATURES")  # emo_core.training.eit.features.FeatureCache


PAIRS_FOLDER = "emo_pairs"  # extra_model_paths.yaml key: more folders a pairs CSV may be read from


def pairs_folders() -> list[str]:
    """Where a pairs CSV may be read from: ComfyUI's input folder, then every ``emo_pairs`` folder the user
    configured (an ``emo_pairs:`` entry in extra_model_paths.yaml, or ``folder_paths.add_model_folder_path``)."""
    extra = folder_paths.folder_names_and_paths.get(PAIRS_FOLDER, ([], set()))[0]
    return [folder_paths.get_input_directory(), *extra]


def pairs_csv_problem(name) -> str | None:
    """Why ``name`` cannot be read as a pairs CSV (outside the allowed folders, missing, not a file), or None.
    The same check as ``csv_path``, for queue-time validation."""
    try:
        csv_path(name)
    except (ValueError, FileNotFoundError) as exc:
        return f"csv: {exc}"
    return None


def csv_path(name: str) -> str:
    """The resolved path of the pairs CSV ``name``: relative to ComfyUI's input folder (or an ``emo_pairs`` folder),
    or absolute inside one of them. Symlinks and ``..`` are resolved first; anything outside is refused without
    looking at it."""
    folders = pairs_folders()
    if not isinstance(name, str) or not name.strip():
        raise ValueError("the pairs CSV name is empty")
    if any(ord(c) < 32 for c in name):
        raise ValueError("the pairs CSV name contains control characters (NUL, newline, ...)")
    candidates = [name] if os.path.isabs(name) else [os.path.join(folder, name) for folder in folders]
    allowed = [candidate for candidate in candidates if inside(candidate, folders) is not None]
    if not allowed:
        listed = ", ".join(str(resolved(folder)) for folder in folders)
        raise ValueError(f"{name!r} is outside the folders a pairs CSV is read from ({listed}). Put the file in "
                         f"ComfyUI's input folder, or add its folder to extra_model_paths.yaml as "
                         f"'{PAIRS_FOLDER}: /path/to/folder'.")
    for candidate in allowed:
        real = resolved(candidate)
        if real.is_file():
            return str(real)
        if real.exists():  # os.stat only: a FIFO or a device is never opened (it would block the server)
            kind = "a folder" if real.is_dir() else "a FIFO or a device?"
            raise ValueError(f"pairs CSV {name!r} is not a regular file ({kind}); give a CSV file")
    raise FileNotFoundError(f"pairs CSV {name!r} not found in {', '.join(str(resolved(f)) for f in folders)} "
                            "(give a name relative to ComfyUI's input folder, or a path inside it)")


class EmotionPairs(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_EmotionPairs",
            display_name="Emotion Pairs (CSV)",
            category=f"{CATEGORY}/training",
            description="Reads EmotiCrafter's training pairs: a CSV with columns Id, Arousal, Valence, Tag, Dataset, "
                        "Neutral_Prompt, Emotional_Prompt (V-A on [-3, 3]). Bad rows are reported with their line "
                        "numbers; 'stop' refuses the file, 'skip' drops them and says how many.",
            inputs=[
                io.String.Input("csv", default="prompt_mapping.csv",
                                tooltip="The CSV's name in ComfyUI's input folder (subfolders allowed), or a path "
                                        "inside it or inside a folder added as 'emo_pairs' in "
                                        "extra_model_paths.yaml. Files elsewhere are not read."),
                io.Combo.Input("on_error", options=list(ON_ERROR), default="stop"),
            ],
            outputs=[PAIRS.Output(display_name="pairs"), io.String.Output(display_name="report")],
        )

    @classmethod
    def validate_inputs(cls, csv=None, on_error=None) -> bool | str:
        """The file must lie in the allowed folders (refused at queue time, never opened when outside), and the combo
        (the host does not check V3 combos). A linked path arrives as None and is checked when the node runs."""
        return first_error(pairs_csv_problem(csv) if isinstance(csv, str) else None,
                           combo_error("on_error", on_error, ON_ERROR))

    @classmethod
    def fingerprint_inputs(cls, csv, on_error):
        try:
            return file_content_hash(csv_path(csv)), on_error  # re-read when the file's content changes
        except (OSError, ValueError):
            return math.nan  # never equal: execute runs and reports the problem

    @classmethod
    def execute(cls, csv, on_error) -> io.NodeOutput:
        pairs = read_pairs(csv_path(csv), on_error=on_error)
        report = f"{len(pairs)} pairs read, {pairs.n_skipped} rows skipped"
        if pairs.skipped:
            report += ":\n" + "\n".join(str(p) for p in pairs.skipped[:50])
        log.info("emo-nodes: %s", report.splitlines()[0])
        return io.NodeOutput(pairs, report)


def clip_encoder(clip):
    """prompts → (N, 77, 2048): ComfyUI's SDXL encoding of each prompt, first 77-token window (as published)."""

    def encode(prompts: list[str]) -> torch.Tensor:
        out = []
        for prompt in prompts:
            mm.throw_exception_if_processing_interrupted()
            cond = clip.encode_from_tokens(clip.tokenize(prompt))
            if cond.shape[-1] != SDXL_WIDTH:
                raise ValueError(f"the training features must come from an SDXL CLIP ({SDXL_WIDTH} wide); this CLIP "
                                 f"gives {cond.shape[-1]}")
            out.append(cond[:, :CHUNK].float().cpu())
        return torch.cat(out)

    return encode


class EncodePairs(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_EncodePairs",
            display_name="Encode Emotion Pairs (feature cache)",
            category=f"{CATEGORY}/training",
            description="Encodes both prompts of every pair once with this SDXL CLIP into an on-disk cache (fp16 "
                        "safetensors shards in user/emo-nodes/feature_cache), keyed by the CLIP and the CSV content: "
                        "re-runs reuse it, an interrupted encode resumes.",
            inputs=[PAIRS.Input("pairs"), io.Clip.Input("clip")],
            outputs=[FEATURES.Output(display_name="features")],
        )

    @classmethod
    def execute(cls, pairs, clip) -> io.NodeOutput:
        bar = comfy.utils.ProgressBar(len(pairs))
        root = work_dir("feature_cache")
        started = time.perf_counter()
        fingerprint = clip_fingerprint(clip)
        log.info("emo-nodes: CLIP fingerprint %s (%.2f s)", fingerprint, time.perf_counter() - started)
        cache = build_feature_cache(root, pairs, clip_encoder(clip), f"comfy-sdxl-clip-{fingerprint}",
                                    on_progress=lambda done, total: bar.update_absolute(done, total))
        others = [info for info in list_caches(root)
                  if info.csv_hash == pairs.content_hash and info.folder != cache.folder]
        if others:
            log.info("emo-nodes: feature cache %s; %d other cache(s) of this CSV (%.0f MiB, other encoders or "
                     "older keys); list or remove them with: python -m emo_core caches %s --remove-stale",
                     cache.folder.name, len(others), sum(info.size for info in others) / 2**20, root)
        return io.NodeOutput(cache)


def curve_tensor(history) -> torch.Tensor:
    return torch.from_numpy(loss_curve_image(history).astype(np.float32) / 255.0)[None]


class TrainEIT(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_TrainEIT",
            display_name="Train EmotiCrafter (EIT)",
            category=f"{CATEGORY}/training",
            description="Trains an Emotion Injection Transformer on cached pair features with the published recipe "
                        "(target n + alpha·(e − n), MSE, KDE density weighting, AdamW, 1% validation split, best "
                        "checkpoint by unweighted validation loss). Writes models/emoticrafter/<name>.safetensors. "
                        "An existing model or state of that name is never replaced silently: the run is refused "
                        "unless 'overwrite' is on, and then the earlier files stay until the new run completes "
                        "(a failed or cancelled run leaves them untouched). Cancel saves a resumable state; "
                        "'resume' continues it.",
            is_output_node=True,
            inputs=[
                FEATURES.Input("features"),
                io.String.Input("name", default="my_eit",
                                tooltip="Output file name (models/emoticrafter/<name>.safetensors): a plain name, "
                                        "no folders, not starting or ending with a dot or space. If it exists, "
                                        "pick another name or turn on 'overwrite'."),
                io.Int.Input("epochs", default=200, min=1, max=100000),
                io.Int.Input("batch_size", default=768, min=1, max=65536),
                io.Float.Input("lr", default=1e-3, min=1e-7, max=1.0, step=1e-5, round=1e-7),
                io.Float.Input("weight_decay", default=1e-5, min=0.0, max=1.0, step=1e-6, round=1e-7),
                io.Float.Input("alpha", default=1.5, min=0.0, max=5.0, step=0.05,
                               tooltip="Target = neutral + alpha·(emotional − neutral); the paper uses 1.5."),
                io.Combo.Input("density", options=list(DENSITY_MODES), default="published",
                               tooltip="KDE weighting: published = 1/d² (what the code does), paper = 1/d, "
                                       "normalised = 1/d scaled to mean 1 and clipped (recommended), off."),
                io.Float.Input("val_fraction", default=0.01, min=0.001, max=0.5, step=0.001),
                io.Int.Input("split_seed", default=42, min=0, max=2**31 - 1),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
                io.Float.Input("dropout", default=0.1, min=0.0, max=0.9, step=0.05),
                io.Int.Input("layers", default=12, min=1, max=48, tooltip="12 = the published size."),
                io.Int.Input("width", default=768, min=64, max=4096, step=64, tooltip="768 = the published size."),
                io.Boolean.Input("resume", default=False, tooltip="Continue the interrupted run of this name."),
                EIT.Input("init_eit", optional=True, tooltip="Fine-tune these weights instead of starting fresh."),
                io.Boolean.Input("overwrite", default=False, optional=True,
                                 tooltip="Replace an existing model (and resume state) of this name. The earlier "
                                         "files are kept until this run completes: a failed or cancelled run "
                                         "leaves them untouched, and 'resume' continues the cancelled run. Off: "
                                         "an existing name is refused before anything is written."),
            ],
            outputs=[EIT.Output(display_name="eit"), io.String.Output(display_name="path"),
                     io.Image.Output(display_name="loss_curve")],
        )

    literal_rules = classmethod(lambda cls, values: name_rules(values))

    @classmethod
    def validate_inputs(cls, density=None) -> bool | str:
        """Names the combo only, so its error shows once: every number keeps the host's range check, and the
        queue-time hook (nodes/shared/prompt_hook.py) adds NaN/inf, steps and the file name (name_rules)."""
        return first_error(combo_error("density", density, DENSITY_MODES))

    @classmethod
    def execute(cls, features, name, epochs, batch_size, lr, weight_decay, alpha, density, val_fraction, split_seed,
                seed, dropout, layers, width, resume, init_eit=None, overwrite=False) -> io.NodeOutput:
        out_path = output_file(folder_paths.get_folder_paths(EMOTICRAFTER)[0], name, ".safetensors")
        state_path = output_file(work_dir("train_states"), name, ".state.pt")
        config = TrainConfig(alpha=alpha, density=density, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
                             epochs=epochs, val_fraction=val_fraction, split_seed=split_seed, seed=seed,
                             dropout=dropout)
        how = "the 'overwrite' input on"
        plan_outputs(out_path, state_path, resume=True if resume else None, overwrite=bool(overwrite),
                     how_to_overwrite=how, lead=False)  # refuse before unloading anything (writes nothing)
        init_model = init_eit.model if init_eit is not None else None
        model_config = init_model.config if init_model is not None else EITConfig(
            n_layer=layers, n_embd=width, n_head=max(1, width // 64))
        mm.unload_all_models()  # training needs the memory the host's models hold
        mm.soft_empty_cache()
        device = mm.get_torch_device()
        train_rows, _ = published_split(len(features), val_fraction, split_seed)
        steps_per_epoch = -(-len(train_rows) // batch_size)
        progress = TrainingProgress(epochs * steps_per_epoch)

        def on_step(epoch, step, loss):
            progress.update((epoch - 1) * steps_per_epoch + step)
            if step == 1 or step % 10 == 0:
                log.info("emo-nodes train: epoch %d step %d loss %.5g", epoch, step, loss)

        def on_epoch(record):
            preview = Image.fromarray(loss_curve_image(history + [record]))
            history.append(record)
            progress.update(record["epoch"] * steps_per_epoch, ("JPEG", preview, 512))

        history: list[dict] = []
        with torch.inference_mode(False), torch.enable_grad():
            result = train_eit(open_features(features, device), config, model_config=model_config,
                               out_path=out_path, state_path=state_path, resume=True if resume else None,
                               overwrite=bool(overwrite), how_to_overwrite=how, init_model=init_model,
                               dataset_hash=features.csv_hash,
                               device=device, on_step=on_step, on_epoch=on_epoch,
                               should_stop=progress.should_stop, log=log.info)
        if result.stopped:
            log.info("emo-nodes train: stopped; resume state %s", state_path)
        progress.end_if_stopped(result.stopped)
        if not out_path.is_file():
            raise RuntimeError(f"training ended without writing {out_path} ({result.epochs_completed} epoch(s) "
                               "completed): no model was trained")
        network = result.model.eval()
        return io.NodeOutput(make_patcher(network, device), str(out_path), curve_tensor(result.history))
