"""The EIT training-step bench for ``python -m bench``: runs ``bench/bench_train.py``'s interleaved timing.

``python -m bench train [--device cuda] [--quick]``; ``python -m bench.bench_train --help`` has that script's own
options (batch, steps, ``--project``). Our step (fast path; bf16 autocast on CUDA GPUs with bf16) and the
published-equivalent step (plain path with the 3x-wide ``c_attn``, fp32) take turns in one process.
"""

from __future__ import annotations

import torch

from bench import row
from bench.bench_train import projection_hours, time_interleaved
from emo_core.emoticrafter.eit import EITConfig
from emo_core.training.settings import uses_bf16


def plan(device: str, quick: bool) -> tuple[EITConfig, int, int, int]:
    """(config, batch, timed steps, warm-up steps). A full-size B=32 step takes ~10 s on 2 CPU cores and well
    under a second on a GPU. --quick (smoke mode) runs 2 layers at batch 4."""
    if quick:
        return EITConfig(n_layer=2, dropout=0.1), 4, (3 if device == "cuda" else 1), 1
    if device == "cuda":
        return EITConfig(dropout=0.1), 32, 10, 3
    return EITConfig(dropout=0.1), 32, 2, 1


def run(device: str = "cpu", quick: bool = False) -> dict:
    config, batch, steps, warmup = plan(device, quick)
    dev = torch.device(device)
    names = ["ours", "published-equivalent"]
    results = time_interleaved(names=names, config=config, device=dev, batch=batch, steps=steps, warmup=warmup,
                               bf16=uses_bf16("auto", dev))
    ours, published = results["ours"], results["published-equivalent"]
    size = "" if config.n_layer == 12 else f" ({config.n_layer} layers: smoke mode, NOT the full size)"
    precision = "bf16 autocast" if ours["bf16"] else "fp32"
    rows = [
        row(f"EIT training step B={batch}{size}", f"ours ({precision})", ours["step_s_min"],
            "published-equivalent (fp32)", published["step_s_min"], "s",
            note=f"process CPU time {published['cpu_s_min'] / ours['cpu_s_min']:.2f}x"),
    ]
    notes = [f"best of {steps} steps after {warmup} warm-up, interleaved; {ours['params'] / 1e6:.1f} M parameters "
             f"(published-equivalent {published['params'] / 1e6:.1f} M with the 3x c_attn)"]
    if not quick:
        for result in (ours, published):
            result["projected_paper_hours"] = projection_hours(result["samples_per_s"])
        notes.append(f"projected paper schedule (200 epochs x 39,843 pairs, no validation or data loading) on this "
                     f"device at batch {batch}: ours {ours['projected_paper_hours']:,.1f} h, published-equivalent "
                     f"{published['projected_paper_hours']:,.1f} h")
    return {"config": dict(config.__dict__), "batch": batch, "steps": steps, "warmup": warmup, "results": results,
            "rows": rows, "notes": notes}
