"""Convert a published EmotiCrafter ``.pth`` into emo-nodes' ``.safetensors``.

    python -m emo_core convert-eit IN.pth OUT.safetensors [--heads N]

Strips the ``module.`` prefix, drops ``wte`` and the key/value two-thirds of every ``c_attn`` (the published forward
never uses them), checks every remaining key and shape, and stores the sizes and head count in the metadata.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import CheckpointError
from .eit_io import build_eit, convert_published_state_dict, read_eit_file, save_eit


def _params(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def convert(src: Path, dst: Path, heads: int | None = None) -> list[str]:
    """Convert ``src`` to ``dst``; returns the lines of a human-readable report."""
    sd, metadata = read_eit_file(src)
    if heads is None and metadata.get("n_head"):
        heads = int(metadata["n_head"])
    model = build_eit(sd, heads, source=str(src))  # validates everything before anything is written
    _, report = convert_published_state_dict(sd)
    save_eit(model, dst, extra_metadata={"converted_from": src.name})
    config = model.config
    kept = model.state_dict()
    lines = [f"read {src}: {len(sd)} tensors, {sum(t.numel() for t in sd.values()):,} values"]
    if report.stripped_prefix:
        lines.append("stripped the 'module.' prefix (DataParallel)")
    for key, shape in report.dropped.items():
        lines.append(f"dropped {key} {tuple(shape)}: {_params(shape):,} values (unused token embedding)")
    if report.sliced:
        lines.append(f"kept the query third of {len(report.sliced)} c_attn tensors as c_q (key/value thirds unused)")
    lines.append(f"kept {len(kept)} tensors, {sum(t.numel() for t in kept.values()):,} values: {config.n_layer} "
                 f"layers, width {config.n_embd}, {config.n_head} heads, {config.n_tokens} V-A tokens, "
                 f"{config.n_positions} positions, feature width {config.feature_dim}")
    lines.append(f"wrote {dst} ({dst.stat().st_size:,} bytes)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emo_core convert-eit",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="published EmotiCrafter checkpoint (.pth), or one of ours")
    parser.add_argument("dst", type=Path, help="output .safetensors")
    parser.add_argument("--heads", type=int, default=None, help="attention heads (default: width / 64, i.e. 12)")
    args = parser.parse_args(argv)
    if args.dst.suffix.lower() != ".safetensors":
        parser.error(f"output must end in .safetensors, got {args.dst}")
    try:
        for line in convert(args.src, args.dst, args.heads):
            print(line)
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0

