"""Benchmark the closed loop's best of K: K seeds rendered as one batch against K renders one after the other.

    python -m bench closed_loop [--device cuda] [--quick]     (from the repo root; ``python -m bench all`` runs all)
    python -m bench.bench_closed_loop [--device cuda] [--quick] [--k 8] [--size 64] [--repeats N]

Goal: best of K at K = 8 in one batch is at least 2x faster than K sequential renders.

Measured on the real ComfyUI dev host (tools/comfy_host.py, CPU unless --device cuda) with the tiny seeded SDXL and
EIT of the tests (tests/support/make_tiny_models.py), the published sampler settings except the size and step count
(euler + ddim_uniform, cfg 7.5; --size, default 64x64 as in the tests; 4 steps) and the scripted critic of the test
node pack (its cost is nil, so the figures are the rendering: EIT injection, K-diffusion sampling, VAE decode):

* batched: one prompt, Emotion Closed Loop in best_of_k mode with K candidates (one sampler call on a batch of K);
* sequential: K prompts, the same node with K = 1 and seeds seed .. seed + K - 1 (the same K images).

Each figure is the host's own execution time of the prompt (execution_start to execution_success in its history;
the models stay loaded, only the loop node runs), best of --repeats; the seeds change every repeat so nothing is
cached. The first prompt, which loads the models, is not timed. The tiny model at 64x64 is dominated by per-call
overhead, which batching removes; at a larger --size on a CPU the sampler becomes compute-bound and the ratio falls.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import row

ROOT = Path(__file__).resolve().parents[1]
GOAL = 2.0
STEPS = 4


def _tools() -> None:
    for folder in (ROOT / "tools", ROOT / "tests" / "support"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def loop_prompt(k: int, seed: int, size: int) -> dict:
    """Tiny EmotiCrafter graph -> scripted critic -> Emotion Closed Loop (best_of_k) -> PreviewAny of the trace."""
    _tools()
    import json

    from tiny_graph import for_tiny_models

    api = for_tiny_models(json.loads((ROOT / "workflows" / "api" / "emoticrafter_text_to_image.json").read_text()))
    api = {key: node for key, node in api.items() if key in ("1", "2", "3", "6", "7")}
    api["7"]["inputs"].update(width=size, height=size)
    api["20"] = {"class_type": "EmoTest_ScriptedCritic", "inputs": {
        "v_brightness": 6.0, "v_saturation": 0.0, "a_brightness": 0.0, "a_saturation": 6.0, "v_offset": -3.0,
        "a_offset": -3.0, "clip_scale": 100.0, "has_text": True}}
    api["21"] = {"class_type": "EmoNodes_VAClosedLoop", "inputs": {
        "model": ["1", 0], "vae": ["1", 2], "positive": ["2", 0], "negative": ["6", 0], "eit": ["3", 0],
        "critic": ["20", 0], "latent_image": ["7", 0], "valence": 2.0, "arousal": 1.0, "extrapolate": False,
        "seed": seed, "steps": STEPS, "cfg": 7.5, "sampler_name": "euler", "scheduler": "ddim_uniform",
        "denoise": 1.0, "mode": "best_of_k", "k": k, "gamma": 1.0, "tolerance": 0.25, "rounds": 0, "strength": 1.0,
        "clip_floor": 0.0, "prompt": ""}}
    api["22"] = {"class_type": "PreviewAny", "inputs": {"source": ["21", 2]}}
    return api


def executed_s(entry: dict) -> float:
    """The host's execution time of one prompt, from the timestamps (ms) in its history."""
    stamps = {kind: data["timestamp"] for kind, data in entry["status"]["messages"] if "timestamp" in data}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000


def measure(device: str, k: int, size: int, repeats: int) -> dict:
    _tools()
    from comfy_host import ComfyHost, ensure_tiny_models

    ensure_tiny_models()
    batched, sequential = [], []
    with ComfyHost(cpu=device != "cuda", test_nodes=True) as host:
        host.run(loop_prompt(1, 10_000, size), timeout=600)  # loads the models; not timed
        for repeat in range(repeats):
            seed = 1000 * (repeat + 1)
            batched.append(executed_s(host.run(loop_prompt(k, seed, size), timeout=600)))
            sequential.append(sum(executed_s(host.run(loop_prompt(1, seed + 500 + i, size), timeout=600))
                                  for i in range(k)))
            print(f"  repeat {repeat + 1}: batched {batched[-1]:.3f} s, sequential {sequential[-1]:.3f} s",
                  file=sys.stderr, flush=True)
    return {"batched_s": batched, "sequential_s": sequential}


def run(device: str = "cpu", quick: bool = False, k: int = 8, size: int = 64, repeats: int | None = None) -> dict:
    repeats = repeats or (1 if quick else 3)
    times = measure(device, k, size, repeats)
    best_batched, best_sequential = min(times["batched_s"]), min(times["sequential_s"])
    ratios = [s / b for b, s in zip(times["batched_s"], times["sequential_s"], strict=True)]
    where = "CPU" if device != "cuda" else "GPU"
    note = (f"tiny SDXL, {size}x{size}, {STEPS} steps, host execution time, best of {repeats}, {where}; "
            f"per-repeat ratios {min(ratios):.2f}x to {max(ratios):.2f}x")
    return {"rows": [row(f"best of K = {k}", "one batch of K", best_batched, f"{k} sequential renders",
                         best_sequential, "s", goal=GOAL, note=note)],
            "k": k, "size": size, "steps": STEPS, "device": device, "ratios": ratios, **times}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (a multiple of 8)")
    parser.add_argument("--repeats", type=int)
    args = parser.parse_args(argv)
    result = run(args.device, args.quick, args.k, args.size, args.repeats)
    for r in result["rows"]:
        print(f"{r['case']}: {r['measured']} {r['value']:.3f} s, {r['baseline']} {r['baseline_value']:.3f} s, "
              f"{r['ratio']:.2f}x ({r['note']})")


if __name__ == "__main__":
    main()
