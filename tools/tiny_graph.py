"""Point an example workflow at the tiny test models and shrink it to CPU size (64², 4 steps, 2 IEI attempts).

The shipped workflows name the published files and settings; tests and the offline demo run them on the tiny
seeded models instead, changing nothing else in the graph.
"""

import copy

TINY_FILES = {
    "ckpt_name": "emo_tiny_sdxl.safetensors",
    "eit_name": "emo_tiny_eit.pth",
    "editor_name": "emo_tiny_ip2p.pt",
    "encoder_name": "emo_tiny_emoenc.pt",
    "predictor_name": "emo_tiny_predictor.pt",
}
TINY_SIZE, TINY_STEPS = 64, 4
TINY_ATTEMPTS = 2  # EmoEditor IEI: random tiny models rarely satisfy the critic, so the cap ends the loop


def for_tiny_models(api: dict) -> dict:
    api = copy.deepcopy(api)
    for node in api.values():
        inputs = node["inputs"]
        for key, name in TINY_FILES.items():
            if key in inputs:
                inputs[key] = name
        if node["class_type"] == "EmptyLatentImage":
            inputs.update(width=TINY_SIZE, height=TINY_SIZE)
        if "steps" in inputs and not isinstance(inputs["steps"], list):
            inputs["steps"] = min(inputs["steps"], TINY_STEPS)
        if node["class_type"] in ("EmoNodes_EmotionEdit", "EmoNodes_IEILoop"):
            inputs["resolution"] = TINY_SIZE  # the SD-sized VAE dominates the CPU cost
        if node["class_type"] == "EmoNodes_EmotionPairs":
            inputs["csv"] = TINY_PAIRS
        if node["class_type"] == "EmoNodes_TrainEIT":
            inputs.update(TINY_TRAINING)
        if "max_attempts" in inputs:
            inputs["max_attempts"] = min(inputs["max_attempts"], TINY_ATTEMPTS)
    return api


TINY_PAIRS = "emo_tiny_pairs.csv"
# overwrite: the dev host keeps the models of earlier runs
TINY_TRAINING = {"epochs": 3, "batch_size": 8, "layers": 1, "width": 64, "overwrite": True}


def write_tiny_pairs(path, rows: int = 40) -> None:
    """A small, valid pairs CSV in the published column layout (V-A spread over the whole square)."""
    subjects = ["a lighthouse", "a city street", "a forest path", "a kitchen", "a beach", "a train station",
                "a garden", "a classroom"]
    moods = [("joyful", 2.5, 1.5), ("terrifying", -2.5, 2.5), ("peaceful", 2.0, -2.0), ("gloomy", -2.0, -1.5),
             ("exciting", 1.5, 2.8)]
    lines = ["Id,Arousal,Valence,Tag,Dataset,Neutral_Prompt,Emotional_Prompt"]
    for i in range(rows):
        subject = subjects[i % len(subjects)]
        mood, valence, arousal = moods[i % len(moods)]
        jitter = (i % 7 - 3) * 0.1
        lines.append(f"{i},{arousal + jitter:.3f},{valence - jitter:.3f},Scene,tiny,{subject},"
                     f"\"a {mood} scene: {subject}, {mood} mood\"")
    path.write_text("\n".join(lines) + "\n")
