"""Benchmark every exact EIT path at the full published size (12 layers, width 768, 12 heads, 77 tokens).

    python -m bench eit [--device cuda] [--quick] [--threads N]    (from the repo root; ``python -m bench all`` too)

Seeded random weights are built in-process (no files). The ways of computing the same function take turns within
every repeat (ABAB...), in one process; figures are medians of the repeats after one warm-up:
- ``published order``: the published op order re-created here (forward cases only, a reference): full 3x-wide
  ``c_attn`` (K/V thirds computed and discarded), manual softmax attention, explicit GELU formula, everything per row;
- ``plain``: our reference path (``fast=False``); ``fast (SDPA)`` / ``fast (folded)``: the fast path with each
  cross-attention forced; ``default``: what the nodes and the trainer run (``fold_cross=None``: the shape and
  device rule of ``emo_core.emoticrafter.eit_paths``).
Cases: B=1; a 5x5 V-A grid over one prompt; 25 different prompts on that grid (5 distinct values per stream); 25
different prompts with 25 distinct V-A points (the rule's crossover); a training step (B=32, train mode, dropout
0.1, one V-A point per row, forward + MSE + backward; the optimiser update is the same for every path). Each case
gets a row "default vs the fastest exact path" (goal: at most 5 % behind, **NOT met** flags it), forward cases also
the speed-up over the published order (goal 1.5x for 25 different prompts). The machine line states the CPU model,
cores, torch version, threads and the load average (other processes share the machine: above ~1.5 figures are
noisy). CPU: fp32 only (the rule does not depend on the dtype); CUDA: fp32 and bf16.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import statistics
import sys
import time

import torch

from bench import row, sync
from emo_core.emoticrafter.eit import EITConfig, EmotionInjectionTransformer, gelu_new
from emo_core.emoticrafter.eit_paths import use_folded

GOAL_B25 = 1.5  # default >= 1.5x the published order at B=25, 25 different prompts
GOAL_BEHIND = 1.05  # the default at most 5 % slower than the fastest exact path (medians, same process)
EXACT_PATHS = ("plain", "fast (SDPA)", "fast (folded)")
TRAIN_BATCH = 32
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


def inputs(batch: int, distinct: bool, dtype: torch.dtype, device: str, seed: int, distinct_va: bool = False):
    """(prompt embeds, valence, arousal); batch 25 is a 5x5 grid (rows arousal, columns valence), or with
    ``distinct_va`` one random point on [-3, 3]² per row."""
    gen = torch.Generator().manual_seed(seed)
    embeds = torch.randn(batch if distinct else 1, 77, 2048, generator=gen)
    if batch == 1:
        valence, arousal = torch.tensor([1.5]), torch.tensor([-1.5])
    elif distinct_va:
        valence, arousal = torch.rand(2, batch, generator=gen) * 6 - 3
    else:
        assert batch == len(GRID_VALUES) ** 2
        grid = torch.tensor(GRID_VALUES)
        valence, arousal = grid.repeat(5), grid.repeat_interleave(5)
    return tuple(t.to(device=device, dtype=dtype) for t in (embeds, valence, arousal))


def time_interleaved(paths: dict, repeats: int, device: str) -> tuple[dict[str, list[float]], dict]:
    """ms per call of each path, and each path's warm-up output. The paths take turns within every repeat so that
    load from other processes on a shared machine falls on all of them alike."""
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


def bench(device: str, dtype: torch.dtype, batch: int, distinct: bool, repeats: int, model, full_c_attn,
          distinct_va: bool = False):
    embeds, valence, arousal = inputs(batch, distinct, dtype, device, seed=7, distinct_va=distinct_va)
    full_embeds = embeds.expand(batch, -1, -1).contiguous()  # the published code gets one row per output
    paths = {
        "published order": lambda: published_order_forward(model, full_c_attn, full_embeds, valence[:, None],
                                                           arousal[:, None]),
        "plain": lambda: model(embeds, valence=valence, arousal=arousal, fast=False),
        "fast (SDPA)": lambda: _with_fold(model, False, embeds, valence, arousal),
        "fast (folded)": lambda: _with_fold(model, True, embeds, valence, arousal),
        "default": lambda: _with_fold(model, None, embeds, valence, arousal),  # what the nodes run
    }
    with torch.inference_mode():
        times, outputs = time_interleaved(paths, repeats, device)
    return _summary(times, outputs, "published order")


def bench_train_step(device: str, dtype: torch.dtype, repeats: int, model):
    """One training step (train mode, forward + MSE + backward) per path; outputs compared on the loss."""
    embeds, valence, arousal = inputs(TRAIN_BATCH, True, dtype, device, seed=11, distinct_va=True)
    target = embeds * 1.5

    def step(fast: bool, fold: bool | None):
        def run():
            model.zero_grad(set_to_none=True)
            torch.manual_seed(0)  # the same dropout masks for the paths that draw them in the same order
            model.fold_cross = fold
            loss = torch.nn.functional.mse_loss(model(embeds, valence=valence, arousal=arousal, fast=fast), target)
            loss.backward()
            return loss.detach().reshape(1)
        return run

    paths = {"plain": step(False, None), "fast (SDPA)": step(True, False), "fast (folded)": step(True, True),
             "default": step(True, None)}
    model.train()
    try:
        times, outputs = time_interleaved(paths, repeats, device)
    finally:
        model.eval()
        model.fold_cross = None
        model.zero_grad(set_to_none=True)
    return _summary(times, outputs, "plain")


def _summary(times: dict, outputs: dict, reference: str) -> dict:
    ref = outputs[reference].float()
    return {name: {"median_ms": statistics.median(ms), "min_ms": min(ms), "all_ms": ms,
                   f"max_abs_vs_{reference.replace(' ', '_')}": (outputs[name].float() - ref).abs().max().item()}
            for name, ms in times.items()}


def _with_fold(model, fold: bool | None, embeds, valence, arousal):
    previous, model.fold_cross = model.fold_cross, fold
    try:
        return model(embeds, valence=valence, arousal=arousal, fast=True)
    finally:
        model.fold_cross = previous


def rule_choice(device: str, batch: int, contexts: int, grad: bool = False) -> str:
    """The rule's pick for both streams of a case (full-size shapes), for the table."""
    cfg = EITConfig()
    fold = use_folded(torch.device(device).type, batch, contexts, 77, cfg.n_embd, cfg.n_head, cfg.n_tokens, grad)
    return "fast (folded)" if fold else "fast (SDPA)"


# (batch, 25 different prompts?, distinct V-A per row?, label); B=1 is one prompt either way
CASES = ((1, False, False, "B=1"), (25, False, False, "B=25, 5x5 V-A grid over one prompt"),
         (25, True, False, "B=25, 25 different prompts on the 5x5 grid"),
         (25, True, True, "B=25, 25 different prompts, 25 distinct V-A points"))


def machine_line(device: str) -> str:
    """CPU model, cores, torch version, threads, load average (and the GPU on CUDA)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if device == "cuda" else ""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"CPU {cpu} ({torch.backends.cpu.get_cpu_capability()}), {os.cpu_count()} cores, torch "
            f"{torch.__version__}, {torch.get_num_threads()} threads{gpu}; load average {load}")


def plan(device: str, quick: bool) -> tuple[int, int, int, list[torch.dtype]]:
    """(layers, forward repeats, training-step repeats, dtypes). A CPU forward takes up to ~2 s at B=25 and a
    training step ~10 s on 2 cores, so the CPU gets few repeats. --quick (smoke mode) runs 2 of the 12 layers."""
    layers = 2 if quick else 12
    if device == "cuda":
        return layers, (5 if quick else 30), (3 if quick else 10), [torch.float32, torch.bfloat16]
    return layers, (2 if quick else 4), (1 if quick else 3), [torch.float32]


def run(device: str = "cpu", quick: bool = False) -> dict:
    layers, repeats, train_repeats, dtypes = plan(device, quick)
    base_model, base_c_attn = build_model(seed=0, n_layer=layers)
    size = "" if layers == 12 else f" ({layers} layers: smoke mode, NOT the full size)"
    machine_before = machine_line(device)
    print(f"  eit: {machine_before}", file=sys.stderr, flush=True)
    cases, rows = [], []
    for dtype in dtypes:
        name = str(dtype).removeprefix("torch.")
        model = copy.deepcopy(base_model).to(device=device, dtype=dtype)
        c_attn = [(w.to(device, dtype), b.to(device, dtype)) for w, b in base_c_attn]
        for batch, distinct, distinct_va, label in CASES:
            res = bench(device, dtype, batch, distinct, repeats, model, c_attn, distinct_va)
            contexts = batch if distinct_va else (1 if batch == 1 else 5)
            rows += _rows(f"EIT forward {name} {label}{size}", res, rule_choice(device, batch, contexts))
            ms = {path: r["median_ms"] for path, r in res.items()}
            rows.append(row(f"EIT forward {name} {label}{size}", "default", ms["default"], "published order",
                            ms["published order"], "ms", goal=GOAL_B25 if distinct and not distinct_va else None,
                            note=f"max abs diff {res['default']['max_abs_vs_published_order']:.2g}"))
            cases.append({"dtype": name, "batch": batch, "distinct_prompts": distinct, "distinct_va": distinct_va,
                          "case": label, "results": res})
            _log(name, label, res)
        for module in model.modules():  # the published training dropout, on the same weights
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.1
            if hasattr(module, "dropout") and isinstance(module.dropout, float):
                module.dropout = 0.1
        label = f"training step B={TRAIN_BATCH} (forward + backward, dropout 0.1)"
        res = bench_train_step(device, dtype, train_repeats, model)
        rows += _rows(f"EIT {name} {label}{size}", res, rule_choice(device, TRAIN_BATCH, TRAIN_BATCH, grad=True))
        cases.append({"dtype": name, "batch": TRAIN_BATCH, "case": label, "results": res})
        _log(name, label, res)
        del model, c_attn
    machine_after = machine_line(device)
    behind = [r["case"] for r in rows if r["measured"] == "default" and r["baseline"] != "published order"
              and not r["goal_met"]]
    return {"layers": layers, "repeats": repeats, "train_repeats": train_repeats, "cases": cases, "rows": rows,
            "machine_before": machine_before, "machine_after": machine_after, "default_behind": behind,
            "notes": [f"machine at start: {machine_before}", f"machine at end: {machine_after}",
                      f"medians of {repeats} (training step: {train_repeats}) interleaved repeats after one "
                      "warm-up; 'default vs fastest exact path' goal: at most 5 % behind; the note names the "
                      "rule's pick (emo_core/emoticrafter/eit_paths.py) and every exact path's median",
                      "default more than 5 % behind the fastest exact path: "
                      + ("; ".join(behind) if behind else "none")]}


def _rows(case: str, res: dict, rule: str) -> list[dict]:
    """'default vs the fastest exact path' (a fraction: at most 105 %)."""
    ms = {path: res[path]["median_ms"] for path in EXACT_PATHS}
    fastest = min(ms, key=ms.get)
    detail = ", ".join(f"{path} {value:,.0f} ms" for path, value in ms.items())
    return [row(case, "default", res["default"]["median_ms"], f"fastest exact: {fastest}", ms[fastest], "ms",
                kind="fraction", goal=GOAL_BEHIND, note=f"rule picks {rule}; {detail}")]


def _log(dtype: str, label: str, res: dict) -> None:
    print(f"  eit: {dtype} {label}: " + ", ".join(f"{p} {r['median_ms']:.1f} ms" for p, r in res.items())
          + f"; load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
