"""Benchmark the emotion region and the regional edit against the cost of one 30-step edit, all in this process.

    python -m bench region [--device cuda] [--quick]        (from the repo root)

* Emotion Region per image (emo_core.emotion_region: test.py's Pillow squash to 224, one predictor forward and
  backward to layer4[-1], the bilinear resize back to a 512-px image, then threshold, grow 8 px and feather 16 px):
  goal at most 1 % of one edit.
* Masked vs unmasked edit: what a mask adds to an edit, measured as the operations it adds: the start latent
  (``masked_start``), ComfyUI's noise-mask arithmetic around each of the 30 model calls (KSamplerX0Inpaint: the
  input blend with the source noised at the step's sigma, the output blend with the source latent) and the
  composite over the 224-px source; goal within 5 % of the unmasked edit. The model calls are the same with and
  without a mask, so their time is the baseline's and is not re-run.

The edit is bench_iei's (emotion encoder + VAE encode + 30 forwards of an SD 1.5-size 8-channel UNet + VAE decode;
fp32 on the CPU, fp16 on CUDA); the predictor is the full-size ResNet-18 with seeded random weights. Best times.
"""

from __future__ import annotations

import sys

import torch

from bench import row, timed
from bench.bench_iei import LATENT, SIZE, edit_cost
from emo_core.emoeditor.predictor import EmotionPredictor
from emo_core.emoeditor.region import composite, emotion_region, shape_mask
from emo_core.emoeditor.sampling import masked_start

REGION_GOAL, MASK_GOAL = 0.01, 0.05


def region_cost(repeats: int, seed: int, device: str) -> float:
    torch.manual_seed(seed)
    predictor = EmotionPredictor().eval().requires_grad_(False).to(device)
    image = torch.rand(1, 512, 512, 3, generator=torch.Generator().manual_seed(seed))
    return min(timed(lambda: shape_mask(emotion_region(predictor, image), 0.5, 8, 16), repeats, 2, device))


def mask_cost(steps: int, repeats: int, seed: int, device: str) -> float:
    """The added arithmetic of one masked edit (see the module's docstring), in ms."""
    g = torch.Generator().manual_seed(seed)
    latent, source, noise = (torch.randn(1, 4, LATENT, LATENT, generator=g).to(device) for _ in range(3))
    latent_mask = (torch.rand(1, 1, LATENT, LATENT, generator=g) > 0.5).float().expand(1, 4, -1, -1).to(device)
    image, original = (torch.rand(1, SIZE, SIZE, 3, generator=g).to(device) for _ in range(2))
    pixel_mask = (torch.rand(1, SIZE, SIZE, generator=g) > 0.5).float().to(device)
    sigmas = torch.linspace(14.6, 0.03, steps + 1, device=device)

    def added() -> None:
        x = masked_start(latent, source, latent_mask)
        keep = 1.0 - latent_mask
        for i in range(steps):
            x_in = x * latent_mask + (source + noise * sigmas[i]) * keep  # the model sees this input
            x = x_in * latent_mask + source * keep  # ... and its output is blended like this
        composite(image, original, pixel_mask)

    return min(timed(added, repeats, 2, device))


def run(device: str = "cpu", quick: bool = False, *, steps: int = 30, seed: int = 0) -> dict:
    region_ms = region_cost(3 if quick else 10, seed, device)
    added_ms = mask_cost(steps, 3 if quick else 20, seed, device)
    edit = edit_cost(steps, 1 if quick else (20 if device == "cuda" else 3), seed, device)
    print(f"  region: {region_ms:.1f} ms per image, mask adds {added_ms:.2f} ms, one edit {edit['edit_ms']:,.0f} ms",
          file=sys.stderr, flush=True)
    baseline = f"one {edit['dtype']} edit ({steps} steps)"
    rows = [row("Emotion Region per image", "Grad-CAM fwd+bwd at 224, resize to 512 px, shape", region_ms, baseline,
                edit["edit_ms"], "ms", kind="fraction", goal=REGION_GOAL),
            row("Masked edit: added time", "mask blends at every step + composite", added_ms, baseline,
                edit["edit_ms"], "ms", kind="fraction", goal=MASK_GOAL,
                note="masked edit = unmasked + this; the model calls are the same")]
    return {"region_ms": region_ms, "mask_added_ms": added_ms, "edit": edit,
            "region_ratio": region_ms / edit["edit_ms"], "mask_ratio": added_ms / edit["edit_ms"], "rows": rows}


if __name__ == "__main__":
    from bench.__main__ import report

    sys.exit(report("region", "cuda" if "--device=cuda" in sys.argv or "cuda" in sys.argv else "cpu",
                    "--quick" in sys.argv, {"region": run}))
