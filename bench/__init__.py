"""emo-nodes benchmarks: ``python -m bench all|eit|train|iei [--device cuda] [--quick]`` (from the repo root).

Every bench module is registered in ``BENCHES`` as ``"module:function"``; the function is called as
``run(device: str, quick: bool) -> dict`` and returns ``{"rows": [row(...), ...], ...details}``. Each row compares a
figure measured in this process against a baseline measured in the same process (never against figures from
elsewhere); ``__main__`` prints all rows as one markdown table and writes everything to ``bench/results/``.
"""

from __future__ import annotations

# One line per bench: name -> "module:function". Order is the order of ``python -m bench all``.
BENCHES: dict[str, str] = {
    "eit": "bench.bench_eit:run",  # EIT forward, full published size
    "train": "bench.train_suite:run",  # EIT training step, full published size (wraps bench/bench_train.py)
    "iei": "bench.bench_iei:run",  # EmoEditor IEI overhead per attempt against one edit
    "closed_loop": "bench.bench_closed_loop:run",  # V-A closed loop: best of K as one batch vs K renders
    "critic": "bench.bench_critic:run",  # V-A critic per image against one SDXL image (published settings)
    "editor_train": "bench.bench_editor_train:run",  # EmoEditor training step, SD 1.5 size: published vs ours
    "esmi": "bench.bench_esmi:run",  # ESMI per pair against one 30-step edit
    "batch": "bench.bench_batch:run",  # batch: 25 jobs over 2 ComfyUI workers vs 1; driver overhead per job
    "region": "bench.bench_region:run",  # Emotion Region per image, and what a mask adds, against one edit
}

# The published modules measured on this project's CPU class (2-core x86-64, fp32, torch default threads). Printed
# as labelled references only: no figure in the table is computed from these.
PUBLISHED_CPU_REFERENCE = {
    "eit_forward_b1_ms": 192.0,
    "eit_forward_b25_ms": 3600.0,
    "train_step_b32_s": 13.9,
}
PUBLISHED_CPU_REFERENCE_TEXT = ("published modules on a 2-core x86-64 CPU, fp32 (NOT run here): EIT forward B=1 "
                                "192 ms, B=25 3.6 s; EIT training step B=32 13.9 s")


def row(case: str, measured: str, value: float, baseline: str, baseline_value: float, unit: str, *,
        kind: str = "speedup", goal: float | None = None, note: str = "") -> dict:
    """One table row. ``kind="speedup"``: ratio = baseline / measured (higher is better, goal is a minimum);
    ``kind="fraction"``: ratio = measured / baseline (lower is better, goal is a maximum)."""
    if kind not in ("speedup", "fraction"):
        raise ValueError(f"kind must be 'speedup' or 'fraction', got {kind!r}")
    ratio = baseline_value / value if kind == "speedup" else value / baseline_value
    met = None if goal is None else (ratio >= goal if kind == "speedup" else ratio <= goal)
    return {"case": case, "measured": measured, "value": value, "baseline": baseline,
            "baseline_value": baseline_value, "unit": unit, "kind": kind, "ratio": ratio, "goal": goal,
            "goal_met": met, "note": note}


def _figure(value: float, unit: str) -> str:
    return f"{value:,.1f} {unit}" if value >= 10 else f"{value:.3g} {unit}"


def format_table(rows: list[dict]) -> str:
    """Markdown table of ``rows`` (each a :func:`row` plus a ``bench`` key)."""
    lines = ["| bench | case | measured | baseline (same run) | ratio | goal |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["kind"] == "speedup":
            ratio = f"{r['ratio']:.2f}x faster"
            goal = "" if r["goal"] is None else f">= {r['goal']:g}x"
        else:
            ratio = f"{r['ratio']:.2%} of baseline"
            goal = "" if r["goal"] is None else f"<= {r['goal']:.0%}"
        if r["goal_met"] is not None:
            goal += " met" if r["goal_met"] else " **NOT met**"
        case = r["case"] + (f" ({r['note']})" if r["note"] else "")
        lines.append(f"| {r['bench']} | {case} | {r['measured']}: {_figure(r['value'], r['unit'])} | "
                     f"{r['baseline']}: {_figure(r['baseline_value'], r['unit'])} | {ratio} | {goal} |")
    return "\n".join(lines)


def sync(device: str) -> None:
    """Wait for queued device work, so wall-clock timing covers it."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed(fn, repeats: int, warmup: int = 5, device: str = "cpu") -> list[float]:
    """Wall times in ms after ``warmup`` untimed calls (kernels warm up over the first few calls)."""
    import time

    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return times
