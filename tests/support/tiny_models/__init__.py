"""Test/demo-only ComfyUI extension: registers the tiny model configurations (see ``configs.py``).

The launcher puts it beside the plugin in the dev host's custom-node folder; it is never installed for users.
"""

from comfy_api.latest import ComfyExtension

from .configs import register

register()


class TinyModelsExtension(ComfyExtension):
    async def get_node_list(self):
        return []


async def comfy_entrypoint() -> TinyModelsExtension:
    return TinyModelsExtension()
