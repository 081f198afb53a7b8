"""CLIP's BPE tokenizer, offline: transformers' CLIPTokenizer over a folder holding ``vocab.json`` and
``merges.txt`` (CLIP's BPE, the same in every CLIP). Where they come from:

* the CLIP's own folder, when the Hugging Face download of openai/clip-vit-base-patch32 is kept whole;
* a folder given explicitly (ComfyUI bundles them as ``comfy/sd1_tokenizer``, which the nodes use).

Nothing is downloaded. Prompts longer than CLIP's 77 tokens are truncated (start and end tokens kept).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .clip_b32 import CONTEXT

FILES = ("vocab.json", "merges.txt")


def tokenizer_folder(clip_path, tokenizer=None) -> Path | None:
    """The folder to read the tokenizer from: ``tokenizer`` if given (it must hold the files), else the CLIP file's
    own folder when it holds them, else None."""
    if tokenizer is not None:
        folder = Path(tokenizer)
        missing = [name for name in FILES if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"tokenizer: {folder} has no {' or '.join(missing)} (CLIP's BPE files; ComfyUI "
                                    "ships them in comfy/sd1_tokenizer)")
        return folder
    folder = Path(os.fspath(clip_path)).parent
    return folder if all((folder / name).is_file() for name in FILES) else None


class ClipTokenizer:
    """texts -> (input_ids, attention_mask), each (N, T) with T ≤ 77."""

    def __init__(self, folder: Path):
        from transformers import CLIPTokenizer

        self.folder = Path(folder)
        # from_pretrained, not the constructor: transformers 5's CLIPTokenizer(vocab_file=...) gives wrong ids
        self._tokenizer = CLIPTokenizer.from_pretrained(str(self.folder))

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self._tokenizer(list(texts), padding=True, truncation=True, max_length=CONTEXT, return_tensors="pt")
        return batch["input_ids"], batch["attention_mask"]
