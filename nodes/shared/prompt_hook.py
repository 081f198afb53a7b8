"""The on-prompt hook: every posted prompt's literal INT/FLOAT/BOOLEAN/STRING inputs of emo-nodes nodes checked
against the node's own schema before the host validates them, a refused value replaced by a marker that makes the
host report our message on that input (how and why: nodes/shared/validation.py)."""

import logging

from .validation import Refused, RefusedText, bool_value, input_specs, value_problem

log = logging.getLogger("emo-nodes")

CONVERTED = ("INT", "FLOAT", "BOOLEAN", "STRING")  # the types whose host conversion can carry a Refused message
CONVERT = {"INT": int, "FLOAT": float, "STRING": str}  # the host's conversions (BOOLEAN: normalised by bool_value)
NODE_PREFIX = "EmoNodes_"


def _literal(raw):
    """(is literal, value): links are [node_id, slot]; the host unwraps {"__value__": v} itself."""
    if isinstance(raw, list):
        return False, None
    if isinstance(raw, dict) and "__value__" in raw:
        return True, raw["__value__"]
    return True, raw


def _refused(kind: str, value, problem: str) -> Refused:
    return (RefusedText if kind == "STRING" else Refused)(value, problem)


def refuse_node_literals(cls, inputs: dict) -> None:
    """Check one node's literal INT/FLOAT/BOOLEAN/STRING inputs in place (see nodes/shared/validation.py)."""
    specs = input_specs(cls)
    values = {}
    for name, raw in list(inputs.items()):
        if name not in specs:
            continue
        literal, value = _literal(raw)
        kind, options = specs[name]
        if not literal or kind not in CONVERTED or isinstance(value, (list, dict, Refused)):
            continue
        problem = value_problem(name, kind, options, value)
        if problem:
            inputs[name] = _refused(kind, value, problem)
            continue
        if kind == "BOOLEAN":
            value = bool_value(name, value)[0]
            inputs[name] = value
        values[name] = CONVERT[kind](value) if kind in CONVERT else value
    rules = getattr(cls, "literal_rules", None)
    if rules is not None:
        for name, problem in rules(values).items():
            if specs[name][0] in CONVERTED and not isinstance(inputs.get(name), Refused):
                inputs[name] = _refused(specs[name][0], values.get(name), problem)


def refuse_bad_literals(json_data):
    """ComfyUI on-prompt handler (runs for every POST /prompt, before validation)."""
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    if not isinstance(prompt, dict):
        return json_data
    import nodes as host_nodes  # ComfyUI's registry (absolute import: the host's nodes.py, not this package)

    for node in prompt.values():
        class_type = node.get("class_type") if isinstance(node, dict) else None
        if not isinstance(class_type, str) or not class_type.startswith(NODE_PREFIX):
            continue
        cls = host_nodes.NODE_CLASS_MAPPINGS.get(class_type)
        if cls is not None and isinstance(node.get("inputs"), dict):
            try:
                refuse_node_literals(cls, node["inputs"])
            except Exception:  # never let our check break the host's own validation of a prompt
                log.exception("emo-nodes: checking the inputs of a %s node failed", class_type)
    return json_data


def install_prompt_hook() -> bool:
    """Register refuse_bad_literals once with the running server (absent when ComfyUI runs without one)."""
    try:
        from server import PromptServer
    except ImportError:
        return False
    server = getattr(PromptServer, "instance", None)
    if server is None:
        return False
    if not any(getattr(h, "__name__", "") == refuse_bad_literals.__name__ and
               getattr(h, "__module__", "") == __name__ for h in server.on_prompt_handlers):
        server.add_on_prompt_handler(refuse_bad_literals)
    return True
