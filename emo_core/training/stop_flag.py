"""Ctrl-C for command-line trainers: SIGINT/SIGTERM ask the loop to stop after the current step (it then writes a
resume state); a second signal gives up at once."""

from __future__ import annotations

import signal
import sys


class StopFlag:
    """Installed once per run; the loop polls it as ``should_stop()``."""

    def __init__(self):
        self.raised = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handler)

    def _handler(self, signum, _frame):
        if self.raised:  # a second signal: give up at once
            raise KeyboardInterrupt
        self.raised = True
        print(f"signal {signum}: stopping after this step", file=sys.stderr, flush=True)

    def __call__(self) -> bool:
        return self.raised
