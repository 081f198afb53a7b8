"""Loading, converting and saving EIT checkpoints.

Two inputs are accepted:
- the published pickle (``torch.save`` of a plain state dict, usually ``module.``-prefixed), read only with
  ``torch.load(path, map_location="cpu", weights_only=True)``;
- our ``.safetensors``: published names without ``module.``/``wte``, the query third of each ``c_attn`` stored as
  ``c_q``, and metadata ``{"format": "emo-nodes.eit", "version": "1", "n_head": ..., <sizes>}``. A safetensors file
  in the published key layout also loads.

Every problem with a file raises ``CheckpointError`` (a ``ValueError``) naming the file and what was expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..atomic_io import atomic_write
from ..errors import CheckpointError
from ..weights import few, read_weights
from .eit import EITConfig, EmotionInjectionTransformer

FORMAT_NAME = "emo-nodes.eit"
FORMAT_VERSION = "1"
SIGNATURE_KEYS = ("xl_feature2gpt_feature.weight", "h.0.attn_a.c_z.weight")
DEFAULT_HEAD_DIM = 64  # the published model: width 768, 12 heads
_C_ATTN = re.compile(r"^(h\.\d+\.attn(?:_a|_v)?)\.c_attn\.(weight|bias)$")
_LAYER = re.compile(r"^h\.(\d+)\.")
_UNUSED_KEYS = ("wte.weight",)  # token embedding: the EIT reads embeddings, never token ids
# Key prefixes of checkpoints users may pick by mistake, for a helpful message.
_OTHER_MODELS = {
    "model.diffusion_model.": "a Stable Diffusion / SDXL checkpoint",
    "conditioner.embedders.": "an SDXL checkpoint",
    "first_stage_model.": "a Stable Diffusion checkpoint (VAE part)",
    "down_blocks.": "a diffusers UNet",
    "input_blocks.": "a UNet",
    "lora_unet_": "a LoRA",
    "text_model.": "a CLIP text encoder",
    "transformer.h.0.": "a GPT-2 language model",
}


@dataclass
class ConversionReport:
    """What ``convert_published_state_dict`` changed, for the converter's printout."""

    stripped_prefix: bool = False
    dropped: dict[str, tuple[int, ...]] = field(default_factory=dict)  # key -> shape of what was removed
    sliced: dict[str, str] = field(default_factory=dict)  # our c_q key -> the c_attn key it was cut from


def is_eit_state_dict(sd: Mapping) -> bool:
    """True when ``sd`` (published or ours, ``module.`` prefix or not) carries the EIT's signature keys."""
    keys = {_strip_module(k) for k in sd if isinstance(k, str)}
    return all(key in keys for key in SIGNATURE_KEYS)


def convert_published_state_dict(sd: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                                          ConversionReport]:
    """Published (or already converted) state dict -> ours: strip ``module.``, drop ``wte``, keep the query third
    of every ``c_attn`` as ``c_q``. Shapes are not checked here (``load_eit`` does that)."""
    report = ConversionReport()
    out: dict[str, torch.Tensor] = {}
    for key, tensor in sd.items():
        name = _strip_module(key)
        report.stripped_prefix |= name != key
        if name in _UNUSED_KEYS:
            report.dropped[name] = tuple(tensor.shape)
            continue
        match = _C_ATTN.match(name)
        if match:
            # c_attn computes Q, K and V; the published forward discards K and V (they come from c_z).
            prefix, kind = match.groups()
            width = tensor.shape[-1] // 3
            out[f"{prefix}.c_q.{kind}"] = tensor[..., :width].contiguous()
            report.sliced[f"{prefix}.c_q.{kind}"] = name
            continue
        out[name] = tensor
    return out, report


def config_from_state_dict(sd: Mapping[str, torch.Tensor], n_head: int | None = None) -> EITConfig:
    """Read the sizes from a converted state dict's shapes; heads default to width / 64. Raises ValueError."""
    needed = ("xl_feature2gpt_feature.weight", "wpe.weight", "a_f.0.weight", "a_f.2.weight")
    missing = [key for key in needed if key not in sd]
    if missing:
        raise ValueError(f"missing keys needed to read the model size: {', '.join(missing)}")
    n_embd, feature_dim = sd["xl_feature2gpt_feature.weight"].shape
    va_hidden = sd["a_f.0.weight"].shape[0]
    va_out = sd["a_f.2.weight"].shape[0]
    if va_out % n_embd:
        raise ValueError(f"a_f.2.weight has {va_out} outputs, not a multiple of the width {n_embd}")
    layers = {int(m.group(1)) for key in sd if (m := _LAYER.match(key))}
    if not layers:
        raise ValueError("no transformer blocks (keys h.<i>.*) found")
    if n_head is None:
        if n_embd % DEFAULT_HEAD_DIM:
            raise ValueError(f"width {n_embd} is not a multiple of {DEFAULT_HEAD_DIM}; give the number of heads")
        n_head = n_embd // DEFAULT_HEAD_DIM
    return EITConfig(n_layer=max(layers) + 1, n_embd=n_embd, n_head=int(n_head), n_tokens=va_out // n_embd,
                     feature_dim=feature_dim, n_positions=sd["wpe.weight"].shape[0], va_hidden=va_hidden)


def build_eit(sd: Mapping[str, torch.Tensor], n_head: int | None = None, source: str = "state dict"
              ) -> EmotionInjectionTransformer:
    """A model holding ``sd`` (published or converted layout), validated key by key; ``source`` names it in errors.

    The model is built on the meta device and takes the tensors over, so nothing is initialised twice.
    """
    if not is_eit_state_dict(sd):
        raise CheckpointError(_not_eit_message(sd, source))
    converted, report = convert_published_state_dict(sd)
    try:
        config = config_from_state_dict(converted, n_head)
    except ValueError as exc:
        raise CheckpointError(f"{source}: not a usable EmotiCrafter EIT state dict: {exc}") from None
    with torch.device("meta"):
        model = EmotionInjectionTransformer(config)
    _check_keys_and_shapes(model.state_dict(), converted, source, config, report, sd)
    model.load_state_dict(converted, assign=True)
    return model.eval()


def load_eit(path: str | os.PathLike, heads: int | None = None, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> EmotionInjectionTransformer:
    """Load a published ``.pth``/``.pt`` or our ``.safetensors`` into an eval-mode EIT on ``device`` in ``dtype``.

    Heads: ``heads`` if given, else the file's metadata, else width / 64.
    """
    sd, metadata = read_eit_file(path)
    if heads is None and metadata.get("n_head"):
        try:
            heads = int(metadata["n_head"])
        except ValueError:
            raise CheckpointError(f"{path}: metadata n_head={metadata['n_head']!r} is not an integer") from None
    model = build_eit(sd, heads, source=str(path))
    return model.to(device=device, dtype=dtype)


def read_eit_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of an EIT file (a training checkpoint's ``state_dict`` is unwrapped)."""
    sd, metadata = read_weights(path, unwrap="state_dict")
    if metadata.get("format") == FORMAT_NAME and metadata.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: {FORMAT_NAME} format version {metadata.get('version')!r} is not supported "
                              f"(expected {FORMAT_VERSION}); update emo-nodes")
    return sd, metadata


def save_eit(model: EmotionInjectionTransformer, path: str | os.PathLike,
             extra_metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``model`` as our safetensors (config in the metadata), atomically (``atomic_io``)."""
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {"format": FORMAT_NAME, "version": FORMAT_VERSION}
    metadata.update({key: str(value) for key, value in asdict(model.config).items() if key != "dropout"})
    for key, value in (extra_metadata or {}).items():
        if key in metadata:
            raise ValueError(f"extra metadata may not override {key!r}")
        metadata[str(key)] = str(value)
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def _check_keys_and_shapes(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor], source: str,
                           config: EITConfig, report: ConversionReport, original: Mapping[str, torch.Tensor]) -> None:
    """Compare with the model's own state dict; name problems as the file names them (c_attn, not c_q)."""
    published = bool(report.sliced)
    originals = {_strip_module(key): value for key, value in original.items()}

    def shown(key: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
        if key.endswith((".c_q.weight", ".c_q.bias")) and (key in report.sliced or (published and key not in got)):
            return key.replace(".c_q.", ".c_attn."), (*shape[:-1], 3 * shape[-1])
        return key, shape

    missing = [shown(key, tuple(value.shape))[0] for key, value in expected.items() if key not in got]
    unexpected = [report.sliced.get(key, key) for key in got if key not in expected]
    wrong = []
    for key, value in expected.items():
        if key in got and got[key].shape != value.shape:
            name, want = shown(key, tuple(value.shape))
            have = tuple(originals[name].shape) if name in originals else tuple(got[key].shape)
            wrong.append(f"{name} {have} (expected {want})")
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {few(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {few(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} wrong shapes: {few(wrong)}")
    if problems:
        sizes = f"{config.n_layer} layers, width {config.n_embd}, {config.n_tokens} V-A tokens"
        raise CheckpointError(f"{source}: does not match the EmotiCrafter EIT layout read from its shapes ({sizes}): "
                              + "; ".join(problems))


def _not_eit_message(sd: Mapping, source: str) -> str:
    keys = [str(key) for key in sd]
    names = [_strip_module(key) for key in keys]
    for prefix, what in _OTHER_MODELS.items():
        if any(name.startswith(prefix) for name in names):
            return (f"{source}: looks like {what}, not an EmotiCrafter Emotion Injection Transformer (expected keys "
                    f"{' and '.join(SIGNATURE_KEYS)})")
    return (f"{source}: not an EmotiCrafter Emotion Injection Transformer state dict: expected keys "
            f"{' and '.join(SIGNATURE_KEYS)}; found {len(keys)} keys such as {few(keys)}")


def _strip_module(key: str) -> str:
    return key[len("module."):] if isinstance(key, str) and key.startswith("module.") else key
