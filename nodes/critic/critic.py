"""The valence-arousal critic in ComfyUI: load CLIP ViT-B/32 + the released V-A heads, and predict where images land
on the V-A pad (with the paper's V-Error, A-Error and CLIPScore).

The vision tower is ComfyUI's own CLIP-vision network (comfy.clip_model.CLIPVisionModelProjection, what Load CLIP
Vision builds) from a ViT-B/32 config, held by a ModelPatcher on the text-encoder devices, so it loads, casts and
offloads like the host's CLIP-vision models. The text tower (CLIPScore only) is built on first use; the prompt is
tokenised with the CLIP BPE files ComfyUI ships (comfy/sd1_tokenizer). Preprocessing and the head arithmetic are
emo_core's (emo_core.evaluation), the same as the Python API.
"""

from __future__ import annotations

import json
import os

import comfy.clip_model
import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import comfy.sd1_clip
import comfy.utils
import torch
from comfy_api.latest import io

from ...emo_core.critic.clip_b32 import (
    PATCH,
    PROJECTION,
    WEIGHT_FILES,
    ClipB32Weights,
    clip_file,
    read_clip_b32,
    text_tower,
)
from ...emo_core.critic.critic import VACritic, no_text_tower
from ...emo_core.critic.heads import load_va_head, looks_like_head, peek_shapes
from ...emo_core.critic.preprocess import RESIZE_METHODS
from ...emo_core.critic.tokenizer import ClipTokenizer
from ...emo_core.emoticrafter.va import VAPoints
from ...emo_core.errors import CheckpointError
from ...emo_core.evaluation.metrics import abs_errors, cell_errors, summary
from ...emo_core.plots.critic import error_heatmap_image, va_pad_image
from ...emo_core.plots.style import as_image
from ...emo_core.weights import few
from ..shared.models import EMOTICRAFTER, folder_files, make_patcher, model_path, recognise
from ..shared.progress import show_text
from ..shared.sockets import CATEGORY, VA, VA_CRITIC
from ..shared.validation import file_error, first_error

CLIP_VISION = "clip_vision"
PATCH_KEY, PROJECTION_KEY = "vision_model.embeddings.patch_embedding.weight", "visual_projection.weight"
TOKENIZER = os.path.join(os.path.dirname(os.path.realpath(comfy.sd1_clip.__file__)), "sd1_tokenizer")


class HostClipB32:
    """The critic's CLIP towers as ComfyUI models (see the module note)."""

    def __init__(self, weights: ClipB32Weights):
        self.weights = weights
        load_device, offload_device = mm.text_encoder_device(), mm.text_encoder_offload_device()
        # fp32 weights (the reference precision; ViT-B/32's vision tower is 88 M parameters)
        network = comfy.clip_model.CLIPVisionModelProjection(weights.vision_config, torch.float32, offload_device,
                                                             comfy.ops.manual_cast)
        missing, unexpected = network.load_state_dict(weights.vision, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{weights.source}: the vision weights do not fit a ViT-B/32 CLIP-vision network: "
                                  f"missing {few(missing) or 'none'}; unexpected {few(unexpected) or 'none'}")
        self.vision = comfy.model_patcher.ModelPatcher(network.eval(), load_device=load_device,
                                                       offload_device=offload_device)
        self.text, self.tokenizer = None, None

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        # as Load CLIP Vision's encode_image: fp32 pixels, the weights cast to them (comfy.ops.manual_cast)
        mm.load_model_gpu(self.vision)
        return self.vision.model(pixel_values=pixels.to(self.vision.load_device).float())[2]

    def text_features(self, texts: list[str]) -> torch.Tensor:
        if self.text is None:
            self.text = make_patcher(text_tower(self.weights), load_device=mm.text_encoder_device())
            self.tokenizer = ClipTokenizer(TOKENIZER)
        mm.load_model_gpu(self.text)
        ids, mask = self.tokenizer(texts)
        device = self.text.load_device
        return self.text.model(input_ids=ids.to(device), attention_mask=mask.to(device))


class CriticProgress:
    """VACritic.on_batch: a progress bar over the images of one call, and Cancel between batches."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        if done == 0 or self.bar is None:
            self.bar = comfy.utils.ProgressBar(total)
        self.bar.update_absolute(done, total)


def _unknown_or_head(path: str) -> bool:
    return peek_shapes(path) is None or looks_like_head(path)


def head_files() -> list[str]:
    """Files in models/emoticrafter in the released head layout, and any whose keys cannot be read cheaply."""
    return [name for name, path in folder_files(EMOTICRAFTER) if recognise(_unknown_or_head, path, unknown=True)]


def _b32_or_unknown(path: str) -> bool:
    """True for ViT-B/32's 32-pixel patches and 512-d projection (by key shapes), or a file whose keys cannot be
    read cheaply; False for other CLIPs and files without those keys (shapes of any rank are tolerated)."""
    shapes = peek_shapes(clip_file(path))
    if shapes is None:
        return True
    patch, projection = shapes.get(PATCH_KEY), shapes.get(PROJECTION_KEY)
    return bool(patch) and patch[-1] == PATCH and bool(projection) and projection[0] == PROJECTION


def _clip_entries() -> dict[str, str]:
    """{listing name: path}: files of models/clip_vision, and Hugging Face CLIP folders (a ``model.safetensors`` or
    ``pytorch_model.bin`` in a subfolder) as one entry named by the folder, read with ``read_clip_b32``."""
    entries = {}
    for name, path in folder_files(CLIP_VISION):
        if os.path.dirname(name) and os.path.basename(name) in WEIGHT_FILES:
            name, path = os.path.dirname(name), os.path.dirname(path)
        entries.setdefault(name, path)
    return entries


def clip_files() -> list[str]:
    """Entries of models/clip_vision (``_clip_entries``) with ViT-B/32's key shapes, and any whose keys cannot be
    read cheaply; other CLIPs (ViT-L/14, ViT-H, ... for other nodes) are not offered."""
    return [name for name, path in _clip_entries().items() if recognise(_b32_or_unknown, path, unknown=True)]


def clip_path(name: str) -> str:
    """The file or Hugging Face folder listed as ``name`` in clip_name."""
    path = _clip_entries().get(name)
    return path if path is not None else model_path(CLIP_VISION, name)


def _default(names: list[str], word: str) -> str | None:
    return next((n for n in names if word in n.lower()), names[0] if names else None)


class VACriticLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        heads = head_files()
        return io.Schema(
            node_id="EmoNodes_VACriticLoader",
            display_name="Load V-A Critic",
            category=CATEGORY,
            description="EmotiCrafter's valence-arousal critic: CLIP ViT-B/32 (Hugging Face file of "
                        "openai/clip-vit-base-patch32 in models/clip_vision) and the two released linear heads "
                        "(valence1_CLIP_*.pth, arousal1_CLIP_*.pth in models/emoticrafter). "
                        "Prediction = sigmoid(w·f + b)·6 − 3 on the 512-d image embedding.",
            inputs=[
                io.Combo.Input("clip_name", options=clip_files(),
                               tooltip="CLIP ViT-B/32, Hugging Face layout (model.safetensors or pytorch_model.bin "
                                       "renamed). With its text tower (the full CLIP file) it also gives CLIPScore. "
                                       "Lists the files of models/clip_vision with ViT-B/32's 32-pixel patches and "
                                       "512-d projection."),
                io.Combo.Input("valence_head", options=heads, default=_default(heads, "valence"),
                               tooltip="valence1_CLIP_*.pth. Lists files of models/emoticrafter whose keys are "
                                       "classifier.0.weight (1x512) and classifier.0.bias (1)."),
                io.Combo.Input("arousal_head", options=heads, default=_default(heads, "arousal"),
                               tooltip="arousal1_CLIP_*.pth (same layout as the valence head)."),
                io.Combo.Input("resize", options=list(RESIZE_METHODS), default="pil",
                               tooltip="pil: CLIP's published preprocessing on 8-bit pixels (Pillow bicubic, short "
                                       "side 224, centre crop). torch: float bicubic on the device, within about "
                                       "one 8-bit step."),
            ],
            outputs=[VA_CRITIC.Output(display_name="critic")],
        )

    # Names the three files (at most three names: each repeats an error); 'resize' is checked when the node runs.
    @classmethod
    def validate_inputs(cls, clip_name=None, valence_head=None, arousal_head=None) -> bool | str:
        return first_error(file_error("clip_name", CLIP_VISION, clip_name, extra=clip_files),
                           file_error("valence_head", EMOTICRAFTER, valence_head),
                           file_error("arousal_head", EMOTICRAFTER, arousal_head))

    @classmethod
    def execute(cls, clip_name, valence_head, arousal_head, resize) -> io.NodeOutput:
        if resize not in RESIZE_METHODS:
            raise ValueError(f"resize: '{resize}' is not one of {', '.join(RESIZE_METHODS)}")
        valence = load_va_head(model_path(EMOTICRAFTER, valence_head), "valence head")
        arousal = load_va_head(model_path(EMOTICRAFTER, arousal_head), "arousal head")
        clip = HostClipB32(read_clip_b32(clip_path(clip_name)))
        text = clip.text_features if clip.weights.has_text else None
        critic = VACritic(clip.image_features, valence, arousal, text, resize, clip_name, on_batch=CriticProgress(),
                          no_text_reason=no_text_tower(f"the CLIP file '{clip_name}'"))
        return io.NodeOutput(critic)


def _targets(va: VAPoints | None, count: int) -> torch.Tensor | None:
    if va is None:
        return None
    if len(va) not in (1, count):
        raise ValueError(f"va: {len(va)} target points for {count} images; link one point, or one per image (the "
                         "same V-A batch that conditioned them)")
    return torch.tensor(list(zip(va.valence, va.arousal, strict=True)), dtype=torch.float64)


def va_report(pred: torch.Tensor, target: torch.Tensor | None, scores: torch.Tensor | None, prompt: str) -> dict:
    """The node's JSON: one record per image, and the paper's summary (mean ± std, population std)."""
    errors = None if target is None else abs_errors(pred, target)
    records = []
    for i, (v, a) in enumerate(pred.tolist()):
        record = {"image": i + 1, "valence": v, "arousal": a}
        if errors is not None:
            tv, ta = target[i if target.shape[0] > 1 else 0].tolist()
            record.update(target_valence=tv, target_arousal=ta, v_error=errors[i, 0].item(),
                          a_error=errors[i, 1].item())
        if scores is not None:
            record["clip_score"] = scores[i].item()
        records.append(record)
    out = {"images": records, "summary": summary(pred, target, scores)}
    if scores is not None:
        out["prompt"] = prompt
    if target is not None:
        out["cells"] = cell_errors(pred, target)
    return out


def summary_lines(stats: dict) -> list[str]:
    lines = [f"{stats['images']} image(s)"]
    if "v_mean" in stats:
        lines.append(f"V-Error {stats['v_mean']:.3f} ± {stats['v_std']:.3f}   A-Error {stats['a_mean']:.3f} ± "
                     f"{stats['a_std']:.3f}")
    if "clip_score_mean" in stats:
        lines.append(f"CLIPScore {stats['clip_score_mean']:.2f} ± {stats['clip_score_std']:.2f}")
    return lines


class PredictVA(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_PredictVA",
            display_name="Predict Valence-Arousal",
            category=CATEGORY,
            description="Where each image landed on the V-A pad, by the V-A critic. With target V-A (the batch "
                        "that conditioned the images): the paper's V-Error and A-Error and an arrow per image from "
                        "target to prediction. With the neutral prompt: CLIPScore.",
            inputs=[
                VA_CRITIC.Input("critic"),
                io.Image.Input("images"),
                VA.Input("va", optional=True, tooltip="Targets: one point for every image, or one per image (e.g. "
                                                      "Emotion Grid's output that conditioned the batch)."),
                io.String.Input("prompt", optional=True, multiline=True, default="",
                                tooltip="The NEUTRAL prompt (before emotion injection), for CLIPScore = "
                                        "100·max(cos, 0). Empty: no CLIPScore."),
            ],
            outputs=[io.String.Output(display_name="report"), io.Image.Output(display_name="pad"),
                     io.Image.Output(display_name="error_map")],
        )

    @classmethod
    def execute(cls, critic, images, va=None, prompt="") -> io.NodeOutput:
        features = critic.embed(images)
        pred = critic.predict_features(features)
        target = _targets(va, pred.shape[0])
        prompt = (prompt or "").strip()
        scores = critic.clip_score(images, [prompt], features=features) if prompt else None
        report = va_report(pred, target, scores, prompt)
        lines = summary_lines(report["summary"])
        show_text(" | ".join(lines))
        pad = as_image(va_pad_image(pred, target, lines))
        error_map = as_image(error_heatmap_image(report.get("cells", []), lines))
        return io.NodeOutput(json.dumps(report, indent=1), pad, error_map)
