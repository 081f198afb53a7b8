"""ComfyUI nodes of emo-nodes (V3 API): the registration list. Node ids carry the stable prefix ``EmoNodes_``."""

from comfy_api.latest import ComfyExtension, io

from .common import install_prompt_hook, register_model_folders
from .editor_data import EditorPairs
from .editor_training import TrainEmoEditor
from .emoeditor import EmoEditorLoader, EmotionDirection, EmotionEdit, PredictEmotion
from .emoeditor_iei import IEILoop
from .emoticrafter import EmotiCrafterLoader, EmotionInjection
from .training import EmotionPairs, EncodePairs, TrainEIT
from .va import EmotionContactSheet, EmotionGrid, EmotionPath, ValenceArousal
from .va_critic import PredictVA, VACriticLoader
from .va_emotions import VAToEmotions
from .va_loop import VAClosedLoop

register_model_folders()
install_prompt_hook()  # queue-time checks of literal values (see nodes/common.py)

NODES: list[type[io.ComfyNode]] = [
    ValenceArousal, EmotionGrid, EmotionPath, EmotionContactSheet,
    EmotiCrafterLoader, EmotionInjection,
    EmoEditorLoader, PredictEmotion, EmotionDirection, EmotionEdit, IEILoop,
    EmotionPairs, EncodePairs, TrainEIT,
    VAToEmotions,
    EditorPairs, TrainEmoEditor,
    VACriticLoader, PredictVA,
    VAClosedLoop,
]


class EmoNodesExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> EmoNodesExtension:
    return EmoNodesExtension()
