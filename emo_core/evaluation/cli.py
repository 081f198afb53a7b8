"""``python -m emo_core evaluate FOLDER --clip CLIP --valence-head H --arousal-head H``: EmotiCrafter's metrics over
a folder of images named ``V-A (v,a) | prompt.png`` (or ``V-A (v,a) _ prompt.png``), as the 5x5 protocol writes
them, or of the cells of one ComfyUI grid run (told by the workflow in each PNG). Prints the paper's table
(mean ± std V-Error, A-Error, CLIPScore) and writes ``emotion_metrics.json`` and ``emotion_metrics.png`` (error per
V-A cell) next to the images. See emo_core.evaluation.folder."""

from __future__ import annotations

import argparse
import sys

from ..critic.critic import load_va_critic
from ..critic.preprocess import RESIZE_METHODS
from .folder import RESULTS, evaluate_folder
from .metrics import format_table


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emo_core evaluate", description=__doc__.splitlines()[0])
    p.add_argument("folder", help="folder of images named 'V-A (v,a) | prompt.png' or 'V-A (v,a) _ prompt.png', or "
                                  "the cells one ComfyUI grid run saved")
    p.add_argument("--clip", required=True, help="CLIP ViT-B/32, Hugging Face file (openai/clip-vit-base-patch32)")
    p.add_argument("--valence-head", required=True, help="valence1_CLIP_*.pth")
    p.add_argument("--arousal-head", required=True, help="arousal1_CLIP_*.pth")
    p.add_argument("--tokenizer", help="folder with CLIP's vocab.json and merges.txt (default: the CLIP's folder; "
                                       "ComfyUI ships them in comfy/sd1_tokenizer)")
    p.add_argument("--no-clip-score", action="store_true", help="skip CLIPScore (no text tower or tokenizer)")
    p.add_argument("--resize", choices=RESIZE_METHODS, default="pil",
                   help="pil: CLIP's published preprocessing (default); torch: float bicubic")
    p.add_argument("--device", default="cpu", help="torch device for CLIP (default cpu)")
    p.add_argument("--name", default=RESULTS, help=f"results file name without extension (default {RESULTS})")
    p.add_argument("--overwrite", action="store_true", help="replace existing results of the same name")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        critic = load_va_critic(args.clip, args.valence_head, args.arousal_head, device=args.device,
                                tokenizer=args.tokenizer, resize=args.resize)
        report = evaluate_folder(args.folder, critic, clip_score=not args.no_clip_score, name=args.name,
                                 overwrite=args.overwrite)
    except (OSError, ValueError) as exc:  # CheckpointError is a ValueError: the message names the file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    namings = ", ".join(f"{count} {naming}" for naming, count in report["namings"].items() if count)
    print(format_table(report["summary"], label=report["folder"]))
    print(f"cells: {namings}; skipped {len(report['skipped'])} other image(s)")
    print("wrote " + " and ".join(report["written"]))
    return 0

