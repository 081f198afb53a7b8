"""Benchmark the EIT forward at the full published size (12 layers, width 768, 12 heads, 77 tokens).

    python -m bench eit [--device cuda] [--quick]         (from the repo root; ``python -m bench all`` runs every bench)

Seeded random weights are built in-process (no files). Four ways of computing the same function are timed in turns
in the same process, eval mode, no autograd:
- ``published order``: the published op order re-created here: full 3x-wide ``c_attn`` (K/V thirds computed and
  discarded), manual softmax attention, explicit GELU formula, everything per row;
- ``plain``: our reference path (``fast=False``): as above without the dead ``c_attn`` columns;
- ``fast (SDPA)``: our fast path with SDPA cross-attention; ``fast``: the default fast path (folded cross-attention).
Cases: B=1; B=25 as a 5x5 V-A grid over one prompt (as the published 5x5 figures); B=25 as 25 different prompts on
the same grid (the goal metric: fast >= 1.5x the published order).
"""

from __future__ import annotations

import copy
import math
import statistics
import sys
import time

import torch

from bench import row, sync
from emo_core.emoticrafter.eit import EITConfig, EmotionInjectionTransformer, gelu_new

GOAL_B25 = 1.5  # fast >= 1.5x the published order at B=25, 25 different prompts
GRID_VALUES = (-3.0, -1.5, 0.0, 1.5, 3.0)


def build_model(seed: int, n_layer: int = 12) -> tuple[EmotionInjectionTransformer,
                                                      list[tuple[torch.Tensor, torch.Tensor]]]:
    """Full-width EIT (``n_layer`` blocks) with seeded weights, plus full-width c_attn (weight, bias) per attention
    for the published op order (its first third is the model's c_q, the rest random)."""
    torch.manual_seed(seed)
    model = EmotionInjectionTransformer(EITConfig(n_layer=n_layer)).eval()
    full_c_attn = []
    for block in model.h:
        for attn in (block.attn, block.attn_a, block.attn_v):
            width = attn.c_q.weight.shape[0]
            extra_w = torch.randn(width, 2 * width) * 0.02
            full_c_attn.append((torch.cat([attn.c_q.weight.detach(), extra_w], dim=1).contiguous(),
                                torch.cat([attn.c_q.bias.detach(), torch.zeros(2 * width)])))
    return model, full_c_attn


def published_order_forward(model: EmotionInjectionTransformer, full_c_attn, embeds, valence, arousal):
    """The published forward's op order and cost (reference for timing only; parity lives in the tests)."""
    cfg = model.config
    batch, length, _ = embeds.shape
    heads, dim = cfg.n_head, cfg.head_dim

    def attention(module, c_attn, x, z):
        weight, bias = c_attn
        q = torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight).view(batch, -1, 3 * cfg.n_embd)
        q = q.split(cfg.n_embd, dim=2)[0]  # K and V thirds computed, then discarded
        k, v = module.c_z(z).split(cfg.n_embd, dim=2)
        q, k, v = (t.reshape(batch, -1, heads, dim).permute(0, 2, 1, 3) for t in (q, k, v))
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dim)
        out = torch.matmul(w.softmax(dim=-1), v).permute(0, 2, 1, 3).reshape(batch, -1, cfg.n_embd)
        return module.c_proj(out)

    def va_tokens(mlp, value):
        return model.attn_proj(mlp(value).view(batch, cfg.n_tokens, cfg.n_embd))

    a_tok, v_tok = va_tokens(model.a_f, arousal), va_tokens(model.v_f, valence)
    h = model.xl_feature2gpt_feature(embeds) + model.wpe.weight[:length]
    for i, block in enumerate(model.h):
        n = block.ln_1(h)
        h = n + attention(block.attn, full_c_attn[3 * i], n, n)
        n = block.ln_a(h)
        h = n + attention(block.attn_a, full_c_attn[3 * i + 1], n, a_tok)
        n = block.ln_v(h)
        h = n + attention(block.attn_v, full_c_attn[3 * i + 2], n, v_tok)
        h = h + block.mlp.c_proj(gelu_new(block.mlp.c_fc(block.ln_2(h))))
    return embeds + model.ln_xl_feature(model.gpt_feature2xl_feature(model.ln_f(h)))


def inputs(batch: int, distinct: bool, dtype: torch.dtype, device: str, seed: int):
    """(prompt embeds, valence, arousal); batch 25 is a 5x5 grid (rows arousal, columns valence)."""
    gen = torch.Generator().manual_seed(seed)
    embeds = torch.randn(batch if distinct else 1, 77, 2048, generator=gen)
    if batch == 1:
        valence, arousal = torch.tensor([1.5]), torch.tensor([-1.5])
    else:
        assert batch == len(GRID_VALUES) ** 2
        grid = torch.tensor(GRID_VALUES)
        valence, arousal = grid.repeat(5), grid.repeat_interleave(5)
    return tuple(t.to(device=device, dtype=dtype) for t in (embeds, valence, arousal))



def time_interleaved(paths: dict, repeats: int, device: str) -> tuple[dict[str, list[float]], dict]:
    """ms per call of each path, and each path's warm-up output. The paths take turns within every repeat so that
    load from other processes on a shared machine falls on all of them alike (the minimum is the least disturbed
    figure)."""
    outputs = {name: fn() for name, fn in paths.items()}  # warm-up: allocator, page faults, kernel selection
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append((time.perf_counter() - start) * 1000)
    return times, outputs


def bench(device: str, dtype: torch.dtype, batch: int, distinct: bool, repeats: int, model, full_c_attn):
    embeds, valence, arousal = inputs(batch, distinct, dtype, device, seed=7)
    full_embeds = embeds.expand(batch, -1, -1).contiguous()  # the published code gets one row per output
    paths = {
        "published order": lambda: published_order_forward(model, full_c_attn, full_embeds, valence[:, None],
                                                           arousal[:, None]),
        "plain": lambda: model(embeds, valence=valence, arousal=arousal, fast=False),
        "fast (SDPA)": lambda: _with_fold(model, False, embeds, valence, arousal),
        "fast (folded)": lambda: _with_fold(model, True, embeds, valence, arousal),
        "fast": lambda: _with_fold(model, None, embeds, valence, arousal),  # the per-call choice the nodes use
    }
    results = {}
    with torch.inference_mode():
        times, outputs = time_interleaved(paths, repeats, device)
        reference = outputs["published order"].float()
        for name, ms in times.items():
            results[name] = {"min_ms": min(ms), "median_ms": statistics.median(ms), "all_ms": ms,
                             "max_abs_vs_published": (outputs[name].float() - reference).abs().max().item()}
    return results


def _with_fold(model, fold: bool | None, embeds, valence, arousal):
    previous, model.fold_cross = model.fold_cross, fold
    try:
        return model(embeds, valence=valence, arousal=arousal, fast=True)
    finally:
        model.fold_cross = previous


# (batch, 25 different prompts?, label); B=1 is one prompt either way
CASES = ((1, False, "B=1"), (25, False, "B=25, 5x5 V-A grid over one prompt"),
         (25, True, "B=25, 25 different prompts"))


def plan(device: str, quick: bool) -> tuple[int, int, list[torch.dtype]]:
    """(layers, timed repeats, dtypes). A GPU forward takes milliseconds; a CPU one up to seconds (B=25 published
    order ~3.6 s on 2 cores), so the CPU gets few repeats. --quick (smoke mode) runs 2 of the 12 layers, and on the
    CPU fp32 only."""
    layers = 2 if quick else 12
    if device == "cuda":
        return layers, (5 if quick else 30), [torch.float32, torch.bfloat16]
    return layers, (2 if quick else 3), ([torch.float32] if quick else [torch.float32, torch.bfloat16])


def run(device: str = "cpu", quick: bool = False) -> dict:
    layers, repeats, dtypes = plan(device, quick)
    base_model, base_c_attn = build_model(seed=0, n_layer=layers)
    size = "" if layers == 12 else f" ({layers} layers: smoke mode, NOT the full size)"
    cases, rows = [], []
    for dtype in dtypes:
        model = copy.deepcopy(base_model).to(device=device, dtype=dtype)
        c_attn = [(w.to(device, dtype), b.to(device, dtype)) for w, b in base_c_attn]
        for batch, distinct, label in CASES:
            res = bench(device, dtype, batch, distinct, repeats, model, c_attn)
            name = str(dtype).removeprefix("torch.")
            cases.append({"dtype": name, "batch": batch, "distinct_prompts": distinct, "case": label,
                          "results": res})
            ms = {path: r["min_ms"] for path, r in res.items()}
            rows.append(row(f"EIT forward {name} {label}{size}", "fast", ms["fast"], "published order",
                            ms["published order"], "ms",
                            goal=GOAL_B25 if distinct and layers == 12 else None,
                            note=f"plain {ms['published order'] / ms['plain']:.2f}x, fast (SDPA) "
                                 f"{ms['published order'] / ms['fast (SDPA)']:.2f}x; max abs diff "
                                 f"{res['fast']['max_abs_vs_published']:.2g}"))
            print(f"  eit: {name} {label}: " + ", ".join(f"{p} {v:.1f} ms" for p, v in ms.items()),
                  file=sys.stderr, flush=True)
        del model, c_attn
    return {"layers": layers, "repeats": repeats, "cases": cases, "rows": rows,
            "notes": [f"best of {repeats} interleaved repeats after one warm-up; 'plain' and 'fast (SDPA)' are the "
                      "other two paths' speed-ups over the published order; max abs diff is fast vs published "
                      "order"]}
