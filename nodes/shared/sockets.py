"""The socket types and the menu category of every emo-nodes node."""

from comfy_api.latest import io

CATEGORY = "emo-nodes"
VA = io.Custom("EMO_VA")  # emo_core.emoticrafter.va.VAPoints
EIT = io.Custom("EMO_EIT")  # a ModelPatcher holding emo_core.emoticrafter.eit.EmotionInjectionTransformer
EMO_ENCODER = io.Custom("EMO_ENCODER")  # a ModelPatcher holding emo_core.emoeditor.encoder.EmotionEncoder
EMO_PREDICTOR = io.Custom("EMO_PREDICTOR")  # a ModelPatcher holding emo_core.emoeditor.predictor.EmotionPredictor
EMO_DISTRIBUTION = io.Custom("EMO_DISTRIBUTION")  # (B, 8) float32 softmax over emo_core.emoeditor.emotions.EMOTIONS
EMO_DIRECTION = io.Custom("EMO_DIRECTION")  # (B, 8) float32 emotion direction onehot(target) - distribution
VA_CRITIC = io.Custom("VA_CRITIC")  # emo_core.critic.critic.VACritic: .predict(IMAGE) -> (B, 2), .clip_score
