"""``python -m emo_core``: the command table of ``emo_core.commands``."""

import sys

from .commands import main

sys.exit(main())
