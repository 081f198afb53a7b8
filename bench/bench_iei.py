"""Benchmark EmoEditor's IEI overhead per attempt (critic + SSIM + bookkeeping) against the cost of one edit.

    python -m bench iei [--device cuda] [--quick]        (from the repo root; ``python -m bench all`` runs every bench)
    python -m bench.bench_iei [--device cuda] [--quick] [--threads N] [--attempts N] [--steps N] [--unet-reps N]

Goal: the work IEI adds to every attempt beyond the edit itself stays within 5% of one edit.
Second figure: IEI attempts per second with K attempts edited as one batch (K = 1, 4, 8), on one scripted
acceptance pattern (each attempt accepted with probability 0.2, seeded: 80 % rejections); goal >= 3x at K = 8 on a
GPU (on a CPU a batch of K costs about K edits, and discarded attempts make batching slower there).

* Overhead, measured with the real loop: ``emo_core.emoeditor.iei.run_iei`` with a no-op edit (pre-made 224-px
  images on the CPU, as ComfyUI hands IMAGEs over), the full-size ResNet-18 critic (``emo_core.emoeditor.predictor``,
  fp32 on the device) and the published SSIM (``emo_core.emoeditor.ssim``, numpy on the CPU), every edit
  rejected so the loop runs ``--attempts`` attempts; predictor and SSIM are also timed alone.
* One edit, at the published size (224 px, latent 28x28, 30 DDIM steps, batch 1, no CFG): the emotion encoder
  (full size), VAE encode of the init image, ``steps`` forwards of an SD 1.5-size 8-channel UNet (diffusers
  UNet2DConditionModel, 860 M parameters) and the VAE decode (SD VAE). The UNet is timed over ``--unet-reps``
  forwards and multiplied by the step count (the sampler's own bookkeeping is negligible next to it).

* Batched attempts: the real loop (``run_iei`` with ``batch_size`` K) runs the scripted pattern until 40 edits are
  accepted and reports which batches it edits (sizes 1 and K, discarded attempts included); every batch is charged
  the measured cost of an edit of that batch size (encoder + VAE encode once, ``steps`` UNet forwards and a VAE
  decode at batch n) and every attempt the measured critic + SSIM + bookkeeping time. A full run times the full-size
  UNet and the SD VAE at batch 1, 4 and 8; ``--quick`` times both at a tenth of their width (NOT comparable).

Best (minimum) times are reported: on a shared machine the minimum is the least disturbed measurement.
Seeded random weights; the edit runs fp32 on the CPU and fp16 on CUDA (as the published run). diffusers is a
dev/test-only dependency.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from bench import row, sync, timed
from emo_core.emoeditor.encoder import EmotionEncoder
from emo_core.emoeditor.iei import run_iei
from emo_core.emoeditor.predictor import EmotionPredictor
from emo_core.emoeditor.ssim import critic_ssim

GOAL = 0.05
SIZE, LATENT = 224, 28
SD15_UNET = dict(in_channels=8, out_channels=4, cross_attention_dim=768, attention_head_dim=8, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), sample_size=64)
SD_VAE = dict(latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
              down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)


def random_weights(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Materialise a meta-device module with seeded N(0, 0.02) weights (fast; values do not affect timing)."""
    module = module.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.02, generator=generator)
        for name, b in module.named_buffers():
            b.copy_(torch.ones_like(b) if "var" in name else torch.zeros_like(b))
    return module.eval()


def overhead(attempts: int, repeats: int, seed: int, device: str = "cpu") -> dict:
    """Per-attempt ms of the real IEI loop with a no-op edit, split into critic, SSIM and the rest (bookkeeping)
    by timing the calls inside the same runs (on a shared machine separate runs disagree)."""
    predictor = EmotionPredictor().eval().to(device)
    generator = torch.Generator().manual_seed(seed)
    source = torch.rand(1, SIZE, SIZE, 3, generator=generator)
    edits = [(source + 0.3 * torch.randn(source.shape, generator=generator)).clamp(0, 1) for _ in range(attempts)]
    spent = {"predict": 0.0, "ssim": 0.0}

    def clocked(name, fn):
        def wrapper(*args):
            start = time.perf_counter()
            out = fn(*args)
            sync(device)
            spent[name] += (time.perf_counter() - start) * 1000
            return out
        return wrapper

    predict = clocked("predict", predictor.predict)
    ssim = clocked("ssim", critic_ssim)
    with torch.inference_mode():
        source_prediction = predictor.predict(source)
        for _ in range(5):  # CPU kernels warm up over the first calls
            predictor.predict(edits[0])
        runs = []
        for _ in range(repeats):
            spent.update(predict=0.0, ssim=0.0)
            start = time.perf_counter()
            # empty SSIM band (its test is strict) and confidence 1 never reached: exactly ``attempts`` attempts
            run_iei(source, "awe", lambda init, direction, k: edits[k], predict, ssim,
                    source_prediction=source_prediction, max_attempts=attempts, max_accepted=10 ** 6,
                    confidence=1.0, ssim_band=(1.0, 1.0), keep_attempt_images=True)
            total = (time.perf_counter() - start) * 1000
            runs.append({"per_attempt_ms": total / attempts, "predictor_ms": spent["predict"] / attempts,
                         "ssim_ms": spent["ssim"] / attempts,
                         "bookkeeping_ms": (total - spent["predict"] - spent["ssim"]) / attempts})
    best = min(runs, key=lambda r: r["per_attempt_ms"])
    return {**best, "runs": runs}


def edit_models(seed: int, device: str, unet_config: dict = SD15_UNET, vae_config: dict = SD_VAE) -> tuple:
    """(unet, vae, encoder, dtype) with seeded random weights; fp16 on CUDA (as published), fp32 on the CPU."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config)
        vae = AutoencoderKL(**vae_config)
    dtype = torch.float16 if device == "cuda" else torch.float32
    # nn.Module.to: diffusers' own .to() warns about casting (it expects from_pretrained(torch_dtype=...))
    unet = torch.nn.Module.to(random_weights(unet, seed), device, dtype)
    vae = torch.nn.Module.to(random_weights(vae, seed + 1), device, dtype)
    return unet, vae, EmotionEncoder().eval().to(device, dtype), dtype


def edit_cost(steps: int, unet_reps: int, seed: int, device: str = "cpu") -> dict:
    unet, vae, encoder, dtype = edit_models(seed, device)
    generator = torch.Generator().manual_seed(seed)
    image = (torch.rand(1, 3, SIZE, SIZE, generator=generator) * 2 - 1).to(device, dtype)
    latent = torch.randn(1, 4, LATENT, LATENT, generator=generator).to(device, dtype)
    direction = torch.randn(8, generator=generator).to(device, dtype)
    warmup = 3 if device == "cuda" else 1
    with torch.inference_mode():
        tokens = encoder(direction)
        unet_input = torch.cat([latent, latent], dim=1)
        t = torch.tensor([500], device=device)
        unet_ms = timed(lambda: unet(unet_input, t, encoder_hidden_states=tokens), unet_reps, warmup, device)
        vae_reps = max(1, unet_reps // 2)
        encode_ms = timed(lambda: vae.encode(image).latent_dist.mode(), vae_reps, warmup, device)
        decode_ms = timed(lambda: vae.decode(latent), vae_reps, warmup, device)
        encoder_ms = timed(lambda: encoder(direction), 5, device=device)
    parts = {"encoder_ms": min(encoder_ms), "vae_encode_ms": min(encode_ms), "unet_step_ms": min(unet_ms),
             "vae_decode_ms": min(decode_ms), "unet_step_all_ms": unet_ms}
    parts["edit_ms"] = (parts["encoder_ms"] + parts["vae_encode_ms"] + steps * parts["unet_step_ms"]
                        + parts["vae_decode_ms"])
    parts["unet_params_m"] = sum(p.numel() for p in unet.parameters()) / 1e6
    parts["dtype"] = str(dtype).removeprefix("torch.")
    return parts


def batch_costs(sizes, steps: int, reps: int, seed: int, device: str, quick: bool) -> dict:
    """ms of one batched edit of n attempts for each n: encoder + VAE encode (once per batch), ``steps`` UNet
    forwards and the VAE decode at batch n, each timed (best of ``reps``). Full size, or scaled for --quick."""
    scaled = dict(block_out_channels=(32, 64, 128, 128))
    unet, vae, encoder, dtype = edit_models(seed, device, {**SD15_UNET, **scaled} if quick else SD15_UNET,
                                            {**SD_VAE, **scaled} if quick else SD_VAE)
    generator = torch.Generator().manual_seed(seed)
    image = (torch.rand(1, 3, SIZE, SIZE, generator=generator) * 2 - 1).to(device, dtype)
    direction = torch.randn(8, generator=generator).to(device, dtype)
    warmup = 3 if device == "cuda" else 1
    costs = {}
    with torch.inference_mode():
        tokens = encoder(direction)
        fixed = min(timed(lambda: encoder(direction), reps, warmup, device)) + \
            min(timed(lambda: vae.encode(image).latent_dist.mode(), reps, warmup, device))
        for n in sizes:
            latent = torch.randn(n, 4, LATENT, LATENT, generator=generator).to(device, dtype)
            unet_input, t = torch.cat([latent, latent], dim=1), torch.full((n,), 500, device=device)
            context = tokens.expand(n, -1, -1)
            unet_ms = min(timed(lambda x=unet_input, t=t, c=context: unet(x, t, encoder_hidden_states=c), reps,
                                warmup, device))
            decode_ms = min(timed(lambda z=latent: vae.decode(z), reps, warmup, device))
            costs[n] = {"unet_ms": unet_ms, "vae_decode_ms": decode_ms,
                        "edit_ms": fixed + steps * unet_ms + decode_ms}
    return costs


def scripted_schedule(batch: int, accepted: int = 40, p_accept: float = 0.2, seed: int = 0) -> dict:
    """The real loop on the scripted pattern: attempt k is accepted iff a seeded draw for k is under p_accept (SSIM
    in the band, never confident). Returns the batch sizes it edits and the attempts it scores."""
    draws = torch.rand(100_000, generator=torch.Generator().manual_seed(seed)).tolist()
    sizes = []

    def edit_batch(init, direction, attempts):
        sizes.append(len(attempts))
        return [("edit", k) for k in attempts]

    result = run_iei("source", "awe", lambda init, direction, k: edit_batch(init, direction, [k])[0],
                     lambda image: torch.full((8,), 1 / 8),
                     lambda source, image: 0.6 if image != "source" and draws[image[1]] < p_accept else 0.9,
                     source_prediction=torch.full((8,), 1 / 8), max_attempts=None, max_accepted=accepted + 1,
                     confidence=1.0, batch_size=batch, edit_batch=edit_batch, keep_attempt_images=False)
    return {"sizes": sizes, "attempts": result.attempts, "edits": sum(sizes), "discarded": result.discarded_edits}


def batched_throughput(costs: dict, per_attempt_ms: float, batches=(1, 4, 8)) -> dict:
    """Attempts per second of each K: the scripted schedule priced with the measured costs."""
    out = {}
    for k in batches:
        plan_k = scripted_schedule(k)
        total_ms = sum(costs[n]["edit_ms"] for n in plan_k["sizes"]) + plan_k["attempts"] * per_attempt_ms
        out[k] = {**plan_k, "sizes": sorted(set(plan_k["sizes"])), "total_s": total_ms / 1000,
                  "attempts_per_s": plan_k["attempts"] / (total_ms / 1000)}
    return out


def plan(device: str, quick: bool) -> tuple[int, int, int]:
    """(IEI attempts per timed loop, timed loops, timed UNet forwards). An 860 M UNet forward takes ~4 s on 2 CPU
    cores and milliseconds on a GPU."""
    if device == "cuda":
        return 20, (2 if quick else 5), (5 if quick else 20)
    return (10, 1, 1) if quick else (20, 4, 4)


def run(device: str = "cpu", quick: bool = False, *, attempts: int = 0, steps: int = 30, unet_reps: int = 0,
        seed: int = 0) -> dict:
    default_attempts, repeats, default_unet_reps = plan(device, quick)
    attempts, unet_reps = attempts or default_attempts, unet_reps or default_unet_reps
    over = overhead(attempts, repeats, seed, device)
    edit = edit_cost(steps, unet_reps, seed, device)
    batches = (1, 4, 8)
    sizes = sorted({n for k in batches for n in scripted_schedule(k)["sizes"]})
    costs = batch_costs(sizes, steps, max(1, unet_reps // 2), seed, device, quick)
    throughput = batched_throughput(costs, over["per_attempt_ms"], batches)
    parts = [
        ("critic: ResNet-18 on a 224-px edit", over["predictor_ms"]),
        ("SSIM (uint8 truncation, grey, 51x51 window)", over["ssim_ms"]),
        ("bookkeeping (run_iei, trace, lists)", over["bookkeeping_ms"]),
        ("IEI overhead per attempt (measured loop)", over["per_attempt_ms"]),
        ("edit: emotion encoder (46 M)", edit["encoder_ms"]),
        ("edit: VAE encode 224 px", edit["vae_encode_ms"]),
        (f"edit: UNet {edit['unet_params_m']:.0f} M x {steps} steps", steps * edit["unet_step_ms"]),
        ("edit: VAE decode 28x28 latent", edit["vae_decode_ms"]),
        ("one edit", edit["edit_ms"]),
    ]
    print("  iei: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in parts), file=sys.stderr, flush=True)
    rows = [row("IEI overhead per attempt", "critic + SSIM + bookkeeping", over["per_attempt_ms"],
                f"one {edit['dtype']} edit ({steps} steps)", edit["edit_ms"], "ms", kind="fraction", goal=GOAL,
                note=f"critic {over['predictor_ms']:.1f} ms, SSIM {over['ssim_ms']:.1f} ms")]
    scale = "UNet and VAE at 1/10 width (--quick)" if quick else f"{edit['unet_params_m']:.0f} M UNet, SD VAE"
    base = throughput[1]
    for k in batches[1:]:
        ours = throughput[k]
        rows.append(row(f"IEI attempts/s, batch K = {k}", f"K = {k}", 1 / ours["attempts_per_s"],
                        "K = 1", 1 / base["attempts_per_s"], "s/attempt", goal=3.0 if k == 8 else None,
                        note=f"{scale}, {ours['attempts']} attempts, 80 % rejected, {ours['discarded']} edits "
                             f"discarded"))
    notes = [f"best of {repeats} loops of {attempts} attempts; one edit = emotion encoder + VAE encode + {steps} x "
             f"UNet (best of {unet_reps}) + VAE decode: " + ", ".join(f"{n} {ms:,.1f} ms" for n, ms in parts[4:]),
             f"batched edits ({scale}, {steps} steps), ms per edit call of n attempts: " + ", ".join(
                 f"n={n}: {c['edit_ms']:,.0f} (UNet {c['unet_ms']:,.1f}/step, decode {c['vae_decode_ms']:,.1f})"
                 for n, c in costs.items()) + "; attempts/s: " + ", ".join(
                 f"K={k}: {t['attempts_per_s']:.4g}" for k, t in throughput.items())]
    return {"steps": steps, "attempts": attempts, "repeats": repeats, "unet_reps": unet_reps, "overhead": over,
            "edit": edit, "ratio": over["per_attempt_ms"] / edit["edit_ms"], "goal": GOAL, "parts_ms": dict(parts),
            "batch_costs_ms": costs, "batched": throughput,
            "rows": rows, "notes": notes}


def main(argv=None) -> int:
    """This bench alone with its knobs; ``python -m bench iei`` runs it with the defaults."""
    from bench.__main__ import report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--attempts", type=int, default=0, help="IEI attempts per timed loop (default 20)")
    parser.add_argument("--steps", type=int, default=30, help="DDIM steps per edit (published: 30)")
    parser.add_argument("--unet-reps", type=int, default=0, help="timed UNet forwards")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return report("iei", args.device, args.quick, {"iei": lambda device, quick: run(
        device, quick, attempts=args.attempts, steps=args.steps, unet_reps=args.unet_reps, seed=args.seed)})


if __name__ == "__main__":
    sys.exit(main())
