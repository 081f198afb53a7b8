"""Host-independent torch code for emo-nodes: networks, checkpoint loading, losses and algorithms.

Nothing in this package imports ComfyUI, so it can be used and tested from plain Python. The names below are the
public Python API. Citations such as ``[EE test.py]`` or ``[EC train.py]`` are labels of docs/UPSTREAM.md (the
upstream repositories, the commits read, and where each published quirk is handled).
"""

from .critic.critic import VACritic, load_va_critic  # noqa: F401
from .emoeditor.continuous import EMOTION_VA_CENTRES, expected_va, va_to_emotions  # noqa: F401
from .emoeditor.emotions import EMOTIONS, class_index, emotion_direction, one_hot  # noqa: F401
from .emoeditor.encoder import EmotionEncoder  # noqa: F401
from .emoeditor.esmi import ESMIScores, esmi, score_edits  # noqa: F401
from .emoeditor.gradcam import grad_cam  # noqa: F401
from .emoeditor.iei import IEIResult, run_iei  # noqa: F401
from .emoeditor.loaders import load_emo_encoder, load_emo_predictor  # noqa: F401
from .emoeditor.predictor import EmotionPrediction, EmotionPredictor  # noqa: F401
from .emoeditor.region import emotion_region  # noqa: F401
from .emoeditor.ssim import critic_ssim  # noqa: F401
from .emoticrafter.closed_loop import LoopSettings, run_closed_loop  # noqa: F401
from .emoticrafter.eit import EITConfig, EmotionInjectionTransformer  # noqa: F401
from .emoticrafter.eit_io import load_eit, save_eit  # noqa: F401
from .errors import CheckpointError  # noqa: F401
from .evaluation.accuracy import emotion_accuracy, va_target_class  # noqa: F401
from .evaluation.metrics import clip_scores, va_errors  # noqa: F401
from .training.editor.data import fill_source_softmax, read_editor_pairs  # noqa: F401
from .training.editor.folder import pairs_from_folder  # noqa: F401
from .training.editor.objective import editor_loss  # noqa: F401
from .training.eit.data import read_pairs  # noqa: F401
from .training.eit.features import build_feature_cache  # noqa: F401
from .training.eit.objective import emotion_target, va_density, weighted_loss  # noqa: F401
from .training.eit.task import TrainConfig, train_eit  # noqa: F401
