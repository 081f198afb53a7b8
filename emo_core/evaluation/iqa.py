"""The two image-quality columns of ``evaluate``, computed by maintained libraries on weights the user supplies as
local files; nothing here downloads anything.

* CLIP-IQA (``load_clip_iqa``, ``clip_iqa_scores``): torchmetrics' ``CLIPImageQualityAssessment`` with its default
  prompt pair ``quality`` = ("Good photo.", "Bad photo."): per image, softmax(100 · cos(image, text)) of the first
  prompt. The CLIP is a Hugging Face CLIP folder the user gives (config.json, model.safetensors or
  pytorch_model.bin, the tokenizer and preprocessor files), read with ``local_files_only=True`` and
  ``HF_HUB_OFFLINE=1``, handed to torchmetrics as a loader. (torchmetrics' own default, ``"clip_iqa"``, is piq's RN50
  of the CLIP-IQA paper, which piq downloads; the EmotiCrafter paper does not name its CLIP.) torchmetrics hands
  ``images / data_range`` to the CLIP processor, which divides by 255 itself, so images go in on the 0-255 scale
  with ``data_range=1``: the processor then sees the 8-bit pixel values, as it would for a loaded PNG. transformers 5
  returns a model output (projected features in ``pooler_output``) from ``get_image_features`` /
  ``get_text_features`` where torchmetrics 1.9 expects the tensor; ``FeatureTensors`` hands it the tensor.
* LPIPS (``load_lpips``, ``lpips_distances``): the ``lpips`` package's LPIPS v0.1 with the AlexNet trunk, built with
  ``pretrained=True`` (its linear layers, shipped inside the package) and ``pnet_rand=True`` (no backbone download),
  then the trunk's five convolutions loaded from the user's torchvision AlexNet file (``alexnet-owt-7be5be79.pth``,
  keys ``features.{0,3,6,8,10}.*``; ``classifier.*`` is ignored). Images in [0, 1] (``normalize=True``).

Every loader raises ``ColumnUnavailable`` with a one-line reason when its file is missing or is not what it should
be; ``evaluate`` shows that reason instead of the column.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from ..weights import gist, read_weights

CLIP_IQA_PROMPTS = ("quality",)  # torchmetrics' default pair: "Good photo." vs "Bad photo."
ALEXNET_CONVS = (0, 3, 6, 8, 10)  # torchvision alexnet.features indices with weights; lpips slices keep them
LPIPS_CHUNK = 8  # image pairs per LPIPS forward pass


class ColumnUnavailable(ValueError):
    """A column that cannot be computed; the message is the one-line reason."""


def _features(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class FeatureTensors(torch.nn.Module):
    """A transformers CLIPModel whose ``get_image_features`` / ``get_text_features`` return the projected feature
    tensors on every transformers version (5.x returns a model output holding them as ``pooler_output``)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def get_image_features(self, *args, **kwargs) -> torch.Tensor:
        return _features(self.model.get_image_features(*args, **kwargs))

    def get_text_features(self, *args, **kwargs) -> torch.Tensor:
        return _features(self.model.get_text_features(*args, **kwargs))


def clip_folder(path) -> Path:
    """The Hugging Face CLIP folder named by ``path`` (the folder, or a file inside it)."""
    path = Path(path)
    if not path.exists():
        raise ColumnUnavailable(f"{path}: no such file or folder")
    folder = path if path.is_dir() else path.parent
    missing = [name for name in ("config.json", "preprocessor_config.json|processor_config.json",
                                 "tokenizer.json|vocab.json") if not any((folder / n).is_file()
                                                                         for n in name.split("|"))]
    if missing:
        raise ColumnUnavailable(f"{folder}: not a Hugging Face CLIP folder (missing {', '.join(missing)}; it needs "
                                "config.json, the weights, the tokenizer and the preprocessor files)")
    return folder


def load_clip_iqa(path, device: str | torch.device = "cpu"):
    """torchmetrics' CLIPImageQualityAssessment (prompt pair "quality") on the local CLIP folder ``path``."""
    folder = clip_folder(path)
    os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces: local_files_only below already forbids the hub
    try:
        from torchmetrics.multimodal import CLIPImageQualityAssessment
        from transformers import CLIPModel, CLIPProcessor
    except ImportError as exc:
        raise ColumnUnavailable(f"needs torchmetrics and transformers ({gist(exc)}); pip install "
                                "'emo-nodes[metrics]'") from None

    def local_clip():
        model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
        return FeatureTensors(model).eval(), CLIPProcessor.from_pretrained(folder, local_files_only=True)

    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one "Loading weights" bar per load otherwise
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metric = CLIPImageQualityAssessment(model_name_or_path=local_clip, data_range=1.0,
                                                prompts=CLIP_IQA_PROMPTS)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError) as exc:
        raise ColumnUnavailable(f"{folder}: cannot be read as a CLIP ({gist(exc)})") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return metric.to(device)


@torch.no_grad()
def clip_iqa_scores(metric, images: torch.Tensor) -> torch.Tensor:
    """(B,) float64 CLIP-IQA of a ComfyUI IMAGE (B, H, W, 3) in [0, 1] (8-bit pixel values on the 0-255 scale)."""
    pixels = images.detach().float().mul(255).permute(0, 3, 1, 2).to(metric.device)
    metric.reset()
    metric.update(pixels)
    scores = metric.compute().reshape(-1).double().cpu()
    metric.reset()
    return scores


def load_lpips(path, device: str | torch.device = "cpu"):
    """lpips.LPIPS (v0.1, AlexNet) with the package's linear layers and the trunk from the AlexNet file ``path``."""
    path = Path(path)
    if not path.exists():
        raise ColumnUnavailable(f"{path}: no such file")
    try:
        import lpips
    except ImportError as exc:
        raise ColumnUnavailable(f"needs the lpips package ({gist(exc)}); pip install 'emo-nodes[metrics]'") from None
    try:
        state, _ = read_weights(path, unwrap="state_dict")
    except (OSError, ValueError) as exc:
        raise ColumnUnavailable(gist(exc)) from None
    with warnings.catch_warnings():  # lpips asks torchvision for pretrained=False, a deprecated spelling
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(pretrained=True, net="alex", version="0.1", pnet_rand=True, verbose=False)
    trunk = model.net.state_dict()  # slice{k}.{i}.weight/bias <- features.{i}.weight/bias
    wanted = {key: f"features.{key.split('.', 1)[1]}" for key in trunk}
    missing = [src for src in wanted.values() if src not in state]
    wrong = [f"{src} {tuple(state[src].shape)} (expected {tuple(trunk[dst].shape)})" for dst, src in wanted.items()
             if src in state and tuple(state[src].shape) != tuple(trunk[dst].shape)]
    if missing or wrong:
        detail = f"missing {', '.join(missing[:4])}" if missing else f"shapes {'; '.join(wrong[:2])}"
        raise ColumnUnavailable(f"{path}: not a torchvision AlexNet (alexnet-owt-7be5be79.pth; {detail})")
    model.net.load_state_dict({dst: state[src].float() for dst, src in wanted.items()}, strict=True)
    return model.eval().requires_grad_(False).to(device)


@torch.no_grad()
def lpips_distances(model, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """(N,) float64 LPIPS between paired ComfyUI IMAGE batches (N, H, W, 3) in [0, 1], in chunks."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, first.shape[0], LPIPS_CHUNK):
        a, b = (x[start:start + LPIPS_CHUNK].permute(0, 3, 1, 2).float().to(device) for x in (first, second))
        out.append(model(a, b, normalize=True).reshape(-1).double().cpu())
    return torch.cat(out)


def grid_neighbours(points: list[tuple[float, float]]) -> list[tuple[int, int, str]]:
    """(i, j, axis) for every pair of grid neighbours among distinct V-A ``points``: the next valence at the same
    arousal (axis "valence") and the next arousal at the same valence (axis "arousal"), next in the sorted values
    this set of points uses. A 5x5 grid has 20 + 20 pairs."""
    where = {(round(v, 6), round(a, 6)): index for index, (v, a) in enumerate(points)}
    if len(where) != len(points):
        raise ValueError("several images of one V-A point")
    valences = sorted({v for v, _ in where})
    arousals = sorted({a for _, a in where})
    pairs = []
    for (v, a), index in where.items():
        i, j = valences.index(v), arousals.index(a)
        if i + 1 < len(valences) and (valences[i + 1], a) in where:
            pairs.append((index, where[(valences[i + 1], a)], "valence"))
        if j + 1 < len(arousals) and (v, arousals[j + 1]) in where:
            pairs.append((index, where[(v, arousals[j + 1])], "arousal"))
    return sorted(pairs)
