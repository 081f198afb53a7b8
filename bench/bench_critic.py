"""Benchmark the V-A critic per image against one SDXL image at EmotiCrafter's published settings.

    python -m bench critic [--device cuda] [--quick]      (from the repo root; ``python -m bench all`` runs every bench)
    python -m bench.bench_critic [--device cuda] [--quick] [--threads N]

Goal: scoring an image costs at most 1 % of rendering it.

* Critic: ``emo_core.critic.critic.VACritic`` with a full-size CLIP ViT-B/32 vision tower (transformers,
  random weights, fp32 as the reference) and the two heads, on one 1024x1024 image as ComfyUI hands it over:
  CLIP preprocessing (``pil``, the published pixels, and ``torch``), the forward and the heads, batch 1.
* One SDXL image: 25 steps with CFG = 50 UNet evaluations on a 128x128 latent (25 calls at batch 2), SDXL base's
  UNet at full size (diffusers UNet2DConditionModel, 2.6 B parameters, random weights). On a GPU one batch-2 call at
  128x128 is timed (fp16) and multiplied by 25. On a CPU a full call takes minutes, so the full-size UNet is timed at
  a smaller latent, batch 1, and scaled by the ratio of floating-point operations (counted by torch's FlopCounterMode
  on the meta device) of the real call to the timed one. On the CPU the UNet runs fp32 with all its weights views of
  one random buffer (full-size layers in ~60 MB instead of 10 GB). Scaling up from small calls overestimates the
  time (larger calls run more efficiently), so the goal is judged against a lower bound instead: the real call's
  FLOPs at the fastest rate this process reached (the timed UNet calls, or a large fp32 matrix product of SDXL's
  shapes); the critic's fraction is then if anything overestimated. The scaled estimate is reported beside it.
  VAE decode and text encoding are left out of the SDXL side (the fraction is again overestimated).
"""

from __future__ import annotations

import argparse
import sys

import torch

from bench import row, timed
from emo_core.critic.clip_b32 import B32_VISION_CONFIG, ClipB32Weights, vision_tower
from emo_core.critic.critic import VACritic
from emo_core.critic.heads import VAHead

GOAL = 0.01
STEPS, CFG_CALLS, LATENT, IMAGE = 25, 2, 128, 1024
SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 block_out_channels=(320, 640, 1280), transformer_layers_per_block=(1, 2, 10),
                 attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816)


def best_ms(fn, repeats: int, warmup: int, device: str) -> float:
    return min(timed(fn, repeats, warmup, device))


def critic_cost(device: str, repeats: int, seed: int) -> dict:
    """ms per image of the full critic on a 1024² image, per preprocessing mode."""
    torch.manual_seed(seed)
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    full = CLIPVisionModelWithProjection(CLIPVisionConfig(**B32_VISION_CONFIG))
    tower = vision_tower(ClipB32Weights("random ViT-B/32", full.state_dict(), B32_VISION_CONFIG)).to(device)
    del full
    heads = [VAHead(torch.randn(512) / 20, torch.tensor(0.0)) for _ in range(2)]
    image = torch.rand(1, IMAGE, IMAGE, 3, generator=torch.Generator().manual_seed(seed))

    @torch.inference_mode()
    def features(pixels):
        return tower(pixel_values=pixels.to(device))

    out = {"vision_params_m": sum(p.numel() for p in tower.parameters()) / 1e6}
    for resize in ("pil", "torch"):
        critic = VACritic(features, *heads, resize=resize)
        source = image.to(device) if resize == "torch" else image
        out[f"{resize}_ms"] = best_ms(lambda c=critic, s=source: c.predict(s), repeats, 2, device)
    return out


def unet_inputs(batch: int, latent: int, device: str, dtype: torch.dtype) -> tuple:
    def make(*shape):
        return torch.randn(*shape, device=device, dtype=dtype) if device != "meta" else torch.empty(
            *shape, device="meta", dtype=dtype)

    return (make(batch, 4, latent, latent), torch.tensor([500] * batch, device=device),
            make(batch, 77, 2048), {"text_embeds": make(batch, 1280), "time_ids": make(batch, 6)})


def unet_flops(unet, batch: int, latent: int) -> int:
    """Floating-point operations of one forward, counted on the meta device (no memory, no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    sample, t, context, added = unet_inputs(batch, latent, "meta", torch.float32)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        unet(sample, t, encoder_hidden_states=context, added_cond_kwargs=added)
    return counter.get_total_flops()


def shared_weights(module: torch.nn.Module, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    """Materialise a meta-device module on the CPU with every parameter a view of one seeded random buffer: each
    layer computes at full size (the values do not affect timing) in the memory of the largest parameter, not the
    10 GB of SDXL's UNet in fp32. If anything this runs faster than distinct weights (more cache hits), which
    makes the SDXL time smaller and the critic's fraction larger."""
    largest = max(p.numel() for p in module.parameters())
    pool = torch.randn(largest, generator=torch.Generator().manual_seed(seed)).mul_(0.02).to(dtype)
    for sub in module.modules():
        for name, p in list(sub.named_parameters(recurse=False)):
            sub._parameters[name] = torch.nn.Parameter(pool[:p.numel()].view(p.shape), requires_grad=False)
    return module.to_empty(device="cpu")  # buffers, if any


def sdxl_cost(device: str, quick: bool, seed: int) -> dict:
    """ms of one SDXL image: 25 batch-2 UNet calls at 128² (measured on a GPU, scaled from smaller measured calls
    of the full-size UNet on a CPU)."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_UNET)
    params_m = sum(p.numel() for p in unet.parameters()) / 1e6
    timed = [(CFG_CALLS, LATENT)] if device == "cuda" else ([(1, 8)] if quick else [(1, 24), (1, 32)])
    flops = {size: unet_flops(unet, *size) for size in {(CFG_CALLS, LATENT), *timed}}
    full_flops = flops[(CFG_CALLS, LATENT)]
    if device == "cuda":
        dtype = torch.float16  # as the published diffusers pipeline runs SDXL
        unet = torch.nn.Module.to(unet, dtype=dtype).to_empty(device=device)
        with torch.no_grad():
            for p in unet.parameters():
                p.normal_(0, 0.02, generator=torch.Generator(device=device).manual_seed(seed))
    else:
        dtype = torch.float32  # bf16 is slower than fp32 on most CPUs: it would flatter the critic
        unet = shared_weights(unet, dtype, seed)
    unet.eval()
    rates = []
    with torch.inference_mode():
        for batch, latent in timed:
            sample, t, context, added = unet_inputs(batch, latent, device, dtype)
            ms = best_ms(lambda s=sample, t=t, c=context, a=added: unet(s, t, encoder_hidden_states=c,
                                                                         added_cond_kwargs=a),
                         1 if device != "cuda" else 10, 2 if device != "cuda" else 3, device)
            count = flops[(batch, latent)]
            rates.append({"batch": batch, "latent": latent, "ms": ms, "gflop": count / 1e9,
                          "gflop_per_s": count / 1e6 / ms})
    best = max(r["gflop_per_s"] for r in rates)
    out = {"unet_params_m": params_m, "dtype": str(dtype).removeprefix("torch."), "full_call_gflop": full_flops / 1e9,
           "timed": rates, "scaled": device != "cuda", "scaled_image_ms": STEPS * full_flops / 1e6 / best}
    if device == "cuda":
        out["image_ms"] = out["scaled_image_ms"]  # measured at full size
    else:
        # Scaling up from small calls overestimates the time (larger calls run more efficiently), so the goal is
        # judged against a lower bound: the call's FLOPs at the fastest rate this machine reached, the UNet's own or
        # a large fp32 matrix product of SDXL's shapes (its 64x64-token feed-forward), whichever is higher.
        peak = gemm_rate(device, dtype)
        out["gemm_gflop_per_s"] = peak
        out["image_ms"] = STEPS * full_flops / 1e6 / max(best, peak)
    return out


def gemm_rate(device: str, dtype: torch.dtype) -> float:
    """GFLOP/s of a (4096 x 640) @ (640 x 5120) product: SDXL's feed-forward at its 64x64-token level."""
    a = torch.randn(4096, 640, device=device, dtype=dtype)
    b = torch.randn(640, 5120, device=device, dtype=dtype)
    ms = best_ms(lambda: a @ b, 3, 1, device)
    return 2 * 4096 * 640 * 5120 / 1e6 / ms


def run(device: str = "cpu", quick: bool = False, *, seed: int = 0) -> dict:
    critic = critic_cost(device, 3 if quick else 10, seed)
    sdxl = sdxl_cost(device, quick, seed)
    timed = ", ".join(f"B={r['batch']} {r['latent']}² latent {r['ms']:,.0f} ms ({r['gflop_per_s']:,.0f} GFLOP/s)"
                      for r in sdxl["timed"])
    how = f"measured: {timed}"
    if sdxl["scaled"]:
        how = (f"SDXL UNet call B=2 at 128² = {sdxl['full_call_gflop']:,.0f} GFLOP; the full-size UNet measured at "
               f"{timed} scales to {sdxl['scaled_image_ms'] / 1000:,.0f} s per image; the goal uses the lower bound "
               f"at the fastest rate seen (fp32 GEMM {sdxl['gemm_gflop_per_s']:,.0f} GFLOP/s): "
               f"{sdxl['image_ms'] / 1000:,.0f} s")
    print(f"  critic: pil {critic['pil_ms']:.1f} ms, torch {critic['torch_ms']:.1f} ms per 1024² image; SDXL "
          f"image {sdxl['image_ms'] / 1000:,.1f} s ({how})", file=sys.stderr)
    baseline = f"one SDXL 1024² image, {STEPS} steps + CFG ({sdxl['dtype']} UNet)"
    rows = [row("V-A critic per image (pil, published pixels)", "preprocess + ViT-B/32 + heads", critic["pil_ms"],
                baseline, sdxl["image_ms"], "ms", kind="fraction", goal=GOAL,
                note="SDXL: lower bound from FLOPs, see notes" if sdxl["scaled"] else ""),
            row("V-A critic per image (torch resize)", "preprocess + ViT-B/32 + heads", critic["torch_ms"],
                baseline, sdxl["image_ms"], "ms", kind="fraction", goal=GOAL)]
    return {"critic": critic, "sdxl": sdxl, "goal": GOAL, "rows": rows, "notes": [how]}


def main(argv=None) -> int:
    """This bench alone; ``python -m bench critic`` runs it with the defaults."""
    from bench.__main__ import report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="smaller timed UNet call, fewer repeats")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return report("critic", args.device, args.quick,
                  {"critic": lambda device, quick: run(device, quick, seed=args.seed)})


if __name__ == "__main__":
    sys.exit(main())
