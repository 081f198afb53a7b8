"""Benchmark one EmoEditor training step at SD 1.5 size: the published order against ours, in one process.

    python -m bench editor_train [--device cpu|cuda] [--quick]
    python -m bench.bench_editor_train [--batch B] [--steps N] [--quick] [--device ...] [--threads N]

The UNet is diffusers' UNet2DConditionModel in the SD 1.5 architecture with 8 input channels (the ip2p / EmoEditor
UNet, ~860M parameters), built with seeded random weights; the encoder is EmoEditor's (46M); 224 px (28x28 latents),
77x768 text embeddings. Every case is the trainer's own step (``EditorTask.batch_loss`` + its optimiser step: Adam
eps 1e-3 over encoder + trained UNet weights) on the same random batch:
- ``published``: mode full, pure fp16 UNet (fp32 on the CPU, which has no fast fp16), no checkpointing;
- ``full-bf16``: mode full, bf16 autocast with fp32 master weights;
- ``lora-bf16-ckpt``: LoRA rank 16 on the attention/feed-forward projections, bf16 autocast, gradient checkpointing;
- ``lora-fp32-ckpt``: the same in fp32 (on the CPU, bf16 autocast is usually slower than fp32).
Step time: median of the timed steps after one warm-up step (none with ``--quick``). Peak memory: CUDA
``max_memory_allocated``; on the CPU each case runs in its own fresh (spawned) process, and the figure is that
process's peak resident set minus its size before the case was built: weights, optimiser state and activations.
Batch: 32 on CUDA (the published batch), 2 on the CPU (a full fine-tune's fp32 weights + Adam state alone take
~14 GB). ``--quick``: a 10x narrower UNet (32/64/64/64, one layer per block), one step per case, untimed warm-up
skipped; its figures are not comparable to a full run (the 46M-weight encoder dominates them).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time

import torch

from bench import row, sync

SD15_UNET = {"in_channels": 8, "out_channels": 4, "sample_size": 28, "cross_attention_dim": 768,
             "block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2, "attention_head_dim": 8}
QUICK_UNET = {**SD15_UNET, "block_out_channels": (32, 64, 64, 64), "layers_per_block": 1}
CASES = {  # name -> EditorConfig fields
    "published": {"mode": "full", "precision": "published-fp16"},
    "full-bf16": {"mode": "full", "precision": "bf16"},
    "lora-bf16-ckpt": {"mode": "lora", "precision": "bf16", "gradient_checkpointing": True},
    "lora-fp32-ckpt": {"mode": "lora", "precision": "fp32", "gradient_checkpointing": True},
}


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu_case(args: tuple) -> dict:
    """One case in a fresh process: its peak RSS above the size before the case was built."""
    import resource

    torch.set_num_threads(args[-1])
    before = _rss()
    result = _case(*args[:-1])
    result["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return result


def _case(name: str, device: torch.device, batch: int, steps: int, quick: bool) -> dict:
    from diffusers import UNet2DConditionModel

    from emo_core.emoeditor.encoder import EmotionEncoder
    from emo_core.training.editor.diffusers_backbone import DiffusersEditorBackbone
    from emo_core.training.editor.features import EditorFeatures
    from emo_core.training.editor.precision import effective_precision
    from emo_core.training.editor.task import EditorConfig, EditorTask, prepare_model
    from emo_core.training.task import StepContext

    config = EditorConfig(batch_size=batch, lora_rank=16, **CASES[name])
    messages: list[str] = []
    precision = effective_precision(config.precision, device, messages.append)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**(QUICK_UNET if quick else SD15_UNET))
    model = prepare_model(DiffusersEditorBackbone(unet), EmotionEncoder(), config, precision).to(device).train()
    g = torch.Generator().manual_seed(1)
    latent = torch.randn(batch, 4, 28, 28, generator=g)
    features = EditorFeatures(latent, latent + 0.1, torch.full_like(latent, 0.05),
                              torch.randn(batch, 77, 768, generator=g), torch.arange(batch),
                              torch.randn(batch, 8, generator=g))
    task = EditorTask(model, features, config, precision)
    task.prepare(features, device, messages.append)
    optimizer = task.make_optimizer(model, config)
    rows = torch.arange(batch)
    times = []
    warmup = 0 if quick else 1
    for step in range(steps + warmup):
        sync(str(device))
        started = time.perf_counter()
        loss, _, _ = task.batch_loss(model, features.fetch(rows), rows, batch, False, StepContext(0, step, step))
        task.optimizer_step(loss, optimizer, 1.0)
        sync(str(device))
        if step >= warmup:
            times.append(time.perf_counter() - started)
    trained = sum(p.numel() for p in task.trainable(model))
    return {"case": name, "precision": precision, "step_s": statistics.median(times), "loss": loss.item(),
            "trained_parameters": trained, "messages": messages}


def measure(name: str, device: torch.device, batch: int, steps: int, quick: bool) -> dict:
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        result = _case(name, device, batch, steps, quick)
        result["peak_bytes"] = torch.cuda.max_memory_allocated(device) - base
        return result
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:  # a fresh heap: the RSS peak is this case's alone
        return pool.apply(_cpu_case, ((name, device, batch, steps, quick, torch.get_num_threads()),))


def run(device: str = "cpu", quick: bool = False, batch: int | None = None, steps: int | None = None) -> dict:
    dev = torch.device(device)
    batch = batch or (32 if dev.type == "cuda" else 2)
    steps = steps or (1 if quick or dev.type == "cpu" else 3)
    results = {name: measure(name, dev, batch, steps, quick) for name in CASES}
    base = results["published"]
    size = "quick UNet" if quick else "SD 1.5 UNet"
    rows = []
    for name, r in results.items():
        if name == "published":
            continue
        note = f"{size}, 224 px, batch {batch}, {r['trained_parameters'] / 1e6:.1f}M trained"
        rows.append(row(f"editor step {name}", name, r["step_s"], f"published ({base['precision']})",
                        base["step_s"], "s", goal=1.3, note=note))
        rows.append(row(f"editor peak memory {name}", name, r["peak_bytes"] / 2**30, "published",
                        base["peak_bytes"] / 2**30, "GiB", kind="fraction", goal=0.6, note=note))
    return {"rows": rows, "cases": results, "device": device, "batch": batch, "quick": quick}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--batch", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--threads", type=int)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = run(args.device, args.quick, args.batch, args.steps)
    from bench import format_table

    print(format_table([{**r, "bench": "editor_train"} for r in out["rows"]]))
    print(json.dumps(out["cases"], indent=1))


if __name__ == "__main__":
    main()
