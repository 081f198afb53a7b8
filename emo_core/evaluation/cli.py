"""``python -m emo_core evaluate FOLDER --clip CLIP --valence-head H --arousal-head H``: EmotiCrafter's metrics over
a folder of images named ``V-A (v,a) | prompt.png`` (or ``V-A (v,a) _ prompt.png``), as the 5x5 protocol writes
them, or of the cells of one ComfyUI grid run (told by the workflow in each PNG). Prints the paper's table
(mean ± std V-Error, A-Error, CLIPScore) and writes ``emotion_metrics.json`` and ``emotion_metrics.png`` (error per
V-A cell) next to the images. See emo_core.evaluation.folder.

Three optional columns, each computed only when its local files are given (nothing is downloaded; without its
files, or when they cannot be read, the column is absent and the table and the JSON's ``not_measured`` say why in
one line): Emo-A (``--predictor``), CLIP-IQA (``--iqa-clip``), LPIPS-Continuous (``--lpips-backbone``); see
emo_core.evaluation.columns.

Every problem with the inputs is one line on stderr and exit status 2 (``--device``, ``--name``, the model files,
the folder); files in the folder that cannot be used are skipped with one ``warning:`` line each (named with
``repr``) and listed under ``refused`` in the JSON, and the run goes on. A failing run writes nothing."""

from __future__ import annotations

import argparse
import sys

from ..checks import device_problem
from ..critic.critic import load_va_critic
from ..critic.preprocess import RESIZE_METHODS
from ..training.naming import name_problem
from .columns import CLIP_IQA, EMO_A, LPIPS_CONTINUOUS, load_columns
from .folder import RESULTS, evaluate_folder
from .metrics import format_table


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emo_core evaluate", description=__doc__.splitlines()[0])
    p.add_argument("folder", help="folder of images named 'V-A (v,a) | prompt.png' or 'V-A (v,a) _ prompt.png', or "
                                  "the cells one ComfyUI grid run saved")
    p.add_argument("--clip", required=True, help="CLIP ViT-B/32, Hugging Face file or folder "
                                                 "(openai/clip-vit-base-patch32: model.safetensors or "
                                                 "pytorch_model.bin)")
    p.add_argument("--valence-head", required=True, help="valence1_CLIP_*.pth")
    p.add_argument("--arousal-head", required=True, help="arousal1_CLIP_*.pth")
    p.add_argument("--tokenizer", help="folder with CLIP's vocab.json and merges.txt (default: the CLIP's folder; "
                                       "ComfyUI ships them in comfy/sd1_tokenizer)")
    p.add_argument("--no-clip-score", action="store_true", help="skip CLIPScore (no text tower or tokenizer)")
    p.add_argument("--resize", choices=RESIZE_METHODS, default="pil",
                   help="pil: CLIP's published preprocessing (default); torch: float bicubic")
    metrics = p.add_argument_group(
        "optional columns", "each needs local files; without them the column is absent, with a one-line reason")
    metrics.add_argument("--predictor", metavar="FILE",
                         help="Emo-A: EmoEditor's emo_predictor.pt (or its .safetensors). Each cell's V-A target "
                              "counts as the class whose V-A centre (EMOTION_VA_CENTRES: Warriner et al. 2013 "
                              "ratings of the class words) is nearest; Emo-A = share of cells whose top predicted "
                              "class is that class. EmoCtrl's 24.67%% for EmotiCrafter used its own classifier, so "
                              "compare with care")
    metrics.add_argument("--iqa-clip", metavar="PATH",
                         help="CLIP-IQA (paper 0.881 ± 0.099): a Hugging Face CLIP folder (config.json, weights, "
                              "tokenizer and preprocessor files, e.g. a copy of openai/clip-vit-base-patch32), read "
                              "offline; torchmetrics' CLIPImageQualityAssessment with its default prompts 'Good "
                              "photo.' vs 'Bad photo.'")
    metrics.add_argument("--lpips-backbone", metavar="PATH",
                         help="LPIPS-Continuous (paper 0.220 ± 0.064; our reading: LPIPS v0.1 between horizontal "
                              "and vertical V-A grid neighbours of one prompt, mean ± std over the pairs): "
                              "torchvision's AlexNet file alexnet-owt-7be5be79.pth; the lpips package brings its "
                              "linear layers")
    p.add_argument("--device", default="cpu", help="torch device for CLIP and the optional columns (default cpu)")
    p.add_argument("--name", default=RESULTS, help=f"results file name without extension (default {RESULTS})")
    p.add_argument("--overwrite", action="store_true", help="replace existing results of the same name")
    return p


def shown(text: str) -> str:
    """``text`` printable on any terminal: one line, undecodable bytes of paths as escapes."""
    text = " ".join(str(text).splitlines())
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    problem = name_problem(args.name, "--name") or device_problem(args.device)
    if problem:
        print(f"error: {shown(problem)}", file=sys.stderr)
        return 2
    try:
        critic = load_va_critic(args.clip, args.valence_head, args.arousal_head, device=args.device,
                                tokenizer=args.tokenizer, resize=args.resize)
        columns = load_columns(args.predictor, args.iqa_clip, args.lpips_backbone, device=args.device)
        for column, given in ((EMO_A, args.predictor), (CLIP_IQA, args.iqa_clip), (LPIPS_CONTINUOUS,
                                                                                   args.lpips_backbone)):
            if given is not None and column in columns.reasons:
                print(f"warning: {column}: {shown(columns.reasons[column])}", file=sys.stderr)
        report = evaluate_folder(args.folder, critic, clip_score=not args.no_clip_score, name=args.name,
                                 overwrite=args.overwrite, columns=columns)
    except (OSError, ValueError) as exc:  # CheckpointError is a ValueError: the message names the file
        print(f"error: {shown(exc)}", file=sys.stderr)
        return 2
    for entry in report["refused"]:
        print(f"warning: skipped {shown(entry['file'])}: {shown(entry['reason'])}", file=sys.stderr)
    namings = ", ".join(f"{count} {naming}" for naming, count in report["namings"].items() if count)
    print(format_table(report["summary"], label=shown(report["folder"]),
                       not_measured={column: shown(reason) for column, reason in report["not_measured"].items()}))
    for note in report["notes"]:
        print(shown(note))
    if report["refused"]:
        print(f"left out of the averages: {len(report['refused'])} file(s) (unreadable, not regular files, odd names "
              "or target V-A outside [-3, 3]; listed under 'refused' in the JSON)")
    print(f"cells: {namings}; skipped {len(report['skipped'])} other image(s)")
    print("wrote " + shown(" and ".join(report["written"])))
    return 0

