"""ComfyUI nodes of emo-nodes (V3 API): the registration list. Node ids carry the stable prefix ``EmoNodes_``."""

from comfy_api.latest import ComfyExtension, io

from .critic.critic import PredictVA, VACriticLoader
from .emoeditor.continuous import VAToEmotions
from .emoeditor.edit import EmoEditorLoader, EmotionDirection, EmotionEdit, PredictEmotion
from .emoeditor.iei import IEILoop
from .emoeditor.region import EmotionRegion
from .emoeditor.score import ScoreEdit
from .emoticrafter.closed_loop import VAClosedLoop
from .emoticrafter.inject import EmotiCrafterLoader, EmotionInjection
from .emoticrafter.va import EmotionContactSheet, EmotionGrid, EmotionPath, ValenceArousal
from .shared.models import register_model_folders
from .shared.prompt_hook import install_prompt_hook
from .training.editor.data import EditorPairs
from .training.editor.train import TrainEmoEditor
from .training.eit.train import EmotionPairs, EncodePairs, TrainEIT

register_model_folders()
install_prompt_hook()  # queue-time checks of literal values (see nodes/shared/validation.py)

NODES: list[type[io.ComfyNode]] = [
    ValenceArousal, EmotionGrid, EmotionPath, EmotionContactSheet,
    EmotiCrafterLoader, EmotionInjection,
    EmoEditorLoader, PredictEmotion, EmotionDirection, EmotionEdit, IEILoop,
    EmotionPairs, EncodePairs, TrainEIT,
    VAToEmotions,
    EditorPairs, TrainEmoEditor,
    VACriticLoader, PredictVA,
    VAClosedLoop,
    ScoreEdit,
    EmotionRegion,
]


class EmoNodesExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> EmoNodesExtension:
    return EmoNodesExtension()
