"""emo-nodes for ComfyUI: the entry point only (the nodes live in ``nodes/``, the torch code in ``emo_core/``)."""

from .nodes import comfy_entrypoint

WEB_DIRECTORY = "./web"  # the V-A pad and the node docs, served to the frontend

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
