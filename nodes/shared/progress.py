"""Host progress for every node family, as ComfyUI's own samplers report it (latent_preview.prepare_callback): one
ProgressBar over every step of every sampling run a node may make (EmoEditor's edits and IEI attempts, the
EmotiCrafter closed loop's renders), the host's latent previews when it has a previewer (--preview-method), a line
of text on the node (also the critic's), and Cancel honoured between steps. Shared here so that no node family
imports another."""

from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import latent_preview

PREVIEW_FORMAT = "JPEG"


def show_text(text: str) -> None:
    """A line of text on the running node in the frontend (nothing outside a server)."""
    try:
        from comfy_execution.utils import get_executing_context
        from server import PromptServer
    except ImportError:
        return
    server, context = getattr(PromptServer, "instance", None), get_executing_context()
    if server is not None and context is not None:
        server.send_progress_text(text, context.node_id, server.client_id)


class EditProgress:
    """A bar of ``edits`` x ``steps`` units; edit k (0-based) fills units k*steps+1 .. (k+1)*steps, one per step."""

    def __init__(self, model, edits: int, steps: int):
        self.steps = int(steps)
        self.bar = comfy.utils.ProgressBar(max(1, int(edits) * self.steps))
        self.previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)

    def step_callback(self, edit_index: int):
        """The sampler callback (step, x0, x, total_steps) of edit number ``edit_index``."""
        start = edit_index * self.steps

        def callback(step, x0, x, total_steps):
            mm.throw_exception_if_processing_interrupted()  # Cancel between steps
            preview = None
            if self.previewer is not None:
                preview = self.previewer.decode_latent_to_preview_image(PREVIEW_FORMAT, x0)
            self.bar.update_absolute(start + min(step + 1, self.steps), self.bar.total, preview)

        return callback

    def batch_callback(self, first_edit: int, count: int):
        """The sampler callback of edits ``first_edit``.. run as one batch of ``count``: each step advances all of
        them. The bar never moves back (attempts edited ahead and discarded are redone from a later init)."""
        start = first_edit * self.steps

        def callback(step, x0, x, total_steps):
            mm.throw_exception_if_processing_interrupted()  # Cancel between steps
            preview = None
            if self.previewer is not None:
                preview = self.previewer.decode_latent_to_preview_image(PREVIEW_FORMAT, x0[:1])
            value = min(start + (min(step, self.steps - 1) + 1) * count, self.bar.total)
            self.bar.update_absolute(max(value, self.bar.current), self.bar.total, preview)

        return callback

    def skip_to(self, edit_index: int) -> None:
        """Jump to the start of edit ``edit_index`` (IEI ended before its cap: the bar still reaches its end)."""
        self.bar.update_absolute(edit_index * self.steps, self.bar.total)


class TrainingProgress:
    """A trainer node's progress bar that keeps Cancel for the training loop.

    The host's progress hook raises the interrupt (and clears the flag) inside ``bar.update``; raised from a step
    callback it would end the run before the loop saves. ``update`` keeps it instead, ``should_stop`` (the loop's
    poll after every step) then stops the loop, which writes its resume state, and ``end_if_stopped`` ends the
    prompt as interrupted afterwards."""

    def __init__(self, total: int):
        self.total = max(1, int(total))
        self.bar = comfy.utils.ProgressBar(self.total)
        self.interrupted = False

    def update(self, value: int, preview=None) -> None:
        try:
            self.bar.update_absolute(value, self.total, preview)
        except mm.InterruptProcessingException:
            self.interrupted = True

    def should_stop(self) -> bool:
        return self.interrupted or mm.processing_interrupted()

    @staticmethod
    def end_if_stopped(stopped: bool) -> None:
        """After a stopped run: the host ends the prompt as interrupted (the hook may have consumed the flag)."""
        if stopped:
            mm.throw_exception_if_processing_interrupted()
            raise mm.InterruptProcessingException()
