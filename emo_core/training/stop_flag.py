"""Ctrl-C for command-line trainers: SIGINT/SIGTERM ask the loop to stop after the current step (it then writes a
resume state); a second signal gives up at once, with one line and exit status 130. Giving up skips the rest of the
step: files are written atomically, so every file on disk is whole (a stale temporary file is removed by the next
run), and the last resume state is the one to continue from."""

from __future__ import annotations

import os
import signal
import sys


class StopFlag:
    """Installed once per run; the loop polls it as ``should_stop()``."""

    def __init__(self):
        self.raised = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handler)

    def _handler(self, signum, _frame):
        if self.raised:  # a second signal: give up at once (an exception could surface anywhere, even at exit)
            print(f"signal {signum} again: giving up now; the last resume state is kept", file=sys.stderr, flush=True)
            os._exit(130)
        self.raised = True
        print(f"signal {signum}: stopping after this step", file=sys.stderr, flush=True)

    def __call__(self) -> bool:
        return self.raised
