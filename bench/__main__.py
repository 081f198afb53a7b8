"""Run emo-nodes' benchmarks: ``python -m bench all|eit|train|iei [--device cpu|cuda] [--quick] [--threads N]``.

Prints one markdown table (every figure against a baseline measured in the same process) and writes all results to
``bench/results/<name>-<timestamp>.json`` (git-ignored). Run from the repository root.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

from bench import BENCHES, PUBLISHED_CPU_REFERENCE, PUBLISHED_CPU_REFERENCE_TEXT, format_table

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str):
    module, function = BENCHES[name].split(":")
    return getattr(importlib.import_module(module), function)


def require_device(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"error: --device cuda, but CUDA is not available to this torch ({torch.__version__}, built "
                         f"for CUDA {torch.version.cuda or 'none'}, {torch.cuda.device_count()} devices visible)")
    if device not in ("cpu", "cuda"):
        raise SystemExit(f"error: --device must be cpu or cuda, got {device!r}")


def report(which: str, device: str, quick: bool, runners: dict) -> int:
    """Run ``runners`` (name -> ``run(device, quick)``) in order, print one table, write one JSON."""
    require_device(device)
    device_name = torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or platform.machine())
    header = (f"device {device} ({device_name}), {torch.get_num_threads()} CPU threads, torch {torch.__version__}"
              + (", --quick (smoke mode: figures NOT comparable to a full run)" if quick else ""))
    print(header, file=sys.stderr, flush=True)

    started = time.perf_counter()
    results, rows = {}, []
    for name, run in runners.items():
        print(f"== {name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        result = run(device, quick)
        result["wall_s"] = time.perf_counter() - t0
        print(f"== {name} done in {result['wall_s']:.0f} s", file=sys.stderr, flush=True)
        results[name] = result
        rows += [{"bench": name, **r} for r in result["rows"]]
    wall = time.perf_counter() - started

    print(f"\n{header}; " + ", ".join(f"{n} {r['wall_s']:.0f} s" for n, r in results.items())
          + f"; {wall:.0f} s in all\n")
    print(format_table(rows))
    for name, result in results.items():
        for line in result.get("notes", []):
            print(f"\n{name}: {line}")
    print(f"\nReference only, {PUBLISHED_CPU_REFERENCE_TEXT}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{which}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({
        "which": which, "device": device, "device_name": device_name, "quick": quick,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
        "wall_s": wall, "rows": rows, "results": results,
        "published_cpu_reference_not_run_here": PUBLISHED_CPU_REFERENCE}, indent=1, default=str))
    print(f"\nwrote {out}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=["all", *BENCHES], help="all benches, or one")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default: cpu)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: fewer repeats, 2-layer EIT (figures NOT comparable to a full run)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    require_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(BENCHES) if args.which == "all" else [args.which]
    return report(args.which, args.device, args.quick, {name: load(name) for name in names})


if __name__ == "__main__":
    sys.exit(main())
