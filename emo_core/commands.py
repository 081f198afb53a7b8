"""``python -m emo_core <command> ...``: every command line of the package, from one table.

A command is a module with ``main(argv) -> int`` (and its own ``--help``); it is imported only when it runs, so
``python -m emo_core --help`` stays fast and a command's heavy imports never slow another. Adding a command is one
line in ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module with main(argv), one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "train-eit": ("emo_core.training.eit.cli", "train EmotiCrafter's EIT from a pairs CSV (torchrun for DDP)"),
    "train-editor": ("emo_core.training.editor.cli", "train EmoEditor's editor on diffusers models (torchrun for DDP)"),
    "caches": ("emo_core.training.eit.caches", "list the EIT feature caches and remove the stale ones"),
    "convert-eit": ("emo_core.emoticrafter.convert", "write a published EIT .pth as a smaller .safetensors"),
    "evaluate": ("emo_core.evaluation.cli", "EmotiCrafter's metrics (V-/A-Error, CLIPScore) over a folder of images"),
    "evaluate-edits": ("emo_core.evaluation.edits", "EmoEditor's metrics (ESMI, Emo-A) over a folder of edits"),
    "batch": ("emo_core.batch.cli", "an API workflow over many jobs on one ComfyUI or many (Ray), resumable"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m emo_core <command> [options]   (python -m emo_core <command> --help for its options)",
             "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_module, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        return importlib.import_module(COMMANDS[name][0]).main(rest)
    except KeyboardInterrupt:  # a second Ctrl-C: the trainers' first one already asked for a clean stop
        print(f"{name}: interrupted; files written so far are kept (a trainer resumes from its last state)",
              file=sys.stderr)
        return 130
