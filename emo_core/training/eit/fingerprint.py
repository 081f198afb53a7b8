"""A stable identity for a text encoder: the key of the feature cache (``emo_core.training.eit.features``).

The cache must be reused exactly when the encoder would give the same features, so the fingerprint covers what
the training features depend on and nothing else:

- the weights the output layer reads: for every sub-encoder (SDXL: ``clip_l`` and ``clip_g``) the embeddings, the
  transformer layers up to the output layer (SDXL reads the penultimate one) and the final layer norm only when it
  is applied to that output. Not the pooled-only heads (``text_projection``, ``logit_scale``: ComfyUI leaves
  ``clip_l``'s ``text_projection`` uninitialised for SDXL, so it differs on every load), not the layers after the
  output layer. Each weight is hashed in full, as stored (dtype included), and from the original weights when
  ComfyUI has patched a LoRA into them in place;
- the layer settings (the checkpoint's defaults and a Set CLIP Last Layer override) and the other encoding options
  of every sub-encoder;
- the tokenizers' settings and vocabularies;
- every patch on the used weights (LoRA and the like): key, strengths and the patch tensors themselves.

Works on ComfyUI's ``CLIP`` object by duck typing (``cond_stage_model``, ``patcher``, ``tokenizer``, ``layer_idx``),
so it needs no ComfyUI import and is testable on stand-ins.
"""

from __future__ import annotations

import hashlib
import re

import torch

_OPTION_TYPES = (bool, int, float, str, type(None))
_LAYER = re.compile(r"(?:^|\.)encoder\.layers\.(\d+)\.")


def _sub_encoders(model) -> list[tuple[str, object]]:
    """(state-dict prefix, sub-encoder) for every ComfyUI SDClipModel-like part (has ``transformer`` and ``layer``)."""
    if hasattr(model, "transformer") and hasattr(model, "layer"):
        return [("", model)]
    return [(f"{name}.", child) for name, child in model.named_children()
            if hasattr(child, "transformer") and hasattr(child, "layer")]


def effective_layer(sub, override: int | None) -> tuple[object, int | None]:
    """(layer, layer_idx) the sub-encoder encodes with: its defaults, then ComfyUI's ``set_clip_options`` rule for a
    CLIP Set Last Layer override."""
    default = getattr(sub, "options_default", (sub.layer, getattr(sub, "layer_idx", None)))
    layer, index = default[0], default[1]
    if override is not None and not (isinstance(layer, list) or layer == "all"):
        num_layers = getattr(sub, "num_layers", None)
        if num_layers is not None and abs(override) > num_layers:
            layer, index = "last", None
        else:
            layer, index = "hidden", override
    return layer, index


def used_weight(name: str, layer, index: int | None, num_layers: int | None, final_norm_on_hidden: bool) -> bool:
    """Whether the sub-encoder weight ``name`` (relative to the sub-encoder) can change its token features."""
    if name.endswith(("text_projection.weight", "text_projection")) or name.split(".")[-1] == "logit_scale":
        return False  # pooled output only
    if layer != "hidden" or index is None or num_layers is None:
        return True  # "last", "all" or unknown: everything but the pooled heads
    last_used = index if index >= 0 else num_layers + index
    match = _LAYER.search(name)
    if match:
        return int(match.group(1)) <= last_used
    if "final_layer_norm" in name:
        return final_norm_on_hidden
    return True


def _feed(digest, value, depth: int = 0) -> None:
    """Hash a patch description: tensors in full, containers recursively, other objects by type and attributes."""
    if depth > 8:
        digest.update(b"<deep>")
    elif isinstance(value, torch.Tensor):
        _feed_tensor(digest, value)
    elif isinstance(value, _OPTION_TYPES):
        digest.update(repr(value).encode())
    elif isinstance(value, list | tuple):
        digest.update(f"{type(value).__name__}{len(value)}[".encode())
        for item in value:
            _feed(digest, item, depth + 1)
        digest.update(b"]")
    elif isinstance(value, dict):
        digest.update(f"dict{len(value)}{{".encode())
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            _feed(digest, value[key], depth + 1)
        digest.update(b"}")
    elif callable(value) and not hasattr(value, "__dict__"):
        digest.update(getattr(value, "__qualname__", type(value).__name__).encode())
    else:
        digest.update(f"{type(value).__module__}.{type(value).__qualname__}".encode())
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, dict):
            _feed(digest, {k: v for k, v in attributes.items() if not k.startswith("_")}, depth + 1)


def _feed_tensor(digest, tensor: torch.Tensor) -> None:
    tensor = tensor.detach()
    digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
    flat = tensor.reshape(-1)
    step = 1 << 24  # elements per copy to the CPU: bounded extra memory for weights on a GPU
    for start in range(0, flat.numel(), step):
        part = flat[start:start + step].to("cpu").contiguous()
        digest.update(part.view(torch.uint8).numpy().data if part.numel() else b"")


def _tokenizer_settings(tokenizer) -> list:
    """Simple settings and the vocabulary of every sub-tokenizer (SDXL: clip_l and clip_g)."""
    parts = []
    subs = [(name, value) for name, value in sorted(vars(tokenizer).items())
            if hasattr(value, "tokenize_with_weights")] or [("", tokenizer)]
    for name, sub in subs:
        options = {key: value for key, value in sorted(vars(sub).items())
                   if isinstance(value, _OPTION_TYPES) and key != "embedding_directory"}
        inner = getattr(sub, "tokenizer", None)
        vocab = None
        if inner is not None and hasattr(inner, "get_vocab"):
            vocab = hashlib.sha256(repr(sorted(inner.get_vocab().items())).encode()).hexdigest()
        parts.append([name, type(sub).__name__, options, vocab])
    return parts


def clip_fingerprint(clip) -> str:
    """16 hex digits identifying what ComfyUI's ``clip`` gives as token features (see the module docstring)."""
    digest = hashlib.sha256(b"emo-nodes clip fingerprint v2\n")
    model = clip.cond_stage_model
    override = getattr(clip, "layer_idx", None)
    patcher = getattr(clip, "patcher", None)
    backup = getattr(patcher, "backup", {}) or {}
    patches = getattr(patcher, "patches", {}) or {}
    used_keys = []
    subs = _sub_encoders(model)
    digest.update(f"{type(model).__module__}.{type(model).__qualname__}\n".encode())
    for prefix, sub in subs:
        layer, index = effective_layer(sub, override)
        num_layers = getattr(sub, "num_layers", None)
        final_norm = bool(getattr(sub, "layer_norm_hidden_state", True))
        options = {key: value for key, value in sorted(vars(sub).items())
                   if isinstance(value, _OPTION_TYPES) and not key.startswith("_") and key not in (
                       "layer", "layer_idx", "training", "return_projected_pooled", "execution_device")}
        options["special_tokens"] = repr(getattr(sub, "special_tokens", None))
        digest.update(repr([prefix, type(sub).__qualname__, layer, index, num_layers, final_norm, options]).encode())
        for name, tensor in sorted(sub.state_dict().items()):
            if used_weight(name, layer, index, num_layers, final_norm):
                key = prefix + name
                original = backup.get(key)
                used_keys.append(key)
                digest.update(key.encode())
                _feed_tensor(digest, original.weight if original is not None else tensor)
    if not subs:  # an encoder of another layout: every weight but the pooled heads
        for key, tensor in sorted(model.state_dict().items()):
            if used_weight(key, "last", None, None, True):
                original = backup.get(key)
                used_keys.append(key)
                digest.update(key.encode())
                _feed_tensor(digest, original.weight if original is not None else tensor)
    used = set(used_keys)
    for key in sorted((k for k in patches if str(k[0] if isinstance(k, tuple) else k) in used), key=str):
        digest.update(f"patch {key}".encode())
        _feed(digest, patches[key])
    digest.update(repr(_tokenizer_settings(clip.tokenizer)).encode() if hasattr(clip, "tokenizer") else b"")
    return digest.hexdigest()[:16]
