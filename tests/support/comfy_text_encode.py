"""Encode prompts with ComfyUI's own ``CLIPTextEncode`` node on a checkpoint (in-process, CPU, test tooling).

Usage: python comfy_text_encode.py COMFYUI_DIR CHECKPOINT PROMPTS.json OUT.pt
PROMPTS.json is a list of strings; OUT.pt holds, per prompt, ``cond`` (1, 77·k, 2048) and ``pooled`` (1, 1280)
exactly as the node returns them. Runs in its own process: importing ComfyUI rewires sys.path and modules.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def encode(checkpoint: Path, prompts: list[str]) -> list[dict]:
    import comfy.sd
    import utils.extra_config  # noqa: F401  (before `nodes`: it puts comfy/ first on sys.path, shadowing utils)

    sys.path.insert(0, str(HERE))
    from tiny_models.configs import register

    register()
    import nodes

    _, clip, _, _ = comfy.sd.load_checkpoint_guess_config(str(checkpoint), output_vae=False, output_clip=True)
    out = []
    for text in prompts:
        ((cond, meta),) = nodes.CLIPTextEncode().encode(clip, text)[0]
        out.append({"text": text, "cond": cond.float(), "pooled": meta["pooled_output"].float()})
    return out


def write(checkpoint: Path, prompts_json: Path, out: Path) -> None:
    torch.save(encode(checkpoint, json.loads(prompts_json.read_text())), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comfy_dir", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("prompts", type=Path)
    parser.add_argument("out", type=Path)
    a = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from make_tiny_models import boot_comfy

    boot_comfy(a.comfy_dir)
    write(a.checkpoint, a.prompts, a.out)


if __name__ == "__main__":
    main()
