"""What can go wrong with one prompt on one server, told apart by what to do about it."""

from __future__ import annotations


class ServerGone(Exception):
    """The server could not be reached, dropped the connection or stayed silent past the read deadline: the
    prompt is worth running elsewhere."""


class PromptFailed(RuntimeError):
    """The server rejected the prompt (HTTP 400) or it failed while running: running it elsewhere won't help."""


class BadAnswer(PromptFailed):
    """The server answered something malformed (not JSON, a missing field, an oversized or broken frame)."""


class Vanished(PromptFailed):
    """The prompt left the server's queue without a /history entry (deleted, or the queue was cleared)."""


class JobTimeout(PromptFailed):
    """The job ran past its time limit (``timeout=`` / ``--timeout``); it is cancelled on the server."""


class BatchError(ValueError):
    """A problem with the command's inputs (workflow, job options, output folder): nothing was run."""


def short(value, n: int = 160) -> str:
    """A value for an error message, cut to ``n`` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= n else text[:n] + f"... ({len(text)} chars)"
