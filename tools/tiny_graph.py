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
    "clip_name": "emo_tiny_clip_b32.safetensors",  # the V-A critic (tests/support/tiny_critic.py)
    "valence_head": "emo_tiny_valence1_CLIP.pth",
    "arousal_head": "emo_tiny_arousal1_CLIP.pth",
    "control_net_name": "emo_tiny_sdxl_controlnet.safetensors",
}
TINY_SIZE, TINY_STEPS = 64, 4
TINY_MEGAPIXELS = 0.01  # the node's least: about 100x100 instead of SDXL's 1 MP
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
        if node["class_type"] == "ImageScaleToTotalPixels":
            inputs["megapixels"] = TINY_MEGAPIXELS
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
        if node["class_type"] == "EmoNodes_TrainEmoEditor":
            inputs.update(TINY_EDITOR_TRAINING)
    return tiny_editor_training(api)


TINY_PAIRS = "emo_tiny_pairs.csv"
# Train EmoEditor on the CPU: a LoRA on the tiny SDXL InstructPix2Pix (the file's SD 1.5 editor needs a real CLIP-L)
TINY_EDITOR_TRAINING = {"mode": "lora", "lora_rank": 4, "lora_alpha": 4.0, "lr": 1e-2, "batch_size": 8, "steps": 2,
                        "precision": "fp32", "resolution": TINY_SIZE, "preview_every": 0, "checkpoint_every": 0,
                        "overwrite": True}


def tiny_editor_training(api: dict) -> dict:
    """Retarget a Train EmoEditor graph to the tiny SDXL InstructPix2Pix: its MODEL from the UNet-only tiny checkpoint,
    its VAE and CLIP (and every other use of those VAE/CLIP outputs, e.g. the IEI downstream) from the tiny SDXL
    checkpoint, a fresh SDXL-width encoder (the connected one is SD 1.5-wide); loaders left unused are dropped."""
    trainers = [node for node in api.values() if node["class_type"] == "EmoNodes_TrainEmoEditor"]
    if not trainers:
        return api
    ip2p, sdxl = str(max(int(k) for k in api) + 1), str(max(int(k) for k in api) + 2)
    api[ip2p] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "emo_tiny_sdxl_ip2p.safetensors"}}
    api[sdxl] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": TINY_FILES["ckpt_name"]}}
    swap = {}
    for trainer in trainers:
        inputs = trainer["inputs"]
        inputs.pop("encoder", None)
        for key, new in (("model", [ip2p, 0]), ("clip", [sdxl, 1]), ("vae", [sdxl, 2])):
            if isinstance(inputs.get(key), list):
                swap[tuple(inputs[key])] = new
    for node in api.values():
        for key, value in node["inputs"].items():
            if isinstance(value, list) and tuple(value) in swap:
                node["inputs"][key] = swap[tuple(value)]
    used = {value[0] for node in api.values() for value in node["inputs"].values() if isinstance(value, list)}
    return {k: v for k, v in api.items() if k in used or v["class_type"] not in ("CLIPLoader", "UNETLoader")}
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
