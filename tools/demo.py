"""`make demo`: start the real ComfyUI host with emo-nodes, queue an example workflow, print the PNG's path.

With ``--checkpoint PATH`` (or EMO_SDXL_CHECKPOINT) the workflow runs on your SDXL checkpoint at the published
settings (1024², 25 steps); otherwise on the embedded tiny SDXL model written at first use (no downloads).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from comfy_host import HOST_DIR, ROOT, ComfyHost, ensure_tiny_models
from tiny_graph import for_tiny_models

DEFAULT_WORKFLOW = "emoticrafter_text_to_image"


def link_model(path: Path, folder: str) -> str:
    """Make a user's file visible to the dev host (a symlink; nothing is copied)."""
    link = HOST_DIR / "base" / "models" / folder / path.name
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(path.resolve())
    return path.name


def use_real_models(api: dict, checkpoint: Path, eit: Path | None) -> None:
    """The workflow already holds the published settings; only the file names change."""
    for node in api.values():
        inputs = node["inputs"]
        if "ckpt_name" in inputs:
            inputs["ckpt_name"] = link_model(checkpoint, "checkpoints")
        if "eit_name" in inputs:
            if eit is None:
                raise SystemExit("this workflow needs an EmotiCrafter EIT: pass EIT=/path/to/scale_factor_1.5.pth")
            inputs["eit_name"] = link_model(eit, "emoticrafter")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=os.environ.get("EMO_SDXL_CHECKPOINT") or None)
    parser.add_argument("--eit", type=Path, default=os.environ.get("EMO_EIT") or None)
    parser.add_argument("--workflow", default=DEFAULT_WORKFLOW, help="name of a file in workflows/api/")
    args = parser.parse_args()

    api = json.loads((ROOT / "workflows" / "api" / f"{args.workflow}.json").read_text())
    ui = json.loads((ROOT / "workflows" / f"{args.workflow}.json").read_text())
    if args.checkpoint:
        if not args.checkpoint.is_file():
            parser.error(f"checkpoint not found: {args.checkpoint}")
        use_real_models(api, args.checkpoint, args.eit)
        print(f"demo: SDXL checkpoint {args.checkpoint}")
    else:
        print("demo: no SDXL checkpoint configured (CKPT=... or EMO_SDXL_CHECKPOINT): using the tiny test models")
        ensure_tiny_models()
        api = for_tiny_models(api)

    start = time.monotonic()
    with ComfyHost(cpu=not args.checkpoint) as host:
        print(f"demo: ComfyUI ready at {host.url} after {time.monotonic() - start:.1f} s; queueing {args.workflow}")
        entry = host.run(api, workflow=ui, timeout=3600)
        paths = [host.output_path(f) for f in host.output_files(entry)]
    print(f"demo: done in {time.monotonic() - start:.1f} s")
    for path in paths:
        print(path)
    return 0 if paths else 1


if __name__ == "__main__":
    sys.exit(main())
