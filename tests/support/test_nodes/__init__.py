"""Test-only ComfyUI nodes: a scripted valence-arousal critic that reads known image statistics, so the closed loop
can be tested on the real host with predictable predictions.

The launcher links this folder into every dev host's custom-node folder, but the nodes are registered only when the
host runs with ``ComfyHost(test_nodes=True)`` (it sets EMO_NODES_TEST_NODES for the host process): the demo never
shows them, and they are never installed for users.
"""

import os

import torch
from comfy_api.latest import ComfyExtension, io

ENABLED = os.environ.get("EMO_NODES_TEST_NODES") == "1"
VA_CRITIC = io.Custom("VA_CRITIC")  # the socket emo-nodes' critic nodes use


def statistics(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) in [0, 1] -> (B, 2): mean brightness (mean of R, G, B) and mean saturation (max - min)."""
    images = images.detach().to("cpu", torch.float64)
    return torch.stack([images.mean((1, 2, 3)), (images.amax(-1) - images.amin(-1)).mean((1, 2))], 1)


class ScriptedCritic:
    """(valence, arousal) = matrix @ (brightness, saturation) + offset; CLIPScore = clip_scale * brightness."""

    def __init__(self, matrix, offset, clip_scale: float, has_text: bool):
        self.matrix = torch.tensor(matrix, dtype=torch.float64).reshape(2, 2)
        self.offset = torch.tensor(offset, dtype=torch.float64)
        self.clip_scale = clip_scale
        self.has_text = has_text
        self.calls = 0

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return (statistics(images) @ self.matrix.T + self.offset).float()

    def clip_score(self, images: torch.Tensor, texts) -> torch.Tensor:
        if not self.has_text:
            raise ValueError("scripted critic: no text tower")
        if len(texts) != images.shape[0] or not all(isinstance(t, str) and t for t in texts):
            raise ValueError(f"scripted critic: one non-empty prompt per image expected, got {texts!r}")
        return (statistics(images)[:, 0] * self.clip_scale).float()


class ScriptedCriticNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        def number(name, default):
            return io.Float.Input(name, default=default, min=-1e6, max=1e6, step=0.001)

        return io.Schema(
            node_id="EmoTest_ScriptedCritic",
            display_name="Scripted V-A critic (tests)",
            category="emo-nodes/tests",
            inputs=[number("v_brightness", 6.0), number("v_saturation", 0.0), number("a_brightness", 0.0),
                    number("a_saturation", 6.0), number("v_offset", -3.0), number("a_offset", -3.0),
                    number("clip_scale", 100.0), io.Boolean.Input("has_text", default=True)],
            outputs=[VA_CRITIC.Output(display_name="critic")],
        )

    @classmethod
    def execute(cls, v_brightness, v_saturation, a_brightness, a_saturation, v_offset, a_offset, clip_scale,
                has_text) -> io.NodeOutput:
        matrix = [[v_brightness, v_saturation], [a_brightness, a_saturation]]
        return io.NodeOutput(ScriptedCritic(matrix, [v_offset, a_offset], clip_scale, has_text))


class TestNodesExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [ScriptedCriticNode] if ENABLED else []


async def comfy_entrypoint() -> TestNodesExtension:
    return TestNodesExtension()
