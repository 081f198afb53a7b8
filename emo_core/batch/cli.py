"""``python -m emo_core batch WORKFLOW.json --out DIR [jobs] [where]``: an API-format workflow over many jobs, on
one ComfyUI server or many (through Ray), resumable.

jobs (crossed with each other): --va V,A (repeat), --va-grid ROWSxCOLS (over [-3, 3]^2), --va-file CSV, --prompts
FILE (one neutral prompt a line, set on the CLIPTextEncode feeding Emotion Injection), --images FOLDER --target
CLASS (EmoEditor); --set 'TITLE:INPUT=JSON' and --seed N for every job.
where: --server URL (repeat; one ComfyUI each) and/or --ray local|ADDRESS (one actor per --server, or --comfyui DIR
--workers N [--gpus-per-worker 1]: actors that each start their own ComfyUI).

DIR gets the images and manifest.jsonl (one line per finished job); the same command again renders only what the
manifest lacks. Exit status: 0 when every job is done, 1 when some failed, 2 for a problem with the inputs (nothing
run), 130 after Ctrl-C (rerun to resume).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .errors import BatchError
from .jobs import expand
from .manifest import Manifest, settings_hash
from .scheduler import TRIES, LocalPool, drive, progress_line
from .workflow import apply_set, check_api, load_workflow, set_seeds


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emo_core batch", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("workflow", help="an API-format workflow (workflows/api/*.json)")
    p.add_argument("--out", required=True, help="folder for the images and manifest.jsonl")
    j = p.add_argument_group("jobs")
    j.add_argument("--va", action="append", default=[], metavar="V,A", help="a V-A point (repeat; --va=-1,2)")
    j.add_argument("--va-grid", metavar="ROWSxCOLS", help="points spread evenly over [-3, 3]^2 (5x5: -3, -1.5, ..3)")
    j.add_argument("--va-file", metavar="CSV", help="valence,arousal rows")
    j.add_argument("--prompts", metavar="FILE", help="one neutral prompt a line, crossed with the V-A points")
    j.add_argument("--images", metavar="FOLDER", help="source images for LoadImage (uploaded to each server)")
    j.add_argument("--target", metavar="CLASS", help="EmoEditor's target emotion (with --images)")
    j.add_argument("--set", action="append", default=[], metavar="TITLE:INPUT=JSON",
                   help="any other input, by node title or id, e.g. --set 'KSampler:steps=30'")
    j.add_argument("--seed", type=int, help="every seed input of the workflow")
    w = p.add_argument_group("where")
    w.add_argument("--server", action="append", default=[], metavar="URL", help="a ComfyUI server (repeat)")
    w.add_argument("--ray", metavar="local|ADDRESS", help="run through Ray: a local cluster, or a cluster's address")
    w.add_argument("--comfyui", metavar="DIR", help="with --ray: actors start DIR/main.py (the plugin in its "
                                                    "custom_nodes) on their nodes")
    w.add_argument("--workers", type=int, default=1, help="with --comfyui: how many (default 1)")
    w.add_argument("--gpus-per-worker", type=float, default=0, help="with --comfyui: GPUs per actor (e.g. 1)")
    w.add_argument("--comfyui-base", metavar="DIR", help="with --comfyui: its --base-directory")
    w.add_argument("--comfyui-args", default="", metavar="ARGS", help="with --comfyui: more arguments, one string")
    p.add_argument("--timeout", type=positive, metavar="SECONDS", help="fail a job not finished this long after it "
                                                                       "started (its prompt is cancelled)")
    p.add_argument("--idle", type=positive, default=30.0, metavar="SECONDS",
                   help="deadline of each network read (default 30)")
    p.add_argument("--tries", type=int, default=TRIES, help=f"runs of a job on servers that go away (default {TRIES})")
    p.add_argument("--resume-anyway", action="store_true", help="use an --out folder holding another run's manifest")
    p.add_argument("--verbose", action="store_true", help="node and step progress of every job")
    e = p.add_argument_group("evaluate (after the run)")
    e.add_argument("--evaluate", action="store_true", help="run `python -m emo_core evaluate DIR` on the images")
    e.add_argument("--clip", help="CLIP ViT-B/32 for --evaluate")
    e.add_argument("--valence-head", help="for --evaluate")
    e.add_argument("--arousal-head", help="for --evaluate")
    return p


def join_va(argv: list[str]) -> list[str]:
    """argparse would read the value of ``--va -2,-1`` as an option: pass it as ``--va=-2,-1``."""
    out, items = [], iter(argv)
    for item in items:
        out.append(f"--va={next(items, '')}" if item == "--va" else item)
    return out


def err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def plan(args) -> tuple[list, Manifest]:
    """Everything checked before a server is asked anything: the jobs, and the output folder's manifest."""
    if not args.server and not args.comfyui:
        raise BatchError("where to run: give --server URL (repeat for more) or --ray ... --comfyui DIR --workers N")
    if args.comfyui and not args.ray:
        raise BatchError("--comfyui needs --ray (local, or a cluster's address)")
    if args.comfyui and not (Path(args.comfyui) / "main.py").is_file():
        raise BatchError(f"--comfyui {args.comfyui!r}: no main.py there")
    if args.workers < 1 or args.tries < 1:
        raise BatchError("--workers and --tries must be at least 1")
    try:
        base = check_api(load_workflow(args.workflow), args.workflow)
    except (OSError, ValueError) as e:
        raise BatchError(f"{args.workflow}: {getattr(e, 'strerror', None) or e}") from None
    for item in args.set:
        apply_set(base, item)
    if args.seed is not None and not set_seeds(base, args.seed):
        raise BatchError("--seed: the workflow has no seed input")
    jobs = expand(base, Path(args.workflow).stem, args.va, args.va_grid, args.va_file, args.prompts, args.images,
                  args.target)
    settings = settings_hash({"workflow": base, "target": args.target})
    return jobs, Manifest(args.out, settings, args.resume_anyway)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(join_va(list(sys.argv[1:] if argv is None else argv)))
    try:
        jobs, manifest = plan(args)
    except BatchError as e:
        err(f"error: {e}")
        return 2
    todo = [job for job in jobs if not manifest.finished(job)]
    skipped = len(jobs) - len(todo)
    err(f"{len(jobs)} jobs" + (f", {skipped} already in {manifest.path}" if skipped else "") + f"; {len(todo)} to "
        f"render into {manifest.out}")
    log = err
    step_log = err if args.verbose else (lambda line: None)
    servers = [s.rstrip("/") for s in args.server]
    started_ray, pool, stats = False, None, None
    try:
        if args.ray and todo:
            from . import ray_runner

            started_ray = ray_runner.connect(args.ray, max(args.workers, 2) if args.comfyui else None)
            pool = ray_runner.RayPool(servers, args.comfyui, args.workers if args.comfyui else 0, args.comfyui_base,
                                      shlex.split(args.comfyui_args), args.gpus_per_worker, args.idle, log=log)
        elif todo:
            pool = LocalPool(servers, step_log, idle=args.idle)
        if pool is not None:
            stats = drive(pool, todo, manifest.record, log, args.timeout, args.tries,
                          progress=lambda s: err(progress_line(s)))
    except KeyboardInterrupt:
        done = sum(manifest.finished(job) for job in jobs)
        err(f"interrupted: {done}/{len(jobs)} jobs are in {manifest.path}; run the same command again to render "
            "the rest")
        return 130
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    for job in todo:
        if job.error is not None:
            print(f"{job.name}: FAILED: {job.error}")
    if stats is not None:
        for worker, reason in stats["retired"].items():
            err(f"worker {worker} retired: {reason}")
    failed = sum(job.error is not None for job in todo)
    done = sum(manifest.finished(job) for job in jobs)
    print(f"{done} done, {failed} failed" + (f" ({len(jobs) - done - failed} not run)" if done + failed < len(jobs)
                                              else ""))
    if args.evaluate:
        evaluate(args)
    return 1 if failed or done < len(jobs) else 0


def evaluate(args) -> None:
    critic = [args.clip, args.valence_head, args.arousal_head]
    if not all(critic):
        err("--evaluate: skipped (give --clip, --valence-head and --arousal-head to score the images)")
        return
    from ..evaluation.cli import main as evaluate_main

    evaluate_main([args.out, "--clip", args.clip, "--valence-head", args.valence_head,
                   "--arousal-head", args.arousal_head])
