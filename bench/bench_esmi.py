"""Benchmark ESMI per pair (emo_core.esmi: Grad-CAM of the source, the predictor on the edit, Pillow resize, the
uint8 L1s) against the cost of one 30-step edit, both measured in this process.

    python -m bench esmi [--device cuda] [--quick]        (from the repo root)

Goal: scoring a pair costs at most 2 % of making the edit. The pair is a 512-px source (resized with Pillow, as
published) and a 224-px edit, each pair with its own source (the CAM is not shared), the full-size ResNet-18
predictor with seeded random weights, fp32. The edit is bench_iei's: emotion encoder + VAE encode + 30 forwards of
an SD 1.5-size 8-channel UNet (860 M, diffusers) + VAE decode, fp32 on the CPU, fp16 on CUDA. Best (minimum) times.
"""

from __future__ import annotations

import sys

import torch

from bench import row, timed
from bench.bench_iei import edit_cost
from emo_core.emoeditor.esmi import esmi
from emo_core.emoeditor.predictor import EmotionPredictor

GOAL = 0.02


def esmi_cost(repeats: int, seed: int, device: str) -> float:
    torch.manual_seed(seed)
    predictor = EmotionPredictor().eval().requires_grad_(False).to(device)
    g = torch.Generator().manual_seed(seed)
    source, edit = torch.rand(1, 512, 512, 3, generator=g), torch.rand(1, 224, 224, 3, generator=g)
    return min(timed(lambda: esmi(predictor, source, edit, "awe"), repeats, 2, device))


def run(device: str = "cpu", quick: bool = False, *, steps: int = 30, seed: int = 0) -> dict:
    pair_ms = esmi_cost(3 if quick else 10, seed, device)
    edit = edit_cost(steps, 1 if quick else (20 if device == "cuda" else 3), seed, device)
    print(f"  esmi: {pair_ms:.1f} ms per pair, one edit {edit['edit_ms']:,.0f} ms", file=sys.stderr, flush=True)
    rows = [row("ESMI per pair", "Grad-CAM + predictor + L1 (512-px source, 224-px edit)", pair_ms,
                f"one {edit['dtype']} edit ({steps} steps)", edit["edit_ms"], "ms", kind="fraction", goal=GOAL,
                note=f"UNet {edit['unet_params_m']:.0f} M, {edit['unet_step_ms']:,.0f} ms/step")]
    return {"pair_ms": pair_ms, "edit": edit, "ratio": pair_ms / edit["edit_ms"], "goal": GOAL, "rows": rows}


if __name__ == "__main__":
    from bench.__main__ import report

    sys.exit(report("esmi", "cuda" if "--device=cuda" in sys.argv or "cuda" in sys.argv else "cpu",
                    "--quick" in sys.argv, {"esmi": run}))
