"""Errors and policies shared by the trainers' dataset readers (the EIT's pairs CSV, the editor's pairs file)."""

from __future__ import annotations

from ..errors import EmoError

ON_ERROR = ("stop", "skip")  # what a reader does with malformed records
MAX_LISTED = 20  # problems quoted in a DatasetError message


class DatasetError(EmoError, ValueError):
    """A dataset file that cannot be used as asked; ``problems`` holds every (line, reason) found, so a caller can
    list them all instead of only the first."""

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = list(problems or [])
