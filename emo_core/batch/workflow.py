"""An API-format workflow: reading it, finding its nodes (by id, title or class) and setting their inputs."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import BatchError

VA_CLASS = "EmoNodes_ValenceArousal"
INJECTION_CLASS = "EmoNodes_EmotionInjection"
SEED_INPUTS = ("seed", "noise_seed")


def load_workflow(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def set_input(prompt: dict, title: str, name: str, value) -> None:
    """Set input ``name`` of the node titled ``title`` (exact, else the one title starting with it)."""
    titles = {node_id: node.get("_meta", {}).get("title", "") for node_id, node in prompt.items()}
    matches = [i for i, t in titles.items() if t == title] or \
              [i for i, t in titles.items() if t.lower().startswith(title.lower())]
    if len(matches) != 1:
        known = ", ".join(repr(t) for t in titles.values())
        raise KeyError(f"{'no' if not matches else 'more than one'} node titled {title!r}; titles: {known}")
    inputs = prompt[matches[0]]["inputs"]
    if name not in inputs:
        raise KeyError(f"node {title!r} has no input {name!r}; inputs: {', '.join(inputs)}")
    inputs[name] = value


def check_api(prompt: object, where: str) -> dict:
    """``prompt`` must be an API-format workflow: {id: {"class_type": ..., "inputs": {...}}}."""
    if not isinstance(prompt, dict) or not prompt or not all(
            isinstance(n, dict) and isinstance(n.get("class_type"), str) and isinstance(n.get("inputs"), dict)
            for n in prompt.values()):
        raise BatchError(f"{where}: not an API-format workflow (save it with 'Export (API)'; the files in "
                         "workflows/api/ are examples)")
    return prompt


def is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def apply_set(prompt: dict, item: str) -> None:
    """``--set 'Title:input=JSON'``: the node by id, exact title or the one title starting with it."""
    target, eq, text = item.partition("=")
    node, colon, name = target.rpartition(":")
    if not eq or not colon or not node or not name:
        raise BatchError(f"--set {item!r}: expected 'TITLE:INPUT=JSON' (a node's title or id, e.g. "
                         "--set 'KSampler:steps=30')")
    try:
        value = json.loads(text)
    except ValueError as e:
        raise BatchError(f"--set {item!r}: the value is not JSON ({e}); a string needs quotes: "
                         f"{name}='\"...\"'") from None
    if node in prompt:
        inputs = prompt[node]["inputs"]
        if name not in inputs:
            raise BatchError(f"--set {item!r}: node {node} has no input {name!r}; inputs: {', '.join(inputs)}")
        inputs[name] = value
        return
    try:
        set_input(prompt, node, name, value)
    except KeyError as e:
        raise BatchError(f"--set {item!r}: {e.args[0]}") from None


def by_class(prompt: dict, class_type: str) -> list[str]:
    return [i for i, n in prompt.items() if n["class_type"] == class_type]


def one_node(prompt: dict, class_type: str, what: str, wanted_by: str) -> str:
    """The one node of ``class_type``; none or several: refused, saying which option needed it."""
    found = by_class(prompt, class_type)
    if len(found) != 1:
        has = "none" if not found else f"{len(found)} (nodes {', '.join(found)})"
        raise BatchError(f"{wanted_by} needs {what} ({class_type}) in the workflow; it has {has}")
    return found[0]


def prompt_text_node(prompt: dict) -> str:
    """The CLIPTextEncode whose text feeds the positive: followed back from Emotion Injection's conditioning."""
    start = one_node(prompt, INJECTION_CLASS, "the Emotion Injection node", "--prompts")
    node_id = start
    for _ in range(32):
        link = prompt[node_id]["inputs"].get("conditioning")
        if not is_link(link):
            links = [v for k, v in prompt[node_id]["inputs"].items() if is_link(v) and "conditioning" in k]
            link = links[0] if links else None
        if link is None or link[0] not in prompt:
            break
        node_id = link[0]
        if prompt[node_id]["class_type"] == "CLIPTextEncode":
            if not isinstance(prompt[node_id]["inputs"].get("text"), str):
                break
            return node_id
    raise BatchError(f"--prompts: no CLIPTextEncode with a literal text feeds Emotion Injection (node {start})'s "
                     "conditioning")


def set_seeds(prompt: dict, seed: int) -> int:
    """Every literal seed input; how many there were."""
    count = 0
    for node in prompt.values():
        for name in SEED_INPUTS:
            if name in node["inputs"] and not is_link(node["inputs"][name]):
                node["inputs"][name] = seed
                count += 1
    return count


def target_nodes(prompt: dict) -> list[str]:
    return [i for i, n in prompt.items() if isinstance(n["inputs"].get("target"), str)]
