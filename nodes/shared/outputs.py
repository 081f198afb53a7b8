"""Where trainer nodes keep their work (ComfyUI's user folder) and the queue-time rule for output names."""

from __future__ import annotations

import os

import folder_paths

from ...emo_core.training.naming import name_problem


def name_rules(values: dict) -> dict[str, str]:
    """literal_rules for the queue-time hook (nodes/shared): a literal output file name must be a plain file name.
    Refused there, the problem shows once, on 'name' (validate_inputs would repeat it on every input it names). A
    linked name is checked when the node runs (naming.output_file)."""
    problem = name_problem(values["name"]) if "name" in values else None
    return {"name": problem} if problem else {}


def work_dir(*parts: str) -> str:
    """Caches and resume states live in ComfyUI's user folder, not among the models (the loaders list those)."""
    path = os.path.join(folder_paths.get_user_directory(), "emo-nodes", *parts)
    os.makedirs(path, exist_ok=True)
    return path
