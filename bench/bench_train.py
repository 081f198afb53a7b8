"""Benchmark one EIT training step at the full published size (12 layers, width 768, 12 heads, 77 tokens).

    python -m bench.bench_train [--batch 32] [--steps 2] [--quick] [--project] [--threads N] [--device cpu|cuda]

Seeded random weights and random features are built in-process (no files). Two steps are timed in turns in the
same process, each a full optimiser step through ``emo_core.training.eit.task.train_step``, the step the trainer takes
(forward, target (e - n)·1.5 + n, published 1/d² density loss, backward, AdamW lr 1e-3 / wd 1e-5), train mode with
dropout 0.1 as published:
- ``ours``: what the trainer runs: the EIT's default fast path, which with autograd uses SDPA for self- and
  cross-attention (the folded cross-attention is for inference), bf16 autocast on CUDA GPUs that support it, fp32
  elsewhere;
- ``published-equivalent``: the published op order and cost: the plain path (``fast=False``: manual softmax
  attention, explicit GELU formula, A/V tokens per row) with every ``c_attn`` 3x wide (the K/V thirds computed and
  discarded, in the forward and in the weight gradient, as the published module does), fp32 always.
The published module itself is not run (it needs transformers < 4.48); its B=32 training step measured on a 2-core
x86-64 CPU of the class this repository is developed on (13.9 s, fp32) is printed as a labelled reference.
``--project`` prints the projected time of the paper's schedule (200 epochs over the 39,843 pairs, 99 % of them
trained on) from the measured samples/s. Writes JSON to bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from emo_core.emoticrafter.eit import EITConfig, EmotionInjectionTransformer, init_published_weights
from emo_core.training.eit.task import train_step
from emo_core.training.settings import uses_bf16

ROOT = Path(__file__).resolve().parent.parent

PUBLISHED_REFERENCE_S = 13.9  # the published module's B=32 training step, fp32, measured on a 2-core x86-64 CPU
PAPER_EPOCHS, PAPER_PAIRS, PAPER_VAL_FRACTION = 200, 39_843, 0.01


class FullCAttn(nn.Module):
    """The published 3x-wide ``c_attn``: all of Q, K, V computed, only Q (the first third) used."""

    def __init__(self, c_q: nn.Module, generator: torch.Generator):
        super().__init__()
        width = c_q.weight.shape[0]
        extra = torch.randn(width, 2 * width, generator=generator) * 0.02
        self.weight = nn.Parameter(torch.cat([c_q.weight.detach(), extra], dim=1).contiguous())
        self.bias = nn.Parameter(torch.cat([c_q.bias.detach(), torch.zeros(2 * width)]))
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return qkv[:, :self.width].reshape(*x.shape[:-1], self.width)


def build(config: EITConfig, published: bool, seed: int) -> EmotionInjectionTransformer:
    model = EmotionInjectionTransformer(config, fast=not published)
    generator = torch.Generator().manual_seed(seed)
    init_published_weights(model, generator)
    if published:
        for block in model.h:
            for attn in (block.attn, block.attn_a, block.attn_v):
                attn.c_q = FullCAttn(attn.c_q, generator)
    return model.train()


def batch_on(device: torch.device, batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    neutral = torch.randn(batch, 77, 2048, generator=g).half().float()  # fp16-cached features, as published
    emotional = (neutral + 0.5 * torch.randn(batch, 77, 2048, generator=g)).half().float()
    arousal, valence = torch.rand(batch, generator=g) * 6 - 3, torch.rand(batch, generator=g) * 6 - 3
    density = torch.rand(batch, generator=g) * 0.05 + 0.005  # the published KDE's range on its data
    return tuple(t.to(device) for t in (neutral, emotional, arousal, valence, density))


def time_interleaved(names: list[str], config: EITConfig, device: torch.device, batch: int, steps: int,
                     warmup: int, bf16: bool) -> dict[str, dict]:
    """Seconds per optimiser step of each path; the paths take turns within every repeat, so load from other
    processes on a shared machine falls on all of them alike (the minimum is the least disturbed figure)."""
    data = batch_on(device, batch, seed=1)
    runs = {}
    for name in names:
        model = build(config, published=name == "published-equivalent", seed=0).to(device)
        runs[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5),
                      bf16 and name == "ours")
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu_times: dict[str, list[float]] = {name: [] for name in names}
    losses: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + steps):
        for name, (model, optimizer, use_bf16) in runs.items():
            sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            loss, _ = train_step(model, optimizer, *data, alpha=1.5, density="published", bf16=use_bf16)
            losses[name].append(loss.item())  # also synchronises
            sync(device)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            if index >= warmup:
                times[name].append(seconds)
                cpu_times[name].append(cpu_seconds)
            print(f"  {name}: step {index + 1}/{warmup + steps} {seconds:.2f} s (CPU time {cpu_seconds:.2f} s)"
                  f"{' (warm-up)' if index < warmup else ''}", file=sys.stderr, flush=True)
    results = {}
    for name, (model, _, use_bf16) in runs.items():
        best = min(times[name])
        results[name] = {"step_s_min": best, "step_s_median": statistics.median(times[name]),
                         "step_s_all": times[name], "samples_per_s": batch / best, "bf16": use_bf16,
                         "cpu_s_min": min(cpu_times[name]), "cpu_s_all": cpu_times[name],
                         "params": sum(p.numel() for p in model.parameters()), "losses": losses[name]}
    return results


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def projection_hours(samples_per_s: float) -> float:
    trained_per_epoch = PAPER_PAIRS - math.ceil(PAPER_VAL_FRACTION * PAPER_PAIRS)
    return PAPER_EPOCHS * trained_per_epoch / samples_per_s / 3600


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per path (default 2, after 1 warm-up)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 layers, batch 4, 1 timed step (NOT the "
                        "full size; figures are not comparable)")
    parser.add_argument("--project", action="store_true", help="print the projected time of the paper's schedule")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--skip-published", action="store_true", help="time only our step")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config = EITConfig(dropout=0.1)
    batch, steps, warmup = args.batch, args.steps, 1
    if args.quick:
        config = EITConfig(n_layer=2, dropout=0.1)
        batch, steps = min(batch, 4), 1
    bf16 = uses_bf16("auto", device)
    size = f"{config.n_layer} layers, width {config.n_embd}, {config.n_head} heads, 77 tokens, features 2048"
    print(f"EIT training step: {size}, batch {batch}, device {device}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}", file=sys.stderr, flush=True)

    names = ["ours"] + ([] if args.skip_published else ["published-equivalent"])
    results = time_interleaved(names, config, device, batch, steps, warmup, bf16)

    print(f"\nEIT training step, {size}; batch {batch}; {device}; best of {steps} after {warmup} warm-up; "
          f"{torch.get_num_threads()} threads; torch {torch.__version__}"
          + (" (--quick: NOT the full size)" if args.quick else "") + "\n")
    print("| step | precision | parameters | step time s | samples/s | process CPU time s |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {'bf16 autocast' if r['bf16'] else 'fp32'} | {r['params'] / 1e6:.1f} M | "
              f"{r['step_s_min']:.2f} | {r['samples_per_s']:.2f} | {r['cpu_s_min']:.2f} |")
    if "published-equivalent" in results:
        ours, published = results["ours"], results["published-equivalent"]
        ratio = published["step_s_min"] / ours["step_s_min"]
        cpu_ratio = published["cpu_s_min"] / ours["cpu_s_min"]
        results["ratio_published_over_ours"] = ratio
        results["cpu_ratio_published_over_ours"] = cpu_ratio
        print(f"\nspeed-up of our step over the published-equivalent step: {ratio:.2f}x wall, {cpu_ratio:.2f}x "
              "process CPU time (less sensitive to other processes' load on a shared machine)")
    print(f"\nReference (NOT measured by this run): the published module's B=32 training step, fp32, measured on a "
          f"2-core x86-64 CPU: {PUBLISHED_REFERENCE_S:.1f} s")
    if args.project:
        print(f"\nProjected paper schedule ({PAPER_EPOCHS} epochs x {PAPER_PAIRS:,} pairs, 99 % trained on; "
              f"validation and data loading not included) on {device} at batch {batch}:")
        for name, r in results.items():
            if isinstance(r, dict):
                hours = projection_hours(r["samples_per_s"])
                r["projected_hours"] = hours
                print(f"  {name}: {hours:,.1f} h ({hours / 24:,.1f} days)")

    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"train_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                               "machine": platform.processor() or platform.machine(), "device": str(device),
                               "batch": batch, "steps": steps, "quick": args.quick, "config": config.__dict__,
                               "results": results, "published_reference_s_not_measured_here": PUBLISHED_REFERENCE_S},
                              indent=1))
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
