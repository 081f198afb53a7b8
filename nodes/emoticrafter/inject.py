"""EmotiCrafter in the SDXL graph: load an Emotion Injection Transformer, inject V-A into a conditioning."""

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ...emo_core.emoticrafter.eit_io import is_eit_state_dict, load_eit
from ...emo_core.emoticrafter.inject import LONG_PROMPT, check_sdxl_conditioning, inject
from ...emo_core.emoticrafter.va import VAPoints, check_count
from ...emo_core.weight_shapes import peek_header
from ..shared.models import EMOTICRAFTER, folder_files, make_patcher, model_path, recognise
from ..shared.sockets import CATEGORY, EIT, VA
from ..shared.validation import check_finite, check_finite_weights, check_inputs, check_number, file_error, first_error

DTYPES = {"fp32 (reference)": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def non_finite_cause(network, va: VAPoints, strength: float) -> str:
    """Why the EIT gave NaN/inf embeddings (every image of the batch would be black), as precisely as we can tell."""
    head = "Emotion Injection: the EIT's output holds NaN or infinity"
    try:
        check_finite_weights(network, "the connected EIT")
    except ValueError as e:
        return f"{head}: {e}"
    if next(network.parameters()).dtype in (torch.float16, torch.bfloat16):
        return f"{head} in reduced precision: load the EIT with dtype 'fp32 (reference)'"
    extreme = max(max(map(abs, va.valence)), max(map(abs, va.arousal)))
    return (f"{head} (largest |V|/|A| {extreme:g}, strength {strength:g}): the values overflow the network; use "
            "V-A nearer the trained range [-3, 3]")


def _eit_or_unknown(path: str) -> bool:
    """True for an EIT (its transformer keys, read cheaply from the header) or a file whose keys cannot be told
    cheaply (the loader says what is wrong); False for other files, e.g. the V-A critic heads sharing the folder."""
    header = peek_header(path)
    return header is None or is_eit_state_dict(header.shapes)


def eit_files() -> list[str]:
    """The files of models/emoticrafter offered as EITs (``_eit_or_unknown``; unreadable files stay listed)."""
    return [name for name, path in folder_files(EMOTICRAFTER) if recognise(_eit_or_unknown, path, unknown=True)]


class EmotiCrafterLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_EmotiCrafterLoader",
            display_name="Load EmotiCrafter (EIT)",
            category=CATEGORY,
            description="Loads an Emotion Injection Transformer from models/emoticrafter: the published .pth "
                        "(e.g. scale_factor_1.5.pth) or a converted / trained .safetensors.",
            inputs=[
                io.Combo.Input("eit_name", options=eit_files(),
                               tooltip="Lists the EIT files of models/emoticrafter (by their keys; the V-A critic "
                                       "heads that share the folder are left out)."),
                io.Combo.Input("dtype", options=list(DTYPES), default="fp32 (reference)",
                               tooltip="Compute precision. fp32 is what the reference uses; bf16/fp16 are faster "
                                       "on GPUs and differ slightly."),
                io.Int.Input("heads", default=0, min=0, max=64,
                             tooltip="Attention heads; 0 = from the file's metadata, else width/64 (12 for the "
                                     "published model)."),
            ],
            outputs=[EIT.Output(display_name="eit")],
        )

    # Names only the two combos (the host checks neither); 'heads' keeps the host's range check and the hook's.
    @classmethod
    def validate_inputs(cls, eit_name=None, dtype=None) -> bool | str:
        return first_error(file_error("eit_name", EMOTICRAFTER, eit_name), check_inputs(cls, dtype=dtype))

    @classmethod
    def execute(cls, eit_name, dtype, heads) -> io.NodeOutput:
        path = model_path(EMOTICRAFTER, eit_name)
        network = load_eit(path, heads=int(check_number("heads", heads, 0, 64)) or None)
        return io.NodeOutput(make_patcher(network.to(DTYPES[dtype])))


class EmotionInjection(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoNodes_EmotionInjection",
            display_name="Emotion Injection (EmotiCrafter)",
            category=CATEGORY,
            description="Turns SDXL prompt embeddings into emotional ones for each V-A point (one batch item per "
                        "point). Pooled output and other keys pass through unchanged. Use on the positive prompt "
                        "only; the published setup zeroes the negative (ConditioningZeroOut).",
            inputs=[
                io.Conditioning.Input("conditioning", tooltip="SDXL text conditioning (CLIPTextEncode on an SDXL "
                                                              "checkpoint, or CLIPTextEncodeSDXL)."),
                EIT.Input("eit"),
                VA.Input("va"),
                io.Float.Input("strength", default=1.0, min=-1.0, max=3.0, step=0.05,
                               tooltip="1.0 = published behaviour. Output = f + strength·(EIT(f) − f)."),
                io.Combo.Input("long_prompt", options=list(LONG_PROMPT), default="per_chunk",
                               tooltip="Prompts over 77 tokens: per_chunk runs the EIT on every 77-token chunk "
                                       "(nothing dropped); truncate keeps the first chunk only, as the published "
                                       "diffusers pipeline does."),
            ],
            outputs=[io.Conditioning.Output()],
        )

    # Names only the combo; 'strength' keeps the host's range check, NaN/inf is refused by the queue-time hook.
    @classmethod
    def validate_inputs(cls, long_prompt=None) -> bool | str:
        return check_inputs(cls, long_prompt=long_prompt)

    @classmethod
    def execute(cls, conditioning, eit, va: VAPoints, strength, long_prompt) -> io.NodeOutput:
        strength = check_number("strength", strength, -1.0, 3.0)
        check_count(len(va))
        mm.load_models_gpu([eit])
        network, device = eit.model, eit.load_device
        valence, arousal = va.tensors(device)
        count = len(va)
        out = []
        for index, (embeds, meta) in enumerate(conditioning):
            check_sdxl_conditioning(embeds, count)
            check_finite(f"conditioning: prompt {index + 1}'s embeddings", embeds)
            emotional = inject(network, embeds.to(device), valence, arousal, strength, long_prompt,
                               check_cancel=mm.throw_exception_if_processing_interrupted)
            if not torch.isfinite(emotional).all():
                raise ValueError(non_finite_cause(network, va, strength))
            meta = dict(meta)
            pooled = meta.get("pooled_output")
            if pooled is not None and pooled.shape[0] == 1 and count > 1:
                meta["pooled_output"] = pooled.repeat(count, 1)
            out.append([emotional.to(mm.intermediate_device(), embeds.dtype), meta])
        return io.NodeOutput(out)
