"""Numeric precision and memory options of the EmoEditor trainer.

Precisions (``PRECISIONS``):
- ``published-fp16``: as released: the UNet itself is cast to fp16 and trained in pure fp16 (Adam on fp16 weights,
  no loss scaling; the published Adam eps 1e-3 keeps the update finite), the emotion encoder stays fp32. On a
  device without fast fp16 (the CPU) it falls back to fp32, and says so.
- ``bf16`` / ``fp16``: the UNet runs under autocast with fp32 master weights (fp16 with a dynamic loss scale).
- ``fp32``: everything in fp32.
The encoder always runs in fp32 outside autocast (it is small, and the alignment cosine is taken in fp32).

Gradient checkpointing recomputes each block's activations in the backward pass instead of storing them: the
backbone's own switch (diffusers ``enable_gradient_checkpointing``) or ``checkpoint_modules`` around any blocks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

PRECISIONS = ("published-fp16", "bf16", "fp16", "fp32")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def effective_precision(precision: str, device: torch.device, say: Callable[[str], None]) -> str:
    """``precision`` as it will run on ``device`` (published-fp16 -> fp32 on the CPU, with a message)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "published-fp16" and device.type == "cpu":
        say("precision published-fp16: pure fp16 training is not supported on the CPU; training the UNet in fp32 "
            "instead (choose bf16 or fp32 to silence this)")
        return "fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision bf16: {device} does not support bf16; choose fp16 or fp32")
    return precision


def unet_dtype(precision: str) -> torch.dtype:
    """The dtype of the UNet's weights while training (fp16 only for the published pure-fp16 run)."""
    return torch.float16 if precision == "published-fp16" else torch.float32


def autocast(precision: str, device: torch.device):
    """The autocast context of the UNet's forward pass (a no-op for fp32 and pure fp16)."""
    dtype = _AUTOCAST.get(precision)
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A dynamic loss scale for fp16 autocast (fp32 master weights); None otherwise."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def checkpoint_modules(modules: Iterable[nn.Module]) -> int:
    """Run each module's forward under ``torch.utils.checkpoint`` while it trains (non-reentrant, so frozen
    inputs and keyword arguments work). Returns how many modules were wrapped; idempotent."""
    count = 0
    for module in modules:
        if getattr(module, "_emo_checkpointed", False):
            continue
        inner = module.forward

        def forward(*args, _inner=inner, _module=module, **kwargs):
            if _module.training and torch.is_grad_enabled():
                return checkpoint(_inner, *args, use_reentrant=False, **kwargs)
            return _inner(*args, **kwargs)

        module.forward = forward
        module._emo_checkpointed = True
        count += 1
    return count
